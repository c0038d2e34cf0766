"""The 创作 page's care panel in Chromium (issue 22 item 5): an edit of an earlier chapter puts the stale
badge (草稿⚠, 待同步) on a later one with its reason; 修订 shows the findings before → after and the diff and
the editor holds the revision; 锁定本章 makes the editor read-only; 体检 draws its charts.

A scripted engine (fresh prose of the asked length), so this checks the page, fast; the use cases are
tested in ``tests/unit/test_revise.py`` / ``test_flow.py`` and the handlers in
``tests/unit/webui/test_book_care.py``.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from test_webui_zh_browser import _page, _pick_row, _settled, _wait, _wait_text, browser, step  # noqa: F401

from xiaoshuo.testing import EngineHolderStub, ScriptedEngine, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PROSE = "".join(chr(0x4E00 + (i * 37) % 5000) + ("。" if i % 9 == 8 else "") for i in range(9000))
PARA = "城门口的老槐树下，卖糖人的老汉收起了担子，雨水顺着油布滴进泥地里，巷子深处传来更夫的梆子声。"
AI = "他眼中闪过一丝寒意，嘴角勾起一抹冷笑，深吸一口气。"
PLANTED = "林远推开客栈的门。" + PROSE[:120] + "\n" + PARA + "\n" + PROSE[200:300] + AI + "\n" + PARA + "\n"


class ProseEngine(ScriptedEngine):
    backend = "scripted"

    def respond(self, request) -> str:
        m = re.findall(r"约(\d+)字", request.messages[-1]["content"])
        want = int(m[-1]) if m else 60
        start = 5000 + (len(self.requests) * 331) % 3000
        return PROSE[start : start + want + 3]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from xiaoshuo.config import load
    from xiaoshuo.webui.app import build_app, gradio_i18n
    from xiaoshuo.webui.pages.book import handlers as h
    from xiaoshuo.webui.services import Services
    from xiaoshuo.writing import flow

    work = tmp_path_factory.mktemp("webui-care")
    port = free_port()
    overrides = {
        "paths.data_dir": str(work / "data"),
        "paths.checkpoints_dir": str(work / "checkpoints"),
        "paths.logs_dir": str(work / "logs"),
        "paths.models_dir": str(work / "models"),
        "memory.embedding_model": "none",
        "webui.language": "zh",
        "writing.segment_chars": 400,
    }
    services = Services(load(None, overrides=overrides, env={}), engine=EngineHolderStub(ProseEngine()))
    h.create_novel(services, "yuye", "雨夜剑", chapter_chars=300)
    for title in ("夜雨", "客栈", "断崖"):
        h.add_chapter(services, "yuye", title, f"{title}的要点")
    novel = h.open_novel(services, "yuye")
    novel.update_plan(1, target_chars=len(PLANTED))
    novel.set_text(1, PLANTED)
    novel.set_text(2, PROSE[800:1100])
    novel.add_version(  # chapter 3 as a generation that used chapter 2's ending
        3, PROSE[2000:2300], source="generated", kind="chapter", accept=True,
        inputs=[flow.text_input(2, novel.text(2)[-20:])],
    )  # fmt: skip
    demo = build_app(services)
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, ssr_mode=False,
                quiet=True, show_error=True, i18n=gradio_i18n())  # fmt: skip
    shots = Path(tempfile.mkdtemp(prefix="xiaoshuo-care-shots-"))
    print(f"\nscreenshots: {shots}")
    yield {"url": f"http://127.0.0.1:{port}/", "services": services, "shots": shots}
    demo.close()
    services.close()


def _text(page) -> str:
    return page.locator("#book-text textarea").first.input_value()


def test_stale_badge_after_an_edit_and_revise_shows_before_after(browser, app) -> None:  # noqa: F811
    page = _page(browser, app, 1500, 1100)
    try:
        with step(page, app, "1-stale-badge"):
            _settled(page)
            _wait_text(page, "book-outline", "断崖")
            _pick_row(page, "book-outline", "2")
            _wait(
                page,
                "(s) => document.querySelector('#book-text textarea')?.value.endsWith(s)",
                PROSE[1090:1100],
            )
            box = page.locator("#book-text textarea").first
            box.fill(_text(page) + "结尾改了。")
            box.blur()  # 保存 on leaving the editor
            _wait_text(page, "book-outline", "草稿⚠")
            _pick_row(page, "book-outline", "3")
            _wait_text(page, "book-stale", "第3章 用到了第2章的结尾，已改动")
        with step(page, app, "2-revise"):
            _pick_row(page, "book-outline", "1")
            _wait(
                page, "(s) => document.querySelector('#book-text textarea')?.value.startsWith(s)", "林远推开"
            )
            page.locator("#book-revise-acc").locator("button").first.click()
            page.click("#book-revise-plan")
            _wait_text(page, "book-revise-before", "眼中闪过一丝")
            page.click("#book-revise")
            _wait_text(page, "book-revise-msg", "已保留为新版本", timeout=120_000)
            _wait(page, "document.querySelector('#book-revise-diff ins') !== null")
            assert "AI味" in page.inner_text("#book-revise-before")
            assert "AI味" not in page.inner_text("#book-revise-after")
            _wait(page, "() => !document.querySelector('#book-text textarea').value.includes('眼中闪过一丝')")
        with step(page, app, "3-lock"):
            page.locator("#book-lock input").check()
            _wait_text(page, "book-lock-msg", "第1章已锁定")
            _wait(page, "document.querySelector('#book-text textarea').disabled === true")
            _wait_text(page, "book-outline", "草稿🔒")
        with step(page, app, "4-health"):
            page.locator("#book-health-acc").locator("button").first.click()
            page.click("#book-health")
            _wait_text(page, "book-health-msg", "全书 3 章")
            for plot in ("book-health-lines", "book-health-chars"):  # plotly drew its charts
                _wait(page, f"document.querySelectorAll('#{plot} .main-svg').length > 0")
    finally:
        page.context.close()
