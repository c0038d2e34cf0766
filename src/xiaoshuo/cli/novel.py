"""``xiaoshuo novel …``: novel projects (:mod:`xiaoshuo.writing`); shared helpers of the writing commands."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from xiaoshuo.cli.state import _state

app = typer.Typer(
    name="novel", help="小说项目 / Novel projects: card, chapters, status.", no_args_is_help=True
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
NovelOpt = Annotated[str, typer.Option("--novel", "-n", help="The novel's slug (xiaoshuo novel list).")]


def novels(ctx: typer.Context):
    from xiaoshuo.writing import Novels

    return Novels.from_settings(_state(ctx).settings())


def echo_json(data) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


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
    settings = _state(ctx).settings()
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


@app.command("list")
def list_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """列出小说 / List novels."""
    lib = novels(ctx)
    rows = []
    for card in lib.list():
        over = lib.get(card.slug).overview()
        rows.append(
            {
                "slug": card.slug,
                "title": card.title,
                "genre": card.genre,
                "chapters": len(over["chapters"]),
                "written": sum(1 for c in over["chapters"] if c["chars"]),
                "total_chars": over["total_chars"],
            }
        )
    if as_json:
        echo_json(rows)
        return
    if not rows:
        typer.echo("还没有小说 (no novels yet): xiaoshuo novel new SLUG --title 书名")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"小说 Novels ({len(rows)})")
    for col in ("slug", "书名", "类型", "章", "已写", "字数"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["slug"], r["title"], r["genre"], str(r["chapters"]), str(r["written"]), str(r["total_chars"])
        )
    Console().print(table)


@app.command("show")
def show_cmd(ctx: typer.Context, slug: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """小说概览 / A novel's card and chapters (status, 字数, versions)."""
    over = novels(ctx).get(slug).overview()
    if as_json:
        echo_json(over)
        return
    from rich.console import Console
    from rich.table import Table

    card = over["card"]
    console = Console()
    console.print(
        f"[bold]《{card['title']}》[/bold] ({card['slug']})  {card['genre']}  每章 {card['chapter_chars']} 字"
    )
    if card["premise"]:
        console.print(f"简介：{card['premise']}")
    table = Table(title=f"章节 Chapters · 共 {over['total_chars']} 字")
    for col in ("#", "标题", "状态", "字数", "目标", "版本"):
        table.add_column(col)
    for c in over["chapters"]:
        table.add_row(
            str(c["number"]),
            c["title"],
            c["status"],
            str(c["chars"]),
            str(c["target_chars"]),
            str(c["versions"]),
        )
    console.print(table)
