"""The 下载模型 panel of 设置: the recommended model and why, a short list (any hub id may be typed), the
source, progress, start / cancel, the equivalent command (folded) — components and wiring only;
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
    wanted = h.wanted(services)
    with gr.Accordion(t("set_dl_title", lang), open=h.missing_model(services) is not None):
        gr.Markdown(h.help_text(services, lang), elem_id="download-help")
        with gr.Row():
            model_id = gr.Dropdown(
                h.choices(services, lang),
                value=wanted,
                allow_custom_value=True,
                label=t("set_dl_model", lang),
                info=t("set_dl_model_info", lang),
                elem_id="download-model",
                scale=3,
            )
            source = gr.Dropdown(
                [(t(f"set_dl_source_{s}", lang), s) for s in ("auto", "hf", "modelscope")],
                value=services.settings.model.source,
                label=t("set_dl_source", lang),
                elem_id="download-source",
            )
            start = gr.Button(t("set_dl_start", lang), variant="primary", elem_id="download-start")
            cancel = gr.Button(t("set_dl_cancel", lang), elem_id="download-cancel")
        progress = gr.Markdown(
            h.progress_text(services.downloads.status(), lang), elem_id="download-progress"
        )
        with gr.Accordion(t("set_dl_command", lang), open=False, elem_id="download-command-box"):
            command = gr.Textbox(
                h.command(wanted),
                label=t("set_dl_command", lang),  # hidden, but Gradio would write "Textbox" in its place
                show_label=False,
                interactive=False,
                buttons=["copy"],
                elem_id="download-command",
            )
    timer = gr.Timer(1.0, active=services.downloads.running())

    def on(handler):  # a handler of the panel, bound to this app's services and language
        return guard(partial(handler, services, lang))

    private = {"api_visibility": "private"}
    model_id.change(h.command, model_id, command, **private, show_progress="hidden")
    start.click(on(h.start_clicked), [model_id, source], [progress, timer], **private)
    cancel.click(on(h.cancel_clicked), None, [progress, timer], **private)
    timer.tick(on(h.poll), None, [progress, timer], **private, show_progress="hidden")
