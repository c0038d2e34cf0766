"""总览's layout: a chapter slider, the relationship graph, a character's card, the timeline and the
dashboard — components and wiring only; every event calls a function of ``handlers.py`` (through
``webui.errors.guard``).  The novel is the 创作 page's; the book is read when the tab opens or 刷新 is
pressed, and the slider redraws from what was read.
"""

from __future__ import annotations

import gradio as gr

from xiaoshuo.webui.errors import guard
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.pages.overview import handlers as h
from xiaoshuo.webui.services import Services


def build_overview_tab(services: Services, lang: str, novel: gr.Dropdown, tab: gr.Tab | None = None) -> None:
    """Lay out 总览 for ``novel`` (the 创作 page's picker) and wire it; ``tab``: re-read when opened."""

    def L(key: str) -> str:
        return t(key, lang)

    snap = gr.State(None)
    gr.Markdown(L("ov_intro"))
    with gr.Row():
        chapter = gr.Slider(1, 2, value=1, step=1, label=L("ov_chapter"), elem_id="overview-chapter", scale=4)
        refresh = gr.Button(L("ov_refresh"), elem_id="overview-refresh", scale=1)
    info = gr.Markdown(elem_id="overview-summary")
    with gr.Row():
        graph = gr.Plot(label=L("ov_graph"), elem_id="overview-graph", scale=3)
        with gr.Column(scale=1):
            who = gr.Dropdown([], label=L("ov_character"), elem_id="overview-character")
            card = gr.Markdown(L("ov_card_none"), elem_id="overview-card")
    timeline = gr.Plot(label=L("ov_timeline"), elem_id="overview-timeline")
    dashboard = gr.Plot(label=L("ov_dashboard"), elem_id="overview-dashboard")

    def on_load(slug):
        loaded, warning = h.load(services, slug, None, lang)
        at = loaded.data["chapter"] if loaded else 1
        top = h.slider_max(loaded)
        g, tl, db = h.figures(loaded, at)
        return (
            loaded,
            gr.update(maximum=top, value=at),
            h.summary(loaded, at, warning, lang),
            g,
            tl,
            db,
            gr.update(choices=h.character_choices(loaded, at), value=None),
            h.character_card(None, None, at, lang),
        )

    def on_chapter(loaded, at, name):
        if loaded is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        g, _, _ = h.figures(loaded, at)
        choices = h.character_choices(loaded, at)
        return (
            h.summary(loaded, at, "", lang),
            g,
            gr.update(choices=choices, value=name if name in choices else None),
            h.character_card(loaded, name, at, lang),
        )

    load_outputs = [snap, chapter, info, graph, timeline, dashboard, who, card]
    for trigger in [refresh.click, *([tab.select] if tab is not None else []), novel.change]:
        trigger(guard(on_load), novel, load_outputs, api_visibility="private")
    chapter.change(
        guard(on_chapter), [snap, chapter, who], [info, graph, who, card], api_visibility="private"
    )
    who.change(
        guard(lambda loaded, name, at: h.character_card(loaded, name, at, lang)),
        [snap, who, chapter],
        card,
        api_visibility="private",
    )
