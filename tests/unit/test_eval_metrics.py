"""Style features, style distance and the AI味 list, on texts with known answers."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.errors import ConfigError
from xiaoshuo.eval import metrics as m
from xiaoshuo.eval.flavour import load_flavour

PASSAGE = (
    "雨下了一夜。林远推开客栈的门，檐下的灯笼晃了两下，灭了。\n"
    "“你终于来了。”苏晚晴坐在窗边，没有回头。\n"
    "他把剑放在桌上，坐下，倒了一杯冷茶。茶是隔夜的，苦得发涩。\n"
    "“师父呢？”\n"
    "“死了。”她说，“三年前就死了，你不知道？”\n"
    "林远握着茶杯的手停了一下，又把茶喝完。窗外的雨还在下，屋檐上的水一串一串落进石槽里。\n"
)


def test_jensen_shannon_known_values() -> None:
    assert m.jensen_shannon(Counter("aab"), Counter("aab")) == 0.0
    assert m.jensen_shannon(Counter("aaa"), Counter("bbb")) == pytest.approx(1.0)
    # p = (1, 0), q = (1/2, 1/2), m = (3/4, 1/4): JSD = ½·log2(4/3) + ½·(½·log2(2/3) + ½·log2 2)
    expected = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5)
    assert m.jensen_shannon(Counter("a"), Counter("ab")) == pytest.approx(expected)
    assert m.jensen_shannon(Counter(), Counter("a")) == 1.0


def test_ks_dialogue_punctuation_paragraphs_known_values() -> None:
    assert m.ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert m.ks_statistic([1, 2], [3, 4]) == 1.0
    assert m.ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)
    assert m.sentence_lengths("一二三。四五！六") == [4, 3, 1]  # 。 and ！ count as 字, a tail counts
    # 11 字 in all (quote marks too); inside the quotes: 你好 (2) and 再见 (2)
    assert m.dialogue_share("他说：“你好”「再见」") == pytest.approx(4 / 11)
    assert m.dialogue_share("没有对话。") == 0.0
    prof = m.punctuation_profile("一，二，三。……——")  # 10 字; …… and —— count once each
    assert prof["，"] == pytest.approx(20.0) and prof["…"] == pytest.approx(10.0)
    assert prof["—"] == pytest.approx(10.0) and prof["！"] == 0.0
    assert m.bray_curtis({"a": 1.0}, {"a": 1.0}) == 0.0 and m.bray_curtis({"a": 1.0}, {"b": 1.0}) == 1.0
    assert m.paragraph_lengths("一二三\n\n  四五\n") == [3, 2]


def test_mattr_and_function_words() -> None:
    assert m.mattr("天天天天") == pytest.approx(0.25)
    assert m.mattr("天地玄黄") == 1.0
    # window 2 over 天地天地: every window has 2 distinct of 2
    assert m.mattr("天地天地", window=2) == 1.0
    assert m.mattr("天天地地", window=2) == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    freqs = m.function_word_freqs("我的书的了")  # 5 字: 的 ×2, 了 ×1
    assert freqs[m.FUNCTION_WORDS.index("的")] == pytest.approx(400.0)
    assert freqs[m.FUNCTION_WORDS.index("了")] == pytest.approx(200.0)
    n = len(m.FUNCTION_WORDS)
    ref = m.DeltaReference(mean=[0.0] * n, std=[2.0] + [0.0] * (n - 1))
    a, b = [4.0] + [0.0] * (n - 1), [0.0] * n
    assert m.burrows_delta(a, b, ref) == pytest.approx(2.0)  # only 的 varies: |4 − 0| / 2


def test_identical_text_is_distance_zero_and_shuffled_is_not() -> None:
    assert m.style_distance(PASSAGE, PASSAGE) == 0.0
    chars = list(PASSAGE.replace("\n", ""))
    random.Random(0).shuffle(chars)
    shuffled = "".join(chars)
    parts = m.style_components(PASSAGE, shuffled)
    assert parts["char_jsd"] == pytest.approx(0.0, abs=1e-12)  # the same characters …
    assert parts["bigram_jsd"] > 0.5  # … in another order
    assert m.style_distance(PASSAGE, shuffled) > 0.1
    assert all(0.0 <= v <= 1.0 for v in parts.values())


def test_simplified_vs_traditional_is_far_in_characters_only() -> None:
    simplified = "这个国家的历史很长，我们说过很多话。他们还记得那场战争吗？"
    traditional = "這個國家的歷史很長，我們說過很多話。他們還記得那場戰爭嗎？"
    parts = m.style_components(simplified, traditional)
    assert parts["char_jsd"] > 0.3 and parts["bigram_jsd"] > parts["char_jsd"]
    assert parts["punctuation"] == 0.0 and parts["sentence_ks"] == 0.0 and parts["dialogue"] == 0.0
    assert m.style_distance(simplified, traditional) > m.style_distance(simplified, simplified)


def test_a_different_style_is_farther_than_more_of_the_same() -> None:
    other = (
        "在这个充满挑战的时代，我们必须认识到，成长不仅仅是一种选择，而是一种责任。"
        "每一个人都应该勇敢地面对生活中的困难，并且不断地提升自己的能力，从而实现自己的价值。" * 3
    )
    same_author = PASSAGE.replace("林远", "陈平").replace("苏晚晴", "白露")
    assert m.style_distance(PASSAGE, same_author) < m.style_distance(PASSAGE, other)


AI_FIVE = "林远嘴角勾起一抹冷笑。苏晚晴眼中闪过一丝慌乱，她深吸一口气，不由得后退半步。他心中一动，转身离开。"
CLEAN = "林远笑了笑。苏晚晴往后退了半步，手按在剑柄上。他没再说话，转身走了。雨还在下。"


def test_five_listed_ai_phrases_against_a_clean_passage() -> None:
    flavour = load_flavour()
    hits = flavour.scan(AI_FIVE)
    listed = ["嘴角勾起一抹", "眼中闪过一丝", "深吸一口气", "不由得", "心中一动"]
    assert sorted(h.text for h in hits) == sorted(listed)
    assert flavour.scan(CLEAN) == []
    assert flavour.rate(CLEAN) == 0.0
    weights = sum(h.weight for h in hits)  # 不由得 has weight 0.5 (模糊修饰)
    assert weights == pytest.approx(4.5)
    assert flavour.rate(AI_FIVE) == pytest.approx(1000 * 4.5 / m.count_chars(AI_FIVE))


def test_user_flavour_file_adds_and_replaces(tmp_path: Path) -> None:
    extra = tmp_path / "mine.toml"
    extra.write_text('[categories."神态套话"]\nweight = 2.0\nphrases = ["笑了笑"]\n', "utf-8")
    flavour = load_flavour(extra)
    assert [h.text for h in flavour.scan(CLEAN)] == ["笑了笑"]
    assert flavour.rate(AI_FIVE) > load_flavour().rate(AI_FIVE)  # weight 2 for the category now
    extra.write_text('replace = true\n[categories."我的"]\nweight = 1\nphrases = ["雨还在下"]\n', "utf-8")
    only = load_flavour(extra)
    assert [c.name for c in only.categories] == ["我的"] and only.scan(AI_FIVE) == []
    extra.write_text('[categories."坏"]\npatterns = ["(未闭合"]\n', "utf-8")
    with pytest.raises(ConfigError, match=r"坏\.patterns"):
        load_flavour(extra)
    with pytest.raises(ConfigError, match="not found"):
        load_flavour(tmp_path / "missing.toml")


def test_a_flavour_file_that_is_deep_a_device_or_a_fifo_is_a_clear_error(tmp_path: Path) -> None:
    """A deeply nested TOML ended in a RecursionError traceback; /dev/zero was read until memory ran out
    and a FIFO hung the read."""
    import os

    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n", "utf-8")
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    for path, word in ((deep, "nested too deeply"), (fifo, "not a regular"), ("/dev/zero", "not a regular")):
        with pytest.raises(ConfigError, match=word):
            load_flavour(path)


def test_config_key_reaches_the_settings(tmp_path: Path) -> None:
    settings = config.load(env={}, cwd=tmp_path, overrides={"eval.ai_flavour_file": str(tmp_path / "x.toml")})
    assert settings.eval.ai_flavour_file == str(tmp_path / "x.toml")
    assert config.load(env={}, cwd=tmp_path / "none").eval.ai_flavour_file == ""
