"""The 创作 tab's layout: the book — novel picker, outline tree, chapter editor, candidates, versions, review.

Components and wiring only, one function per section of the page: every event is a function of
:mod:`xiaoshuo.webui.pages.book.handlers` bound with ``functools.partial(fn, services, lang, …)``
(every one wrapped in ``webui.errors.guard``, which turns ``XiaoshuoError`` and OS errors into ``gr.Error``).
The only functions defined here read a ``gr.SelectData`` (Gradio hands the event only to a parameter
annotated with it, which a ``partial`` does not carry) and pass its plain values on.  Per-session state
lives in ``gr.State`` (the last generation's candidates, the text selection) and the browser's own
storage (``gr.BrowserState``: the novel and chapter a reload reopens).  Not responsible for what a click
does (``handlers.py``) or for the other pages (``webui/app.py`` assembles them).
"""

from __future__ import annotations

import json
from functools import partial
from types import SimpleNamespace
from typing import Any

import gradio as gr

from xiaoshuo.webui.errors import guard as _guard
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.pages.book import handlers as h
from xiaoshuo.webui.pages.book.care_layout import build_care_panel
from xiaoshuo.webui.runtime import candidate_columns

PRIVATE = {"api_visibility": "private"}


def build_book_tab(services: Any, lang: str, concurrency: int = 8) -> dict[str, Any]:
    """The 创作 tab's components (call inside ``gr.Tab``); returns the ones app.py wires further."""
    c = SimpleNamespace(
        last=gr.BrowserState({"novel": None, "chapter": None}, storage_key="xiaoshuo-book"),
        run_state=gr.State({}),  # the last generation of this page: chapter, kind, versions of candidates
        sel_state=gr.State({}),  # the selected passage of the editor: {"start", "end"}
    )
    _novel_bar(c, lang)
    _import_panel(c, lang)
    with gr.Row():
        with gr.Column(scale=2, min_width=320):
            _outline_column(c, lang)
        with gr.Column(scale=5):
            _editor(c, lang)
            _candidates(c, lang)
            _versions_and_summary(c, lang)
            _inspector(c, lang)
            _review_panel(c, lang)
            c.care = build_care_panel(  # 锁定本章, 待同步, 修订, 同步, 体检 (care_layout.py)
                services, lang, c.novel, c.chapter, memory_on=c.memory_on, adapter=c.adapter, text=c.text,
                chapter_view=_chapter_view(c), outline=c.outline, review=[c.review, c.review_acc],
            )  # fmt: skip
            _check_and_threads(c, lang)
            _export_panel(c, lang)

    on_load = partial(h.on_load, services, lang)
    _wire_novel(c, services, lang)
    _wire_outline(c, services, lang)
    _wire_editor(c, services, lang)
    _wire_generation(c, services, lang, concurrency)
    _wire_versions(c, services, lang)
    _wire_review(c, services, lang)
    _wire_books(c, services, lang)
    return {
        "novel": c.novel,
        "adapter": c.adapter,
        "new_adapter": c.new_adapter,
        "on_load": on_load,
        "load_inputs": [c.last],
        "load_outputs": [c.novel, c.adapter, c.new_adapter, c.card_inputs["adapter"]],
    }


# ----------------------------------------------------------------------------- output groups
def _chapter_view(c: SimpleNamespace) -> list[Any]:
    """The components of ``handlers.chapter_outputs`` (``handlers.CHAPTER_FIELDS`` of them)."""
    return [
        c.header,
        c.text,
        c.chars,
        c.summary,
        c.versions,
        c.plan_title,
        c.plan_synopsis,
        c.target,
        c.final,
    ]


def _card_form(c: SimpleNamespace) -> list[Any]:
    """The card form's components, in ``handlers.CARD_FIELDS`` order."""
    return [c.card_inputs[k] for k in h.CARD_FIELDS]


