"""What the memory puts in front of the model (``xiaoshuo eval memory``): recall and leaks of prompts.

For each chosen chapter N the first prompt of that chapter is composed exactly as ``write chapter`` would
(:func:`xiaoshuo.writing.compose.compose` with the chapter's plan, an empty chapter text and the writer's
first-segment request; nothing is generated), and measured against the memory entries, for the chapter's
planned cast (``characters`` of its outline entry, aliases mapped to names):

* **cast_card_recall** — of the cast members memory knows, the share whose card is in the prompt (the
  undated character entry, else their latest dated entry at or before N);
* **past_event_recall** — of the plot entries dated before N that involve a cast member, the share in the
  prompt, whole or condensed into a character's history line (``past_events_condensed`` counts those);
* **future_leaks** — anything dated after N that reached the prompt: a memory entry or thread shown by id,
  a 前情提要 of chapter N or later, or the text of a later-dated entry found in the prompt outside
  【后续章节】 (the planned synopses of the next chapters are shown on purpose); text is matched by 6-字
  n-grams, a leak when at least 60 % of the entry's n-grams are in the prompt;
* **latest_state_correctness** — of the cast members with dated states at or before N, the share whose
  newest such state is shown and no other dated state of theirs (retrieval's rule: a character's latest
  state at or before the chapter wins);
* **tokens** per section of the prompt (the composition's account), and the prompt's total.

The book's figures are pooled over the chapters (recall = recalled / expected over all of them).  This
module reads the novel and the memory; it changes neither and generates nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from xiaoshuo.eval.report import SCHEMA_VERSION
from xiaoshuo.writing.textstats import ngrams

LEAK_NGRAM = 6
LEAK_SHARE = 0.6
DEFAULT_CHAPTERS = 12


def first_request(number: int, title: str, target: int, segment_chars: int) -> str:
    """The request ``write chapter`` sends with a chapter's first segment (``Writer.dry_run``'s words)."""
    want = min(segment_chars, target)
    return f"请开始写第{number}章《{title}》的正文。本章共约{target}字，这一段先写约{want}字。"


def spread(numbers: list[int], k: int = DEFAULT_CHAPTERS) -> list[int]:
    """``k`` chapters spread evenly over ``numbers`` (the last one included)."""
    if len(numbers) <= k:
        return list(numbers)
    step = (len(numbers) - 1) / (k - 1)
    return sorted({numbers[round(i * step)] for i in range(k)})


def _names(entries: list[Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in entries:
        if e.kind == "character" and not e.archived:
            out.setdefault(e.name, e.name)
    for e in entries:
        if e.kind == "character" and not e.archived:
            for alias in e.aliases:
                out.setdefault(alias, e.name)
    return out


def _text_leak(entry: Any, prompt_grams: set[str], prompt_flat: str) -> bool:
    flat = "".join(entry.text.split())
    if len(flat) < LEAK_NGRAM:
        return len(flat) >= 4 and flat in prompt_flat
    grams = ngrams(flat, LEAK_NGRAM)
    return len(grams & prompt_grams) / len(grams) >= LEAK_SHARE


def chapter_probe(comp: Any, number: int, cast: list[str], entries: list[Any]) -> dict[str, Any]:
    """The figures of one composed prompt ``comp`` for chapter ``number`` with planned ``cast``."""
    alias = _names(entries)
    cast_names = sorted({alias.get(c, c) for c in cast})
    active = [e for e in entries if not e.archived]
    shown = {m["id"] for m in comp.memory}
    condensed = {m["id"] for m in comp.memory if m.get("condensed")}
    by_id = {e.id: e for e in active}

    # cards: the undated entry, else the latest dated entry at or before N
    cards, states = {}, {}
    for name in cast_names:
        mine = [e for e in active if e.kind == "character" and e.name == name]
        undated = [e for e in mine if e.chapter is None]
        dated = sorted(
            (e for e in mine if e.chapter is not None and e.chapter <= number), key=lambda e: e.chapter
        )
        if undated:
            cards[name] = undated[0]
        elif dated:
            cards[name] = dated[-1]
        if dated:
            states[name] = dated
    card_rows = [{"name": n, "id": e.id, "shown": e.id in shown} for n, e in cards.items()]

    cast_set = set(cast_names)
    events = [
        e
        for e in active
        if e.kind == "plot"
        and e.chapter is not None
        and e.chapter < number
        and cast_set & {alias.get(c, c) for c in e.characters}
    ]
    recalled = [e for e in events if e.id in shown]

    state_rows = []
    for name, dated in states.items():
        expected = dated[-1]
        shown_dated = [e for e in active if e.kind == "character" and e.name == name
                       and e.chapter is not None and e.id in shown]  # fmt: skip
        state_rows.append(
            {
                "name": name,
                "expected_chapter": expected.chapter,
                "shown_chapters": sorted(e.chapter for e in shown_dated),
                "correct": [e.id for e in shown_dated] == [expected.id],
            }
        )

    leaks = _leaks(comp, number, active, shown, by_id)
    tokens: dict[str, int] = {}
    for row in comp.account:
        if row["included"]:
            tokens[row["section"]] = tokens.get(row["section"], 0) + int(row["tokens"])
    return {
        "number": number,
        "cast": cast_names,
        "cast_cards": len(card_rows),
        "cast_cards_shown": sum(r["shown"] for r in card_rows),
        "cast_card_recall": _ratio(sum(r["shown"] for r in card_rows), len(card_rows)),
        "past_events": len(events),
        "past_events_shown": len(recalled),
        "past_events_condensed": sum(e.id in condensed for e in recalled),
        "past_event_recall": _ratio(len(recalled), len(events)),
        "missed_events": [
            {"id": e.id, "chapter": e.chapter, "text": e.text} for e in events if e.id not in shown
        ],
        "future_leaks": leaks,
        "latest_states": state_rows,
        "latest_state_correctness": _ratio(sum(r["correct"] for r in state_rows), len(state_rows)),
        "tokens": tokens,
        "prompt_tokens": comp.tokens,
        "budget": comp.budget,
        "memory_shown": len(comp.memory),
        "warnings": list(comp.warnings),
    }


def _leaks(comp: Any, number: int, active: list[Any], shown: set[str], by_id: dict[str, Any]) -> list[dict]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry_id in shown:
        e = by_id.get(entry_id)
        if e is not None and e.chapter is not None and e.chapter > number:
            out.append({"where": "memory", "id": e.id, "chapter": e.chapter, "text": e.text})
            seen.add(e.id)
    for row in comp.account:
        source = str(row.get("source", ""))
        if not row["included"]:
            continue
        if source.startswith("thread:"):
            e = by_id.get(source.split(":", 1)[1])
            if e is not None and e.chapter is not None and e.chapter > number and e.id not in seen:
                out.append({"where": "thread", "id": e.id, "chapter": e.chapter, "text": e.text})
                seen.add(e.id)
        elif source.startswith("summary:"):
            k = int(source.split(":", 1)[1])
            if k >= number:
                out.append({"where": "summary", "id": "", "chapter": k, "text": ""})
    planned = comp.section("后续章节")
    prompt = "\n".join(m["content"] for m in comp.messages)
    if planned:
        prompt = prompt.replace(planned, "")
    flat = "".join(prompt.split())
    grams = ngrams(flat, LEAK_NGRAM)
    for e in active:
        if e.chapter is None or e.chapter <= number or e.id in seen:
            continue
        if _text_leak(e, grams, flat):
            section = next(
                (h for h in _HEADINGS if (body := comp.section(h)) and _text_leak(e, ngrams(body, LEAK_NGRAM),
                                                                                   "".join(body.split()))),
                "system",
            )  # fmt: skip
            out.append({"where": f"text:{section}", "id": e.id, "chapter": e.chapter, "text": e.text})
            seen.add(e.id)
    return out


_HEADINGS = ("作品信息", "本章大纲", "前情提要", "伏笔", "相关记忆", "上一章结尾", "前文", "写作要求")


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def memory_probe(
    novel: Any,
    store: Any,
    settings: Any,
    count_tokens: Callable[[str], int],
    *,
    chapters: list[int] | None = None,
    budget: int | None = None,
    tokenizer: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Compose the first prompt of each of ``chapters`` (default: :data:`DEFAULT_CHAPTERS` spread over the
    outline) and report what its memory sections hold; ``budget`` is the whole prompt's token budget
    (default ``writing.prompt_budget``, else 8,192 as ``compose`` uses)."""
    from xiaoshuo.writing.compose import compose
    from xiaoshuo.writing.schema import WritingError

    started = time.perf_counter()
    outline = novel.outline()
    card = novel.card()
    planned = [c.number for c in outline.chapters()]
    chosen = spread(planned) if chapters is None else chapters
    missing = [n for n in chosen if outline.chapter(n) is None]
    if missing:
        raise WritingError(
            f"大纲里没有这些章 (not in the outline): {missing}",
            expected=f"chapters 1..{len(planned)}",
            received=missing,
            fix=f"xiaoshuo outline show --novel {novel.slug}",
        )
    entries = store.list(novel.slug)
    rows = []
    for i, n in enumerate(chosen):
        plan = outline.chapter(n)
        target = plan.target_chars or card.chapter_chars
        comp = compose(
            novel,
            settings=settings,
            count_tokens=count_tokens,
            chapter=n,
            text="",
            request=first_request(n, plan.title, target, settings.writing.segment_chars),
            store=store,
            budget=budget,
        )
        rows.append(chapter_probe(comp, n, plan.characters, entries))
        if progress is not None:
            progress(i + 1, len(chosen))
    warnings = (
        []
        if rows
        else [f"大纲里还没有章节 (no chapters in the outline): xiaoshuo outline show --novel {novel.slug}"]
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "memory",
        "novel": novel.slug,
        "created": time.time(),
        "budget": budget or settings.writing.prompt_budget or 8192,
        "memory_budget": settings.memory.context_token_budget,
        "tokenizer": tokenizer,
        "chapters": rows,
        **pooled(rows),
        "warnings": warnings,
        "seconds": round(time.perf_counter() - started, 3),
    }


def pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The book's figures over the chapter rows."""
    states = [s for r in rows for s in r["latest_states"]]
    sections: dict[str, list[int]] = {}
    for r in rows:
        for k, v in r["tokens"].items():
            sections.setdefault(k, []).append(v)
    return {
        "cast_card_recall": _ratio(
            sum(r["cast_cards_shown"] for r in rows), sum(r["cast_cards"] for r in rows)
        ),
        "past_event_recall": _ratio(
            sum(r["past_events_shown"] for r in rows), sum(r["past_events"] for r in rows)
        ),
        "future_leaks": sum(len(r["future_leaks"]) for r in rows),
        "latest_state_correctness": _ratio(sum(s["correct"] for s in states), len(states)),
        "tokens_mean": {k: round(sum(v) / len(rows), 1) for k, v in sections.items()},
    }
