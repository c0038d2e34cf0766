"""Issue 26, item 1 (core): bounded forms, a batch budget that follows the batch size and fits the context,
retries with seeds derived from the run's seed, and the two explicit ways on after an interruption.

The engine is a scripted backend that fills each form from its schema — or, as a random model under a
grammar does, fills every string to its maxLength — so what is checked is the arithmetic and the recovery,
without a model (the demo model's success rate: bench/bench_outline.py).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from xiaoshuo.config import load
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.testing import ScriptedEngine
from xiaoshuo.writing import Novels, StructuredOutputError, run_sync
from xiaoshuo.writing.extraction import ChapterFacts
from xiaoshuo.writing.planning import (
    PlanLimits,
    batch_form,
    generate_outline,
    interruption,
    read_progress,
    restart_outline,
    resume_outline,
    summary_form,
)
from xiaoshuo.writing.structured import DEFAULT_SAMPLING


def _unbounded(schema: dict[str, Any]) -> list[str]:
    """Paths of strings without maxLength and arrays without maxItems in a JSON schema."""
    defs = schema.get("$defs", {})
    found: list[str] = []

    def walk(node: dict[str, Any], path: str, depth: int = 0) -> None:
        if "$ref" in node:
            walk(defs[node["$ref"].rsplit("/", 1)[-1]], path, depth + 1)
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(key, ()):
                walk(sub, path, depth)
        kind = node.get("type")
        if kind == "string" and "maxLength" not in node and "enum" not in node:
            found.append(path)
        if kind == "array":
            if "maxItems" not in node:
                found.append(path)
            walk(node.get("items", {}), path + "[]", depth)
        for name, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{name}", depth)

    walk(schema, "$")
    return found


@pytest.mark.parametrize(
    "form",
    [batch_form(5, PlanLimits()), summary_form(PlanLimits()), ChapterFacts],
    ids=["outline", "summary", "extraction"],
)
def test_every_string_and_list_of_the_planning_forms_is_bounded(form) -> None:
    assert _unbounded(form.model_json_schema()) == []


class GreedyForms(ScriptedEngine):
    """Answers like a random model under a grammar: every string at its maxLength, every list full —
    when the answer fits ``max_tokens`` (tokens: one per character, as ScriptedEngine counts)."""

    backend = "scripted-greedy"

    def __init__(self, max_model_len: int, fail: set[int] | None = None) -> None:
        super().__init__(chunk=1 << 20, max_model_len=max_model_len)
        self.fail = set(fail or ())

    def respond(self, request) -> str:
        call = len(self.requests) - 1
        if call in self.fail:
            return '{"volume":"卷","chapters":[{"title":"坏'
        return json.dumps(self._fill(request.json_schema, request.json_schema), ensure_ascii=False)

    def _fill(self, node: dict[str, Any], root: dict[str, Any]) -> Any:
        if "$ref" in node:
            return self._fill(root["$defs"][node["$ref"].rsplit("/", 1)[-1]], root)
        kind = node.get("type")
        if kind == "object":
            return {k: self._fill(v, root) for k, v in node["properties"].items()}
        if kind == "array":
            return [self._fill(node["items"], root) for _ in range(node["maxItems"])]
        return "字" * node["maxLength"]


@pytest.fixture
def novel(tmp_path: Path):
    settings = load(env={}, cwd=tmp_path, overrides={"paths.data_dir": str(tmp_path / "data")})
    return Novels.from_settings(settings).create("yuye", title="雨夜剑", premise="十年后重逢")


def test_on_a_short_context_batches_shrink_until_the_bound_fits_and_every_answer_is_whole(novel):
    # 2,048 tokens as the demo; one character = one token here, so the ×3 bound is generous
    engine = GreedyForms(max_model_len=2048)
    result = run_sync(generate_outline(engine, novel, chapters=5, batch=10))
    assert [c.number for c in novel.outline().chapters()] == [1, 2, 3, 4, 5]
    for req in engine.requests:
        count = req.json_schema["properties"]["chapters"]["maxItems"]
        assert req.sampling.max_tokens >= count * 100  # the budget follows the batch size …
        assert engine.prompt_tokens(req.messages) + req.sampling.max_tokens <= 2048  # … inside the context
    assert result.batches == len(engine.requests) >= 2  # the 10-chapter batch did not fit
    assert result.limits is not None and result.limits["synopsis_chars"] < 200  # a smaller form


def test_on_a_long_context_the_budget_is_chapters_times_the_bound_plus_a_margin(novel):
    engine = GreedyForms(max_model_len=32768)
    run_sync(generate_outline(engine, novel, chapters=5, batch=10))
    (req,) = engine.requests
    assert req.sampling.max_tokens == 5 * PlanLimits().chapter_tokens() + 40  # not a fixed 1024


def test_a_failed_batch_is_retried_with_seeds_derived_from_the_run_seed(novel, tmp_path: Path):
    settings = load(
        env={},
        cwd=tmp_path,
        overrides={"paths.data_dir": str(tmp_path / "data"), "writing.structured_retries": 3},
    )
    limits = PlanLimits.from_settings(settings)
    assert limits.retries == 3
    seeded = dataclasses.replace(DEFAULT_SAMPLING, seed=5)
    engine = GreedyForms(32768, fail={0, 1, 2})  # three bad answers, the fourth try validates
    run_sync(generate_outline(engine, novel, chapters=3, batch=10, limits=limits, sampling=seeded))
    seeds = [r.sampling.seed for r in engine.requests]
    assert len(seeds) == 4 and len(set(seeds)) == 4
    other = Novels(novel.root.parent).create("again", title="再来")
    again = GreedyForms(32768, fail={0, 1, 2})
    run_sync(generate_outline(again, other, chapters=3, batch=10, limits=limits, sampling=seeded))
    assert [r.sampling.seed for r in again.requests] == seeds  # reproducible


def test_after_an_interruption_resume_and_restart_are_two_explicit_ways(novel):
    bad = GreedyForms(32768, fail={1, 2, 3})  # batch 2 (chapters 5-8) fails all three tries
    with pytest.raises(StructuredOutputError) as info:
        run_sync(generate_outline(bad, novel, chapters=10, batch=4))
    shown = str(info.value)
    assert "--resume" in shown and "--from K" in shown and "已保存到第 4 章" in shown
    stopped = interruption(novel)
    assert stopped is not None and (stopped.next, stopped.target) == (5, 10)
    assert "中断" in stopped.reason and "继续" in stopped.reason and "重新开始" in stopped.reason
    with pytest.raises(XiaoshuoError) as refused:  # a plain rerun names both ways
        run_sync(generate_outline(GreedyForms(32768), novel, chapters=10, batch=4))
    assert "--resume" in str(refused.value) and "--from K" in str(refused.value)

    result = run_sync(resume_outline(GreedyForms(32768), novel))
    assert result.generated == [5, 6, 7, 8, 9, 10] and interruption(novel) is None

    with pytest.raises(StructuredOutputError):
        run_sync(generate_outline(GreedyForms(32768, fail={0, 1, 2}), novel, chapters=14, batch=4))
    assert interruption(novel).next == 11
    again = run_sync(restart_outline(GreedyForms(32768), novel, 3))  # 重新开始 at 3, to the same target
    assert again.generated == list(range(3, 15)) and read_progress(novel).done
    assert [c.number for c in novel.outline().chapters()] == list(range(1, 15))


def test_a_batch_cut_off_at_max_tokens_is_halved_not_failed(novel):
    class Verbose(GreedyForms):
        """Writes twice what the form allows in its first answer (a model that outruns the bound)."""

        def respond(self, request) -> str:
            text = super().respond(request)
            return text + "字" * request.sampling.max_tokens if len(self.requests) == 1 else text

    engine = Verbose(32768)
    result = run_sync(generate_outline(engine, novel, chapters=4, batch=4, retries=0))
    assert result.splits == 1 and [c.number for c in novel.outline().chapters()] == [1, 2, 3, 4]
    assert [r.json_schema["properties"]["chapters"]["maxItems"] for r in engine.requests][:2] == [4, 2]
