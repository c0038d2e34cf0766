"""Planning: outlines in checkpointed batches and chapter summaries (前情提要), on structured output.

    result = run_sync(generate_outline(engine, novel, chapters=300, batch=10))
    result = run_sync(resume_outline(engine, novel))                                 # 继续 after a crash
    result = run_sync(restart_outline(engine, novel, 21, chapters=60))               # 重新开始 at 21
    stopped = interruption(novel)              # None, or where a run stopped and why (in Chinese)
    summary = run_sync(summarize_chapter(engine, novel, 7))                          # stored on the plan

Outline generation asks for ``batch`` chapters per request (a JSON schema with exactly that many
chapters, so a batch can neither drop nor add one; every string and list in it is bounded, and the
answer's token budget is the batch's bound — fewer chapters per request, or a smaller form, when the
context cannot hold it; a cut-off answer halves the batch); each request sees the card, the memory's
characters and places, and the previous chapters' synopses (the newest in full, older ones as
titles, within the context).  Numbers are assigned here, by position, never by the model.
After every batch the outline is written atomically, then ``outline.progress.json``; a rerun
with ``resume=True`` continues at the recorded chapter.  A crash between the two writes only
makes the resumed run regenerate that one batch: chapters are replaced by number, so nothing is
lost, duplicated or renumbered.  Drafted and final chapters are never replaced; a run stops
before them and goes on after them.

This module does not parse CLI flags and does not write chapter text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import pydantic
from pydantic import Field, StringConstraints

from xiaoshuo.engine.types import SamplingSettings
from xiaoshuo.files import atomic_write_json
from xiaoshuo.writing.prompts import (
    DEFAULT_PROMPTS,
    Prompts,
    outline_ask,
    outline_line,
    outline_memory_line,
    outline_messages,
    outline_omitted,
    summary_ask,
    summary_messages,
)
from xiaoshuo.writing.schema import ChapterPlan, Outline, Volume, WritingError
from xiaoshuo.writing.structured import (
    DEFAULT_SAMPLING,
    StructuredOutputError,
    generate_json,
    schema_of,
    with_schema_hint,
)

PROGRESS_FILE = "outline.progress.json"
_SCHEMA_MARGIN = 64  # tokens kept free besides the answer and the prompt
_ANSWER_MARGIN = 40  # tokens added to a form's bound (the closing brackets, an end token)


@dataclass(frozen=True)
class PlanLimits:
    """Bounds of the forms: every string has a maxLength and every list a maxItems, so an answer's
    length is bounded and a weak model cannot spend its whole token budget inside one field.

    ``retries``: further tries of a form (each with a new seed derived from the run's seed) before it
    fails (``writing.structured_retries``)."""

    title_chars: int = 20
    synopsis_chars: int = 200
    names: int = 6  # characters / places per chapter
    name_chars: int = 12
    summary_chars: int = 300
    retries: int = 2

    @classmethod
    def from_settings(cls, settings: Any) -> PlanLimits:
        w = settings.writing
        return cls(
            synopsis_chars=w.outline_synopsis_chars,
            summary_chars=w.summary_chars,
            retries=w.structured_retries,
        )

    def chapter_tokens(self) -> int:
        """A generous bound on one planned chapter's JSON in tokens (a character may be 3 byte tokens)."""
        chars = self.title_chars + self.synopsis_chars + 2 * self.names * (self.name_chars + 3) + 80
        return chars * 3

    def summary_tokens(self) -> int:
        """The same bound for the summary form (summary, who, where, when)."""
        return (self.summary_chars + 2 * self.names * (self.name_chars + 3) + 2 * self.name_chars + 80) * 3

    def fitted(self, tokens: int, *, summary: bool = False) -> PlanLimits:
        """These limits, or smaller ones whose form's bound fits ``tokens`` (a short context: the demo's
        2,048 tokens).  The long text (synopsis / summary) shrinks first, to 40 字, then the name
        lists, then the text again; raises when not even the smallest form fits."""
        import dataclasses

        cost = PlanLimits.summary_tokens if summary else PlanLimits.chapter_tokens
        key = "summary_chars" if summary else "synopsis_chars"
        lim = self
        while cost(lim) > tokens:
            text = getattr(lim, key)
            if text > 40:
                lim = dataclasses.replace(lim, **{key: max(40, text - max(1, (cost(lim) - tokens) // 3))})
            elif lim.names > 2:
                lim = dataclasses.replace(lim, names=lim.names - 1)
            elif lim.name_chars > 6:
                lim = dataclasses.replace(lim, name_chars=lim.name_chars - 1)
            elif text > 10:
                lim = dataclasses.replace(lim, **{key: text - 1})
            else:
                raise WritingError(
                    "上下文太短，连一章大纲都放不下 (the context is too short for one planning form)",
                    expected=f"at least {cost(lim)} tokens for the answer",
                    received=f"{tokens} tokens left",
                    fix="换用上下文更长的模型，或增大 model.vllm_max_model_len",
                )
        return lim


def _text(max_chars: int, min_chars: int = 0) -> Any:
    return Annotated[str, StringConstraints(min_length=min_chars, max_length=max_chars)]


def _names(limits: PlanLimits) -> Any:
    return Annotated[list[_text(limits.name_chars, 1)], Field(max_length=limits.names)]


def chapter_form(limits: PlanLimits) -> type[pydantic.BaseModel]:
    return pydantic.create_model(
        "PlannedChapter",
        title=(_text(limits.title_chars, 1), ...),
        synopsis=(_text(limits.synopsis_chars, 1), ...),
        characters=(_names(limits), ...),
        places=(_names(limits), ...),
        __config__=pydantic.ConfigDict(extra="forbid"),
    )


def batch_form(count: int, limits: PlanLimits) -> type[pydantic.BaseModel]:
    """The schema of one batch: a volume title and exactly ``count`` chapters."""
    chapter = chapter_form(limits)
    return pydantic.create_model(
        "OutlineBatch",
        volume=(_text(limits.title_chars, 1), ...),
        chapters=(Annotated[list[chapter], Field(min_length=count, max_length=count)], ...),
        __config__=pydantic.ConfigDict(extra="forbid"),
    )


def summary_form(limits: PlanLimits) -> type[pydantic.BaseModel]:
    return pydantic.create_model(
        "ChapterSummary",
        summary=(_text(limits.summary_chars, 1), ...),
        who=(_names(limits), ...),
        where=(_names(limits), ...),
        when=(_text(limits.name_chars * 2), ...),
        __config__=pydantic.ConfigDict(extra="forbid"),
    )


# ---------------------------------------------------------------------------------------- progress
@dataclass
class Progress:
    target: int  # the outline should reach this chapter
    batch: int
    start: int  # first chapter (re)generated by this run
    next: int  # first chapter not yet done
    done: bool = False
    batches: int = 0
    updated: float = field(default_factory=time.time)


def read_progress(novel: Any) -> Progress | None:
    path = novel.root / PROGRESS_FILE
    try:
        return Progress(**json.loads(path.read_text("utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise WritingError(
            f"{PROGRESS_FILE} 已损坏 (unreadable)",
            received=f"{path}: {exc}",
            fix="删除该文件后用 --from K 重新生成 (delete it and rerun with --from K)",
        ) from None


def _save_progress(novel: Any, progress: Progress) -> None:
    progress.updated = time.time()
    atomic_write_json(novel.root / PROGRESS_FILE, progress.__dict__)


@dataclass
class OutlineResult:
    novel: str
    target: int
    start: int
    generated: list[int]  # chapter numbers written by this call, in order
    skipped: list[int]  # drafted/final chapters inside the range, kept
    batches: int
    seconds: float
    resumed: bool
    splits: int = 0  # batches halved after an answer was cut off at max_tokens
    limits: dict[str, int] | None = None  # the smaller form a short context needed (None: as asked)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__, seconds=round(self.seconds, 3))


# ---------------------------------------------------------------------------------------- outline
async def generate_outline(
    engine: Any,
    novel: Any,
    *,
    chapters: int | None = None,
    batch: int = 10,
    resume: bool = False,
    start: int | None = None,
    limits: PlanLimits | None = None,
    sampling: SamplingSettings | None = None,
    lora: str | None = None,
    store: Any = None,
    retries: int | None = None,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
    prompts: Prompts | None = None,
) -> OutlineResult:
    """Plan chapters up to ``chapters`` in batches (see the module docstring).

    ``start``: regenerate planned chapters from this number on (``--from``); default: append after
    the last chapter.  ``resume``: continue an interrupted run (its target, batch and range) —
    :func:`resume_outline` and :func:`restart_outline` are the two ways on after an interruption.
    A request holds at most ``batch`` chapters, fewer when their form's bound does not fit the context
    (:func:`fit_batch`); a batch answer cut off at max_tokens halves the batch and is asked again; an
    invalid answer is retried ``retries`` times (default ``limits.retries``) with new seeds.
    ``prompts``: the texts (:class:`~xiaoshuo.writing.prompts.Prompts`; default: the built-in ones).
    """
    limits = limits or PlanLimits()
    retries = limits.retries if retries is None else retries
    prompts = prompts or DEFAULT_PROMPTS
    began = time.monotonic()
    with novel.writer(what="outline generate"):
        progress = _begin(novel, chapters=chapters, batch=batch, resume=resume, start=start)
        result = OutlineResult(novel.slug, progress.target, progress.start, [], [], 0, 0.0, resume)
        memory = _memory_lines(store, novel.slug, prompts)
        cap = progress.batch  # halved after a batch whose answer was cut off at max_tokens
        while True:
            outline = novel.outline()
            numbers, skipped = _next_numbers(outline, progress.next, progress.target, cap)
            if not numbers:
                result.skipped += skipped
                break
            count, lim = fit_batch(engine, novel, outline, numbers, memory, limits, prompts)
            numbers = numbers[:count]
            form = batch_form(len(numbers), lim)
            messages = _outline_messages(engine, novel, outline, numbers, memory, form, lim, prompts)
            wanted = _answer_tokens(len(numbers), lim)
            hinted = with_schema_hint(messages, schema_of(form))
            try:
                answer = await generate_json(
                    engine,
                    messages,
                    form,
                    task="outline",
                    chapter=numbers[0],
                    sampling=_sampling(engine, sampling, wanted, hinted, first=numbers[0]),
                    lora=lora,
                    retries=retries,
                )
            except StructuredOutputError as exc:
                if exc.cut_off and len(numbers) > 1:  # the model outran the bound: smaller batches
                    cap = max(1, len(numbers) // 2)
                    result.splits += 1
                    continue
                raise _with_ways_out(exc, novel, progress) from None
            _apply(outline, numbers, answer)
            novel.save_outline(outline)  # the checkpoint: durable before the progress says so
            progress.next = numbers[-1] + 1
            progress.batches += 1
            _save_progress(novel, progress)
            result.skipped += skipped
            result.generated += numbers
            result.batches += 1
            if lim != limits:
                result.limits = {"synopsis_chars": lim.synopsis_chars, "names": lim.names,
                                 "name_chars": lim.name_chars}  # fmt: skip
            if on_batch is not None:
                on_batch({"chapters": numbers, "next": progress.next, "target": progress.target})
        progress.done = True
        _save_progress(novel, progress)
    result.seconds = time.monotonic() - began
    return result


async def resume_outline(engine: Any, novel: Any, **options: Any) -> OutlineResult:
    """继续: continue an interrupted outline run from its checkpoint (its target, batch and range).

    ``options``: as :func:`generate_outline` (``limits``, ``sampling``, ``store``, ``on_batch`` …); a
    seeded run repeats what an uninterrupted one would have planned.  Raises when nothing is interrupted
    (:func:`interruption` says beforehand)."""
    options.pop("resume", None)
    options.pop("start", None)
    return await generate_outline(engine, novel, resume=True, **options)


async def restart_outline(
    engine: Any, novel: Any, start: int, *, chapters: int | None = None, **options: Any
) -> OutlineResult:
    """重新开始: plan again from chapter ``start`` (``--from``), discarding an interrupted run's checkpoint.

    ``chapters``: the target; default the interrupted run's (else the outline's length).  Planned
    chapters from ``start`` on are replaced; drafted and final ones are kept."""
    if chapters is None:
        old = read_progress(novel)
        chapters = old.target if old is not None else max(start, len(novel.outline().chapters()))
    options.pop("resume", None)
    return await generate_outline(engine, novel, chapters=chapters, start=start, **options)


@dataclass(frozen=True)
class Interruption:
    """An outline run that stopped before its target: what a page offers 继续 / 重新开始 for."""

    target: int
    next: int  # the first chapter not planned yet: 继续 starts here
    start: int  # where the interrupted run began
    batch: int
    reason: str  # one Chinese sentence

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def interruption(novel: Any) -> Interruption | None:
    """The interrupted outline run of ``novel``, or None (never run, or finished).  Reads only."""
    old = read_progress(novel)
    if old is None or old.done:
        return None
    return Interruption(
        target=old.target,
        next=old.next,
        start=old.start,
        batch=old.batch,
        reason=f"上次的大纲生成在第 {old.next} 章前中断了（目标第 {old.target} 章）。"
        f"可以从第 {old.next} 章继续，或从某一章重新开始。",
    )


def _ways_out(novel: Any, progress: Progress) -> str:
    return (
        f"继续 (resume)：xiaoshuo outline generate --novel {novel.slug} "
        f"--chapters {progress.target} --resume；"
        f"或从第 K 章重新开始 (restart at K)：xiaoshuo outline generate --novel {novel.slug} "
        f"--chapters {progress.target} --from K（K ≤ {progress.next}）"
    )


def _with_ways_out(exc: StructuredOutputError, novel: Any, progress: Progress) -> StructuredOutputError:
    """The failed batch's error, its fix naming both ways on (the progress is saved)."""
    exc.fix = (
        f"已保存到第 {progress.next - 1} 章 (saved up to chapter {progress.next - 1})；{exc.fix}；"
        + _ways_out(novel, progress)
    )
    exc.args = (exc.format(),)
    return exc


def _begin(novel: Any, *, chapters: int | None, batch: int, resume: bool, start: int | None) -> Progress:
    old = read_progress(novel)
    existing = len(novel.outline().chapters())
    if resume:
        if old is None or old.done:
            raise WritingError(
                "没有可以继续的大纲生成 (nothing to resume)",
                expected="an interrupted `outline generate` run",
                received="no progress file"
                if old is None
                else f"the last run finished at chapter {old.target}",
                fix="去掉 --resume 重新运行 (run without --resume)",
            )
        if chapters is not None and chapters != old.target:
            raise WritingError(
                "--resume 的章数与中断的运行不同 (--chapters differs from the interrupted run)",
                expected=str(old.target),
                received=chapters,
                fix=_ways_out(novel, old),
            )
        return old
    if old is not None and not old.done and start is None:
        raise WritingError(
            f"上次的大纲生成在第 {old.next} 章前中断了，请选择继续或重新开始 "
            "(an outline run was interrupted)",
            expected=f"--resume to continue at chapter {old.next}, or --from K to start over at K",
            received=f"run to chapter {old.target}, stopped before chapter {old.next}",
            fix=_ways_out(novel, old),
        )
    if chapters is None or chapters < 1:
        raise WritingError("章数无效 (invalid --chapters)", expected="an integer >= 1", received=chapters)
    if not 1 <= batch <= 50:
        raise WritingError("批大小无效 (invalid --batch)", expected="an integer in 1..50", received=batch)
    first = existing + 1 if start is None else start
    if not 1 <= first <= existing + 1:
        raise WritingError(
            "--from 超出大纲范围 (--from is outside the outline)",
            expected=f"1..{existing + 1}",
            received=start,
            fix="选一个已有章节的编号，或不加 --from 在末尾续写大纲",
        )
    progress = Progress(target=chapters, batch=batch, start=first, next=first)
    _save_progress(novel, progress)
    return progress


def _next_numbers(outline: Outline, nxt: int, target: int, batch: int) -> tuple[list[int], list[int]]:
    """The next run of chapters to (re)generate: planned or new, contiguous, at most ``batch``."""
    total = len(outline.chapters())
    skipped = []
    n = nxt
    while n <= min(target, total) and _kept(outline.chapter(n)):
        skipped.append(n)  # drafted / final / locked: never replaced
        n += 1
    numbers = []
    while n <= target and len(numbers) < batch:
        plan = outline.chapter(n)
        if plan is not None and _kept(plan):
            break
        numbers.append(n)
        n += 1
    return numbers, skipped


def _kept(plan: ChapterPlan) -> bool:
    """A chapter outline regeneration never replaces: written (drafted / final) or locked."""
    return plan.status != "planned" or plan.locked


def _apply(outline: Outline, numbers: list[int], answer: Any) -> None:
    volume = answer.volume.strip() or "正文"
    for n, item in zip(numbers, answer.chapters, strict=True):
        fields = {
            "title": item.title.strip() or f"第{n}章",
            "synopsis": item.synopsis.strip(),
            "characters": [x.strip() for x in item.characters if x.strip()],
            "places": [x.strip() for x in item.places if x.strip()],
        }
        plan = outline.chapter(n)
        if plan is not None:
            if _kept(plan):  # _next_numbers never picks one; guard the invariant anyway
                raise WritingError(f"第 {n} 章已写或已锁定，不能替换 (chapter {n} is {plan.status})")
            for key, value in fields.items():
                setattr(plan, key, value)
            ChapterPlan.model_validate(plan.model_dump())
            continue
        if n != len(outline.chapters()) + 1:
            raise WritingError(f"大纲编号不连续 (outline numbering gap at chapter {n})")
        if not outline.volumes or outline.volumes[-1].title != volume:
            outline.volumes.append(Volume(title=volume))
        outline.volumes[-1].chapters.append(ChapterPlan(number=n, **fields))


def _memory_lines(store: Any, slug: str, prompts: Prompts) -> list[str]:
    if store is None:
        return []
    lines = []
    for kind in ("character", "setting"):
        for entry in store.list(slug, kind=kind)[:40]:
            lines.append(outline_memory_line(prompts, kind=kind, name=entry.name, text=entry.text[:60]))
    return lines


def _outline_messages(
    engine: Any,
    novel: Any,
    outline: Outline,
    numbers: list[int],
    memory: list[str],
    form: type[pydantic.BaseModel],
    limits: PlanLimits,
    prompts: Prompts,
) -> list[dict[str, str]]:
    first, last = numbers[0], numbers[-1]
    card = novel.card().render()
    ask = outline_ask(prompts, first=first, last=last, synopsis_chars=limits.synopsis_chars)
    after = [_line(c, prompts, full=True) for c in outline.chapters() if c.number > last][:3]
    answer_tokens = _answer_tokens(len(numbers), limits)
    frame = outline_messages(prompts, card=card, ask=ask, memory=memory, after=after)
    fixed = _prompt_tokens(engine, with_schema_hint(frame, schema_of(form)))
    budget = engine.context_len - answer_tokens - fixed - _SCHEMA_MARGIN
    history = _history(engine, [c for c in outline.chapters() if c.number < first], budget, prompts)
    return outline_messages(prompts, card=card, ask=ask, memory=memory, history=history, after=after)


def _answer_tokens(count: int, limits: PlanLimits) -> int:
    """Tokens kept for a batch's answer: the form's bound (``count`` chapters) and a margin."""
    return count * limits.chapter_tokens() + _ANSWER_MARGIN


def fit_batch(
    engine: Any,
    novel: Any,
    outline: Outline,
    numbers: list[int],
    memory: list[str],
    limits: PlanLimits,
    prompts: Prompts,
) -> tuple[int, PlanLimits]:
    """How many of ``numbers`` one request plans, and the form's limits: the answer's bound
    (chapters × :meth:`PlanLimits.chapter_tokens` + margin) must fit what the context leaves after the
    prompt without history, the margin and a reserve for the previous chapters (an eighth of the
    context).  Fewer chapters first; when not even one fits, :meth:`PlanLimits.fitted` shrinks the form."""
    form = batch_form(len(numbers), limits)
    first, last = numbers[0], numbers[-1]
    ask = outline_ask(prompts, first=first, last=last, synopsis_chars=limits.synopsis_chars)
    after = [_line(c, prompts, full=True) for c in outline.chapters() if c.number > last][:3]
    frame = outline_messages(prompts, card=novel.card().render(), ask=ask, memory=memory, after=after)
    fixed = _prompt_tokens(engine, with_schema_hint(frame, schema_of(form)))
    room = engine.context_len - fixed - _SCHEMA_MARGIN - engine.context_len // 8 - _ANSWER_MARGIN
    lim = limits.fitted(room)
    return max(1, min(len(numbers), room // lim.chapter_tokens())), lim


def _line(c: ChapterPlan, prompts: Prompts, *, full: bool) -> str:
    return outline_line(prompts, number=c.number, title=c.title, synopsis=c.synopsis if full else "")


def _history(engine: Any, before: list[ChapterPlan], budget: int, prompts: Prompts) -> str:
    """Previous chapters, newest first into the budget: the newest with synopses, then titles."""
    lines: list[str] = []
    used = 0
    omitted = 0
    for i, c in enumerate(reversed(before)):
        line = _line(c, prompts, full=used < budget * 2 // 3)
        cost = engine.count_tokens(line) + 1
        if used + cost > budget:
            omitted = len(before) - i
            break
        lines.append(line)
        used += cost
    if omitted:
        lines.append(outline_omitted(prompts, omitted))
    return "\n".join(reversed(lines))


def _prompt_tokens(engine: Any, messages: list[dict[str, str]]) -> int:
    """Tokens of the prompt as the engine will send it (``Engine.prompt_tokens``), plus a small margin."""
    return engine.prompt_tokens(messages) + 8


def _sampling(
    engine: Any,
    sampling: SamplingSettings | None,
    wanted: int,
    messages: list[dict[str, str]],
    *,
    first: int | None = None,
) -> SamplingSettings:
    """The caller's sampling with max_tokens = the form's bound, capped by what the context leaves.

    ``first``: an outline batch's first chapter; a seeded run derives the batch's seed from it, so
    batches differ from each other and a resumed run repeats what an uninterrupted one would do."""
    base = sampling or DEFAULT_SAMPLING
    prompt = _prompt_tokens(engine, messages)
    room = engine.context_len - prompt
    if room < 16:
        raise WritingError(
            "提示词已占满上下文 (the prompt fills the context)",
            expected=f"a context longer than {prompt} tokens",
            received=engine.context_len,
            fix="减小 --batch 或 writing.outline_synopsis_chars，或换用上下文更长的模型",
        )
    fields = {name: getattr(base, name) for name in base.__dataclass_fields__}
    fields["max_tokens"] = max(16, min(wanted, room))
    if first is not None and fields.get("seed") is not None:
        fields["seed"] = (fields["seed"] + (first - 1) * 7919) % 2**31
    return SamplingSettings(**fields)


# ---------------------------------------------------------------------------------------- summaries
async def summarize_chapter(
    engine: Any,
    novel: Any,
    number: int,
    *,
    limits: PlanLimits | None = None,
    sampling: SamplingSettings | None = None,
    lora: str | None = None,
    retries: int | None = None,
    save: bool = True,
    prompts: Prompts | None = None,
) -> Any:
    """Summarise an accepted chapter (前情提要 + who/where/when) and store it on its plan.

    Returns the validated ``ChapterSummary`` form.  The chapter text is trimmed (head and tail)
    to fit the context.  Raises StructuredOutputError (task ``summary``) when no answer validates;
    nothing is stored then.
    """
    limits = limits or PlanLimits()
    retries = limits.retries if retries is None else retries
    prompts = prompts or DEFAULT_PROMPTS
    plan = novel.plan(number)
    text = novel.text(number)
    if not text.strip():
        raise WritingError(
            f"第 {number} 章还没有正文 (chapter {number} has no text)",
            fix=f"先写或导入第 {number} 章 (write or set the chapter first)",
        )
    limits = limits.fitted(engine.context_len // 2, summary=True)  # the other half: the chapter
    form = summary_form(limits)
    answer_tokens = limits.summary_tokens()
    ask = summary_ask(prompts, number=number, title=plan.title, summary_chars=limits.summary_chars)
    card = novel.card().render()
    frame = summary_messages(prompts, card=card, ask=ask, text=None)
    fixed = _prompt_tokens(engine, with_schema_hint(frame, schema_of(form)))
    budget = engine.context_len - answer_tokens - fixed - 2 * _SCHEMA_MARGIN
    body = _fit(engine, text, budget)
    messages = summary_messages(prompts, card=card, ask=ask, text=body)
    answer = await generate_json(
        engine,
        messages,
        form,
        task="summary",
        chapter=number,
        sampling=_sampling(engine, sampling, answer_tokens, with_schema_hint(messages, schema_of(form))),
        lora=lora,
        retries=retries,
    )
    if save:
        novel.update_plan(
            number,
            summary=answer.summary.strip(),
            summary_who=answer.who,
            summary_where=answer.where,
            summary_when=answer.when.strip(),
        )
        from xiaoshuo.writing import flow  # made from this text: the forward flow's work is done

        flow.refreshed(novel, {number: flow.sha256_of(text)}, summary=True)
    return answer


def _fit(engine: Any, text: str, budget: int) -> str:
    """``text``, or its head and tail around an ellipsis, within ``budget`` tokens."""
    if budget <= 0:
        raise WritingError(
            "上下文太短，放不下本章 (the context is too short for a summary prompt)",
            received=engine.context_len,
            fix="换用上下文更长的模型，或减小 writing.summary_chars",
        )
    if engine.count_tokens(text) <= budget:
        return text
    low, high = 0, len(text) // 2
    while low < high:  # the most characters per side that fit
        mid = (low + high + 1) // 2
        if engine.count_tokens(text[:mid] + "……" + text[-mid:]) <= budget:
            low = mid
        else:
            high = mid - 1
    return text[:low] + "……" + text[-low:] if low else ""
