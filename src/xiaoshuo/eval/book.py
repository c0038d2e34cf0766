"""Book health (``xiaoshuo eval book``): per chapter and for the whole book, from the text on disk.

Per written chapter: 字 against its target and LongBench-Write's length score
(:func:`xiaoshuo.writing.textstats.length_score`); the repetition rate — the share of its 8-字 n-grams
already seen earlier in the chapter or in any earlier chapter (the writing core's ``repetition_rate``
with all earlier chapters as history), and its two parts; the AI味 rate per 1,000 字
(:mod:`xiaoshuo.eval.flavour`); the rule-based consistency findings per 10,000 字
(:func:`xiaoshuo.writing.consistency.check_chapter`: dead characters acting, two places at once, long-unseen
returns — all deterministic; the model-judged pass is not run); and the style drift — the
:func:`~xiaoshuo.eval.metrics.style_distance` of the chapter from the book's first chapters (the baseline).
For the book: totals, the open threads (伏笔) past their payoff chapter, and **degradation**: for each
metric, the mean over the last quarter of the chapters minus the mean over the first quarter.

Fast on long books: the cross-chapter n-gram test hashes every n-gram once (one numpy pass over the
book), not a growing set per chapter.  This module reads the novel and its memory entries; it writes
nothing (the appearance bookkeeping the reappearance rule needs is kept in a temporary folder).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

from xiaoshuo.eval.flavour import FlavourList
from xiaoshuo.eval.metrics import DeltaReference, function_word_freqs, profile, style_distance
from xiaoshuo.eval.report import SCHEMA_VERSION
from xiaoshuo.writing.textstats import count_chars, length_score, ngram_list, repetition_rate

METRICS = ("length_score", "repetition_rate", "ai_flavour", "findings_per_10k", "style_drift")


def cross_repetition(texts: list[str], n: int = 8) -> list[tuple[float, float]]:
    """Per text: (share of its n-grams seen earlier in it or in an earlier text, share seen in an earlier
    text).  The first number equals ``repetition_rate(texts[i], texts[:i], n)``."""
    import numpy as np

    grams = [ngram_list(t, n) for t in texts]
    sizes = np.array([len(g) for g in grams], dtype=np.int64)
    if not sizes.sum():
        return [(0.0, 0.0) for _ in texts]
    hashes = np.fromiter((hash(g) for gs in grams for g in gs), dtype=np.int64, count=int(sizes.sum()))
    owner = np.repeat(np.arange(len(texts)), sizes)
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    first_pos = first[inverse]  # the position where each position's n-gram first occurs in the book
    positions = np.arange(len(hashes))
    repeated = first_pos < positions
    earlier = owner[first_pos] < owner
    out = []
    start = 0
    for size in sizes.tolist():
        end = start + size
        out.append(
            (float(repeated[start:end].mean()), float(earlier[start:end].mean())) if size else (0.0, 0.0)
        )
        start = end
    return out


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def degradation(rows: list[dict[str, Any]], metrics: tuple[str, ...] = METRICS) -> dict[str, Any]:
    """For each metric: the mean over the first and the last quarter of ``rows`` and last − first."""
    n = len(rows)
    if n < 2:
        return {}
    q = max(1, n // 4)
    out = {}
    for key in metrics:
        first = _mean([r.get(key) for r in rows[:q]])
        last = _mean([r.get(key) for r in rows[-q:]])
        change = None if first is None or last is None else last - first
        out[key] = {
            "first_quarter": _round(first),
            "last_quarter": _round(last),
            "change": _round(change),
            "chapters": [rows[0]["number"], rows[q - 1]["number"], rows[-q]["number"], rows[-1]["number"]],
        }
    return out


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def book_health(
    novel: Any,
    *,
    entries: list[Any] | None,
    flavour: FlavourList,
    ngram: int = 8,
    baseline_chapters: int | None = None,
    reappear_gap: int = 20,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The book-health report of ``novel`` (a :class:`~xiaoshuo.writing.Novel`).

    ``entries``: the novel's memory entries (None: memory not available — no findings, no threads);
    ``baseline_chapters``: how many first chapters the style drift compares with (default: a quarter of
    the written chapters, 1–5).
    """
    started = time.perf_counter()
    card = novel.card()
    outline = novel.outline()
    read = {n: novel.text(n) for n in novel.written_chapters()}
    numbers = [n for n, t in read.items() if count_chars(t)]
    texts = [read[n] for n in numbers]
    warnings: list[str] = []
    if not numbers:
        warnings.append(
            f"还没有写好的章节 (no written chapters): xiaoshuo write chapter 1 --novel {novel.slug}"
        )
    if entries is None:
        warnings.append("记忆不可用：没有一致性检查与伏笔 (memory unavailable: no findings, no threads)")
    base_n = baseline_chapters or max(1, min(5, len(numbers) // 4))
    base_n = min(base_n, len(numbers))
    profiles = [profile(t) for t in texts]
    reference = DeltaReference.of(function_word_freqs(t) for t in texts)
    baseline = profile("\n".join(texts[:base_n])) if texts else None
    reps = cross_repetition(texts, ngram)
    findings = _findings(numbers, texts, entries, reappear_gap) if entries is not None else {}
    rows = []
    weighted = 0.0
    for i, (n, text) in enumerate(zip(numbers, texts, strict=True)):
        plan = outline.chapter(n)
        target = (plan.target_chars if plan else None) or card.chapter_chars
        chars = count_chars(text)
        ai = flavour.report(text)
        found = findings.get(n, [])
        weighted += ai["weighted_hits"]
        rows.append(
            {
                "number": n,
                "title": plan.title if plan else f"第{n}章",
                "chars": chars,
                "target_chars": target,
                # LongBench-Write's S_l (THUDM/LongWriter, evaluation/eval_length.py): required x, output y:
                # 100·max(0, 1 − (y/x − 1)/3) when y > x, else 100·max(0, 1 − (x/y − 1)/2)
                "length_score": round(length_score(target, chars), 2),
                "repetition_rate": round(reps[i][0], 4),
                "repetition_within": round(repetition_rate(text, "", ngram), 4),
                "repetition_earlier": round(reps[i][1], 4),
                "ai_flavour": ai["rate_per_1000"],
                "ai_flavour_hits": ai["hits"],
                "ai_flavour_top": _top_phrases(ai),
                "findings": len(found),
                "findings_per_10k": round(10000 * len(found) / chars, 3) if entries is not None else None,
                "finding_rules": _count_rules(found),
                "style_drift": round(style_distance(profiles[i], baseline, reference=reference), 4)
                if baseline is not None
                else None,
                "style": profiles[i].summary(),
            }
        )
        if progress is not None:
            progress(i + 1, len(numbers))
    threads = _overdue(entries, max(numbers, default=0)) if entries is not None else []
    total_chars = sum(r["chars"] for r in rows)
    book_text_reps = (
        sum(r["repetition_rate"] * r["chars"] for r in rows) / total_chars if total_chars else 0.0
    )
    book = {
        "chapters": len(rows),
        "chars": total_chars,
        "length_score": _round(_mean([r["length_score"] for r in rows]), 2),
        "repetition_rate": round(book_text_reps, 4),
        "ai_flavour": round(1000 * weighted / total_chars, 3) if total_chars else 0.0,
        "findings": sum(r["findings"] for r in rows),
        "findings_per_10k": round(10000 * sum(r["findings"] for r in rows) / total_chars, 3)
        if total_chars and entries is not None
        else None,
        "style_drift": _round(_mean([r["style_drift"] for r in rows])),
        "threads_overdue": len(threads),
        "baseline_chapters": numbers[:base_n],
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "book",
        "novel": novel.slug,
        "title": card.title,
        "created": time.time(),
        "settings": {"ngram": ngram, "baseline_chapters": base_n, "flavour_sources": flavour.sources},
        "book": book,
        "chapters": rows,
        "degradation": degradation(rows),
        "threads_overdue": threads,
        "warnings": warnings,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _top_phrases(ai: dict[str, Any], k: int = 3) -> list[str]:
    counts: dict[str, int] = {}
    for cat in ai["categories"].values():
        for phrase, c in cat["phrases"].items():
            counts[phrase] = counts.get(phrase, 0) + c
    return [p for p, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def _count_rules(found: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in found:
        out[f.rule] = out.get(f.rule, 0) + 1
    return out


def _findings(numbers: list[int], texts: list[str], entries: list[Any], gap: int) -> dict[int, list[Any]]:
    """Rule-based consistency findings per chapter (the appearance bookkeeping in a temporary folder)."""
    from xiaoshuo.writing.bookkeeping import Appearances
    from xiaoshuo.writing.consistency import check_chapter

    if not entries:
        return {}
    with tempfile.TemporaryDirectory(prefix="xiaoshuo-eval-") as tmp:
        appearances = Appearances(tmp)
        appearances.update(dict(zip(numbers, texts, strict=True)), entries)
        return {
            n: check_chapter(text, n, entries, appearances=appearances, gap=gap)
            for n, text in zip(numbers, texts, strict=True)
        }


def _overdue(entries: list[Any], last_written: int) -> list[dict[str, Any]]:
    from xiaoshuo.writing.threads import thread_report

    return [
        {k: r[k] for k in ("id", "name", "text", "chapter", "payoff_chapter", "open_for")}
        for r in thread_report(entries, last_written=last_written)
        if r["status"] == "overdue"
    ]
