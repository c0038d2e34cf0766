"""Eval reports as files: reading one back, checking its kind and schema, and comparing two.

A report is the JSON document ``xiaoshuo eval style|book|memory --json`` prints (or ``--output`` writes):
a ``schema_version``, a ``kind`` (``style``, ``book`` or ``memory``), and a ``chapters`` list (book and
memory).  :func:`compare` lines up two reports of one kind — the summary figures (for style: each
system's style distance and perplexity, the gain, every feature distance of the adapter) and, for
chapters present in both, each chapter's — and says what changed and in which direction is better.
This module reads and compares; the CLI prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xiaoshuo.errors import XiaoshuoError

SCHEMA_VERSION = 1
STYLE_COMPONENTS = (
    "char_jsd", "bigram_jsd", "sentence_ks", "dialogue", "punctuation", "function_delta", "mattr",
    "paragraph",
)  # fmt: skip

#: Figures compared, per kind: (key, True when higher is better).
FIGURES = {
    "style": (
        ("base.style_distance", False),
        ("adapter.style_distance", False),
        ("gain.style_distance", True),
        ("base.perplexity", False),
        ("adapter.perplexity", False),
        ("gain.perplexity", True),
        *((f"adapter.components.{k}", False) for k in STYLE_COMPONENTS),
    ),
    "book": (
        ("length_score", True),
        ("repetition_rate", False),
        ("ai_flavour", False),
        ("findings_per_10k", False),
        ("style_drift", False),
        ("threads_overdue", False),
    ),
    "memory": (
        ("cast_card_recall", True),
        ("past_event_recall", True),
        ("future_leaks", False),
        ("latest_state_correctness", True),
    ),
}
CHAPTER_FIGURES = {
    "style": (),
    "book": ("length_score", "repetition_rate", "ai_flavour", "findings_per_10k", "style_drift"),
    "memory": ("cast_card_recall", "past_event_recall", "latest_state_correctness"),
}


class EvalReportError(XiaoshuoError):
    """An eval report file is missing, unreadable, or of another kind or schema."""


def load_report(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise EvalReportError(
            f"找不到评估报告 (no such report): {path}",
            fix="xiaoshuo eval book SLUG --output FILE 先生成报告",
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise EvalReportError(
            f"评估报告无法读取 (unreadable report): {path}", received=str(exc)[:200]
        ) from None
    if (
        not isinstance(data, dict)
        or data.get("kind") not in FIGURES
        or ("chapters" not in data and data.get("kind") != "style")
    ):
        raise EvalReportError(
            f"不是 xiaoshuo eval 的报告 (not an eval report): {path}",
            expected='JSON with "schema_version", "kind" (style | book | memory) and "chapters"',
            received=sorted(data)[:8] if isinstance(data, dict) else type(data).__name__,
        )
    if data.get("schema_version") != SCHEMA_VERSION:
        raise EvalReportError(
            f"报告的格式版本不同 (report schema differs): {path}",
            expected=f"schema_version {SCHEMA_VERSION}",
            received=data.get("schema_version"),
            fix="用当前版本重新生成报告 (re-run xiaoshuo eval)",
        )
    return data


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return report["book"] if report["kind"] == "book" else report


def _get(data: dict[str, Any], dotted: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"`` (None where a level is missing or null)."""
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _change(a: Any, b: Any, higher_better: bool) -> dict[str, Any]:
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return {"a": a, "b": b, "change": None, "verdict": "n/a"}
    change = b - a
    better = (change > 0) == higher_better
    verdict = "same" if abs(change) < 1e-9 else ("better" if better else "worse")
    return {"a": a, "b": b, "change": round(change, 4), "verdict": verdict}


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What changed from report ``a`` to report ``b`` (same kind)."""
    if a["kind"] != b["kind"]:
        raise EvalReportError(
            "两份报告种类不同 (reports of different kinds)",
            expected=f"two {a['kind']} reports",
            received=f"{a['kind']} vs {b['kind']}",
        )
    kind = a["kind"]
    sa, sb = _summary(a), _summary(b)
    figures = {key: _change(_get(sa, key), _get(sb, key), hb) for key, hb in FIGURES[kind]}
    higher = dict(FIGURES[kind]) | {"length_score": True}
    by_a = {c["number"]: c for c in a.get("chapters", [])}
    chapters = []
    for c in b.get("chapters", []):
        old = by_a.get(c["number"])
        if old is None:
            continue
        row = {"number": c["number"]}
        for key in CHAPTER_FIGURES[kind]:
            row[key] = _change(old.get(key), c.get(key), higher.get(key, False))
        chapters.append(row)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": f"compare-{kind}",
        "a": {"novel": a.get("novel"), "created": a.get("created"), "adapter": a.get("adapter_name")},
        "b": {"novel": b.get("novel"), "created": b.get("created"), "adapter": b.get("adapter_name")},
        "figures": figures,
        "chapters": chapters,
        "only_in_a": sorted(set(by_a) - {c["number"] for c in b.get("chapters", [])}),
        "only_in_b": sorted({c["number"] for c in b.get("chapters", [])} - set(by_a)),
    }
