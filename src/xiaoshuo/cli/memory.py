"""``xiaoshuo memory …``: thin typer commands over :mod:`xiaoshuo.memory`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from xiaoshuo.cli.options import BackendOpt, JsonOpt, ModelOpt, NovelOpt, OptionalNovelOpt, novels
from xiaoshuo.cli.state import cli_state

app = typer.Typer(
    name="memory",
    help="记忆 / Story memory: 人物, 情节, 环境设定, 重要对话 (characters, plot, settings, dialogues).",
    no_args_is_help=True,
)
NameOpt = Annotated[str | None, typer.Option("--name", help="Name (character/setting) or title.")]
AliasOpt = Annotated[
    list[str] | None, typer.Option("--alias", help="Alias (repeatable; edit replaces them).")
]
TraitOpt = Annotated[list[str] | None, typer.Option("--trait", help="Character trait (repeatable).")]
RelationOpt = Annotated[list[str] | None, typer.Option("--relation", help="人物=关系 (repeatable).")]
StateOpt = Annotated[str | None, typer.Option("--state", help="Character's current state.")]
ChapterOpt = Annotated[int | None, typer.Option("--chapter")]
ChapterEndOpt = Annotated[int | None, typer.Option("--chapter-end")]
TimeOpt = Annotated[str | None, typer.Option("--time", help="Time in the story.")]
CharacterOpt = Annotated[
    list[str] | None, typer.Option("--character", help="Involved character / speaker (repeatable).")
]
WhyOpt = Annotated[str | None, typer.Option("--why", help="Dialogue: why it matters.")]
ImportanceOpt = Annotated[int | None, typer.Option("--importance", help="1-5 (3).")]
PinOpt = Annotated[bool | None, typer.Option("--pin/--no-pin", help="Always include in prompts.")]
ThreadOpt = Annotated[
    str | None, typer.Option("--thread", help="Plot: open | closed thread (伏笔); '' = not a thread.")
]
PayoffOpt = Annotated[
    int | None, typer.Option("--payoff-chapter", help="Plot thread: the chapter planned to pay it off.")
]


def _store(ctx: typer.Context):
    from xiaoshuo.memory import MemoryStore

    return MemoryStore(cli_state(ctx).settings())


def _print_entries(entries, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in entries], ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from xiaoshuo.memory import KIND_LABELS

    table = Table(title=f"记忆 Memory ({len(entries)})")
    for col in ("id", "kind", "name", "text", "imp", "pin"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(
            e.id[:12], KIND_LABELS[e.kind], e.name, e.text[:60], str(e.importance), "📌" if e.pinned else ""
        )
    Console().print(table)


def _entry_fields(
    kind,
    name,
    alias,
    text,
    traits,
    relation,
    state,
    chapter,
    chapter_end,
    time_in_story,
    character,
    why,
    importance,
    pinned,
) -> dict:
    relationships = {}
    for item in relation or []:
        who, sep, what = item.partition("=")
        if not sep:
            from xiaoshuo.memory import StoryMemoryError

            raise StoryMemoryError(
                "无法解析 --relation (cannot parse --relation)", expected="人物=关系", received=item
            )
        relationships[who.strip()] = what.strip()
    fields = {
        "kind": kind,
        "name": name,
        "aliases": alias,
        "text": text,
        "traits": traits,
        "relationships": relationships or None,
        "state": state,
        "chapter": chapter,
        "chapter_end": chapter_end,
        "time_in_story": time_in_story,
        "characters": character,
        "why": why,
        "importance": importance,
        "pinned": pinned,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _thread_fields(thread: str | None, payoff_chapter: int | None) -> dict:
    out: dict = {}
    if thread is not None:
        out["thread"] = "" if thread.strip().lower() in ("", "none", "no") else thread.strip().lower()
    if payoff_chapter is not None:
        out["payoff_chapter"] = payoff_chapter
    return out


@app.command("add")
def memory_add(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option("--kind", help="character | plot | setting | dialogue")],
    text: Annotated[str, typer.Option("--text", help="Description, plot summary or the dialogue itself.")],
    name: NameOpt = None,
    alias: AliasOpt = None,
    traits: TraitOpt = None,
    relation: RelationOpt = None,
    state: StateOpt = None,
    chapter: ChapterOpt = None,
    chapter_end: ChapterEndOpt = None,
    time_in_story: TimeOpt = None,
    character: CharacterOpt = None,
    why: WhyOpt = None,
    importance: ImportanceOpt = None,
    pinned: PinOpt = None,
    thread: ThreadOpt = None,
    payoff_chapter: PayoffOpt = None,
    novel: NovelOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Add a memory entry."""
    from xiaoshuo.memory import make_entry

    entry = make_entry(
        novel=novel,
        **_entry_fields(
            kind,
            name,
            alias,
            text,
            traits,
            relation,
            state,
            chapter,
            chapter_end,
            time_in_story,
            character,
            why,
            importance,
            pinned,
        ),
        **_thread_fields(thread, payoff_chapter),
    )
    with _store(ctx) as store:
        store.add(entry)
    typer.echo(
        json.dumps(entry.model_dump(mode="json"), ensure_ascii=False)
        if as_json
        else f"已添加 added {entry.id}"
    )
    _warn_unknown_novel(ctx, novel)