def _outline_state(c: SimpleNamespace) -> list[Any]:
    """The outputs of ``handlers.outline_state``: the 继续/重新开始 panel, its reason, 从第几章, 章数."""
    return [c.outline_stop, c.outline_reason, c.gen_from, c.gen_count]


def _review_outputs(c: SimpleNamespace) -> list[Any]:
    return [c.review, c.review_acc, c.review_msg, c.threads]


# ----------------------------------------------------------------------------- layout
def _novel_bar(c: SimpleNamespace, lang: str) -> None:
    """The novel and adapter pickers, the novel's card, 新建小说."""
    L = partial(t, lang=lang)
    none = L("none")
    with gr.Row(equal_height=True):
        c.novel = gr.Dropdown([], value=None, label=L("book_novel"), elem_id="book-novel", scale=3)
        c.adapter = gr.Dropdown([none], value=None, label=L("adapter"), elem_id="book-adapter", scale=2)
        c.memory_on = gr.Checkbox(True, label=L("memory_on"), elem_id="book-memory-on", scale=1)
    c.card = gr.Markdown(elem_id="book-card")
    with gr.Accordion(L("book_new"), open=False, elem_id="book-new-acc") as c.new_acc:
        with gr.Row():
            c.new_title = gr.Textbox(label=L("book_title"), elem_id="book-new-title")
            c.new_slug = gr.Textbox(
                label=L("book_slug"), placeholder=L("book_slug_ph"), elem_id="book-new-slug"
            )
            c.new_genre = gr.Textbox(label=L("book_genre"), elem_id="book-new-genre")
            c.new_style = gr.Textbox(label=L("book_style"), elem_id="book-new-style")
        with gr.Row():
            c.new_author = gr.Textbox(label=L("book_card_field_author"), elem_id="book-new-author")
            c.new_pov = gr.Textbox(
                label=L("book_card_field_pov"), placeholder=L("book_pov_ph"), elem_id="book-new-pov"
            )
        c.new_premise = gr.Textbox(label=L("book_premise"), lines=2, elem_id="book-new-premise")
        with gr.Row():
            c.new_chars = gr.Number(
                3000, label=L("book_chapter_chars"), precision=0, elem_id="book-new-chars"
            )
            c.new_adapter = gr.Dropdown(
                [none], value=none, label=L("book_default_adapter"), elem_id="book-new-adapter"
            )
            c.create_btn = gr.Button(L("book_create"), variant="primary", elem_id="book-create")
    _card_panel(c, lang)


def _card_panel(c: SimpleNamespace, lang: str) -> None:
    """小说信息: every field of the open novel's card (``actions.CARD_FIELDS``), 保存小说信息."""
    L = partial(t, lang=lang)
    none = L("none")
    c.card_inputs = {}
    with gr.Accordion(L("book_card_edit"), open=False, elem_id="book-card-acc"):
        with gr.Row():
            for key in ("title", "author", "genre", "style", "pov"):
                c.card_inputs[key] = gr.Textbox(label=L(f"book_card_field_{key}"), elem_id=f"book-card-{key}")
        c.card_inputs["premise"] = gr.Textbox(
            label=L("book_card_field_premise"), lines=2, elem_id="book-card-premise"
        )
        with gr.Row():
            c.card_inputs["chapter_chars"] = gr.Number(
                None, label=L("book_card_field_chapter_chars"), precision=0, elem_id="book-card-chapter_chars"
            )
            c.card_inputs["adapter"] = gr.Dropdown(
                [none], value=None, label=L("book_card_field_adapter"), elem_id="book-card-adapter"
            )
            c.card_inputs["variant"] = gr.Radio(
                list(h.VARIANTS), value=None, label=L("book_card_field_variant"), elem_id="book-card-variant"
            )
            c.card_save = gr.Button(L("book_card_save"), elem_id="book-card-save")
        c.card_msg = gr.Markdown(elem_id="book-card-msg")


