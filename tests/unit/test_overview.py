"""The book at a glance (issue 24): the graph as of a chapter, the timeline, the dashboard, `novel report`.

Graph data is checked on hand-built memory entries (what is dated after chapter N never shows at N); the
dashboard and timeline on hand-built novels; the report end to end on a generated probe novel with real
Chroma (embedding off) in temp folders.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from xiaoshuo import config
from xiaoshuo.memory import MemoryStore, make_entry
from xiaoshuo.writing import Novels
from xiaoshuo.writing import overview as ov
from xiaoshuo.writing import overview_figures as figs
from xiaoshuo.writing.exporting import BookError


def _settings(tmp_path: Path):
    values = {"paths.data_dir": str(tmp_path / "data"), "memory.embedding_model": "none"}
    return config.load(env={}, cwd=tmp_path, overrides=values)


def _char(name: str, chapter: int | None = None, **fields):
    return make_entry(novel="b", kind="character", name=name, text=fields.pop("text", f"{name}的卡片"),
                      chapter=chapter, **fields)  # fmt: skip


ENTRIES = [
    _char("林远", relationships={"阿青": "师妹"}, aliases=["远哥"]),
    _char("沈青", aliases=["阿青"]),
    _char("白露", 5, text="来自北地的刺客"),  # first recorded in chapter 5: unknown before
    _char("林远", 8, state="受了重伤"),
    _char("林远", 10, relationships={"白露": "仇人"}),
    _char("林远", 12, state="力战身亡"),
]
APPEARS = {n: {"characters": {"林远": 0, **({"白露": 3} if n >= 5 else {})}} for n in range(1, 13)}


def _node(graph, name: str) -> dict:
    return next(n for n in graph["nodes"] if n["id"] == name)


def _edges(graph) -> set[tuple[str, str, str]]:
    return {(e["source"], e["target"], e["label"]) for e in graph["edges"]}


def test_a_relation_recorded_in_chapter_10_is_absent_at_9_and_present_at_10() -> None:
    at9, at10 = ov.graph_at(ENTRIES, APPEARS, 9), ov.graph_at(ENTRIES, APPEARS, 10)
    assert _edges(at9) == {("林远", "沈青", "师妹")}  # the alias 阿青 resolves to 沈青
    assert _edges(at10) == {("林远", "沈青", "师妹"), ("林远", "白露", "仇人")}
    assert next(e for e in at10["edges"] if e["target"] == "白露")["since"] == 10


def test_characters_and_states_are_those_known_at_the_chapter() -> None:
    names = lambda g: {n["id"] for n in g["nodes"]}  # noqa: E731
    assert names(ov.graph_at(ENTRIES, APPEARS, 4)) == {"林远", "沈青"}  # 白露 first recorded in chapter 5
    assert names(ov.graph_at(ENTRIES, APPEARS, 5)) == {"林远", "沈青", "白露"}
    lin = {
        g: next(n for n in ov.graph_at(ENTRIES, APPEARS, g)["nodes"] if n["id"] == "林远")
        for g in (7, 11, 12)
    }
    assert lin[7]["state"] == "" and lin[7]["history"] == []
    assert lin[11]["state"] == "受了重伤" and lin[11]["state_kind"] == "alive"
    assert lin[12]["state"] == "力战身亡" and lin[12]["state_kind"] == "dead"
    assert [h["chapter"] for h in lin[12]["history"]] == [8, 12]
    assert lin[11]["appearances"] == 11 and lin[11]["chapters"][-1] == 11  # nothing counted after N
    assert lin[11]["aliases"] == ["远哥"]


def test_a_relation_to_someone_without_a_card_is_a_grey_node() -> None:
    g = ov.graph_at([_char("林远", relationships={"无名客": "旧识"})], {}, 1)
    ghost = next(n for n in g["nodes"] if n["id"] == "无名客")
    assert ghost["state_kind"] == "unknown" and _edges(g) == {("林远", "无名客", "旧识")}


def _v(chapter: int, day: int, chars: int, source: str = "generated", hour: int = 12):
    when = dt.datetime(2026, 11, day, hour).timestamp()
    return SimpleNamespace(chapter=chapter, time=when, chars=chars, source=source)


def test_words_per_day_count_growth_once_per_chapter() -> None:
    versions = [
        _v(1, 1, 3000), _v(1, 1, 3100, hour=13), _v(1, 1, 2900, hour=14),  # three candidates: the longest
        _v(1, 2, 2500, "edited"),  # shortened the next day: nothing written
        _v(1, 3, 3600, "edited"),  # grew past its best: +500
        _v(2, 3, 1000),
        _v(3, 3, 9000, "imported"),  # imported text is not today's writing
    ]  # fmt: skip
    assert ov.daily_chars(versions) == {"2026-11-01": 3100, "2026-11-03": 1500}
    days = {"2026-11-01": 10, "2026-11-02": 5, "2026-11-03": 7}
    assert ov.streak(days, dt.date(2026, 11, 3)) == 3
    assert ov.streak(days, dt.date(2026, 11, 4)) == 3  # today has not begun
    assert ov.streak(days, dt.date(2026, 11, 5)) == 0


def _book(tmp_path: Path):
    settings = _settings(tmp_path)
    novels = Novels.from_settings(settings)
    novel = novels.create("b", title="归途", chapter_chars=1000)
    outline = {
        "volumes": [
            {"title": "第一卷 雨夜", "chapters": [{"title": "雨"}, {"title": "夜", "target_chars": 500}]},
            {"title": "第二卷 归途", "chapters": [{"title": "归"}, {"title": "途"}]},
        ]
    }
    with novel.writer():
        novel.import_outline(outline)
        novel.set_text(1, "林远推门。" * 100)  # 500 字
        novel.set_text(2, "阿青笑了。" * 60)  # 300 字
        novel.update_plan(2, status="final")
    return settings, novel


def test_dashboard_and_timeline_numbers_on_a_hand_built_novel(tmp_path: Path) -> None:
    _, novel = _book(tmp_path)
    data = ov.book_overview(novel, ENTRIES[:2], stale=[3])
    d = data["dashboard"]
    assert [(r["number"], r["chars"], r["target_chars"], r["status"]) for r in d["chapters"]] == [
        (1, 500, 1000, "drafted"), (2, 300, 500, "final"), (3, 0, 1000, "stale"), (4, 0, 1000, "planned"),
    ]  # fmt: skip
    assert d["volumes"] == [
        {"title": "第一卷 雨夜", "chars": 800, "target_chars": 1500},
        {"title": "第二卷 归途", "chars": 0, "target_chars": 2000},
    ]
    assert (
        d["total_chars"] == 800
        and d["target_chars"] == 3500
        and d["progress"] == pytest.approx(800 / 3500, 1e-3)
    )
    assert d["status_counts"] == {"drafted": 1, "final": 1, "stale": 1, "planned": 1}
    assert sum(d["per_day"].values()) == 800 and d["streak"] == 1  # written today by set_text
    t = data["timeline"]
    assert t["volumes"] == [
        {"title": "第一卷 雨夜", "first": 1, "last": 2},
        {"title": "第二卷 归途", "first": 3, "last": 4},
    ]
    lanes = {r["name"]: r["chapters"] for r in t["lanes"]}
    assert lanes == {"林远": [1], "沈青": [2]}  # found through the alias 阿青; nothing saved on disk
    assert not (novel.root / "appearances.json").exists()
    assert data["chapter"] == 2 and data["last_written"] == 2


def test_threads_span_from_set_up_to_payoff_and_overdue_ones_are_marked(tmp_path: Path) -> None:
    plot = lambda **f: make_entry(novel="b", kind="plot", **f)  # noqa: E731
    entries = [
        plot(name="玉佩", text="玉佩的来历", chapter=1, thread="open", payoff_chapter=2),
        plot(name="密信", text="密信", chapter=1, thread="closed", chapter_end=2),
        plot(name="雨夜", text="林远回城", chapter=2, characters=["林远"]),
    ]
    _, novel = _book(tmp_path)
    t = ov.book_overview(novel, entries)["timeline"]
    by = {th["name"]: th for th in t["threads"]}
    assert by["玉佩"]["status"] == "overdue" and (by["玉佩"]["start"], by["玉佩"]["planned"]) == (1, 2)
    assert by["密信"]["status"] == "closed" and by["密信"]["closed_in"] == 2
    assert [e["name"] for e in t["events"]] == ["雨夜"]


def test_novel_report_writes_one_offline_html_and_json(tmp_path: Path, clean_env, monkeypatch) -> None:
    from xiaoshuo.cli import app
    from xiaoshuo.eval.probe import build_probe

    monkeypatch.chdir(tmp_path)
    settings = _settings(tmp_path)
    with MemoryStore(settings) as store:
        probe = build_probe(Novels.from_settings(settings), store, "probe", chapters=12, characters=5,
                            events=8, chapter_chars=300)  # fmt: skip
    args = ["--set", f"paths.data_dir={tmp_path / 'data'}", "--set", "memory.embedding_model=none"]
    runner = CliRunner()
    out = tmp_path / "总览.html"
    res = runner.invoke(
        app, [*args, "novel", "report", "probe", "--html", str(out), "--chapter", "6", "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["kind"] == "overview" and data["chapter"] == 6 and data["graph"]["chapter"] == 6
    assert {n["id"] for n in data["graph"]["nodes"]} <= set(probe.names)
    page = out.read_text("utf-8")
    assert "<script src=" not in page and "cdn.plot.ly" not in page.split("</script>", 1)[1]
    assert "Plotly" in page and probe.names[0] in page
    again = runner.invoke(app, [*args, "novel", "report", "probe", "--html", str(out)])
    assert isinstance(again.exception, BookError) and "--overwrite" in str(again.exception)  # never replaced
    res = runner.invoke(app, [*args, "novel", "report", "probe", "--html", str(out), "--overwrite"])
    assert res.exit_code == 0 and "人物关系" in res.stdout
    inside = tmp_path / "data" / "novels" / "probe" / "x.html"
    res = runner.invoke(app, [*args, "novel", "report", "probe", "--html", str(inside)])
    assert isinstance(res.exception, BookError) and not inside.exists()  # never inside the data folder


def test_figures_draw_the_views_and_the_slider_stops(tmp_path: Path) -> None:
    _, novel = _book(tmp_path)
    page, _ = ov.report_html(novel, ENTRIES)
    assert page.count("Plotly.newPlot") == 3
    pos = figs.layout_positions(ov.graph_at(ENTRIES, APPEARS, 12))
    frames = [ov.graph_at(ENTRIES, APPEARS, n) for n in (9, 10)]
    fig = figs.graph_figure(ov.graph_at(ENTRIES, APPEARS, 10), pos, frames=frames)
    assert [f.name for f in fig.frames] == ["9", "10"] and fig.layout.sliders[0].active == 1
    assert figs.slider_chapters(300, 123, most=40)[-1] == 300 and 123 in figs.slider_chapters(300, 123)
    assert figs.slider_chapters(5, 3) == [1, 2, 3, 4, 5]


def test_overview_of_a_300_chapter_novel_with_200_characters_is_fast(tmp_path: Path) -> None:
    """Issue 24's size: the data and the three figures of 300 chapters and 200 characters."""
    settings = _settings(tmp_path)
    novel = Novels.from_settings(settings).create("big", title="大书", chapter_chars=300)
    names = [f"角色{i:03d}" for i in range(200)]
    entries = [_char(n) for n in names] + [
        _char(names[i], 1 + i % 300, relationships={names[(i * 7) % 200]: "同门"}, state="受伤")
        for i in range(200)
    ]
    texts = ["".join(names[(n * k) % 200] + "走过长街。" for k in range(12)) for n in range(1, 301)]
    with novel.writer():
        novel.bulk_import([("卷一", [(f"章{n}", t, len(t)) for n, t in enumerate(texts, 1)])], note="test")
    started = time.perf_counter()
    _, data = ov.report_html(novel, entries, chapter=150)
    seconds = time.perf_counter() - started
    assert len(data["graph"]["nodes"]) == 200 and data["dashboard"]["total_chars"] > 0
    assert seconds < 15, seconds  # measured 2.7 s here with imports; the bound only catches a blow-up
