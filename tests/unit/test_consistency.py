"""Rule-based consistency findings on a hand-written 3-chapter example, threads, and the CLI over them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xiaoshuo.config import load
from xiaoshuo.memory import MemoryStore, make_entry
from xiaoshuo.writing import Novels
from xiaoshuo.writing.bookkeeping import Appearances
from xiaoshuo.writing.consistency import check_chapter, is_dead, run_check
from xiaoshuo.writing.threads import due_threads, thread_report

CHAPTERS = {
    1: "青云山上，林远随老刀学打铁。\n老刀说：“剑要先会打，才会用。”\n苏晚晴在山门外等林远。",
    2: "夜里山贼来袭，老刀为护林远，被一刀穿心，当场身亡。\n林远抱着老刀的尸体，一夜未眠。",
    3: (
        "三年后，林远在青云山练剑。\n"
        "老刀笑道：“小子，剑法长进了。”\n"
        "林远在洛阳城的酒楼里喝酒。\n"
        "* * *\n"
        "林远想起老刀的叮嘱，眼眶一热。\n"
        "苏晚晴推门进来。"
    ),
}


def settings_for(tmp_path: Path, **overrides):
    values = {"paths.data_dir": str(tmp_path / "data"), "memory.embedding_model": "none", **overrides}
    return load(None, overrides=values, env={})


def _memory() -> list:
    return [
        make_entry(novel="yuye", kind="character", name="林远", text="少年铁匠学徒"),
        make_entry(novel="yuye", kind="character", name="老刀", aliases=["刀叔"], text="青云山铁匠"),
        make_entry(
            novel="yuye",
            kind="character",
            name="老刀",
            text="青云山铁匠",
            state="被山贼杀害，已身亡",
            chapter=2,
        ),
        make_entry(novel="yuye", kind="character", name="苏晚晴", text="林远的师姐"),
        make_entry(novel="yuye", kind="setting", name="青云山", text="九座仙山之一"),
        make_entry(novel="yuye", kind="setting", name="洛阳城", aliases=["洛阳"], text="东都"),
        make_entry(
            novel="yuye",
            kind="plot",
            name="剑谱",
            text="老刀留下半部剑谱",
            chapter=2,
            thread="open",
            payoff_chapter=4,
        ),
        make_entry(novel="yuye", kind="plot", name="山贼", text="山贼的来历", chapter=2, thread="open"),
    ]


def test_dead_character_speaking_in_chapter_3_is_found_with_its_citations(tmp_path: Path):
    entries = _memory()
    appearances = Appearances(tmp_path)
    appearances.update({1: CHAPTERS[1], 2: CHAPTERS[2]}, entries)
    findings = check_chapter(CHAPTERS[3], 3, entries, appearances=appearances, gap=1)
    rules = [(f.rule, f.character) for f in findings]
    assert ("dead_acts", "老刀") in rules
    dead = next(f for f in findings if f.rule == "dead_acts")
    assert dead.severity == "warning" and CHAPTERS[3][dead.start : dead.end] == dead.quote
    assert "老刀笑道" in dead.quote
    assert (
        dead.entry["chapter"] == 2 and "身亡" in dead.entry["state"]
    )  # cites the memory entry it contradicts
    # one place per character per scene: 青云山 then 洛阳城 with no travel between
    two = next(f for f in findings if f.rule == "two_places")
    assert two.character == "林远" and "青云山" in two.quote and "洛阳城" in two.quote
    # 苏晚晴 was last seen in chapter 1: with gap 1 her return in chapter 3 is noted, 林远 (chapter 2) is not
    back = [f for f in findings if f.rule == "reappears"]
    assert [(f.character, f.severity) for f in back] == [("苏晚晴", "info")]
    assert "第1章" in back[0].message
    # in chapter 2 (the chapter he dies in) 老刀 is alive: nothing about him
    assert not [f for f in check_chapter(CHAPTERS[2], 2, entries) if f.character == "老刀"]


def test_rules_stay_quiet_when_nothing_is_wrong():
    entries = _memory()
    moved = "林远在青云山练剑。\n傍晚他下山，来到洛阳，林远在洛阳城住下。"
    assert check_chapter(moved, 3, entries) == []  # travelled between the two places
    remembered = "林远想起老刀，在坟前站了很久。"
    (finding,) = check_chapter(remembered, 3, entries)
    assert finding.rule == "dead_mentioned" and finding.severity == "info"
    assert is_dead("已身亡") and not is_dead("假死脱身") and not is_dead("死而复生，重回江湖")


def test_threads_due_near_a_chapter_and_the_report():
    entries = _memory()
    assert [e.name for e in due_threads(entries, 2, 3)] == ["剑谱"]  # payoff 4 within 3 chapters of 2
    assert due_threads(entries, 1, 3) == []  # planted in chapter 2: not known while writing chapter 1
    assert [e.name for e in due_threads(entries, 6, 1)] == ["剑谱"]  # overdue stays due
    rows = thread_report(entries, last_written=3)
    assert [(r["name"], r["status"], r["open_for"]) for r in rows] == [
        ("剑谱", "due", 1),
        ("山贼", "open", 1),
    ]
    closed = [
        e.model_copy(update={"thread": "closed", "chapter_end": 4}) if e.name == "剑谱" else e
        for e in entries
    ]
    assert [r["name"] for r in thread_report(closed, last_written=5)] == ["山贼"]
    assert [r["status"] for r in thread_report(closed, last_written=5, include_closed=True)] == [
        "closed",
        "open",
    ]


def test_check_and_threads_through_the_store(tmp_path: Path):
    settings = settings_for(tmp_path, **{"writing.reappear_gap": 1})
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    for n, text in CHAPTERS.items():
        novel.set_text(n, text)
    with MemoryStore(settings) as store:
        store.add(_memory())
        report = run_check(settings, novel, 3, store)
        with pytest.raises(Exception, match="no text"):
            run_check(settings, novel, 4, store)
    assert {f["rule"] for f in report["findings"]} >= {"dead_acts", "two_places", "reappears"}
    assert json.loads(json.dumps(report)) == report
    assert report["warnings"] == [] and report["dropped"] == []


def test_compose_reminds_of_threads_due_near_the_chapter(tmp_path: Path):
    from xiaoshuo.writing import compose

    settings = settings_for(tmp_path)
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    chapters = [{"title": f"第{i}回", "synopsis": "林远练剑", "summary": f"第{i}回提要"} for i in range(1, 9)]
    novel.import_outline({"volumes": [{"title": "卷一", "chapters": chapters}]})
    with MemoryStore(settings) as store:
        store.add(_memory())
        kw = {"settings": settings, "count_tokens": len, "store": store, "budget": 8192}
        c3 = compose(novel, chapter=3, request="写林远练剑", **kw)
        c1 = compose(novel, chapter=1, request="写林远练剑", **kw)
        c8 = compose(novel, chapter=8, request="写林远练剑", **{**kw, "budget": 8192})
    assert "【伏笔】\n- 剑谱：老刀留下半部剑谱（第2章埋下，计划第4章回收）" in c3.user
    assert c3.user.index("【前情提要】") < c3.user.index("【伏笔】") < c3.user.index("【相关记忆】")
    assert "山贼的来历（" not in c3.user.split("【伏笔】")[1].split("【")[0]  # no payoff chapter: not due
    rows = [r for r in c3.account if r["section"] == "伏笔"]
    assert [(r["name"], r["included"]) for r in rows] == [("剑谱", True)]
    assert "【伏笔】" not in c1.user  # planted in chapter 2
    assert "已逾期" in c8.user  # overdue threads stay in the reminder