def _import_panel(c: SimpleNamespace, lang: str) -> None:
    """导入: a book file into a new novel, or appended to / replacing the open one."""
    L = partial(t, lang=lang)
    with gr.Accordion(L("book_import"), open=False, elem_id="book-import-acc"):
        with gr.Row():
            c.imp_file = gr.File(label=L("book_import_file"), elem_id="book-import-file")
            c.imp_slug = gr.Textbox(
                label=L("book_slug"), placeholder=L("book_import_slug_ph"), elem_id="book-import-slug"
            )
            c.imp_mode = gr.Radio(
                [
                    (L("book_import_new"), "new"),
                    (L("book_import_append"), "append"),
                    (L("book_import_replace"), "replace"),
                ],
                value="new",
                label=L("book_import_mode"),
                elem_id="book-import-mode",
            )
        c.imp_btn = gr.Button(L("book_import_go"), elem_id="book-import-go")
        c.imp_report = gr.Markdown(elem_id="book-import-report")  # the report's summary line
        c.imp_table = gr.Dataframe(
            headers=h.headers("import", lang),
            interactive=False,
            wrap=True,
            max_height=320,
            label=L("book_import_report"),
            elem_id="book-import-table",
        )


def _outline_column(c: SimpleNamespace, lang: str) -> None:
    """The outline table, the chapter's plan fields and edits, 生成大纲."""
    L = partial(t, lang=lang)
    c.outline = gr.Dataframe(
        headers=h.headers("outline", lang),
        interactive=False,
        elem_id="book-outline",
        label=L("book_outline"),
        wrap=True,
        max_height=420,
        column_widths=h.OUTLINE_WIDTHS,  # 标题/状态/字数 stay visible beside a long 卷 (h.VOLUME_CHARS)
    )
    c.chapter = gr.Number(None, label=L("book_chapter"), precision=0, elem_id="book-chapter")
    c.plan_title = gr.Textbox(label=L("book_plan_title"), elem_id="book-plan-title")
    c.plan_synopsis = gr.Textbox(label=L("book_plan_synopsis"), lines=2, elem_id="book-plan-synopsis")
    with gr.Row():
        c.add_btn = gr.Button(L("book_add_chapter"), size="sm", elem_id="book-add-chapter")
        c.rename_btn = gr.Button(L("book_rename"), size="sm", elem_id="book-rename")
    with gr.Row():
        c.up_btn = gr.Button(L("book_up"), size="sm", elem_id="book-up")
        c.down_btn = gr.Button(L("book_down"), size="sm", elem_id="book-down")
        c.del_btn = gr.Button(
            L("book_delete_chapter"), size="sm", variant="stop", elem_id="book-delete-chapter"
        )
    with gr.Accordion(L("book_outline_gen"), open=False, elem_id="book-outline-gen-acc"):
        c.gen_count = gr.Number(6, label=L("book_outline_count"), precision=0, elem_id="book-outline-count")
        # empty = the default: Textboxes (a gr.Number shows and sends 0 for empty)
        c.gen_from = gr.Textbox("", label=L("book_outline_from"), elem_id="book-outline-from")
        c.gen_seed = gr.Textbox("", label=L("book_outline_seed"), elem_id="book-outline-seed")
        c.gen_btn = gr.Button(L("book_outline_go"), elem_id="book-outline-go")
    with gr.Group(visible=False, elem_id="book-outline-stopped") as c.outline_stop:
        c.outline_reason = gr.Markdown(elem_id="book-outline-reason")
        with gr.Row():
            c.resume_btn = gr.Button(
                L("book_outline_resume"), variant="primary", elem_id="book-outline-resume"
            )
            c.restart_btn = gr.Button(L("book_outline_restart"), elem_id="book-outline-restart")
    c.outline_msg = gr.Markdown(elem_id="book-outline-msg")


