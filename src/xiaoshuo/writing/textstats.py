"""Counting and measuring Chinese text: 字数, length score, sentence boundaries, repeated n-grams.

字数 is counted the way Chinese web-fiction sites count it: every character that is not whitespace
(汉字, punctuation, letters and digits alike) — never bytes, never tokens.  Repeated passages
(:func:`repeated_runs`, against earlier chapters through an :class:`NgramIndex`) are found on 64-bit
hashes of the n-grams with numpy (imported when used).  This module is pure functions over strings;
it knows nothing of novels, engines or files.
"""

from __future__ import annotations

import re
from typing import Any

_WS = re.compile(r"\s+")
SENTENCE_END = '。！？!?…」』”"）)'
_ENDS = frozenset("。！？!?…")
_CLOSERS = frozenset('」』”"）)')


def count_chars(text: str) -> int:
    """字数: characters that are not whitespace (``str.split()`` splits on exactly the characters regex
    ``\\s`` matches — checked over every code point in tests — and runs in C: 6x faster on a book)."""
    return sum(map(len, text.split()))


def length_score(target: int, actual: int) -> float:
    """LongBench-Write's length score S_l (100 = on target).

    Too short: 100·max(0, 1 − (x/y − 1)/2); too long: 100·max(0, 1 − (y/x − 1)/3),
    with x = target and y = actual (x/y − 1 is how far short, relative to what came).
    """
    if target <= 0:
        return 100.0 if actual == 0 else 0.0
    if actual <= 0:
        return 0.0
    if actual >= target:
        return 100.0 * max(0.0, 1.0 - (actual / target - 1.0) / 3.0)
    return 100.0 * max(0.0, 1.0 - (target / actual - 1.0) / 2.0)


def index_of_char_count(text: str, n: int) -> int:
    """The string index just after the ``n``-th non-whitespace character (len(text) if fewer)."""
    if n <= 0:
        return 0
    seen = 0
    for i, ch in enumerate(text):
        if not ch.isspace():
            seen += 1
            if seen == n:
                return i + 1
    return len(text)


def sentence_ends(text: str) -> list[int]:
    """Indices just after each sentence end (a 。！？… run plus any closing quotes/brackets)."""
    ends = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in _ENDS or (text[i] == "\n" and i > 0 and not text[i - 1].isspace()):
            j = i + 1
            while j < n and (text[j] in _ENDS or text[j] in _CLOSERS):
                j += 1
            ends.append(j)
            i = j
        else:
            i += 1
    return ends


def trim_to_length(text: str, low: int, high: int) -> tuple[str, bool]:
    """Cut ``text`` to at most ``high`` 字, at the last sentence end with at least ``low`` 字.

    Returns ``(text, on_boundary)``; when no sentence ends inside [low, high] the text is cut at
    ``high`` 字 and ``on_boundary`` is False (the caller reports it).
    """
    if count_chars(text) <= high:
        cut = text.rstrip()
        return cut, bool(cut) and (cut[-1] in _ENDS or cut[-1] in _CLOSERS)
    limit = index_of_char_count(text, high)
    best = None
    for end in sentence_ends(text[:limit]):
        if count_chars(text[:end]) >= low:
            best = end
    if best is not None:
        return text[:best].rstrip(), True
    return text[:limit].rstrip(), False


def ngrams(text: str, n: int) -> set[str]:
    s = _WS.sub("", text)
    return {s[i : i + n] for i in range(len(s) - n + 1)}


def ngram_list(text: str, n: int) -> list[str]:
    """Every ``n``-字 n-gram of ``text`` in order (whitespace ignored, as :func:`repetition_rate` does)."""
    s = _WS.sub("", text)
    return [s[i : i + n] for i in range(len(s) - n + 1)]


def repetition_rate(new: str, history: str | list[str] | set[str], n: int = 8) -> float:
    """Share of the ``n``-字 n-grams of ``new`` already seen in ``history`` or earlier in ``new``.

    ``history`` is earlier text (this chapter before the segment, previous chapters) or a
    precomputed n-gram set.  Whitespace is ignored.  0.0 for text shorter than ``n``.
    """
    grams = ngram_list(new, n)
    if not grams:
        return 0.0
    if isinstance(history, set):
        seen = set(history)
    elif isinstance(history, str):
        seen = ngrams(history, n)
    else:
        seen = set().union(*(ngrams(h, n) for h in history)) if history else set()
    repeated = 0
    for g in grams:
        if g in seen:
            repeated += 1
        else:
            seen.add(g)
    return repeated / len(grams)


