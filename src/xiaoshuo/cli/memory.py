"""``xiaoshuo memory …``: thin typer commands over :mod:`xiaoshuo.memory`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from xiaoshuo.cli.state import _state

app = typer.Typer(
    name="memory",
    help="记忆 / Story memory: 人物, 情节, 环境设定, 重要对话 (characters, plot, settings, dialogues).",
    no_args_is_help=True,
)
NovelOpt = Annotated[str, typer.Option("--novel", help="Novel (memory scope).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
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


def _store(ctx: typer.Context):
    from xiaoshuo.memory import MemoryStore

    return MemoryStore(_state(ctx).settings())


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
    )
    with _store(ctx) as store:
        store.add(entry)
    typer.echo(
        json.dumps(entry.model_dump(mode="json"), ensure_ascii=False)
        if as_json
        else f"已添加 added {entry.id}"
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
    from xiaoshuo.memory import search

    with _store(ctx) as store:
        hits = search(store, novel, query, recent_text=recent, k=k, kinds=kind)
    rows = [h.as_dict() for h in hits]
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
    from xiaoshuo.memory import build_context, search

    settings = _state(ctx).settings(**{"data.tokenizer": tokenizer})
    counter = TokenCounter(
        load_tokenizer(
            settings.data.tokenizer or settings.model.base_model, models_dir=settings.paths.models_dir
        )
    )
    budget = budget if budget is not None else settings.memory.context_token_budget
    with _store(ctx) as store:
        hits = search(store, novel, query, recent_text=recent)
    result = build_context(hits, budget, counter.count)
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
def memory_import(
    ctx: typer.Context, file: Path, novel: Annotated[str | None, typer.Option("--novel")] = None
) -> None:
    """Import a memory JSON export (validated first: a bad file changes nothing)."""
    from xiaoshuo.memory import StoryMemoryError

    try:
        data = json.loads(file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise StoryMemoryError(
            "无法读取导入文件 (cannot read the import file)",
            received=f"{file}: {exc}",
            expected="a JSON file from xiaoshuo memory export",
        ) from None
    with _store(ctx) as store:
        ids = store.import_novel(data, novel=novel)
    typer.echo(f"已导入 imported {len(ids)} entries")


@app.command("reindex")
def memory_reindex(ctx: typer.Context, novel: Annotated[str | None, typer.Option("--novel")] = None) -> None:
    """Re-embed entries with the configured memory.embedding_model."""
    with _store(ctx) as store:
        done = store.reindex(novel)
    typer.echo("已重建 reindexed: " + ", ".join(f"{k} ({v})" for k, v in done.items()))
