"""``chapter revise``: rewrite only the passages the review flags, and keep a revision only if it is better.

One pass: :func:`~xiaoshuo.writing.findings.review_chapter` → :func:`plan_edits` (each finding's span
widened to whole sentences, overlapping ones merged into one :class:`Edit` with every instruction;
a length finding expands or shortens the last sentences instead of regenerating the chapter; something
the outline wants but the text lacks is written into the last sentences) → every edit generated at
once through the writer's segment loop (:meth:`~xiaoshuo.writing.generate.Writer.generate`, the
machinery of 改写, with the review's instructions and the text on both sides,
:func:`~xiaoshuo.writing.prompts.revise_request`) → edits applied one at a time from the end, each
candidate reviewed again and applied only when :func:`~xiaoshuo.writing.findings.is_better` says so
(weighted findings down, nothing new more severe) → the pass's text, if better than where the pass
began, becomes a new, current version (``kind="revise"``, ``report["revise"]`` holds the findings
before → after and the edits).  Up to ``passes`` passes; a pass that keeps nothing ends the run.

A chapter whose outline entry is locked (``locked``) is refused.  :func:`plan_revision` (``--dry-run``)
lists the edits and writes nothing.  The write lock is held for the whole revision.  This module knows
no UI; the CLI and the page call it through :mod:`xiaoshuo.writing.actions`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from xiaoshuo.writing.consistency import require_text
from xiaoshuo.writing.findings import (
    Context,
    Review,
    ReviewFinding,
    is_better,
    parse_kinds,
    review_text,
    tail_start,
    whole_sentences,
)
from xiaoshuo.writing.generate import Operation, Writer
from xiaoshuo.writing.prompts import revise_request
from xiaoshuo.writing.schema import WritingError
from xiaoshuo.writing.textstats import count_chars

LABELS = {"rewrite": "修改", "expand": "扩写", "shorten": "缩写"}
AFTER_CHARS = 300  # 字 of the following text shown as 【后文】
OUTLINE_TAIL = 120  # 字 of the chapter's end a missing character or place is written into


@dataclass
class Edit:
    """One passage to rewrite, ``[start, end)`` of the text the pass began with."""

    start: int
    end: int
    mode: str  # rewrite | expand | shorten
    target: int  # 字 of the new passage
    instructions: list[str]
    findings: list[ReviewFinding] = field(default_factory=list)

    def as_dict(self, text: str) -> dict[str, Any]:
        passage = text[self.start : self.end]
        return {
            "start": self.start,
            "end": self.end,
            "mode": self.mode,
            "chars": count_chars(passage),
            "target_chars": self.target,
            "passage": passage,
            "instructions": self.instructions,
            "findings": [f"{f.kind}:{f.rule}" for f in self.findings],
        }


@dataclass
class Revision:
    """What a revise run did (``--json``): the findings before and after, each pass, the versions kept."""

    novel: str
    chapter: int
    before: Review
    after: Review
    dry_run: bool = False
    passes: list[dict[str, Any]] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    seconds: float = 0.0
    generate_seconds: float = 0.0

    @property
    def kept(self) -> bool:
        return bool(self.versions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "novel": self.novel,
            "chapter": self.chapter,
            "dry_run": self.dry_run,
            "kept": self.kept,
            "versions": self.versions,
            "weighted_before": self.before.weighted,
            "weighted_after": self.after.weighted,
            "findings_before": [f.as_dict() for f in self.before.findings],
            "findings_after": [f.as_dict() for f in self.after.findings],
            "passes": self.passes,
            "seconds": round(self.seconds, 3),
            "generate_seconds": round(self.generate_seconds, 3),
        }


def check_unlocked(novel: Any, number: int) -> Any:
    """The chapter's plan; a locked chapter (``chapter lock``) raises: revise never changes it."""
    plan = novel.plan(number)
    if getattr(plan, "locked", False):
        raise WritingError(
            f"第 {number} 章已锁定，修订不会改动它 (chapter {number} is locked; revise leaves it alone)",
            expected="an unlocked chapter",
            received=f"第{number}章《{plan.title}》: locked",
            fix=f"xiaoshuo chapter unlock {number} --novel {novel.slug}",
        )
    return plan


