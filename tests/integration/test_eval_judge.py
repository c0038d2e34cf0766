"""The judge's plumbing against a real vLLM OpenAI server on the tiny model: structured scores parse, and
both pairwise orders are recorded (the tiny model's opinions are noise; only the plumbing is checked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.eval.judge import Judge
from xiaoshuo.eval.style import Passage

pytestmark = pytest.mark.slow


def test_judge_scores_parse_and_both_orders_are_recorded(openai_server: str, tmp_path: Path) -> None:
    settings = config.load(env={}, cwd=tmp_path)
    judge = Judge.connect(settings, openai_server, "tiny", samples=2)
    try:
        passages = [
            Passage("p1", "夜色如墨，细雨敲打着青石板路。", "林远撑着一把旧油纸伞。"),
            Passage("p2", "客栈里人声嘈杂。", "掌柜是个胖胖的中年人。"),
        ]
        result = judge.evaluate(
            passages, {"base": ["他走了。", "她笑了。"], "adapter": ["雨停了。", "门开了。"]}
        )
    finally:
        judge.close()
    assert result["model"] == "tiny" and result["errors"] == 0, result
    assert len(result["scores"]) == 2 * 3  # author, base, adapter for each passage
    for row in result["scores"]:
        assert set(row["scores"]) == {
            "plot",
            "character",
            "prose",
            "pacing",
            "dialogue",
            "consistency",
            "appeal",
        }
        assert all(1 <= v["score"] <= 10 and len(v["reason"]) <= 60 for v in row["scores"].values())
    orders = sorted((p["passage"], p["order"]) for p in result["pairwise"])
    assert orders == [(1, "adapter,base"), (1, "base,adapter"), (2, "adapter,base"), (2, "base,adapter")]
    assert result["agreement"] in (0.0, 0.5, 1.0)
    assert sum(result["wins"].values()) == 4


def test_openai_backend_scores_through_the_server(openai_server: str, tmp_path: Path) -> None:
    """``Engine.score`` on a served model: prompt log-probs (echo), the adapter's differ from the base's."""
    from xiaoshuo.engine import load_engine

    settings = config.load(
        env={},
        cwd=tmp_path,
        overrides={"engine.openai_base_url": openai_server, "engine.openai_model": "tiny"},
    )
    with load_engine(settings, backend="openai") as engine:
        prefix, text = "第1章 夜色如墨，细雨敲打着青石板路。", "林远撑着一把旧油纸伞，站在城门外。"
        base = engine.score(prefix, text)
        tuned = engine.score(prefix, text, lora="a")
        longer = engine.score(prefix, text + text)
    assert base.logprob < 0 and 5 <= base.tokens <= len(text) + 2
    assert tuned.logprob != pytest.approx(base.logprob, rel=1e-3)
    assert longer.tokens > base.tokens and longer.logprob < base.logprob
