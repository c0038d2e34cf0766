"""xiaoshuo.writing.actions: what the page and the CLI share behaves the same from both.

* preview == sent: the messages :func:`actions.preview` returns are the ones the engine receives for the
  first request of the same action (chapter, 续写, 改写), through a recording backend registered with
  ``register_backend``, with memory on (real Chroma, no embedding model);
* accept runs ``on_accepted`` from the page's handler and from ``chapter accept`` alike: with
  ``writing.auto_summarize`` on both store the model's summary (the page's accept used to skip it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xiaoshuo import testing
from xiaoshuo.config import load
from xiaoshuo.engine import load_engine, register_backend
from xiaoshuo.testing import EngineHolderStub
from xiaoshuo.writing import Novels, Writer, actions, run_sync

PROSE = "".join(chr(0x4E00 + (i * 37) % 5000) + ("。" if i % 9 == 8 else "") for i in range(6000))
SUMMARY = {"summary": "林远在客栈遇到剑客。", "who": ["林远"], "where": ["客栈"], "when": "雨夜"}
RECORDING = "recording-actions-test"
SUMMARIZING = "summarizing-actions-test"


class Recording(testing.ScriptedEngine):
    """Records every request (``ScriptedEngine.requests``) and answers distinct prose per request."""

    backend = RECORDING

    def respond(self, request) -> str:
        start = (len(self.requests) * 211) % 3000
        return PROSE[start : start + 2000]


class Summarizing(testing.ScriptedEngine):
    backend = SUMMARIZING

    def __init__(self) -> None:
        super().__init__(default=json.dumps(SUMMARY, ensure_ascii=False), chunk=1 << 20)


register_backend(RECORDING, lambda cfg, model, adapters: Recording())
register_backend(SUMMARIZING, lambda cfg, model, adapters: Summarizing())


def _settings(tmp_path: Path, **extra):
    overrides = {
        "paths.data_dir": str(tmp_path / "data"),
        "paths.checkpoints_dir": str(tmp_path / "checkpoints"),
        "memory.embedding_model": "none",
        "writing.segment_chars": 200,
        **extra,
    }
    return load(None, overrides=overrides, env={})


def _novel(settings, slug: str = "yuye"):
    novel = Novels.from_settings(settings).create(slug, title="雨夜剑", chapter_chars=300)
    chapters = [
        {"title": "夜雨", "synopsis": "林远在雨夜遇到剑客", "characters": ["林远"]},
        {"title": "客栈", "synopsis": "林远在客栈等人", "characters": ["林远"], "places": ["客栈"]},
    ]
    novel.import_outline({"volumes": [{"title": "第一卷", "chapters": chapters}]})
    novel.set_text(1, "雨夜里，林远推开客栈的门。" + PROSE[:400])
    return novel


@pytest.mark.parametrize(
    ("action", "chapter", "options"),
    [
        ("chapter", 2, {}),
        ("continue", 1, {"chars": 150}),
        ("rewrite", 1, {"start": 3, "end": 60, "instruction": "更紧张", "chars": 80}),
    ],
)
def test_the_preview_is_what_the_engine_receives(tmp_path: Path, action: str, chapter: int, options) -> None:
    from xiaoshuo.memory import MemoryStore, make_entry

    settings = _settings(tmp_path)
    novel = _novel(settings)
    engine = load_engine(settings, backend=RECORDING)
    with MemoryStore(settings) as store:
        store.add([make_entry(novel="yuye", kind="character", name="林远", text="青云山弟子，使一柄古剑")])
        writer = Writer(settings, engine, novel, store=store, memory_on=True)
        preview = actions.preview(writer, action, chapter, **options)
        assert engine.requests == []  # a preview generates nothing
        result = run_sync(actions.write(writer, action, chapter, accept=False, **options))
    sent = engine.requests[0]
    assert sent.messages == preview.messages
    assert sent.sampling.max_tokens == preview.max_tokens and sent.lora == preview.request.lora
    assert "林远" in preview.composition.section("相关记忆")  # memory went in, the same in both
    assert result.candidates[0].version is not None
    request = preview.messages[-1]["content"].rsplit("【写作要求】\n", 1)[1]
    if action == "chapter":  # the format line and the last-segment clause are sent, and so previewed
        assert request.endswith("直接输出小说正文，不要标题和说明。")


def test_the_inspector_shows_what_the_page_sends(tmp_path: Path) -> None:
    from xiaoshuo.webui.pages.book import handlers as h

    services, engine = _services(tmp_path, _settings(tmp_path), Recording())
    try:
        _novel(services.settings)
        report = h.inspect(services, "yuye", 2)
        assert report["action"] == "chapter"
        updates = _collect(h.write_stream(services, "yuye", 2, "chapter", target_chars=300))
        assert updates[-1].done
        assert engine.requests[0].messages == report["messages"]
    finally:
        services.close_store()


def _services(tmp_path: Path, settings, engine):
    from xiaoshuo.webui.services import Services

    return Services(settings, engine=EngineHolderStub(engine)), engine


def _collect(agen, timeout: float = 60):
    import asyncio

    async def run():
        return [u async for u in agen]

    return asyncio.run(asyncio.wait_for(run(), timeout))


def test_accept_runs_auto_summary_from_the_page_and_the_cli(tmp_path: Path, monkeypatch) -> None:
    from xiaoshuo.cli import app
    from xiaoshuo.webui.pages.book import handlers as h

    # the page: 采用 a saved version, and a stopped run's unsaved candidate
    page = _settings(tmp_path / "page", **{"writing.auto_summarize": True})
    services, _ = _services(tmp_path, page, Summarizing())
    try:
        novel = _novel(page)
        v = novel.add_version(2, "林远在客栈里等了一夜。" * 4, source="generated", kind="chapter")
        assert novel.plan(2).summary == ""
        h.accept(services, "yuye", 2, v.id)
        assert novel.text(2) == v.text and novel.plan(2).summary == SUMMARY["summary"]
        assert novel.plan(2).summary_who == ["林远"]
        novel.update_plan(2, summary="")
        session = {"novel": "yuye", "chapter": 2, "kind": "continue", "versions": [None], "before": "前"}
        h.accept_candidate(services, "yuye", session, 0, "林远拔剑。")
        assert novel.text(2) == "前林远拔剑。" and novel.plan(2).summary == SUMMARY["summary"]
    finally:
        services.close_store()

    # the CLI: chapter accept with the same settings reaches the same outcome
    cli = tmp_path / "cli"
    cli.mkdir()
    monkeypatch.chdir(cli)
    for key in [k for k in __import__("os").environ if k.startswith("XIAOSHUO_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XIAOSHUO_PATHS__DATA_DIR", str(cli / "data"))
    monkeypatch.setenv("XIAOSHUO_WRITING__AUTO_SUMMARIZE", "true")
    settings = load(None)
    novel = _novel(settings)
    v = novel.add_version(2, "林远在客栈里等了一夜。" * 4, source="generated", kind="chapter")
    res = CliRunner().invoke(
        app,
        ["chapter", "accept", "--novel", "yuye", "2", "-v", str(v.id), "--backend", SUMMARIZING, "--json"],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["id"] == v.id and data["after_accept"]["ran"] == ["summary"]
    assert novel.plan(2).summary == SUMMARY["summary"] and novel.plan(2).summary_who == ["林远"]


def test_accept_without_auto_steps_loads_no_model(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    novel = _novel(settings)
    v = novel.add_version(2, "林远。", source="generated", kind="chapter")

    def no_engine():
        raise AssertionError("the engine was opened")

    done = run_sync(actions.accept(settings, novel, 2, v.id, open_engine=no_engine))
    assert done.after is None and novel.text(2) == "林远。"
