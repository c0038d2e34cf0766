"""The 创作 page's care panel without a browser: ``webui.pages.book.care_handlers`` over ``Services``.

Issue 22 item 5 (修订 with the planned edits, before → after and the diff; stale badges and reasons in the
outline; 同步 with progress; the lock toggle) and issue 21 item 6 (the 体检 panel's figures), on a
scripted engine: fresh prose of the asked length for a rewrite, the two forms resync fills.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from xiaoshuo import testing
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.pages.book import care_handlers as ch
from xiaoshuo.webui.pages.book import handlers as h
from xiaoshuo.writing import flow

PROSE = "".join(chr(0x4E00 + (i * 37) % 5000) + ("。" if i % 9 == 8 else "") for i in range(9000))
PARA = "城门口的老槐树下，卖糖人的老汉收起了担子，雨水顺着油布滴进泥地里，巷子深处传来更夫的梆子声。"
AI = "他眼中闪过一丝寒意，嘴角勾起一抹冷笑，深吸一口气。"
PLANTED = "林远推开客栈的门。" + PROSE[:120] + "\n" + PARA + "\n" + PROSE[200:300] + AI + "\n" + PARA + "\n"


class CareEngine(testing.ScriptedEngine):
    """A rewrite gets fresh prose of the length it asks for (约N字); a form (resync) gets filled."""

    def respond(self, request) -> str:
        props = (request.json_schema or {}).get("properties", {})
        if "who" in props:
            return json.dumps({"summary": "林远进了客栈。", "who": ["林远"], "where": ["客栈"], "when": ""})
        if props:
            return json.dumps({"characters": [], "events": [], "settings": [], "dialogues": []})
        m = re.findall(r"约(\d+)字", request.messages[-1]["content"])
        want = int(m[-1]) if m else 60
        start = 5000 + (len(self.requests) * 331) % 3000
        return PROSE[start : start + want + 3]


@pytest.fixture
def services(make_services):
    engine = CareEngine()
    s = make_services(testing.EngineHolderStub(engine), {"writing.segment_chars": 400})
    s.test_engine = engine
    return s


def _book(services, text: str = PLANTED, chapters: int = 1, slug: str = "yuye") -> str:
    h.create_novel(services, slug, "雨夜剑", chapter_chars=300)
    for i in range(chapters):
        h.add_chapter(services, slug, f"第{i + 1}回", "要点")
    novel = h.open_novel(services, slug)
    novel.update_plan(1, target_chars=len(text))  # on target: only the planted problems
    novel.set_text(1, text)
    return slug


def _last(agen, timeout: float = 120):
    async def run():
        return [u async for u in agen]

    return asyncio.run(asyncio.wait_for(run(), timeout))


# ----------------------------------------------------------------------------- 修订
def test_revise_plan_shows_the_planted_findings_in_words(services) -> None:
    slug = _book(services)
    line, rows = ch.on_plan(services, "zh", slug, 1)
    assert ch.headers("zh") == ["类型", "程度", "原文", "问题", "修改要求"]
    assert "计划修改" in line and "个问题" in line
    kinds = {r[0] for r in rows}
    assert {"重复", "AI味"} <= kinds
    assert any("眼中闪过一丝" in r[2] for r in rows) and all(r[4] for r in rows)  # quote, instruction
    assert all(len(r) == 5 and r[1] in ("⚠ 警告", "ℹ 提示") for r in rows)  # no ids, no offsets, no JSON
    assert not any(str(cell).startswith("{") for r in rows for cell in r)
    assert len(h.open_novel(services, slug).versions(1)) == 1  # the plan wrote nothing


def test_a_kept_revision_shows_before_after_and_refreshes_the_versions(services) -> None:
    slug = _book(services)
    before_versions = len(h.version_rows(services, slug, 1))
    out = _last(ch.on_revise(services, "zh", slug, 1, None, 2, False, None))
    first, final = out[0], out[-1]
    assert "计划修改" in first[0] and first[1]  # the plan (findings before) shows before the model runs
    msg, before, after, diff = final[:4]
    assert msg.startswith("✓ 已保留为新版本") and len(after) < len(before)
    assert {"重复", "AI味"} <= {r[0] for r in before}
    assert not {"重复", "AI味"} & {r[0] for r in after}
    assert "<ins" in diff and "<del" in diff  # the page's diff of the version before → the kept one
    view = final[4 : 4 + h.CHAPTER_FIELDS]
    versions = view[4]
    assert len(versions) == before_versions + 1 and versions[0][1] == "●"  # the kept one is current
    assert view[1].count(PARA) == 1 and "眼中闪过一丝" not in view[1]  # the editor holds the revision
    assert final[4 + h.CHAPTER_FIELDS][0][0] == 1  # the outline


def test_a_revision_that_is_not_better_is_not_kept(services) -> None:
    services.test_engine.respond = lambda request: AI * 12
    slug = _book(services)
    out = _last(ch.on_revise(services, "zh", slug, 1, PLANTED + "雨停了。", 1, False, None))
    assert out[-1][0].startswith("没有保留修改") and out[-1][3] == ""
    novel = h.open_novel(services, slug)  # the editor's text was saved first; no revision was kept
    assert len(novel.versions(1)) == 2 and novel.text(1) == PLANTED + "雨停了。"


# ----------------------------------------------------------------------------- 锁定本章
def test_the_lock_toggle_follows_the_chapter_and_refuses_an_edit(services) -> None:
    slug = _book(services, chapters=2)
    assert ch.on_chapter(services, "zh", slug, 1)[0] is False
    locked, msg, editor, outline = ch.on_lock(services, "zh", slug, 1, True)
    assert locked is True and "第1章已锁定" in msg and editor["interactive"] is False
    assert outline[0][3] == "草稿🔒" and outline[1][3] == "未写"
    assert ch.on_chapter(services, "zh", slug, 1)[0] is True
    assert ch.on_chapter(services, "zh", slug, 2)[0] is False
    with pytest.raises(XiaoshuoError, match="第 1 章已锁定，正文不能改动"):
        h.on_save(services, "zh", slug, 1, PLANTED + "再加一句。")
    with pytest.raises(XiaoshuoError, match="已锁定"):  # 修订 refuses it before any model runs
        ch.on_plan(services, "zh", slug, 1)
    assert ch.on_lock(services, "zh", slug, 1, False)[0] is False
    assert h.on_save(services, "zh", slug, 1, PLANTED + "再加一句。")[0].startswith("✓")


# ----------------------------------------------------------------------------- 待同步, 同步
def test_a_stale_badge_appears_for_a_later_chapter_after_an_earlier_edit(services) -> None:
    slug = _book(services, text=PROSE[:300], chapters=3)
    novel = h.open_novel(services, slug)
    for n in (2, 3):
        novel.set_text(n, PROSE[n * 400 : n * 400 + 300])
    novel.add_version(  # chapter 3 as a generation that used chapter 2's summary and ending
        3, PROSE[2000:2300], source="generated", kind="chapter", accept=True,
        inputs=[flow.summary_input(novel.plan(2)), flow.text_input(2, novel.text(2)[-20:])],
    )  # fmt: skip
    assert [r[3] for r in h.outline_rows(services, slug)] == ["草稿", "草稿", "草稿"]
    assert ch.stale_reasons(services, slug, 3) == ""

    h.on_save(services, "zh", slug, 2, novel.text(2) + "结尾改了。")  # the writer edits chapter 2

    assert [r[3] for r in h.outline_rows(services, slug)] == ["草稿", "草稿", "草稿⚠"]
    reasons = ch.on_chapter(services, "zh", slug, 3)[1]
    assert "第3章待同步" in reasons and "第3章 用到了第2章的结尾，已改动" in reasons
    assert ch.on_chapter(services, "zh", slug, 2)[1] == ""
    assert "1 章待同步" in ch.pending_line(services, slug)


def test_resync_refreshes_the_pending_work_with_progress(services) -> None:
    slug = _book(services, text=PROSE[:300], chapters=2)
    h.open_novel(services, slug).set_text(2, PROSE[500:800])
    assert "2 章摘要" in ch.pending_line(services, slug)
    steps: list[tuple[int, int]] = []

    def progress(value, desc=None):
        steps.append(value)

    out = asyncio.run(asyncio.wait_for(ch.on_resync(services, "zh", slug, 1, progress=progress), 120))
    assert out[0].startswith("✓ 同步完成：摘要 2 章")
    assert steps[0] == (0, 2) and steps[-1] == (2, 2)
    assert out[2] == "没有待同步的工作" and h.open_novel(services, slug).plan(1).summary == "林远进了客栈。"


# ----------------------------------------------------------------------------- 体检
def test_health_returns_the_book_figures_and_a_summary_line(services) -> None:
    import plotly.graph_objects as go

    slug = _book(services, chapters=3)
    novel = h.open_novel(services, slug)
    novel.set_text(2, PROSE[:500])
    line, lines, chars = ch.on_health(services, "zh", slug)
    assert line.startswith("全书 2 章") and "AI味" in line
    assert isinstance(lines, go.Figure) and isinstance(chars, go.Figure)
    assert [tr.name for tr in lines.data] == ["长度分", "重复率", "AI味（每千字）", "一致性问题（每万字）"]
    assert [tr.name for tr in chars.data] == ["字数", "目标"]
    ai = list(lines.data[2].y)
    assert ai[0] > 0 and ai[1] == 0  # AI味 only in chapter 1
    assert list(chars.data[0].x) == [1, 2] and list(chars.data[0].y)[1] == 500
    assert list(chars.data[1].y) == [len(PLANTED), 300]  # the targets
