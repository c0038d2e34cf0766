"""Outline generation in batches and chapter summaries (writing.planning) through a scripted backend.

The scripted backend fills each form from the request's JSON schema (or answers malformed JSON on
chosen calls), so batching, numbering, checkpoints, resume, --from and the never-reaches-the-outline
guarantee are checked without a model.  Real engines: tests/integration/test_planning_engines.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xiaoshuo.config import load
from xiaoshuo.engine import load_engine, register_backend
from xiaoshuo.testing import ScriptedEngine
from xiaoshuo.writing import Novels, StructuredOutputError, compose, run_sync
from xiaoshuo.writing.planning import PROGRESS_FILE, generate_outline, read_progress, summarize_chapter


class FormEngine(ScriptedEngine):
    """Fills any planning form from its schema; calls listed in ``bad`` get malformed JSON."""

    backend = "scripted-forms"

    def __init__(self, bad: set[int] | None = None) -> None:
        super().__init__(chunk=1 << 20)
        self.bad = set(bad or ())

    def respond(self, request) -> str:
        return self._answer(request.json_schema, len(self.requests) - 1)

    def _answer(self, schema: dict, call: int) -> str:
        if call in self.bad:
            return '{"volume":"卷","chapters":[{"title":"坏'  # cut off: invalid JSON
        props = schema["properties"]
        if "chapters" in props:
            count = props["chapters"]["minItems"]
            chapters = [
                {
                    "title": f"题{call}-{i}",
                    "synopsis": f"要点{call}-{i}",
                    "characters": ["林远"],
                    "places": ["青云山"],
                }
                for i in range(count)
            ]
            return json.dumps({"volume": f"第{call // 3 + 1}卷", "chapters": chapters}, ensure_ascii=False)
        return json.dumps(
            {"summary": "林远在雨夜见到师姐。", "who": ["林远", "苏晚晴"], "where": ["城门"], "when": "雨夜"},
            ensure_ascii=False,
        )


@pytest.fixture
def novel(tmp_path: Path):
    settings = load(env={}, cwd=tmp_path, overrides={"paths.data_dir": str(tmp_path / "data")})
    return Novels.from_settings(settings).create("yuye", title="雨夜剑", premise="十年后重逢")


def numbers(novel) -> list[int]:
    return [c.number for c in novel.outline().chapters()]


def test_outline_in_batches_numbers_every_chapter_once(novel):
    engine = FormEngine()
    seen = []
    result = run_sync(generate_outline(engine, novel, chapters=25, batch=10, on_batch=seen.append))
    assert numbers(novel) == list(range(1, 26)) and result.generated == list(range(1, 26))
    assert [e["chapters"] for e in seen] == [list(range(1, 11)), list(range(11, 21)), list(range(21, 26))]
    assert [r.json_schema["properties"]["chapters"]["maxItems"] for r in engine.requests] == [10, 10, 5]
    # each batch sees the previous synopses
    assert "要点0-9" in engine.requests[1].messages[-1]["content"]
    assert "第10章 题0-9" in engine.requests[1].messages[-1]["content"]
    assert read_progress(novel).done and read_progress(novel).next == 26
    assert novel.outline().chapter(25).characters == ["林远"]


def test_a_malformed_answer_never_reaches_the_outline_and_resume_continues(novel):
    bad = FormEngine(bad={1, 2, 3})  # batch 2 fails all three tries
    with pytest.raises(StructuredOutputError) as info:
        run_sync(generate_outline(bad, novel, chapters=20, batch=8))
    assert info.value.task == "outline" and info.value.chapter == 9
    assert numbers(novel) == list(range(1, 9))
    assert all(not c.title.startswith("坏") for c in novel.outline().chapters())
    progress = read_progress(novel)
    assert not progress.done and progress.next == 9
    with pytest.raises(Exception, match="--resume"):
        run_sync(generate_outline(FormEngine(), novel, chapters=20, batch=8))
    result = run_sync(generate_outline(FormEngine(), novel, resume=True))
    assert result.generated == list(range(9, 21)) and numbers(novel) == list(range(1, 21))


def test_from_regenerates_planned_chapters_and_keeps_drafted_ones(novel):
    run_sync(generate_outline(FormEngine(), novel, chapters=12, batch=4))
    novel.set_text(3, "林远撑着伞。")
    novel.update_plan(5, status="final")
    kept = {n: novel.plan(n).model_dump() for n in (3, 5)}
    old = {c.number: c.title for c in novel.outline().chapters()}
    result = run_sync(generate_outline(FormEngine(), novel, chapters=12, batch=4, start=2))
    assert numbers(novel) == list(range(1, 13))
    assert result.skipped == [3, 5] and result.generated == [2, 4, 6, 7, 8, 9, 10, 11, 12]
    assert {n: novel.plan(n).model_dump() for n in (3, 5)} == kept
    assert novel.plan(1).title == old[1]
    assert all(novel.plan(n).title != old[n] for n in result.generated)


def test_a_crash_between_outline_and_progress_writes_neither_duplicates_nor_loses(novel):
    run_sync(generate_outline(FormEngine(), novel, chapters=16, batch=8))
    path = novel.root / PROGRESS_FILE
    state = json.loads(path.read_text("utf-8"))
    state.update(done=False, next=9)  # as if killed after batch 2's outline write, before its progress write
    path.write_text(json.dumps(state), "utf-8")
    result = run_sync(generate_outline(FormEngine(), novel, resume=True))
    assert result.generated == list(range(9, 17)) and numbers(novel) == list(range(1, 17))


def test_summary_is_stored_and_used_by_compose(novel, tmp_path: Path):
    settings = load(env={}, cwd=tmp_path, overrides={"paths.data_dir": str(tmp_path / "data")})
    run_sync(generate_outline(FormEngine(), novel, chapters=3, batch=3))
    novel.set_text(1, "雨夜，林远在城门外等师姐。")
    answer = run_sync(summarize_chapter(FormEngine(), novel, 1))
    plan = novel.plan(1)
    assert plan.summary == answer.summary == "林远在雨夜见到师姐。"
    assert (
        plan.summary_who == ["林远", "苏晚晴"]
        and plan.summary_where == ["城门"]
        and plan.summary_when == "雨夜"
    )
    comp = compose(
        novel, settings=settings, count_tokens=len, chapter=2, text="", request="写", memory_on=False
    )
    prompt = comp.messages[-1]["content"]
    assert "林远在雨夜见到师姐。" in prompt and "人物：林远、苏晚晴" in prompt and 1 in comp.summaries


def test_a_failed_summary_stores_nothing(novel):
    run_sync(generate_outline(FormEngine(), novel, chapters=1, batch=1))
    novel.set_text(1, "雨夜。")
    engine = FormEngine(bad={0, 1, 2})
    engine._answer = lambda schema, call: "{}" if call < 3 else ""  # schema-invalid every try
    with pytest.raises(StructuredOutputError) as info:
        run_sync(summarize_chapter(engine, novel, 1))
    assert info.value.task == "summary" and info.value.chapter == 1
    assert novel.plan(1).summary == "" and novel.plan(1).summary_who == []


def test_writer_accept_summarizes_when_configured(tmp_path: Path):
    from xiaoshuo.writing import Writer

    settings = load(
        env={},
        cwd=tmp_path,
        overrides={"paths.data_dir": str(tmp_path / "data"), "writing.auto_summarize": True},
    )
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑", chapter_chars=60)
    novel.import_outline({"volumes": [{"title": "卷一", "chapters": [{"title": "雨夜"}]}]})

    class ProseAndForms(FormEngine):
        def _answer(self, schema, call):
            if schema is None:
                return "夜色如墨，细雨敲打着青石板路。林远撑着一把旧油纸伞，站在城门外的老槐树下。" * 2
            return super()._answer(schema, call)

    register_backend("scripted-forms-test", lambda cfg, model, adapters: ProseAndForms())
    engine = load_engine(settings, backend="scripted-forms-test")
    events = []
    writer = Writer(settings, engine, novel, memory_on=False, on_progress=events.append)
    result = run_sync(writer.write_chapter(1, target_chars=60, seed=1))
    assert result.accepted is not None
    assert novel.plan(1).summary == "林远在雨夜见到师姐。"
    assert any(e.get("event") == "summary_saved" for e in events)
    assert engine.requests[-1].json_schema is not None
