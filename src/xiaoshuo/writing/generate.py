"""Writing chapters to a target length in 字: the segment loop, candidates, 续写 and 改写.

A chapter is generated in *segments*.  Each segment is a continuation composed afresh by
:func:`~xiaoshuo.writing.compose.compose` (card, outline, summaries, chapter-aware memory, the tail
of what is written so far), asked for at most ``writing.segment_chars`` 字, with ``max_tokens``
sized from the 字-per-token ratio measured on the segments so far.  The loop runs until the text
reaches ``target × (1 − tolerance)`` — an end-of-text token at 30 % only ends that segment, never
the chapter — and the result is cut at the last sentence end inside ``target × (1 ± tolerance)``.
The report gives per candidate the target, the actual 字, LongBench-Write's length score, the
segments and the repetition rate.

Repetition guard: each new segment's share of 8-字 n-grams already seen in this chapter or the
previous ``writing.repetition_chapters`` chapters is measured; above ``writing.repetition_threshold``
the segment is generated again with a new seed and stronger penalties, at most
``writing.repetition_retries`` times, and every retry is recorded.

Each operation (写一章, 续写, 改写) is an :class:`Operation` whose ``request_for`` gives a segment's
写作要求 (:mod:`xiaoshuo.writing.prompts`); ``Writer._segment`` composes a segment from it, for the loop
and for :meth:`Writer.preview` (the dry run, the WebUI's inspector) alike.

Every segment the model sends passes :func:`~xiaoshuo.writing.cleaning.clean_generated` (U+FFFD and
control characters out) before it is counted, checked or saved; a version whose text the cleaning
changed keeps the model's own segments in ``raw_output``.

``k`` candidates run as concurrent segment loops (vLLM batches them); each finished candidate is
saved as a version at once (acknowledged only once on disk).  The novel's write lock is held for
the whole operation.  This module drives an :class:`~xiaoshuo.engine.Engine`; it knows no UI.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xiaoshuo.writing.cleaning import bad_chars, clean_generated
from xiaoshuo.writing.compose import Composition, compose, prompt_budget
from xiaoshuo.writing.project import Novel
from xiaoshuo.writing.prompts import chapter_request, continue_request, rewrite_request
from xiaoshuo.writing.schema import WritingError
from xiaoshuo.writing.textstats import (
    count_chars,
    length_score,
    ngrams,
    repetition_rate,
    trim_to_length,
)

MIN_SEGMENT_CHARS = 40
SAMPLE = (  # original prose, only to estimate 字 per token before the first segment
    "夜雨落在青石街上，檐角的铜铃被风吹得叮当作响。林远收起油纸伞，推开客栈的木门，"
    "屋里炉火正旺，掌柜抬头看了他一眼，又低头拨弄算盘。他在角落坐下，要了一壶热酒，"
    "听邻桌的人低声说起山那边的怪事：有人在半夜看见一道剑光，从断崖上一直划到江心。"
)
#: progress events ``{"event", "candidate", "segment", "chars", "generated", "target", …}``; a segment's
#: ``chars`` counts the new text as the result will keep it, against ``target`` (what was asked for)
Progress = Callable[[dict[str, Any]], None]
OnText = Callable[[int, str], None]  # (candidate index, new text piece) while streaming

MODE_FACTORS = {"rewrite": 1.0, "expand": 2.0, "shorten": 0.5}
MODE_LABELS = {"rewrite": "改写", "expand": "扩写", "shorten": "缩写"}


@dataclass
class CandidateResult:
    index: int
    text: str  # the full text the version holds
    new_text: str  # what was generated
    target: int
    chars: int  # 字 of new_text
    score: float
    on_boundary: bool
    repetition_rate: float
    segments: list[dict[str, Any]] = field(default_factory=list)
    retries: list[dict[str, Any]] = field(default_factory=list)
    seed: int | None = None
    version: int | None = None
    stopped: str = ""  # why the loop ended: "length", "max_segments", "aborted"
    raw_output: str | None = None  # the segments as the model sent them, when cleaning changed them
    removed: int = 0  # characters clean_generated removed (U+FFFD, control characters)

    def report(self) -> dict[str, Any]:
        return {
            "candidate": self.index,
            "target_chars": self.target,
            "chars": self.chars,
            "length_score": round(self.score, 2),
            "within_tolerance": self.score >= 0 and self.stopped == "length",
            "on_sentence_boundary": self.on_boundary,
            "repetition_rate": round(self.repetition_rate, 4),
            "segments": self.segments,
            "retries": self.retries,
            "seed": self.seed,
            "version": self.version,
            "stopped": self.stopped,
            "cleaned_chars": self.removed,
        }


@dataclass
class WriteResult:
    novel: str
    chapter: int
    kind: str
    candidates: list[CandidateResult]
    accepted: int | None = None  # the version made current, if any
    seconds: float = 0.0
    dry_run: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "novel": self.novel,
            "chapter": self.chapter,
            "kind": self.kind,
            "accepted_version": self.accepted,
            "seconds": round(self.seconds, 3),
            "candidates": [c.report() for c in self.candidates],
        }


@dataclass
class Operation:
    """One write / 续写 / 改写 as the segment loop runs it — and as :meth:`Writer.preview` composes it.

    ``request_for(segment, have, want)`` is the segment's 写作要求 (:mod:`xiaoshuo.writing.prompts`);
    ``before`` / ``keep_after`` are the chapter text around what is generated."""

    kind: str
    chapter: int
    before: str
    keep_after: str
    target: int
    request_for: Callable[[int, int, int], str]
    prefix: str = ""


@dataclass
class Preview:
    """The first segment's request exactly as the engine would receive it, and its account."""

    composition: Composition
    request: Any  # GenerationRequest
    max_tokens: int
    operation: Operation

    @property
    def messages(self) -> list[dict[str, str]]:
        return self.request.messages


