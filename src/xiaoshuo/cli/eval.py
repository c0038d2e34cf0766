"""``xiaoshuo eval style|book|memory|compare|probe``: how like the author the adapter writes, a book's health,
what its memory puts in prompts.

Each command calls one function of :mod:`xiaoshuo.eval` and prints a rich table, or the JSON report
(``--json``; ``--output FILE`` also writes it, atomically; ``--html FILE`` a self-contained HTML report with
charts).  Only ``eval style`` loads a model (one engine serves the base and the adapter); book health
reads the chapters and memory, the memory probe composes prompts without generating.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from xiaoshuo.cli.options import (
    BackendOpt,
    JsonOpt,
    LoraOpt,
    ModelOpt,
    OptionalNovelOpt,
    choose_adapter,
    novels,
)
from xiaoshuo.cli.state import cli_state

app = typer.Typer(
    name="eval",
    help="评估 / Measure the writing: book health, memory recall, compare reports.",
    no_args_is_help=True,
)
SlugArg = Annotated[str, typer.Argument(help="The novel's slug (xiaoshuo novel list).")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", metavar="FILE", help="Also write the JSON report to FILE.")
]
HtmlOpt = Annotated[
    Path | None,
    typer.Option("--html", metavar="FILE", help="Also write a self-contained HTML report with charts."),
]
CHARS_TOKENIZER = "chars"


def _emit(
    settings: Any, report: dict[str, Any], as_json: bool, output: Path | None, html: Path | None = None
) -> bool:
    """Write ``--output`` and ``--html``, print ``--json``; returns whether the report was printed as JSON.

    Both files go through export's target rules (``writing.exporting.write_export``): never into the data,
    models or checkpoints folders (another novel's ``outline.json``), never through a link, onto a device
    or a folder; an earlier report at the same path is replaced (atomically)."""
    from xiaoshuo.writing.exporting import write_export

    if html is not None:
        from xiaoshuo.eval.html import render

        write_export(settings, html, render(report).encode("utf-8"), overwrite=True)
        typer.echo(f"HTML 报告已写入 HTML report written: {html}", err=True)
    if output is not None:
        data = json.dumps(report, ensure_ascii=False, indent=2, default=str)
        write_export(settings, output, data.encode("utf-8"), overwrite=True)
        typer.echo(f"报告已写入 report written: {output}", err=True)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    return as_json


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


@app.command("style")
def style_cmd(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option("--data", metavar="PREPARED_DIR", help="prepare's output folder: its val split."),
    ] = None,
    novel: OptionalNovelOpt = None,  # a novel: its written chapters are the held-out text
    adapter: Annotated[
        str | None,
        typer.Option(
            "--adapter",
            help="Adapter to measure: a trained adapter's name, a folder, or none (default: the first --lora,"
            " else the newest trained adapter).",
        ),
    ] = None,
    samples: Annotated[int, typer.Option("--samples", help="Passages to continue.")] = 20,
    chars: Annotated[
        int, typer.Option("--chars", help="字 per continuation (the author's and each model's).")
    ] = 600,
    seed: Annotated[
        int, typer.Option("--seed", help="Chooses the passages; passage i samples with seed+i.")
    ] = 0,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    lora: LoraOpt = None,
    judge_url: Annotated[
        str | None, typer.Option("--judge-url", help="OpenAI-compatible server of a judge model (optional).")
    ] = None,
    judge_model: Annotated[str | None, typer.Option("--judge-model", help="The judge's model name.")] = None,
    judge_samples: Annotated[int, typer.Option("--judge-samples", help="Passages the judge reads.")] = 3,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
    html: HtmlOpt = None,
) -> None:
    """文风评估 / Does the adapter write more like the author than the base? Style distance and perplexity."""
    from rich.console import Console
    from rich.table import Table

    from xiaoshuo.engine import load_engine, parse_lora_specs
    from xiaoshuo.eval.style import StyleEvalError, run_style_eval

    if (data is None) == (novel is None):
        raise StyleEvalError(
            "请指定一个留出文本来源 (give exactly one source of held-out text)",
            expected="--data PREPARED_DIR or --novel SLUG",
            received={"data": str(data) if data else None, "novel": novel},
        )
    # one engine in LoRA mode serves both systems (a merged engine would reload for the base)
    settings = cli_state(ctx).settings(**{"engine.merge_adapter": "never"})
    book = novels(ctx).get(novel) if novel is not None else None
    adapters = parse_lora_specs(lora)
    use_backend = backend or settings.engine.backend
    if adapter is None and not adapters:
        from xiaoshuo.adapters import list_adapters

        trained = list_adapters(settings.paths.checkpoints_dir)
        adapter = trained[-1].name if trained else "none"
    use = choose_adapter(settings, adapters, adapter, use_backend)
    judge = None
    if judge_url or judge_model:
        from xiaoshuo.eval.judge import Judge

        judge = Judge.connect(settings, judge_url, judge_model, samples=judge_samples)
    with contextlib.ExitStack() as stack:
        if judge is not None:
            stack.callback(judge.close)
        engine = stack.enter_context(load_engine(settings, backend=backend, model=model, lora=adapters))
        report = run_style_eval(
            engine,
            data=data,
            novel=book,
            adapter=use,
            samples=samples,
            chars=chars,
            seed=seed,
            model=model or settings.model.base_model,
            judge=judge,
            progress=lambda msg: typer.echo(msg, err=True),
        )
    if _emit(settings, report, as_json, output, html):
        return
    console = Console()
    systems = ["base"] + (["adapter"] if report["adapter"] else [])
    table = Table(title=f"文风 style — {report['samples']} 段 × {report['chars']} 字, adapter {use or '-'}")
    for col in ("feature", "作者 author", *systems, *(["gain"] if report["gain"] else [])):
        table.add_column(col)
    gain = report["gain"]

    def row(label: str, author: str, values: list[Any], change: Any, digits: int = 3) -> None:
        extra = [_fmt(change, digits) if change is not None else ""] if gain else []
        table.add_row(label, author, *(_fmt(v, digits) for v in values), *extra)

    for key in ("sentence_mean", "dialogue_share", "punctuation_per_100", "mattr", "paragraph_mean"):
        row(
            key,
            _fmt(report["author"]["features"][key], 3),
            [report[s]["features"][key] for s in systems],
            None,
        )
    for key in report["base"]["components"]:
        change = gain["components"][key] if gain else None
        row(f"距离 {key}", "0", [report[s]["components"][key] for s in systems], change)
    row("[b]文风距离 style distance[/]", "0", [report[s]["style_distance"] for s in systems],
        gain and gain["style_distance"], 4)  # fmt: skip
    row("每字困惑度 perplexity per 字", "", [report[s]["perplexity"] for s in systems],
        gain and gain["perplexity"], 2)  # fmt: skip
    console.print(table)
    if report["judge"]:
        j = report["judge"]
        means = "  ".join(f"{s} {_fmt(v, 2)}" for s, v in j["mean"].items())
        console.print(f"评委 judge {j['model']}: {means}  两序一致 agreement {_fmt(j['agreement'], 2)}")
    for w in report["warnings"]:
        typer.echo(f"! {w}", err=True)


@app.command("book")
def book_cmd(
    ctx: typer.Context,
    slug: SlugArg,
    baseline: Annotated[
        int | None,
        typer.Option(
            "--baseline", help="Style drift against this many first chapters (default: a quarter, 1-5)."
        ),
    ] = None,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
    html: HtmlOpt = None,
) -> None:
    """体检 / Book health: 字 vs target, repetition, AI味, consistency findings, style drift, degradation."""
    from rich.console import Console
    from rich.table import Table

    from xiaoshuo.eval.book import book_health
    from xiaoshuo.eval.flavour import load_flavour
    from xiaoshuo.memory import MemoryStore, StoryMemoryError

    settings = cli_state(ctx).settings()
    novel = novels(ctx).get(slug)  # a missing novel is an error here, before the memory is opened
    flavour = load_flavour(settings.eval.ai_flavour_file or None)
    entries = None
    warning = ""
    try:
        with MemoryStore(settings) as store:
            entries = store.list(slug)
    except StoryMemoryError as exc:  # locked by a running WebUI, unreadable …: health without memory
        warning = f"记忆不可用 (memory unavailable): {exc}"
    report = book_health(
        novel,
        entries=entries,
        flavour=flavour,
        ngram=settings.writing.repetition_ngram,
        baseline_chapters=baseline,
        reappear_gap=settings.writing.reappear_gap,
    )
    if warning:
        report["warnings"].append(warning)
    if _emit(settings, report, as_json, output, html):
        return
    console = Console()
    table = Table(title=f"《{report['title']}》体检 book health — {report['book']['chapters']} 章")
    for col in ("章", "字/目标", "长度分", "重复率", "AI味/千字", "问题/万字", "文风漂移", "常见AI味"):
        table.add_column(col, overflow="fold")
    for c in report["chapters"]:
        table.add_row(
            str(c["number"]),
            f"{c['chars']}/{c['target_chars']}",
            _fmt(c["length_score"], 1),
            f"{c['repetition_rate']:.1%}",
            _fmt(c["ai_flavour"]),
            _fmt(c["findings_per_10k"]),
            _fmt(c["style_drift"], 3),
            "、".join(c["ai_flavour_top"]),
        )
    console.print(table)
    b = report["book"]
    summary = Table(title="全书 whole book", show_header=False)
    summary.add_row("字", f"{b['chars']}")
    summary.add_row("长度分 length score (mean)", _fmt(b["length_score"], 1))
    summary.add_row("重复率 repetition (8-字 n-grams)", f"{b['repetition_rate']:.1%}")
    summary.add_row("AI味 per 1,000 字", _fmt(b["ai_flavour"]))
    summary.add_row("一致性问题 findings per 10,000 字", _fmt(b["findings_per_10k"]))
    summary.add_row("文风漂移 style drift (mean)", _fmt(b["style_drift"], 3))
    summary.add_row("逾期伏笔 overdue threads", str(b["threads_overdue"]))
    console.print(summary)
    if report["degradation"]:
        deg = Table(title="衰退 degradation: last quarter − first quarter")
        for col in ("metric", "first quarter", "last quarter", "change"):
            deg.add_column(col)
        for key, d in report["degradation"].items():
            deg.add_row(key, _fmt(d["first_quarter"], 3), _fmt(d["last_quarter"], 3), _fmt(d["change"], 3))
        console.print(deg)
    for t in report["threads_overdue"]:
        console.print(
            f"[yellow]逾期伏笔 overdue[/] {t['name'] or t['text'][:20]}"
            f"（第{t['chapter']}章埋下，计划第{t['payoff_chapter']}章回收）"
        )
    for w in report["warnings"]:
        typer.echo(f"! {w}", err=True)


def _counter(settings: Any, tokenizer: str | None) -> tuple[Any, str]:
    name = tokenizer or settings.data.tokenizer or settings.model.base_model
    if name == CHARS_TOKENIZER:
        return len, "chars (one token per character, an estimate)"
    from xiaoshuo.data.chunking import TokenCounter, load_tokenizer
    from xiaoshuo.errors import XiaoshuoError

    try:
        return TokenCounter(load_tokenizer(name, models_dir=settings.paths.models_dir)).count, name
    except XiaoshuoError as exc:
        exc.fix = f"{exc.fix or ''}；或用 --tokenizer chars 按字估算 (or count one token per 字)".lstrip("；")
        raise XiaoshuoError(exc.message, expected=exc.expected, received=exc.received, fix=exc.fix) from None


def _chapters(value: str | None) -> list[int] | None:
    if not value:
        return None
    from xiaoshuo.errors import XiaoshuoError

    out: list[int] = []
    for part in value.replace("，", ",").split(","):
        part = part.strip()
        a, sep, b = part.partition("-")
        try:
            out.extend(range(int(a), int(b) + 1) if sep else [int(a)])
        except ValueError:
            raise XiaoshuoError(
                f"章节列表写错了 (bad chapter list): {value}",
                expected="numbers and ranges: 12,24 or 10-20",
                received=part,
            ) from None
    return sorted(set(out))


@app.command("memory")
def memory_cmd(
    ctx: typer.Context,
    slug: SlugArg,
    chapters: Annotated[
        str | None,
        typer.Option(
            "--chapters", help="Chapters to compose: 12,24 or 10-20 (default: 12 spread over the book)."
        ),
    ] = None,
    budget: Annotated[
        int | None,
        typer.Option("--budget", help="Prompt token budget (writing.prompt_budget, else 8192)."),
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            "--tokenizer",
            help="Counts tokens: a tokenizer (data.tokenizer, else model.base_model), builtin-tiny or chars.",
        ),
    ] = None,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
    html: HtmlOpt = None,
) -> None:
    """记忆体检 / Compose each chapter's prompt (no generation): cast cards, past events, future leaks."""
    from rich.console import Console
    from rich.table import Table

    from xiaoshuo.eval.memory import memory_probe
    from xiaoshuo.memory import MemoryStore

    settings = cli_state(ctx).settings()
    novel = novels(ctx).get(slug)
    count, name = _counter(settings, tokenizer)
    with MemoryStore(settings) as store:
        report = memory_probe(
            novel, store, settings, count, chapters=_chapters(chapters), budget=budget, tokenizer=name
        )
    if _emit(settings, report, as_json, output, html):
        return
    console = Console()
    table = Table(title=f"记忆体检 memory — {slug}, budget {report['budget']} tokens ({name})")
    for col in ("章", "出场", "人物卡", "往事召回", "未来泄漏", "最新状态", "记忆 tokens", "提示词 tokens"):
        table.add_column(col, overflow="fold")
    for c in report["chapters"]:
        table.add_row(
            str(c["number"]),
            "、".join(c["cast"]),
            f"{c['cast_cards_shown']}/{c['cast_cards']}",
            f"{c['past_events_shown']}/{c['past_events']}",
            "[red]" + str(len(c["future_leaks"])) + "[/]" if c["future_leaks"] else "0",
            _fmt(c["latest_state_correctness"]),
            str(c["tokens"].get("相关记忆", 0)),
            f"{c['prompt_tokens']}/{c['budget']}",
        )
    console.print(table)
    summary = Table(title="全书 pooled", show_header=False)
    summary.add_row("cast_card_recall 人物卡召回", _fmt(report["cast_card_recall"]))
    summary.add_row("past_event_recall 往事召回", _fmt(report["past_event_recall"]))
    summary.add_row("future_leaks 未来泄漏", str(report["future_leaks"]))
    summary.add_row("latest_state_correctness 最新状态", _fmt(report["latest_state_correctness"]))
    summary.add_row(
        "tokens per section (mean)", "  ".join(f"{k} {v:.0f}" for k, v in report["tokens_mean"].items())
    )
    console.print(summary)
    for w in report["warnings"]:
        typer.echo(f"! {w}", err=True)
    for c in report["chapters"]:
        for leak in c["future_leaks"]:
            console.print(
                f"[red]泄漏 leak[/] 第{c['number']}章的提示词里有第{leak['chapter']}章的内容 "
                f"({leak['where']}): {leak['text'][:60]}"
            )


@app.command("compare")
def compare_cmd(
    a: Annotated[Path, typer.Argument(help="The older report (JSON from eval style|book|memory --output).")],
    b: Annotated[Path, typer.Argument(help="The newer report.")],
    as_json: JsonOpt = False,
) -> None:
    """对比 / What changed between two reports of the same kind."""
    from rich.console import Console
    from rich.table import Table

    from xiaoshuo.eval.report import compare, load_report

    result = compare(load_report(a), load_report(b))
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2, default=str))
        return
    style = {"better": "green", "worse": "red", "same": "dim", "n/a": "dim"}
    table = Table(title=f"{a.name} → {b.name}")
    for col in ("figure", "A", "B", "change"):
        table.add_column(col)
    for key, f in result["figures"].items():
        table.add_row(
            key,
            _fmt(f["a"], 3),
            _fmt(f["b"], 3),
            f"[{style[f['verdict']]}]{_fmt(f['change'], 3)} {f['verdict']}[/]",
        )
    Console().print(table)
    worse = [
        (c["number"], key)
        for c in result["chapters"]
        for key, f in c.items()
        if key != "number" and f["verdict"] == "worse"
    ]
    if worse:
        typer.echo("变差的章 chapters that got worse: " + ", ".join(f"{n}:{k}" for n, k in worse[:20]))


