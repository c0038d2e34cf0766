"""The review queue: memory changes proposed by extraction wait here until the writer decides.

Every proposal carries the chapter it came from and the evidence for it — a quote and its span
``[start, end)`` in the chapter text, verified when the proposal is made (a quote that is not in the
chapter never becomes a proposal).  Kinds:

* ``character`` — a new character (name, aliases, traits, description, state); its card is undated
  (``chapter`` blank) unless the writer sets a chapter;
* ``character_update`` — a change to a known character (state, location, relationships): approving
  adds a **new dated entry** (``chapter`` = the proposal's chapter) and never edits the older ones, so
  chapter-aware retrieval shows the old state before this chapter and the new one from it on;
* ``plot`` — an event, possibly an open thread (伏笔) with a planned payoff chapter;
* ``thread_close`` — an open thread paid off in this chapter (approving marks that entry closed);
* ``setting`` — a place, organisation or thing;  ``dialogue`` — a key line and who said it.

On disk (``data/novels/<slug>/review/``): one JSON file per proposal under ``proposals/``, written
atomically; a ``.lock`` (flock) serialises changes between processes.  :meth:`ReviewQueue.preview`
is exactly what approval writes (entry ids are derived from the proposal id, so an approval that
crashed half-way and is run again writes the same entries, not duplicates).  Approving validates
every entry before the store is touched; rejecting writes nothing to memory.

This module neither calls a model nor reads chapters to find proposals: :mod:`xiaoshuo.writing.extraction`
does that.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xiaoshuo.files import atomic_write_json
from xiaoshuo.memory.schema import MemoryEntry, StoryMemoryError, make_entry
from xiaoshuo.writing.schema import WritingError

ProposalKind = Literal["character", "character_update", "plot", "thread_close", "setting", "dialogue"]
PROPOSAL_KINDS = ("character", "character_update", "plot", "thread_close", "setting", "dialogue")
STATUSES = ("pending", "approved", "rejected")
_NS = uuid.UUID("6c1f4f0e-6a43-4a8e-9d61-0b3c1c6e2f11")

#: Fields a writer may ``--set`` per kind (and their types: list, dict, int or str).
EDITABLE: dict[str, tuple[str, ...]] = {
    "character": ("name", "aliases", "traits", "text", "state", "relationships", "importance", "chapter"),
    "character_update": ("state", "location", "relationships", "text", "traits", "chapter"),
    "plot": (
        "name",
        "text",
        "characters",
        "time_in_story",
        "thread",
        "payoff_chapter",
        "importance",
        "chapter",
    ),
    "thread_close": ("text", "chapter"),
    "setting": ("name", "aliases", "text", "importance"),
    "dialogue": ("characters", "text", "why", "importance", "chapter"),
}
_LISTS = {"aliases", "traits", "characters"}
_INTS = {"importance", "payoff_chapter", "chapter"}


class ReviewError(WritingError):
    """A proposal is unknown, already decided, or an edit does not fit it."""


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quote: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Proposal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    novel: str
    chapter: int = Field(ge=0)
    kind: ProposalKind
    source: Literal["model", "names"] = "model"  # names: jieba nr/ns tagging, no model involved
    fields: dict[str, Any] = Field(default_factory=dict)
    target: str = ""  # the known character's name (character_update) or thread entry id (thread_close)
    evidence: Evidence | None = None
    chapter_sha256: str = ""
    status: Literal["pending", "approved", "rejected"] = "pending"
    note: str = ""
    created: float = Field(default_factory=time.time)
    decided: float | None = None
    edits: dict[str, Any] = Field(default_factory=dict)
    entry_ids: list[str] = Field(default_factory=list)

    def key(self) -> tuple[Any, ...]:
        """What makes two proposals the same (a re-extraction does not queue it twice)."""
        f = self.fields
        return (self.chapter, self.kind, self.target, f.get("name", ""), f.get("text", "")[:40])

    def summary(self) -> str:
        f = self.fields
        head = f.get("name") or self.target or "、".join(f.get("characters", [])) or ""
        body = f.get("state") or f.get("text") or ""
        return f"{head}：{body}" if head else body


def new_id() -> str:
    return uuid.uuid4().hex[:10]


# ----------------------------------------------------------------------------- evidence
_STRIP = "“”\"'‘’「」『』…。，,.！!？?：:；; \t\r\n"


def locate(text: str, quote: str) -> tuple[int, int] | None:
    """The span of ``quote`` in ``text`` (exact, else ignoring whitespace); None when it is not there.

    Quotes shorter than 2 characters once stripped of quotation marks are refused: they would match
    almost anywhere and prove nothing.
    """
    q = (quote or "").strip(_STRIP)
    if len(q) < 2:
        return None
    i = text.find(q)
    if i >= 0:
        return i, i + len(q)
    # ignore whitespace (a model often drops line breaks and full-width spaces)
    index = [j for j, ch in enumerate(text) if not ch.isspace()]
    squeezed = "".join(text[j] for j in index)
    qs = "".join(ch for ch in q if not ch.isspace())
    if len(qs) < 2:
        return None
    k = squeezed.find(qs)
    if k < 0:
        return None
    return index[k], index[k + len(qs) - 1] + 1


def verify(text: str, evidence: Evidence | None) -> bool:
    """Does the chapter text still hold the quote at its span?"""
    if evidence is None:
        return False
    return _norm(text[evidence.start : evidence.end]) == _norm(evidence.quote)


def _norm(s: str) -> str:
    return "".join(s.strip(_STRIP).split())


def evidence_for(text: str, quote: str) -> Evidence | None:
    span = locate(text, quote)
    if span is None:
        return None
    return Evidence(quote=text[span[0] : span[1]], start=span[0], end=span[1])


# ----------------------------------------------------------------------------- known entries
def character_index(entries: Iterable[MemoryEntry]) -> dict[str, MemoryEntry]:
    """name/alias → the character's card: the undated entry if any, else its latest dated one."""
    best: dict[str, MemoryEntry] = {}
    for e in entries:
        if e.kind != "character" or e.archived:
            continue
        cur = best.get(e.name)
        if cur is None or _card_rank(e) > _card_rank(cur):
            best[e.name] = e
    index: dict[str, MemoryEntry] = {}
    for name, e in best.items():
        index[name] = e
    for e in entries:  # aliases never shadow a name
        if e.kind == "character" and not e.archived:
            for alias in e.aliases:
                index.setdefault(alias, best[e.name])
    return index