def _editor(c: SimpleNamespace, lang: str) -> None:
    """The chapter's text, its count and 保存; the generation settings and buttons; the selection line."""
    L = partial(t, lang=lang)
    c.header = gr.Markdown(elem_id="book-header")
    c.text = gr.Textbox("", label=L("book_text"), lines=16, max_lines=40, elem_id="book-text")
    with gr.Row():
        c.chars = gr.Markdown(elem_id="book-chars")
        c.final = gr.Checkbox(False, label=L("book_final"), elem_id="book-final", scale=0)
        c.save_btn = gr.Button(L("book_save"), size="sm", elem_id="book-save", scale=0)
    c.save_msg = gr.Markdown(elem_id="book-save-msg")
    with gr.Row():
        c.target = gr.Textbox("", label=L("book_target"), elem_id="book-target")  # empty: the novel's
        c.n = gr.Slider(1, h.MAX_CANDIDATES, value=1, step=1, label=L("n"), elem_id="book-n")
        c.seed = gr.Textbox("", label=L("seed"), elem_id="book-seed")  # empty: random
        c.cont_chars = gr.Number(
            500, label=L("book_continue_chars"), precision=0, elem_id="book-continue-chars"
        )
    with gr.Row():
        c.write_btn = gr.Button(L("book_write"), variant="primary", elem_id="book-write")
        c.cont_btn = gr.Button(L("book_continue"), elem_id="book-continue")
        c.stop_btn = gr.Button(L("stop"), variant="stop", elem_id="book-stop")
    with gr.Row():
        c.instruction = gr.Textbox(
            label=L("book_instruction"),
            placeholder=L("book_instruction_ph"),
            elem_id="book-instruction",
            scale=3,
        )
        c.rewrite_btn = gr.Button(L("book_rewrite"), size="sm", elem_id="book-rewrite", scale=0)
        c.expand_btn = gr.Button(L("book_expand"), size="sm", elem_id="book-expand", scale=0)
        c.shorten_btn = gr.Button(L("book_shorten"), size="sm", elem_id="book-shorten", scale=0)
    c.sel_msg = gr.Markdown(L("book_no_selection"), elem_id="book-selection")
    c.progress = gr.Markdown(elem_id="book-progress")


def _candidates(c: SimpleNamespace, lang: str) -> None:
    """The candidates side by side, each with its 采用 button."""
    L = partial(t, lang=lang)
    c.cands, c.accepts, c.cand_cols = [], [], []
    with gr.Row():
        for i in range(h.MAX_CANDIDATES):  # as many shown as 候选数 (h.candidate_columns)
            with gr.Column(visible=i == 0) as col:
                c.cand_cols.append(col)
                c.cands.append(
                    gr.Textbox(
                        label=f"{L('candidate')} {i + 1}",
                        lines=8,
                        max_lines=20,
                        interactive=False,
                        elem_id=f"book-cand-{i + 1}",
                        buttons=["copy"],
                    )
                )
                c.accepts.append(
                    gr.Button(f"{L('book_accept')} {i + 1}", size="sm", elem_id=f"book-accept-{i + 1}")
                )


def _versions_and_summary(c: SimpleNamespace, lang: str) -> None:
    """版本 (table, diff, 恢复) and 本章摘要."""
    L = partial(t, lang=lang)
    with gr.Accordion(L("book_versions"), open=False, elem_id="book-versions-acc"):
        c.versions = gr.Dataframe(
            headers=h.headers("versions", lang), interactive=False, elem_id="book-versions", wrap=True
        )
        with gr.Row():
            c.diff_a = gr.Textbox("", label=L("book_diff_a"), elem_id="book-diff-a")  # empty: the previous
            c.diff_b = gr.Textbox("", label=L("book_diff_b"), elem_id="book-diff-b")  # empty: the current
            c.diff_btn = gr.Button(L("book_diff"), elem_id="book-diff-btn")
            c.revert_btn = gr.Button(L("book_revert"), elem_id="book-revert")
        c.diff = gr.HTML(elem_id="book-diff")
    with gr.Accordion(L("book_summary"), open=False, elem_id="book-summary-acc"):
        c.summary = gr.Textbox(label=L("book_summary"), lines=3, elem_id="book-summary")
        c.summary_btn = gr.Button(L("book_summary_save"), size="sm", elem_id="book-summary-save")
        c.summarize_btn = gr.Button(L("book_summarize"), size="sm", elem_id="book-summarize")