@app.command("probe")
def probe_cmd(
    ctx: typer.Context,
    slug: SlugArg,
    chapters: Annotated[int, typer.Option("--chapters", help="Chapters in the outline (all written).")] = 60,
    characters: Annotated[int, typer.Option("--characters", help="Characters (2-16).")] = 10,
    events: Annotated[int, typer.Option("--events", help="Dated plot events, two characters each.")] = 36,
    chapter_chars: Annotated[int, typer.Option("--chapter-chars", help="字 per generated chapter.")] = 1200,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """探针小说 / Write a generated probe novel and its memory (known answers for eval book|memory)."""
    from xiaoshuo.errors import XiaoshuoError
    from xiaoshuo.eval.probe import NAMES, build_probe
    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.writing import Novels

    if not 2 <= characters <= len(NAMES) or chapters < 1 or events < 0:
        raise XiaoshuoError(
            "探针参数超出范围 (probe size out of range)",
            expected=f"--characters 2..{len(NAMES)}, --chapters >= 1, --events >= 0",
            received={"characters": characters, "chapters": chapters, "events": events},
        )
    settings = cli_state(ctx).settings()
    with MemoryStore(settings) as store:
        probe = build_probe(
            Novels.from_settings(settings),
            store,
            slug,
            chapters=chapters,
            characters=characters,
            events=events,
            seed=seed,
            chapter_chars=chapter_chars,
        )
    typer.echo(
        f"已生成探针小说 probe written: {slug} — {probe.chapters} 章, {len(probe.names)} 人物, "
        f"{len(probe.events)} 事件 dated events"
    )
