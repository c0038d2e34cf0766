"""xiaoshuo.writing without a model: 字 counting, novel projects and versions, locks, compose's budget.

Generation through real engines is in tests/integration/test_writing_*.py; here a scripted backend
(registered with ``register_backend`` like any backend) drives the segment loop and the repetition
guard, because a random model cannot be made to repeat itself on purpose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from xiaoshuo.config import load
from xiaoshuo.engine import load_engine, register_backend
from xiaoshuo.testing import ScriptedEngine
from xiaoshuo.writing import (
    Novel,
    NovelLockedError,
    Novels,
    Writer,
    WritingError,
    compose,
    count_chars,
    length_score,
    repetition_rate,
    run_sync,
)
from xiaoshuo.writing.textstats import trim_to_length

OUTLINE = {
    "volumes": [
        {
            "title": "第一卷 雨夜",
            "chapters": [
                {
                    "title": "夜雨",
                    "synopsis": "林远在雨夜遇到神秘剑客",
                    "characters": ["林远"],
                    "target_chars": 300,
                },
                {"title": "得剑", "synopsis": "林远得到古剑", "places": ["青云山"]},
            ],
        },
        {"title": "第二卷 江湖", "chapters": [{"title": "下山", "synopsis": "林远下山"}]},
    ]
}


def settings_for(tmp_path: Path, **overrides):
    return load(None, overrides={"paths.data_dir": str(tmp_path / "data"), **overrides}, env={})


@pytest.fixture
def lib(tmp_path: Path) -> Novels:
    return Novels.from_settings(settings_for(tmp_path))


# ----------------------------------------------------------------------------- 字数 and scores
def test_count_chars_counts_characters_not_bytes_or_whitespace():
    assert count_chars("林远 来了。\n　“好！”") == 9  # full-width space is whitespace too
    assert count_chars("abc 123") == 6


def test_length_score_matches_longbench_write():
    assert length_score(1000, 1000) == 100
    assert length_score(1000, 500) == pytest.approx(50.0)  # too short: 1 - (2 - 1)/2
    assert length_score(1000, 2500) == pytest.approx(50.0)  # too long: 1 - (2.5 - 1)/3
    assert length_score(1000, 200) == 0
    assert length_score(1000, 1100) == pytest.approx(100 * (1 - 0.1 / 3))


def test_trim_ends_on_a_sentence_inside_the_window():
    text = "一二三四五。六七八九十。" * 10  # 120 字, a sentence every 6
    cut, boundary = trim_to_length(text, 50, 70)
    assert boundary and cut.endswith("。") and 50 <= count_chars(cut) <= 70
    cut, boundary = trim_to_length("甲" * 100, 50, 70)
    assert not boundary and count_chars(cut) == 70


def test_repetition_rate():
    fresh = "山外青山楼外楼，西湖歌舞几时休。暖风熏得游人醉，直把杭州作汴州。"
    assert repetition_rate(fresh, "", 8) == 0.0
    assert repetition_rate(fresh, fresh, 8) == 1.0
    assert repetition_rate(fresh * 3, "", 8) > 0.6  # repeats inside the new text count too


# ----------------------------------------------------------------------------- projects
def test_create_list_show_and_reopen(lib: Novels, tmp_path: Path):
    lib.create("yuye", title="雨夜剑", genre="武侠", chapter_chars=800)
    with pytest.raises(WritingError, match="已存在"):
        lib.create("yuye", title="again")
    with pytest.raises(WritingError, match="slug"):
        lib.create("../escape", title="x")
    again = Novels.from_settings(settings_for(tmp_path))  # a new process would see the same
    assert [c.title for c in again.list()] == ["雨夜剑"]
    assert again.get("yuye").card().chapter_chars == 800
    with pytest.raises(WritingError, match="没有这本小说"):
        again.get("missing")


def test_outline_import_numbers_across_volumes_and_names_bad_paths(lib: Novels):
    novel = lib.create("yuye", title="雨夜剑")
    outline = novel.import_outline(OUTLINE)
    assert [c.number for c in outline.chapters()] == [1, 2, 3]
    assert novel.outline().volume_of(3).title == "第二卷 江湖"
    bad = json.loads(json.dumps(OUTLINE))
    del bad["volumes"][1]["chapters"][0]["title"]
    with pytest.raises(WritingError) as err:
        novel.import_outline(bad)
    assert "volumes[1].chapters[0].title" in str(err.value)
    bad = json.loads(json.dumps(OUTLINE))
    bad["volumes"][0]["chapters"][1]["target_chars"] = "很多"
    with pytest.raises(WritingError, match=r"volumes\[0\]\.chapters\[1\]\.target_chars"):
        novel.import_outline(bad)
    assert len(novel.outline().chapters()) == 3  # a rejected file changed nothing


def test_versions_accept_revert_diff(lib: Novels):
    novel = lib.create("yuye", title="雨夜剑")
    novel.import_outline(OUTLINE)
    v1 = novel.set_text(1, "雨夜。林远来了。")
    v2 = novel.add_version(1, "雨夜。林远走了。", source="generated", kind="chapter", seed=3)
    assert novel.text(1) == "雨夜。林远来了。"  # a candidate is not the text until accepted
    novel.accept(1, v2.id)
    assert novel.text(1) == "雨夜。林远走了。" and novel.plan(1).status == "drafted"
    ops = [op for op in novel.diff(1, v1.id, v2.id) if op["op"] != "equal"]
    assert ops == [{"op": "replace", "a": "来", "b": "走", "a_start": 5, "b_start": 5}]
    v3 = novel.revert(1, v1.id)
    assert v3.id == 3 and v3.kind == "revert" and novel.text(1) == "雨夜。林远来了。"
    assert [v.id for v in novel.versions(1)] == [1, 2, 3]
    with pytest.raises(WritingError, match="没有版本 9"):
        novel.accept(1, 9)


def test_outside_edit_becomes_a_version_and_is_never_overwritten(lib: Novels):
    novel = lib.create("yuye", title="雨夜剑")
    novel.import_outline(OUTLINE)
    novel.set_text(1, "原文。")
    novel.chapter_file(1).write_text("原文。作者在别的编辑器里加了一句。", "utf-8")
    candidate = novel.add_version(1, "机器写的。", source="generated", kind="chapter")
    edits = [v for v in novel.versions(1) if v.kind == "outside-edit"]
    assert len(edits) == 1 and edits[0].text == "原文。作者在别的编辑器里加了一句。"
    novel.accept(1, candidate.id)
    assert any(v.text.endswith("加了一句。") for v in novel.versions(1))


def test_a_crash_between_text_and_state_is_not_an_edit(lib: Novels):
    novel = lib.create("yuye", title="雨夜剑")
    novel.import_outline(OUTLINE)
    novel.set_text(1, "第一版。")
    v2 = novel.add_version(1, "第二版。", source="generated", kind="chapter")
    # simulate a crash after the text rename but before the state rename
    novel.chapter_file(1).write_text(v2.text, "utf-8")
    assert novel.sync(1) is None
    assert novel.current_version(1) == v2.id and len(novel.versions(1)) == 2


def test_chapters_beyond_the_outline(lib: Novels):
    novel = lib.create("free", title="自由写")
    novel.set_text(1, "第一章。")  # the next chapter after the last is created on demand
    assert novel.outline().chapter(1).title == "第1章"
    with pytest.raises(WritingError, match="大纲里没有第 5 章"):
        novel.set_text(5, "跳章。")


# ----------------------------------------------------------------------------- locks
def test_second_writer_in_process_is_refused(lib: Novels):
    novel = lib.create("yuye", title="雨夜剑")
    other = Novel(novel.root, "yuye")
    with novel.writer(what="test holder"):
        with pytest.raises(NovelLockedError) as err:
            other.set_text(1, "抢着写。")
        assert str(os.getpid()) in str(err.value) and "test holder" in str(err.value)
        novel.set_text(1, "持锁者写。")  # re-entrant for the holder
    other.set_text(1, "现在可以了。")
    assert other.text(1) == "现在可以了。"


def test_second_writer_process_gets_a_clear_error(lib: Novels, tmp_path: Path):
    novel = lib.create("yuye", title="雨夜剑")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from xiaoshuo.writing import Novel
                n = Novel(Path({str(novel.root)!r}), "yuye")
                with n.writer(what="write chapter 1"):
                    print("locked", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "locked" not in line:
            assert time.monotonic() < deadline, "the holder never took the lock"
            line = holder.stdout.readline()
            assert line or holder.poll() is None, "the holder died"
        with pytest.raises(NovelLockedError) as err:
            novel.set_text(1, "第二个进程。")
        assert f"pid {holder.pid}" in str(err.value) and "write chapter 1" in str(err.value)
        assert novel.text(1) == ""  # reads never wait and nothing was written
    finally:
        holder.kill()
        holder.wait(timeout=30)
    novel.set_text(1, "锁随进程释放。")  # flock dies with its process: no stale lock
    assert novel.text(1) == "锁随进程释放。"


# ----------------------------------------------------------------------------- compose
@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from xiaoshuo.testing import build_tiny_model

    return AutoTokenizer.from_pretrained(build_tiny_model(tmp_path_factory.mktemp("m") / "tiny"))


def _count(tok):
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("budget", [256, 512, 1024, 4096, 32768])
def test_compose_stays_within_budget(lib: Novels, tmp_path: Path, tokenizer, budget: int):
    settings = settings_for(tmp_path)
    novel = lib.create("yuye", title="雨夜剑", premise="少年林远雨夜得剑，" * 20)
    outline = json.loads(json.dumps(OUTLINE))
    chapters = outline["volumes"][0]["chapters"]
    for i in range(30):
        chapters.append({"title": f"第{i}回", "synopsis": "林远与师兄在山门前比剑，" * 5})
    novel.import_outline(outline)
    for n in range(1, 6):
        novel.set_summary(n, f"第{n}章里林远练剑，" * 10)
    text = "林远握紧剑柄，雨水顺着斗笠滴落。" * 400
    count = _count(tokenizer)
    comp = compose(
        novel, settings=settings, count_tokens=count, chapter=8, text=text, request="写比剑", budget=budget
    )
    assert comp.tokens <= budget
    assert count(comp.messages[0]["content"] + "\n\n") + count(comp.messages[1]["content"]) <= budget
    rows = {(r["section"], r["source"]): r for r in comp.account}
    assert rows[("写作要求", "request")]["included"]
    assert rows[("本章大纲", "outline:8")]["included"]
    assert "【写作要求】\n写比剑" in comp.user
    for r in comp.account:
        assert set(r) == {"section", "source", "id", "name", "tokens", "included", "reason"}
        assert r["reason"]
    if budget >= 4096:  # room for everything but the whole text: summaries, following chapters, card
        assert comp.summaries == [1, 2, 3, 4, 5]  # the five chapters before 8 that have summaries
        assert "【后续章节】" in comp.user and "【作品信息】" in comp.user
    else:  # small budgets cut the text from its start and say so
        tail = rows[("前文", "text")]
        assert not tail["included"] or "cut" in tail["reason"]
    # the order is stable-first: card, outline, …, text, request
    positions = [comp.user.find(h) for h in ("【作品信息】", "【本章大纲】", "【前文】", "【写作要求】")]
    present = [p for p in positions if p >= 0]
    assert present == sorted(present)


def test_compose_with_an_estimating_counter(lib: Novels, tmp_path: Path, tokenizer):
    from xiaoshuo.engine import estimate_tokens

    novel = lib.create("yuye", title="雨夜剑")
    novel.import_outline(OUTLINE)
    text = "林远握紧剑柄，雨水顺着斗笠滴落。" * 300
    comp = compose(
        novel,
        settings=settings_for(tmp_path),
        count_tokens=estimate_tokens,
        chapter=2,
        text=text,
        request="写",
        budget=600,
        token_count_exact=False,
        tokenizer_source="estimate",
    )
    assert comp.tokens <= 600 and not comp.token_count_exact
    assert estimate_tokens(comp.user) <= 600
    assert "cut from its start" in next(r for r in comp.account if r["section"] == "前文")["reason"]


def test_compose_refuses_a_request_that_cannot_fit(lib: Novels, tmp_path: Path, tokenizer):
    novel = lib.create("yuye", title="雨夜剑")
    with pytest.raises(WritingError, match="写作要求"):
        compose(
            novel,
            settings=settings_for(tmp_path),
            count_tokens=_count(tokenizer),
            request="长" * 5000,
            budget=256,
        )


# ----------------------------------------------------------------------------- scripted backend
FRESH = "".join(chr(0x4E00 + (i * 37) % 5000) + ("。" if i % 9 == 8 else "") for i in range(2000))


def test_repetition_guard_regenerates_a_repeating_segment(lib: Novels, tmp_path: Path):
    settings = settings_for(tmp_path, **{"writing.segment_chars": 400})
    novel = lib.create("yuye", title="雨夜剑", chapter_chars=300)
    novel.import_outline(OUTLINE)
    novel.set_text(1, FRESH[:600])
    looping = "林远说：我来了。" * 80  # repeats itself
    register_backend("scripted-test", lambda cfg, model, adapters: ScriptedEngine([looping, FRESH[700:]]))
    engine = load_engine(settings, backend="scripted-test")
    writer = Writer(settings, engine, novel, memory_on=False)
    result = run_sync(writer.write_chapter(2, target_chars=300, seed=5))
    cand = result.candidates[0]
    assert [r["segment"] for r in cand.retries] == [0] and cand.retries[0]["rate"] > 0.3
    assert engine.requests[1].sampling.repetition_penalty > engine.requests[0].sampling.repetition_penalty
    assert engine.requests[1].sampling.seed != engine.requests[0].sampling.seed
    assert cand.repetition_rate < 0.3 and "我来了" not in cand.new_text
    assert 270 <= cand.chars <= 330 and result.accepted == cand.version
    assert novel.version(2, cand.version).report["retries"] == cand.retries


def test_an_early_end_token_does_not_end_the_chapter(lib: Novels, tmp_path: Path):
    settings = settings_for(tmp_path)
    novel = lib.create("yuye", title="雨夜剑")
    novel.import_outline(OUTLINE)
    pieces = [FRESH[i : i + 90] + "。" for i in range(0, 1800, 90)]  # each segment stops at ~90 字
    engine = ScriptedEngine(pieces)
    result = run_sync(
        Writer(settings, engine, novel, memory_on=False).write_chapter(1, target_chars=500, seed=1)
    )
    cand = result.candidates[0]
    assert len(cand.segments) >= 5 and all(s["finish_reason"] == "stop" for s in cand.segments)
    assert 450 <= cand.chars <= 550 and cand.stopped == "length"
    assert length_score(500, cand.chars) >= 80


def test_memory_in_prompts_is_chapter_aware(tmp_path: Path, tokenizer):
    from xiaoshuo.memory import MemoryStore, make_entry

    settings = settings_for(tmp_path, **{"memory.embedding_model": "none"})
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    chapters = [{"title": f"第{i}回", "synopsis": "林远练剑", "characters": ["林远"]} for i in range(1, 10)]
    novel.import_outline({"volumes": [{"title": "卷一", "chapters": chapters}]})
    with MemoryStore(settings) as store:
        store.add(
            [
                make_entry(novel="yuye", kind="character", name="林远", text="青云山少年弟子", chapter=1),
                make_entry(novel="yuye", kind="character", name="林远", text="已是青云门掌门", chapter=7),
                make_entry(novel="yuye", kind="plot", name="夺位", text="林远剑成夺得掌门之位", chapter=7),
                make_entry(novel="yuye", kind="setting", name="青云山", text="终年云雾缭绕"),
            ]
        )
        kw = {"settings": settings, "count_tokens": _count(tokenizer), "store": store, "budget": 4096}
        c5 = compose(novel, chapter=5, request="写林远练剑", **kw)
        c8 = compose(novel, chapter=8, request="写林远练剑", **kw)
    assert "青云山少年弟子" in c5.user and "青云门掌门" not in c5.user and "夺得掌门之位" not in c5.user
    assert "已是青云门掌门" in c8.user and "夺得掌门之位" in c8.user
    assert "青云山少年弟子" not in c8.user  # the latest state at or before the chapter wins
    assert {m["chapter"] for m in c8.memory if m["kind"] == "plot"} == {7}
    rows = [r for r in c8.account if r["section"] == "相关记忆"]
    assert any(r["name"] == "夺位" and r["included"] for r in rows)
    assert c5.warnings == c8.warnings == []  # "none" is a choice, not a degraded store


def test_a_cancelled_write_stops_every_candidate(lib: Novels, tmp_path: Path):
    import asyncio

    settings = settings_for(tmp_path)
    novel = lib.create("yuye", title="雨夜剑")
    novel.import_outline(OUTLINE)
    engine = ScriptedEngine(default="林" * 3000, chunk=1, delay=0.02)  # a character every 20 ms
    writer = Writer(settings, engine, novel, memory_on=False)

    async def main() -> None:
        task = asyncio.ensure_future(writer.write_chapter(1, target_chars=3000, candidates=3, seed=1))
        deadline = time.monotonic() + 30
        while len(engine.requests) < 3:
            assert time.monotonic() < deadline, "the candidates never started"
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)  # checked while the loop still runs (asyncio.run would cancel leftovers)
        ids = {r.request_id for r in engine.requests}
        assert ids == engine.aborted and not engine.finished  # all three were aborted, none ran on

    asyncio.run(main())
    assert novel.versions(1) == [] and novel.text(1) == ""  # nothing half-written was saved


def test_rewrite_of_a_short_selection(lib: Novels, tmp_path: Path):
    settings = settings_for(tmp_path)
    novel = lib.create("yuye", title="雨夜剑")
    novel.import_outline(OUTLINE)
    novel.set_text(1, "雨夜。林远推门而入，满身寒气。掌柜抬头。")
    engine = ScriptedEngine([FRESH[:200]])
    result = run_sync(
        Writer(settings, engine, novel, memory_on=False).rewrite(
            1, start=3, end=15, instruction="更冷", seed=1
        )
    )
    text = novel.text(1)
    assert result.candidates[0].target == 12 and text.startswith("雨夜。") and text.endswith("掌柜抬头。")
    assert 10 <= count_chars(text) - count_chars("雨夜。掌柜抬头。") <= 14


@pytest.mark.parametrize("action", ["chapter", "continue"])
def test_progress_counts_the_new_text_as_it_will_be_kept(lib: Novels, tmp_path: Path, action: str):
    """Issue 26 item 8: a segment that ran past the target read 4421/3000 字 and the result was 2969;
    a 续写 counted the chapter's old text too.  The event's ``chars`` is the final count."""
    settings = settings_for(tmp_path)
    novel = lib.create("yuye", title="雨夜剑")
    novel.import_outline(OUTLINE)
    novel.set_text(1, FRESH[1000:1600])  # 续写 adds to these 600 字
    engine = ScriptedEngine([FRESH[:1500]])  # one long segment, cut by max_tokens, past the target
    events: list[dict] = []
    writer = Writer(settings, engine, novel, memory_on=False, on_progress=events.append)
    if action == "chapter":
        result = run_sync(writer.write_chapter(2, target_chars=300, seed=1))
    else:
        result = run_sync(writer.continue_chapter(1, chars=300, seed=1))
    cand = result.candidates[0]
    segments = [e for e in events if e["event"] == "segment"]
    assert segments and segments[-1]["target"] == 300
    assert segments[-1]["generated"] > 330  # the model wrote past the window …
    assert segments[-1]["chars"] == cand.chars == count_chars(cand.new_text) <= 330  # … and the count did not


def test_count_chars_skips_exactly_what_regex_whitespace_matches():
    import re
    import sys

    every = "".join(map(chr, range(0, sys.maxunicode + 1, 1)))
    assert count_chars(every) == len(re.sub(r"\s", "", every))
