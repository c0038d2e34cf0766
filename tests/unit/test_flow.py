"""Issue 22 items 3 and 4: edits that flow forward (inputs, stale marks, pending work, resync) and locks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xiaoshuo.config import load
from xiaoshuo.engine import register_backend
from xiaoshuo.memory import MemoryStore, make_entry
from xiaoshuo.testing import ScriptedEngine
from xiaoshuo.writing import Novels, WritingError, actions, flow, run_sync
from xiaoshuo.writing.generate import Writer
from xiaoshuo.writing.resync import resync
from xiaoshuo.writing.review import ReviewQueue

SRC = str(Path(__file__).resolve().parents[2] / "src")

# A scripted engine that fills the two forms resync asks for: a summary (the form with "who") and the
# extraction form; it records which chapter each request was about (the 【标记NNN】 in the chapter text).
ENGINE_SRC = '''
import json, re
from xiaoshuo.testing import ScriptedEngine

class FormsEngine(ScriptedEngine):
    backend = "flow-forms"

    def __init__(self, summary="林远在客栈等人。", delay=0.0):
        super().__init__(chunk=1 << 20, delay=delay)
        self.summary, self.asked = summary, []

    def respond(self, request):
        text = "".join(m["content"] for m in request.messages)
        marks = re.findall(r"【标记(\\d+)】", text)
        props = (request.json_schema or {}).get("properties", {})
        task = "summary" if "who" in props else "extract"
        self.asked.append((task, int(marks[0]) if marks else None))
        if task == "summary":
            return json.dumps({"summary": self.summary, "who": ["林远"], "where": ["客栈"], "when": ""},
                              ensure_ascii=False)
        event = {"title": "等人", "summary": "林远在客栈等人", "evidence": "林远在客栈里等"}
        return json.dumps({"characters": [], "events": [event], "settings": [], "dialogues": []},
                          ensure_ascii=False)
'''
_ns: dict = {}
exec(ENGINE_SRC, _ns)  # the same class runs in the kill -9 subprocess below
FormsEngine = _ns["FormsEngine"]


def settings_for(tmp_path: Path, **overrides):
    values = {"paths.data_dir": str(tmp_path / "data"), "memory.embedding_model": "none", **overrides}
    return load(None, overrides=values, env={})


def chapter_text(n: int, extra: str = "") -> str:
    return f"【标记{n:03d}】林远在客栈里等了一夜，雨没有停。{extra}" * 3


def book(settings, chapters: int = 8):
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    novel.import_outline({"volumes": [{"title": "一", "chapters": [{"title": f"第{i}章"} for i in
                                                                      range(1, chapters + 1)]}]})  # fmt: skip
    for n in range(1, chapters + 1):
        novel.set_text(n, chapter_text(n))
        novel.set_summary(n, f"第{n}章的摘要")
    return novel


def generated(novel, n: int, inputs: list[dict]) -> None:
    """Chapter ``n`` as a generation whose prompt used ``inputs``."""
    text = chapter_text(n, "新")
    novel.add_version(n, text, source="generated", kind="chapter", accept=True, inputs=inputs)


# ---------------------------------------------------------------------------------------------- inputs
def test_a_generated_chapter_records_what_its_prompt_used(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    novel = book(settings, 3)
    engine = ScriptedEngine(default="林远推开门，雨声更大了。" * 40)
    result = run_sync(Writer(settings, engine, novel, memory_on=False).write_chapter(3, target_chars=200))
    v = novel.version(3, result.candidates[0].version)
    keys = {i["key"]: i for i in v.inputs}
    assert keys["summary:1"]["hash"] == flow.summary_hash(novel.plan(1))
    assert keys["summary:2"]["chapter"] == 2
    ending = novel.text(2)[-keys["text:2"]["chars"] :]
    assert keys["text:2"]["hash"] == flow.short_hash(ending) and 0 < len(ending) <= len(novel.text(2))
    assert all("text" not in i for i in v.inputs)  # a fingerprint, never the text


# ---------------------------------------------------------------------------------------------- stale
def test_changing_chapter_5_marks_exactly_the_later_chapters_that_used_it(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    novel = book(settings)
    shen = make_entry(novel="yuye", kind="character", name="沈青岚", text="剑客", state="受伤", chapter=5)
    other = make_entry(novel="yuye", kind="character", name="赵铁山", text="掌柜", state="掌柜", chapter=2)
    generated(novel, 3, [flow.summary_input(novel.plan(2))])  # before 5: never stale
    generated(novel, 6, [flow.summary_input(novel.plan(5)), flow.text_input(5, novel.text(5)[-20:])])
    generated(novel, 7, [flow.memory_input(shen), flow.summary_input(novel.plan(4))])
    generated(novel, 8, [flow.memory_input(other), flow.text_input(7, novel.text(7))])  # nothing of 5
    assert flow.status(novel)["stale"] == []

    novel.set_text(5, chapter_text(5, "改"))

    stale = {row["chapter"]: row["reasons"] for row in flow.status(novel)["stale"]}
    assert sorted(stale) == [6, 7]
    assert stale[6] == ["第6章 用到了第5章的摘要，已改动", "第6章 用到了第5章的结尾，已改动"]
    assert stale[7] == ["第7章 用到了第5章的沈青岚的状态，已改动"]
    assert {p["chapter"] for p in flow.status(novel)["pending"]} >= {5}
    # a second edit does not repeat a reason; a new generation of chapter 6 clears its mark
    novel.set_text(5, chapter_text(5, "再改"))
    assert len({r["chapter"]: r for r in flow.status(novel)["stale"]}[6]["reasons"]) == 2
    generated(novel, 6, [flow.summary_input(novel.plan(5))])
    assert [r["chapter"] for r in flow.status(novel)["stale"]] == [7]


def test_only_a_change_of_the_ending_it_used_marks_the_next_chapter(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, **{"writing.flow_summarize": False, "writing.flow_extract": False})
    novel = book(settings, 6)
    generated(novel, 6, [flow.text_input(5, novel.text(5)[-20:])])  # 【上一章结尾】: the last 20 characters
    novel.set_text(5, "新的开头。" + novel.text(5))
    assert flow.status(novel)["stale"] == []
    novel.set_text(5, novel.text(5) + "结尾改了。")
    assert flow.status(novel)["stale"] == [{"chapter": 6, "reasons": ["第6章 用到了第5章的结尾，已改动"]}]


def test_a_new_summary_marks_the_chapters_that_used_the_old_one(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    novel = book(settings, 7)
    generated(novel, 6, [flow.summary_input(novel.plan(5))])
    generated(novel, 7, [flow.summary_input(novel.plan(4))])
    novel.set_summary(5, "第5章的摘要")  # the same summary: nothing changed
    assert flow.status(novel)["stale"] == []
    novel.set_summary(5, "林远离开了客栈。")  # `chapter summary --text`, `chapter summarize`, resync
    assert flow.status(novel)["stale"] == [{"chapter": 6, "reasons": ["第6章 用到了第5章的摘要，已改动"]}]


def test_an_edit_is_refreshed_at_once_when_a_model_is_at_hand(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, **{"writing.auto_summarize": True})
    novel = book(settings, 3)
    actions.save_edit(novel, 2, chapter_text(2, "改"))
    assert run_sync(actions.after_change(settings, novel, 2)) is None  # no model: stays pending
    assert {p["chapter"]: p["summary"] for p in flow.status(novel)["pending"]}[2]
    engine = FormsEngine(summary="林远改了主意。")
    done = run_sync(actions.after_change(settings, novel, 2, open_engine=lambda: (engine, None)))
    assert done.ran == ["summary"] and novel.plan(2).summary == "林远改了主意。"
    row = {p["chapter"]: p for p in flow.status(novel)["pending"]}[2]
    assert not row["summary"] and row["extract"]  # auto_extract is off: the extraction stays pending


def test_flow_stale_off_marks_nothing(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, **{"writing.flow_stale": False, "writing.flow_summarize": False})
    novel = book(settings, 6)
    generated(novel, 6, [flow.summary_input(novel.plan(5))])
    novel.set_text(5, chapter_text(5, "改"))
    report = flow.status(novel)
    assert report["stale"] == [] and all(not p["summary"] and p["extract"] for p in report["pending"])


def test_novel_status_json_shape(tmp_path: Path, monkeypatch) -> None:
    from xiaoshuo.cli import app

    settings = settings_for(tmp_path)
    novel = book(settings, 6)
    generated(novel, 6, [flow.summary_input(novel.plan(5))])
    novel.set_text(5, chapter_text(5, "改"))
    actions.lock(novel, 2)
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("XIAOSHUO_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XIAOSHUO_PATHS__DATA_DIR", str(tmp_path / "data"))
    res = CliRunner().invoke(app, ["novel", "status", "yuye", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) == {"novel", "stale", "pending", "locked"}
    assert data["stale"] == [{"chapter": 6, "reasons": ["第6章 用到了第5章的摘要，已改动"]}]
    assert data["locked"] == [2]
    row = next(p for p in data["pending"] if p["chapter"] == 5)
    assert set(row) == {"chapter", "summary", "extract", "since"} and row["summary"] and row["extract"]
    text = CliRunner().invoke(app, ["novel", "status", "yuye"]).stdout
    assert "第6章 过期" in text and "xiaoshuo novel resync yuye" in text


# ---------------------------------------------------------------------------------------------- resync
def test_resync_refreshes_in_order_and_clears_what_came_out_the_same(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, **{"writing.resync_batch": 2})
    novel = book(settings, 6)
    novel.update_plan(5, summary="林远在客栈等人。", summary_who=["林远"], summary_where=["客栈"])
    generated(novel, 6, [flow.summary_input(novel.plan(5))])
    engine = FormsEngine()
    with MemoryStore(settings) as store:
        first = run_sync(resync(settings, engine, novel, store))  # the chapters written above
        assert first.summarized == [1, 2, 3, 4, 5, 6] and first.batches == 3
        novel.set_text(5, chapter_text(5, "改"))  # the model will summarise it as before
        assert [r["chapter"] for r in flow.status(novel)["stale"]] == [6]
        engine.asked.clear()
        done = run_sync(resync(settings, engine, novel, store))
    assert done.summarized == [5] and done.extracted == [5] and sorted(engine.asked) == [
        ("extract", 5),
        ("summary", 5),
    ]
    assert done.cleared_stale == [6] and flow.status(novel)["stale"] == []
    assert flow.status(novel)["pending"] == []


def test_resync_keeps_a_changed_summary_stale(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, **{"writing.flow_extract": False})
    novel = book(settings, 7)
    generated(novel, 6, [flow.summary_input(novel.plan(5))])
    novel.set_text(5, chapter_text(5, "改"))
    generated(novel, 7, [flow.summary_input(novel.plan(5))])  # written before resync: the old summary
    assert [r["chapter"] for r in flow.status(novel)["stale"]] == [6]
    with MemoryStore(settings) as store:
        done = run_sync(resync(settings, FormsEngine(summary="完全不同的摘要。"), novel, store, start=5))
    assert done.summarized == [5, 6, 7] and novel.plan(5).summary == "完全不同的摘要。"
    stale = flow.status(novel)["stale"]
    assert stale == [{"chapter": c, "reasons": [f"第{c}章 用到了第5章的摘要，已改动"]} for c in (6, 7)]
    assert [p["chapter"] for p in flow.status(novel)["pending"]] == [1, 2, 3, 4]  # before --from 5


def test_resync_resumes_after_kill_9_without_duplicates(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, **{"writing.resync_batch": 2})
    novel = book(settings, 10)
    pending = lambda: [p["chapter"] for p in flow.status(novel)["pending"]]  # noqa: E731
    assert pending() == list(range(1, 11))
    script = tmp_path / "resync.py"
    script.write_text(
        ENGINE_SRC
        + f"""
