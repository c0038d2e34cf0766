"""``xiaoshuo write chapter|continue|rewrite``: :func:`xiaoshuo.writing.actions.write` from the CLI.

The engine and the memory store are opened here and passed in; the commands are
:func:`xiaoshuo.writing.actions.write` (the WebUI's book page calls it too) and ``--dry-run`` is the
writer's :meth:`~xiaoshuo.writing.Writer.preview` on a prompt-only engine (the tokenizer, no model:
:func:`~xiaoshuo.engine.load_prompt_engine`); prompts, the segment loop and versions live in
:mod:`xiaoshuo.writing`.  Text streams to stdout (candidate 1), progress to stderr; ``--json`` prints
one JSON document at the end instead.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated, Any

import typer

from xiaoshuo.cli.options import (
    BackendOpt,
    JsonOpt,
    ModelOpt,
    NovelOpt,
    choose_adapter,
    echo_json,
    novels,
)
from xiaoshuo.cli.state import cli_state

app = typer.Typer(
    name="write", help="写作 / Write chapters to a length, continue, rewrite.", no_args_is_help=True
)

CandOpt = Annotated[int, typer.Option("--candidates", "-k", help="Candidates to generate (1-16).")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed for repeatable sampling.")]
AdapterOpt = Annotated[
    str | None, typer.Option("--adapter", help="LoRA adapter (default: the novel's); 'none' for the base.")
]
MemoryOpt = Annotated[bool, typer.Option("--memory/--no-memory", help="Retrieve story memory into prompts.")]
AcceptOpt = Annotated[
    bool | None,
    typer.Option(
        "--accept/--no-accept", help="Make candidate 1 the chapter text (default: when it is empty)."
    ),
]
TempOpt = Annotated[float | None, typer.Option("--temperature", "-t")]


@contextlib.contextmanager
def writer_for(
    ctx: typer.Context,
    slug: str,
    *,
    backend,
    model,
    adapter,
    memory: bool,
    temperature,
    as_json: bool,
    k: int,
    dry_run: bool = False,
):
    """A ready :class:`Writer`: settings, novel, engine (with the chosen adapter) and memory.

    ``dry_run``: the engine only composes (:func:`~xiaoshuo.engine.load_prompt_engine`: the tokenizer,
    no model weights, no backend start)."""
    from xiaoshuo.engine import SamplingSettings, load_engine, load_prompt_engine
    from xiaoshuo.writing import Writer
    from xiaoshuo.writing.prompts import Prompts

    settings = cli_state(ctx).settings()
    Prompts.from_settings(settings)  # a bad writing.prompts_file fails before the model loads
    novel = novels(ctx).get(slug)
    wanted = adapter if adapter is not None else (novel.card().adapter or "none")
    adapters: dict[str, str] = {}
    use = choose_adapter(settings, adapters, wanted, backend or settings.engine.backend)
    sampling = SamplingSettings.from_config(settings.generation, temperature=temperature)
    with contextlib.ExitStack() as stack:
        store = None
        if memory:
            from xiaoshuo.memory import MemoryStore

            store = stack.enter_context(MemoryStore(settings))
        load = load_prompt_engine if dry_run else load_engine
        engine = stack.enter_context(load(settings, backend=backend, model=model, lora=adapters))
        yield Writer(
            settings,
            engine,
            novel,
            store=store,
            memory_on=memory,
            sampling=sampling,
            adapter=use or "",
            on_progress=None if as_json else _progress_printer(),
            on_text=None if as_json or k > 1 else _stream_printer(),
        )


def _stream_printer():
    def on_text(index: int, piece: str) -> None:
        if index == 0:
            sys.stdout.write(piece)
            sys.stdout.flush()

    return on_text


def _progress_printer():
    def on_progress(event: dict[str, Any]) -> None:
        kind = event.get("event")
        who = f"[候选 {event.get('candidate', 0) + 1}]"
        if kind == "segment":
            typer.echo(
                f"\n{who} 段 {event['segment'] + 1}: {event['chars']}/{event['target']} 字",
                err=True,
            )
        elif kind == "repetition_retry":
            typer.echo(
                f"\n{who} 段 {event['segment'] + 1} 重复率 {event['rate']:.0%}，重写",
                err=True,
            )
        elif kind == "candidate_saved":
            typer.echo(f"{who} 已保存为版本 {event['version']}", err=True)

    return on_progress


def _report(result, as_json: bool) -> None:
    data = result.as_dict()
    if as_json:
        echo_json(data)
        return
    typer.echo("", err=True)
    for c in data["candidates"]:
        typer.echo(
            f"候选 {c['candidate'] + 1}: 版本 {c['version']} · {c['chars']}/{c['target_chars']} 字 · "
            f"长度分 {c['length_score']:.1f} · 重复率 {c['repetition_rate']:.1%} · 段 {len(c['segments'])}"
            + ("" if c["on_sentence_boundary"] else " · 未落在句末"),
            err=True,
        )
    if data["accepted_version"]:
        typer.echo(f"✓ 第 {data['chapter']} 章正文 = 版本 {data['accepted_version']}", err=True)
    else:
        typer.echo(
            "候选已保存；采用 (accept one): xiaoshuo chapter accept "
            f"--novel {data['novel']} {data['chapter']} --version V",
            err=True,
        )


@app.command("chapter")
def chapter_cmd(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="Chapter number (from 1), or a range such as 1-5.")],
    novel: NovelOpt,
    target_chars: Annotated[int | None, typer.Option("--target-chars", help="Target length in 字.")] = None,
    candidates: CandOpt = 1,
    seed: SeedOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Compose the first prompt and print its account with the tokenizer only (no model load).",
        ),
    ] = False,
    accept: AcceptOpt = None,
    adapter: AdapterOpt = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    memory: MemoryOpt = True,
    temperature: TempOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """写一章 / Write chapter N (or N-M in order) from the outline to its target length in 字.

    Candidates are saved as versions; with one candidate an empty chapter takes it as its text.
    """
    from xiaoshuo.writing import actions, run_sync

    numbers = chapter_range(number)
    with writer_for(
        ctx,
        novel,
        backend=backend,
        model=model,
        adapter=adapter,
        memory=memory,
        temperature=temperature,
        as_json=as_json,
        k=candidates,
        dry_run=dry_run,
    ) as writer:
        if dry_run:
            data = writer.dry_run(numbers[0], target_chars=target_chars)
            if as_json:
                echo_json(data)
            else:
                typer.echo(data["prompt"])
                for row in data["account"]:
                    mark = "✓" if row["included"] else "✗"
                    typer.echo(
                        f"{mark} {row['section']} {row['name'] or row['source']}: "
                        f"{row['tokens']} · {row['reason']}",
                        err=True,
                    )
            return
        results = []
        for n in numbers:
            if len(numbers) > 1 and _locked(writer.novel, n):
                typer.echo(f"· 跳过第{n}章：已锁定 (chapter {n} is locked, skipped)", err=True)
                continue
            result = run_sync(
                actions.write(
                    writer, "chapter", n, target_chars=target_chars, candidates=candidates, seed=seed,
                    accept=accept,
                )
            )  # fmt: skip
            results.append(result)
            if not as_json:
                _report(result, as_json)
    if as_json:
        echo_json(results[0].as_dict() if len(results) == 1 else [r.as_dict() for r in results])


def _locked(novel, number: int) -> bool:
    """A chapter of a range that ``chapter lock`` protects (a batch skips it; one chapter is refused)."""
    plan = novel.outline().chapter(number)
    return plan is not None and plan.locked


def chapter_range(spec: str) -> list[int]:
    """``"3"`` → [3]; ``"1-5"`` → [1, 2, 3, 4, 5]."""
    from xiaoshuo.writing import WritingError

    first, sep, last = spec.strip().partition("-")
    try:
        a = int(first)
        b = int(last) if sep else a
    except ValueError:
        a = b = 0
    if a < 1 or b < a or b - a >= 1000:
        raise WritingError(
            "章节编号无效 (invalid chapter number)",
            expected="N or A-B with 1 <= A <= B (e.g. 3 or 1-5)",
            received=spec,
        )
    return list(range(a, b + 1))


@app.command("continue")
def continue_cmd(
    ctx: typer.Context,
    novel: NovelOpt,
    chapter: Annotated[
        int | None, typer.Option("--chapter", help="Chapter (default: the last written).")
    ] = None,
    chars: Annotated[int, typer.Option("--chars", help="About how many 字 to add.")] = 500,
    candidates: CandOpt = 1,
    seed: SeedOpt = None,
    accept: AcceptOpt = None,
    adapter: AdapterOpt = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    memory: MemoryOpt = True,
    temperature: TempOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """续写 / Continue a chapter by about N 字 (one candidate is accepted unless --no-accept)."""
    from xiaoshuo.writing import WritingError, actions, run_sync

    with writer_for(
        ctx,
        novel,
        backend=backend,
        model=model,
        adapter=adapter,
        memory=memory,
        temperature=temperature,
        as_json=as_json,
        k=candidates,
    ) as writer:
        if chapter is None:
            written = writer.novel.written_chapters()
            if not written:
                raise WritingError(
                    "还没有写过任何章节 (no chapter written yet)",
                    fix=f"xiaoshuo write chapter 1 --novel {novel}",
                )
            chapter = written[-1]
        result = run_sync(
            actions.write(
                writer, "continue", chapter, chars=chars, candidates=candidates, seed=seed, accept=accept
            )
        )
    _report(result, as_json)


@app.command("rewrite")
def rewrite_cmd(
    ctx: typer.Context,
    novel: NovelOpt,
    chapter: Annotated[int, typer.Option("--chapter", help="Chapter number.")],
    start: Annotated[int, typer.Option("--start", help="First character of the passage (0-based).")],
    end: Annotated[int, typer.Option("--end", help="End of the passage (exclusive).")],
    instruction: Annotated[str, typer.Option("--instruction", "-i", help="How to rewrite it.")] = "",
    mode: Annotated[
        str, typer.Option("--mode", help="rewrite (改写) | expand (扩写) | shorten (缩写).")
    ] = "rewrite",
    chars: Annotated[int | None, typer.Option("--chars", help="Length of the new passage in 字.")] = None,
    candidates: CandOpt = 1,
    seed: SeedOpt = None,
    accept: AcceptOpt = None,
    adapter: AdapterOpt = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    memory: MemoryOpt = True,
    temperature: TempOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """改写 / 扩写 / 缩写 a passage of a chapter with an instruction."""
    from xiaoshuo.writing import WritingError, actions, run_sync

    with writer_for(
        ctx,
        novel,
        backend=backend,
        model=model,
        adapter=adapter,
        memory=memory,
        temperature=temperature,
        as_json=as_json,
        k=candidates,
    ) as writer:
        if mode not in ("rewrite", "expand", "shorten"):
            raise WritingError(
                "改写方式无效 (invalid mode)", expected="rewrite, expand or shorten", received=mode
            )
        result = run_sync(
            actions.write(
                writer,
                mode,
                chapter,
                start=start,
                end=end,
                instruction=instruction,
                chars=chars,
                candidates=candidates,
                seed=seed,
                accept=accept,
            )
        )
    _report(result, as_json)