def _card_rank(e: MemoryEntry) -> tuple[int, int]:
    return (1 if e.chapter is None else 0, e.chapter or 0)


def setting_index(entries: Iterable[MemoryEntry]) -> dict[str, MemoryEntry]:
    index: dict[str, MemoryEntry] = {}
    for e in entries:
        if e.kind == "setting" and not e.archived:
            for name in [e.name, *e.aliases]:
                index.setdefault(name, e)
    return index


# ----------------------------------------------------------------------------- entries of a proposal
def proposal_entries(p: Proposal, entries: list[MemoryEntry]) -> list[MemoryEntry]:
    """The memory entries approving ``p`` writes (validated; raises :class:`StoryMemoryError`)."""
    f = {**p.fields}
    chapter = f.pop("chapter", p.chapter)
    # a new character's card is not dated unless the writer gave it a chapter (a blank 章节 stays blank);
    # an update, an event or a dialogue is dated by the chapter it happened in
    card_chapter = p.fields.get("chapter")
    eid = uuid.uuid5(_NS, f"{p.novel}/{p.id}").hex
    common = {"id": eid, "novel": p.novel, "source": "extracted"}
    if p.kind == "character":
        return [
            make_entry(
                **common,
                kind="character",
                name=f.get("name", ""),
                aliases=f.get("aliases", []),
                traits=f.get("traits", []),
                text=f.get("text") or f"第{chapter}章出场的人物",
                state=f.get("state", ""),
                relationships=f.get("relationships", {}),
                importance=f.get("importance", 3),
                chapter=card_chapter,
            )
        ]
    if p.kind == "character_update":
        card = character_index(entries).get(p.target)
        state = f.get("state", "")
        if f.get("location"):
            state = f"{state}（位于{f['location']}）" if state else f"位于{f['location']}"
        return [
            make_entry(
                **common,
                kind="character",
                name=card.name if card is not None else p.target,
                aliases=card.aliases if card is not None else [],
                traits=f.get("traits") or (card.traits if card is not None else []),
                text=f.get("text") or (card.text if card is not None else "") or f"第{chapter}章的{p.target}",
                state=state,
                relationships={
                    **(card.relationships if card is not None else {}),
                    **f.get("relationships", {}),
                },
                importance=card.importance if card is not None else 3,
                chapter=chapter,
            )
        ]
    if p.kind == "plot":
        return [
            make_entry(
                **common,
                kind="plot",
                name=f.get("name", ""),
                text=f.get("text", ""),
                characters=f.get("characters", []),
                time_in_story=f.get("time_in_story", ""),
                thread=f.get("thread", ""),
                payoff_chapter=f.get("payoff_chapter"),
                importance=f.get("importance", 3),
                chapter=chapter,
            )
        ]
    if p.kind == "thread_close":
        thread = next((e for e in entries if e.id == p.target), None)
        if thread is None:
            raise StoryMemoryError(
                "要回收的伏笔已不在记忆里 (the thread to close is no longer in memory)",
                received=p.target,
                fix="拒绝这条提议 (reject this proposal)",
            )
        text = thread.text + (f"（第{chapter}章回收：{f['text']}）" if f.get("text") else "")
        return [
            make_entry(
                **{**thread.model_dump(), "thread": "closed", "chapter_end": chapter, "text": text[:4000]},
            )
        ]
    if p.kind == "setting":
        return [
            make_entry(
                **common,
                kind="setting",
                name=f.get("name", ""),
                aliases=f.get("aliases", []),
                text=f.get("text") or f"第{chapter}章出现的地点",
                importance=f.get("importance", 3),
            )
        ]
    return [
        make_entry(
            **common,
            kind="dialogue",
            characters=f.get("characters", []),
            text=f.get("text", ""),
            why=f.get("why", ""),
            importance=f.get("importance", 3),
            chapter=chapter,
        )
    ]