def _inspector(c: SimpleNamespace, lang: str) -> None:
    """上下文检查: the account of the next request and its prompt."""
    L = partial(t, lang=lang)
    with gr.Accordion(L("inspector"), open=False, elem_id="book-inspector-acc"):
        c.inspect_btn = gr.Button(L("book_inspect"), size="sm", elem_id="book-inspect")
        c.inspect_summary = gr.Markdown(elem_id="book-inspect-summary")
        c.inspector = gr.Dataframe(
            headers=h.headers("inspector", lang),
            interactive=False,
            wrap=True,
            elem_id="book-inspector",
        )
        c.prompt = gr.Textbox(
            label=L("book_prompt"), lines=6, max_lines=20, interactive=False, elem_id="book-prompt"
        )


def _review_panel(c: SimpleNamespace, lang: str) -> None:
    """待审记忆: the proposals, one's fields and evidence, 通过/拒绝."""
    L = partial(t, lang=lang)
    with gr.Accordion(L("book_review"), open=False, elem_id="book-review-acc") as c.review_acc:
        with gr.Row():
            c.extract_btn = gr.Button(L("book_extract"), size="sm", elem_id="book-extract")
            c.approve_all_btn = gr.Button(L("book_approve_all"), size="sm", elem_id="book-approve-all")
            c.reject_all_btn = gr.Button(L("book_reject_all"), size="sm", elem_id="book-reject-all")
        c.review = gr.Dataframe(
            headers=h.headers("review", lang), interactive=False, wrap=True, elem_id="book-review"
        )
        c.review_id = gr.Textbox(visible=False, elem_id="book-review-id")  # the picked proposal (no id shown)
        with gr.Group(elem_id="book-review-form"):  # the fields of the picked proposal's kind, in words
            c.review_form = [
                gr.Textbox(
                    label=L(f"book_rf_{name}"),
                    visible=False,
                    lines=3 if name == "text" else 1,
                    elem_id=f"book-review-f-{name}",
                )
                for name in h.REVIEW_FIELDS
            ]
        c.evidence = gr.HTML(elem_id="book-evidence")
        with gr.Row():
            c.approve_btn = gr.Button(L("book_approve"), variant="primary", size="sm", elem_id="book-approve")
            c.reject_btn = gr.Button(L("book_reject"), variant="stop", size="sm", elem_id="book-reject")
        c.review_msg = gr.Markdown(elem_id="book-review-msg")


def _check_and_threads(c: SimpleNamespace, lang: str) -> None:
    """一致性检查 and 伏笔 (the threads)."""
    L = partial(t, lang=lang)
    with gr.Accordion(L("book_check"), open=False, elem_id="book-check-acc"):
        c.check_btn = gr.Button(L("book_check_go"), size="sm", elem_id="book-check")
        c.findings = gr.Dataframe(
            headers=h.headers("findings", lang), interactive=False, wrap=True, elem_id="book-findings"
        )
    with gr.Accordion(L("book_threads"), open=False, elem_id="book-threads-acc"):
        c.threads_btn = gr.Button(L("book_threads_refresh"), size="sm", elem_id="book-threads-refresh")
        c.threads = gr.Dataframe(
            headers=h.headers("threads", lang), interactive=False, wrap=True, elem_id="book-threads"
        )


