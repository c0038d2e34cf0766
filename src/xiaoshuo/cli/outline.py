"""``xiaoshuo outline import|show|generate``: a novel's outline, 卷 → 章 (:mod:`xiaoshuo.writing`).

``generate`` plans chapters with the model (:mod:`xiaoshuo.writing.planning`); the engine is opened here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xiaoshuo.cli.options import BackendOpt, JsonOpt, ModelOpt, NovelOpt, echo_json, novels, planning_engine
from xiaoshuo.cli.state import cli_state

app = typer.Typer(name="outline", help="大纲 / Outline: 卷 → 章 with synopses.", no_args_is_help=True)


@app.command("import")
def outline_import_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help='JSON: {"volumes": [{"title", "chapters": [{"title", …}]}]}')],
    novel: NovelOpt,
    as_json: JsonOpt = False,
) -> None:
    """导入大纲 / Replace the outline from a JSON file (chapters already written keep their text)."""
    from xiaoshuo.files import MB, parse_user_json, read_user_file
    from xiaoshuo.writing import WritingError

    limit = cli_state(ctx).settings().limits.max_file_mb * MB
    raw = read_user_file(
        file, limit=limit, key="limits.max_file_mb", what="大纲文件 (outline file)", error=WritingError
    )
    data = parse_user_json(
        raw,
        what="大纲文件 (outline file)",
        error=WritingError,
        source=file,
        expected='UTF-8 JSON: {"volumes": [{"title": …, "chapters": [{"title": …, "synopsis": …}]}]}',
    )
    outline = novels(ctx).get(novel).import_outline(data)
    if as_json:
        echo_json(outline.model_dump())
    else:
        typer.echo(f"✓ 大纲已导入：{len(outline.volumes)} 卷，{len(outline.chapters())} 章")


@app.command("show")
def outline_show_cmd(ctx: typer.Context, novel: NovelOpt, as_json: JsonOpt = False) -> None:
    """查看大纲 / Show the outline."""
    from xiaoshuo.writing.actions import STATUS_LABELS

    outline = novels(ctx).get(novel).outline()
    if as_json:
        echo_json(outline.model_dump())
        return
    for vol in outline.volumes:
        typer.echo(f"■ {vol.title}")
        for c in vol.chapters:
            target = f" ~{c.target_chars}字" if c.target_chars else ""
            label = STATUS_LABELS.get(c.status, c.status)
            typer.echo(f"  第{c.number}章 {c.title} [{label} {c.status}]{target}")
            if c.synopsis:
                typer.echo(f"      {c.synopsis}")
    if not outline.volumes:
        typer.echo(f"（还没有大纲 no outline yet: xiaoshuo outline import FILE --novel {novel}）")


AdapterOpt = Annotated[
    str | None,
    typer.Option("--adapter", help="LoRA adapter for planning (default: none, the base model fills forms)."),
]


def outline_sampling(seed: int | None):
    """The planning defaults (``structured.DEFAULT_SAMPLING``) with ``seed``; None (or < 0): unseeded."""
    import dataclasses

    from xiaoshuo.writing.structured import DEFAULT_SAMPLING

    if seed is None or seed < 0:
        return None
    return dataclasses.replace(DEFAULT_SAMPLING, seed=int(seed))


@app.command("generate")
def outline_generate_cmd(
    ctx: typer.Context,
    novel: NovelOpt,
    chapters: Annotated[
        int | None,
        typer.Option("--chapters", help="Plan up to this chapter (not needed with --resume)."),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option("--batch", "-b", help="Chapters per request (default writing.outline_batch)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="继续: continue an interrupted run from its checkpoint.")
    ] = False,
    start: Annotated[
        int | None,
        typer.Option(
            "--from",
            help="重新开始: regenerate planned chapters from this number on (also after an interruption).",
        ),
    ] = None,
    memory: Annotated[bool, typer.Option("--memory/--no-memory", help="Show memory's characters.")] = True,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Sampling seed: the same seed, model and novel give the same outline."),
    ] = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """生成大纲 / Plan chapters in checkpointed batches (drafted/final chapters are never replaced)."""
    from xiaoshuo.writing import run_sync
    from xiaoshuo.writing.planning import PlanLimits, generate_outline

    n = novels(ctx).get(novel)
    n.card()  # a missing novel fails before the model loads

    def on_batch(event: dict) -> None:
        if not as_json:
            nums = event["chapters"]
            typer.echo(f"  第{nums[0]}–{nums[-1]}章 ✓ ({nums[-1]}/{event['target']})", err=True)

    from xiaoshuo.writing.prompts import Prompts

    with planning_engine(ctx, backend=backend, model=model, adapter=adapter, memory=memory) as (
        settings,
        engine,
        use,
        store,
    ):
        result = run_sync(
            generate_outline(
                engine,
                n,
                chapters=chapters,
                batch=batch or settings.writing.outline_batch,
                resume=resume,
                start=start,
                limits=PlanLimits.from_settings(settings),
                sampling=outline_sampling(seed),
                lora=use,
                store=store,
                on_batch=on_batch,
                prompts=Prompts.from_settings(settings),
            )
        )
    if as_json:
        echo_json(result.as_dict())
        return
    kept = f"，保留已写的 {len(result.skipped)} 章" if result.skipped else ""
    if result.limits:
        typer.echo(
            f"  上下文较短：每章要点最多 {result.limits['synopsis_chars']} 字、"
            f"人物/地点各 {result.limits['names']} 个 (a short context: a smaller form)",
            err=True,
        )
    typer.echo(
        f"✓ 大纲：生成 {len(result.generated)} 章（{result.batches} 批，{result.seconds:.1f}s）{kept}；"
        f"共 {len(n.outline().chapters())} 章"
    )
