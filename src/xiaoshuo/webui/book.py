"""The 创作 tab: the book — novel picker, outline tree, chapter editor, candidates, versions, review.

Layout and wiring only: every handler is a function of :mod:`xiaoshuo.webui.book_handlers` over
``Services``; this module turns their plain values into component updates and ``XiaoshuoError`` into
``gr.Error``.  Per-session state lives in ``gr.State`` (the last generation's candidates, the text
selection) and the browser's own storage (``gr.BrowserState``: the novel and chapter a reload reopens).
Panels whose backend is not installed (books in/out, outline generation) are left out.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import gradio as gr

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui import book_handlers as h
from xiaoshuo.webui.errors import as_gradio_error as _error
from xiaoshuo.webui.errors import guard as _guard
from xiaoshuo.webui.locale import t


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def build_book_tab(services: Any, lang: str, concurrency: int = 8) -> dict[str, Any]:
    """The 创作 tab's components (call inside ``gr.Tab``); returns the ones app.py wires further."""
    L = lambda key: t(key, lang)  # noqa: E731
    none = L("none")
    last = gr.BrowserState({"novel": None, "chapter": None}, storage_key="xiaoshuo-book")
    run_state = gr.State({})  # the last generation of this page: chapter, kind, versions of candidates
    sel_state = gr.State({})  # the selected passage of the editor: {"start", "end"}

    with gr.Row(equal_height=True):
        novel = gr.Dropdown([], value=None, label=L("book_novel"), elem_id="book-novel", scale=3)
        adapter = gr.Dropdown([none], value=None, label=L("adapter"), elem_id="book-adapter", scale=2)
        memory_on = gr.Checkbox(True, label=L("memory_on"), elem_id="book-memory-on", scale=1)
    card = gr.Markdown(elem_id="book-card")
    with gr.Accordion(L("book_new"), open=False, elem_id="book-new-acc") as new_acc:
        with gr.Row():
            new_title = gr.Textbox(label=L("book_title"), elem_id="book-new-title")
            new_slug = gr.Textbox(
                label=L("book_slug"), placeholder=L("book_slug_ph"), elem_id="book-new-slug"
            )
            new_genre = gr.Textbox(label=L("book_genre"), elem_id="book-new-genre")
            new_style = gr.Textbox(label=L("book_style"), elem_id="book-new-style")
        new_premise = gr.Textbox(label=L("book_premise"), lines=2, elem_id="book-new-premise")
        with gr.Row():
            new_chars = gr.Number(3000, label=L("book_chapter_chars"), precision=0, elem_id="book-new-chars")
            new_adapter = gr.Dropdown(
                [none], value=none, label=L("book_default_adapter"), elem_id="book-new-adapter"
            )
            create_btn = gr.Button(L("book_create"), variant="primary", elem_id="book-create")
    books = has_module("xiaoshuo.writing.importing")
    if books:
        with gr.Accordion(L("book_import"), open=False, elem_id="book-import-acc"):
            with gr.Row():
                imp_file = gr.File(label=L("book_import_file"), elem_id="book-import-file")
                imp_slug = gr.Textbox(
                    label=L("book_slug"), placeholder=L("book_import_slug_ph"), elem_id="book-import-slug"
                )
                imp_mode = gr.Radio(
                    [
                        (L("book_import_new"), "new"),
                        (L("book_import_append"), "append"),
                        (L("book_import_replace"), "replace"),
                    ],
                    value="new",
                    label=L("book_import_mode"),
                    elem_id="book-import-mode",
                )
            imp_btn = gr.Button(L("book_import_go"), elem_id="book-import-go")
            imp_report = gr.JSON(label=L("book_import_report"), elem_id="book-import-report")

    with gr.Row():
        with gr.Column(scale=2, min_width=320):
            outline = gr.Dataframe(
                headers=h.headers("outline", lang),
                interactive=False,
                elem_id="book-outline",
                label=L("book_outline"),
                wrap=True,
                max_height=420,
            )
            chapter = gr.Number(None, label=L("book_chapter"), precision=0, elem_id="book-chapter")
            plan_title = gr.Textbox(label=L("book_plan_title"), elem_id="book-plan-title")
            plan_synopsis = gr.Textbox(label=L("book_plan_synopsis"), lines=2, elem_id="book-plan-synopsis")
            with gr.Row():
                add_btn = gr.Button(L("book_add_chapter"), size="sm", elem_id="book-add-chapter")
                rename_btn = gr.Button(L("book_rename"), size="sm", elem_id="book-rename")
            with gr.Row():
                up_btn = gr.Button(L("book_up"), size="sm", elem_id="book-up")
                down_btn = gr.Button(L("book_down"), size="sm", elem_id="book-down")
                del_btn = gr.Button(
                    L("book_delete_chapter"), size="sm", variant="stop", elem_id="book-delete-chapter"
                )
            planning = has_module("xiaoshuo.writing.planning")
            if planning:
                with gr.Accordion(L("book_outline_gen"), open=False, elem_id="book-outline-gen-acc"):
                    gen_count = gr.Number(
                        6, label=L("book_outline_count"), precision=0, elem_id="book-outline-count"
                    )
                    gen_from = gr.Number(
                        None, label=L("book_outline_from"), precision=0, elem_id="book-outline-from"
                    )
                    gen_seed = gr.Number(
                        -1, label=L("book_outline_seed"), precision=0, elem_id="book-outline-seed"
                    )
                    gen_btn = gr.Button(L("book_outline_go"), elem_id="book-outline-go")
            outline_msg = gr.Markdown(elem_id="book-outline-msg")
        with gr.Column(scale=5):
            header = gr.Markdown(elem_id="book-header")
            text = gr.Textbox("", label=L("book_text"), lines=16, max_lines=40, elem_id="book-text")
            with gr.Row():
                chars = gr.Markdown(elem_id="book-chars")
                save_btn = gr.Button(L("book_save"), size="sm", elem_id="book-save", scale=0)
            save_msg = gr.Markdown(elem_id="book-save-msg")
            with gr.Row():
                target = gr.Number(None, label=L("book_target"), precision=0, elem_id="book-target")
                n = gr.Slider(1, h.MAX_CANDIDATES, value=1, step=1, label=L("n"), elem_id="book-n")
                seed = gr.Number(-1, label=L("seed"), precision=0, elem_id="book-seed")
                cont_chars = gr.Number(
                    500, label=L("book_continue_chars"), precision=0, elem_id="book-continue-chars"
                )
            with gr.Row():
                write_btn = gr.Button(L("book_write"), variant="primary", elem_id="book-write")
                cont_btn = gr.Button(L("book_continue"), elem_id="book-continue")
                stop_btn = gr.Button(L("stop"), variant="stop", elem_id="book-stop")
            with gr.Row():
                instruction = gr.Textbox(
                    label=L("book_instruction"),
                    placeholder=L("book_instruction_ph"),
                    elem_id="book-instruction",
                    scale=3,
                )
                rewrite_btn = gr.Button(L("book_rewrite"), size="sm", elem_id="book-rewrite", scale=0)
                expand_btn = gr.Button(L("book_expand"), size="sm", elem_id="book-expand", scale=0)
                shorten_btn = gr.Button(L("book_shorten"), size="sm", elem_id="book-shorten", scale=0)
            sel_msg = gr.Markdown(L("book_no_selection"), elem_id="book-selection")
            progress = gr.Markdown(elem_id="book-progress")
            cands, accepts = [], []
            with gr.Row():
                for i in range(h.MAX_CANDIDATES):
                    with gr.Column():
                        cands.append(
                            gr.Textbox(
                                label=f"{L('candidate')} {i + 1}",
                                lines=8,
                                max_lines=20,
                                interactive=False,
                                elem_id=f"book-cand-{i + 1}",
                                buttons=["copy"],
                            )
                        )
                        accepts.append(
                            gr.Button(
                                f"{L('book_accept')} {i + 1}", size="sm", elem_id=f"book-accept-{i + 1}"
                            )
                        )
            with gr.Accordion(L("book_versions"), open=False, elem_id="book-versions-acc"):
                versions = gr.Dataframe(
                    headers=h.headers("versions", lang), interactive=False, elem_id="book-versions", wrap=True
                )
                with gr.Row():
                    diff_a = gr.Number(None, label=L("book_diff_a"), precision=0, elem_id="book-diff-a")
                    diff_b = gr.Number(None, label=L("book_diff_b"), precision=0, elem_id="book-diff-b")
                    diff_btn = gr.Button(L("book_diff"), elem_id="book-diff-btn")
                    revert_btn = gr.Button(L("book_revert"), elem_id="book-revert")
                diff = gr.HTML(elem_id="book-diff")
            with gr.Accordion(L("book_summary"), open=False, elem_id="book-summary-acc"):
                summary = gr.Textbox(label=L("book_summary"), lines=3, elem_id="book-summary")
                summary_btn = gr.Button(L("book_summary_save"), size="sm", elem_id="book-summary-save")
                if planning:
                    summarize_btn = gr.Button(L("book_summarize"), size="sm", elem_id="book-summarize")
            with gr.Accordion(L("inspector"), open=False, elem_id="book-inspector-acc"):
                inspect_btn = gr.Button(L("book_inspect"), size="sm", elem_id="book-inspect")
                inspect_summary = gr.Markdown(elem_id="book-inspect-summary")
                inspector = gr.Dataframe(
                    headers=h.headers("inspector", lang),
                    interactive=False,
                    wrap=True,
                    elem_id="book-inspector",
                )
                prompt = gr.Textbox(
                    label=L("book_prompt"), lines=6, max_lines=20, interactive=False, elem_id="book-prompt"
                )
            with gr.Accordion(L("book_review"), open=False, elem_id="book-review-acc") as review_acc:
                with gr.Row():
                    extract_btn = gr.Button(L("book_extract"), size="sm", elem_id="book-extract")
                    approve_all_btn = gr.Button(L("book_approve_all"), size="sm", elem_id="book-approve-all")
                    reject_all_btn = gr.Button(L("book_reject_all"), size="sm", elem_id="book-reject-all")
                review = gr.Dataframe(
                    headers=h.headers("review", lang), interactive=False, wrap=True, elem_id="book-review"
                )
                review_id = gr.Textbox(label=L("book_review_id"), elem_id="book-review-id")
                review_edits = gr.Textbox(label=L("book_review_edits"), lines=4, elem_id="book-review-edits")
                evidence = gr.HTML(elem_id="book-evidence")
                with gr.Row():
                    approve_btn = gr.Button(
                        L("book_approve"), variant="primary", size="sm", elem_id="book-approve"
                    )
                    reject_btn = gr.Button(L("book_reject"), variant="stop", size="sm", elem_id="book-reject")
                review_msg = gr.Markdown(elem_id="book-review-msg")
            with gr.Accordion(L("book_check"), open=False, elem_id="book-check-acc"):
                check_btn = gr.Button(L("book_check_go"), size="sm", elem_id="book-check")
                findings = gr.Dataframe(
                    headers=h.headers("findings", lang), interactive=False, wrap=True, elem_id="book-findings"
                )
            with gr.Accordion(L("book_threads"), open=False, elem_id="book-threads-acc"):
                threads_btn = gr.Button(L("book_threads_refresh"), size="sm", elem_id="book-threads-refresh")
                threads = gr.Dataframe(
                    headers=h.headers("threads", lang), interactive=False, wrap=True, elem_id="book-threads"
                )
            if books:
                with gr.Accordion(L("book_export"), open=False, elem_id="book-export-acc"):
                    with gr.Row():
                        exp_fmt = gr.Radio(
                            ["txt", "md", "epub", "docx"],
                            value="epub",
                            label=L("book_export_format"),
                            elem_id="book-export-format",
                        )
                        exp_conv = gr.Radio(
                            [
                                (L("book_export_asis"), ""),
                                (L("book_conv_s2t"), "s2t"),
                                (L("book_conv_t2s"), "t2s"),
                            ],
                            value="",
                            label=L("book_export_convert"),
                            elem_id="book-export-convert",
                        )
                        exp_btn = gr.Button(L("book_export_go"), elem_id="book-export-go")
                    exp_file = gr.File(
                        label=L("book_export_file"), interactive=False, elem_id="book-export-file"
                    )

    # ------------------------------------------------------------------ views
    def review_label(slug):
        count = h.pending_count(services, slug) if slug else 0
        return gr.Accordion(label=t("book_review_count", lang, count=count) if count else L("book_review"))

    def chapter_outputs(slug, number):
        view = h.chapter_view(services, slug, number, lang=lang)
        title, synopsis, plan_target = h.plan_fields(services, slug, number)
        tgt = plan_target or (open_card(slug).chapter_chars if slug else None)
        return [view.header, view.text, view.chars, view.summary, view.versions, title, synopsis, tgt]

    def open_card(slug):
        return h.open_novel(services, slug, lang=lang).card()

    chapter_view_outputs = [header, text, chars, summary, versions, plan_title, plan_synopsis, target]

    def show_novel(slug, saved):
        """Everything of a novel: card, outline, its chapter (the one last open), review, threads."""
        if not slug:
            blank = [gr.skip()] * 8
            return ["", [], None, *blank, [], review_label(None), [], gr.skip(), saved]
        novel_obj = h.open_novel(services, slug, lang=lang)
        rows = h.outline_rows(services, slug, lang=lang)
        numbers = [r[0] for r in rows]
        wanted = (saved or {}).get("chapter") if (saved or {}).get("novel") == slug else None
        number = wanted if wanted in numbers else (numbers[0] if numbers else None)
        view = chapter_outputs(slug, number)
        default = novel_obj.card().adapter or none
        saved = {"novel": slug, "chapter": number}
        return [
            h.card_markdown(services, slug, lang=lang),
            rows,
            number,
            *view,
            h.review_rows(services, slug, lang=lang),
            review_label(slug),
            h.thread_rows(services, slug, lang=lang) if _store_ok() else [],
            gr.update(value=default),
            saved,
        ]

    def _store_ok() -> bool:
        try:
            services.store()
            return True
        except XiaoshuoError:
            return False

    novel_outputs = [
        card,
        outline,
        chapter,
        *chapter_view_outputs,
        review,
        review_acc,
        threads,
        adapter,
        last,
    ]

    def on_load(saved):
        """Every page load: the novels on disk, and the novel (and chapter) this browser had open."""
        choices = h.novel_choices(services, lang)
        slugs = [c[1] for c in choices]
        slug = (saved or {}).get("novel")
        slug = slug if slug in slugs else (slugs[0] if slugs else None)
        adapters = [none, *services.adapters()]
        return (
            gr.update(choices=choices, value=slug),
            gr.update(choices=adapters),
            gr.update(choices=adapters),
        )

    def pick_chapter(slug, number, saved):
        if not slug or not number:
            return [*chapter_outputs(None, None), saved]
        return [*chapter_outputs(slug, int(number)), {"novel": slug, "chapter": int(number)}]

    def select_row(rows, evt: gr.SelectData):
        try:
            return int(evt.row_value[0])
        except (TypeError, ValueError, IndexError, AttributeError):
            return gr.skip()

    # ------------------------------------------------------------------ novel
    def do_create(title, slug, genre, style, premise, chapter_chars, default_adapter, saved):
        made = h.create_novel(
            services,
            slug,
            title,
            genre=genre,
            premise=premise,
            style=style,
            chapter_chars=chapter_chars,
            adapter=default_adapter,
            lang=lang,
        )
        return gr.update(choices=h.novel_choices(services, lang), value=made), gr.Accordion(open=False)

    create_btn.click(
        _guard(do_create),
        [new_title, new_slug, new_genre, new_style, new_premise, new_chars, new_adapter, last],
        [novel, new_acc],
        api_visibility="private",
    )
    novel.change(_guard(show_novel), [novel, last], novel_outputs, api_visibility="private")
    chapter.change(
        _guard(pick_chapter), [novel, chapter, last], [*chapter_view_outputs, last], api_visibility="private"
    )
    outline.select(select_row, outline, chapter, api_visibility="private")

    # ------------------------------------------------------------------ outline edits
    def outline_after(slug, number, message):
        return [h.outline_rows(services, slug, lang=lang), number, message]

    def do_add(slug, title, synopsis):
        num = h.add_chapter(services, slug, title, synopsis, lang=lang)
        return outline_after(slug, num, t("book_ok_chapter", lang, number=num))

    def do_rename(slug, number, title, synopsis):
        h.edit_chapter(services, slug, number, title, synopsis, lang=lang)
        return [
            h.outline_rows(services, slug, lang=lang),
            t("book_ok_chapter", lang, number=int(number)),
            *chapter_outputs(slug, int(number)),
        ]

    def do_move(delta):
        def move(slug, number):
            new = h.move_chapter(services, slug, number, delta, lang=lang)
            return outline_after(slug, new, t("book_ok_chapter", lang, number=new))

        return move

    def do_delete(slug, number):
        h.delete_chapter(services, slug, number, lang=lang)
        rows = h.outline_rows(services, slug, lang=lang)
        return outline_after(
            slug, rows[0][0] if rows else None, t("book_ok_deleted", lang, number=int(number))
        )

    add_btn.click(
        _guard(do_add),
        [novel, plan_title, plan_synopsis],
        [outline, chapter, outline_msg],
        api_visibility="private",
    )
    rename_btn.click(
        _guard(do_rename),
        [novel, chapter, plan_title, plan_synopsis],
        [outline, outline_msg, *chapter_view_outputs],
        api_visibility="private",
    )
    up_btn.click(
        _guard(do_move(-1)), [novel, chapter], [outline, chapter, outline_msg], api_visibility="private"
    )
    down_btn.click(
        _guard(do_move(1)), [novel, chapter], [outline, chapter, outline_msg], api_visibility="private"
    )
    del_btn.click(
        _guard(do_delete), [novel, chapter], [outline, chapter, outline_msg], api_visibility="private"
    )

    # ------------------------------------------------------------------ editor
    def do_save(slug, number, value):
        vid = h.save_text(services, slug, number, value, lang=lang)
        if vid is None:
            return gr.skip(), gr.skip(), gr.skip()
        return (
            f"✓ {L('book_saved_version')} {vid}",
            h.version_rows(services, slug, number, lang=lang),
            h.outline_rows(services, slug, lang=lang),
        )

    text.blur(
        _guard(do_save),
        [novel, chapter, text],
        [save_msg, versions, outline],
        api_visibility="private",
        show_progress="hidden",
    )
    save_btn.click(
        _guard(do_save), [novel, chapter, text], [save_msg, versions, outline], api_visibility="private"
    )
    text.input(
        None,
        text,
        chars,
        # the live count, in the words of h.chars_label
        js=f"(v) => {json.dumps(t('book_chars_label', lang))}"
        ".replace('{n}', [...(v || '').replace(/\\s/g, '')].length)",
        api_visibility="private",
    )

    def on_select(value, evt: gr.SelectData):
        sel = h.selection(value or "", evt.index)
        if not sel:
            return {}, L("book_no_selection")
        picked = (value or "")[sel["start"] : sel["end"]]
        shown = picked if len(picked) <= 30 else picked[:14] + "…" + picked[-14:]
        return sel, t(
            "book_selection_info", lang, start=sel["start"], end=sel["end"], count=len(picked), shown=shown
        )

    text.select(on_select, text, [sel_state, sel_msg], api_visibility="private", show_progress="hidden")

    # ------------------------------------------------------------------ generation
    def stream_for(action):
        async def run(slug, number, value, n_cands, tgt, cont, seed_v, instr, sel, mem, adapter_v):
            try:
                if action != "chapter" and value is not None:
                    # what the writer sees is what the page shows
                    h.save_text(services, slug, number, value, lang=lang)
                seed_i = None if seed_v is None or int(seed_v) < 0 else int(seed_v)
                warned = False
                async for u in h.write_stream(
                    services,
                    slug,
                    number,
                    action,
                    candidates=int(n_cands or 1),
                    target_chars=int(tgt) if tgt else None,
                    chars=int(cont) if cont and action == "continue" else None,
                    seed=seed_i,
                    sel=sel,
                    instruction=instr or "",
                    memory_on=bool(mem),
                    adapter=adapter_v,
                    lang=lang,
                ):
                    if u.warnings and not warned:
                        warned = True
                        for w in u.warnings:
                            gr.Warning(w)
                    yield [*u.texts, u.progress, u.session or gr.skip()]
            except (XiaoshuoError, OSError) as exc:
                raise _error(exc) from None

        return run

    gen_inputs = [
        novel,
        chapter,
        text,
        n,
        target,
        cont_chars,
        seed,
        instruction,
        sel_state,
        memory_on,
        adapter,
    ]
    gen_outputs = [*cands, progress, run_state]
    events = []
    refresh_outputs = [*chapter_view_outputs, outline]

    def refresh(slug, number):
        if not slug or not number:
            return [gr.skip()] * len(refresh_outputs)
        return [*chapter_outputs(slug, int(number)), h.outline_rows(services, slug, lang=lang)]

    for btn, action in (
        (write_btn, "chapter"),
        (cont_btn, "continue"),
        (rewrite_btn, "rewrite"),
        (expand_btn, "expand"),
        (shorten_btn, "shorten"),
    ):
        ev = btn.click(
            stream_for(action),
            gen_inputs,
            gen_outputs,
            api_visibility="private",
            concurrency_limit=concurrency,
            concurrency_id="generate",
        )
        events.append(ev)
        ev.then(_guard(refresh), [novel, chapter], refresh_outputs, api_visibility="private")
    stop_btn.click(None, cancels=events, api_visibility="private").then(
        _guard(refresh), [novel, chapter], refresh_outputs, api_visibility="private"
    )

    for i, btn in enumerate(accepts):

        def do_accept(slug, session, shown, i=i):
            vid = h.accept_candidate(services, slug, session, i, shown, lang=lang)
            number = int(session["chapter"])
            return [
                *chapter_outputs(slug, number),
                h.outline_rows(services, slug, lang=lang),
                f"✓ {L('book_accepted')} {vid}",
            ]

        btn.click(
            _guard(do_accept),
            [novel, run_state, cands[i]],
            [*chapter_view_outputs, outline, save_msg],
            api_visibility="private",
        )

    # ------------------------------------------------------------------ versions, summary
    def do_diff(slug, number, a, b):
        return h.diff_html(services, slug, number, a, b, lang=lang)

    def do_revert(slug, number, a):
        if not a:
            raise gr.Error(L("book_pick_version"))
        vid = h.revert(services, slug, number, a, lang=lang)
        return [*chapter_outputs(slug, int(number)), f"✓ {L('book_reverted')} {int(a)} → {vid}"]

    def version_pick(rows, evt: gr.SelectData):
        try:
            return int(evt.row_value[0])
        except (TypeError, ValueError, IndexError, AttributeError):
            return gr.skip()

    versions.select(version_pick, versions, diff_a, api_visibility="private")
    diff_btn.click(_guard(do_diff), [novel, chapter, diff_a, diff_b], diff, api_visibility="private")
    revert_btn.click(
        _guard(do_revert),
        [novel, chapter, diff_a],
        [*chapter_view_outputs, save_msg],
        api_visibility="private",
    )

    def do_summary(slug, number, value):
        h.save_summary(services, slug, number, value, lang=lang)
        return f"✓ {L('book_summary_saved')}"

    summary_btn.click(_guard(do_summary), [novel, chapter, summary], save_msg, api_visibility="private")

    # ------------------------------------------------------------------ inspector
    def do_inspect(slug, number, mem, tgt, cont):
        if not slug or not number:
            raise gr.Error(L("book_pick_chapter"))
        # the page's own 目标字数 / 续写字数: the preview is the request the next click sends
        sizes = {"target_chars": int(tgt) if tgt else None, "chars": int(cont) if cont else None}
        report = h.inspect(services, slug, number, memory_on=bool(mem), lang=lang, **sizes)
        head = report["summary"] + "".join(f"\n\n⚠ {w}" for w in report["warnings"])
        return head, report["rows"], report["prompt"]

    inspect_btn.click(
        _guard(do_inspect),
        [novel, chapter, memory_on, target, cont_chars],
        [inspect_summary, inspector, prompt],
        api_visibility="private",
    )

    # ------------------------------------------------------------------ review queue
    def review_after(slug, message):
        return [
            h.review_rows(services, slug, lang=lang),
            review_label(slug),
            message,
            h.thread_rows(services, slug, lang=lang),
        ]

    review_outputs = [review, review_acc, review_msg, threads]

    def pick_proposal(slug, rows, evt: gr.SelectData):
        pid = str(evt.row_value[0])
        fields, marked = h.proposal_detail(services, slug, pid, lang=lang)
        return pid, fields, marked

    review.select(
        _guard(pick_proposal), [novel, review], [review_id, review_edits, evidence], api_visibility="private"
    )

    def do_approve(slug, pid, edits):
        ids = h.approve(services, slug, pid, edits, lang=lang)
        return [*review_after(slug, f"✓ {L('book_approved')} {pid} → {len(ids)}"), "", "", ""]

    def do_reject(slug, pid):
        h.reject(services, slug, pid, lang=lang)
        return [*review_after(slug, f"✓ {L('book_rejected')} {pid}"), "", "", ""]

    def do_all(approve_them):
        def run(slug):
            count = (
                h.approve_all(services, slug, lang=lang)
                if approve_them
                else h.reject_all(services, slug, lang=lang)
            )
            return review_after(slug, f"✓ {count}")

        return run

    async def do_extract(slug, number):
        try:
            if not slug or not number:
                raise h.WritingError(L("book_pick_chapter"))
            r = await h.extract(services, slug, int(number), lang=lang)
        except (XiaoshuoError, OSError) as exc:
            raise _error(exc) from None
        msg = f"✓ {r['proposals']} {L('book_proposals')}" + (f" ✗ {r['error']}" if r["error"] else "")
        return review_after(slug, msg)

    clear = [review_id, review_edits, evidence]
    approve_btn.click(
        _guard(do_approve),
        [novel, review_id, review_edits],
        [*review_outputs, *clear],
        api_visibility="private",
    )
    reject_btn.click(
        _guard(do_reject), [novel, review_id], [*review_outputs, *clear], api_visibility="private"
    )
    approve_all_btn.click(_guard(do_all(True)), novel, review_outputs, api_visibility="private")
    reject_all_btn.click(_guard(do_all(False)), novel, review_outputs, api_visibility="private")
    extract_btn.click(
        do_extract, [novel, chapter], review_outputs, api_visibility="private", concurrency_id="generate"
    )

    def do_check(slug, number):
        if not slug or not number:
            raise gr.Error(L("book_pick_chapter"))
        rows = h.check_rows(services, slug, number, lang=lang)
        if not rows:
            gr.Info(L("book_check_clean"))
        return rows

    check_btn.click(_guard(do_check), [novel, chapter], findings, api_visibility="private")
    threads_btn.click(
        _guard(lambda slug: h.thread_rows(services, slug, lang=lang)),
        novel,
        threads,
        api_visibility="private",
    )

    # ------------------------------------------------------------------ books in/out, outline generation
    if books:

        def do_import(file, slug, mode):
            if not file:
                raise gr.Error(L("book_import_nofile"))
            report, made = h.import_file(services, file, slug, mode)
            return report, gr.update(choices=h.novel_choices(services, lang), value=made)

        imp_btn.click(
            _guard(do_import), [imp_file, imp_slug, imp_mode], [imp_report, novel], api_visibility="private"
        )

        def do_export(slug, fmt, conv):
            return h.export_file(services, slug, fmt, conv or None, lang=lang)

        exp_btn.click(_guard(do_export), [novel, exp_fmt, exp_conv], exp_file, api_visibility="private")
    if planning:

        async def do_generate_outline(slug, count, start, seed_v, progress=gr.Progress()):  # noqa: B008
            try:
                result = await h.generate_outline(
                    services,
                    slug,
                    int(count or 0),
                    int(start) if start else None,
                    seed=None if seed_v is None or int(seed_v) < 0 else int(seed_v),
                    progress=lambda done, total: progress(done / max(total, 1), desc=f"{done}/{total}"),
                    lang=lang,
                )
            except (XiaoshuoError, OSError) as exc:
                raise _error(exc) from None
            rows = h.outline_rows(services, slug, lang=lang)
            return (
                rows,
                f"✓ {len(result['generated'])} {L('book_chapters_planned')}",
                rows[0][0] if rows else None,
            )

        gen_btn.click(
            do_generate_outline,
            [novel, gen_count, gen_from, gen_seed],
            [outline, outline_msg, chapter],
            api_visibility="private",
            concurrency_id="generate",
        )

        async def do_summarize(slug, number):
            try:
                value = await h.summarize(services, slug, int(number), lang=lang)
            except (XiaoshuoError, OSError) as exc:
                raise _error(exc) from None
            return value, f"✓ {L('book_summary_saved')}"

        summarize_btn.click(
            do_summarize,
            [novel, chapter],
            [summary, save_msg],
            api_visibility="private",
            concurrency_id="generate",
        )

    return {
        "novel": novel,
        "adapter": adapter,
        "new_adapter": new_adapter,
        "on_load": on_load,
        "load_inputs": [last],
        "load_outputs": [novel, adapter, new_adapter],
    }
