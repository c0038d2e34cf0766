"""总览 in a real browser (Debian's Chromium through Playwright): the page draws the relationship graph with
the expected names and the chapter slider changes its edges; the `novel report --html` file opens offline
with its three charts drawn and no request leaving the machine.  The engine is a scripted backend: nothing
here generates.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from xiaoshuo import testing
from xiaoshuo.config import load
from xiaoshuo.engine import register_backend
from xiaoshuo.memory import make_entry
from xiaoshuo.testing import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (make browser)"),
]
BACKEND = "scripted-overview"


def _char(name, chapter=None, **fields):
    return make_entry(
        novel="yuye", kind="character", name=name, text=f"{name}的卡片", chapter=chapter, **fields
    )


def _book(settings) -> None:
    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.writing import Novels

    novel = Novels.from_settings(settings).create("yuye", title="雨夜", chapter_chars=500)
    with novel.writer():
        novel.import_outline(
            {"volumes": [{"title": "卷一", "chapters": [{"title": f"第{n}回"} for n in range(1, 13)]}]}
        )
        for n in (1, 5, 10, 12):
            novel.set_text(n, "林远与白露在雨里走，沈青跟在后面。" * 10)
    with MemoryStore(settings) as store:
        store.add([_char("林远", relationships={"沈青": "师妹"}), _char("沈青"), _char("白露", 5),
                   _char("林远", 10, relationships={"白露": "仇人"}, state="重伤")])  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
            ],
        )
        yield b
        b.close()


def _svg_texts(page, selector: str) -> set[str]:
    # SVG elements have no innerText: their textContent
    return set(page.eval_on_selector_all(f"{selector} .main-svg text", "els => els.map(e => e.textContent)"))


def _wait(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def test_the_page_draws_the_graph_and_the_slider_changes_the_edges(
    tmp_path: Path, browser, clean_env
) -> None:
    from xiaoshuo.webui.launch import launch

    register_backend(BACKEND, lambda cfg, model, adapters: testing.ScriptedEngine())
    port = free_port()
    settings = load(
        env={},
        cwd=tmp_path,
        overrides={"paths.data_dir": str(tmp_path / "data"), "paths.logs_dir": str(tmp_path / "logs"),
                   "paths.checkpoints_dir": str(tmp_path / "ck"), "memory.embedding_model": "none",
                   "webui.port": port},
    )  # fmt: skip
    _book(settings)
    demo, services = launch(settings, backend=BACKEND, block=False)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_role("tab", name="总览").click()
        page.wait_for_selector("#overview-graph .main-svg", timeout=30_000)
        _wait(lambda: {"林远", "沈青", "白露"} <= _svg_texts(page, "#overview-graph"), "the three names")
        assert "截至第12章" in page.locator("#overview-graph").inner_text()
        assert "共" in page.locator("#overview-summary").inner_text()
        box = page.locator("#overview-chapter input[type=number]")
        box.fill("9")
        box.press("Enter")
        _wait(lambda: "截至第9章" in page.locator("#overview-graph").inner_text(), "the graph at chapter 9")
        assert "关系 1 条" in page.locator("#overview-summary").inner_text()  # 林远—白露 (chapter 10) is gone
        box.fill("4")
        box.press("Enter")
        _wait(lambda: "白露" not in _svg_texts(page, "#overview-graph"), "白露 gone at chapter 4")
        assert page.locator("#overview-timeline .main-svg").count() >= 1
        assert page.locator("#overview-dashboard .main-svg").count() >= 1
    finally:
        services.close()
        demo.close()


def test_the_report_opens_offline_with_its_charts_drawn(tmp_path: Path, browser) -> None:
    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.writing import Novels
    from xiaoshuo.writing.overview import report_html

    settings = load(env={}, cwd=tmp_path, overrides={"paths.data_dir": str(tmp_path / "data"),
                                                     "memory.embedding_model": "none"})  # fmt: skip
    _book(settings)
    with MemoryStore(settings) as store:
        entries = store.list("yuye")
    html, _ = report_html(Novels.from_settings(settings).get("yuye"), entries, chapter=9)
    out = tmp_path / "总览.html"
    out.write_text(html, "utf-8")
    context = browser.new_context()
    outside: list[str] = []

    def only_files(route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_files)
    page = context.new_page()
    page.goto(out.as_uri())
    page.wait_for_selector("#graph .main-svg", timeout=30_000)
    assert page.locator(".main-svg").count() >= 3  # graph, timeline, dashboard
    assert {"林远", "沈青", "白露"} <= _svg_texts(page, "#graph")
    assert page.locator("#graph .slider-container").count() == 1
    assert outside == [], outside
    context.close()