from xiaoshuo.config import load
from xiaoshuo.memory import MemoryStore
from xiaoshuo.writing import Novels, flow, run_sync
from xiaoshuo.writing.resync import resync
settings = load(None, overrides={{"paths.data_dir": {str(tmp_path / "data")!r},
                                 "memory.embedding_model": "none", "writing.resync_batch": 2}}, env={{}})
novel = Novels.from_settings(settings).get("yuye")
with MemoryStore(settings) as store, novel.writer():
    run_sync(resync(settings, FormsEngine(delay=0.3), novel, store))
""",
        "utf-8",
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(pending()) > 6:  # at least two batches journalled
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "resync made no progress"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    left = pending()
    assert 0 < len(left) <= 6, "killed before the end"
    queue = ReviewQueue.of(novel)
    before = {p.chapter for p in queue.list("pending")}
    engine = FormsEngine()
    with MemoryStore(settings) as store:
        done = run_sync(resync(settings, engine, novel, store))
    asked = {n for _, n in engine.asked}
    assert asked <= set(left) and set(done.summarized) == {n for n in left}  # nothing done twice
    assert pending() == []
    keys = [p.key() for p in queue.list("pending")]
    assert len(keys) == len(set(keys)) and {p.chapter for p in queue.list("pending")} >= before
    assert all(novel.plan(n).summary == "林远在客栈等人。" for n in range(1, 11))


# ---------------------------------------------------------------------------------------------- locks
def test_a_locked_chapter_is_untouched_by_edits_writes_resync_and_batch_jobs(tmp_path: Path) -> None:
    from xiaoshuo.writing.importing import BookError, import_book
    from xiaoshuo.writing.planning import _next_numbers

    settings = settings_for(tmp_path)
    novel = book(settings, 4)
    novel.import_outline({"volumes": [{"title": "一", "chapters": [{"title": f"第{i}章"} for i in
                                                                      range(1, 7)]}]})  # fmt: skip
    before = novel.text(3)
    plan = actions.lock(novel, 3)
    assert plan.locked and actions.lock(novel, 5).locked  # 5: planned, not written
    with pytest.raises(WritingError, match="已锁定"):
        novel.set_text(3, "别的正文")
    with pytest.raises(WritingError, match="已锁定"):
        actions.save_edit(novel, 3, "别的正文")
    with pytest.raises(WritingError, match="已锁定"):
        novel.revert(3, 1)
    engine = ScriptedEngine(default="林远。" * 200)
    with pytest.raises(WritingError, match="已锁定"):
        run_sync(Writer(settings, engine, novel, memory_on=False).write_chapter(3, target_chars=100))
    assert engine.requests == []  # refused before generating
    # outline regeneration keeps the locked planned chapter 5; the next run starts at 6
    assert _next_numbers(novel.outline(), 5, 6, 10) == ([6], [5])
    # an outline import keeps the lock
    renamed = [{"title": f"新{i}"} for i in range(1, 7)]
    novel.import_outline({"volumes": [{"title": "一", "chapters": renamed}]})
    assert novel.plan(3).locked
    # resync skips it (its pending work stays), import --replace is refused
    with MemoryStore(settings) as store:
        done = run_sync(resync(settings, FormsEngine(), novel, store))
    assert done.skipped_locked == [3] and 3 not in done.summarized and novel.plan(3).summary == "第3章的摘要"
    assert [p["chapter"] for p in flow.status(novel)["pending"]] == [3]
    src = tmp_path / "book.txt"
    src.write_text("第一章 开端\n" + "林远。" * 100 + "\n第二章 再见\n" + "雨。" * 100, "utf-8")
    with pytest.raises(BookError, match="锁定"):
        import_book(Novels.from_settings(settings), src, slug="yuye", mode="replace", settings=settings)
    assert novel.text(3) == before
    actions.lock(novel, 3, False)
    novel.set_text(3, "解锁后可以改。")
    assert novel.text(3) == "解锁后可以改。"


def test_chapter_lock_cli_and_a_batch_write_skips_locked(tmp_path: Path, monkeypatch) -> None:
    from xiaoshuo.cli import app

    settings = settings_for(tmp_path)
    novel = book(settings, 3)
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("XIAOSHUO_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XIAOSHUO_PATHS__DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    res = runner.invoke(app, ["chapter", "lock", "2", "--novel", "yuye", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"number": 2, "title": "第2章", "locked": True}
    register_backend("flow-prose", lambda cfg, model, adapters: ScriptedEngine(default="雨。" * 300))
    before = novel.text(2)
    res = runner.invoke(
        app,
        ["write", "chapter", "1-3", "--novel", "yuye", "--backend", "flow-prose", "--no-memory",
         "--target-chars", "100", "--accept", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert [r["chapter"] for r in json.loads(res.stdout)] == [1, 3] and novel.text(2) == before
    assert "跳过第2章" in res.stderr
    res = runner.invoke(app, ["chapter", "unlock", "2", "--novel", "yuye"])
    assert res.exit_code == 0 and "已解锁" in res.stdout and not novel.plan(2).locked


def test_novel_resync_cli_json_and_nothing_pending_loads_no_model(tmp_path: Path, monkeypatch) -> None:
    from xiaoshuo.cli import app

    settings = settings_for(tmp_path)
    book(settings, 3)
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("XIAOSHUO_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XIAOSHUO_PATHS__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XIAOSHUO_MEMORY__EMBEDDING_MODEL", "none")
    register_backend("flow-forms", lambda cfg, model, adapters: FormsEngine())
    runner = CliRunner()
    res = runner.invoke(app, ["novel", "resync", "yuye", "--from", "2", "--backend", "flow-forms", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["summarized"] == [2, 3] and data["extracted"] == [2, 3] and data["failed"] == []
    res = runner.invoke(app, ["novel", "resync", "yuye", "--from", "2", "--backend", "no-such-backend"])
    assert res.exit_code == 0, res.output  # nothing pending from 2 on: no model is loaded
    assert "摘要 summarized 0 章" in res.stdout
