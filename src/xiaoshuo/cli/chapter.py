"""``xiaoshuo chapter show|versions|diff|accept|revert|set|final|summary|summarize``: a chapter's text,
history, 定稿 status and summary (``summarize``, and ``accept`` with ``--summarize`` / ``--extract`` or
``writing.auto_*``, load the model; what runs after an accept is
:func:`xiaoshuo.writing.accepted.on_accepted`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from xiaoshuo.cli.options import BackendOpt, JsonOpt, ModelOpt, NovelOpt, echo_json, novels, planning_engine

app = typer.Typer(
    name="chapter", help="章节 / A chapter's text, versions, diff, accept, revert.", no_args_is_help=True
)
NumberArg = Annotated[int, typer.Argument(help="Chapter number.")]


def _novel(ctx: typer.Context, slug: str):
    return novels(ctx).get(slug)


def _read(n, number: int):
    """The chapter as a reader sees it (no writer lock: runs while another process writes);
    a chapter neither in the outline nor on disk is the same error everywhere."""
    got = n.read(number)
    if not got.exists and n.outline().chapter(number) is None and not n.versions(number):
        n.plan(number)  # raises: 大纲里没有第 N 章
    if got.problem:
        typer.echo(
            f"! 第{number}章的文件无法解码 ({got.problem})，以下为尽力解码的文本；"
            f"修复 (fix): xiaoshuo chapter set --novel {n.slug} {number} --file 修好的正文.txt",
            err=True,
        )
    return got


def _version_label(got) -> str:
    if got.outside_edit:
        return "外部修改，下次写入时保存为版本 (outside edit, kept as a version by the next write)"
    return f"版本 {got.version}"


@app.command("show")
def show_cmd(ctx: typer.Context, novel: NovelOpt, number: NumberArg, as_json: JsonOpt = False) -> None:
    """显示正文 / Print a chapter's current text (never waits for a writer; an outside edit is shown as
    such and kept as a version by the next write)."""
    from xiaoshuo.writing import count_chars

    n = _novel(ctx, novel)
    got = _read(n, number)
    plan = n.plan(number)
    text = got.text
    if as_json:
        echo_json(
            {
                "number": number,
                "title": plan.title,
                "status": plan.status,
                "summary": plan.summary,
                "chars": count_chars(text),
                "length": len(text),
                "version": got.version,
                "outside_edit": got.outside_edit,
                "encoding": got.encoding,
                "problem": got.problem,
                "text": text,
            }
        )
    else:
        from xiaoshuo.writing.exporting import chapter_heading

        head = chapter_heading(number, plan.title)
        typer.echo(f"{head} · {count_chars(text)} 字 · {_version_label(got)}", err=True)
        typer.echo(text)


@app.command("versions")
def versions_cmd(ctx: typer.Context, novel: NovelOpt, number: NumberArg, as_json: JsonOpt = False) -> None:
    """版本列表 / List a chapter's versions (candidates, edits, imports); never waits for a writer."""
    import time

    n = _novel(ctx, novel)
    got = _read(n, number)
    versions = n.versions(number)
    current = got.version
    if as_json:
        echo_json([v.brief() | {"current": v.id == current} for v in versions])
        return
    for v in versions:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(v.time))
        mark = "*" if v.id == current else " "
        extra = f" seed={v.seed}" if v.seed is not None else ""
        typer.echo(
            f"{mark} v{v.id:<4} {when} {v.source:<9} {v.kind:<12} {v.chars:>6} 字{extra}  {v.text[:24]!r}"
        )
    if got.outside_edit:
        typer.echo(f"* 当前文件 (the file): {_version_label(got)}", err=True)
    elif not versions:
        typer.echo(f"第{number}章还没有版本 (no versions yet)", err=True)


@app.command("diff")
def diff_cmd(
    ctx: typer.Context,
    novel: NovelOpt,
    number: NumberArg,
    a: Annotated[int, typer.Argument(help="Older version.")],
    b: Annotated[int, typer.Argument(help="Newer version.")],
    as_json: JsonOpt = False,
) -> None:
    """逐字比较 / Character-level diff of two versions."""
    ops = _novel(ctx, novel).diff(number, a, b)
    if as_json:
        echo_json(ops)
        return
    out = []
    for op in ops:
        if op["op"] == "equal":
            text = op["a"]
            out.append(text if len(text) <= 40 else text[:15] + " … " + text[-15:])
        else:
            if op["a"]:
                out.append(f"[-{op['a']}-]")
            if op["b"]:
                out.append(f"{{+{op['b']}+}}")
    typer.echo("".join(out))


