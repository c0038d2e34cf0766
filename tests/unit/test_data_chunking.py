"""Chunks never exceed the token limit and are cut at paragraph/sentence boundaries."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from xiaoshuo.data.chunking import (
    TokenCounter,
    load_tokenizer,
    pack,
    pieces_of,
    split_sentences,
)
from xiaoshuo.hf import ModelLoadError
from xiaoshuo.testing import TINY_CORPUS


@pytest.fixture(scope="module")
def counter(tiny_model: Path) -> TokenCounter:
    return TokenCounter(load_tokenizer(str(tiny_model)))


def _chunks(paragraphs, counter, limit, overlap=0):
    return list(pack(pieces_of(paragraphs, counter, limit), counter, limit, overlap))


def test_sentences_split_after_punctuation_and_quotes() -> None:
    assert split_sentences("他说：“走吧！”她点头。窗外下雨……然后？") == [
        "他说：“走吧！”",
        "她点头。",
        "窗外下雨……",
        "然后？",
    ]


@pytest.mark.parametrize("limit", [48, 96, 256, 1024])
def test_chunks_fit_and_cut_at_paragraphs(counter: TokenCounter, limit: int) -> None:
    paragraphs = [p for p in TINY_CORPUS.splitlines() if p.strip()] * 3
    chunks = _chunks(paragraphs, counter, limit)
    for chunk in chunks:
        assert counter.count(chunk.text) <= limit  # exact count of the joined text
        assert chunk.tokens <= limit
    if limit >= 256:  # every paragraph fits: cuts only between paragraphs, text preserved
        assert "\n".join(c.text for c in chunks) == "\n".join(paragraphs)
        assert all(c.text.split("\n")[0] in paragraphs for c in chunks)


def test_long_paragraph_cut_at_sentences_only(counter: TokenCounter) -> None:
    sentences = [
        "林远撑着一把旧油纸伞。",
        "她看着他，眼中有说不清的情绪！",
        "“你终于来了。”",
        "远处传来马蹄声？",
    ] * 20
    paragraph = "".join(sentences)
    chunks = _chunks([paragraph], counter, 80)
    assert len(chunks) > 1
    assert "".join(c.text for c in chunks) == paragraph
    for chunk in chunks:
        assert counter.count(chunk.text) <= 80
        assert chunk.text[-1] in "。！？”", chunk.text  # never mid-sentence


def test_one_giant_sentence_is_split_by_tokens(counter: TokenCounter) -> None:
    giant = "雨" * 5000 + "终于停了" * 300  # no punctuation at all
    chunks = _chunks([giant], counter, 64)
    assert "".join(c.text for c in chunks) == giant
    assert all(counter.count(c.text) <= 64 for c in chunks)


def test_overlap_repeats_trailing_paragraphs(counter: TokenCounter) -> None:
    paragraphs = [f"第{i}段。" + "林远撑伞走过长街。" for i in range(30)]
    chunks = _chunks(paragraphs, counter, 120, overlap=40)
    assert len(chunks) > 2
    for prev, nxt in itertools.pairwise(chunks):
        assert nxt.text.split("\n")[0] in prev.text.split("\n")  # starts with a repeated paragraph
        assert counter.count(nxt.text) <= 120


def test_unknown_tokenizer_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="--tokenizer"):
        load_tokenizer(str(tmp_path / "no-model-here"))