def parse_edits(kind: str, assignments: Iterable[str]) -> dict[str, Any]:
    """``["state=重伤", "aliases=阿远,小远"]`` → typed fields for a proposal of ``kind``."""
    out: dict[str, Any] = {}
    allowed = EDITABLE[kind]
    for item in assignments:
        field, sep, value = item.partition("=")
        field = field.strip()
        if not sep or field not in allowed:
            raise ReviewError(
                f"无法修改这个字段 (cannot set this field on a {kind} proposal): {item}",
                expected="FIELD=VALUE with FIELD one of " + ", ".join(allowed),
                received=item,
                fix="例如 --set state=重伤 --set aliases=阿远,小远 --set relationships=苏晚晴:师姐",
            )
        value = value.strip()
        if field in _LISTS:
            out[field] = [v.strip() for v in re.split(r"[,，、]", value) if v.strip()]
        elif field == "relationships":
            rel = {}
            for pair in re.split(r"[,，;；]", value):
                m = re.match(r"\s*([^:：=]+)[:：=](.*)", pair)
                if m and m.group(1).strip():
                    rel[m.group(1).strip()] = m.group(2).strip()
            out[field] = rel
        elif field in _INTS:
            try:
                out[field] = int(value) if value else None
            except ValueError:
                raise ReviewError(
                    f"{field} 需要整数 (needs an integer)", expected="an integer", received=value
                ) from None
        else:
            out[field] = value
    return out


