"""``xiaoshuo check chapter N`` (consistency against memory) and ``xiaoshuo threads`` (open 伏笔).

Both read the novel and its memory and write nothing but the appearance bookkeeping; findings are
warnings, never edits.  The rules live in :mod:`xiaoshuo.writing.consistency`, threads in
:mod:`xiaoshuo.writing.threads`.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from xiaoshuo.cli.options import BackendOpt, JsonOpt, ModelOpt, NovelOpt
from xiaoshuo.cli.state import cli_state

app = typer.Typer()  # no name: `check` (a group) and `threads` join the top level
check_app = typer.Typer(
    name="check", help="检查 / Consistency checks against story memory.", no_args_is_help=True
)
app.add_typer(check_app)


@check_app.command("chapter")
def check_chapter_cmd(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(help="Chapter number.")],
    novel: NovelOpt,
    judge: Annotated[
        bool,
        typer.Option("--judge/--no-judge", help="Also ask the model (structured output; loads the engine)."),
    ] = False,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a chapter against memory: dead characters acting, two places at once, long-unseen returns."""
    import contextlib

    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.writing import Novels
    from xiaoshuo.writing.consistency import run_check

    settings = cli_state(ctx).settings()
    book = Novels.from_settings(settings).get(novel)
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(MemoryStore(settings))
        engine = None
        if judge:
            from xiaoshuo.engine import load_engine

            engine = stack.enter_context(load_engine(settings, backend=backend, model=model))
        report = run_check(settings, book, number, store, engine=engine)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    findings = report["findings"]
    if not findings:
        typer.echo(f"第{number}章：没有发现问题 (no findings)")
    for f in findings:
        mark = "⚠" if f["severity"] == "warning" else "·"
        typer.echo(f"{mark} [{f['rule']}] {f['message']}")
        typer.echo(f"    原文 text [{f['start']}:{f['end']}]: “{f['quote'][:80]}”")
        if f["entry"]:
            e = f["entry"]
            typer.echo(
                f"    记忆 memory: {e.get('name')} ({e.get('id', '')[:12]}, "
                f"第{e.get('chapter')}章) {e.get('state')}"
            )
    for w in report.get("warnings", []):
        typer.echo(f"! {w}", err=True)


@app.command("threads")
def threads_cmd(
    ctx: typer.Context,
    novel: NovelOpt,
    closed: Annotated[bool, typer.Option("--closed", help="Also list closed threads.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """伏笔 / Threads left open (plot entries with --thread open), with their planned payoff chapters."""
    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.writing import Novels
    from xiaoshuo.writing.threads import thread_report

    settings = cli_state(ctx).settings()
    book = Novels.from_settings(settings).get(novel)
    with MemoryStore(settings) as store:
        entries = store.list(novel)
    written = book.written_chapters()
    rows = thread_report(entries, last_written=max(written, default=0), include_closed=closed)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        typer.echo("没有未回收的伏笔 (no open threads)")
    for r in rows:
        due = f"，计划第{r['payoff_chapter']}章回收" if r["payoff_chapter"] is not None else ""
        typer.echo(
            f"[{r['status']}] {r['name'] or r['text'][:20]}（第{r['chapter']}章埋下{due}）"
            f"{r['text'][:60]}  ({r['id'][:12]})"
        )
