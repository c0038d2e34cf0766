"""``xiaoshuo outline …``: a novel's outline, 卷 → 章 (:mod:`xiaoshuo.writing`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from xiaoshuo.cli.novel import JsonOpt, NovelOpt, echo_json, novels

app = typer.Typer(name="outline", help="大纲 / Outline: 卷 → 章 with synopses.", no_args_is_help=True)


@app.command("import")
def outline_import_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help='JSON: {"volumes": [{"title", "chapters": [{"title", …}]}]}')],
    novel: NovelOpt,
    as_json: JsonOpt = False,
) -> None:
    """导入大纲 / Replace the outline from a JSON file (chapters already written keep their text)."""
    from xiaoshuo.writing import WritingError

    try:
        data = json.loads(file.read_text("utf-8"))
    except OSError as exc:
        raise WritingError(
            "无法读取大纲文件 (cannot read the outline file)", received=f"{file}: {exc}"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise WritingError(
            "大纲文件不是合法的 UTF-8 JSON (not valid JSON)",
            received=f"{file}: {exc}",
            expected='{"volumes": [{"title": …, "chapters": [{"title": …, "synopsis": …}]}]}',
        ) from None
    outline = novels(ctx).get(novel).import_outline(data)
    if as_json:
        echo_json(outline.model_dump())
    else:
        typer.echo(f"✓ 大纲已导入：{len(outline.volumes)} 卷，{len(outline.chapters())} 章")


@app.command("show")
def outline_show_cmd(ctx: typer.Context, novel: NovelOpt, as_json: JsonOpt = False) -> None:
    """查看大纲 / Show the outline."""
    outline = novels(ctx).get(novel).outline()
    if as_json:
        echo_json(outline.model_dump())
        return
    for vol in outline.volumes:
        typer.echo(f"■ {vol.title}")
        for c in vol.chapters:
            target = f" ~{c.target_chars}字" if c.target_chars else ""
            typer.echo(f"  第{c.number}章 {c.title} [{c.status}]{target}")
            if c.synopsis:
                typer.echo(f"      {c.synopsis}")
    if not outline.volumes:
        typer.echo(f"（还没有大纲 no outline yet: xiaoshuo outline import FILE --novel {novel}）")