# ----------------------------------------------------------------------------- the queue
class ReviewQueue:
    """The proposals of one novel (``Novel.root / "review"``)."""

    def __init__(self, novel_root: Path, slug: str) -> None:
        self.root = Path(novel_root) / "review"
        self.slug = slug

    @classmethod
    def of(cls, novel: Any) -> ReviewQueue:
        return cls(novel.root, novel.slug)

    @contextlib.contextmanager
    def locked(self, timeout: float = 30.0) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise ReviewError(
                            "审阅队列正被另一个进程修改 (the review queue is busy)",
                            fix="稍后重试 (retry in a moment)",
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _path(self, pid: str) -> Path:
        return self.root / "proposals" / f"{pid}.json"

    def _save(self, p: Proposal) -> None:
        atomic_write_json(self._path(p.id), p.model_dump(mode="json"))

    # ------------------------------------------------------------------ reads
    def all(self) -> list[Proposal]:
        folder = self.root / "proposals"
        out = []
        for path in folder.glob("*.json") if folder.is_dir() else []:
            try:
                out.append(Proposal.model_validate(json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, ValidationError):
                continue  # atomic writes: a torn file cannot exist; never fail a listing on one
        return sorted(out, key=lambda p: (p.chapter, p.created, p.id))

    def list(self, status: str | None = "pending", chapter: int | None = None) -> list[Proposal]:
        return [
            p
            for p in self.all()
            if (status is None or p.status == status) and (chapter is None or p.chapter == chapter)
        ]

    def get(self, pid: str) -> Proposal:
        """By id or a unique prefix of it."""
        pid = (pid or "").strip()
        exact = self._path(pid)
        if pid and exact.is_file():
            return Proposal.model_validate(json.loads(exact.read_text("utf-8")))
        found = [p for p in self.all() if pid and p.id.startswith(pid)]
        if len(found) == 1:
            return found[0]
        raise ReviewError(
            f"没有这条提议 (no such proposal): {pid}"
            if not found
            else f"提议编号不唯一 (ambiguous id): {pid}",
            expected="an id from xiaoshuo memory review --novel " + self.slug,
            received=pid if not found else [p.id for p in found[:5]],
            fix=f"xiaoshuo memory review --novel {self.slug} --json",
        )

    # ------------------------------------------------------------------ writes
    def add(self, proposals: Iterable[Proposal]) -> list[Proposal]:
        """Queue proposals; one equal to a proposal already queued (any status) is skipped."""
        with self.locked():
            seen = {p.key() for p in self.all()}
            added = []
            for p in proposals:
                if p.key() in seen:
                    continue
                seen.add(p.key())
                self._save(p)
                added.append(p)
            return added

    def drop_pending(self, chapter: int) -> int:
        """Remove the pending proposals of a chapter (before extracting it again); decided ones stay."""
        with self.locked():
            n = 0
            for p in self.list("pending", chapter=chapter):
                self._path(p.id).unlink(missing_ok=True)
                n += 1
            return n

    def preview(self, p: Proposal, entries: list[MemoryEntry], edits: dict[str, Any] | None = None):
        q = p.model_copy(update={"fields": {**p.fields, **(edits or {})}}, deep=True)
        return proposal_entries(q, entries)

    def approve(
        self,
        pid: str,
        store: Any,
        *,
        edits: dict[str, Any] | None = None,
        entries: list[MemoryEntry] | None = None,
    ) -> list[MemoryEntry]:
        """Write the proposal (with ``edits``) to memory, then mark it approved; returns the entries."""
        with self.locked():
            p = self.get(pid)
            self._pending(p)
            entries = store.list(self.slug) if entries is None else entries
            written = self.preview(p, entries, edits)  # validated: a bad edit writes nothing
            store.add(written)
            p.status, p.decided = "approved", time.time()
            p.edits = dict(edits or {})
            p.entry_ids = [e.id for e in written]
            self._save(p)
            return written

    def approve_all(self, store: Any, *, chapter: int | None = None) -> list[MemoryEntry]:
        """Approve every pending proposal (in chapter order, so later states are added last)."""
        out: list[MemoryEntry] = []
        entries = store.list(self.slug)
        for p in self.list("pending", chapter=chapter):
            written = self.approve(p.id, store, entries=entries)
            ids = {e.id for e in written}
            entries = [e for e in entries if e.id not in ids] + written
            out.extend(written)
        return out

    def reject(self, pid: str) -> Proposal:
        with self.locked():
            p = self.get(pid)
            self._pending(p)
            p.status, p.decided = "rejected", time.time()
            self._save(p)
            return p

    def _pending(self, p: Proposal) -> None:
        if p.status != "pending":
            raise ReviewError(
                f"这条提议已经处理过 (proposal already {p.status}): {p.id}",
                expected="a pending proposal",
                received=p.status,
                fix=f"xiaoshuo memory review --novel {self.slug}",
            )

    def stats(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for p in self.all():
            out[p.status] += 1
        return out


def as_row(p: Proposal, entries: list[MemoryEntry], text: str | None = None) -> dict[str, Any]:
    """What ``memory review --json`` shows: the proposal and exactly the entries approval writes."""
    row = p.model_dump(mode="json")
    try:
        row["preview"] = [
            e.model_dump(mode="json", exclude={"created", "updated"}) for e in proposal_entries(p, entries)
        ]
        row["problem"] = ""
    except StoryMemoryError as exc:
        row["preview"], row["problem"] = [], str(exc)
    if text is not None and p.evidence is not None:
        row["stale"] = not verify(text, p.evidence)  # the chapter changed since the proposal was made
    return row
