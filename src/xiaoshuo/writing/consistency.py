"""Consistency check of one chapter against memory.  It warns; it never blocks or edits.

Rule-based (deterministic, no model):

* ``dead_acts`` — a character whose latest state before this chapter says dead (死, 身亡, 遇害 … and
  not 假死 / 未死) speaks or acts in it (``dead_mentioned``, info, when only named: a memory, a grave);
* ``two_places`` — one character said to be *in* (在) two different known places in one scene with no
  movement (来到, 回到, 离开 …) between;
* ``reappears`` — a character unseen for more than ``writing.reappear_gap`` chapters (by the
  appearance bookkeeping) is back: remind the reader who they are.

A model-judged pass (:func:`judge_chapter`, structured output) adds findings whose quotes are verified
against the chapter text like extraction's evidence.  Every finding cites the chapter (quote and span)
and the memory entry it is checked against.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from xiaoshuo.memory.schema import MemoryEntry
from xiaoshuo.writing.bookkeeping import Appearances, find_names, names_of, sentence_at
from xiaoshuo.writing.review import character_index

DEAD = re.compile(
    r"(?<![没未假诈装不非])(?:死了|已死|死去|身亡|阵亡|去世|遇害|已故|殒命|毙命|被杀|丧命|亡故|过世|牺牲|战死|病死|死亡|尸体)"
)
NOT_DEAD = re.compile(r"(复活|起死回生|死而复生|假死|诈死|未死|没死|不死)")
ACTS = re.compile(
    r"^[^。！？\n“”，,、；]{0,6}?(?:说|道|问|笑|喊|叫|答|喝|骂|叹|走|跑|站|坐|拔|举|挥|点头|摇头|转身|开口|看着|望着|伸手|抬头|低头)"
)
SPEAKS = re.compile(r"^\s*[：:]\s*[“「\"]")
MOVES = re.compile(
    r"(来到|回到|到了|赶到|赶往|前往|离开|离了|走进|进入|走出|出了|动身|启程|抵达|飞往|回了|去了|奔向|追到)"
)
SCENE_BREAK = re.compile(r"\n\s*(?:[*＊※◇◆#\-—=~·]\s*){3,}\s*\n|\n\s*与此同时")
_IN = re.compile(r"^[^。！？\n]{0,4}?(?:在|于)")


@dataclass
class Finding:
    rule: str
    severity: str  # warning | info
    message: str
    character: str
    quote: str
    start: int
    end: int
    entry: dict[str, Any] = field(default_factory=dict)  # id, kind, name, chapter, state
    source: str = "rules"  # rules | model

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cite(e: MemoryEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "name": e.name,
        "chapter": e.chapter,
        "state": e.state,
        "text": e.text,
    }


def latest_states(entries: list[MemoryEntry], before: int) -> dict[str, MemoryEntry]:
    """name → the character entry in force before chapter ``before`` (latest dated, else the card)."""
    best: dict[str, MemoryEntry] = {}
    for e in entries:
        if e.kind != "character" or e.archived or (e.chapter is not None and e.chapter >= before):
            continue
        cur = best.get(e.name)
        rank = -1 if e.chapter is None else e.chapter
        if cur is None or rank > (-1 if cur.chapter is None else cur.chapter):
            best[e.name] = e
    return best


def is_dead(state: str) -> bool:
    return bool(state) and bool(DEAD.search(state)) and not NOT_DEAD.search(state)


def check_chapter(
    text: str,
    chapter: int,
    entries: list[MemoryEntry],
    *,
    appearances: Appearances | None = None,
    gap: int = 20,
) -> list[Finding]:
    """Rule-based findings for ``text`` as chapter ``chapter``, in text order."""
    findings = _dead(text, chapter, entries) + _two_places(text, entries)
    if appearances is not None:
        findings += _reappears(text, chapter, entries, appearances, gap)
    return sorted(findings, key=lambda f: (f.start, f.rule))


def _dead(text: str, chapter: int, entries: list[MemoryEntry]) -> list[Finding]:
    states = latest_states(entries, chapter)
    dead = {name: e for name, e in states.items() if is_dead(e.state) or is_dead(e.text if e.chapter else "")}
    if not dead:
        return []
    names = {k: v for k, v in names_of(entries, ("character",)).items() if v in dead}
    out: list[Finding] = []
    done: set[str] = set()
    mentioned: dict[str, tuple[int, int]] = {}
    for start, end, name in find_names(text, names):
        after = text[end : end + 12]
        if name not in done and (ACTS.search(after) or SPEAKS.search(after)):
            a, b = sentence_at(text, start, end)
            e = dead[name]
            out.append(
                Finding(
                    "dead_acts",
                    "warning",
                    f"{name} 在第{e.chapter if e.chapter is not None else '?'}章的状态是"
                    f"「{e.state or e.text}」，本章却在说话或行动 (a dead character acts)",
                    name,
                    text[a:b],
                    a,
                    b,
                    _cite(e),
                )
            )
            done.add(name)
        mentioned.setdefault(name, (start, end))
    for name, (start, end) in mentioned.items():
        if name in done:
            continue
        a, b = sentence_at(text, start, end)
        e = dead[name]
        out.append(
            Finding(
                "dead_mentioned",
                "info",
                f"{name} 已死（{e.state or e.text}），本章提到了他/她：是回忆吗？"
                "(a dead character is mentioned)",
                name,
                text[a:b],
                a,
                b,
                _cite(e),
            )
        )
    return out


def _two_places(text: str, entries: list[MemoryEntry]) -> list[Finding]:
    chars = names_of(entries, ("character",))
    places = names_of(entries, ("setting",))
    if not chars or not places:
        return []
    cards = character_index(entries)
    settings = {e.name: e for e in entries if e.kind == "setting"}
    out: list[Finding] = []
    scene_starts = [0] + [m.end() for m in SCENE_BREAK.finditer(text)]
    bounds = list(zip(scene_starts, [*scene_starts[1:], len(text)], strict=True))
    for lo, hi in bounds:
        scene = text[lo:hi]
        where: dict[str, tuple[str, int, int]] = {}  # character → (place, start, end) last stated
        for start, end, name in find_names(scene, chars):
            m = _IN.search(scene[end : end + 8])
            if not m:
                continue
            at = end + m.end()
            place = next(
                (places[p] for p in sorted(places, key=len, reverse=True) if scene.startswith(p, at)), None
            )
            if place is None:
                continue
            prev = where.get(name)
            if prev is not None and prev[0] != place and not MOVES.search(scene[prev[2] : start]):
                a, b = sentence_at(text, lo + prev[1], lo + at + len(place))
                card = cards.get(name)
                out.append(
                    Finding(
                        "two_places",
                        "warning",
                        f"{name} 在同一场景里既在{prev[0]}又在{place}，中间没有移动 "
                        "(in two places in one scene)",
                        name,
                        text[a:b],
                        a,
                        b,
                        _cite(card) if card is not None else _cite(settings[place]),
                    )
                )
            where[name] = (place, start, at + len(place))
    return out


def _reappears(
    text: str, chapter: int, entries: list[MemoryEntry], appearances: Appearances, gap: int
) -> list[Finding]:
    cards = character_index(entries)
    out = []
    first: dict[str, tuple[int, int]] = {}
    for start, end, name in find_names(text, names_of(entries, ("character",))):
        first.setdefault(name, (start, end))
    for name, (start, end) in first.items():
        last = appearances.last_seen(name, chapter)
        card = cards.get(name)
        if last is None and card is not None and card.chapter is not None and card.chapter < chapter:
            last = card.chapter
        if last is None or chapter - last <= gap:
            continue
        a, b = sentence_at(text, start, end)
        out.append(
            Finding(
                "reappears",
                "info",
                f"{name} 上次出场是第{last}章（{chapter - last}章之前），读者可能已经忘了：交代一下他/她是谁 "
                "(unseen for many chapters)",
                name,
                text[a:b],
                a,
                b,
                _cite(card) if card is not None else {},
            )
        )
    return out


# ----------------------------------------------------------------------------- model-judged pass
class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JudgedIssue(_Form):
    quote: Annotated[str, StringConstraints(max_length=60)]
    problem: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    entry: Annotated[str, StringConstraints(max_length=12)] = ""


class Judgement(_Form):
    """The form the model fills: contradictions between the chapter and memory, each with a quote."""

    issues: list[JudgedIssue] = Field(default_factory=list, max_length=3)


def judge_facts(text: str, chapter: int, entries: list[MemoryEntry]) -> list[str]:
    """The memory shown to the judge: the latest state of each character present in ``text``."""
    states = latest_states(entries, chapter)
    present = {name for _, _, name in find_names(text, names_of(entries, ("character",)))}
    return [e.render() for name, e in sorted(states.items()) if name in present][:30]


def judge_messages(
    text: str,
    chapter: int,
    entries: list[MemoryEntry],
    *,
    facts: list[str] | None = None,
    prompts: Any = None,
) -> list[dict[str, str]]:
    """The judge's prompt (:func:`xiaoshuo.writing.prompts.check_messages`)."""
    from xiaoshuo.writing.prompts import DEFAULT_PROMPTS, check_messages
    from xiaoshuo.writing.structured import schema_hint, schema_of

    facts = judge_facts(text, chapter, entries) if facts is None else facts
    return check_messages(
        prompts or DEFAULT_PROMPTS,
        number=chapter,
        facts=facts,
        text=text,
        hint=schema_hint(schema_of(Judgement)),
    )