@app.command("accept")
def accept_cmd(
    ctx: typer.Context,
    novel: NovelOpt,
    number: NumberArg,
    version: Annotated[int, typer.Option("--version", "-v", help="The version to make current.")],
    as_json: JsonOpt = False,
    summarize: Annotated[
        bool | None,
        typer.Option(
            "--summarize/--no-summarize",
            help="Then summarise it with the model (default: writing.auto_summarize).",
        ),
    ] = None,
    extract: Annotated[
        bool | None,
        typer.Option(
            "--extract/--no-extract",
            help="Then propose memory changes from it (default: writing.auto_extract; review queue).",
        ),
    ] = None,
    backend: BackendOpt = None,
) -> None:
    """采用版本 / Make a version (e.g. a candidate) the chapter's text."""
    import contextlib

    from xiaoshuo.cli.state import cli_state
    from xiaoshuo.writing import actions, run_sync

    settings = cli_state(ctx).settings()
    with contextlib.ExitStack() as stack:

        def open_engine():  # the base model, loaded only when something runs after the accept
            if not as_json:
                typer.echo(f"✓ 第{number}章 = 版本 {version}；加载模型 (loading the model)…", err=True)
            _, engine, use, _ = stack.enter_context(
                planning_engine(ctx, backend=backend, model=None, adapter=None)
            )
            return engine, use

        done = run_sync(
            actions.accept(
                settings, _novel(ctx, novel), number, version, open_engine=open_engine,
                summarize=summarize, extract=extract,
            )
        )  # fmt: skip
    v = done.version
    if as_json:
        echo_json(done.as_dict())
        return
    typer.echo(f"✓ 第{number}章 = 版本 {v.id} ({v.chars} 字)")
    if done.after is not None:
        _report_after(novel, number, done.after)


def _report_after(novel: str, number: int, done) -> None:
    """What on_accepted did, in words; a form the model failed to fill is a warning (the accept stands)."""
    if done.summary is not None:
        s = done.summary
        typer.echo(f"✓ 第{number}章 前情提要：{s['summary']}")
        who, where = "、".join(s["who"]) or "-", "、".join(s["where"]) or "-"
        typer.echo(f"  人物 {who} · 地点 {where} · 时间 {s['when'] or '-'}")
    if done.extraction is not None and not done.extract_error:
        count, approved = len(done.extraction["proposals"]), done.extraction["approved"]
        where = "已写入记忆 (approved)" if approved else f"待审阅：xiaoshuo memory review --novel {novel}"
        typer.echo(f"✓ 第{number}章 记忆提议 {count} 条（{where}）")
    for what, error in (
        ("前情提要 summary", done.summary_error),
        ("记忆提取 extraction", done.extract_error),
    ):
        if error:
            typer.echo(
                f"! 第{number}章 {what} 失败，章节已采用 (failed; the chapter is accepted): {error}", err=True
            )


def _summarize(
    ctx: typer.Context, novel: str, number: int, *, backend, model, adapter, as_json: bool
) -> None:
    from xiaoshuo.writing import run_sync
    from xiaoshuo.writing.planning import PlanLimits, summarize_chapter
    from xiaoshuo.writing.prompts import Prompts

    n = _novel(ctx, novel)
    n.plan(number)  # a missing chapter fails before the model loads
    with planning_engine(ctx, backend=backend, model=model, adapter=adapter) as (settings, engine, use, _):
        limits, prompts = PlanLimits.from_settings(settings), Prompts.from_settings(settings)
        answer = run_sync(summarize_chapter(engine, n, number, limits=limits, lora=use, prompts=prompts))
    if as_json:
        echo_json({"number": number, **answer.model_dump()})
    else:
        typer.echo(f"✓ 第{number}章 前情提要：{answer.summary}")
        who, where = "、".join(answer.who) or "-", "、".join(answer.where) or "-"
        typer.echo(f"  人物 {who} · 地点 {where} · 时间 {answer.when or '-'}")


