"""``xiaoshuo novel …``: novel projects (:mod:`xiaoshuo.writing`); shared options: ``cli/options.py``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from xiaoshuo.cli.options import BackendOpt, JsonOpt, ModelOpt, SlugOpt, echo_json, novels
from xiaoshuo.cli.state import cli_state

app = typer.Typer(
    name="novel", help="小说项目 / Novel projects: card, chapters, status.", no_args_is_help=True
)


@app.command("new")
def new_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Short name: folder and memory key (e.g. yuye or 雨夜剑).")],
    title: Annotated[str, typer.Option("--title", help="书名 Title.")],
    author: Annotated[str | None, typer.Option("--author")] = None,
    genre: Annotated[str | None, typer.Option("--genre", help="类型, e.g. 仙侠.")] = None,
    premise: Annotated[str | None, typer.Option("--premise", help="简介.")] = None,
    style: Annotated[str | None, typer.Option("--style", help="文风 notes.")] = None,
    pov: Annotated[str | None, typer.Option("--pov", help="视角, e.g. 第三人称.")] = None,
    chapter_chars: Annotated[
        int | None, typer.Option("--chapter-chars", help="Default chapter length in 字.")
    ] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", help="Default LoRA adapter.")] = None,
    variant: Annotated[str | None, typer.Option("--variant", help="简 or 繁.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """新建小说 / Create a novel project under data/novels/<slug>/."""
    settings = cli_state(ctx).settings()
    lib = novels(ctx)
    novel = lib.create(
        slug,
        title=title,
        author=author,
        genre=genre,
        premise=premise,
        style=style,
        pov=pov,
        chapter_chars=chapter_chars or settings.writing.chapter_chars,
        adapter=adapter,
        variant=variant,
    )
    if as_json:
        echo_json(novel.card().model_dump())
    else:
        typer.echo(f"✓ 已创建《{title}》 ({novel.slug}) → {novel.root}")


@app.command("set")
def set_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The novel's slug (or its title when unambiguous).")],
    title: Annotated[str | None, typer.Option("--title", help="书名 Title.")] = None,
    author: Annotated[str | None, typer.Option("--author", help="作者 ('' removes it).")] = None,
    genre: Annotated[str | None, typer.Option("--genre", help="类型, e.g. 仙侠.")] = None,
    premise: Annotated[str | None, typer.Option("--premise", help="简介.")] = None,
    style: Annotated[str | None, typer.Option("--style", help="文风 notes.")] = None,
    pov: Annotated[str | None, typer.Option("--pov", help="视角, e.g. 第三人称.")] = None,
    chapter_chars: Annotated[
        int | None, typer.Option("--chapter-chars", help="Default chapter length in 字 (50..200000).")
    ] = None,
    adapter: Annotated[
        str | None, typer.Option("--adapter", help="Default LoRA adapter ('' = none).")
    ] = None,
    variant: Annotated[str | None, typer.Option("--variant", help="简 or 繁.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """修改小说信息 / Change the novel's card (书名, 作者, 类型, 简介, 文风, 视角, 每章字数, 适配器, 简繁);
    fields not given stay as they are."""
    from xiaoshuo.writing import actions

    novel = novels(ctx).get(slug)
    before = novel.card()
    card = actions.update_card(
        novel,
        title=title,
        author=author,
        genre=genre,
        premise=premise,
        style=style,
        pov=pov,
        chapter_chars=chapter_chars,
        adapter=adapter,
        variant=variant,
    )
    if as_json:
        echo_json(card.model_dump())
        return
    changed = [k for k in actions.CARD_FIELDS if getattr(card, k) != getattr(before, k)]
    if not changed:
        typer.echo(f"《{card.title}》没有变化 (nothing changed)")
        return
    typer.echo(f"✓ 已更新《{card.title}》 ({novel.slug})")
    for key in changed:
        typer.echo(f"  {actions.CARD_FIELDS[key]} {key}: {getattr(before, key)!s} → {getattr(card, key)!s}")


@app.command("list")
def list_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """列出小说 / List novels (a damaged one is listed with its problems, never hides the others)."""
    rows = [s.as_dict() for s in novels(ctx).summaries()]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        typer.echo("还没有小说 (no novels yet): xiaoshuo novel new SLUG --title 书名")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"小说 Novels ({len(rows)})")
    for col in ("slug", "书名", "类型", "章", "已写", "字数", "问题"):
        table.add_column(col, overflow="fold")
    for r in rows:
        more = len(r["problems"]) - 1
        problem = f"⚠ {r['problems'][0]}" + (f" (+{more})" if more > 0 else "") if r["problems"] else ""
        table.add_row(
            *(escape(str(r[k])) for k in ("slug", "title", "genre", "chapters", "written", "total_chars")),
            escape(problem),
        )
    Console().print(table)
    damaged = [r["slug"] for r in rows if r["problems"]]
    if damaged:
        typer.echo(
            f"! 有问题的小说 (damaged): {', '.join(damaged)} — xiaoshuo novel list --json 列出全部问题；"
            "损坏的章节可用 xiaoshuo chapter set 替换",
            err=True,
        )


@app.command("show")
def show_cmd(ctx: typer.Context, slug: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """小说概览 / A novel's card and chapters (status 未写/草稿/定稿, 字数, versions)."""
    over = novels(ctx).get(slug).overview()
    if as_json:
        echo_json(over)
        return
    from rich.console import Console
    from rich.table import Table

    card = over["card"]
    console = Console()
    from rich.markup import escape

    from xiaoshuo.writing.actions import STATUS_LABELS

    console.print(
        f"[bold]《{escape(card['title'])}》[/bold] ({escape(card['slug'])})  {escape(card['genre'])}  "
        f"每章 {card['chapter_chars']} 字"
    )
    for label, key in (("作者", "author"), ("视角", "pov"), ("文风", "style"), ("简介", "premise")):
        if card[key]:
            console.print(f"{label}：{escape(card[key])}")
    table = Table(title=f"章节 Chapters · 共 {over['total_chars']} 字")
    for col in ("#", "标题", "状态", "字数", "目标", "版本"):
        table.add_column(col)
    for c in over["chapters"]:
        table.add_row(
            str(c["number"]),
            escape(c["title"]),
            STATUS_LABELS.get(c["status"], c["status"]),
            str(c["chars"]),
            str(c["target_chars"]),
            str(c["versions"]),
        )
    console.print(table)


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The novel's slug (or its title when unambiguous).")],
    html_file: Annotated[
        Path | None,
        typer.Option("--html", metavar="FILE", help="Write the graph, timeline and dashboard as one HTML."),
    ] = None,
    chapter: Annotated[
        int | None, typer.Option("--chapter", min=1, help="The graph as of this chapter (default: the last).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --html file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """总览 / The book at a glance: relationship graph as of a chapter, timeline, writing dashboard."""
    from xiaoshuo.memory import MemoryStore, StoryMemoryError
    from xiaoshuo.writing import overview
    from xiaoshuo.writing.exporting import write_export

    settings = cli_state(ctx).settings()
    novel = novels(ctx).get(slug)
    entries, warning = None, ""
    try:
        with MemoryStore(settings) as store:
            entries = store.list(novel.slug)
    except StoryMemoryError as exc:  # locked by a running WebUI, unreadable …: the dashboard still works
        warning = f"记忆不可用 (memory unavailable): {exc}"
    if html_file is not None:
        page, data = overview.report_html(novel, entries, chapter=chapter)
        target = write_export(settings, html_file, page.encode("utf-8"), overwrite=overwrite)
        typer.echo(f"✓ 总览已写入 overview written: {target}", err=True)
    else:
        data = overview.book_overview(novel, entries, chapter=chapter)
    if warning:
        data["warnings"].append(warning)
    if as_json:
        echo_json(data)
        return
    d, g = data["dashboard"], data["graph"]
    typer.echo(f"《{data['title']}》总览 overview")
    typer.echo(
        f"  字数 {d['total_chars']:,} / 计划 {d['target_chars']:,}（{d['progress']:.0%}）"
        f" · 连续写作 {d['streak']} 天 · 待审阅 {d['pending_reviews']} 条"
    )
    typer.echo("  章节状态 " + "，".join(f"{k} {v}" for k, v in sorted(d["status_counts"].items())))
    typer.echo(f"  人物关系（截至第{g['chapter']}章）：{len(g['nodes'])} 人，{len(g['edges'])} 条关系")
    overdue = [t for t in data["timeline"]["threads"] if t["status"] == "overdue"]
    if overdue:
        typer.echo("  超期伏笔 overdue threads：" + "、".join(t["name"] for t in overdue))
    for w in data["warnings"]:
        typer.echo(f"  ⚠ {w}", err=True)


@app.command("import")
def import_cmd(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="A novel file prepare reads: .txt (any encoding), .epub, .json, .jsonl.")
    ],
    slug: SlugOpt,
    title: Annotated[
        str | None, typer.Option("--title", help="书名 (default: the file's 《书名》 line or name).")
    ] = None,
    author: Annotated[
        str | None, typer.Option("--author", help="作者 (default: the file's 作者： line).")
    ] = None,
    append: Annotated[
        bool, typer.Option("--append", help="Add the chapters after the last chapter of an existing novel.")
    ] = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Replace an existing novel (the old folder is kept in novels/.replaced/)."
        ),
    ] = False,
    extract: Annotated[
        bool,
        typer.Option(
            "--extract",
            help="Then fill the memory review queue from every chapter (拆书; loads the model; batched and "
            "resumable: xiaoshuo memory extract --all --novel SLUG continues it).",
        ),
    ] = False,
    backend: BackendOpt = None,  # with --extract: the engine
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """导入小说 / Import an existing novel: volumes and chapters in order, every chapter final."""
    from rich.console import Console

    from xiaoshuo.writing.importing import BookError, import_book

    if append and replace:
        raise BookError("--append 和 --replace 只能选一个 (choose one)", expected="--append or --replace")
    err = Console(stderr=True)
    with _progress(err, "导入 import") as on_progress:
        report = import_book(
            novels(ctx),
            file,
            slug,
            title=title,
            author=author,
            mode="append" if append else "replace" if replace else "new",
            settings=cli_state(ctx).settings(),
            progress=on_progress,
        )
    if not as_json:
        _render_import(report)
    if extract:
        settings = cli_state(ctx).settings()
        report["extract"] = _extract_all(settings, novels(ctx).get(report["slug"]), backend, model, err)
        if not as_json:
            ext = report["extract"]
            failed = f", {len(ext['errors'])} 章失败 failed (rerun: {ext['resume']})" if ext["errors"] else ""
            typer.echo(
                f"  提取 extracted: {ext['chapters']} 章 → {ext['proposals']} 条提议 proposals{failed}"
                f"；审阅 review: {ext['review']}"
            )
    if as_json:
        echo_json(report)


def _extract_all(settings, novel, backend: str | None, model: str | None, console) -> dict:
    """Fill the review queue from every chapter (batched; resumable: done chapters are recorded)."""
    import asyncio

    from xiaoshuo.engine import load_engine
    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.writing.extraction import Extractor

    with MemoryStore(settings) as store, load_engine(settings, backend=backend, model=model) as engine:
        ex = Extractor(settings, engine, novel, store)
        numbers = ex.chapters()
        with _progress(console, "提取 extract") as on_progress:
            results = asyncio.run(
                ex.extract(numbers, resume=True, progress=lambda d, t: on_progress("记忆 memory", d, t))
            )
    return {
        "chapters": len(results),
        "proposals": sum(len(r.proposals) for r in results),
        "approved": sum(r.approved for r in results),
        "errors": {r.chapter: r.error for r in results if r.error},
        "review": f"xiaoshuo memory review --novel {novel.slug}",
        "resume": f"xiaoshuo memory extract --all --novel {novel.slug}",
    }


@contextlib.contextmanager
def _progress(console, label: str):
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"[bold]{label}[/]"),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("", total=None)

        def update(stage: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None, description=stage)

        yield update


def _render_import(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"✓ 已导入《{report['title']}》 ({report['slug']}, {report['mode']}) → {report['path']}\n"
        f"  {len(report['chapters'])} 章 · {len(report['volumes'])} 卷 · {report['total_chars']} 字 · "
        f"{report['variant']}体 · 编码 encoding {report['encoding']} · {report['seconds']} s"
    )
    table = Table(title="章节 Chapters (final, imported)")
    for col in ("#", "卷", "标题", "字数"):
        table.add_column(col, overflow="fold")
    rows = report["chapters"]
    shown = rows if len(rows) <= 40 else [*rows[:20], None, *rows[-10:]]
    for c in shown:
        if c is None:
            table.add_row("…", "", f"({len(rows) - 30} more: --json)", "")
        else:
            table.add_row(str(c["number"]), c["volume"], c["title"], str(c["chars"]))
    console.print(table)
    for d in report["dropped"]:
        console.print(f"  删除 dropped: {d['what']} × {d['count']} — {d['why']}")
    if report.get("chapter_chars"):
        target = report["chapter_chars"]
        console.print(f"  每章目标 chapter target: {target} 字（导入章节字数的中位数 median）")
    if report.get("renumbered"):
        console.print(f"  [yellow]章号 numbering:[/] {report['renumbered']['note']}")
    if report["metadata_from_text"]:
        console.print("  书名/作者取自 title block: " + " / ".join(report["metadata_from_text"]))
    if report.get("replaced_backup"):
        console.print(f"  旧版本保留在 old novel kept at: {report['replaced_backup']}")


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The novel's slug.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="txt | md | epub | docx.")] = "txt",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Target file (default data/exports/<slug>.<format>, replaced on each export). An existing "
            "file is refused unless --overwrite; links, folders, devices and the data/models/checkpoints "
            "folders never.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --output file.")
    ] = False,
    chapters: Annotated[
        str | None, typer.Option("--chapters", help="Chapter numbers: 1-50, 7, 1-5,8,10- (default all).")
    ] = None,
    only_final: Annotated[
        bool, typer.Option("--only-final", help="Only chapters with status final.")
    ] = False,
    convert: Annotated[
        str | None,
        typer.Option("--convert", help="OpenCC 简繁 conversion of titles and text: s2t | s2tw | s2hk | t2s."),
    ] = None,
    encoding: Annotated[str, typer.Option("--encoding", help="TXT only: utf-8 | gb18030.")] = "utf-8",
    crlf: Annotated[bool, typer.Option("--crlf", help="TXT only: Windows line ends (CRLF).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """导出整本书 / Export the whole book as TXT, Markdown, EPUB 3 or DOCX (the project is not changed)."""
    from xiaoshuo.writing.exporting import export_book

    if output is not None and not output.name:  # "", "." or "/": typer turns --output "" into "."
        from xiaoshuo.errors import XiaoshuoError

        raise XiaoshuoError(
            "--output 需要一个文件路径 (--output needs a file path)",
            expected=f"a file such as 书名.{fmt}",
            received=str(output),
            fix=f"写出文件名，例如 --output 书名.{fmt}；或去掉 --output 使用默认位置",
        )
    settings = cli_state(ctx).settings()
    novel = novels(ctx).get(slug)
    suffix = f"-{convert}" if convert else ""
    target = output or settings.paths.data_dir / "exports" / f"{novel.slug}{suffix}.{fmt}"
    # the default target is export's own folder: the previous export there is replaced
    overwrite = overwrite or output is None
    report = export_book(
        novel,
        fmt,
        target,
        chapters=chapters,
        only_final=only_final,
        convert=convert,
        encoding=encoding,
        crlf=crlf,
        overwrite=overwrite,
        settings=settings,
    )
    if as_json:
        echo_json(report)
        return
    typer.echo(
        f"✓ 已导出 exported {report['chapters']} 章 (第 {report['first']}–{report['last']} 章) · "
        f"{report['chars']} 字 · {report['language']} → {report['path']} ({report['bytes']} bytes)"
    )
    for s in report["skipped"]:
        typer.echo(f"  跳过 skipped 第 {s['number']} 章 {s['title']}: {s['why']}")
