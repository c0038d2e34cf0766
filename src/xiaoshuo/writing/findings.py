"""Every finding about one chapter, each with its span in the text and an instruction that fixes it.

:func:`review_chapter` gathers, deterministically (no model):

* ``consistency`` — the rule checks of :mod:`xiaoshuo.writing.consistency` against memory (dead
  characters acting, two places at once, long-unseen returns);
* ``length`` — 字数 outside ``target × (1 ± writing.length_tolerance)`` (the outline's target, else the
  card's ``chapter_chars``); its span is the end of the chapter, where a fix expands or shortens;
* ``repetition`` — passages of at least :data:`MIN_REPEAT_CHARS` 字 whose 8-字 n-grams
  (``writing.repetition_ngram``) already occur earlier in the chapter or in an earlier chapter
  (:func:`~xiaoshuo.writing.textstats.repeated_runs`);
* ``flavour`` — AI味 stock phrases (:meth:`xiaoshuo.eval.flavour.FlavourList.scan`; the list is passed
  in — ``eval`` builds on ``writing``, not the reverse — and skipped when none is given);
* ``outline`` — the chapter plan's characters and places, and the known names its synopsis mentions,
  present in the text by name or alias (memory's names).

Each :class:`ReviewFinding` has a kind, a rule, a severity (weights :data:`SEVERITY`), the span
``[start, end)`` (empty at the end for something missing), the quote, a message for the writer and
an instruction for the model (the ``fix_*`` texts of :mod:`xiaoshuo.writing.prompts`).
:func:`is_better` is the rule ``chapter revise`` keeps a revision by.  This module reads a novel and
its memory entries; it writes nothing (the appearance bookkeeping stays in memory) and calls no model.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from xiaoshuo.writing.bookkeeping import Appearances, find_names, names_of, sentence_at
from xiaoshuo.writing.consistency import check_chapter, require_text
from xiaoshuo.writing.prompts import DEFAULT_PROMPTS, Prompts, fix_instruction
from xiaoshuo.writing.schema import WritingError
from xiaoshuo.writing.textstats import NgramIndex, count_chars, repeated_runs, sentence_ends

KINDS = ("consistency", "length", "repetition", "flavour", "outline")
#: a finding's weight by severity (flavour findings are further weighted by their category's weight)
SEVERITY = {"info": 1.0, "warning": 3.0}
MIN_REPEAT_CHARS = 20
_CLOSERS = '」』”"）)'
_ENDS = "。！？!?…"


@dataclass
class ReviewFinding:
    kind: str  # one of KINDS
    rule: str  # dead_acts, too_short, repeated_within, 神态套话, missing_character …
    severity: str  # info | warning
    start: int
    end: int
    quote: str
    message: str
    instruction: str
    weight: float = 1.0
    detail: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[str, str, str]:
        """What makes two findings "the same" across revisions (offsets move, the subject does not)."""
        subject = self.detail.get("subject") or "".join(self.quote.split())
        return (self.kind, self.rule, str(subject))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Review:
    novel: str
    chapter: int
    chars: int
    target: int
    findings: list[ReviewFinding]
    checked: list[str]  # the kinds looked at (flavour is missing without a list)

    @property
    def weighted(self) -> float:
        return round(sum(f.weight for f in self.findings), 3)

    def counts(self) -> dict[str, int]:
        return dict(Counter(f.kind for f in self.findings))

    def as_dict(self) -> dict[str, Any]:
        return {
            "novel": self.novel,
            "chapter": self.chapter,
            "chars": self.chars,
            "target_chars": self.target,
            "weighted": self.weighted,
            "counts": self.counts(),
            "checked": self.checked,
            "findings": [f.as_dict() for f in self.findings],
        }


def parse_kinds(only: str | list[str] | None) -> list[str]:
    """``"flavour,repetition"`` → the kinds (all of :data:`KINDS` when empty); an unknown one raises."""
    if not only:
        return list(KINDS)
    items = only.replace("，", ",").split(",") if isinstance(only, str) else list(only)
    kinds = [k.strip() for k in items if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise WritingError(
            f"没有这类问题 (unknown finding kind): {', '.join(bad) or only}",
            expected=", ".join(KINDS),
            received=only,
            fix="例如 --only flavour,repetition",
        )
    return kinds


@dataclass
class Context:
    """What reviewing one chapter needs besides its text, gathered once (a revision is reviewed often)."""

    novel: Any
    number: int
    entries: list[Any]
    target: int
    tolerance: float
    ngram: int
    earlier: NgramIndex  # the n-grams of the earlier chapters
    appearances: Appearances
    gap: int
    plan: Any
    flavour: Any = None
    prompts: Any = None

    @classmethod
    def of(
        cls,
        settings: Any,
        novel: Any,
        number: int,
        *,
        entries: list[Any] | None = None,
        flavour: Any = None,
        prompts: Any = None,
    ) -> Context:
        plan = novel.plan(number)
        entries = list(entries or [])
        written = [n for n in novel.written_chapters() if n < number]
        earlier_texts = {n: novel.text(n) for n in written}
        appearances = Appearances(novel.root)
        appearances.update(earlier_texts, entries, save=False)
        w = settings.writing
        return cls(
            novel=novel,
            number=number,
            entries=entries,
            target=plan.target_chars or novel.card().chapter_chars,
            tolerance=w.length_tolerance,
            ngram=w.repetition_ngram,
            earlier=NgramIndex(earlier_texts, w.repetition_ngram),
            appearances=appearances,
            gap=w.reappear_gap,
            plan=plan,
            flavour=flavour,
            prompts=prompts or Prompts.from_settings(settings),  # writing.prompts_file's fix_* texts
        )


def review_chapter(
    novel: Any,
    number: int,
    *,
    settings: Any,
    entries: list[Any] | None = None,
    flavour: Any = None,
    text: str | None = None,
    context: Context | None = None,
) -> Review:
    """Every finding about chapter ``number`` (its current text, or ``text``), in text order."""
    text = require_text(novel, number, text)
    ctx = context or Context.of(settings, novel, number, entries=entries, flavour=flavour)
    return review_text(ctx, text)


def review_text(ctx: Context, text: str) -> Review:
    """:func:`review_chapter` of ``text`` as chapter ``ctx.number`` (the context gathered once)."""
    p = ctx.prompts or DEFAULT_PROMPTS
    found = (
        _consistency(ctx, text, p)
        + _length(ctx, text, p)
        + _repetition(ctx, text, p)
        + _flavour(ctx, text, p)
        + _outline(ctx, text, p)
    )
    found.sort(key=lambda f: (f.start, f.end, KINDS.index(f.kind), f.rule))
    checked = [k for k in KINDS if k != "flavour" or ctx.flavour is not None]
    return Review(ctx.novel.slug, ctx.number, count_chars(text), ctx.target, found, checked)


def is_better(before: Review, after: Review) -> tuple[bool, str]:
    """Keep ``after``?  Only when its weighted findings went down and no finding that is new (by
    :meth:`ReviewFinding.key`) is more severe than the most severe one it fixed.  Returns (keep, why)."""
    old = Counter(f.key() for f in before.findings)
    new = Counter(f.key() for f in after.findings)
    gone, added = old - new, new - old
    rank = {s: i for i, s in enumerate(SEVERITY)}
    sev = {f.key(): f.severity for f in [*before.findings, *after.findings]}
    fixed = max((rank[sev[k]] for k in gone), default=-1)
    worse = [k for k in added if rank[sev[k]] > fixed]
    if worse:
        return False, f"新出现更严重的问题 (a new, more severe finding): {worse[0][1]} {worse[0][2][:20]}"
    if after.weighted >= before.weighted:
        return False, f"问题没有减少 (weighted findings {before.weighted} → {after.weighted})"
    return True, f"问题减少 (weighted findings {before.weighted} → {after.weighted})"


# ----------------------------------------------------------------------------- the checks
def whole_sentences(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` widened to whole sentences (closing quotes kept with their sentence; a span that
    begins with the previous sentence's end or a line break starts after it)."""
    start += _lead(text, start, end)
    a = sentence_at(text, start, min(len(text), start + 1), limit=200)[0] if text else 0
    b = sentence_at(text, max(0, end - 1), end, limit=200)[1] if end > 0 else 0
    while a < len(text) and text[a] in _CLOSERS:
        a += 1
    while b < len(text) and text[b] in _CLOSERS:
        b += 1
    return min(a, start), max(b, end)