@dataclass
class Writer:
    """What every writing call needs: settings, an engine, the novel, memory and sampling."""

    settings: Any
    engine: Any
    novel: Novel
    store: Any = None  # an open MemoryStore, or None
    memory_on: bool = True
    sampling: Any = None  # SamplingSettings; default from settings.generation
    adapter: str | None = None  # None: the novel's default adapter
    on_progress: Progress | None = None
    on_text: OnText | None = None

    # ------------------------------------------------------------------ composing
    def compose(self, chapter: int | None, text: str, request: str, *, max_tokens: int) -> Composition:
        return compose(
            self.novel,
            settings=self.settings,
            count_tokens=self.engine.count_tokens,
            chapter=chapter,
            text=text,
            request=request,
            store=self.store,
            memory_on=self.memory_on,
            budget=self.prompt_budget(max_tokens),
            token_count_exact=getattr(self.engine, "token_count_exact", True),
            tokenizer_source=getattr(self.engine, "tokenizer_source", ""),
        )

    def prompt_budget(self, max_tokens: int) -> int:
        return prompt_budget(self.engine, max_tokens, self.settings.writing.prompt_budget)

    def max_tokens_for(self, chars: int, chars_per_token: float) -> int:
        return max(16, min(math.ceil(chars / chars_per_token * 1.15) + 8, self.engine.context_len // 2))

    def sampling_for(self, *, max_tokens: int, seed: int | None, boost: int = 0) -> Any:
        from xiaoshuo.engine import SamplingSettings

        base = self.sampling or SamplingSettings.from_config(self.settings.generation)
        changes: dict[str, Any] = {"max_tokens": max_tokens, "n": 1, "seed": seed}
        if boost:
            changes["repetition_penalty"] = round(max(base.repetition_penalty, 1.0) + 0.1 * boost, 3)
            changes["presence_penalty"] = min(2.0, base.presence_penalty + 0.4 * boost)
        return dataclasses.replace(base, **changes)

    @property
    def prompts(self) -> Any:
        """The prompt texts in use (``writing.prompts_file`` over the built-in ones)."""
        from xiaoshuo.writing.prompts import Prompts

        return Prompts.from_settings(self.settings)

    def lora(self) -> str | None:
        if self.adapter is not None:
            return self.adapter or None
        return self.novel.card().adapter or None

    async def _after_accept(self, chapter: int) -> None:
        """writing.auto_summarize / auto_extract (:func:`writing.accepted.on_accepted`); failed forms are
        reported as progress events, not raised."""
        from xiaoshuo.writing.accepted import on_accepted

        await on_accepted(
            self.settings,
            self.engine,
            self.novel,
            chapter,
            self.store,
            progress=lambda event: self._progress(**event),
        )

    def _progress(self, **event: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(event)

    # ------------------------------------------------------------------ one generation
    async def _generate(self, comp: Composition, sampling: Any, index: int) -> tuple[str, int, str | None]:
        req = self._request(comp, sampling)
        text, tokens, finish = [], 0, None
        async for delta in self.engine.stream(req):
            if delta.text:
                text.append(delta.text)
                if self.on_text is not None:
                    self.on_text(index, clean_generated(delta.text))
            tokens = max(tokens, delta.completion_tokens)
            finish = delta.finish_reason or finish
        return "".join(text), tokens, finish

    # ------------------------------------------------------------------ the segment loop
    def _segment(self, op: Operation, seg: int, new: str, cpt: float) -> tuple[Composition, int]:
        """Segment ``seg``'s composition and ``max_tokens``, ``new`` generated so far at ``cpt`` 字/token.

        The one place a segment's prompt is made: the loop and :meth:`preview` both call it."""
        have = count_chars(new)
        want = max(MIN_SEGMENT_CHARS, min(self.settings.writing.segment_chars, op.target - have))
        max_tokens = self.max_tokens_for(want, cpt)
        request = op.request_for(seg, have, want)
        return self.compose(op.chapter, op.before + new, request, max_tokens=max_tokens), max_tokens

    def _request(self, comp: Composition, sampling: Any) -> Any:
        from xiaoshuo.engine import GenerationRequest

        return GenerationRequest(messages=comp.messages, sampling=sampling, lora=self.lora())

    async def _segment_loop(
        self, index: int, op: Operation, *, history: set[str], seed: int | None
    ) -> CandidateResult:
        w = self.settings.writing
        before, target = op.before, op.target
        low = max(1, math.floor(target * (1 - w.length_tolerance)))
        high = max(low, math.floor(target * (1 + w.length_tolerance)))
        new = ""
        raw_pieces: list[str] = []  # the model's own text, kept when the cleaning changes it
        cpt = self._chars_per_token(before)  # 字 per token; re-measured on every segment
        segments, retries, reps = [], [], []
        stopped = "max_segments"
        for seg in range(w.max_segments):
            have = count_chars(new)
            if have >= low:
                stopped = "length"
                break
            comp, max_tokens = self._segment(op, seg, new, cpt)
            seg_seed = None if seed is None else seed + 7919 * index + 101 * seg
            raw, tokens, finish = await self._generate(
                comp, self.sampling_for(max_tokens=max_tokens, seed=seg_seed), index
            )
            piece = clean_generated(raw)
            seen = history | ngrams(before[-6000:] + new, w.repetition_ngram)
            rate = repetition_rate(piece, seen, w.repetition_ngram)
            tries = 0
            while rate > w.repetition_threshold and tries < w.repetition_retries:
                tries += 1
                retries.append({"segment": seg, "try": tries, "rate": round(rate, 4)})
                self._progress(event="repetition_retry", candidate=index, segment=seg, rate=rate)
                seg_seed = (seg_seed or 0) + 104729 * tries if seed is not None else None
                raw, tokens, finish = await self._generate(
                    comp, self.sampling_for(max_tokens=max_tokens, seed=seg_seed, boost=tries), index
                )
                piece = clean_generated(raw)
                rate = repetition_rate(piece, seen, w.repetition_ngram)
            got = count_chars(piece)
            if tokens and got:
                cpt = 0.5 * cpt + 0.5 * (got / tokens) if seg else got / tokens
            new += piece
            raw_pieces.append(raw)
            reps.append((rate, got))
            segments.append(
                {
                    "segment": seg,
                    "chars": got,
                    "tokens": tokens,
                    "max_tokens": max_tokens,
                    "finish_reason": finish,
                    "prompt_tokens": comp.tokens,
                    "repetition_rate": round(rate, 4),
                    "retries": tries,
                    "seed": seg_seed,
                    "memory": comp.memory,
                    "summaries": comp.summaries,
                    "warnings": comp.warnings,
                }
            )
            # counted as the result will be: the new text only (a 续写's chapter text is not counted),
            # cut to the requested length as the final text is (a segment that ran past the target
            # reads 2969/3000, not 4421/3000); ``generated`` is everything the model wrote so far
            self._progress(
                event="segment",
                candidate=index,
                segment=seg,
                chars=count_chars(trim_to_length(new, low, high)[0]),
                generated=count_chars(new),
                target=target,
            )
            if finish == "abort":
                stopped = "aborted"
                break
        else:
            if count_chars(new) >= low:
                stopped = "length"
        cut, boundary = trim_to_length(new, low, high)
        chars = count_chars(cut)
        total = sum(g for _, g in reps) or 1
        raw_all = "".join(raw_pieces)
        return CandidateResult(
            index=index,
            text=before + cut,
            new_text=cut,
            target=target,
            chars=chars,
            score=length_score(target, chars),
            on_boundary=boundary,
            repetition_rate=sum(r * g for r, g in reps) / total,
            segments=segments,
            retries=retries,
            seed=seed,
            stopped=stopped if stopped != "length" or chars >= low else "short",
            raw_output=raw_all if raw_all != new else None,
            removed=bad_chars(raw_all),
        )

    def _chars_per_token(self, before: str) -> float:
        """A first guess of 字 per token from the tokenizer on real text (1.0 when unsure)."""
        sample = before[-1000:] if count_chars(before) >= 200 else SAMPLE
        try:
            ratio = count_chars(sample) / max(1, self.engine.count_tokens(sample))
        except Exception:  # a backend that cannot count: ask for more tokens rather than fewer
            return 1.0
        return min(4.0, max(0.25, ratio))

    def _history(self, chapter: int) -> set[str]:
        n = self.settings.writing.repetition_ngram
        grams: set[str] = set()
        for prev in range(max(1, chapter - self.settings.writing.repetition_chapters), chapter):
            grams |= ngrams(self.novel.text(prev), n)
        return grams

    async def _run(
        self, op: Operation, *, candidates: int, seed: int | None, accept: bool | None
    ) -> WriteResult:
        if not 1 <= candidates <= 16:
            raise WritingError("候选数无效 (invalid candidates)", expected="1..16", received=candidates)
        started = time.monotonic()
        chapter, kind = op.chapter, op.kind
        history = self._history(chapter)
        loops = [self._segment_loop(i, op, history=history, seed=seed) for i in range(candidates)]
        result = WriteResult(self.novel.slug, chapter, kind, [])
        tasks = [asyncio.ensure_future(c) for c in loops]
        try:
            await self._save_as_completed(tasks, result, chapter, kind, op.prefix, op.keep_after)
        finally:  # a cancelled write (the stop button) stops every candidate, not only the awaited one
            for task in tasks:
                task.cancel()
        result.candidates.sort(key=lambda c: c.index)
        empty = not self.novel.text(chapter).strip()
        if accept or (accept is None and candidates == 1 and (kind != "chapter" or empty)):
            result.accepted = self.novel.accept(chapter, result.candidates[0].version).id
            await self._after_accept(chapter)
        result.seconds = time.monotonic() - started
        return result

    async def generate(
        self, op: Operation, *, candidates: int = 1, seed: int | None = None
    ) -> list[CandidateResult]:
        """``candidates`` concurrent segment loops of ``op``, returned without saving a version (the
        caller decides what to keep: ``chapter revise``); each candidate's ``new_text`` is what replaces
        the passage.  The caller holds the novel's write lock."""
        if not 1 <= candidates <= 16:
            raise WritingError("候选数无效 (invalid candidates)", expected="1..16", received=candidates)
        history = self._history(op.chapter)
        loops = [self._segment_loop(i, op, history=history, seed=seed) for i in range(candidates)]
        return list(await asyncio.gather(*loops))

    async def _save_as_completed(self, tasks, result, chapter, kind, prefix, keep_after) -> None:
        """Save each candidate as a version the moment it is finished (acknowledged = on disk)."""
        for fut in asyncio.as_completed(tasks):
            cand = await fut
            full = prefix + cand.text + keep_after
            version = self.novel.add_version(
                chapter,
                full,
                source="generated",
                kind=kind,
                sampling=dataclasses.asdict(self.sampling_for(max_tokens=1, seed=cand.seed)),
                seed=cand.seed,
                adapter=self.lora(),
                memory=_memory_used(cand),
                summaries=sorted({s for seg in cand.segments for s in seg["summaries"]}),
                report=cand.report() | {"segments": len(cand.segments)},
                raw_output=cand.raw_output,
            )
            cand.version = version.id
            result.candidates.append(cand)
            self._progress(event="candidate_saved", candidate=cand.index, version=version.id)

    # ------------------------------------------------------------------ operations
    def chapter_operation(self, chapter: int, *, target_chars: int | None = None) -> Operation:
        """写一章: chapter ``chapter`` from its outline entry to its target (its current text is not sent).

        Reads only; ``write_chapter`` first adds the next chapter to the outline when it is missing
        (titled 第N章), which this mirrors for the title and target."""
        plan = self.novel.outline().chapter(chapter)
        target = target_chars or (plan.target_chars if plan else None) or self.novel.card().chapter_chars
        _check_target(target)
        title = plan.title if plan else f"第{chapter}章"
        prompts = self.prompts

        def request_for(seg: int, have: int, want: int) -> str:
            return chapter_request(
                prompts, number=chapter, title=title, target=target, want=want, have=have,
                last=target - have <= want * 1.2, first=seg == 0 and have == 0,
            )  # fmt: skip

        return Operation("chapter", chapter, "", "", target, request_for)

    def continue_operation(self, chapter: int, *, chars: int = 500) -> Operation:
        """续写: about ``chars`` 字 after the chapter's current text."""
        _check_target(chars, low=10)
        prompts = self.prompts

        def request_for(seg: int, have: int, want: int) -> str:
            return continue_request(prompts, want=want, have=have)

        return Operation("continue", chapter, self.novel.text(chapter), "", chars, request_for)

    def rewrite_operation(
        self,
        chapter: int,
        *,
        start: int,
        end: int,
        instruction: str,
        mode: str = "rewrite",
        chars: int | None = None,
    ) -> Operation:
        """改写 / 扩写 / 缩写 the passage ``text[start:end]`` of the chapter with an instruction."""
        if mode not in MODE_FACTORS:
            raise WritingError(
                "改写方式无效 (invalid mode)", expected="rewrite, expand or shorten", received=mode
            )
        text = self.novel.text(chapter)
        if not (0 <= start < end <= len(text)):
            raise WritingError(
                "选中范围无效 (invalid selection)",
                expected=f"0 <= start < end <= {len(text)} (character offsets in the chapter text)",
                received=f"start={start}, end={end}",
                fix=f"用 xiaoshuo chapter show --novel {self.novel.slug} {chapter} 查看正文与长度",
            )
        passage = text[start:end]
        target = chars or max(10, round(count_chars(passage) * MODE_FACTORS[mode]))
        _check_target(target, low=10)
        label, prompts = MODE_LABELS[mode], self.prompts

        def request_for(seg: int, have: int, want: int) -> str:
            return rewrite_request(
                prompts,
                label=label,
                instruction=instruction,
                passage=passage,
                target=target,
                have=have,
                want=want,
            )

        return Operation(mode, chapter, text[:start], text[end:], target, request_for)

    def preview(self, op: Operation) -> Preview:
        """The first segment of ``op`` exactly as it would be sent (memory retrieved, nothing generated)."""
        comp, max_tokens = self._segment(op, 0, "", self._chars_per_token(op.before))
        request = self._request(comp, self.sampling_for(max_tokens=max_tokens, seed=None))
        return Preview(comp, request, max_tokens, op)

    # ------------------------------------------------------------------ public operations
    def dry_run(self, chapter: int, *, target_chars: int | None = None) -> dict[str, Any]:
        """The first segment's prompt and account, generating nothing (``write chapter --dry-run``)."""
        p = self.preview(self.chapter_operation(chapter, target_chars=target_chars))
        comp = p.composition
        prompt = self.engine.render(p.request) or "\n\n".join(m["content"] for m in comp.messages)
        return {
            "prompt": prompt,
            "messages": p.messages,
            "account": comp.account,
            "tokens": comp.tokens,
            "budget": comp.budget,
            "max_tokens": p.max_tokens,
            "warnings": comp.warnings,
            "token_count_exact": comp.token_count_exact,
            "tokenizer_source": comp.tokenizer_source,
        }

    async def write_chapter(
        self,
        chapter: int,
        *,
        target_chars: int | None = None,
        candidates: int = 1,
        seed: int | None = None,
        accept: bool | None = None,
    ) -> WriteResult:
        """Generate chapter ``chapter`` from its outline entry to its target length in 字.

        ``accept=None``: a single candidate becomes the chapter text when the chapter is empty;
        otherwise candidates are only saved as versions (``chapter accept`` picks one).
        """
        with self.novel.writer(what=f"write chapter {chapter}"):
            self.novel.ensure_chapter(chapter)
            op = self.chapter_operation(chapter, target_chars=target_chars)
            return await self._run(op, candidates=candidates, seed=seed, accept=accept)

    async def continue_chapter(
        self,
        chapter: int,
        *,
        chars: int = 500,
        candidates: int = 1,
        seed: int | None = None,
        accept: bool | None = None,
    ) -> WriteResult:
        """续写: add about ``chars`` 字 at the end of the chapter's current text."""
        _check_target(chars, low=10)
        with self.novel.writer(what=f"continue chapter {chapter}"):
            self.novel.ensure_chapter(chapter)
            self.novel.sync(chapter)
            op = self.continue_operation(chapter, chars=chars)
            return await self._run(op, candidates=candidates, seed=seed, accept=accept)

    async def rewrite(
        self,
        chapter: int,
        *,
        start: int,
        end: int,
        instruction: str,
        mode: str = "rewrite",
        chars: int | None = None,
        candidates: int = 1,
        seed: int | None = None,
        accept: bool | None = None,
    ) -> WriteResult:
        """改写 / 扩写 / 缩写 the passage ``text[start:end]`` of the chapter with an instruction."""
        if mode not in MODE_FACTORS:
            raise WritingError(
                "改写方式无效 (invalid mode)", expected="rewrite, expand or shorten", received=mode
            )
        with self.novel.writer(what=f"rewrite chapter {chapter}"):
            self.novel.plan(chapter)
            self.novel.sync(chapter)
            op = self.rewrite_operation(
                chapter, start=start, end=end, instruction=instruction, mode=mode, chars=chars
            )
            return await self._run(op, candidates=candidates, seed=seed, accept=accept)


def _check_target(target: int, low: int = 50) -> None:
    if not isinstance(target, int) or isinstance(target, bool) or not low <= target <= 200_000:
        raise WritingError(
            "目标字数无效 (invalid target length)",
            expected=f"an integer number of 字 in [{low}, 200000]",
            received=target,
            fix="例如 --target-chars 3000",
        )


def _memory_used(cand: CandidateResult) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for seg in cand.segments:
        for entry in seg["memory"]:
            seen.setdefault(entry["id"], {**entry, "segments": []})["segments"].append(seg["segment"])
    return list(seen.values())


def run_sync(coro: Any) -> Any:
    """Run a writer coroutine from synchronous code (the CLI)."""
    return asyncio.run(coro)