def _export_panel(c: SimpleNamespace, lang: str) -> None:
    """导出: the book as txt, md, epub or docx, optionally converted 简↔繁."""
    L = partial(t, lang=lang)
    with gr.Accordion(L("book_export"), open=False, elem_id="book-export-acc"):
        with gr.Row():
            c.exp_fmt = gr.Radio(
                [("TXT", "txt"), ("Markdown", "md"), ("EPUB", "epub"), ("DOCX", "docx")],
                value="epub",
                label=L("book_export_format"),
                elem_id="book-export-format",
            )
            c.exp_conv = gr.Radio(
                [
                    (L("book_export_asis"), ""),
                    (L("book_conv_s2t"), "s2t"),
                    (L("book_conv_t2s"), "t2s"),
                ],
                value="",
                label=L("book_export_convert"),
                elem_id="book-export-convert",
            )
            c.exp_btn = gr.Button(L("book_export_go"), elem_id="book-export-go")
        c.exp_file = gr.File(label=L("book_export_file"), interactive=False, elem_id="book-export-file")


# ----------------------------------------------------------------------------- wiring
def _row_number(rows: Any, evt: gr.SelectData) -> Any:
    """A click in the outline (or versions) table: the number in the row's first cell."""
    return h.row_number(getattr(evt, "row_value", None))


def _wire_novel(c: SimpleNamespace, services: Any, lang: str) -> None:
    """新建小说, picking a novel, picking a chapter (picker or outline row)."""
    novel_outputs = [
        c.card,
        c.outline,
        c.chapter,
        *_chapter_view(c),
        c.review,
        c.review_acc,
        c.threads,
        c.adapter,
        c.last,
        *_card_form(c),
        *_outline_state(c),
    ]
    c.create_btn.click(
        _guard(partial(h.on_create, services, lang)),
        [
            c.new_title,
            c.new_slug,
            c.new_genre,
            c.new_style,
            c.new_premise,
            c.new_chars,
            c.new_adapter,
            c.last,
            c.new_author,
            c.new_pov,
        ],
        [c.novel, c.new_acc],
        **PRIVATE,
    )
    c.novel.change(
        _guard(partial(h.on_show_novel, services, lang)), [c.novel, c.last], novel_outputs, **PRIVATE
    )
    c.chapter.change(
        _guard(partial(h.on_pick_chapter, services, lang)),
        [c.novel, c.chapter, c.last],
        [*_chapter_view(c), c.last],
        **PRIVATE,
    )
    c.outline.select(_row_number, c.outline, c.chapter, **PRIVATE)
    c.card_save.click(
        _guard(partial(h.on_save_card, services, lang)),
        [c.novel, *_card_form(c)],
        [c.card, c.card_msg, *_card_form(c), c.novel],
        **PRIVATE,
    )
    # .input: only the writer's click (a chapter opened sets the value without marking anything)
    c.final.input(
        _guard(partial(h.on_mark_final, services, lang)),
        [c.novel, c.chapter, c.final],
        [c.final, c.header, c.outline, c.save_msg],
        **PRIVATE,
    ).then(_guard(partial(h.on_final_state, services, lang)), [c.novel, c.chapter], c.final, **PRIVATE)


