"""Cut chapters into training chunks of at most N tokens of the base model's tokenizer.

Cuts fall between paragraphs, else between sentences (after 。！？!?… and any closing
quote), and inside a sentence only when that one sentence alone exceeds the limit.
Token counts come from encoding each paragraph once, in bounded batches; a chunk's
count is the sum of its pieces plus one token per joining newline, which is an upper
bound of the joined text's count for byte-level BPE tokenizers (merges only shrink
it), so chunks never exceed the limit.  Very long lines are split into sentences
and windows *before* they reach the tokenizer, so memory stays bounded.

This module does not read files or decide sample formats.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_SENTENCE = re.compile(r"[^。！？!?…]*(?:[。！？!?…]+[」』”’\"）)]*|$)")
_BATCH_CHARS = 1 << 20  # encode at most ~1M characters per tokenizer call


BUILTIN_TINY = "builtin-tiny"


def load_tokenizer(name_or_path: str, *, models_dir: Path | None = None):
    """The tokenizer that counts tokens (``--tokenizer`` / ``data.tokenizer`` / ``model.base_model``).

    ``"builtin-tiny"`` is the offline test tokenizer, built once under ``models_dir``.
    """
    from xiaoshuo.hf import load_tokenizer as _load

    if name_or_path == BUILTIN_TINY:
        from xiaoshuo.tiny import build_tiny_model

        name_or_path = str(build_tiny_model(Path(models_dir or "models") / "xiaoshuo-builtin-tiny"))
    return _load(name_or_path, setting="--tokenizer / data.tokenizer")


class TokenCounter:
    """Counts tokens with a fast tokenizer's backend, in bounded batches."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self._backend = getattr(tokenizer, "backend_tokenizer", None)
        self.newline_cost = max(1, self.count("\n"))

    def counts(self, texts: list[str]) -> list[int]:
        out: list[int] = []
        batch: list[str] = []
        size = 0
        for text in texts:
            batch.append(text)
            size += len(text)
            if size >= _BATCH_CHARS:
                out.extend(self._encode_lengths(batch))
                batch, size = [], 0
        if batch:
            out.extend(self._encode_lengths(batch))
        return out

    def count(self, text: str) -> int:
        return self.counts([text])[0]

    def _encode_lengths(self, batch: list[str]) -> list[int]:
        if self._backend is not None:
            return [len(e.ids) for e in self._backend.encode_batch(batch, add_special_tokens=False)]
        return [len(ids) for ids in self.tokenizer(batch, add_special_tokens=False)["input_ids"]]

    def split(self, text: str, limit: int) -> list[str]:
        """Cut one over-long sentence into pieces of at most ``limit`` tokens."""
        if self._backend is not None:
            enc = self._backend.encode(text, add_special_tokens=False)
            offsets = [start for start, _ in enc.offsets]
        else:
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            offsets = [start for start, _ in enc["offset_mapping"]]
        step = max(1, limit - 2)  # slack for a multi-byte character split across byte tokens
        cuts = sorted({offsets[i] for i in range(step, len(offsets), step)} - {0})
        bounds = [0, *cuts, len(text)]
        return [text[a:b] for a, b in itertools.pairwise(bounds) if text[a:b]]


@dataclass
class Piece:
    text: str
    tokens: int
    joiner: str  # "\n" between paragraphs, "" between sentences of one paragraph


def split_sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE.findall(paragraph) if s]


def _units(paragraphs: Iterable[str], window: int) -> Iterator[tuple[str, str]]:
    """(text, joiner) units: whole paragraphs, or sentences/windows of over-long ones (lazily)."""
    for para in paragraphs:
        if len(para) <= window:
            yield para, "\n"
            continue
        joiner = "\n"
        for match in _SENTENCE.finditer(para):
            sentence = match.group()
            for start in range(0, len(sentence), window):
                yield sentence[start : start + window], joiner
                joiner = ""


def pieces_of(paragraphs: Iterable[str], counter: TokenCounter, limit: int) -> Iterator[Piece]:
    """Paragraphs as pieces no longer than ``limit`` tokens each, produced lazily.

    Units are counted in batches of about ``_BATCH_CHARS`` characters, so a
    100 MB one-line file never sits in memory as millions of objects at once.
    """
    window = max(64, limit * 4)  # characters; bounds what one tokenizer call sees
    batch: list[tuple[str, str]] = []
    size = 0
    for unit in _units(paragraphs, window):
        batch.append(unit)
        size += len(unit[0])
        if size >= _BATCH_CHARS:
            yield from _count_batch(batch, counter, limit)
            batch, size = [], 0
    if batch:
        yield from _count_batch(batch, counter, limit)


def _count_batch(batch: list[tuple[str, str]], counter: TokenCounter, limit: int) -> Iterator[Piece]:
    counts = counter.counts([text for text, _ in batch])
    for (text, joiner), n in zip(batch, counts, strict=True):
        if n <= limit:
            yield Piece(text, n, joiner)
            continue
        sentences = split_sentences(text) if joiner == "\n" else [text]
        for i, sentence in enumerate(sentences):
            sub_joiner = joiner if i == 0 else ""
            n_sent = counter.count(sentence)
            if n_sent <= limit:
                yield Piece(sentence, n_sent, sub_joiner)
                continue
            parts = counter.split(sentence, limit)
            for j, (part, n_part) in enumerate(zip(parts, counter.counts(parts), strict=True)):
                yield Piece(part, n_part, sub_joiner if j == 0 else "")


@dataclass
class Chunk:
    text: str
    tokens: int


def pack(pieces: Iterable[Piece], counter: TokenCounter, limit: int, overlap: int = 0) -> Iterator[Chunk]:
    """Greedy packing of pieces into chunks of at most ``limit`` tokens.

    ``overlap``: up to this many tokens of trailing pieces are repeated at the
    start of the next chunk.
    """
    current: list[Piece] = []
    total = 0
    for piece in pieces:
        cost = piece.tokens + (counter.newline_cost if current and piece.joiner else 0)
        if current and total + cost > limit:
            yield _join(current, total)
            current, total = _overlap_tail(current, counter, overlap)
            cost = piece.tokens + (counter.newline_cost if current and piece.joiner else 0)
            if current and total + cost > limit:
                current, total = [], 0
                cost = piece.tokens
        current.append(piece)
        total += cost
    if current:
        yield _join(current, total)


def _overlap_tail(current: list[Piece], counter: TokenCounter, overlap: int) -> tuple[list[Piece], int]:
    if overlap <= 0:
        return [], 0
    tail: list[Piece] = []
    total = 0
    for piece in reversed(current[1:]):  # never repeat the whole chunk
        cost = piece.tokens + (counter.newline_cost if tail else 0)
        if total + cost > overlap:
            break
        tail.insert(0, piece)
        total += cost
    return tail, total


def _join(pieces: list[Piece], total: int) -> Chunk:
    parts = [pieces[0].text]
    for piece in pieces[1:]:
        parts.append(piece.joiner + piece.text)
    return Chunk("".join(parts), total)
