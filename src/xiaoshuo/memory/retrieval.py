"""Hybrid retrieval: name/alias triggers + BM25 (jieba) + dense (Chroma), fused by reciprocal rank.

* **Triggers**: a character's or setting's name or alias appearing in the request
  or the recent text always brings that entry.  Chinese has no word spaces, so
  matching is by substring — leftmost-longest, so "林远山来了" triggers 林远山, not
  also 林远.
* **BM25** (bm25s) over jieba tokens, with every name and alias added to a private
  jieba dictionary (jieba splits 陈长生 → 陈/长生 otherwise).
* **Dense**: Chroma's nearest neighbours with our embedding function (skipped when
  ``memory.embedding_model = "none"``).

Order: pinned, then triggered, then RRF score (k=60); ties by id, so equal inputs
give equal output.  The store rebuilds the index after a write to the novel.

:func:`retrieve` is the entry point.  When the dense part cannot run (the model is
missing offline, does not load, differs from the one the novel was indexed with,
or is still loading) it degrades to triggers + BM25 and says so in
``Retrieval.warnings``; only a store that cannot be read raises.

**Chapter-aware** (``max_chapter=N``, writing or rewriting chapter N): entries of
a later chapter (``chapter > N``) are left out, entries without a chapter always
qualify; of the dated character entries with one name, only the latest chapter
at or before N is shown (a character's state then), while an undated character
entry (the character card) stays.  The same "latest state wins" applies without
``max_chapter``.  ``extra_terms`` (names from an outline) trigger like the
request text.  This module ranks; the context builder decides what fits a prompt.

**Cast-aware** (``cast=[names]``, e.g. the chapter plan's characters): the cast is those names (aliases
mapped to the character's name) plus every character whose name or alias occurs in the request, the
recent text or ``extra_terms``.  Every visible plot entry involving a cast member (its ``characters``,
aliases mapped) is a *cast event*, ranked after pinned and triggered entries and before the fused
ranking, outside ``k``: key events (importance 5) first, then the most recent chapter first, then the
more important; undated events last; at most :data:`CAST_EVENTS_MAX`.  Chapter-awareness applies to them
as to everything (never an event dated after ``max_chapter``).  The context builder shows the first ones
whole and condenses the rest into one history line per character when the budget is tight.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from xiaoshuo.memory.schema import DenseUnavailableError, MemoryEntry

_log = logging.getLogger("xiaoshuo.memory")
RRF_K = 60
CAST_EVENTS_MAX = 256  # cast events offered to the context builder (its budget decides what is shown)
MOVED_WORDS_SCAN = 64  # more changed names than this in one update: every entry is tokenized again
_PUNCT = re.compile(r"^[\s\W_]+$", re.UNICODE)
# Function words that occur in most entries: they add nothing to BM25 but long posting lists.
STOPWORDS = frozenset(
    [
        "的",
        "了",
        "在",
        "是",
        "和",
        "与",
        "也",
        "就",
        "都",
        "而",
        "及",
        "着",
        "吗",
        "呢",
        "吧",
        "啊",
        "这",
        "那",
        "他",
        "她",
        "它",
        "我",
        "你",
        "们",
        "之",
        "其",
        "又",
        "还",
        "有",
        "没",
        "被",
        "把",
        "让",
        "给",
        "从",
        "对",
        "向",
        "到",
        "为",
        "以",
        "于",
        "上",
        "下",
        "中",
        "里",
        "个",
        "些",
        "说",
        "道",
        "会",
        "要",
        "能",
        "去",
        "来",
        "一",
        "不",
        "很",
        "再",
        "已",
        "所",
        "此",
        "那件事",
        "什么",
        "怎么",
        "如何",
    ]
)


@dataclass
class Hit:
    entry: MemoryEntry
    score: float
    found_by: list[str] = field(default_factory=list)
    pinned: bool = False
    triggered: bool = False
    cast: list[str] = field(default_factory=list)  # a cast event: the cast members it involves

    def as_dict(self) -> dict[str, Any]:
        e = self.entry
        return {
            "id": e.id,
            "kind": e.kind,
            "name": e.name,
            "text": e.text,
            "score": round(self.score, 6),
            "found_by": self.found_by,
            "pinned": e.pinned,
        }


@dataclass
class Retrieval:
    """What :func:`retrieve` found; ``warnings`` (Chinese + English) say what could not run."""

    hits: list[Hit]
    warnings: list[str] = field(default_factory=list)
    dense_used: bool = False


class Retriever:
    """An index over one novel's active entries (build once, query many times).

    ``tokens`` (entry id → BM25 tokens) and ``scores`` (bm25s's arrays and vocabulary) come from a saved
    index (:mod:`xiaoshuo.memory.index_file`) or a previous Retriever (:meth:`updated`): an entry with
    tokens is not tokenized again, and with ``scores`` the BM25 matrix is not rebuilt.  Without them the
    BM25 matrix is built at the first query."""

    def __init__(
        self,
        entries: list[MemoryEntry],
        *,
        tokens: dict[str, list[str]] | None = None,
        scores: dict[str, Any] | None = None,
        tokenizer: Any = None,
    ) -> None:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self.entries = sorted((e for e in entries if not e.archived), key=lambda e: e.id)
        self.by_id = {e.id: e for e in self.entries}
        if tokenizer is None:
            tokenizer = jieba.Tokenizer()
            tokenizer.initialize()
        self._tokenizer = tokenizer
        # Trigger names bucketed by their first two characters (one for 1-character names), so a scan
        # looks at a handful of candidates per position even when thousands of names share a first
        # character (阿…).
        self._triggers: dict[str, list[tuple[str, str]]] = {}
        self.pinned_ids = [e.id for e in self.entries if e.pinned]
        self.words: set[str] = set()  # the names added to the tokenizer's dictionary
        for e in self.entries:
            for name in e.triggers():
                self.words.add(name)
                self._triggers.setdefault(name[:2], []).append((name, e.id))
            self.words.update(e.characters)
        _use_words(self._tokenizer, self.words)
        for bucket in self._triggers.values():
            bucket.sort(key=lambda item: -len(item[0]))  # longest first
        # character name or alias -> the character's name (a name wins over another character's alias)
        self.names: dict[str, str] = {}
        for e in self.entries:
            if e.kind == "character":
                self.names.setdefault(e.name, e.name)
        for e in self.entries:
            if e.kind == "character":
                for alias in e.aliases:
                    self.names.setdefault(alias, e.name)
        self._events: dict[str, list[MemoryEntry]] | None = None  # character name -> plot entries (lazy)
        self._visible: dict[int | None, tuple[frozenset[str], Any]] = {}
        tokens = tokens or {}
        self.doc_tokens = [
            tokens[e.id] if e.id in tokens else (self.tokens(e.document()) or ["_"]) for e in self.entries
        ]
        self.retokenized = sum(1 for e in self.entries if e.id not in tokens)
        # bm25s's numpy backend (~2 ms a query at 100k entries); its numba backend answers in ~0.06 ms but
        # compiles for 10-30 s in every process — the first query of a fresh process would wait for it
        self._backend = "numpy"
        self._bm25 = None
        if scores is not None and self.entries:
            self._bm25 = self._new_bm25()
            self._bm25.scores = {k: scores[k] for k in ("data", "indices", "indptr", "num_docs")}
            self._bm25.vocab_dict = scores["vocab"]
            self._bm25.unique_token_ids_set = set(scores["vocab"].values())
            self._bm25.nonoccurrence_array = None  # the default (lucene) method has none

    def _new_bm25(self) -> Any:
        import bm25s

        return bm25s.BM25(backend=self._backend)

    @property
    def index(self) -> Any:
        """bm25s's index over :attr:`doc_tokens` (None without entries), built on first use."""
        if self._bm25 is None and self.entries:
            self._bm25 = self._new_bm25()
            self._bm25.index(self.doc_tokens, show_progress=False)
        return self._bm25

    def updated(self, upserted: Iterable[MemoryEntry] = (), deleted: Iterable[str] = ()) -> Retriever:
        """A new index with ``upserted`` entries added or replaced and ``deleted`` ids gone, sharing this
        one's tokenizer: only those entries are tokenized again, and those that contain a name added to or
        gone from the dictionary (the only ones jieba now splits differently: see :func:`_use_words`), so
        the tokens equal a fresh index's; the BM25 matrix is rebuilt from them at the next query."""
        upserted = list(upserted)
        changed = {e.id for e in upserted} | set(deleted)
        entries = [e for e in self.entries if e.id not in changed] + [e for e in upserted if not e.archived]
        words: set[str] = set()
        for e in entries:
            words.update(e.triggers())
            words.update(e.characters)
        tokens = {e.id: t for e, t in zip(self.entries, self.doc_tokens, strict=True) if e.id not in changed}
        moved = words ^ self.words  # names new to the dictionary or gone from it
        if len(moved) > MOVED_WORDS_SCAN:  # e.g. an import of many characters: tokenize all again
            tokens = {}
        elif moved:
            for e in self.entries:
                if e.id in tokens:
                    doc = e.document()
                    if any(w in doc for w in moved):
                        del tokens[e.id]
        tokenizer = self._tokenizer
        return Retriever(entries, tokens=tokens, tokenizer=tokenizer)

    def tokens(self, text: str) -> list[str]:
        return [t for t in self._tokenizer.lcut(text) if t not in STOPWORDS and not _PUNCT.match(t)]

    def triggered(self, text: str) -> list[str]:
        """Entry ids whose name/alias occurs in ``text`` (leftmost-longest), in order of appearance."""
        found: list[str] = []
        i = 0
        while i < len(text):
            matched = 0
            for key in (text[i : i + 2], text[i]):  # longer names first: their bucket is the bigram one
                for name, entry_id in self._triggers.get(key, ()):
                    if matched and len(name) < matched:
                        break
                    if text.startswith(name, i):
                        matched = len(name)
                        if entry_id not in found:
                            found.append(entry_id)
                if matched:
                    break
            i += matched or 1
        return found

    def visible(self, max_chapter: int | None) -> frozenset[str]:
        """Ids retrievable while writing chapter ``max_chapter`` (None: any chapter); see the module doc."""
        return self._visibility(max_chapter)[0]

    def _visibility(self, max_chapter: int | None) -> tuple[frozenset[str], Any]:
        if max_chapter not in self._visible:
            import numpy as np

            latest: dict[str, int] = {}
            shown = []
            for e in self.entries:
                if e.chapter is not None and max_chapter is not None and e.chapter > max_chapter:
                    continue
                shown.append(e)
                if e.kind == "character" and e.chapter is not None:
                    latest[e.name] = max(latest.get(e.name, -1), e.chapter)
            ids = frozenset(
                e.id
                for e in shown
                if e.kind != "character" or e.chapter is None or e.chapter == latest[e.name]
            )
            mask = np.fromiter((e.id in ids for e in self.entries), dtype=np.float32, count=len(self.entries))
            if len(self._visible) > 64:
                self._visible.clear()
            self._visible[max_chapter] = (ids, mask)
        return self._visible[max_chapter]

    def cast_names(self, names: Iterable[str], triggered_ids: Iterable[str] = ()) -> list[str]:
        """The cast: ``names`` (aliases mapped to names; an unknown name kept as given) followed by the
        characters among ``triggered_ids``, in that order, without repeats."""
        out: list[str] = []
        for name in names:
            name = self.names.get(name.strip(), name.strip())
            if name and name not in out:
                out.append(name)
        for entry_id in triggered_ids:
            e = self.by_id.get(entry_id)
            if e is not None and e.kind == "character" and e.name not in out:
                out.append(e.name)
        return out

    def cast_events(self, cast: list[str], max_chapter: int | None) -> list[tuple[MemoryEntry, list[str]]]:
        """Visible plot entries involving a member of ``cast``, best first (see the module doc), each with
        the cast members it involves (in ``cast`` order); at most :data:`CAST_EVENTS_MAX`."""
        if self._events is None:
            self._events = {}
            for e in self.entries:
                if e.kind == "plot":
                    for name in dict.fromkeys(self.names.get(c, c) for c in e.characters):
                        self._events.setdefault(name, []).append(e)
        visible = self.visible(max_chapter)
        found: dict[str, MemoryEntry] = {}
        for name in cast:
            for e in self._events.get(name, ()):
                if e.id in visible:
                    found[e.id] = e
        ranked = sorted(
            found.values(),
            key=lambda e: (e.importance < 5, e.chapter is None, -(e.chapter or 0), -e.importance, e.id),
        )[:CAST_EVENTS_MAX]
        out = []
        for e in ranked:
            involved = {self.names.get(c, c) for c in e.characters}
            out.append((e, [name for name in cast if name in involved]))
        return out

    def bm25(self, query: str, k: int, *, max_chapter: int | None = None) -> list[tuple[str, float]]:
        if not self.entries:
            return []
        tokens = self.tokens(query)
        if not tokens:
            return []
        ids, mask = self._visibility(max_chapter)
        if len(ids) == len(self.entries):
            mask = None
        docs, scores = self.index.retrieve(
            [tokens],
            k=min(k, len(self.entries)),
            show_progress=False,
            backend_selection=self._backend,
            weight_mask=mask,
        )
        out = [(self.entries[int(d)].id, float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
        return sorted(out, key=lambda x: (-x[1], x[0]))

    def search(
        self,
        query: str,
        *,
        recent_text: str = "",
        k: int = 8,
        kinds: list[str] | None = None,
        dense: list[str] | None = None,
        max_chapter: int | None = None,
        extra_terms: Iterable[str] = (),
        cast: Iterable[str] | None = None,
    ) -> list[Hit]:
        """Fused ranking.  ``dense``: entry ids by similarity from Chroma (best first), if any; ``cast``
        (None: not cast-aware) adds the cast's events (see the module doc)."""
        hits: dict[str, Hit] = {}
        visible = self.visible(max_chapter)

        def hit(entry_id: str) -> Hit | None:
            entry = self.by_id.get(entry_id)
            if entry is None or entry_id not in visible or (kinds and entry.kind not in kinds):
                return None
            return hits.setdefault(entry_id, Hit(entry, 0.0))

        for entry_id in self.pinned_ids:
            if (h := hit(entry_id)) is not None:
                h.pinned = True
                h.found_by.append("pinned")
        triggered = self.triggered("\n".join([query, recent_text, *extra_terms]))
        for entry_id in triggered:
            if (h := hit(entry_id)) is not None:
                h.triggered = True
                h.found_by.append("trigger")
        if cast is not None:
            for entry, involved in self.cast_events(self.cast_names(cast, triggered), max_chapter):
                if (h := hit(entry.id)) is not None and not (h.pinned or h.triggered):
                    h.cast = involved
                    h.found_by.append("cast")
        bm25 = [i for i, _ in self.bm25(query, k * 4, max_chapter=max_chapter)]
        for name, ranked in (("bm25", bm25), ("dense", dense or [])):
            for rank, entry_id in enumerate(ranked):
                if (h := hit(entry_id)) is not None:
                    h.score += 1.0 / (RRF_K + rank + 1)
                    h.found_by.append(name)
        ordered = sorted(hits.values(), key=lambda h: (not h.pinned, not h.triggered, -h.score, h.entry.id))
        forced = [h for h in ordered if h.pinned or h.triggered]
        cast_hits = [h for h in hits.values() if h.cast]  # inserted in cast_events' order
        ranked = [h for h in ordered if not (h.pinned or h.triggered or h.cast) and h.score > 0]
        return forced + cast_hits + ranked[: max(0, k - len(forced))]


def _use_words(tokenizer: Any, words: set[str]) -> None:
    """Make ``words`` (names) the tokenizer's added words, exactly as on a fresh tokenizer: a word no longer
    wanted gets back its own dictionary frequency, and the total stays the dictionary's — jieba adds each
    ``add_word``'s frequency to the total that weighs every segmentation, so otherwise every text could
    split differently after a change; this way a text splits differently only if it contains a changed word.
    """
    state = tokenizer.__dict__.setdefault("xiaoshuo", {"total": tokenizer.total, "own": {}, "words": set()})
    for word in sorted(state["words"] - words):
        tokenizer.FREQ[word] = state["own"].pop(word) or 0  # 0 keeps it a prefix, as a fresh one may
    for word in sorted(words - state["words"]):
        state["own"][word] = tokenizer.FREQ.get(word)
        tokenizer.add_word(word, freq=100_000)
    state["words"] = set(words)
    tokenizer.total = state["total"]


def retrieve(
    store: Any,
    novel: str,
    query: str,
    *,
    recent_text: str = "",
    k: int | None = None,
    kinds: list[str] | None = None,
    max_chapter: int | None = None,
    extra_terms: Iterable[str] = (),
    dense_timeout: float | None = None,
    cast: Iterable[str] | None = None,
) -> Retrieval:
    """Hybrid retrieval for one prompt: the store's cached index + its dense neighbours, fused.

    ``k`` defaults to ``memory.top_k``; ``max_chapter`` makes it chapter-aware; ``extra_terms`` (outline
    characters and places) trigger entries like the request does; ``cast`` (the chapter's planned
    characters; None: not cast-aware) brings the cast's events before the fused ranking; ``dense_timeout``:
    seconds to wait for an embedding model still loading (None waits; the WebUI passes a small number and
    degrades meanwhile).
    Raises only when the store cannot be read.
    """
    k = k or store.settings.memory.top_k
    extra_terms = [t for t in extra_terms if t and t.strip()]
    retriever = store.retriever(novel)
    hidden = len(retriever.entries) - len(retriever.visible(max_chapter))
    warnings: list[str] = []
    dense: list[str] = []
    dense_used = bool(store.embedding.dense and query.strip() and retriever.entries)
    if dense_used:
        try:
            n = k * 4 + hidden
            dense = store.nearest(novel, query, n, max_chapter=max_chapter, timeout=dense_timeout)
        except DenseUnavailableError as exc:
            dense_used = False
            warnings.append(f"记忆检索只用了名字触发与 BM25 (memory used triggers + BM25 only): {exc}")
            _log.warning("%s", warnings[-1])
    hits = retriever.search(
        query,
        recent_text=recent_text,
        k=k,
        kinds=kinds,
        dense=dense,
        max_chapter=max_chapter,
        extra_terms=extra_terms,
        cast=cast,
    )
    return Retrieval(hits, warnings, dense_used)


def search(
    store: Any,
    novel: str,
    query: str,
    *,
    recent_text: str = "",
    k: int | None = None,
    kinds: list[str] | None = None,
    max_chapter: int | None = None,
    extra_terms: Iterable[str] = (),
) -> list[Hit]:
    """:func:`retrieve`'s hits only (warnings go to the log)."""
    return retrieve(
        store,
        novel,
        query,
        recent_text=recent_text,
        k=k,
        kinds=kinds,
        max_chapter=max_chapter,
        extra_terms=extra_terms,
    ).hits