def gram_hashes(s: str, n: int) -> Any:
    """64-bit polynomial hashes of every ``n``-字 n-gram of ``s`` (a numpy array; ``s`` as given,
    strip whitespace first to match :func:`ngrams`)."""
    import numpy as np

    m = len(s) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    codes = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    h = np.zeros(m, dtype=np.uint64)
    base = np.uint64(1_000_003)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * base + codes[k : m + k]
    return h


class NgramIndex:
    """The ``n``-字 n-grams of earlier chapters (whitespace ignored) as sorted 64-bit hashes, and which
    chapter holds each: 300 chapters of 3,000 字 index in a fraction of a second."""

    def __init__(self, chapters: dict[int, str], n: int = 8) -> None:
        import numpy as np

        self.n = n
        # latest chapter first: a gram's chapter is the latest one holding it
        self.parts = [
            (k, np.sort(gram_hashes(_WS.sub("", chapters[k]), n))) for k in sorted(chapters, reverse=True)
        ]
        every = np.concatenate([p for _, p in self.parts]) if self.parts else np.zeros(0, dtype=np.uint64)
        self.hashes = np.sort(every)

    def lookup(self, hashes: Any) -> Any:
        """The chapter of each hash (0 where no earlier chapter has it)."""
        import numpy as np

        out = np.zeros(len(hashes), dtype=np.int64)
        if not len(self.hashes) or not len(hashes):
            return out
        todo = np.flatnonzero(_contains(self.hashes, hashes))
        for k, part in self.parts:
            if not len(todo):
                break
            hit = _contains(part, hashes[todo])
            out[todo[hit]] = k
            todo = todo[~hit]
        return out


def _contains(sorted_hashes: Any, hashes: Any) -> Any:
    import numpy as np

    if not len(sorted_hashes):
        return np.zeros(len(hashes), dtype=bool)
    i = np.minimum(np.searchsorted(sorted_hashes, hashes), len(sorted_hashes) - 1)
    return sorted_hashes[i] == hashes


def repeated_runs(
    text: str, earlier: NgramIndex | None = None, n: int = 8, min_chars: int = 20
) -> list[tuple[int, int, int | None, int]]:
    """Passages of ``text`` made of ``n``-字 n-grams already seen, at least ``min_chars`` 字 long.

    A gram is repeated when it occurs earlier in ``text`` or in ``earlier`` (:class:`NgramIndex`).
    Consecutive repeated grams make one run.  Returns ``(start, end, chapter, first)`` with offsets into
    ``text`` (whitespace ignored while matching): ``chapter`` None for a repeat within ``text`` (``first``
    = the offset of the first occurrence of its first gram), else the earlier chapter (``first`` = -1).
    """
    import numpy as np

    index = [j for j, ch in enumerate(text) if not ch.isspace()]
    h = gram_hashes("".join(text[j] for j in index), n)
    if not len(h):
        return []
    _, first_idx, inverse = np.unique(h, return_index=True, return_inverse=True)
    first = first_idx[inverse.reshape(-1)]
    within = first < np.arange(len(h))
    source = earlier.lookup(h) if earlier is not None else np.zeros(len(h), dtype=np.int64)
    hits = np.flatnonzero(within | (source > 0))
    runs: list[tuple[int, int, int | None, int]] = []
    k = 0
    while k < len(hits):
        j = k
        while j + 1 < len(hits) and hits[j + 1] == hits[j] + 1:
            j += 1
        i0, end = int(hits[k]), int(hits[j]) + n
        if end - i0 >= min_chars:
            chapter = None if within[i0] else int(source[i0])
            at = index[int(first[i0])] if within[i0] else -1
            runs.append((index[i0], index[end - 1] + 1, chapter, at))
        k = j + 1
    return runs