def _warn_unknown_novel(ctx: typer.Context, key: str) -> None:
    """Memory keeps entries under any key; a key that is no novel's slug or title is most often a typo."""
    from xiaoshuo.writing import WritingError

    if key == "default":
        return
    try:
        novels(ctx).get(key)
    except WritingError:
        typer.echo(
            f"! 没有叫 {key} 的小说，记忆按标识 {key} 单独保存"
            f" (no novel {key}: the memory is kept under that key) — xiaoshuo novel list 列出小说的标识 slug",
            err=True,
        )


@app.command("list")
def memory_list(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind")] = None,
    archived: Annotated[bool, typer.Option("--archived", help="Include archived entries.")] = False,
    novel: NovelOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """List entries of a novel."""
    with _store(ctx) as store:
        _print_entries(store.list(novel, kind=kind, include_archived=archived), as_json)


@app.command("show")
def memory_show(
    ctx: typer.Context, entry_id: str, novel: NovelOpt = "default", as_json: JsonOpt = True
) -> None:
    """Show one entry (JSON)."""
    with _store(ctx) as store:
        typer.echo(
            json.dumps(store.get(entry_id, novel).model_dump(mode="json"), ensure_ascii=False, indent=2)
        )


@app.command("edit")
def memory_edit(
    ctx: typer.Context,
    entry_id: str,
    text: Annotated[str | None, typer.Option("--text")] = None,
    name: NameOpt = None,
    alias: AliasOpt = None,
    traits: TraitOpt = None,
    relation: RelationOpt = None,
    state: StateOpt = None,
    chapter: ChapterOpt = None,
    chapter_end: ChapterEndOpt = None,
    time_in_story: TimeOpt = None,
    character: CharacterOpt = None,
    why: WhyOpt = None,
    importance: ImportanceOpt = None,
    pinned: PinOpt = None,
    thread: ThreadOpt = None,
    payoff_chapter: PayoffOpt = None,
    novel: NovelOpt = "default",
) -> None:
    """Change fields of an entry (only the options given)."""
    fields = _entry_fields(
        None,
        name,
        alias,
        text,
        traits,
        relation,
        state,
        chapter,
        chapter_end,
        time_in_story,
        character,
        why,
        importance,
        pinned,
    )
    fields.pop("kind", None)
    fields.update(_thread_fields(thread, payoff_chapter))
    with _store(ctx) as store:
        entry = store.update(entry_id, novel, **fields)
    typer.echo(f"已更新 updated {entry.id}")


@app.command("delete")
def memory_delete(ctx: typer.Context, entry_id: str, novel: NovelOpt = "default") -> None:
    """Delete an entry."""
    with _store(ctx) as store:
        store.get(entry_id, novel)  # a clear error for an unknown id
        store.delete(entry_id, novel)
    typer.echo(f"已删除 deleted {entry_id}")


def _retrieve(store, novel: str, query: str, **kw):
    """``retrieve`` whose warnings (degraded memory, e.g. no dense retrieval) are said once on stderr
    as ``⚠`` lines (retrieve also logs them: that copy is held back here); stdout (and --json) stays
    the result."""
    import logging

    from xiaoshuo.memory import retrieve

    log = logging.getLogger("xiaoshuo.memory")

    def hold_back(record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and record.funcName == "retrieve")

    log.addFilter(hold_back)
    try:
        found = retrieve(store, novel, query, **kw)
    finally:
        log.removeFilter(hold_back)
    for line in found.warnings:
        typer.echo(f"⚠ {line}", err=True)
    return found


@app.command("search")
def memory_search(
    ctx: typer.Context,
    query: str,
    recent: Annotated[
        str, typer.Option("--recent", help="Recent story text (names in it trigger entries).")
    ] = "",
    k: Annotated[int | None, typer.Option("--k", help="How many (memory.top_k).")] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind")] = None,
    novel: NovelOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Hybrid search: shows scores and which retriever found each hit."""
    with _store(ctx) as store:
        found = _retrieve(store, novel, query, recent_text=recent, k=k, kinds=kind)
    rows = [h.as_dict() for h in found.hits]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        typer.echo(
            f"{r['score']:.4f}  [{'+'.join(r['found_by'])}]  {r['kind']}  {r['name']}  "
            f"{r['text'][:50]}  ({r['id']})"
        )


@app.command("context")
def memory_context(
    ctx: typer.Context,
    query: str,
    budget: Annotated[
        int | None, typer.Option("--budget", help="Token budget (memory.context_token_budget).")
    ] = None,
    recent: Annotated[str, typer.Option("--recent", help="Recent story text.")] = "",
    tokenizer: Annotated[
        str | None,
        typer.Option(
            "--tokenizer", help="Counts tokens (data.tokenizer, else model.base_model; builtin-tiny)."
        ),
    ] = None,
    novel: NovelOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """The memory block a prompt would get, and why each candidate was included or dropped."""
    from xiaoshuo.data.chunking import TokenCounter, load_tokenizer
    from xiaoshuo.memory import build_context

    settings = cli_state(ctx).settings(**{"data.tokenizer": tokenizer})
    counter = TokenCounter(
        load_tokenizer(
            settings.data.tokenizer or settings.model.base_model, models_dir=settings.paths.models_dir
        )
    )
    budget = budget if budget is not None else settings.memory.context_token_budget
    with _store(ctx) as store:
        found = _retrieve(store, novel, query, recent_text=recent)
    result = build_context(found.hits, budget, counter.count)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
        return
    typer.echo(result.text or "(空 empty)")
    typer.echo(f"\n— {result.tokens}/{budget} tokens —")
    for item in result.included:
        typer.echo(f"  ✓ {item['name']} ({item['kind']}, {item['tokens']} tokens): {item['reason']}")
    for item in result.dropped:
        typer.echo(f"  ✗ {item['name']} ({item['kind']}, {item['tokens']} tokens): {item['reason']}")


@app.command("export")
def memory_export(ctx: typer.Context, file: Path, novel: NovelOpt = "default") -> None:
    """Export a novel's memory as JSON."""
    from xiaoshuo.files import atomic_write_json

    with _store(ctx) as store:
        data = store.export_novel(novel)
    atomic_write_json(file, data)
    typer.echo(f"已导出 exported {len(data['entries'])} entries → {file}")


@app.command("import")
def memory_import(ctx: typer.Context, file: Path, novel: OptionalNovelOpt = None) -> None:
    """Import a memory JSON export (validated first: a bad file changes nothing)."""
    from xiaoshuo.files import MB, parse_user_json, read_user_file
    from xiaoshuo.memory import StoryMemoryError

    what = "记忆导入文件 (memory import file)"
    limit = cli_state(ctx).settings().limits.max_file_mb * MB
    raw = read_user_file(file, limit=limit, key="limits.max_file_mb", what=what, error=StoryMemoryError)
    data = parse_user_json(
        raw,
        what=what,
        error=StoryMemoryError,
        source=file,
        expected="a UTF-8 JSON file from xiaoshuo memory export",
    )
    with _store(ctx) as store:
        ids = store.import_novel(data, novel=novel)
    typer.echo(f"已导入 imported {len(ids)} entries")


@app.command("reindex")
def memory_reindex(ctx: typer.Context, novel: OptionalNovelOpt = None) -> None:
    """Re-embed entries with the configured memory.embedding_model."""
    with _store(ctx) as store:
        done = store.reindex(novel)
    typer.echo("已重建 reindexed: " + ", ".join(f"{k} ({v})" for k, v in done.items()))


# ----------------------------------------------------------------------------- extraction + review queue


def _novel(ctx: typer.Context, slug: str):
    return novels(ctx).get(slug)


@app.command("extract")
def memory_extract(
    ctx: typer.Context,
    novel: NovelOpt,
    chapter: Annotated[list[int] | None, typer.Option("--chapter", help="Chapter (repeatable).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every written chapter (resumable).")] = False,
    again: Annotated[
        bool, typer.Option("--again", help="With --all: also chapters already extracted from the same text.")
    ] = False,
    batch: Annotated[int, typer.Option("--batch", help="Chapters per engine batch.")] = 16,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """提取记忆 / Propose memory changes from chapters (they wait in `memory review`)."""
    import asyncio
    import contextlib
    import sys

    from xiaoshuo.engine import load_engine
    from xiaoshuo.errors import XiaoshuoError
    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.writing.extraction import Extractor

    if not all_ and not chapter:
        raise XiaoshuoError(
            "要提取哪一章？(which chapters?)",
            expected="--chapter N (repeatable) or --all",
            received="neither",
        )
    settings = cli_state(ctx).settings()
    book = _novel(ctx, novel)
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(MemoryStore(settings))
        ex = Extractor(settings, None, book, store, batch=batch)
        numbers = ex.chapters() if all_ else list(chapter or [])
        if any(not (all_ and not again and ex.done(n, book.text(n))) for n in numbers):
            ex.engine = stack.enter_context(load_engine(settings, backend=backend, model=model))
        if as_json:
            results = asyncio.run(ex.extract(numbers, resume=all_ and not again))
        else:
            from rich.progress import Progress

            with Progress(transient=False, console=_stderr_console()) as bar:
                task = bar.add_task("提取 extracting", total=len(numbers))
                results = asyncio.run(
                    ex.extract(
                        numbers,
                        resume=all_ and not again,
                        progress=lambda done, total: bar.update(task, completed=done),
                    )
                )
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results], ensure_ascii=False, indent=2))
    else:
        for r in results:
            if r.skipped:
                typer.echo(f"第{r.chapter}章：已提取过，跳过 (already extracted)")
            elif r.error:
                typer.echo(f"第{r.chapter}章：失败 failed — {r.error}", err=True)
            else:
                typer.echo(
                    f"第{r.chapter}章：{len(r.proposals)} 条提议 proposals, {len(r.dropped)} 条丢弃 "
                    f"dropped" + (f", {r.approved} 条已自动批准 auto-approved" if r.approved else "")
                )
        typer.echo(f"审阅 review: xiaoshuo memory review --novel {novel}")
    if any(r.error for r in results):
        sys.exit(2)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


