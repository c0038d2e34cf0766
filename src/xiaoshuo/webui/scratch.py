"""随手写: the free page — a request, the story so far, candidates streamed side by side.

The story is autosaved per novel name by ``Services.scratch`` (:mod:`xiaoshuo.writing.scratch`,
``data/scratch/``): a scratch text, never a book's chapter, even under a book's slug (the name picks
the memory); the prompt is built by ``xiaoshuo.writing.compose`` (through ``webui.generation``).  Not
responsible for chapters or outlines (that is the book page, ``book.py``).

The handlers are plain module-level functions over ``Services`` (and the page's ``lang``);
``build_scratch_tab`` only lays the page out and wires them (``functools.partial``).  The page keeps
no state between events: the story is the name's scratch file on disk (shared by every page on that
name, by design), everything else is the components' own values.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.errors import as_gradio_error as _error
from xiaoshuo.webui.generation import MAX_CANDIDATES, generate_stream
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.services import Services

DEFAULT_NOVEL = "default"  # the story file of a page with no novel chosen


# ----------------------------------------------------------------------------- handlers
def sampling(temperature, top_p, top_k, max_tokens, rep, seed, n):
    """The form's numbers as ``SamplingSettings`` (a bad value is a visible ``gr.Error``)."""
    from xiaoshuo.engine import SamplingSettings

    try:
        return SamplingSettings(
            temperature=float(temperature),
            top_p=float(top_p),
            top_k=int(top_k),
            max_tokens=int(max_tokens),
            repetition_penalty=float(rep),
            seed=None if seed is None or int(seed) < 0 else int(seed),
            n=int(n),
        )
    except (XiaoshuoError, TypeError, ValueError) as exc:
        raise _error(exc) from None


async def generate(
    services: Services,
    lang: str,
    novel,
    request,
    story,
    temperature,
    top_p,
    top_k,
    max_tokens,
    rep,
    seed,
    n,
    memory_on,
    adapter,
):
    """生成: stream the candidates; yields ``[*texts, inspector report, notice]``."""
    if not (request or "").strip():
        raise gr.Error(t("err_empty_request", lang))
    settings = sampling(temperature, top_p, top_k, max_tokens, rep, seed, n)
    warned = False
    try:
        async for update in generate_stream(
            services, novel, request, story or "", settings, memory_on, adapter, lang=lang
        ):
            if update.warnings and not warned:
                warned = True
                for warning in update.warnings:
                    gr.Warning(warning)
            notice = "\n\n".join(f"⚠ {w}" for w in update.warnings)
            # (gr.skip() for an unchanged inspector stalls the browser: Gradio 6.31)
            yield [*update.texts, update.report, notice]
    except (XiaoshuoError, OSError) as exc:
        raise _error(exc) from None


def use_candidate(services: Services, novel, story, chosen) -> str:
    """采用候选: append the candidate to the story and save it; returns the new story."""
    text = (story or "") + (chosen or "")
    autosave(services, novel, text)
    return text


def autosave(services: Services, novel, text) -> None:
    try:
        services.scratch.save(novel or DEFAULT_NOVEL, text or "")
    except (XiaoshuoError, OSError) as exc:
        raise _error(exc) from None


def switch_novel(services: Services, novel):
    """Another novel picked: its story, and its adapter when it has one."""
    default = services.scratch.adapter(novel or DEFAULT_NOVEL)
    return services.scratch.load(novel or DEFAULT_NOVEL), default if default else gr.skip()


def set_adapter(services: Services, novel, adapter) -> None:
    services.scratch.set_adapter(novel or DEFAULT_NOVEL, adapter)


def on_load(services: Services, lang: str, novel):
    """Every page load reads the story from disk (never the value the server started with)."""
    novel = novel or DEFAULT_NOVEL
    default = services.scratch.adapter(novel)
    choices = [t("none", lang), *services.adapters()]
    return (
        gr.update(choices=services.novels()),
        services.scratch.load(novel),
        gr.update(choices=choices, value=default) if default else gr.update(choices=choices),
    )


# ----------------------------------------------------------------------------- layout and wiring
def build_scratch_tab(services: Services, lang: str, g: Any, concurrency: int) -> dict[str, Any]:
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
        with gr.Column(scale=3):
            story = gr.Textbox(  # filled on page load (demo.load), never at build time
                "",
                label=t("story", lang),
                lines=14,
                max_lines=40,
                elem_id="story",
            )
        with gr.Column(scale=1):
            temperature = gr.Number(g.temperature, label=t("temperature", lang), elem_id="temperature")
            top_p = gr.Number(g.top_p, label=t("top_p", lang), elem_id="top-p")
            top_k = gr.Number(g.top_k, label=t("top_k", lang), precision=0, elem_id="top-k")
            max_tokens = gr.Number(
                min(g.max_tokens, 512), label=t("max_tokens", lang), precision=0, elem_id="max-tokens"
            )
            rep = gr.Number(g.repetition_penalty, label=t("rep", lang), elem_id="repetition-penalty")
            seed = gr.Number(-1, label=t("seed", lang), precision=0, elem_id="seed")
            n = gr.Slider(1, MAX_CANDIDATES, value=1, step=1, label=t("n", lang), elem_id="n")
    with gr.Row():
        generate_btn = gr.Button(t("generate", lang), variant="primary", elem_id="generate")
        stop = gr.Button(t("stop", lang), variant="stop", elem_id="stop")
    outputs, uses = [], []
    with gr.Row():
        for i in range(MAX_CANDIDATES):
            with gr.Column():
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
    notice = gr.Markdown(elem_id="generation-notice")
    with gr.Accordion(t("inspector", lang), open=False, elem_id="inspector-acc"):
        inspector = gr.JSON(elem_id="context-inspector")

    gen_event = generate_btn.click(
        partial(generate, services, lang),
        [novel, request, story, temperature, top_p, top_k, max_tokens, rep, seed, n, memory_on, adapter],
        [*outputs, inspector, notice],
        api_name="generate",
        concurrency_limit=concurrency,  # generations at once (webui --concurrency); others queue
        concurrency_id="generate",
    )
    stop.click(None, cancels=[gen_event], api_visibility="private")
    for i, use in enumerate(uses):
        use.click(
            partial(use_candidate, services), [novel, story, outputs[i]], story, api_visibility="private"
        )
    story.change(
        partial(autosave, services), [novel, story], None, api_visibility="private", show_progress="hidden"
    )
    novel.change(partial(switch_novel, services), novel, [story, adapter], api_visibility="private")
    adapter.change(
        partial(set_adapter, services),
        [novel, adapter],
        None,
        api_visibility="private",
        show_progress="hidden",
    )
    return {"novel": novel, "adapter": adapter, "story": story, "on_load": partial(on_load, services, lang)}