def _finding(kind, rule, severity, text, start, end, message, instruction, *, weight=1.0, **detail):
    return ReviewFinding(
        kind,
        rule,
        severity,
        start,
        end,
        text[start:end],
        message,
        instruction,
        round(SEVERITY[severity] * weight, 3),
        detail,
    )


def _consistency(ctx: Context, text: str, p: Any) -> list[ReviewFinding]:
    out = []
    for f in check_chapter(text, ctx.number, ctx.entries, appearances=ctx.appearances, gap=ctx.gap):
        problem = f.message.split(" (")[0]
        if f.rule == "dead_acts":
            how = fix_instruction(p, "dead_acts", name=f.character, state=f.entry.get("state") or "")
        elif f.rule == "two_places":
            how = fix_instruction(p, "two_places", name=f.character)
        else:
            how = fix_instruction(p, "consistency", problem=problem)
        out.append(
            _finding(
                "consistency",
                f.rule,
                f.severity,
                text,
                f.start,
                f.end,
                f.message,
                how,
                subject=f.character,
                entry=f.entry,
            )
        )
    return out


def _length(ctx: Context, text: str, p: Any) -> list[ReviewFinding]:
    chars = count_chars(text)
    low = math.floor(ctx.target * (1 - ctx.tolerance))
    high = math.floor(ctx.target * (1 + ctx.tolerance))
    if low <= chars <= high:
        return []
    gap = abs(ctx.target - chars)
    if chars < low:  # the end grows; too long: the end (at least twice the excess) is shortened
        rule, key, tail, what = "too_short", "missing", 200, f"少约 {gap} 字 (too short)"
    else:
        rule, key, tail, what = "too_long", "extra", max(200, 2 * gap), f"多约 {gap} 字 (too long)"
    return [
        _finding(
            "length",
            rule,
            "warning",
            text,
            tail_start(text, tail),
            len(text.rstrip()),
            f"本章 {chars} 字，目标 {ctx.target} 字，{what}",
            fix_instruction(p, rule, **{key: gap}),
            **{key: gap, "target": ctx.target, "subject": rule},  # the same finding while the end changes
        )
    ]


