"""The 创作 (book) page's handlers without a browser: ``webui.pages.book.handlers`` over ``Services``
(its API and its ``on_*`` page events, the ones ``layout.py`` wires).

Real files (novels, versions, the review queue) and real Chroma (embedding model "none"); the model is
a scripted ``Engine`` subclass so the streaming, the candidates, stop and the saved versions are exact.
The page itself runs on real vLLM in a browser in ``tests/e2e/test_webui_book_browser.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from pathlib import Path

import pytest

from xiaoshuo import testing
from xiaoshuo.config import load
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.testing import EngineHolderStub
from xiaoshuo.webui.locale import t
from xiaoshuo.webui.pages.book import handlers as h
from xiaoshuo.webui.services import Services

PROSE = "".join(chr(0x4E00 + (i * 37) % 5000) + ("。" if i % 9 == 8 else "") for i in range(4000))


class ProseEngine(testing.ScriptedEngine):
    """Distinct prose per request (7 characters per delta, ``delay`` s apart); 1 token per character."""

    def respond(self, request) -> str:
        start = ((len(self.requests) - 1) * 211) % 3000  # the request is already recorded
        return PROSE[start : start + request.sampling.max_tokens]


@pytest.fixture
def services(tmp_path: Path):
    settings = load(
        None,
        overrides={
            "paths.data_dir": str(tmp_path / "data"),
            "paths.checkpoints_dir": str(tmp_path / "checkpoints"),
            "memory.embedding_model": "none",
            "writing.segment_chars": 200,
        },
        env={},
    )
    s = Services(settings, engine=EngineHolderStub(ProseEngine()))
    yield s
    s.close_store()


def _collect(agen, timeout: float = 60):
    async def run():
        return [u async for u in agen]

    return asyncio.run(asyncio.wait_for(run(), timeout))


def _book(services, slug="yuye"):
    h.create_novel(services, slug, "雨夜剑", genre="武侠", chapter_chars=300)
    for title in ("夜雨", "客栈", "断崖"):
        h.add_chapter(services, slug, title, f"{title}的要点")
    return slug


# ----------------------------------------------------------------------------- novel and outline
def test_create_novel_and_edit_the_outline(services) -> None:
    assert h.create_novel(services, "", "雨夜剑") == "雨夜剑"  # the title is the slug when none given
    slug = _book(services, "yuye")
    assert ("《雨夜剑》 yuye", "yuye") in h.novel_choices(services)
    rows = h.outline_rows(services, slug)
    assert [r[:4] for r in rows] == [
        [1, "第一卷", "夜雨", "未写"],
        [2, "第一卷", "客栈", "未写"],
        [3, "第一卷", "断崖", "未写"],
    ]
    assert rows[0][5] == 300  # the card's chapter length is the target
    h.edit_chapter(services, slug, 2, "客栈夜话", "林远遇见赵掌柜")
    assert h.plan_fields(services, slug, 2) == ("客栈夜话", "林远遇见赵掌柜", None)
    assert h.move_chapter(services, slug, 3, -1) == 2
    assert [r[2] for r in h.outline_rows(services, slug)] == ["夜雨", "断崖", "客栈夜话"]
    assert h.plan_fields(services, slug, 3)[1] == "林远遇见赵掌柜"  # the synopsis moved with its title
    h.delete_chapter(services, slug, 2)
    assert [(r[0], r[2]) for r in h.outline_rows(services, slug)] == [(1, "夜雨"), (2, "客栈夜话")]
    with pytest.raises(XiaoshuoError, match="书名"):
        h.create_novel(services, "x", "  ")
    with pytest.raises(XiaoshuoError, match="已存在"):
        h.create_novel(services, "yuye", "又一本")


def test_written_chapters_cannot_be_moved_or_deleted(services) -> None:
    slug = _book(services)
    h.save_text(services, slug, 2, "林远推门而入。")
    with pytest.raises(XiaoshuoError, match="已写的章节"):
        h.delete_chapter(services, slug, 1)  # chapter 2 would be renumbered under its text
    with pytest.raises(XiaoshuoError, match="已写的章节"):
        h.move_chapter(services, slug, 2, 1)
    h.delete_chapter(services, slug, 3)  # the last planned one is fine
    assert [r[0] for r in h.outline_rows(services, slug)] == [1, 2]
    assert h.outline_rows(services, slug)[1][3] == "草稿" and h.outline_rows(services, slug)[1][4] == 7


# ----------------------------------------------------------------------------- editor, versions, diff
def test_autosave_versions_diff_and_revert(services) -> None:
    slug = _book(services)
    assert h.save_text(services, slug, 1, "") is None  # an untouched empty chapter stays unwritten
    v1 = h.save_text(services, slug, 1, "夜雨落在青石街上。")
    assert h.save_text(services, slug, 1, "夜雨落在青石街上。") is None  # unchanged: no new version
    v2 = h.save_text(services, slug, 1, "夜雨落在长街上，林远撑伞。")
    assert (v1, v2) == (1, 2)
    view = h.chapter_view(services, slug, 1)
    assert view.text == "夜雨落在长街上，林远撑伞。" and view.chars == "字数 13 / 目标 300"
    assert [r[0] for r in view.versions] == [2, 1] and view.versions[0][1] == "●"
    diff = h.diff_html(services, slug, 1, None, None)  # default: the previous version → current
    assert (
        "版本 1 → 2" in diff and "<del" in diff and "青石" in diff and "<ins" in diff and "林远撑伞" in diff
    )
    v3 = h.revert(services, slug, 1, 1)
    assert v3 == 3 and h.chapter_view(services, slug, 1).text == "夜雨落在青石街上。"
    h.save_summary(services, slug, 1, "林远在雨夜进城。")
    assert h.chapter_view(services, slug, 1).summary == "林远在雨夜进城。"


def test_the_diff_shows_the_changed_passages_with_a_little_context(services) -> None:
    """Issue 26 items 11 and 4: a one-sentence edit of a long chapter shows that passage with two lines
    around it and 「未改动的 N 字」 for the rest, not the whole chapter; 来源 is in words."""
    slug = _book(services)
    paragraphs = [f"第{i}段：" + "夜雨落在青石街上，林远撑伞走过。" * 3 for i in range(40)]
    h.save_text(services, slug, 1, "\n".join(paragraphs))
    edited = list(paragraphs)
    edited[20] = edited[20].replace("林远", "苏晚晴", 1)
    h.save_text(services, slug, 1, "\n".join(edited))
    diff = h.diff_html(services, slug, 1, None, None)
    assert "苏晚晴" in diff and "第19段" in diff and "第21段" in diff  # the change and a line either side
    assert "第10段" not in diff and "第30段" not in diff  # not the whole chapter
    assert diff.count("未改动的") == 2 and len(diff) < 2_000
    short = h.diff_html(services, slug, 1, 2, 2)  # no change: the text as it is
    assert "未改动" not in short
    sources = [r[2] for r in h.version_rows(services, slug, 1)]
    assert sources == ["作者", "作者"] and h.label("source", "generated") == "模型"


def test_selection_offsets_follow_the_browser(services) -> None:
    text = "𠀀林远拔剑"  # an astral character counts 2 in the browser's UTF-16 offsets
    assert h.selection(text, [2, 4]) == {"start": 1, "end": 3}
    assert text[1:3] == "林远"
    assert h.selection(text, [3, 3]) == {}  # a caret, not a selection
    assert h.selection(text, None) == {}


# ----------------------------------------------------------------------------- generation
def test_write_two_candidates_stream_then_accept_the_second(services) -> None:
    slug = _book(services)
    updates = _collect(h.write_stream(services, slug, 1, "chapter", candidates=2, target_chars=300, seed=7))
    final = updates[-1]
    assert final.done and all(final.versions[:2]) and final.versions[2] is None
    assert len(updates) >= 2 and "完成" in final.progress and "候选2" in final.progress
    assert final.texts[0] and final.texts[1] and final.texts[0] != final.texts[1]
    assert 270 <= len(final.texts[0].replace("。", "")) + final.texts[0].count("。") <= 330
    novel = h.open_novel(services, slug)
    assert novel.text(1) == ""  # two candidates: nothing accepted until the writer picks one
    assert [v.kind for v in novel.versions(1)] == ["chapter", "chapter"]
    session = final.session
    assert session["chapter"] == 1 and session["versions"][:2] == final.versions[:2]
    vid = h.accept_candidate(services, slug, session, 1, final.texts[1])
    assert vid == final.versions[1] and novel.text(1) == final.texts[1]
    assert h.outline_rows(services, slug)[0][3] == "草稿"


def test_continue_and_rewrite_the_selection(services) -> None:
    slug = _book(services)
    h.save_text(services, slug, 1, "夜雨落在青石街上。林远收起油纸伞，推开客栈的木门。")
    final = _collect(h.write_stream(services, slug, 1, "continue", chars=60, seed=1))[-1]
    text = h.open_novel(services, slug).text(1)
    assert final.session["accepted"] and text.startswith("夜雨落在青石街上。") and len(text) > 30
    sel = h.selection(text, [0, 9])  # 夜雨落在青石街上。
    final = _collect(h.write_stream(services, slug, 1, "expand", sel=sel, instruction="多写雨声"))[-1]
    after = h.open_novel(services, slug).text(1)
    assert after.endswith(text[9:]) and not after.startswith("夜雨落在青石街上。")
    assert "多写雨声" in services.engine.engine.requests[-1].messages[-1]["content"]
    with pytest.raises(XiaoshuoError, match="选中"):
        _collect(h.write_stream(services, slug, 1, "rewrite", sel={}))


def test_stop_cancels_the_run_and_a_shown_candidate_can_still_be_accepted(services) -> None:
    engine = ProseEngine(delay=0.01)
    services.engine = EngineHolderStub(engine)
    slug = _book(services)

    async def run():
        agen = h.write_stream(services, slug, 1, "chapter", candidates=2, target_chars=2000, interval=0.02)
        last = None
        async for u in agen:
            last = u
            if len(u.texts[0]) > 40:
                break  # the page's stop button: Gradio closes the generator
        await agen.aclose()
        return last

    last = asyncio.run(asyncio.wait_for(run(), 60))
    deadline = time.monotonic() + 10
    while engine.unfinished_requests():
        if time.monotonic() > deadline:
            pytest.fail("requests still running 10 s after stop")
        time.sleep(0.05)
    assert engine.aborted  # the engine was told to abort
    novel = h.open_novel(services, slug)
    assert novel.versions(1) == []  # stopped mid-chapter: nothing saved on its own
    vid = h.accept_candidate(services, slug, last.session, 0, last.texts[0])
    assert novel.text(1) == last.texts[0] and novel.version(1, vid).note == "stopped"


def test_two_pages_keep_their_own_candidates(services) -> None:
    a, b = _book(services, "a"), _book(services, "b")
    fa = _collect(h.write_stream(services, a, 2, "chapter", candidates=2, target_chars=200, seed=1))[-1]
    fb = _collect(h.write_stream(services, b, 1, "chapter", candidates=2, target_chars=200, seed=2))[-1]
    with pytest.raises(XiaoshuoError, match="没有可采用"):
        h.accept_candidate(services, b, fa.session, 0, fa.texts[0])  # page A's state on novel B
    h.accept_candidate(services, b, fb.session, 0, fb.texts[0])
    assert h.open_novel(services, a).text(2) == "" and h.open_novel(services, b).text(1) == fb.texts[0]


# ----------------------------------------------------------------------------- inspector
def test_inspector_shows_the_account_with_memory_by_name_and_chapter(services) -> None:
    from xiaoshuo.memory import make_entry

    slug = _book(services)
    h.edit_chapter(services, slug, 2, "客栈", "林远在客栈等人")
    services.store().add(
        [
            make_entry(novel=slug, kind="character", name="林远", text="青云山弟子", chapter=1),
            make_entry(novel=slug, kind="character", name="苏晚晴", text="来自江南", chapter=5),
        ]
    )
    report = h.inspect(services, slug, 2)
    sections = {r[0] for r in report["rows"]}
    assert {"写作要求", "本章大纲", "作品信息"} <= sections
    memory = [r for r in report["rows"] if r[0] == "相关记忆"]
    assert [(r[1], r[2], r[4]) for r in memory] == [("林远", 1, "✓")]  # 苏晚晴 appears only in chapter 5
    assert "提示词" in report["summary"] and "林远" in report["prompt"]


def test_inspector_rows_read_chinese_on_the_chinese_page(services) -> None:
    """Issue 26 item 4: the rows said ``system``, ``request``, ``outline:1``, ``always`` and the compose
    reasons in English; the page says them in its language (the CLI keeps the recorded English)."""
    import re

    slug = _book(services)
    h.save_text(services, slug, 2, "林远推门而入。" * 3)
    rows = h.inspect(services, slug, 2)["rows"]
    latin = [c for r in rows for c in (r[0], r[1], r[5]) if re.search(r"[A-Za-z]{2,}", str(c))]
    assert latin == [], rows
    by_section = {r[0]: r for r in rows}
    assert by_section["系统"][1] == "系统提示词" and by_section["系统"][5] == "总是放入"
    assert by_section["本章大纲"][1] == "第2章大纲" and by_section["前文"][1] == "已写 21 字"
    assert by_section["写作要求"][1] == "写作要求"
    assert h.progress_text({}, 2).startswith("生成中 · 候选1")  # it said 生成中 writing / 完成 done
    english = h.inspect(services, slug, 2, lang="en")["rows"]
    assert {r[5] for r in english} >= {"always", "the chapter being written"}
    # every recorded reason form has its words (the numbers carried over)
    assert h.inspector_reason("cut from its start: kept the last 221 of 2500 chars") == (
        "从开头截掉：保留最后 221 / 2500 字"
    )
    assert h.inspector_reason("over budget: needs 90 tokens, 19 left") == "超出预算：需要 90 token，剩 19"
    both = "检索命中（关键词+向量）；用剩余预算"
    assert h.inspector_reason("retrieved by bm25+dense; from spare budget") == both
    assert h.inspector_reason("cast event; from spare budget") == "本章人物的往事；用剩余预算"
    assert h.inspector_reason("condensed into history line: 林远") == "并入“林远”的往事一行"
    assert h.inspector_reason("over budget: needs 90 tokens, 19 of 400 left (人物 share 120)") == (
        "超出预算：需要 90 token，总预算 400 还剩 19（人物份额 120）"
    )


# ----------------------------------------------------------------------------- review queue, threads
def test_review_queue_approve_edit_reject_with_evidence(services) -> None:
    from xiaoshuo.writing.review import Evidence, Proposal, ReviewQueue, new_id

    slug = _book(services)
    text = "雨夜，林远走进客栈。掌柜赵铁山抬头看他。林远被黑衣人打成重伤。"
    h.save_text(services, slug, 1, text)
    queue = ReviewQueue.of(h.open_novel(services, slug))

    def proposal(kind, quote, **fields):
        start = text.index(quote)
        ev = Evidence(quote=quote, start=start, end=start + len(quote))
        return Proposal(id=new_id(), novel=slug, chapter=1, kind=kind, fields=fields, evidence=ev)

    p1 = proposal("character", "掌柜赵铁山", name="赵铁山", text="客栈掌柜")
    p2 = proposal("character", "林远走进客栈", name="林远", text="少年剑客")
    p3 = proposal("plot", "被黑衣人打成重伤", name="重伤", text="林远被黑衣人打成重伤")
    queue.add([p1, p2, p3])
    assert h.pending_count(services, slug) == 3
    rows = h.review_rows(services, slug)
    # a position, never the id (issue 26 item 5: no ids for a writer); a click finds the proposal again
    assert [r[0] for r in rows] == [1, 2, 3] and not any(p.id in str(r) for r in rows for p in (p1, p2, p3))
    picked = h.on_pick_proposal(services, "zh", slug, rows[0])
    assert picked[0] == p1.id and '<mark class="xs-evidence">掌柜赵铁山</mark>' in picked[-1]
    # the form: Chinese-labelled boxes for the kind's fields, prefilled; the other kinds' fields hidden
    form = dict(zip(h.REVIEW_FIELDS, picked[1:-1], strict=True))
    assert form["name"]["value"] == "赵铁山" and form["name"]["visible"] is True
    assert form["location"]["visible"] is False and form["chapter"]["value"] == ""
    values = [u["value"] for u in picked[1:-1]]
    # 通过 says what was approved, in words (issue 26 item 5: it said "✓ 已批准 243d67b80e → 1")
    out = h.on_approve(services, "zh", slug, p1.id, *values)  # unchanged fields: approved as proposed
    assert out[2] == "✓ 已批准：新人物 赵铁山" and p1.id not in out[2]
    # the queue changed (p1 is gone): the row that showed p2 at 2 still opens p2, by its content
    assert h.on_pick_proposal(services, "zh", slug, rows[1])[0] == p2.id
    edited = dict(zip(h.REVIEW_FIELDS, [""] * len(h.REVIEW_FIELDS), strict=True))
    edited |= h.proposal_form(services, slug, p2.id) | {"text": "青云弟子", "traits": "沉默、倔强"}
    h.on_approve(services, "zh", slug, p2.id, *edited.values())
    assert h.on_reject(services, "zh", slug, p3.id)[2] == "✓ 已拒绝：情节 重伤"
    assert h.pending_count(services, slug) == 0 and h.review_rows(services, slug) == []
    entries = {e.name: e for e in services.store().list(slug)}
    assert entries["赵铁山"].text == "客栈掌柜" and entries["林远"].text == "青云弟子"
    assert entries["林远"].traits == ["沉默", "倔强"] and entries["林远"].chapter in (None, 1)
    assert "重伤" not in entries
    with pytest.raises(XiaoshuoError, match="已经处理过"):
        h.reject(services, slug, p3.id)


def test_threads_and_consistency_rows(services) -> None:
    from xiaoshuo.memory import make_entry

    slug = _book(services)
    h.save_text(services, slug, 1, "林远拔剑。")
    h.save_text(services, slug, 2, "赵铁山说：“来了。”")
    services.store().add(
        [
            make_entry(
                novel=slug,
                kind="plot",
                name="古剑",
                text="古剑的来历",
                chapter=1,
                thread="open",
                payoff_chapter=2,
            ),
            make_entry(novel=slug, kind="character", name="赵铁山", text="掌柜", state="已死", chapter=1),
        ]
    )
    rows = h.thread_rows(services, slug)
    assert rows == [["古剑", "古剑的来历", 1, 2, "已逾期", 1]]
    findings = h.check_rows(services, slug, 2)
    assert findings and findings[0][0] == "⚠" and "赵铁山" in findings[0][2] + findings[0][5]


# ----------------------------------------------------------------------------- the page builds
def test_the_app_builds_with_the_book_tab(services) -> None:
    from xiaoshuo.webui.app import build_app

    demo = build_app(services)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"book-novel", "book-outline", "book-text", "book-write", "book-cand-2", "book-diff"} <= ids
    assert {"request", "story", "generate"} <= ids  # the 随手写 page is still there


def test_blur_and_save_click_at_once_make_one_version(services) -> None:
    """The editor saves on blur and on 保存; both arrive together when the button is clicked."""
    from xiaoshuo.writing import Novels

    slug = _book(services)
    h.save_text(services, slug, 1, "初稿。")
    results, errors = [], []

    def save() -> None:
        try:
            results.append(h.save_text(services, slug, 1, "初稿。作者加了一句。"))
        except Exception as exc:  # a lock error would reach the page as a red toast
            errors.append(exc)

    threads = [threading.Thread(target=save) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and sorted(results, key=str) == [2, None, None, None]
    novel = Novels.from_settings(services.settings).get(slug)
    assert [v.id for v in novel.versions(1)] == [1, 2] and novel.text(1) == "初稿。作者加了一句。"


# ----------------------------------------------------------------------------- 生成大纲 with a seed
class SeededForms(testing.ScriptedEngine):
    """Fills the outline form with titles drawn from ``random.Random(request seed)``: a seed that reaches
    the request repeats the outline, any other seed (or none) gives another."""

    backend = "scripted-seeded-forms"

    def __init__(self) -> None:
        super().__init__(chunk=1 << 20)

    def respond(self, request) -> str:
        rng = random.Random(request.sampling.seed)
        count = request.json_schema["properties"]["chapters"]["minItems"]
        chapters = [
            {
                "title": "".join(rng.choice("甲乙丙丁戊己庚辛壬癸") for _ in range(6)),
                "synopsis": "要点",
                "characters": [],
                "places": [],
            }
            for _ in range(count)
        ]
        return json.dumps({"volume": "第一卷", "chapters": chapters}, ensure_ascii=False)


def test_generate_outline_with_a_seed_gives_the_same_outline(tmp_path: Path) -> None:
    from xiaoshuo.writing.structured import DEFAULT_SAMPLING

    settings = load(
        None,
        overrides={
            "paths.data_dir": str(tmp_path / "data"),
            "memory.embedding_model": "none",
            "writing.outline_batch": 3,  # two batches for 5 chapters: each one seeded
        },
        env={},
    )
    engine = SeededForms()
    services = Services(settings, engine=EngineHolderStub(engine))
    try:
        titles = {}
        for slug, seed in (("a", 7), ("b", 7), ("c", 8), ("d", -1), ("e", None)):
            h.create_novel(services, slug, slug)
            sent = len(engine.requests)
            result = asyncio.run(h.generate_outline(services, slug, 5, seed=seed))
            assert result["generated"] == [1, 2, 3, 4, 5]
            titles[slug] = [r[2] for r in h.outline_rows(services, slug)]
            asked = engine.requests[sent:]
            assert len(asked) == 2
            # the planning defaults, only the seed set
            assert {r.sampling.temperature for r in asked} == {DEFAULT_SAMPLING.temperature}
            assert {r.sampling.repetition_penalty for r in asked} == {DEFAULT_SAMPLING.repetition_penalty}
            if seed is not None and seed >= 0:
                # batch 1 (chapters 1-3) gets the seed, batch 2 (from chapter 4) one derived from it
                assert [r.sampling.seed for r in asked] == [seed, (seed + 3 * 7919) % 2**31]
        assert titles["a"] == titles["b"] and len(titles["a"]) == 5
        assert titles["c"] != titles["a"]
        assert titles["d"] != titles["e"] and titles["a"] not in (titles["d"], titles["e"])  # -1: random
    finally:
        services.close_store()


def test_the_outline_seed_field_is_on_the_page(services) -> None:
    from xiaoshuo.webui.app import build_app

    demo = build_app(services)
    seeds = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "book-outline-seed"]
    # empty = a random seed (issue 26 item 11: a field meaning "default" shows empty, not -1 or 0)
    assert len(seeds) == 1 and seeds[0].value == ""
    assert "种子" in seeds[0].label and "留空" in seeds[0].label
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    assert by_id["book-seed"].value == "" and by_id["book-target"].value == ""


# ----------------------------------------------------------------------------- page events (on_*)
def test_a_novel_opens_at_the_chapter_this_browser_had_open(services) -> None:
    import gradio as gr

    slug = _book(services)
    other = _book(services, "other")
    out = h.on_show_novel(services, "zh", slug, {"novel": slug, "chapter": 2})
    assert len(out) == 3 + h.CHAPTER_FIELDS + 5 + len(h.CARD_FIELDS) + 4  # the layout's novel outputs
    assert out[0].startswith("**《雨夜剑》**") and [r[0] for r in out[1]] == [1, 2, 3] and out[2] == 2
    out, card, stopped = out[: 3 + h.CHAPTER_FIELDS + 5], out[-13:-4], out[-4:]
    assert out[3].startswith("### 第2章 客栈 · 未写") and out[3 + 5] == "客栈"  # header, plan title
    assert out[-1] == {"novel": slug, "chapter": 2} and out[-2]["value"] == t("none")  # no default adapter
    assert out[-4].label == "待审记忆"
    assert card[:3] == ["雨夜剑", "", "武侠"] and stopped[0]["visible"] is False  # nothing interrupted
    # a place saved in another novel, or a chapter no longer in the outline: the first chapter
    assert h.on_show_novel(services, "zh", slug, {"novel": other, "chapter": 3})[2] == 1
    assert h.opened_chapter(slug, [1, 2], {"novel": slug, "chapter": 3}) == 1
    assert h.opened_chapter(slug, [], {"novel": slug, "chapter": 3}) is None
    assert h.opened_chapter(slug, [1, 2], None) == 1
    blank = h.on_show_novel(services, "zh", None, {"novel": "gone"})[: 3 + h.CHAPTER_FIELDS + 5]
    assert blank[:3] == ["", [], None] and blank[-1] == {"novel": "gone"}
    assert all(v is gr.skip() or v == gr.skip() for v in blank[3 : 3 + h.CHAPTER_FIELDS])


def test_a_page_load_reopens_the_saved_novel_else_the_first(services) -> None:
    _book(services, "a")
    _book(services, "b")
    novel, adapter, new_adapter, _card_adapter = h.on_load(services, "en", {"novel": "b", "chapter": 2})
    assert novel["value"] == "b" and [c[1] for c in novel["choices"]] == ["a", "b"]
    assert adapter["choices"][0] == t("none", "en") == new_adapter["choices"][0]
    assert h.on_load(services, "zh", {"novel": "deleted"})[0]["value"] == "a"
    picked = h.on_pick_chapter(services, "zh", "a", 3.0, {"novel": "a", "chapter": 1})
    assert picked[0].startswith("### 第3章 断崖 · 未写") and picked[-1] == {"novel": "a", "chapter": 3}
    # the target box is empty when the plan has no target: the card's chapter length is its placeholder
    assert picked[-3]["value"] == "" and "300" in picked[-3]["placeholder"] and picked[-2] is False
    kept = h.on_pick_chapter(services, "zh", "a", None, {"novel": "a", "chapter": 1})
    assert kept[-1] == {"novel": "a", "chapter": 1} and kept[0] == ""


def test_outline_events_return_the_rows_and_the_chapter_to_show(services) -> None:
    made, acc = h.on_create(services, "zh", "雨夜剑", "yuye", "武侠", "", "", 300, t("none"), {})
    assert made["value"] == "yuye" and acc.open is False
    rows, number, msg = h.on_add_chapter(services, "zh", "yuye", "夜雨", "要点")
    assert [r[0] for r in rows] == [1] and number == 1 and "1" in msg
    h.on_add_chapter(services, "zh", "yuye", "客栈", "")
    rows, number, _ = h.on_move(services, "zh", -1, "yuye", 2)
    assert number == 1 and [r[2] for r in rows] == ["客栈", "夜雨"]
    renamed = h.on_rename(services, "zh", "yuye", 2, "夜雨二", "新要点")
    assert len(renamed) == 2 + h.CHAPTER_FIELDS and renamed[0][1][2] == "夜雨二" and renamed[-4] == "夜雨二"
    rows, number, _ = h.on_delete(services, "zh", "yuye", 2)
    assert [r[0] for r in rows] == [1] and number == 1  # the first chapter is shown after a delete
    rows, number, _ = h.on_delete(services, "zh", "yuye", 1)
    assert rows == [] and number is None


def test_editor_events_save_once_and_describe_the_selection(services) -> None:
    import gradio as gr

    slug = _book(services)
    msg, versions, outline, card = h.on_save(services, "zh", slug, 1, "夜雨落在青石街上。")
    assert "9 字" in card  # the header card's count follows the save
    assert msg.endswith(" 1") and versions[0][0] == 1 and outline[0][3] == "草稿"
    assert h.on_save(services, "zh", slug, 1, "夜雨落在青石街上。") == (gr.skip(),) * 4  # unchanged
    text = "𠀀林远拔剑" + "雨" * 40
    sel, line = h.on_select_text("zh", text, [2, 4])
    assert sel == {"start": 1, "end": 3} and "林远" in line
    sel, line = h.on_select_text("en", text, [2, 2 + 40])
    assert "…" in line and len(line) < 200  # a long selection is shown by its ends
    assert h.on_select_text("en", text, [3, 3]) == ({}, "(select text in the editor to rewrite it)")
    assert h.row_number([7, "x"]) == 7
    assert h.row_number(None) == gr.skip() and h.row_number(["a"]) == gr.skip()


def test_generate_event_streams_then_accept_and_refresh(services) -> None:
    slug = _book(services)
    stream = h.on_generate(services, "zh", "chapter", slug, 1, "", 2, 300, 500, 7, "", {}, True, t("none"))
    updates = _collect(stream)
    texts, progress, session = updates[-1][:3], updates[-1][3], updates[-1][4]
    assert texts[0] and texts[1] and texts[2] == "" and "完成" in progress and session["chapter"] == 1
    out = h.on_accept(services, "zh", 1, slug, session, texts[1])
    assert len(out) == h.CHAPTER_FIELDS + 3 and out[1] == texts[1] and out[-2].startswith("✓")
    # the header card's 字 count follows the accept (issue 26 item 8: it said 0 字 until a reload)
    assert (
        f"{h.count_chars(texts[1])} 字" in out[-1]
        and f"{h.count_chars(texts[1])} 字" in h.on_refresh(services, "zh", slug, 1)[-1]
    )
    assert out[h.CHAPTER_FIELDS][0][3] == "草稿"  # the outline row
    assert h.on_refresh(services, "zh", slug, 1)[1] == texts[1]
    assert len(h.on_refresh(services, "zh", slug, None)) == h.CHAPTER_FIELDS + 2
    # continue saves the editor's text first: what the writer sees is what the model continues
    stream = h.on_generate(
        services,
        "zh",
        "continue",
        slug,
        1,
        "改过的开头。" + PROSE[:300],
        1,
        300,
        40,
        1,
        "",
        {},
        True,
        t("none"),
    )
    updates = _collect(stream)
    assert h.open_novel(services, slug).text(1).startswith("改过的开头。")
    # 续写's progress counts the new text against the request (40), not the whole chapter (300+)
    import re

    counts = [tuple(map(int, m)) for m in re.findall(r"(\d+)/(\d+) 字", updates[-1][3])]
    assert counts and all(target == 40 and 0 < done <= 80 for done, target in counts), updates[-1][3]


def test_events_without_a_chapter_or_version_say_so(services) -> None:
    import gradio as gr

    slug = _book(services)
    with pytest.raises(gr.Error, match="版本"):
        h.on_revert(services, "zh", slug, 1, None)
    with pytest.raises(gr.Error):
        h.on_inspect(services, "zh", slug, None, True, None, None)
    with pytest.raises(gr.Error):
        h.on_check(services, "zh", None, 1)
    from xiaoshuo.webui.errors import guard  # the layout wires every event through guard()

    with pytest.raises(gr.Error):
        asyncio.run(guard(h.on_extract)(services, "zh", slug, None))
    with pytest.raises(gr.Error):
        h.on_import(services, "zh", None, "", "new")
    with pytest.raises(gr.Error):  # a typed error (no selection to rewrite) becomes gr.Error
        _collect(
            guard(h.on_generate)(
                services, "en", "rewrite", slug, 1, "abc", 1, None, None, -1, "", {}, True, None
            )
        )
    head, rows, prompt = h.on_inspect(services, "zh", slug, 2, True, 400, None)
    assert "提示词" in head and rows and "客栈" in prompt
    rows, title, msg, _threads = h.on_review_all(services, "zh", True, slug)
    assert (rows, title.label, msg) == ([], t("book_review"), "✓ 0")


def test_no_function_of_the_book_page_is_over_150_lines() -> None:
    """Issue 20: the page is sections of layout and plain handlers, not one 700-line function."""
    import ast

    from xiaoshuo.webui.pages.book import layout

    lengths = {}
    for module in (layout, h):
        tree = ast.parse(Path(module.__file__).read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lengths[f"{Path(module.__file__).name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert len(lengths) > 60 and "layout.py:build_book_tab" in lengths
    assert max(lengths.values()) <= 150, sorted(lengths.items(), key=lambda kv: -kv[1])[:3]


# ----------------------------------------------------------------------------- issue 26: the page side
class FailingForms(SeededForms):
    """The outline form, or (while ``fail``) an answer cut off inside a string, as a weak model gives."""

    backend = "scripted-failing-forms"
    fail = False

    def respond(self, request) -> str:
        return '{"volume": "第一卷", "chapters": [{"title": "甲乙' if self.fail else super().respond(request)


def test_an_interrupted_outline_offers_resume_and_restart_with_the_reason(tmp_path: Path) -> None:
    settings = load(
        None,
        overrides={
            "paths.data_dir": str(tmp_path / "data"),
            "memory.embedding_model": "none",
            "writing.outline_batch": 2,
        },
        env={},
    )
    engine = FailingForms()
    services = Services(settings, engine=EngineHolderStub(engine))
    try:
        h.create_novel(services, "yuye", "雨夜剑")
        assert h.outline_state(services, "zh", "yuye")[0]["visible"] is False
        asyncio.run(h.generate_outline(services, "yuye", 2))  # chapters 1-2, finished
        engine.fail = True
        with pytest.raises(XiaoshuoError):
            asyncio.run(h.generate_outline(services, "yuye", 6, seed=3))  # batch 3-4 fails
        # after the error (the layout's .then): the outline so far, the panel with the reason in Chinese
        rows, msg, _chapter, panel, reason, start, count = h.on_outline_after(services, "zh", "yuye")
        assert [r[0] for r in rows] == [1, 2] and panel["visible"] is True
        assert "中断" in reason and "第 3 章" in reason and (start, count) == (3, 6)
        # the same panel when the novel is opened again (a reload)
        opened = h.on_show_novel(services, "zh", "yuye", None)
        assert opened[-4]["visible"] is True and opened[-3] == reason
        engine.fail = False
        rows, msg, first = asyncio.run(h.on_resume_outline(services, "zh", "yuye", -1, progress=None))
        assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6] and first == 3 and msg.startswith("✓ 4")
        assert h.on_outline_after(services, "zh", "yuye")[3]["visible"] is False  # no stale panel
        with pytest.raises(XiaoshuoError, match="没有中断"):
            asyncio.run(h.resume_outline(services, "yuye"))
        before = [r[2] for r in h.outline_rows(services, "yuye")]
        # 重新开始 from chapter 5 (从第几章), up to 6: chapters 1-4 kept
        rows, msg, first = asyncio.run(h.on_restart_outline(services, "zh", "yuye", 6, 5, 11, progress=None))
        assert first == 5 and [r[2] for r in rows][:4] == before[:4] and len(rows) == 6
    finally:
        services.close_store()


def test_final_toggle_and_the_status_in_chinese(services) -> None:
    from xiaoshuo.writing import actions

    slug = _book(services)
    with pytest.raises(XiaoshuoError, match="没有正文"):
        h.on_mark_final(services, "zh", slug, 1, True)  # no text yet: refused, the toggle reset
    assert h.on_final_state(services, "zh", slug, 1) is False
    h.save_text(services, slug, 1, "夜雨落在青石街上。")
    final, header, rows, msg = h.on_mark_final(services, "zh", slug, 1, True)
    assert final is True and "定稿" in header and "定稿" in msg
    assert [r[3] for r in rows] == [actions.STATUS_LABELS[s] for s in ("final", "planned", "planned")]
    assert h.chapter_outputs(services, "zh", slug, 1)[-1] is True  # the toggle when the chapter opens
    final, header, rows, msg = h.on_mark_final(services, "zh", slug, 1, False)
    assert final is False and rows[0][3] == "草稿" and "草稿" in msg


def test_every_card_field_is_editable_and_new_novels_get_author_and_pov(services) -> None:
    from xiaoshuo.writing import actions

    _made, _ = h.on_create(
        services, "zh", "雨夜剑", "yuye", "武侠", "", "", 300, t("none"), {}, "林远", "第三人称"
    )
    card = h.open_novel(services, "yuye").card()
    assert (card.author, card.pov) == ("林远", "第三人称")
    assert list(actions.CARD_FIELDS) == h.CARD_FIELDS
    values = dict(zip(h.CARD_FIELDS, h.card_values(services, "yuye"), strict=True))
    assert values["author"] == "林远" and values["adapter"] == t("none") and values["variant"] == "简"
    values.update(
        title="雨夜归途", author="", premise="一场雨", chapter_chars=2500, variant="繁", pov="第一人称"
    )
    line, _msg, *form, picker = h.on_save_card(services, "zh", "yuye", *[values[k] for k in h.CARD_FIELDS])
    card = h.open_novel(services, "yuye").card()
    assert (card.title, card.author, card.premise, card.chapter_chars, card.variant, card.pov) == (
        "雨夜归途",
        "",
        "一场雨",
        2500,
        "繁",
        "第一人称",
    )
    assert "《雨夜归途》" in line and "2500" in line and form[0] == "雨夜归途" and picker["value"] == "yuye"
    values["chapter_chars"] = 10
    with pytest.raises(XiaoshuoError, match="每章目标字数"):
        h.on_save_card(services, "zh", "yuye", *[values[k] for k in h.CARD_FIELDS])


def test_new_components_are_on_the_page(services) -> None:
    from xiaoshuo.webui.app import build_app

    ids = {getattr(b, "elem_id", None) for b in build_app(services).blocks.values()}
    wanted = {"book-outline-resume", "book-outline-restart", "book-final", "book-new-author", "book-new-pov"}
    assert wanted | {f"book-card-{k}" for k in h.CARD_FIELDS} | {"book-card-save"} <= ids


def test_the_import_report_is_a_summary_line_and_a_chapter_table(services, tmp_path: Path) -> None:
    book = tmp_path / "雨夜.txt"
    body = "夜雨落在青石街上。" * 30
    book.write_text(
        f"《雨夜》\n作者：林远\n\n第十一章 末班车\n{body}\n\n第十二章 客栈\n{body}\n", encoding="gb18030"
    )
    summary, rows, picker = h.on_import(services, "zh", str(book), "yuye", "new")
    assert picker["value"] == "yuye" and "{" not in summary  # words, not a JSON tree
    assert summary.startswith("✓ 《雨夜》：导入 2 章") and "gb" in summary.lower() and "作者 林远" in summary
    assert "原第 11 章" in summary  # the re-based numbering is said
    assert rows == [[1, rows[0][1], "第十一章 末班车", 270], [2, rows[1][1], "第十二章 客栈", 270]]
    assert h.headers("import") == ["章", "卷", "标题", "字数"]
    # the imported heading is not doubled on the page (第1章 第十一章 末班车)
    assert h.chapter_view(services, "yuye", 1).header.startswith("### 第十一章 末班车 · 定稿")


def test_candidate_boxes_follow_the_candidate_count_and_long_volumes_are_cut(services) -> None:
    """Issue 26 item 11: as many candidate boxes as 候选数 (both pages), and a long 卷 name does not push
    标题/状态/字数 out of the outline table."""
    from xiaoshuo.webui.app import build_app
    from xiaoshuo.webui.runtime import candidate_columns

    assert [u["visible"] for u in candidate_columns(2)] == [True, True, False]
    assert [u["visible"] for u in candidate_columns(None)] == [True, False, False]
    demo = build_app(services)
    columns = [b for b in demo.blocks.values() if type(b).__name__ == "Column" and b.visible is False]
    assert len(columns) >= 2 * (h.MAX_CANDIDATES - 1)  # 创作 and 随手写: all but one hidden
    outline = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "book-outline")
    assert outline.column_widths and len(outline.column_widths) == len(h.headers("outline"))
    slug = _book(services)
    novel = h.open_novel(services, slug)
    outline_ = novel.outline()
    outline_.volumes[0].title = "第一卷：风雨欲来满楼时的江湖旧事"
    novel.save_outline(outline_)
    row = h.outline_rows(services, slug)[0]
    assert row[1] == "第一卷：风雨欲…" and row[2:4] == ["夜雨", "未写"]


def test_fields_meaning_the_default_are_empty_textboxes_not_zero(services) -> None:
    """Issue 26 item 11: a gr.Number shows (and sends) 0 for "empty", so seed 0 was a fixed seed and the
    outline restarted "from chapter 0"; these fields are Textboxes, empty = the default."""
    from xiaoshuo.webui.app import build_app
    from xiaoshuo.webui.pages.scratch.handlers import sampling

    demo = build_app(services)
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    for elem in ("book-seed", "book-target", "book-outline-from", "book-outline-seed", "book-diff-a", "seed"):
        assert type(by_id[elem]).__name__ == "Textbox" and by_id[elem].value == "", elem
    assert h.optional_int("") is None and h.optional_int(" 12 ") == 12 and h._seed("-1") is None
    with pytest.raises(XiaoshuoError, match="整数"):
        h.optional_int("十二")
    assert sampling(0.7, 0.9, 40, 30, 1.1, "", 1).seed is None
    slug = _book(services)
    target = h.chapter_outputs(services, "zh", slug, 1)[7]
    assert target["value"] == "" and "300" in target["placeholder"]  # the novel's 每章目标, as a hint