def _wire_outline(c: SimpleNamespace, services: Any, lang: str) -> None:
    """添加章节, 改标题/要点, 上移/下移, 删除, 生成大纲."""
    edited = [c.outline, c.chapter, c.outline_msg]
    c.add_btn.click(
        _guard(partial(h.on_add_chapter, services, lang)),
        [c.novel, c.plan_title, c.plan_synopsis],
        edited,
        **PRIVATE,
    )
    c.rename_btn.click(
        _guard(partial(h.on_rename, services, lang)),
        [c.novel, c.chapter, c.plan_title, c.plan_synopsis],
        [c.outline, c.outline_msg, *_chapter_view(c)],
        **PRIVATE,
    )
    c.up_btn.click(_guard(partial(h.on_move, services, lang, -1)), [c.novel, c.chapter], edited, **PRIVATE)
    c.down_btn.click(_guard(partial(h.on_move, services, lang, 1)), [c.novel, c.chapter], edited, **PRIVATE)
    c.del_btn.click(_guard(partial(h.on_delete, services, lang)), [c.novel, c.chapter], edited, **PRIVATE)
    ran = [c.outline, c.outline_msg, c.chapter]
    after = _guard(partial(h.on_outline_after, services, lang))
    for btn, fn, inputs in (
        (c.gen_btn, h.on_generate_outline, [c.novel, c.gen_count, c.gen_from, c.gen_seed]),
        (c.resume_btn, h.on_resume_outline, [c.novel, c.gen_seed]),
        (c.restart_btn, h.on_restart_outline, [c.novel, c.gen_count, c.gen_from, c.gen_seed]),
    ):
        # after the run, failed or not: the outline saved so far, 继续/重新开始 with the reason, and the
        # run's outputs re-set (no error badge outlives its error).  Gradio 6.31's page runs a .then
        # only after a success (it dispatches just the .failure listeners after an error): both, then.
        run = btn.click(
            _guard(partial(fn, services, lang)), inputs, ran, concurrency_id="generate", **PRIVATE
        )
        run.success(after, c.novel, [*ran, *_outline_state(c)], **PRIVATE)
        run.failure(after, c.novel, [*ran, *_outline_state(c)], **PRIVATE)


def _wire_editor(c: SimpleNamespace, services: Any, lang: str) -> None:
    """保存 (and on leaving the editor), the live count, the selection."""
    save = _guard(partial(h.on_save, services, lang))
    saved = [c.save_msg, c.versions, c.outline, c.card]
    c.text.blur(save, [c.novel, c.chapter, c.text], saved, show_progress="hidden", **PRIVATE)
    c.save_btn.click(save, [c.novel, c.chapter, c.text], saved, **PRIVATE)
    c.text.input(
        None,
        c.text,
        c.chars,
        # the live count, in the words of h.chars_label
        js=f"(v) => {json.dumps(t('book_chars_label', lang))}"
        ".replace('{n}', [...(v || '').replace(/\\s/g, '')].length)",
        **PRIVATE,
    )

    def on_select(value: str | None, evt: gr.SelectData):
        return h.on_select_text(lang, value, evt.index)

    c.text.select(on_select, c.text, [c.sel_state, c.sel_msg], show_progress="hidden", **PRIVATE)


def _wire_generation(c: SimpleNamespace, services: Any, lang: str, concurrency: int) -> None:
    """生成本章, 续写, 改写/扩写/缩写 (streamed into the candidates), 停止, 采用."""
    gen_inputs = [
        c.novel,
        c.chapter,
        c.text,
        c.n,
        c.target,
        c.cont_chars,
        c.seed,
        c.instruction,
        c.sel_state,
        c.memory_on,
        c.adapter,
    ]
    refresh = _guard(partial(h.on_refresh, services, lang))
    refresh_outputs = [*_chapter_view(c), c.outline, c.card]
    events = []
    for btn, action in (
        (c.write_btn, "chapter"),
        (c.cont_btn, "continue"),
        (c.rewrite_btn, "rewrite"),
        (c.expand_btn, "expand"),
        (c.shorten_btn, "shorten"),
    ):
        ev = btn.click(
            _guard(partial(h.on_generate, services, lang, action)),
            gen_inputs,
            [*c.cands, c.progress, c.run_state],
            concurrency_limit=concurrency,
            concurrency_id="generate",
            **PRIVATE,
        )
        events.append(ev)
        ev.then(refresh, [c.novel, c.chapter], refresh_outputs, **PRIVATE)
    c.n.change(candidate_columns, c.n, c.cand_cols, **PRIVATE)
    c.stop_btn.click(None, cancels=events, **PRIVATE).then(
        refresh, [c.novel, c.chapter], refresh_outputs, **PRIVATE
    )
    for i, btn in enumerate(c.accepts):
        btn.click(
            _guard(partial(h.on_accept, services, lang, i)),
            [c.novel, c.run_state, c.cands[i]],
            [*_chapter_view(c), c.outline, c.save_msg, c.card],
            **PRIVATE,
        )


