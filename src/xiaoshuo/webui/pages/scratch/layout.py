"""随手写 (scratch)'s layout: the request, the story so far, candidates side by side — components and
wiring only; every event calls a function of ``handlers.py`` (through ``webui.errors.guard``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from xiaoshuo.webui.errors import guard
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.pages.scratch import handlers as h
from xiaoshuo.webui.runtime import MAX_CANDIDATES, candidate_columns
from xiaoshuo.webui.services import Services


def _sampling_form(lang: str, g: Any) -> list[gr.components.Component]:
    """温度 … 候选数, in the order ``handlers.sampling`` takes them."""
    return [
        gr.Number(g.temperature, label=t("temperature", lang), elem_id="temperature"),
        gr.Number(g.top_p, label=t("top_p", lang), elem_id="top-p"),
        gr.Number(g.top_k, label=t("top_k", lang), precision=0, elem_id="top-k"),
        gr.Number(min(g.max_tokens, 512), label=t("max_tokens", lang), precision=0, elem_id="max-tokens"),
        gr.Number(g.repetition_penalty, label=t("rep", lang), elem_id="repetition-penalty"),
        gr.Textbox("", label=t("seed", lang), elem_id="seed"),  # empty: random
        gr.Slider(1, MAX_CANDIDATES, value=1, step=1, label=t("n", lang), elem_id="n"),
    ]


def _candidates(lang: str) -> tuple[list[gr.Textbox], list[gr.Button], list[gr.Column]]:
    outputs, uses, columns = [], [], []
    with gr.Row():
        for i in range(MAX_CANDIDATES):  # as many shown as 候选数 (runtime.candidate_columns)
            with gr.Column(visible=i == 0) as column:
                columns.append(column)
                outputs.append(
                    gr.Textbox(
                        label=f"{t('candidate', lang)} {i + 1}",
                        lines=8,
                        interactive=False,
                        elem_id="output" if i == 0 else f"output-{i + 1}",
                        buttons=["copy"],
                    )
                )
                uses.append(gr.Button(f"{t('use', lang)} {i + 1}", elem_id=f"use-{i + 1}", size="sm"))
    return outputs, uses, columns


def build_scratch_tab(services: Services, lang: str, g: Any, concurrency: int) -> dict[str, Any]:
    """Lay out 随手写 and wire it; returns its novel, adapter and story and the page-load handler."""
    novels = services.novels()
    with gr.Row():
        novel = gr.Dropdown(
            novels, value=novels[0], label=t("novel", lang), allow_custom_value=True, elem_id="novel", scale=2
        )
        adapter = gr.Dropdown(
            [t("none", lang), *services.adapters()],
            value=t("none", lang),
            label=t("adapter", lang),
            elem_id="adapter",
            scale=2,
        )
        memory_on = gr.Checkbox(True, label=t("memory_on", lang), elem_id="memory-on", scale=1)
    request = gr.Textbox(
        label=t("request", lang), placeholder=t("request_ph", lang), lines=2, elem_id="request"
    )
    with gr.Row():
        with gr.Column(scale=3):  # filled on page load (demo.load), never at build time
            story = gr.Textbox("", label=t("story", lang), lines=14, max_lines=40, elem_id="story")
        with gr.Column(scale=1):
            form = _sampling_form(lang, g)
    with gr.Row():
        generate_btn = gr.Button(t("generate", lang), variant="primary", elem_id="generate")
        stop = gr.Button(t("stop", lang), variant="stop", elem_id="stop")
    outputs, uses, columns = _candidates(lang)
    notice = gr.Markdown(elem_id="generation-notice")
    with gr.Accordion(t("inspector", lang), open=False, elem_id="inspector-acc"):
        inspector = gr.Markdown(elem_id="context-inspector")  # rows in words, the prompt folded (no JSON)

    private = {"api_visibility": "private"}
    quiet = {**private, "show_progress": "hidden"}
    gen_event = generate_btn.click(
        guard(partial(h.generate, services, lang)),
        [novel, request, story, *form, memory_on, adapter],
        [*outputs, inspector, notice],
        api_name="generate",
        concurrency_limit=concurrency,  # generations at once (webui --concurrency); others queue
        concurrency_id="generate",
    )
    stop.click(None, cancels=[gen_event], **private)
    form[-1].change(candidate_columns, form[-1], columns, **private)  # 候选数
    for i, use in enumerate(uses):
        use.click(guard(partial(h.use_candidate, services)), [novel, story, outputs[i]], story, **private)
    story.change(guard(partial(h.autosave, services)), [novel, story], None, **quiet)
    novel.change(guard(partial(h.switch_novel, services)), novel, [story, adapter], **private)
    adapter.change(guard(partial(h.set_adapter, services)), [novel, adapter], None, **quiet)
    return {"novel": novel, "adapter": adapter, "story": story, "on_load": partial(h.on_load, services, lang)}
