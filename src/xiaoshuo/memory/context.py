"""The memory block of a prompt, within a token budget, with an account of every candidate.

Candidates come from hybrid retrieval in priority order (pinned, triggered, fused
rank).  Each kind has a share of the budget (人物 35 %, 情节 30 %, 环境设定 20 %,
重要对话 15 %); a first pass fills the shares, a second pass gives what is left of
the whole budget to entries that did not fit their share.  Tokens are counted with
the caller's counter (the engine's tokenizer), per rendered line including its
newline and per heading, and the finished block is counted again: it never
exceeds the budget.  Every candidate is reported — included or dropped, why, and
its token cost — which is what the WebUI's context inspector shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xiaoshuo.memory.retrieval import Hit
from xiaoshuo.memory.schema import KIND_LABELS, KINDS

SHARES = {"character": 0.35, "plot": 0.30, "setting": 0.20, "dialogue": 0.15}


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
    total = 0
    reasons: dict[str, str] = {}
    pending: list[Hit] = []

    def need(h: Hit) -> int:
        kind = h.entry.kind
        return cost[h.entry.id] + (0 if chosen[kind] else head_cost[kind])

    for h in hits:  # pass 1: each kind within its share
        n = need(h)
        kind = h.entry.kind
        if used[kind] + n <= caps[kind] and total + n <= budget:
            chosen[kind].append(h)
            used[kind] += n
            total += n
            reasons[h.entry.id] = _why(h)
        else:
            pending.append(h)
    dropped = []
    for h in pending:  # pass 2: what is left of the whole budget
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
    order = {h.entry.id: i for i, h in enumerate(hits)}
    text, included = _render(chosen, lines, order, cost, reasons)
    tokens = count_tokens(text) if text else 0
    while tokens > budget and included:  # per-line counts bound the joined count; guard anyway
        last = included[-1]
        chosen[last["kind"]] = [h for h in chosen[last["kind"]] if h.entry.id != last["id"]]
        dropped.append({**last, "reason": "over budget after joining"})
        text, included = _render(chosen, lines, order, cost, reasons)
        tokens = count_tokens(text) if text else 0
    headings = sum(head_cost[kind] for kind in KINDS if chosen[kind])
    return ContextResult(text, tokens, budget, included, dropped, headings)


def _render(chosen, lines, order, cost, reasons) -> tuple[str, list[dict[str, Any]]]:
    blocks, included = [], []
    for kind in KINDS:
        if not chosen[kind]:
            continue
        block = [heading(kind)]
        for h in sorted(chosen[kind], key=lambda x: order[x.entry.id]):
            block.append(lines[h.entry.id])
            included.append(_item(h, cost[h.entry.id], reasons[h.entry.id]))
        blocks.append("".join(block))
    return "".join(blocks).rstrip("\n"), included


def _why(h: Hit) -> str:
    if h.pinned:
        return "pinned"
    if h.triggered:
        return "triggered by a name in the request or recent text"
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
