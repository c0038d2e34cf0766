"""The memory block of a prompt, within a token budget, with an account of every candidate.

Candidates come from hybrid retrieval in priority order (pinned, triggered, the
chapter's cast's events, fused rank).  Each kind has a share of the budget (人物 35 %,
情节 30 %, 环境设定 20 %, 重要对话 15 %); a first pass fills the shares, a second pass
gives what is left of the whole budget to entries that did not fit their share —
pinned and triggered first, then the cast's events, then the rest.  The cast's events
(and, while there are any, other plot entries) skip the first pass: of them, the best
ones (key, then most recent) are shown whole and the rest condensed — ``第N章`` and the
first :data:`CONDENSED_CHARS` 字 of the text — into one history line per character
(``- 林远的往事：第3章 …；第7章 …``, at the head of 【情节】); when even all condensed do
not fit, none is whole and the oldest are dropped.  Tokens are counted with
the caller's counter (the engine's tokenizer), per rendered line including its
newline and per heading, and the finished block is counted again: it never
exceeds the budget.  Every candidate is reported — included or dropped, why, and
its token cost — which is what the WebUI's context inspector shows; a condensed event
is a row of its own (``condensed: True``, reason ``condensed into history line: 林远``)
carrying its share of the line's tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xiaoshuo.memory.retrieval import Hit
from xiaoshuo.memory.schema import KIND_LABELS, KINDS

SHARES = {"character": 0.35, "plot": 0.30, "setting": 0.20, "dialogue": 0.15}
CONDENSED_CHARS = 24  # 字 of an event's text in a history line


@dataclass
class ContextResult:
    text: str
    tokens: int
    budget: int
    included: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    heading_tokens: int = 0  # the 【人物】… headings of the kinds present

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens": self.tokens,
            "budget": self.budget,
            "heading_tokens": self.heading_tokens,
            "included": self.included,
            "dropped": self.dropped,
        }


def heading(kind: str) -> str:
    return f"【{KIND_LABELS[kind]}】\n"


def build_context(hits: list[Hit], budget: int, count_tokens: Callable[[str], int]) -> ContextResult:
    lines = {h.entry.id: h.entry.render() + "\n" for h in hits}
    cost = {entry_id: count_tokens(line) for entry_id, line in lines.items()}
    head_cost = {kind: count_tokens(heading(kind)) for kind in KINDS}
    caps = {kind: int(budget * share) for kind, share in SHARES.items()}
    used = dict.fromkeys(KINDS, 0)
    chosen: dict[str, list[Hit]] = {kind: [] for kind in KINDS}
    history: list[Hit] = []  # cast events condensed into per-character history lines (plot section)
    total = 0
    reasons: dict[str, str] = {}
    pending: list[Hit] = []

    def need(h: Hit) -> int:
        kind = h.entry.kind
        return cost[h.entry.id] + (0 if chosen[kind] or (kind == "plot" and history) else head_cost[kind])

    casting = any(h.cast for h in hits)
    for h in hits:  # pass 1: each kind within its share; the cast's events and other plot entries wait
        n = need(h)
        kind = h.entry.kind
        forced = h.pinned or h.triggered
        if not forced and (h.cast or (casting and kind == "plot")):
            pending.append(h)
        elif used[kind] + n <= caps[kind] and total + n <= budget:
            chosen[kind].append(h)
            used[kind] += n
            total += n
            reasons[h.entry.id] = _why(h)
        else:
            pending.append(h)
    dropped = []

    def spare(h: Hit) -> None:  # pass 2: what is left of the whole budget
        nonlocal total
        n = need(h)
        if total + n <= budget:
            chosen[h.entry.kind].append(h)
            used[h.entry.kind] += n
            total += n
            reasons[h.entry.id] = _why(h) + "; from spare budget"
        else:
            label = KIND_LABELS[h.entry.kind]
            dropped.append(
                _item(
                    h,
                    cost[h.entry.id],
                    f"over budget: needs {n} tokens, {budget - total} of {budget} left "
                    f"({label} share {caps[h.entry.kind]})",
                )
            )

    for h in pending:  # pinned and triggered entries first
        if h.pinned or h.triggered:
            spare(h)
    # then the cast's events: as many whole as fit with the rest condensed, else as many condensed as fit
    leftover = [h for h in pending if h.cast and h.entry.kind == "plot" and not (h.pinned or h.triggered)]
    if leftover:
        whole, condensed = _plan_cast(leftover, budget - total, chosen, cost, head_cost["plot"], count_tokens)
        for h in whole:
            chosen["plot"].append(h)
            reasons[h.entry.id] = _why(h) + "; from spare budget"
        for h in condensed:
            history.append(h)
            reasons[h.entry.id] = f"condensed into history line: {h.cast[0]}"
        others = sum(used[kind] for kind in KINDS if kind != "plot")
        used["plot"] = _plot_tokens(chosen, history, cost, head_cost["plot"], count_tokens)
        total = others + used["plot"]
    done = {h.entry.id for kind in KINDS for h in chosen[kind]} | {h.entry.id for h in history}
    for h in pending:  # then the rest, in rank order
        if h.entry.id not in done and not (h.pinned or h.triggered):
            spare(h)
    order = {h.entry.id: i for i, h in enumerate(hits)}
    text, included = _render(chosen, history, lines, order, cost, reasons, count_tokens)
    tokens = count_tokens(text) if text else 0
    while tokens > budget and included:  # per-line counts bound the joined count; guard anyway
        last = included[-1]
        chosen[last["kind"]] = [h for h in chosen[last["kind"]] if h.entry.id != last["id"]]
        history = [h for h in history if h.entry.id != last["id"]]
        dropped.append({**last, "reason": "over budget after joining"})
        text, included = _render(chosen, history, lines, order, cost, reasons, count_tokens)
        tokens = count_tokens(text) if text else 0
    headings = sum(
        head_cost[kind] for kind in KINDS if chosen[kind] or (kind == "plot" and history)
    )
    return ContextResult(text, tokens, budget, included, dropped, headings)


def _fragment(h: Hit) -> str:
    """One event in a history line: 第N章 and its text, cut to :data:`CONDENSED_CHARS`."""
    e = h.entry
    text = "".join(e.text.split()).rstrip("。！？；，")
    if len(text) > CONDENSED_CHARS:
        text = text[:CONDENSED_CHARS] + "…"
    return (f"第{e.chapter}章 " if e.chapter is not None else "") + text


def _history_lines(history: list[Hit]) -> list[tuple[str, list[Hit]]]:
    """``- 林远的往事：第3章 …；第7章 …`` per cast member (an event goes to its first cast member's
    line), events in chapter order (undated last), lines in order of their first event."""
    groups: dict[str, list[Hit]] = {}
    for h in history:
        groups.setdefault(h.cast[0], []).append(h)
    out = []
    for name, group in groups.items():
        group = sorted(group, key=_chronological)
        out.append((f"- {name}的往事：" + "；".join(_fragment(h) for h in group) + "\n", group))
    return sorted(out, key=lambda line: _chronological(line[1][0]))


def _chronological(h: Hit) -> tuple:
    return (h.entry.chapter is None, h.entry.chapter or 0, h.entry.id)


def _plot_tokens(chosen, history, cost, head: int, count) -> int:
    """Tokens of the plot section: its whole lines, its history lines, its heading."""
    whole = sum(cost[h.entry.id] for h in chosen["plot"])
    lines = sum(count(line) for line, _ in _history_lines(history))
    return whole + lines + (head if chosen["plot"] or history else 0)


def _plan_cast(leftover, left: int, chosen, cost, head: int, count) -> tuple[list[Hit], list[Hit]]:
    """Of the cast events that missed their share (best first): the longest prefix shown whole with all
    the rest condensed that fits ``left`` tokens; when even all condensed do not fit, no whole ones and
    the longest condensed prefix that fits (the oldest and least important are dropped)."""
    base = _plot_tokens(chosen, [], cost, head, count)

    def fits(whole: int, condensed: int) -> bool:
        trial = {"plot": chosen["plot"] + leftover[:whole]}
        spent = _plot_tokens(trial, leftover[whole:condensed], cost, head, count)
        return spent - base <= left

    def longest(ok, hi: int) -> int:  # the largest n in 0..hi with ok(n), assuming ok is monotone
        lo = 0
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if ok(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    n = len(leftover)
    if fits(0, n):
        m = longest(lambda m: fits(m, n), n)
        return leftover[:m], leftover[m:]
    k = longest(lambda k: fits(0, k), n)
    return [], leftover[:k]


def _render(chosen, history, lines, order, cost, reasons, count) -> tuple[str, list[dict[str, Any]]]:
    blocks, included = [], []
    for kind in KINDS:
        if not chosen[kind] and not (kind == "plot" and history):
            continue
        block = [heading(kind)]
        if kind == "plot":  # pinned, then the cast's history lines, its whole events by chapter, the rest
            first = [h for h in chosen[kind] if not h.cast]
            pinned = [h for h in first if h.pinned]
            rest = sorted((h for h in first if not h.pinned), key=lambda x: order[x.entry.id])
            whole = sorted((h for h in chosen[kind] if h.cast), key=_chronological)
            for h in sorted(pinned, key=lambda x: order[x.entry.id]):
                block.append(lines[h.entry.id])
                included.append(_item(h, cost[h.entry.id], reasons[h.entry.id]))
            for line, group in _history_lines(history):
                block.append(line)
                shares = [count(_fragment(h) + "；") for h in group]
                shares[0] = max(0, count(line) - sum(shares[1:]))  # the line's own tokens with its first
                for h, share in zip(group, shares, strict=True):
                    included.append({**_item(h, share, reasons[h.entry.id]), "condensed": True})
            ordered = whole + rest
        else:
            ordered = sorted(chosen[kind], key=lambda x: order[x.entry.id])
        for h in ordered:
            block.append(lines[h.entry.id])
            included.append(_item(h, cost[h.entry.id], reasons[h.entry.id]))
        blocks.append("".join(block))
    return "".join(blocks).rstrip("\n"), included


def _why(h: Hit) -> str:
    if h.pinned:
        return "pinned"
    if h.triggered:
        return "triggered by a name in the request or recent text"
    if h.cast:
        return "cast event"
    return "retrieved by " + "+".join(x for x in h.found_by if x in ("bm25", "dense"))


def _item(h: Hit, tokens: int, reason: str) -> dict[str, Any]:
    return {
        "id": h.entry.id,
        "kind": h.entry.kind,
        "name": h.entry.label,
        "tokens": tokens,
        "reason": reason,
        "found_by": h.found_by,
    }
