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
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from xiaoshuo.memory.schema import DenseUnavailableError, MemoryEntry

_log = logging.getLogger("xiaoshuo.memory")
RRF_K = 60
NUMBA_MIN_ENTRIES = 5000
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
    """An index over one novel's active entries (build once, query many times)."""

    def __init__(self, entries: list[MemoryEntry]) -> None:
        import logging

        import bm25s
        import jieba

        jieba.setLogLevel(logging.WARNING)
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self.entries = sorted((e for e in entries if not e.archived), key=lambda e: e.id)
        self.by_id = {e.id: e for e in self.entries}
        self._tokenizer = jieba.Tokenizer()
        self._tokenizer.initialize()
        # Trigger names bucketed by their first two characters (one for 1-character names), so a scan
        # looks at a handful of candidates per position even when thousands of names share a first
        # character (阿…).
        self._triggers: dict[str, list[tuple[str, str]]] = {}
        self.pinned_ids = [e.id for e in self.entries if e.pinned]
        for e in self.entries:
            for name in e.triggers():
                self._tokenizer.add_word(name, freq=100_000)
                self._triggers.setdefault(name[:2], []).append((name, e.id))
            for name in e.characters:
                self._tokenizer.add_word(name, freq=100_000)
        for bucket in self._triggers.values():
            bucket.sort(key=lambda item: -len(item[0]))  # longest first
        self._visible: dict[int | None, tuple[frozenset[str], Any]] = {}
        self._bm25 = None
        # bm25s's numba backend answers a query at 100k entries in ~0.06 ms instead of ~2 ms (numpy scores
        # every document), but its JIT costs seconds once per process: worth it only for big novels.
        big = len(self.entries) >= NUMBA_MIN_ENTRIES
        self._backend = "numba" if big and importlib.util.find_spec("numba") is not None else "numpy"
        if self.entries:
            self._bm25 = bm25s.BM25(backend=self._backend)
            self._bm25.index([self.tokens(e.document()) or ["_"] for e in self.entries], show_progress=False)

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

    def bm25(self, query: str, k: int, *, max_chapter: int | None = None) -> list[tuple[str, float]]:
        if self._bm25 is None:
            return []
        tokens = self.tokens(query)
        if not tokens:
            return []
        ids, mask = self._visibility(max_chapter)
        if len(ids) == len(self.entries):
            mask = None
        docs, scores = self._bm25.retrieve(
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
    ) -> list[Hit]:
        """Fused ranking.  ``dense``: entry ids by similarity from Chroma (best first), if any."""
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
        for entry_id in self.triggered("\n".join([query, recent_text, *extra_terms])):
            if (h := hit(entry_id)) is not None:
                h.triggered = True
                h.found_by.append("trigger")
        bm25 = [i for i, _ in self.bm25(query, k * 4, max_chapter=max_chapter)]
        for name, ranked in (("bm25", bm25), ("dense", dense or [])):
            for rank, entry_id in enumerate(ranked):
                if (h := hit(entry_id)) is not None:
                    h.score += 1.0 / (RRF_K + rank + 1)
                    h.found_by.append(name)
        ordered = sorted(hits.values(), key=lambda h: (not h.pinned, not h.triggered, -h.score, h.entry.id))
        forced = [h for h in ordered if h.pinned or h.triggered]
        ranked = [h for h in ordered if not (h.pinned or h.triggered) and h.score > 0]
        return forced + ranked[: max(0, k - len(forced))] if len(forced) < k else forced


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
) -> Retrieval:
    """Hybrid retrieval for one prompt: the store's cached index + its dense neighbours, fused.

    ``k`` defaults to ``memory.top_k``; ``max_chapter`` makes it chapter-aware; ``extra_terms`` (outline
    characters and places) trigger entries like the request does; ``dense_timeout``: seconds to wait for an
    embedding model still loading (None waits; the WebUI passes a small number and degrades meanwhile).
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