def tail_start(text: str, chars: int) -> int:
    """Where the last sentences holding at least ``chars`` 字 begin (0 when the text is shorter)."""
    body = text.rstrip()
    ends = [e for e in sentence_ends(body) if e < len(body)]
    for e in reversed(ends):
        if count_chars(body[e:]) >= chars:
            while e < len(body) and body[e].isspace():
                e += 1
            return e
    return 0


def _repetition(ctx: Context, text: str, p: Any) -> list[ReviewFinding]:
    out = []
    for start, end, chapter, first in repeated_runs(text, ctx.earlier, ctx.ngram, MIN_REPEAT_CHARS):
        skip = _lead(text, start, end)  # a run that starts on the previous sentence's end starts after it
        start, first = start + skip, first + skip if first >= 0 else first
        n = count_chars(text[start:end])
        if chapter is None:
            message = f"这段 {n} 字与本章前文（从位置 {first} 起）重复 (repeats the text at offset {first})"
            out.append(
                _finding(
                    "repetition",
                    "repeated_within",
                    "warning",
                    text,
                    start,
                    end,
                    message,
                    fix_instruction(p, "repeated_within"),
                    first=first,
                )
            )
        else:
            message = f"这段 {n} 字与第{chapter}章重复 (repeats chapter {chapter})"
            out.append(
                _finding(
                    "repetition",
                    "repeated_earlier",
                    "warning",
                    text,
                    start,
                    end,
                    message,
                    fix_instruction(p, "repeated_earlier", chapter=chapter),
                    chapter=chapter,
                )
            )
    return out


def _lead(text: str, start: int, end: int) -> int:
    """How many sentence ends, closing quotes and spaces ``text[start:end]`` begins with."""
    k = start
    while k < end - 1 and (text[k] in _ENDS or text[k] in _CLOSERS or text[k].isspace()):
        k += 1
    return k - start


def _flavour(ctx: Context, text: str, p: Any) -> list[ReviewFinding]:
    if ctx.flavour is None:
        return []
    out = []
    for h in ctx.flavour.scan(text):
        out.append(
            _finding(
                "flavour",
                h.category,
                "info",
                text,
                h.start,
                h.start + len(h.text),
                f"AI味套话「{h.text}」（{h.category}）(a stock AI phrase)",
                fix_instruction(p, "flavour", phrase=h.text, category=h.category),
                weight=h.weight,
                subject=h.text,
            )
        )
    return out


def _outline(ctx: Context, text: str, p: Any) -> list[ReviewFinding]:
    plan = ctx.plan
    known = names_of(ctx.entries, ("character", "setting"))
    present = {name for _, _, name in find_names(text, known)}
    wanted: list[tuple[str, str, str]] = [("missing_character", "人物", n) for n in plan.characters]
    wanted += [("missing_place", "地点", n) for n in plan.places]
    listed = {known.get(n, n) for _, _, n in wanted}
    for _, _, name in find_names(plan.synopsis, known):  # known names the synopsis mentions
        if name not in listed:
            listed.add(name)
            wanted.append(("missing_synopsis", "要点里的", name))
    out, end = [], len(text.rstrip())
    for rule, what, name in wanted:
        entry = known.get(name, name)
        if entry in present or name in text:
            continue
        out.append(
            _finding(
                "outline",
                rule,
                "warning",
                text,
                end,
                end,
                f"大纲里的{what}「{name}」没有出现在正文里 (planned but absent)",
                fix_instruction(p, "missing", what=what, name=name),
                subject=name,
            )
        )
    return out