def plan_edits(text: str, review: Review, kinds: list[str] | None = None) -> list[Edit]:
    """The passages to rewrite for the findings of ``kinds`` (all by default), in text order."""
    regions: list[tuple[int, int, ReviewFinding]] = []
    for f in review.findings:
        if kinds is not None and f.kind not in kinds:
            continue
        if f.kind == "length":
            a, b = f.start, f.end
        elif f.kind == "outline":
            a, b = tail_start(text, OUTLINE_TAIL), len(text.rstrip())
        else:
            a, b = whole_sentences(text, f.start, f.end)
        if b > a:
            regions.append((a, b, f))
    regions.sort(key=lambda r: (r[0], r[1]))
    groups: list[list[Any]] = []
    for a, b, f in regions:
        if groups and a < groups[-1][1]:
            groups[-1][1] = max(groups[-1][1], b)
            groups[-1][2].append(f)
        else:
            groups.append([a, b, [f]])
    edits = []
    for a, b, found in groups:
        chars = count_chars(text[a:b])
        mode, target = "rewrite", chars
        for f in found:
            if f.rule == "too_short":
                mode, target = "expand", chars + int(f.detail.get("missing", 0))
            elif f.rule == "too_long":
                mode, target = "shorten", max(10, chars - int(f.detail.get("extra", 0)))
        instructions = list(dict.fromkeys(f.instruction for f in found))
        edits.append(Edit(a, b, mode, max(10, target), instructions, found))
    return edits


def plan_revision(
    settings: Any,
    novel: Any,
    number: int,
    *,
    entries: list[Any] | None = None,
    flavour: Any = None,
    only: str | list[str] | None = None,
) -> Revision:
    """``--dry-run``: the review and the edits a revise would make; reads only, no model."""
    kinds = parse_kinds(only)
    check_unlocked(novel, number)
    text = require_text(novel, number)
    ctx = Context.of(settings, novel, number, entries=entries, flavour=flavour)
    review = review_text(ctx, text)
    edits = plan_edits(text, review, kinds)
    row = {"pass": 1, "edits": [e.as_dict(text) for e in edits], "kept": False, "version": None}
    return Revision(novel.slug, number, review, review, dry_run=True, passes=[row])


def _operation(writer: Writer, number: int, text: str, edit: Edit) -> Operation:
    prompts = writer.prompts
    passage, after = text[edit.start : edit.end], text[edit.end : edit.end + AFTER_CHARS]
    label = LABELS[edit.mode]

    def request_for(seg: int, have: int, want: int) -> str:
        return revise_request(
            prompts,
            label=label,
            instructions=edit.instructions,
            passage=passage,
            after=after,
            target=edit.target,
            have=have,
            want=want,
        )

    return Operation("revise", number, text[: edit.start], text[edit.end :], edit.target, request_for)


def _splice(text: str, edits: list[Edit], chosen: dict[int, str]) -> str:
    """``text`` with edit ``i``'s passage replaced by ``chosen[i]`` (from the end: offsets hold)."""
    for i in sorted(chosen, key=lambda j: -edits[j].start):
        text = text[: edits[i].start] + chosen[i] + text[edits[i].end :]
    return text


def _apply(
    ctx: Context, text: str, current: Review, edits: list[Edit], generated: list[list[Any]], rows: list[dict]
) -> tuple[str, Review, list[int]]:
    """The pass's text: with one candidate per edit, every edit at once when that is better (one review);
    otherwise edit by edit from the end, each candidate reviewed and the best one kept only when it is
    better than the text so far (:func:`is_better`).  A candidate is used stripped (the passage begins
    and ends on a sentence, not on a space); an empty one is no revision.  Returns (text, its review,
    the edits applied)."""
    passages = [[(c.index, c.new_text.strip()) for c in cands if c.new_text.strip()] for cands in generated]
    if all(len(p) == 1 for p in passages):
        trial = _splice(text, edits, {i: p[0][1] for i, p in enumerate(passages)})
        got = review_text(ctx, trial)
        if is_better(current, got)[0]:
            for i, row in enumerate(rows):
                row.update(kept=True, candidate=passages[i][0][0])
            return trial, got, list(range(len(edits)))
    new_text, new_review, applied = text, current, []
    for i in sorted(range(len(edits)), key=lambda j: -edits[j].start):  # from the end: offsets hold
        best = None
        for index, passage in passages[i]:
            trial = _splice(new_text, edits, {i: passage})
            got = review_text(ctx, trial)
            if is_better(new_review, got)[0] and (best is None or got.weighted < best[1].weighted):
                best = (trial, got, index)
        rows[i]["kept"] = best is not None
        if best is not None:
            new_text, new_review = best[0], best[1]
            rows[i]["candidate"] = best[2]
            applied.append(i)
    return new_text, new_review, applied