@app.command("summarize")
def summarize_cmd(
    ctx: typer.Context,
    novel: NovelOpt,
    number: NumberArg,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    adapter: Annotated[str | None, typer.Option("--adapter", help="LoRA adapter (default: none).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """生成前情提要 / Summarise a chapter with the model (前情提要 + who/where/when, stored on its plan)."""
    _summarize(ctx, novel, number, backend=backend, model=model, adapter=adapter, as_json=as_json)


@app.command("revert")
def revert_cmd(
    ctx: typer.Context,
    novel: NovelOpt,
    number: NumberArg,
    version: Annotated[int, typer.Option("--version", "-v", help="The version to bring back.")],
    as_json: JsonOpt = False,
) -> None:
    """回退 / Bring back an older version's text as a new version."""
    from xiaoshuo.writing import actions

    v = actions.revert(_novel(ctx, novel), number, version)
    echo_json(v.brief()) if as_json else typer.echo(f"✓ 第{number}章 回到版本 {version}（新版本 {v.id}）")


@app.command("set")
def set_cmd(
    ctx: typer.Context,
    novel: NovelOpt,
    number: NumberArg,
    file: Annotated[Path, typer.Option("--file", "-f", help="UTF-8 text file ('-' = stdin).")],
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="Accept an empty or whitespace-only text (empties it).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """手写正文 / Store text written by hand as a new, current version (replaces even a damaged file;
    an empty text is refused without --allow-empty)."""
    from xiaoshuo.cli.state import cli_state
    from xiaoshuo.files import MB, read_user_file, read_user_stream
    from xiaoshuo.writing import WritingError

    limit = cli_state(ctx).settings().limits.max_chapter_file_mb * MB  # never /dev/zero until memory runs out
    what, key = "正文文件 (text file)", "limits.max_chapter_file_mb"
    try:
        if str(file) == "-":
            raw = read_user_stream(sys.stdin.buffer, limit=limit, key=key, what=what, error=WritingError)
        else:
            raw = read_user_file(file, limit=limit, key=key, what=what, error=WritingError)
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text did
    except UnicodeDecodeError as exc:  # an OSError is worded by errors.translate() (errno, path, fix)
        raise WritingError(
            "无法读取正文文件 (cannot read the text file)",
            expected="a UTF-8 text file",
            received=f"{file}: {exc}",
            fix="用 UTF-8 保存后重试",
        ) from None
    if "\0" in text:  # /dev/zero through a pipe, a binary file: never a chapter of NUL "字"
        raise WritingError(
            "正文文件是二进制数据，不是文本 (binary data: NUL bytes)",
            expected="a UTF-8 text file",
            received=f"{file}: {text.count(chr(0))} NUL bytes, the first at character {text.index(chr(0))}",
            fix="检查文件；用文本编辑器另存为 UTF-8 后重试",
        )
    v = _novel(ctx, novel).set_text(number, text, note=str(file), allow_empty=allow_empty)
    echo_json(v.brief()) if as_json else typer.echo(f"✓ 第{number}章 新版本 {v.id} ({v.chars} 字)")


@app.command("final")
def final_cmd(
    ctx: typer.Context,
    novel: NovelOpt,
    number: NumberArg,
    undo: Annotated[bool, typer.Option("--undo", help="Back to 草稿 (drafted).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """定稿 / Mark a chapter final (novel export --only-final exports the final chapters); --undo makes it
    a draft again."""
    from xiaoshuo.writing import actions

    plan = actions.mark_final(_novel(ctx, novel), number, final=not undo)
    if as_json:
        echo_json({"number": plan.number, "title": plan.title, "status": plan.status})
    else:
        typer.echo(f"✓ 第{number}章《{plan.title}》：{actions.STATUS_LABELS[plan.status]} ({plan.status})")


@app.command("summary")
def summary_cmd(
    ctx: typer.Context,
    novel: NovelOpt,
    number: NumberArg,
    text: Annotated[str | None, typer.Option("--text", help="The new summary (omit to show it).")] = None,
) -> None:
    """前情提要 / Show or set a chapter's summary (used by later chapters' prompts)."""
    n = _novel(ctx, novel)
    if text is None:
        typer.echo(n.plan(number).summary)
        return
    n.set_summary(number, text)
    typer.echo(f"✓ 第{number}章 前情提要已保存")


# ---------------------------------------------------------------------------------------------- revise
@app.command("revise")
def revise_cmd(
    ctx: typer.Context,
    number: NumberArg,
    novel: NovelOpt,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help="Only these kinds: consistency, length, repetition, flavour, outline (comma-separated).",
        ),
    ] = None,
    passes: Annotated[int, typer.Option("--passes", help="Review → rewrite rounds (1-5).")] = 2,
    candidates: Annotated[
        int, typer.Option("--candidates", "-k", help="Candidates per passage; the best one is kept.")
    ] = 1,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for repeatable sampling.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the findings and planned edits; change nothing.")
    ] = False,
    memory: Annotated[
        bool, typer.Option("--memory/--no-memory", help="Check against story memory and retrieve it.")
    ] = True,
    adapter: Annotated[
        str | None,
        typer.Option("--adapter", help="LoRA adapter (default: the novel's); 'none' for the base."),
    ] = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """修订: rewrite only the passages the review flags (repeats, AI味, length, outline, consistency);
    a revision is kept as a new version only when it has fewer findings."""
    import contextlib

    from xiaoshuo.cli.options import choose_adapter
    from xiaoshuo.cli.state import cli_state
    from xiaoshuo.eval.flavour import load_flavour
    from xiaoshuo.writing import actions, run_sync
    from xiaoshuo.writing.findings import parse_kinds
    from xiaoshuo.writing.prompts import Prompts

    settings = cli_state(ctx).settings()
    book = _novel(ctx, novel)
    parse_kinds(only)  # a bad --only fails before anything loads
    Prompts.from_settings(settings)
    flavour = load_flavour(settings.eval.ai_flavour_file or None)
    with contextlib.ExitStack() as stack:
        store = None
        if memory:
            from xiaoshuo.memory import MemoryStore

            store = stack.enter_context(MemoryStore(settings))
        entries = store.list(book.slug) if store is not None else []
        if dry_run:
            result = actions.plan_revise(settings, book, number, flavour=flavour, entries=entries, only=only)
        else:
            from xiaoshuo.engine import load_engine
            from xiaoshuo.writing import Writer

            wanted = adapter if adapter is not None else (book.card().adapter or "none")
            adapters: dict[str, str] = {}
            use = choose_adapter(settings, adapters, wanted, backend or settings.engine.backend)
            engine = stack.enter_context(load_engine(settings, backend=backend, model=model, lora=adapters))
            writer = Writer(settings, engine, book, store=store, memory_on=memory, adapter=use or "")
            result = run_sync(
                actions.revise(
                    writer, number, flavour=flavour, entries=entries, only=only, passes=passes,
                    candidates=candidates, seed=seed,
                )
            )  # fmt: skip
    data = result.as_dict()
    if as_json:
        echo_json(data)
        return
    _print_revision(data)


def _print_revision(data: dict) -> None:
    n = data["chapter"]
    count, weighted = len(data["findings_before"]), data["weighted_before"]
    typer.echo(f"第{n}章 修订前 (before): {count} 个问题，加权 {weighted}")
    for f in data["findings_before"]:
        mark = "⚠" if f["severity"] == "warning" else "·"
        typer.echo(f"  {mark} [{f['kind']}:{f['rule']}] [{f['start']}:{f['end']}] {f['message']}")
    for p in data["passes"]:
        typer.echo(f"第 {p['pass']} 轮 (pass): {len(p['edits'])} 处修改")
        for e in p["edits"]:
            got = {True: " ✓", False: " ✗"}.get(e.get("kept"), "")
            typer.echo(
                f"  [{e['start']}:{e['end']}] {e['mode']} {e['chars']}→{e['target_chars']} 字{got}: "
                + "；".join(e["instructions"])
            )
        if p.get("reason"):
            typer.echo(f"  {p['reason']}")
    if data["dry_run"]:
        typer.echo("（--dry-run：什么都没改 / nothing changed）")
    elif data["kept"]:
        typer.echo(
            f"✓ 保留为版本 (kept as version) {', '.join(map(str, data['versions']))}；"
            f"问题 {data['weighted_before']} → {data['weighted_after']}"
        )
    else:
        typer.echo("没有保留修改：改后的问题没有更少 (nothing kept: no revision had fewer findings)")
