"""Token counting without the model's tokenizer: the estimate over-counts; the loader stays offline."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from xiaoshuo.engine import estimate_tokens
from xiaoshuo.engine.base import ESTIMATE_SOURCE
from xiaoshuo.hf import load_local_tokenizer
from xiaoshuo.testing import TINY_CORPUS

# Counts measured once with Qwen2/2.5's vocabulary (the 151,643 BPE ranks Qwen publishes, with
# Qwen2's pre-tokenizer regex); the estimate must never be below them.
QWEN2_COUNTS = [
    ("他抬起头，望向远方。山风猎猎，吹动他的衣角。“走吧，”她说，“天要黑了。”\n"
     "两人沿着山路慢慢走下去，谁也没有再说话。", 41),
    ("第一章 雨夜\n夜色如墨，细雨敲打着青石板路。林远撑着一把旧油纸伞，站在城门外的老槐树下。", 38),
    ("【人物】林远：青云山弟子，性格沉稳，擅长剑法。\n【地点】青云山：藏经阁在十年前被大火烧毁。\n", 36),
    ("第一回 入山\n少年顧長歌揹著一個破舊的包袱，站在雲霧繚繞的山門前。守門的道童問道：「你來做什麼？」", 45),
    ("第12章 2024年3月15日，Lin Yuan说：OK, let's go!", 26),
    ("窗外的雨越下越大……远处传来马蹄声——一队黑衣人正朝客栈飞驰而来！", 25),
    ("The quick brown fox jumps over the lazy dog.", 10),
    ("    缩进的段落\n\n\n\t另一段", 11),
]


@pytest.mark.parametrize(("text", "qwen"), QWEN2_COUNTS)
def test_estimate_never_below_qwen2_counts(text: str, qwen: int) -> None:
    est = estimate_tokens(text)
    assert est >= qwen
    assert est <= 2 * qwen  # conservative, not useless: trimming keeps most of the budget


def test_estimate_never_below_the_test_tokenizer_on_its_text(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    for text in [TINY_CORPUS, *TINY_CORPUS.splitlines()]:
        if text:
            assert estimate_tokens(text) >= len(tok(text, add_special_tokens=False)["input_ids"]), text


def test_estimate_rules() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("雨") == 2  # one 汉字 + one line
    assert estimate_tokens("2024") == 5  # Qwen splits digits one by one
    assert estimate_tokens("a\nb") == 4  # two lines, two short words
    assert estimate_tokens("𠀀") == 5  # beyond the BMP: every UTF-8 byte may be a token
    assert estimate_tokens("abcdef") == 3  # 3 letters per token, + 1 line
    text = "夜色如墨。" * 1000
    assert estimate_tokens(text) == 5001


def test_estimate_source_says_so() -> None:
    assert ESTIMATE_SOURCE.startswith("estimate")


def test_local_tokenizer_from_a_folder(tiny_model: Path, tmp_path: Path) -> None:
    tok = load_local_tokenizer(str(tiny_model))
    assert tok is not None and tok("雨夜")["input_ids"]
    weights_only = tmp_path / "weights-only"
    weights_only.mkdir()
    shutil.copy(tiny_model / "config.json", weights_only / "config.json")
    assert load_local_tokenizer(str(weights_only)) is None


def test_local_tokenizer_from_the_hf_cache_only(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    started = time.monotonic()
    for name in ("nobody/no-such-model", "qwen2.5:7b", "tiny", str(tmp_path / "missing"), "a/b/c", ""):
        assert load_local_tokenizer(name) is None, name
    assert time.monotonic() - started < 5  # fails fast: no network, no retries
    # a hub id already in the cache (the layout huggingface_hub writes; AutoTokenizer also
    # fetches config.json) loads offline
    repo = cache / "models--someone--tiny"
    snapshot = repo / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    for f in tiny_model.iterdir():
        if f.name.startswith("tokenizer") or f.name in ("config.json", "chat_template.jinja"):
            shutil.copy(f, snapshot / f.name)
    tok = load_local_tokenizer("someone/tiny")
    assert tok is not None and tok.chat_template