review_app = typer.Typer(
    name="review",
    help="审阅提议 / The review queue: list (default), approve, reject extracted proposals.",
    invoke_without_command=True,
)
app.add_typer(review_app)


def _queue_and_entries(ctx: typer.Context, slug: str, store):
    from xiaoshuo.writing.review import ReviewQueue

    book = _novel(ctx, slug)
    return book, ReviewQueue.of(book), store.list(slug)


@review_app.callback()
def review_list(
    ctx: typer.Context,
    novel: OptionalNovelOpt = None,
    status: Annotated[str, typer.Option("--status", help="pending | approved | rejected | all.")] = "pending",
    chapter: Annotated[int | None, typer.Option("--chapter")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List proposals (pending by default), each with its id, evidence and the entries approval writes."""
    if ctx.invoked_subcommand is not None:
        return
    from xiaoshuo.errors import XiaoshuoError
    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.writing.review import as_row

    if not novel:
        raise XiaoshuoError("缺少 --novel (which novel?)", expected="--novel SLUG", fix="xiaoshuo novel list")
    with MemoryStore(cli_state(ctx).settings()) as store:
        book, queue, entries = _queue_and_entries(ctx, novel, store)
        proposals = queue.list(None if status == "all" else status, chapter=chapter)
        texts: dict[int, str] = {}
        rows = [as_row(p, entries, texts.setdefault(p.chapter, book.text(p.chapter))) for p in proposals]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        typer.echo("没有待审阅的提议 (no proposals)")
        return
    for r in rows:
        ev = r.get("evidence") or {}
        typer.echo(f"[{r['id']}] 第{r['chapter']}章 {r['kind']} ({r['source']}) {r['status']}")
        for e in r["preview"]:
            typer.echo(
                f"    → {e['kind']} {e['name']}: {e['text'][:60]}"
                + (f" 状态 {e['state']}" if e["state"] else "")
            )
        if r["problem"]:
            typer.echo(f"    ! {r['problem']}")
        typer.echo(f"    证据 evidence: “{ev.get('quote', '')[:60]}” [{ev.get('start')}:{ev.get('end')}]")


@review_app.command("approve")
def review_approve(
    ctx: typer.Context,
    novel: NovelOpt,
    proposal_id: Annotated[str | None, typer.Argument(help="Proposal id (or a unique prefix).")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="FIELD=VALUE edit before approving (repeatable).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Approve every pending proposal.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Approve a proposal (optionally edited) or all pending ones: they are written to memory."""
    from xiaoshuo.errors import XiaoshuoError
    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.writing.review import parse_edits

    if all_ == bool(proposal_id) or (all_ and set_):
        raise XiaoshuoError(
            "要批准哪一条？(which proposal?)", expected="ID [--set FIELD=VALUE …] or --all (without --set)"
        )
    with MemoryStore(cli_state(ctx).settings()) as store:
        _, queue, entries = _queue_and_entries(ctx, novel, store)
        if all_:
            written = queue.approve_all(store)
        else:
            p = queue.get(proposal_id or "")
            written = queue.approve(p.id, store, edits=parse_edits(p.kind, set_ or []), entries=entries)
    rows = [e.model_dump(mode="json") for e in written]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        typer.echo(f"已批准 approved: {len(rows)} 条记忆写入 entries written")
        for e in written:
            typer.echo(f"  {e.id[:12]} {e.kind} {e.name or e.text[:20]}")


@review_app.command("reject")
def review_reject(
    ctx: typer.Context,
    proposal_id: Annotated[str, typer.Argument(help="Proposal id (or a unique prefix).")],
    novel: NovelOpt,
) -> None:
    """Reject a proposal: memory is not touched."""
    from xiaoshuo.writing.review import ReviewQueue

    p = ReviewQueue.of(_novel(ctx, novel)).reject(proposal_id)
    typer.echo(f"已拒绝 rejected {p.id}")
