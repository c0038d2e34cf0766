"""The 创作 page's care panel: 锁定本章 and the chapter's 待同步 reasons, then 修订, 同步 and 体检 in
collapsed accordions.

Components and wiring only (``care_handlers.py`` does the work), placed by ``layout.build_book_tab`` with
one call; it is handed the components it reads (novel, chapter, memory switch, adapter) and refreshes
(the editor, the chapter view, the outline, the review table).  Not responsible for the rest of the page.
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace
from typing import Any

import gradio as gr

from xiaoshuo.webui.errors import guard as _guard
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.pages.book import care_handlers as ch

PRIVATE = {"api_visibility": "private"}


def build_care_panel(
    services: Any,
    lang: str,
    novel: Any,
    chapter: Any,
    *,
    memory_on: Any,
    adapter: Any,
    text: Any,
    chapter_view: list[Any],
    outline: Any,
    review: list[Any],
) -> SimpleNamespace:
    """Lay out and wire the panel (call inside the page's column).  ``text``: the editor (read-only while
    the chapter is locked); ``chapter_view``: the components of ``handlers.chapter_outputs``; ``review``:
    the review table and its accordion.  Returns the panel's components."""
    L = partial(t, lang=lang)
    p = SimpleNamespace()
    with gr.Row(equal_height=True):
        p.lock = gr.Checkbox(False, label=L("care_lock"), elem_id="book-lock", scale=0, min_width=120)
        p.lock_msg = gr.Markdown(elem_id="book-lock-msg")
    p.stale = gr.Markdown(elem_id="book-stale")
    with gr.Accordion(L("care_revise"), open=False, elem_id="book-revise-acc"):
        with gr.Row():
            p.plan_btn = gr.Button(L("care_revise_plan"), size="sm", elem_id="book-revise-plan")
            p.passes = gr.Slider(1, 5, value=2, step=1, label=L("care_passes"), elem_id="book-revise-passes")
            p.revise_btn = gr.Button(L("care_revise_go"), variant="primary", elem_id="book-revise")
        p.revise_msg = gr.Markdown(elem_id="book-revise-msg")
        p.before = gr.Dataframe(
            headers=ch.headers(lang), interactive=False, wrap=True, label=L("care_before"),
            elem_id="book-revise-before",
        )  # fmt: skip
        p.after = gr.Dataframe(
            headers=ch.headers(lang), interactive=False, wrap=True, label=L("care_after"),
            elem_id="book-revise-after",
        )  # fmt: skip
        p.diff = gr.HTML(label=L("care_diff"), elem_id="book-revise-diff")
    with gr.Accordion(L("care_resync"), open=False, elem_id="book-resync-acc"):
        p.pending = gr.Markdown(elem_id="book-pending")
        p.resync_btn = gr.Button(L("care_resync_go"), elem_id="book-resync")
        p.resync_msg = gr.Markdown(elem_id="book-resync-msg")
    with gr.Accordion(L("care_health"), open=False, elem_id="book-health-acc"):
        p.health_btn = gr.Button(L("care_health_go"), size="sm", elem_id="book-health")
        p.health_msg = gr.Markdown(elem_id="book-health-msg")
        p.health_lines = gr.Plot(label=L("care_chart_lines"), elem_id="book-health-lines")
        p.health_chars = gr.Plot(label=L("care_chart_chars"), elem_id="book-health-chars")

    # the selected chapter: its lock, its stale reasons, the editor, the novel's pending work
    # (the outline changes with every edit, save and novel picked: its stale marks are new then)
    follow = [p.lock, p.stale, text, p.pending]
    for source in (chapter, outline):
        source.change(
            _guard(partial(ch.on_chapter, services, lang)), [novel, chapter], follow, show_progress="hidden",
            **PRIVATE,
        )  # fmt: skip
    # .input: only the writer's click (a chapter opened sets the value without locking anything)
    p.lock.input(
        _guard(partial(ch.on_lock, services, lang)),
        [novel, chapter, p.lock],
        [p.lock, p.lock_msg, text, outline],
        **PRIVATE,
    )
    p.plan_btn.click(
        _guard(partial(ch.on_plan, services, lang)), [novel, chapter], [p.revise_msg, p.before], **PRIVATE
    )
    p.revise_btn.click(
        _guard(partial(ch.on_revise, services, lang)),
        [novel, chapter, text, p.passes, memory_on, adapter],
        [p.revise_msg, p.before, p.after, p.diff, *chapter_view, outline, p.pending, p.stale],
        concurrency_id="generate",
        **PRIVATE,
    )
    p.resync_btn.click(
        _guard(partial(ch.on_resync, services, lang)),
        [novel, chapter],
        [p.resync_msg, outline, p.pending, p.stale, *review],
        concurrency_id="generate",
        **PRIVATE,
    )
    p.health_btn.click(
        _guard(partial(ch.on_health, services, lang)),
        novel,
        [p.health_msg, p.health_lines, p.health_chars],
        **PRIVATE,
    )
    return p
