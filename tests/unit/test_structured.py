"""Structured output (writing.structured): validation, retries with new seeds, errors naming task and chapter.

A scripted backend forces malformed answers; real backends are in tests/integration/test_planning_engines.py.
"""

from __future__ import annotations

import json

import pydantic
import pytest

from xiaoshuo.engine import GenerationRequest, SamplingError
from xiaoshuo.testing import ScriptedEngine
from xiaoshuo.writing import StructuredOutputError, generate_json, generate_json_many, run_sync


class Person(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=8)
    age: int = pydantic.Field(ge=0, le=200)


class Script(ScriptedEngine):
    """Answers each request with the next scripted text (with ``by_prompt``: by the prompt's first word)."""

    backend = "scripted-json"

    def __init__(self, script: list[str], by_prompt: dict[str, list[str]] | None = None) -> None:
        super().__init__(script, default="{}", chunk=1 << 20, max_model_len=1 << 20)
        self.by_prompt = by_prompt or {}

    def respond(self, request) -> str:
        key = request.messages[-1]["content"].split()[0] if request.messages else ""
        queue = self.by_prompt.get(key, self.script)
        return queue.pop(0) if queue else self.default


MSG = [{"role": "user", "content": "人物 写一个人物"}]


def test_valid_answer_is_returned_and_schema_travels_with_the_request():
    engine = Script(['{"name":"林远","age":25}'])
    person = run_sync(generate_json(engine, MSG, Person, task="character"))
    assert person == Person(name="林远", age=25)
    req = engine.requests[0]
    assert req.json_schema == Person.model_json_schema()
    assert "JSON Schema" in req.messages[-1]["content"] and "林远" not in req.messages[-1]["content"]


def test_invalid_answers_are_retried_with_new_seeds_then_fail_naming_task_and_chapter():
    bad = ['{"name":"林远"', '{"name":"林远","age":-1}', "not json"]
    engine = Script(list(bad))
    with pytest.raises(StructuredOutputError) as info:
        run_sync(generate_json(engine, MSG, Person, task="summary", chapter=7, retries=2))
    err = info.value
    assert err.task == "summary" and err.chapter == 7 and err.text == "not json"
    assert "summary" in str(err) and "第 7 章" in str(err) and "3 tries" in str(err)
    seeds = [r.sampling.seed for r in engine.requests]
    assert len(seeds) == 3 and len(set(seeds)) == 3


def test_a_retry_that_validates_wins():
    engine = Script(['{"name":"林远","age":999}', '{"name":"苏晚晴","age":22}'])
    person = run_sync(generate_json(engine, MSG, Person, task="character", retries=1))
    assert person.name == "苏晚晴" and len(engine.requests) == 2


def test_many_keeps_order_and_returns_errors_in_place():
    engine = Script(
        [],
        by_prompt={
            "a": ['{"name":"甲","age":1}'],
            "b": ["{bad", "{bad"],
            "c": ['{"name":"丙","age":3}'],
        },
    )
    items = [
        ([{"role": "user", "content": f"{k} 写"}], Person, "character", i + 1) for i, k in enumerate("abc")
    ]
    out = run_sync(generate_json_many(engine, items, retries=1))
    assert isinstance(out[0], Person) and out[0].name == "甲"
    assert isinstance(out[1], StructuredOutputError) and out[1].chapter == 2
    assert isinstance(out[2], Person) and out[2].name == "丙"


def test_json_schema_must_be_a_serialisable_dict():
    with pytest.raises(SamplingError):
        GenerationRequest(prompt="x", json_schema={"type": object})
    with pytest.raises(SamplingError):
        GenerationRequest(prompt="x", json_schema="{}")  # type: ignore[arg-type]
    req = GenerationRequest(prompt="x", json_schema={"type": "object"})
    assert json.loads(json.dumps(req.json_schema)) == {"type": "object"}


def test_ignore_eos_must_be_a_bool():
    from xiaoshuo.engine import SamplingSettings

    assert SamplingSettings(ignore_eos=True).ignore_eos is True
    with pytest.raises(SamplingError):
        SamplingSettings(ignore_eos="yes")  # type: ignore[arg-type]
