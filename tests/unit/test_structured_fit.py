"""Every structured task's prompt + answer fits a 4,096-token model (the tiny test model's context).

The engine here has the tiny test model's real tokenizer and chat template and ``max_model_len``
4096; ``Engine.prepare`` refuses any request whose rendered prompt + ``max_tokens`` exceeds that
(the error vLLM would give).  The answers are the smallest schema-valid JSON (built from the schema
the request carries), so only the prompt sizing is under test: long chapters, a long outline
history and a big memory must be cut, split or trimmed to fit — never sent whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from xiaoshuo.config import load
from xiaoshuo.engine import Engine
from xiaoshuo.engine.base import END
from xiaoshuo.engine.types import Delta
from xiaoshuo.memory import MemoryStore, make_entry
from xiaoshuo.writing import Novels, run_sync
from xiaoshuo.writing.consistency import judge_chapter
from xiaoshuo.writing.extraction import ChapterFacts, Extractor, messages_for
from xiaoshuo.writing.planning import PlanLimits, generate_outline, summarize_chapter
from xiaoshuo.writing.structured import schema_hint, schema_of, schema_sketch, with_schema_hint

CONTEXT = 4096
LINE = "林远提着剑走进青云山下的客栈，掌柜赵铁山抬头看他一眼：“客官，住店还是打尖？”窗外雷声滚滚。\n"


def minimal(node: dict[str, Any], defs: dict[str, Any]) -> Any:
    """The smallest value valid against a (pydantic-made) JSON schema node."""
    if "$ref" in node:
        return minimal(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in node:
        return minimal(node["anyOf"][0], defs)
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "object":
        props = node.get("properties", {})
        return {k: minimal(props[k], defs) for k in node.get("required", ())}
    if kind == "array":
        return [minimal(node["items"], defs) for _ in range(node.get("minItems", 0))]
    if kind == "string":
        return "甲" * node.get("minLength", 0)
    if kind in ("integer", "number"):
        return node.get("minimum", 0)
    return None


class FitEngine(Engine):
    """The tiny model's tokenizer and context; answers the smallest valid form; records what it sent."""

    backend = "fit"

    def __init__(self, model: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(model)
        super().__init__(tokenizer=tokenizer, max_model_len=CONTEXT, system_prompt="你是一位中文小说作家。")
        self.sent: list[tuple[str, int, int]] = []  # (task hint, prompt tokens, max_tokens)

    def _submit(self, prepared, sink) -> None:
        req = prepared.request
        self.sent.append((req.messages[-1]["content"][:8], len(prepared.prompt_ids), req.sampling.max_tokens))
        schema = req.json_schema or {}
        text = json.dumps(minimal(schema, schema.get("$defs", {})), ensure_ascii=False)
        sink(Delta(req.request_id, 0, text, None, 0, 1))
        sink(Delta(req.request_id, 0, "", "stop", 0, 1))
        sink(END)

    def _abort(self, request_id: str) -> None:
        pass

    def unfinished_requests(self) -> int:
        return 0

    def _shutdown(self) -> None:
        pass

    def assert_all_fit(self, least: int) -> None:
        assert self.sent, "no request reached the engine"
        for _, prompt, max_tokens in self.sent:
            assert prompt + max_tokens <= CONTEXT and max_tokens >= least, (prompt, max_tokens)


@pytest.fixture
def engine(tiny_model: Path) -> FitEngine:
    eng = FitEngine(tiny_model)
    yield eng
    eng.close()


@pytest.fixture
def book(tmp_path: Path):
    settings = load(
        None,
        overrides={"paths.data_dir": str(tmp_path / "data"), "memory.embedding_model": "none"},
        env={},
    )
    novel = Novels.from_settings(settings).create(
        "fit", title="雨夜剑", premise="少年林远雨夜得剑，十年后重回青云山。" * 4
    )
    with MemoryStore(settings) as store:
        names = [f"人物{i:02d}号" for i in range(70)]
        store.add([make_entry(novel="fit", kind="character", name=n, text="青云山弟子" * 8) for n in names])
        store.add(make_entry(novel="fit", kind="character", name="林远", text="少年剑客", state="重伤"))
        yield settings, novel, store


def test_the_prompt_shows_a_compact_sketch_of_the_schema_not_the_json_schema():
    schema = schema_of(ChapterFacts)
    sketch = schema_sketch(schema)
    assert len(sketch) * 3 < len(json.dumps(schema, ensure_ascii=False, separators=(",", ":")))
    assert '"name":str1-12' in sketch and '"aliases"?:[≤3×str≤12]' in sketch
    assert '"thread"?:"none"|"open"|"closed"' in sketch and '"payoff_chapter"?:int1-100000|null' in sketch
    assert '"characters"?:[≤4×{' in sketch
    hinted = with_schema_hint([{"role": "user", "content": "正文"}], schema)[-1]["content"]
    assert hinted.startswith("正文") and hinted.endswith(sketch) and "$defs" not in hinted
    # extraction puts the hint first (system), so every chapter's prompt shares a cached prefix
    shared = messages_for(None, 1, "", "林远走进客栈。", ["林远"])
    assert schema_hint(schema) in shared[0]["content"] and shared[1]["content"].endswith("林远走进客栈。")
    assert with_schema_hint(shared, schema) == shared  # not appended twice


def test_extraction_of_a_long_chapter_is_split_to_fit(engine: FitEngine, book):
    settings, novel, store = book
    long_text = LINE * 120  # ~5,500 字: several times the room a 4,096-token context leaves
    novel.set_text(1, long_text)
    novel.set_text(2, LINE * 2)
    results = run_sync(Extractor(settings, engine, novel, store, batch=2).extract([1, 2]))
    assert [r.error for r in results] == ["", ""]
    assert results[0].pieces >= 3 and results[1].pieces == 1
    assert len(engine.sent) == results[0].pieces + 1
    engine.assert_all_fit(640)
    # a short chapter leaves the answer more room than the reserve
    assert engine.sent[-1][2] > 640


def test_consistency_judge_of_a_long_chapter_fits(engine: FitEngine, book):
    *_, store = book
    text = LINE * 120 + "人物01号" + "人物02号"
    entries = store.list("fit")
    found, dropped = run_sync(judge_chapter(engine, text, 3, entries))
    assert found == [] and dropped == []
    assert len(engine.sent) >= 3
    engine.assert_all_fit(512)


def test_summary_of_a_long_chapter_fits(engine: FitEngine, book):
    _, novel, _ = book
    novel.set_text(1, LINE * 120)
    run_sync(summarize_chapter(engine, novel, 1))
    assert len(engine.sent) == 1
    engine.assert_all_fit(300)


def test_outline_batches_with_a_long_history_fit(engine: FitEngine, book):
    _, novel, store = book
    limits = PlanLimits(synopsis_chars=40, names=3, name_chars=6)
    result = run_sync(generate_outline(engine, novel, chapters=96, batch=8, limits=limits, store=store))
    assert [c.number for c in novel.outline().chapters()] == list(range(1, 97))
    # 8 chapters' bound (8 × 582 tokens) cannot fit beside this prompt: a request holds fewer, and its
    # max_tokens always covers the bound of what it asks for (issue 26: never cut off inside a field)
    assert result.batches == len(engine.sent) > 12 and result.limits is None
    engine.assert_all_fit(limits.chapter_tokens() + 40)