async def judge_chapter(
    engine: Any,
    text: str,
    chapter: int,
    entries: list[MemoryEntry],
    *,
    max_tokens: int = 512,
    prompts: Any = None,
) -> tuple[list[Finding], list[dict[str, Any]]]:
    """Model findings with verified quotes, and the ones dropped (quote not in the chapter).

    A chapter too long for one prompt (memory facts, schema hint and ``max_tokens`` of answer in the
    model's context) is judged in pieces, all at once; every piece sees the same memory facts.
    """
    import asyncio

    from xiaoshuo.engine import SamplingSettings
    from xiaoshuo.writing.extraction import answer_room, split_text
    from xiaoshuo.writing.review import locate
    from xiaoshuo.writing.structured import generate_json, schema_of, with_schema_hint

    schema = schema_of(Judgement)
    facts = judge_facts(text, chapter, entries)
    while True:  # fewer facts until a piece of at least 128 tokens fits beside them
        frame = with_schema_hint(judge_messages("", chapter, entries, facts=facts, prompts=prompts), schema)
        budget = min(engine.context_len - max_tokens - engine.prompt_tokens(frame) - 16, 6000)
        if budget >= 128 or not facts:
            break
        facts = facts[: len(facts) // 2]
    pieces = split_text(text, max(budget, 64), engine.count_tokens)

    def sampling(piece: str) -> SamplingSettings:
        prompt = with_schema_hint(
            judge_messages(piece, chapter, entries, facts=facts, prompts=prompts), schema
        )
        room = answer_room(engine, prompt, least=max_tokens, most=max_tokens, task="check")
        return SamplingSettings(temperature=0.0, top_p=1.0, top_k=-1, repetition_penalty=1.0, max_tokens=room)

    answers = await asyncio.gather(
        *(
            generate_json(
                engine,
                judge_messages(piece, chapter, entries, facts=facts, prompts=prompts),
                Judgement,
                task="check",
                chapter=chapter,
                sampling=sampling(piece),
            )
            for piece in pieces
        )
    )
    cards = character_index(entries)
    states = latest_states(entries, chapter)
    found, dropped = [], []
    for issue in (i for answer in answers for i in answer.issues):
        span = locate(text, issue.quote)
        if span is None:
            dropped.append(
                {"quote": issue.quote, "problem": issue.problem, "reason": "quote not in the chapter"}
            )
            continue
        card = cards.get(issue.entry.strip())
        e = states.get(card.name) if card is not None else None
        found.append(
            Finding(
                "model",
                "warning",
                issue.problem,
                card.name if card is not None else issue.entry.strip(),
                text[span[0] : span[1]],
                span[0],
                span[1],
                _cite(e or card) if card is not None else {},
                source="model",
            )
        )
    return found, dropped


def require_text(novel: Any, number: int, text: str | None = None) -> str:
    """Chapter ``number``'s text (or ``text``); a chapter with no text is an error naming the fix."""
    from xiaoshuo.writing.schema import WritingError

    text = novel.text(number) if text is None else text
    if not text.strip():
        raise WritingError(
            f"第 {number} 章还没有正文 (chapter {number} has no text)",
            expected="a written chapter",
            received=str(novel.chapter_file(number)),
            fix=f"xiaoshuo write chapter {number} --novel {novel.slug}",
        )
    return text


def run_check(settings: Any, novel: Any, number: int, store: Any, *, engine: Any = None) -> dict[str, Any]:
    """Everything ``xiaoshuo check chapter`` reports: rule findings (+ the model's when ``engine``)."""
    import asyncio

    text = require_text(novel, number)
    entries = store.list(novel.slug)
    appearances = Appearances(novel.root)
    appearances.update({n: novel.text(n) for n in novel.written_chapters() if n <= number}, entries)
    findings = check_chapter(
        text, number, entries, appearances=appearances, gap=settings.writing.reappear_gap
    )
    warnings: list[str] = []
    dropped: list[dict[str, Any]] = []
    if engine is not None:
        from xiaoshuo.writing.structured import StructuredOutputError

        try:
            from xiaoshuo.writing.prompts import Prompts

            prompts = Prompts.from_settings(settings)
            judged, dropped = asyncio.run(judge_chapter(engine, text, number, entries, prompts=prompts))
            findings += judged
        except StructuredOutputError as exc:
            warnings.append(f"模型检查失败，只有规则检查的结果 (the model pass failed): {exc}")
    return {
        "novel": novel.slug,
        "chapter": number,
        "findings": [f.as_dict() for f in findings],
        "dropped": dropped,
        "warnings": warnings,
    }
