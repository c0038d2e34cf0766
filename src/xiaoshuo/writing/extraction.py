"""Memory extraction: the model proposes, the writer decides (:mod:`xiaoshuo.writing.review`).

For each chapter the model fills one form (structured output, :data:`ChapterFacts`): characters
(name, aliases, traits, description, state, location, relationships), events (possibly an open thread
with a payoff chapter, or the payoff of one), settings and key dialogues — each with an evidence quote.
The tool then, deterministically:

* verifies every quote against the chapter text and drops what it cannot find (counted, with the reason);
* matches names against memory by name and alias: a known character becomes a ``character_update``
  (approving adds a new dated state), a known setting is dropped, a character proposed as new by an
  earlier chapter of the same run becomes an update of that one;
* adds proposals for person/place names jieba tags (nr/ns) that memory does not know;
* records which known characters and places appear in each chapter (``appearances.json``).

A form that still fails validation after the retries is an error for that chapter: nothing of it
reaches the queue or memory.  Chapters are sent to the engine in batches (vLLM runs a batch
concurrently); each request's ``max_tokens`` is what the context leaves after the rendered
prompt (at least the Extractor's ``max_tokens``, at most :data:`ANSWER_CAP`).  After each batch
the proposals are queued and ``review/extracted.json`` records each chapter's text hash, so a
rerun with ``resume`` skips the chapters already done.  Long chapters are split into pieces so
that prompt (schema hint and chat template included) + answer fit the model's context (a
4,096-token test model included).  With ``writing.auto_approve`` the proposals are approved at
once; otherwise they wait for ``xiaoshuo memory review``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from xiaoshuo.files import atomic_write_json
from xiaoshuo.memory.schema import MemoryEntry
from xiaoshuo.writing.bookkeeping import Appearances, NameTagger, sentence_at, sha
from xiaoshuo.writing.review import (
    Evidence,
    Proposal,
    ReviewQueue,
    character_index,
    evidence_for,
    new_id,
    setting_index,
)

Short = Annotated[str, StringConstraints(max_length=12)]
DEFAULT_BATCH = 16
MAX_KNOWN_NAMES = 60
ANSWER_CAP = 2048  # the most tokens one form's answer may take (a rich chapter's form is ~1,000)
PROMPT_MARGIN = 16  # tokens kept free: a piece's tokens can differ by a few inside the whole prompt


def answer_room(engine: Any, messages: list[dict[str, str]], *, least: int, most: int, task: str) -> int:
    """``max_tokens`` for a prompt: what the context leaves after it (``Engine.context_len`` less
    ``Engine.prompt_tokens``), within [least, most].

    Raises a WritingError when not even ``least`` tokens are left (the prompt's fixed part is too long).
    """
    from xiaoshuo.writing.schema import WritingError

    used = engine.prompt_tokens(messages)
    room = engine.context_len - used - PROMPT_MARGIN
    if room < least:
        raise WritingError(
            f"提示词太长，放不下回答：任务 {task} (the {task} prompt leaves no room for the answer)",
            expected=f"prompt + at least {least} answer tokens <= {engine.context_len} (the model's context)",
            received=f"{used} prompt tokens",
            fix="换用上下文更长的模型 (model.vllm_max_model_len)，或减少记忆条目 / use a longer context",
        )
    return max(least, min(most, room))


def _no_titles(schema: dict[str, Any]) -> None:
    """Keep the schema small (it goes into the prompt): no ``title`` on the form or its fields."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_titles)


class Relation(_Form):
    who: Short
    relation: Short


class CharacterFact(_Form):
    name: Annotated[str, StringConstraints(min_length=1, max_length=12)]
    aliases: list[Short] = Field(default_factory=list, max_length=3)
    traits: list[Short] = Field(default_factory=list, max_length=3)
    description: Annotated[str, StringConstraints(max_length=60)] = ""
    state: Annotated[str, StringConstraints(max_length=40)] = ""
    location: Annotated[str, StringConstraints(max_length=16)] = ""
    relationships: list[Relation] = Field(default_factory=list, max_length=3)
    evidence: Annotated[str, StringConstraints(max_length=60)]


class EventFact(_Form):
    title: Annotated[str, StringConstraints(max_length=20)]
    summary: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    characters: list[Short] = Field(default_factory=list, max_length=4)
    time_in_story: Annotated[str, StringConstraints(max_length=16)] = ""
    thread: Literal["none", "open", "closed"] = "none"
    payoff_chapter: int | None = Field(None, ge=1, le=100_000)
    evidence: Annotated[str, StringConstraints(max_length=60)]


class SettingFact(_Form):
    name: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    description: Annotated[str, StringConstraints(max_length=60)] = ""
    evidence: Annotated[str, StringConstraints(max_length=60)]


class DialogueFact(_Form):
    speaker: Short
    quote: Annotated[str, StringConstraints(min_length=2, max_length=80)]
    why: Annotated[str, StringConstraints(max_length=40)] = ""


class ChapterFacts(_Form):
    """The form the model fills for one chapter (or one piece of a long chapter)."""

    characters: list[CharacterFact] = Field(default_factory=list, max_length=4)
    events: list[EventFact] = Field(default_factory=list, max_length=3)
    settings: list[SettingFact] = Field(default_factory=list, max_length=3)
    dialogues: list[DialogueFact] = Field(default_factory=list, max_length=2)


@dataclass
class _Batch:
    """A prepared batch: its chapters' texts, the forms to ask (one per piece) and whose they are."""

    chapters: list[int]
    texts: dict[int, str]
    todo: list[int]
    results: dict[int, ChapterResult]
    entries: list[MemoryEntry]
    items: list[Any]
    owners: list[int]


@dataclass
class ChapterResult:
    """What extraction did for one chapter."""

    chapter: int
    proposals: list[Proposal] = field(default_factory=list)  # queued (or approved with auto_approve)
    dropped: list[dict[str, Any]] = field(default_factory=list)  # {kind, name, quote, reason}
    error: str = ""  # the structured-output error of a piece: none of that piece reached the queue
    pieces: int = 1
    approved: int = 0
    skipped: bool = False  # resume: already extracted from this very text

    def as_dict(self) -> dict[str, Any]:
        return {
            "chapter": self.chapter,
            "proposals": [p.model_dump(mode="json") for p in self.proposals],
            "dropped": self.dropped,
            "error": self.error,
            "pieces": self.pieces,
            "approved": self.approved,
            "skipped": self.skipped,
        }


def messages_for(
    card: Any, number: int, title: str, text: str, known: list[str], prompts: Any = None
) -> list[dict[str, str]]:
    """The extraction prompt (:func:`xiaoshuo.writing.prompts.extraction_messages`)."""
    from xiaoshuo.writing.prompts import DEFAULT_PROMPTS, extraction_messages
    from xiaoshuo.writing.structured import schema_hint, schema_of

    return extraction_messages(
        prompts or DEFAULT_PROMPTS,
        book=card.title if card is not None else None,
        number=number,
        title=title,
        text=text,
        known=known[:MAX_KNOWN_NAMES],
        hint=schema_hint(schema_of(ChapterFacts)),
    )


def split_text(text: str, max_tokens: int, count: Callable[[str], int]) -> list[str]:
    """Pieces of ``text`` of at most ``max_tokens`` tokens each, cut at line ends where possible."""
    if count(text) <= max_tokens:
        return [text]
    pieces: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        if current and count(current + line) > max_tokens:
            pieces.append(current)
            current = ""
        while count(line) > max_tokens:  # one very long line: cut it by characters
            lo, hi = 1, len(line)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if count(line[:mid]) <= max_tokens else (lo, mid - 1)
            pieces.append(line[:lo])
            line = line[lo:]
        current += line
    if current:
        pieces.append(current)
    return pieces


class Extractor:
    """Extract memory proposals from a novel's chapters with one engine and one memory store."""

    def __init__(
        self,
        settings: Any,
        engine: Any,
        novel: Any,
        store: Any,
        *,
        batch: int = DEFAULT_BATCH,
        max_tokens: int = 640,
        seed: int | None = 0,
    ) -> None:
        from xiaoshuo.writing.prompts import Prompts

        self.settings, self.engine, self.novel, self.store = settings, engine, novel, store
        self.prompts = Prompts.from_settings(settings)
        self.batch = max(1, batch)
        self.max_tokens = max_tokens
        self.seed = seed
        self.queue = ReviewQueue.of(novel)
        self.record_path = self.queue.root / "extracted.json"

    # ------------------------------------------------------------------ progress record
    def record(self) -> dict[str, Any]:
        try:
            return json.loads(self.record_path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}

    def done(self, number: int, text: str) -> bool:
        return self.record().get(str(number), {}).get("sha256") == sha(text)

    def _mark(self, results: list[ChapterResult], texts: dict[int, str]) -> None:
        record = self.record()
        for r in results:
            if not r.error and not r.skipped:
                record[str(r.chapter)] = {
                    "sha256": sha(texts[r.chapter]),
                    "time": time.time(),
                    "proposals": len(r.proposals),
                    "dropped": len(r.dropped),
                }
        atomic_write_json(self.record_path, record)

    # ------------------------------------------------------------------ the run
    def chapters(self) -> list[int]:
        """Every chapter with text (drafted or final)."""
        return [n for n in self.novel.written_chapters() if self.novel.text(n).strip()]

    async def extract(
        self,
        chapters: list[int],
        *,
        resume: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[ChapterResult]:
        """Extract ``chapters`` in batches; ``progress(done, total)`` after each batch.

        At most ``batch`` forms are in flight at once, as a sliding window: while a batch's last forms
        are still decoding, the next batch's forms take the freed slots (a batch's wall time is its
        longest form's; without the window each batch waited for its slowest form alone on the engine).
        Batches are still finished, queued and recorded in order.  With ``writing.auto_approve`` the
        next batch waits for the previous one (its prompt lists the names approved from it).
        """
        import asyncio

        parts = [chapters[i : i + self.batch] for i in range(0, len(chapters), self.batch)]
        window = asyncio.Semaphore(self.batch)
        ahead = not self.settings.writing.auto_approve
        results: list[ChapterResult] = []
        asked: list[tuple[_Batch, asyncio.Task]] = []  # batches whose forms are in flight, in order

        def ask(part: list[int]) -> None:
            batch = self._prepare(part, resume=resume)
            asked.append((batch, asyncio.ensure_future(self._ask(batch.items, window))))

        try:
            for k, part in enumerate(parts):
                if not asked:
                    ask(part)
                if ahead and k + 1 < len(parts):
                    ask(parts[k + 1])
                batch, task = asked.pop(0)
                results += self._finish(batch, await task)
                if progress is not None:
                    progress(min((k + 1) * self.batch, len(chapters)), len(chapters))
        finally:
            for _, task in asked:
                task.cancel()
            await asyncio.gather(*(task for _, task in asked), return_exceptions=True)
        return results

    def _prepare(self, chapters: list[int], *, resume: bool) -> _Batch:
        """A batch's prompts (and what finishing it needs); records appearances."""
        entries = self.store.list(self.novel.slug)
        texts = {n: self.novel.text(n) for n in chapters}
        Appearances(self.novel.root).update({n: t for n, t in texts.items() if t.strip()}, entries)
        todo = [n for n in chapters if texts[n].strip() and not (resume and self.done(n, texts[n]))]
        results = {n: ChapterResult(n, skipped=True, pieces=0) for n in chapters if n not in todo}
        card = self.novel.card()
        outline = self.novel.outline()
        known = _known_names(entries)
        items, owners = [], []
        for n in todo:
            plan = outline.chapter(n)
            title = plan.title if plan else ""
            budget = self._text_budget(card, n, title, known)
            pieces = split_text(texts[n], budget, self.engine.count_tokens)
            results[n] = ChapterResult(n, pieces=len(pieces))
            for piece in pieces:
                items.append(
                    (
                        messages_for(card, n, title, piece, known, self.prompts),
                        ChapterFacts,
                        "extract",
                        n,
                    )
                )
                owners.append(n)
        return _Batch(chapters, texts, todo, results, entries, items, owners)

    def _finish(self, batch: _Batch, answers: list[Any]) -> list[ChapterResult]:
        """Proposals from a batch's answers: queued (approved with auto_approve) and recorded."""
        from xiaoshuo.writing.structured import StructuredOutputError

        chapters, texts, todo, results, entries = (
            batch.chapters,
            batch.texts,
            batch.todo,
            batch.results,
            batch.entries,
        )
        facts: dict[int, list[ChapterFacts]] = {}
        for n, answer in zip(batch.owners, answers, strict=True):
            if isinstance(answer, StructuredOutputError):
                results[n].error = str(answer)
            elif isinstance(answer, ChapterFacts):
                facts.setdefault(n, []).append(answer)
        tagger = self._tagger(entries) if todo else None
        proposed_new = {
            p.fields.get("name", ""): p.id
            for p in self.queue.list("pending")
            if p.kind == "character" and p.chapter not in todo
        }
        for n in todo:
            r = results[n]
            if r.error:
                continue  # a chapter whose form failed: nothing of it is queued; a rerun tries again
            made, dropped = [], []
            for f in facts.get(n, []):
                m, d = to_proposals(self.novel.slug, n, texts[n], f, entries, proposed_new)
                made += m
                dropped += d
            made += name_proposals(self.novel.slug, n, texts[n], tagger, made, proposed_new)
            self.queue.drop_pending(n)
            r.proposals = self.queue.add(made)
            r.dropped = dropped
        if self.settings.writing.auto_approve:
            for n in todo:
                for p in results[n].proposals:
                    self.queue.approve(p.id, self.store)
                    results[n].approved += 1
        ordered = [results[n] for n in chapters]
        self._mark(ordered, texts)
        from xiaoshuo.writing import flow  # done at the current text: the forward flow's pending work

        done = {r.chapter: sha(texts[r.chapter]) for r in ordered if not r.error}
        flow.refreshed(self.novel, done, extract=True)
        return ordered

    def _tagger(self, entries: list[MemoryEntry]) -> NameTagger:
        """jieba's tagger with memory's names, built once per set of names (loading it takes ~1 s)."""
        key = tuple(sorted({(e.kind, e.name, *e.aliases, *e.characters) for e in entries}))
        if getattr(self, "_tagger_key", None) != key:
            self._tagger_cache, self._tagger_key = NameTagger(entries), key
        return self._tagger_cache

    async def _ask(self, items: list[Any], window: Any = None) -> list[Any]:
        """All forms at once (vLLM batches them), each with max_tokens sized from its own prompt;
        results in ``items``' order.  ``window`` (an asyncio.Semaphore) counts chapters: a chapter's
        forms (its pieces, all at once) wait for one slot."""
        import asyncio

        from xiaoshuo.writing.structured import (
            StructuredOutputError,
            generate_json,
            schema_of,
            with_schema_hint,
        )

        schema = schema_of(ChapterFacts)
        if window is None:
            window = asyncio.Semaphore(max(1, len(items)))

        def form(messages: list[dict[str, str]], model: Any, task: str, n: int) -> Any:
            return generate_json(
                self.engine,
                messages,
                model,
                task=task,
                chapter=n,
                sampling=self._sampling(with_schema_hint(messages, schema)),
                retries=self.settings.writing.structured_retries,
            )

        async def chapter(pieces: list[Any]) -> list[Any]:
            async with window:
                return await asyncio.gather(*(form(*item) for item in pieces), return_exceptions=True)

        by_chapter: dict[int, list[int]] = {}
        for i, item in enumerate(items):
            by_chapter.setdefault(item[3], []).append(i)
        done = await asyncio.gather(*(chapter([items[i] for i in at]) for at in by_chapter.values()))
        answers: list[Any] = [None] * len(items)
        for at, got in zip(by_chapter.values(), done, strict=True):
            for i, answer in zip(at, got, strict=True):
                answers[i] = answer
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, StructuredOutputError):
                raise answer
        return answers

    def _sampling(self, prompt: list[dict[str, str]]) -> Any:
        from xiaoshuo.engine import SamplingSettings

        room = answer_room(
            self.engine, prompt, least=self.max_tokens, most=max(self.max_tokens, ANSWER_CAP), task="extract"
        )
        return SamplingSettings(
            temperature=0.0, top_p=1.0, top_k=-1, repetition_penalty=1.0, max_tokens=room, seed=self.seed
        )

    def _text_budget(self, card: Any, number: int, title: str, known: list[str]) -> int:
        """Tokens a chapter piece may take: the context less the prompt's fixed part and the answer."""
        from xiaoshuo.writing.structured import schema_of, with_schema_hint

        frame = with_schema_hint(
            messages_for(card, number, title, "", known, self.prompts), schema_of(ChapterFacts)
        )
        limit = self.engine.context_len - self.max_tokens - self.engine.prompt_tokens(frame) - PROMPT_MARGIN
        if limit < 64:
            answer_room(self.engine, frame, least=self.max_tokens + 64, most=ANSWER_CAP, task="extract")
        return min(limit, 6000)


def _known_names(entries: list[MemoryEntry]) -> list[str]:
    ranked = sorted(
        (e for e in entries if e.kind in ("character", "setting") and not e.archived and e.chapter is None),
        key=lambda e: (-e.importance, e.name),
    )
    names: list[str] = []
    for e in ranked:
        if e.name not in names:
            names.append(e.name)
    return names


def _drop(kind: str, name: str, quote: str, reason: str) -> dict[str, Any]:
    return {"kind": kind, "name": name, "quote": quote, "reason": reason}


def to_proposals(
    slug: str,
    chapter: int,
    text: str,
    facts: ChapterFacts,
    entries: list[MemoryEntry],
    proposed_new: dict[str, str],
) -> tuple[list[Proposal], list[dict[str, Any]]]:
    """Proposals from one filled form (evidence verified, names matched); and what was dropped, why."""
    chars = character_index(entries)
    places = setting_index(entries)
    digest = sha(text)
    out: list[Proposal] = []
    dropped: list[dict[str, Any]] = []

    def make(kind: str, fields: dict[str, Any], ev: Evidence, target: str = "", note: str = "") -> None:
        fields = {k: v for k, v in fields.items() if v not in ("", [], {}, None)}
        out.append(
            Proposal(
                id=new_id(),
                novel=slug,
                chapter=chapter,
                kind=kind,
                fields=fields,
                target=target,
                evidence=ev,
                chapter_sha256=digest,
                note=note,
            )
        )

    for c in facts.characters:
        ev = evidence_for(text, c.evidence)
        name = c.name.strip()
        if ev is None:
            dropped.append(_drop("character", name, c.evidence, "evidence not found in the chapter"))
            continue
        rel = {
            r.who.strip(): r.relation.strip() for r in c.relationships if r.who.strip() and r.relation.strip()
        }
        known = next((chars[n] for n in [name, *c.aliases] if n in chars), None)
        target = known.name if known is not None else (name if name in proposed_new else "")
        if target:
            fields = {"state": c.state, "location": c.location, "relationships": rel}
            if not any(fields.values()):
                dropped.append(_drop("character", name, c.evidence, f"known character {target}: nothing new"))
                continue
            make("character_update", fields, ev, target=target)
            continue
        fields = {
            "name": name,
            "aliases": [a for a in c.aliases if a.strip() and a != name],
            "traits": c.traits,
            "text": c.description,
            "state": c.state,
            "relationships": rel,
        }
        make("character", fields, ev)
        proposed_new[name] = out[-1].id
    open_threads = [e for e in entries if e.kind == "plot" and e.thread == "open" and not e.archived]
    for ev_fact in facts.events:
        ev = evidence_for(text, ev_fact.evidence)
        if ev is None:
            dropped.append(
                _drop("plot", ev_fact.title, ev_fact.evidence, "evidence not found in the chapter")
            )
            continue
        people = [chars[c].name if c in chars else c for c in ev_fact.characters]
        if ev_fact.thread == "closed":
            thread = next(
                (
                    t
                    for t in open_threads
                    if t.name and (t.name in ev_fact.title or t.name in ev_fact.summary)
                ),
                None,
            )
            if thread is not None:
                make(
                    "thread_close",
                    {"text": ev_fact.summary},
                    ev,
                    target=thread.id,
                    note=f"closes {thread.name}",
                )
                continue
        make(
            "plot",
            {
                "name": ev_fact.title,
                "text": ev_fact.summary,
                "characters": people,
                "time_in_story": ev_fact.time_in_story,
                "thread": "open" if ev_fact.thread == "open" else "",
                "payoff_chapter": ev_fact.payoff_chapter if ev_fact.thread == "open" else None,
            },
            ev,
        )
    for s in facts.settings:
        ev = evidence_for(text, s.evidence)
        if ev is None:
            dropped.append(_drop("setting", s.name, s.evidence, "evidence not found in the chapter"))
        elif s.name.strip() in places:
            dropped.append(_drop("setting", s.name, s.evidence, "known setting"))
        else:
            make("setting", {"name": s.name.strip(), "text": s.description}, ev)
    for d in facts.dialogues:
        ev = evidence_for(text, d.quote)
        if ev is None:
            dropped.append(_drop("dialogue", d.speaker, d.quote, "quote not found in the chapter"))
            continue
        speaker = chars[d.speaker].name if d.speaker in chars else d.speaker.strip()
        make("dialogue", {"characters": [speaker] if speaker else [], "text": ev.quote, "why": d.why}, ev)
    return out, dropped


def name_proposals(
    slug: str,
    chapter: int,
    text: str,
    tagger: NameTagger | None,
    made: list[Proposal],
    proposed_new: dict[str, str],
) -> list[Proposal]:
    """Proposals for names jieba tags as person (nr) or place (ns) that neither memory nor the model knows."""
    if tagger is None:
        return []
    taken = set(proposed_new) | {p.fields.get("name", "") for p in made} | {p.target for p in made}
    out = []
    for cand in tagger.unknown(text):
        if cand.name in taken:
            continue
        a, b = sentence_at(text, cand.start, cand.start + len(cand.name))
        label = "人物" if cand.kind == "character" else "地点"
        out.append(
            Proposal(
                id=new_id(),
                novel=slug,
                chapter=chapter,
                kind=cand.kind,
                source="names",
                fields={"name": cand.name, "text": f"第{chapter}章出现的{label}（自动识别，请补充）"},
                evidence=Evidence(quote=text[a:b], start=a, end=b),
                chapter_sha256=sha(text),
                note=f"jieba {cand.flag}, {cand.count}×",
            )
        )
        if cand.kind == "character":
            proposed_new[cand.name] = out[-1].id
        taken.add(cand.name)
    return out