def _wire_versions(c: SimpleNamespace, services: Any, lang: str) -> None:
    """Versions (diff, 恢复), 本章摘要 (saved, or written by the model), 上下文检查."""
    c.versions.select(_row_number, c.versions, c.diff_a, **PRIVATE)
    c.diff_btn.click(
        _guard(partial(h.on_diff, services, lang)),
        [c.novel, c.chapter, c.diff_a, c.diff_b],
        c.diff,
        **PRIVATE,
    )
    c.revert_btn.click(
        _guard(partial(h.on_revert, services, lang)),
        [c.novel, c.chapter, c.diff_a],
        [*_chapter_view(c), c.save_msg],
        **PRIVATE,
    )
    c.summary_btn.click(
        _guard(partial(h.on_save_summary, services, lang)),
        [c.novel, c.chapter, c.summary],
        c.save_msg,
        **PRIVATE,
    )
    c.summarize_btn.click(
        _guard(partial(h.on_summarize, services, lang)),
        [c.novel, c.chapter],
        [c.summary, c.save_msg],
        concurrency_id="generate",
        **PRIVATE,
    )
    c.inspect_btn.click(
        _guard(partial(h.on_inspect, services, lang)),
        [c.novel, c.chapter, c.memory_on, c.target, c.cont_chars],
        [c.inspect_summary, c.inspector, c.prompt],
        **PRIVATE,
    )


def _wire_review(c: SimpleNamespace, services: Any, lang: str) -> None:
    """The review queue (pick, 通过, 拒绝, all, 提取记忆), 一致性检查, 伏笔."""

    def pick_proposal(slug: str | None, rows: Any, evt: gr.SelectData):
        return h.on_pick_proposal(services, lang, slug, evt.row_value)

    detail = [c.review_id, *c.review_form, c.evidence]
    c.review.select(_guard(pick_proposal), [c.novel, c.review], detail, **PRIVATE)
    c.approve_btn.click(
        _guard(partial(h.on_approve, services, lang)),
        [c.novel, c.review_id, *c.review_form],
        [*_review_outputs(c), *detail],
        **PRIVATE,
    )
    c.reject_btn.click(
        _guard(partial(h.on_reject, services, lang)),
        [c.novel, c.review_id],
        [*_review_outputs(c), *detail],
        **PRIVATE,
    )
    for btn, approve_them in ((c.approve_all_btn, True), (c.reject_all_btn, False)):
        btn.click(
            _guard(partial(h.on_review_all, services, lang, approve_them)),
            c.novel,
            _review_outputs(c),
            **PRIVATE,
        )
    c.extract_btn.click(
        _guard(partial(h.on_extract, services, lang)),
        [c.novel, c.chapter],
        _review_outputs(c),
        concurrency_id="generate",
        **PRIVATE,
    )
    c.check_btn.click(
        _guard(partial(h.on_check, services, lang)), [c.novel, c.chapter], c.findings, **PRIVATE
    )
    c.threads_btn.click(_guard(partial(h.on_threads, services, lang)), c.novel, c.threads, **PRIVATE)


def _wire_books(c: SimpleNamespace, services: Any, lang: str) -> None:
    """导入 and 导出."""
    c.imp_btn.click(
        _guard(partial(h.on_import, services, lang)),
        [c.imp_file, c.imp_slug, c.imp_mode],
        [c.imp_report, c.imp_table, c.novel],
        **PRIVATE,
    )
    c.exp_btn.click(
        _guard(partial(h.on_export, services, lang)), [c.novel, c.exp_fmt, c.exp_conv], c.exp_file, **PRIVATE
    )
