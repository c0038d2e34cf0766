"""Book health and the memory probe on generated probe novels (real Chroma in temp dirs, no model)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.eval.book import book_health, cross_repetition, degradation
from xiaoshuo.eval.flavour import load_flavour
from xiaoshuo.eval.memory import chapter_probe, memory_probe, spread
from xiaoshuo.eval.probe import build_probe
from xiaoshuo.memory import MemoryStore
from xiaoshuo.writing import Novels
from xiaoshuo.writing.compose import Composition
from xiaoshuo.writing.textstats import repetition_rate


def _settings(tmp_path: Path):
    values = {"paths.data_dir": str(tmp_path / "data"), "memory.embedding_model": "none"}
    return config.load(env={}, cwd=tmp_path, overrides=values)


# ----------------------------------------------------------------------------- book health
def test_cross_repetition_is_the_writing_cores_repetition_rate_over_earlier_chapters() -> None:
    rng = random.Random(3)
    alphabet = "天地玄黄宇宙洪荒日月盈昃"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(8)]
    texts[5] = texts[2]  # a chapter copied
    got = cross_repetition(texts, n=3)
    for i, text in enumerate(texts):
        assert got[i][0] == pytest.approx(repetition_rate(text, texts[:i], 3))
    assert got[5][1] == pytest.approx(1.0)  # every n-gram of the copy is in an earlier chapter
    assert cross_repetition(["甲乙丙丁", "戊己庚辛"], n=2) == [(0.0, 0.0), (0.0, 0.0)]


def test_degradation_is_last_quarter_minus_first_quarter() -> None:
    rows = [{"number": n, "ai_flavour": float(n), "style_drift": None} for n in range(1, 9)]
    d = degradation(rows, ("ai_flavour", "style_drift"))
    assert d["ai_flavour"]["first_quarter"] == 1.5 and d["ai_flavour"]["last_quarter"] == 7.5
    assert d["ai_flavour"]["change"] == 6.0 and d["ai_flavour"]["chapters"] == [1, 2, 7, 8]
    assert d["style_drift"]["change"] is None
    assert degradation(rows[:1]) == {}


def test_book_health_on_a_probe(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with MemoryStore(settings) as store:
        probe = build_probe(Novels.from_settings(settings), store, "book", chapters=12, characters=4,
                            events=6, chapter_chars=600)  # fmt: skip
        entries = store.list("book")
    novel = Novels.from_settings(settings).get("book")
    report = book_health(novel, entries=entries, flavour=load_flavour())
    rows = report["chapters"]
    assert report["schema_version"] == 1 and report["kind"] == "book"
    assert [r["number"] for r in rows] == list(range(1, 13))
    for r in rows:
        assert {"number", "chars", "length_score", "repetition_rate", "ai_flavour", "findings"} <= set(r)
        assert r["target_chars"] == 600 and r["length_score"] > 90  # the probe writes to its target
        assert 0.0 <= r["repetition_within"] <= r["repetition_rate"] <= 1.0
    assert rows[0]["style_drift"] < max(r["style_drift"] for r in rows[3:])  # chapter 1 is in the baseline
    # the dead character speaks two chapters after dying: a dead_acts finding there and nowhere before
    _, at = probe.dead
    assert rows[at + 1]["finding_rules"].get("dead_acts") == 1
    assert all("dead_acts" not in r["finding_rules"] for r in rows[: at + 1])
    assert rows[at + 1]["findings_per_10k"] == pytest.approx(
        10000 * rows[at + 1]["findings"] / rows[at + 1]["chars"], abs=1e-3
    )
    # AI味 lines grow from 5 % to 30 % of the lines: the last quarter is worse than the first
    assert report["degradation"]["ai_flavour"]["change"] > 0
    assert [t["name"] for t in report["threads_overdue"]] == ["半部剑谱"]  # payoff 6, 12 written
    assert report["book"]["chars"] == sum(r["chars"] for r in rows)
    without = book_health(novel, entries=None, flavour=load_flavour())
    assert without["chapters"][at + 1]["findings_per_10k"] is None and without["threads_overdue"] == []
    assert without["warnings"]


# ----------------------------------------------------------------------------- memory probe
def test_memory_probe_on_the_issue_shaped_probe_finds_an_injected_future_fact(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    lib = Novels.from_settings(settings)
    with MemoryStore(settings) as store:
        probe = build_probe(lib, store, "mem", chapters=60, characters=10, events=36)
        novel = lib.get("mem")
        report = memory_probe(novel, store, settings, len, chapters=list(range(1, 61)), budget=6000)
        assert report["schema_version"] == 1 and report["kind"] == "memory"
        assert report["cast_card_recall"] == 1.0
        assert report["future_leaks"] == 0
        assert report["latest_state_correctness"] == 1.0
        assert 0.0 <= report["past_event_recall"] <= 1.0
        # the expected events are exactly the probe's events before the chapter that involve its cast
        for row in report["chapters"]:
            n, cast = row["number"], set(probe.cast[row["number"]])
            expected = [e for e in probe.events if e.chapter < n and cast & set(e.characters)]
            assert row["past_events"] == len(expected)
            assert row["tokens"]["相关记忆"] > 0 and row["prompt_tokens"] <= 6000
        # a summary that knows the future: chapter 29's 前情提要 tells an event of a later chapter
        future = next(e for e in probe.events if e.chapter >= 40)
        novel.set_summary(29, f"{novel.plan(29).summary}{future.text}")
        leaked = memory_probe(novel, store, settings, len, chapters=[30], budget=6000)
    assert leaked["future_leaks"] == 1
    leak = leaked["chapters"][0]["future_leaks"][0]
    assert leak["id"] == future.id and leak["chapter"] == future.chapter and leak["where"] == "text:前情提要"


def test_a_future_entry_shown_by_id_is_a_leak(tmp_path: Path) -> None:
    from xiaoshuo.memory import make_entry

    past = make_entry(kind="plot", chapter=3, text="林远在落霞镇找到半块玉佩。", characters=["林远"])
    future = make_entry(kind="plot", chapter=9, text="林远在黑水崖失去了一臂。", characters=["林远"])
    card = make_entry(kind="character", name="林远", text="剑客")
    comp = Composition(
        messages=[{"role": "user", "content": "【相关记忆】\n" + past.render() + "\n" + future.render()}],
        user="",
        account=[{"section": "相关记忆", "source": "memory:plot", "id": past.id, "name": "", "tokens": 20,
                  "included": True, "reason": ""}],
        budget=100,
        tokens=40,
        memory=[{"id": past.id, "kind": "plot", "name": "", "chapter": 3},
                {"id": future.id, "kind": "plot", "name": "", "chapter": 9}],
    )  # fmt: skip
    row = chapter_probe(comp, 5, ["林远"], [card, past, future])
    assert row["past_event_recall"] == 1.0 and row["cast_card_recall"] == 0.0
    assert [(x["where"], x["id"]) for x in row["future_leaks"]] == [("memory", future.id)]


def test_spread_picks_evenly_and_keeps_the_ends() -> None:
    assert spread(list(range(1, 61)), 4) == [1, 21, 40, 60]
    assert spread([1, 2, 3], 12) == [1, 2, 3]


def test_cast_aware_memory_recalls_the_casts_past_within_the_default_budget(tmp_path: Path) -> None:
    """Issue 21 item 3: ≥ 0.8 of the cast's past events at the default budgets and, condensed,
    at a tight one; never an event dated later — not even a key event of this very cast injected at a later
    chapter, which the leak check reports once a summary lets it in."""
    from xiaoshuo.memory import make_entry, retrieve

    settings = _settings(tmp_path)
    lib = Novels.from_settings(settings)
    with MemoryStore(settings) as store:
        probe = build_probe(lib, store, "cast", chapters=60, characters=10, events=36)
        novel = lib.get("cast")
        a, b = probe.cast[30][:2]
        text = f"{a}与{b}在寒江渡烧掉了那封血书，从此反目。"
        future = make_entry(novel="cast", kind="plot", chapter=45, name="血书之事", importance=5, text=text,
                            characters=[a, b])  # fmt: skip
        store.add(future)
        report = memory_probe(novel, store, settings, len, chapters=list(range(1, 61)))  # default budgets
        assert report["budget"] == 8192 and report["memory_budget"] == 2048
        assert report["past_event_recall"] >= 0.8, report["past_event_recall"]
        assert report["cast_card_recall"] == 1.0 and report["latest_state_correctness"] == 1.0
        assert report["future_leaks"] == 0  # chapters 1-44 never show the chapter-45 event

        def found(chapter: int) -> set[str]:
            return {h.entry.id for h in retrieve(store, "cast", "", max_chapter=chapter, cast=[a]).hits}

        assert future.id in found(46) and future.id not in found(44)  # a candidate once it is past
        overrides = {"paths.data_dir": str(tmp_path / "data"), "memory.embedding_model": "none",
                     "memory.context_token_budget": 700}  # fmt: skip
        tight = config.load(env={}, cwd=tmp_path, overrides=overrides)
        small = memory_probe(novel, store, tight, len, chapters=[50, 55, 60])
        rows = small["chapters"]
        assert small["future_leaks"] == 0 and small["past_event_recall"] >= 0.8, small["past_event_recall"]
        assert all(r["tokens"]["相关记忆"] <= 700 for r in rows)
        whole = sum(r["past_events_shown"] - r["past_events_condensed"] for r in rows)
        assert 0 < whole < sum(r["past_events_shown"] for r in rows)  # the most recent whole, older condensed
        # a summary of chapter 29 that tells the future event: reported as a leak of chapter 30
        novel.set_summary(29, f"{novel.plan(29).summary}{text}")
        leaked = memory_probe(novel, store, settings, len, chapters=[30])
    leaks = leaked["chapters"][0]["future_leaks"]
    assert [(x["id"], x["where"]) for x in leaks] == [(future.id, "text:前情提要")]
