"""Rich terminal rendering of reports for the CLI (formatting only, no logic)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from xiaoshuo.doctor import Report

if TYPE_CHECKING:
    from xiaoshuo.config import Settings

_STATE_STYLE = {
    "local": "green",
    "cached": "green",
    "download": "yellow",
    "missing": "red",
    "invalid": "red",
    "disabled": "dim",
}


#: From this width on, ``config --describe`` gives descriptions a column; narrower, they go under the key.
DESCRIBE_COLUMN_MIN_WIDTH = 120
#: Longer values (the system prompt) are cut with …; ``config --json`` has them whole.
VALUE_MAX_WIDTH = 40


def render_config(settings: Settings, *, describe: bool = False, console: Console | None = None) -> None:
    """key | value | source (| description), readable from 80 columns up.

    Keys never wrap (they are what one greps and types); values longer than :data:`VALUE_MAX_WIDTH` cells
    are cut with …; value and source share the rest of the width and wrap, so no column is squeezed away.
    """
    import json

    from rich.text import Text

    console = console or Console()
    rows = settings.items()
    plain = settings.to_plain()
    key_width = max(len(key) for key, *_ in rows)
    own_column = describe and console.width >= DESCRIBE_COLUMN_MIN_WIDTH
    table = Table(title=f"xiaoshuo config — file: {settings.config_file or '(none, defaults)'}")
    table.add_column("key", width=key_width, overflow="fold")  # fixed: never collapsed
    table.add_column("value", overflow="fold")
    table.add_column("source", overflow="fold")
    if own_column:
        table.add_column("description", overflow="fold")
    for key, _, source, description in rows:
        section, name = key.split(".", 1)
        key_cell = Text(key)
        if describe and not own_column and description:
            key_cell.append("\n" + description, style="dim")
        value = Text(json.dumps(plain[section][name], ensure_ascii=False))
        value.truncate(VALUE_MAX_WIDTH, overflow="ellipsis")
        note = settings.note_of(key)  # model.base_model = "auto" → which model and why
        cells = [key_cell, value, f"{source}\n{note}" if note else source]
        style = None if source == "default" else "bold cyan"
        table.add_row(*cells, *([description] if own_column else []), style=style)
    console.print(table)


def render_doctor(report: Report, console: Console | None = None) -> None:
    console = console or Console()
    t = report.torch
    gpu_line = (
        ", ".join(f"{g['name']} ({g['free_gib']}/{g['total_gib']} GiB free)" for g in t["gpus"])
        if t.get("cuda_available")
        else "无 GPU (no GPU): CPU 模式，可用但较慢 (CPU mode works, slower)"
    )
    sys_table = Table(title="系统 System", show_header=False)
    sys_table.add_row("Python", f"{report.python['version']} ({report.python['executable']})")
    sys_table.add_row(
        "CPU",
        f"{report.cpu.get('cores')} cores, RAM "
        f"{report.cpu.get('ram_available_gib', '?')}/{report.cpu.get('ram_total_gib', '?')} GiB free",
    )
    sys_table.add_row("torch", f"{t.get('version', 'not installed')} ({t.get('build', '-')})")
    sys_table.add_row("GPU", gpu_line)
    v = report.vllm
    sys_table.add_row("vLLM", f"{v['flavour']} {v['version']}" if v["installed"] else "not installed")
    console.print(sys_table)

    be = Table(title=f"后端 Backends — selected: {report.selected_backend.name}")
    be.add_column("backend")
    be.add_column("usable")
    be.add_column("why")
    for b in report.backends:
        be.add_row(b.name, "[green]yes[/]" if b.usable else "[red]no[/]", b.reason)
    console.print(be)
    console.print(f"[bold]选择 choice:[/] {report.selected_backend.reason}")
    if report.adapter_mode:
        m = report.adapter_mode
        console.print(
            f"[bold]适配器 adapter {m.get('adapter') or '-'}:[/] {m['mode']} — {m['reason']}"
            + (f"; {m['cache']}" if m.get("cache") else "")
        )

    mt = Table(title="模型 Models")
    for col in ("setting", "name", "state", "detail"):
        mt.add_column(col, overflow="fold")
    for m in report.models:
        detail = m.detail + (f"\n{m.note}" if m.note else "")
        mt.add_row(m.setting, m.name, f"[{_STATE_STYLE.get(m.state, 'white')}]{m.state}[/]", detail)
    console.print(mt)
    for h in report.hubs:
        ok = {True: "[green]answers[/]", False: "[red]no answer[/]", None: "[yellow]not asked[/]"}
        answer = ok[h["reachable"]]
        console.print(f"[bold]下载源 source {h['source']}[/] {h['endpoint']}: {answer} ({h['detail']})")

    dt = Table(title="磁盘 Disk")
    for col in ("setting", "path", "free GiB", "total GiB"):
        dt.add_column(col)
    for d in report.disk:
        dt.add_row(
            d["setting"],
            d["path"] + ("" if d["exists"] else " (not created yet)"),
            str(d["free_gib"]),
            str(d["total_gib"]),
        )
    console.print(dt)

    if report.leftovers:
        fixed = any("done" in row for row in report.leftovers)
        hint = "" if fixed else " (xiaoshuo doctor --fix)"
        lt = Table(title=f"中断留下的文件 Leftovers of killed runs{hint}")
        for col in ("what", "path", "detail", *(["done"] if fixed else [])):
            lt.add_column(col, overflow="fold")
        for row in report.leftovers:
            lt.add_row(row["what"], row["path"], row["detail"], *([row.get("done", "")] if fixed else []))
        console.print(lt)

    if report.gpu_processes:
        gp = Table(title="占用显存的进程 Processes holding GPU memory")
        for col in ("pid", "name", "MiB"):
            gp.add_column(col)
        for p in report.gpu_processes:
            gp.add_row(p["pid"], p["name"], p["used_mib"])
        console.print(gp)

    if report.smoke:
        st = Table(title="冒烟测试 Smoke test (tiny random model, offline)")
        for col in ("backend", "result", "seconds", "detail"):
            st.add_column(col, overflow="fold")
        for s in report.smoke:
            st.add_row(
                s["backend"],
                "[green]ok[/]" if s["ok"] else "[red]FAILED[/]",
                f"{s['seconds']:.1f}",
                f"{s['detail']} — {s['tokens']} tokens",
            )
        console.print(st)


@contextmanager
def prepare_progress(
    console: Console, *, summaries: bool = False
) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar over bytes; yields the callback ``prepare`` calls (with ``summaries``, a second
    bar over the chapters the model summarises, fed by the callback's ``summary(done, total, title)``)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Amount(ProgressColumn):  # bytes for the files, a count for the chapters summarised
        def render(self, task):
            if task.fields.get("unit") == "章":
                return Text(f"{int(task.completed)}/{int(task.total or 0)} 章")
            return DownloadColumn().render(task)

    with Progress(
        TextColumn("[bold]{task.fields[label]}[/]"),
        BarColumn(),
        Amount(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("", total=None, label="准备 prepare")

        def update(name: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None, description=name)

        if summaries:
            chapters = progress.add_task("", total=None, label="摘要 summarize", unit="章")

            def summary(done: int, total: int, title: str) -> None:
                progress.update(chapters, completed=done, total=total, description=title)

            update.summary = summary  # type: ignore[attr-defined]
        yield update


def render_prepare(manifest: dict, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title="每个文件 Per file")
    for col in ("file", "status", "encoding", "docs", "chapters", "chars", "samples", "note"):
        table.add_column(col, overflow="fold")
    for s in manifest["sources"]:
        note = s["error"] or "; ".join(s["warnings"][:2])
        status = "[green]ok[/]" if s["status"] == "ok" else "[red]error[/]"
        table.add_row(
            s["path"],
            status,
            s["encoding"],
            str(s["documents"]),
            str(s["chapters"]),
            str(s["characters"]),
            str(s["samples"]),
            note,
        )
    console.print(table)
    t = manifest["totals"]
    summary = Table(title="汇总 Summary", show_header=False)
    summary.add_row("files ok / failed", f"{t['files_ok']} / {t['files_failed']}")
    summary.add_row("documents / chapters", f"{t['documents']} / {t['chapters']}")
    summary.add_row(
        "samples (train / val)", f"{t['samples']} ({t.get('train_samples', 0)} / {t.get('val_samples', 0)})"
    )
    summary.add_row("tokens", str(t["tokens"]))
    summary.add_row("duplicates removed", str(t["duplicates_removed"]))
    if "seconds" in manifest:
        summary.add_row("time", f"{manifest['seconds']:.1f} s")
    for split, outputs in manifest.get("outputs", {}).items():
        for fmt, o in outputs.items():
            summary.add_row(f"{split}/{fmt}", f"{o['path']} — {o['samples']} samples")
    composed = manifest.get("compose") or {}
    if composed.get("summary_sources"):  # where the compose samples' 前情提要 came from, per chapter
        sources = ", ".join(f"{k} {v}" for k, v in sorted(composed["summary_sources"].items()))
        summary.add_row("compose 前情提要 summaries", sources)
    for note in composed.get("skipped", [])[:5] if isinstance(composed.get("skipped"), list) else []:
        summary.add_row("compose skipped", note)
    console.print(summary)
