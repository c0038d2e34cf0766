"""The 下载模型 panel of 设置: model id, source, progress, start / cancel — components and wiring only;
every event calls a function of ``handlers.py`` (through ``webui.errors.guard``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from xiaoshuo.webui.errors import guard
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.pages.downloads import handlers as h


def download_panel(services: Any, lang: str) -> None:
    """The 下载模型 block of the 设置 tab (inside the current ``gr.Blocks`` context)."""
    from xiaoshuo.models import CATALOGUE, pull_command

    wanted = h.wanted(services)
    size = t("set_dl_size", lang, gib=CATALOGUE[wanted].size_gib) if wanted in CATALOGUE else ""
    with gr.Accordion(t("set_dl_title", lang), open=h.missing_model(services) is not None):
        gr.Markdown(t("set_dl_help", lang, size=size, command=pull_command(wanted)), elem_id="download-help")
        with gr.Row():
            model_id = gr.Textbox(wanted, label=t("set_dl_model", lang), elem_id="download-model")
            source = gr.Dropdown(
                ["auto", "hf", "modelscope"],
                value=services.settings.model.source,
                label=t("set_dl_source", lang),
                elem_id="download-source",
            )
            start = gr.Button(t("set_dl_start", lang), variant="primary", elem_id="download-start")
            cancel = gr.Button(t("set_dl_cancel", lang), elem_id="download-cancel")
        progress = gr.Markdown(
            h.progress_text(services.downloads.status(), lang), elem_id="download-progress"
        )
    timer = gr.Timer(1.0, active=services.downloads.running())

    def on(handler):  # a handler of the panel, bound to this app's services and language
        return guard(partial(handler, services, lang))

    private = {"api_visibility": "private"}
    start.click(on(h.start_clicked), [model_id, source], [progress, timer], **private)
    cancel.click(on(h.cancel_clicked), None, [progress, timer], **private)
    timer.tick(on(h.poll), None, [progress, timer], **private, show_progress="hidden")