async def revise_chapter(
    writer: Writer,
    number: int,
    *,
    entries: list[Any] | None = None,
    flavour: Any = None,
    only: str | list[str] | None = None,
    passes: int = 2,
    candidates: int = 1,
    seed: int | None = None,
) -> Revision:
    """Revise chapter ``number`` (see the module's docstring); ``entries``: memory for the review
    (default: ``writer.store``'s), ``flavour``: the AI味 list (:func:`xiaoshuo.eval.load_flavour`)."""
    kinds = parse_kinds(only)
    if not 1 <= passes <= 5:
        raise WritingError("修订轮数无效 (invalid passes)", expected="1..5", received=passes)
    if not 1 <= candidates <= 16:
        raise WritingError("候选数无效 (invalid candidates)", expected="1..16", received=candidates)
    novel = writer.novel
    started = time.monotonic()
    with novel.writer(what=f"revise chapter {number}"):
        check_unlocked(novel, number)
        novel.sync(number)
        text = require_text(novel, number)
        if entries is None:
            entries = writer.store.list(novel.slug) if writer.store is not None else []
        ctx = Context.of(
            writer.settings, novel, number, entries=entries, flavour=flavour, prompts=writer.prompts
        )
        first = current = review_text(ctx, text)
        result = Revision(novel.slug, number, first, first)
        for k in range(passes):
            edits = plan_edits(text, current, kinds)
            row: dict[str, Any] = {
                "pass": k + 1,
                "edits": [e.as_dict(text) for e in edits],
                "weighted_before": current.weighted,
                "kept": False,
                "version": None,
            }
            result.passes.append(row)
            if not edits:
                row["reason"] = "没有要修改的段落 (nothing to edit)"
                break
            t0 = time.monotonic()
            generated = await asyncio.gather(
                *(
                    writer.generate(
                        _operation(writer, number, text, e),
                        candidates=candidates,
                        seed=None if seed is None else seed + 1009 * k + 31 * i,
                    )
                    for i, e in enumerate(edits)
                )
            )
            result.generate_seconds += time.monotonic() - t0
            new_text, new_review, applied = _apply(ctx, text, current, edits, generated, row["edits"])
            ok, why = (
                is_better(current, new_review) if applied else (False, "没有更好的改法 (no edit helped)")
            )
            row.update(weighted_after=new_review.weighted, reason=why)
            if not ok:
                for r in row["edits"]:
                    r["kept"] = False
                break
            version = novel.add_version(
                number,
                new_text,
                source="generated",
                kind="revise",
                accept=True,
                seed=seed,
                adapter=writer.lora(),
                sampling=dataclasses.asdict(writer.sampling_for(max_tokens=1, seed=seed)),
                report={
                    "revise": {
                        "pass": k + 1,
                        "findings_before": [f.as_dict() for f in current.findings],
                        "findings_after": [f.as_dict() for f in new_review.findings],
                        "weighted_before": current.weighted,
                        "weighted_after": new_review.weighted,
                        "edits": [row["edits"][i] for i in sorted(applied)],
                    }
                },
                note=f"修订 (revise) 第{k + 1}轮：问题 {current.weighted} → {new_review.weighted}",
            )
            row.update(kept=True, version=version.id)
            result.versions.append(version.id)
            text, current = new_text, new_review
            if not current.findings:
                break
        result.after = current
        if result.kept:
            await writer._after_accept(number)  # writing.auto_summarize / auto_extract, as an accept does
    result.seconds = time.monotonic() - started
    return result
