"""Deterministic bookkeeping of chapters against memory — no model involved.

* :func:`find_names`: where the known characters and places (by name and alias) occur in a text,
  leftmost-longest (林远山 does not also count as 林远), mapped to the name of their memory entry.
* :class:`Appearances`: per chapter, which known characters and places appear and where first
  (``data/novels/<slug>/appearances.json``, recomputed when a chapter's text changes), so "last
  seen in chapter N" is known to the consistency check.
* :func:`unknown_names`: the words jieba's part-of-speech tagger marks as person names (``nr``,
  ``nrfg``, ``nrt``) or place names (``ns``) that memory does not know — extraction turns them into
  proposals, so a weak model cannot miss a new character (the writer rejects the false ones).

This module reads texts and entries and writes only ``appearances.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xiaoshuo.files import atomic_write_json
from xiaoshuo.memory.schema import MemoryEntry

PERSON_FLAGS = ("nr", "nrfg", "nrt")
PLACE_FLAGS = ("ns",)
_SENTENCE_END = "。！？!?…\n"
# jieba tags some common words as names; they are never worth a proposal.
_NOT_NAMES = frozenset(["中国", "天下", "江湖", "人间", "世间", "东方", "西方", "南方", "北方", "中原"])


def names_of(
    entries: Iterable[MemoryEntry], kinds: tuple[str, ...] = ("character", "setting")
) -> dict[str, str]:
    """Every name and alias of active entries of ``kinds`` → the entry's name (names win over aliases)."""
    entries = [e for e in entries if e.kind in kinds and not e.archived and e.name]
    out: dict[str, str] = {e.name: e.name for e in entries}
    for e in entries:
        for alias in e.aliases:
            out.setdefault(alias, e.name)
    return out


def find_names(text: str, names: dict[str, str]) -> list[tuple[int, int, str]]:
    """Occurrences ``(start, end, entry name)`` of ``names`` in ``text``, leftmost-longest."""
    if not names or not text:
        return []
    pattern = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))
    return [(m.start(), m.end(), names[m.group(0)]) for m in pattern.finditer(text)]


def sentence_at(text: str, start: int, end: int, limit: int = 80) -> tuple[int, int]:
    """The span of the sentence holding ``text[start:end]`` (at most ``limit`` characters around it)."""
    a = start
    while a > 0 and text[a - 1] not in _SENTENCE_END and start - a < limit // 2:
        a -= 1
    b = end
    while b < len(text) and text[b - 1] not in _SENTENCE_END and b - end < limit // 2:
        b += 1
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def names_digest(chars: dict[str, str], places: dict[str, str]) -> str:
    """Which names a chapter's appearance record was found with (a new alias makes it stale)."""
    return sha(json.dumps([sorted(chars.items()), sorted(places.items())], ensure_ascii=False))


def first_offsets(found: list[tuple[int, int, str]]) -> dict[str, int]:
    """name → the offset of its first occurrence (what an appearance record keeps)."""
    return _first(found)


class Appearances:
    """``appearances.json``: ``{"chapters": {"3": {"sha256", "names", "characters": {name: offset},
    "places": {name: offset}}}}`` — recomputed when the text or the set of known names changed."""

    def __init__(self, novel_root: Path) -> None:
        self.path = Path(novel_root) / "appearances.json"
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            self.data = {"chapters": {}}

    def update(self, chapters: dict[int, str], entries: list[MemoryEntry], *, save: bool = True) -> bool:
        """Record ``{chapter: text}``; returns whether anything changed (and then saves, unless ``save``
        is False: a review that writes nothing keeps the result in memory only)."""
        chars, places = names_of(entries, ("character",)), names_of(entries, ("setting",))
        known = names_digest(chars, places)
        changed = False
        for number, text in chapters.items():
            digest = sha(text)
            row = self.data["chapters"].get(str(number))
            if row and row.get("sha256") == digest and row.get("names") == known:
                continue
            self.data["chapters"][str(number)] = {
                "sha256": digest,
                "names": known,
                "characters": _first(find_names(text, chars)),
                "places": _first(find_names(text, places)),
            }
            changed = True
        if changed and save:
            atomic_write_json(self.path, self.data)
        return changed

    def chapter(self, number: int) -> dict[str, Any]:
        return self.data["chapters"].get(str(number), {"characters": {}, "places": {}})

    def last_seen(self, name: str, before: int) -> int | None:
        """The latest chapter before ``before`` in which ``name`` (a character or place) appears."""
        seen = [
            int(n)
            for n, row in self.data["chapters"].items()
            if int(n) < before and (name in row.get("characters", {}) or name in row.get("places", {}))
        ]
        return max(seen, default=None)

    def report(self) -> dict[str, dict[str, Any]]:
        """name → {"first": chapter, "last": chapter, "chapters": count} over every recorded chapter."""
        out: dict[str, dict[str, Any]] = {}
        for n in sorted(self.data["chapters"], key=int):
            row = self.data["chapters"][n]
            for kind in ("characters", "places"):
                for name in row.get(kind, {}):
                    r = out.setdefault(
                        name, {"kind": kind[:-1], "first": int(n), "last": int(n), "chapters": 0}
                    )
                    r["last"] = int(n)
                    r["chapters"] += 1
        return out


def _first(found: list[tuple[int, int, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for start, _, name in found:
        out.setdefault(name, start)
    return out


@dataclass
class NameCandidate:
    name: str
    kind: str  # character | setting
    flag: str
    start: int
    count: int


class NameTagger:
    """jieba's part-of-speech tagger with every known name and alias in its dictionary (build once)."""

    def __init__(self, entries: list[MemoryEntry]) -> None:
        import jieba
        import jieba.posseg

        jieba.setLogLevel(logging.WARNING)
        tokenizer = jieba.Tokenizer()
        tokenizer.initialize()
        self.tagger = jieba.posseg.POSTokenizer(tokenizer)
        self.known = names_of(entries, ("character", "setting"))
        for e in entries:
            for name in [e.name, *e.aliases, *e.characters]:
                if name:
                    tokenizer.add_word(name, freq=100_000, tag="ns" if e.kind == "setting" else "nr")

    def unknown(self, text: str, *, min_count: int = 1) -> list[NameCandidate]:
        """Person/place names tagged in ``text`` that no entry names (nor aliases), by first use."""
        found: dict[str, NameCandidate] = {}
        pos = 0
        for pair in self.tagger.lcut(text):
            word, flag = pair.word, pair.flag
            start = text.find(word, pos)
            start = pos if start < 0 else start
            pos = start + len(word)
            if flag not in PERSON_FLAGS + PLACE_FLAGS or len(word) < 2 or word in self.known:
                continue
            if word in _NOT_NAMES or any(not ch.isalpha() for ch in word):
                continue
            cand = found.get(word)
            if cand is None:
                kind = "character" if flag in PERSON_FLAGS else "setting"
                found[word] = NameCandidate(word, kind, flag, start, 1)
            else:
                cand.count += 1
        return [c for c in sorted(found.values(), key=lambda c: c.start) if c.count >= min_count]
