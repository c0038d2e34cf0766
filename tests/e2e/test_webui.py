"""The WebUI in a real browser: Debian's Chromium driven by Playwright, the tiny model on real vLLM.

Screenshots of every tab are saved under ``test-artifacts/`` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from xiaoshuo.testing import TINY_CORPUS, free_port, tiny_engine_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (make browser)"),
]




@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from xiaoshuo.testing import build_tiny_model
    from xiaoshuo.webui.launch import launch

    work = tmp_path_factory.mktemp("webui")
    # The ~19M "small" model, not the 136k tiny one: at thousands of tokens/s a 2-core machine cannot
    # render every update and the page would show the stream in one burst.
    model = build_tiny_model(work / "small", size="small")
    port = free_port()
    settings = tiny_engine_settings(
        model,
        work,
        **{
            "webui.port": port,
            # every runtime folder under tmp: nothing lands in the checkout (checkpoints/, logs/)
            "paths.checkpoints_dir": str(work / "checkpoints"),
            "paths.logs_dir": str(work / "logs"),
            "memory.embedding_model": "none",
            "data.tokenizer": str(model),
            "data.chunk_size": 128,
            "memory.context_token_budget": 512,
            "model.vllm_max_model_len": 2048,
            "model.load_in_4bit": False,
        },
    )
    demo, services = launch(settings, backend="vllm", block=False)
    services.engine.wait(timeout=600)
    assert services.engine.status()[0] == "ready", services.engine.status()
    yield {"url": f"http://127.0.0.1:{port}/", "services": services, "work": work, "settings": settings}
    services.close()
    demo.close()


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
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


def _page(browser, app):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app["url"])
    page.get_by_role("tab", name="随手写").click()  # the free request page (创作 is the book)
    page.wait_for_selector("#generate", timeout=30_000)
    return page


def _fill(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} textarea, #{elem_id} input").first
    box.fill(value)
    box.dispatch_event("input")
    box.blur()


def _settle(read, *, quiet: float, timeout: float, what: str):
    """Poll ``read()`` until its value stops changing for ``quiet`` seconds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            pytest.fail(f"{what} still changing after {timeout:.0f} s: {str(value)[-200:]!r}")
        time.sleep(0.1)
        new = read()
        if new != value:
            value, since = new, time.monotonic()
    return value


def _output(page, i: int = 0) -> str:
    sel = "#output textarea" if i == 0 else f"#output-{i + 1} textarea"
    return page.locator(sel).input_value()


def _open_inspector(page) -> None:
    if not page.locator("#context-inspector").is_visible():
        page.locator("#inspector-acc").get_by_text("上下文检查器").click()
    page.wait_for_selector("#context-inspector", state="visible", timeout=10_000)


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_generation_streams_into_the_page(browser, app) -> None:
    page = _page(browser, app)
    _fill(page, "request", "续写：夜色如墨，林远撑伞走过长街")
    _fill(page, "max-tokens", "1500")
    _fill(page, "seed", "1")
    # record every distinct value the textarea shows, from inside the page (10 ms sampling)
    page.evaluate("""() => { window.__seen = []; setInterval(() => {
        const v = document.querySelector('#output textarea').value;
        if (v && window.__seen[window.__seen.length - 1] !== v) window.__seen.push(v); }, 10); }""")
    page.click("#generate")
    page.wait_for_function("window.__seen.length > 0", timeout=60_000)
    _settle(lambda: page.evaluate("window.__seen.length"), quiet=2.0, timeout=90, what="the stream")
    seen = page.evaluate("window.__seen")
    assert len(seen) >= 3, seen  # several intermediate values: it streams
    assert all(len(seen[i + 1]) >= len(seen[i]) for i in range(len(seen) - 1))  # it grows
    _open_inspector(page)
    inspector = page.locator("#context-inspector").inner_text()
    assert "完整提示词" in inspector and "写作要求" in inspector  # in words, not the report's JSON
    _shot(page, "create")
    page.close()


def test_stop_ends_the_generation(browser, app) -> None:
    from xiaoshuo.engine import SamplingSettings
    from xiaoshuo.webui.pages.scratch.handlers import generate_stream

    page = _page(browser, app)
    _fill(page, "request", "写一段很长的故事")
    _fill(page, "max-tokens", "1500")
    _fill(page, "repetition-penalty", "1.0")
    _fill(page, "temperature", "0")
    engine = app["services"].engine.get()
    page.click("#generate")
    # Stop while the engine is still generating: the page paints in bursts on a loaded 2-core machine
    # (in CI the first >5 characters showed up with the whole answer), so the moment to click is taken
    # from the engine — its request is running — plus a little streaming, not from the page alone.
    deadline = time.monotonic() + 30
    while not engine.unfinished_requests():
        if time.monotonic() > deadline:
            pytest.fail("生成 sent no request to the engine within 30 s")
        time.sleep(0.01)
    began = time.monotonic()
    while time.monotonic() - began < 1.0 and len(_output(page)) <= 5:
        time.sleep(0.05)
    streamed_at_click = len(_output(page))
    page.locator("#stop").dispatch_event("click")  # dispatched: page.click() waits while a toast covers it
    stopped_at = time.monotonic()
    deadline = stopped_at + 20
    while engine.unfinished_requests():
        if time.monotonic() > deadline:
            pytest.fail(f"{engine.unfinished_requests()} requests still running 20 s after 停止")
        time.sleep(0.05)
    idle_after = time.monotonic() - stopped_at
    time.sleep(1.0)
    stopped = _output(page)
    time.sleep(1.5)
    assert _output(page) == stopped  # nothing more arrives
    story = page.locator("#story textarea").input_value()
    memory_on = page.locator("#memory-on input").is_checked()
    novel = page.locator("#novel input").input_value()
    page.close()

    async def complete():  # the same request, greedy, run to its end
        sampling = SamplingSettings(temperature=0.0, max_tokens=1500, repetition_penalty=1.0)
        stream = generate_stream(
            app["services"], novel, "写一段很长的故事", story, sampling, memory_on, "（无）"
        )
        return [update async for update in stream][-1]

    # Playwright's sync API owns this thread's event loop: run the coroutine on its own thread
    with ThreadPoolExecutor(1) as pool:
        began = time.monotonic()
        full = pool.submit(asyncio.run, asyncio.wait_for(complete(), timeout=300)).result(timeout=320)
        full_s = time.monotonic() - began
    assert full.finish_reasons[0] in ("stop", "length")
    why = (
        f"{streamed_at_click} chars on the page at 停止, engine idle {idle_after:.1f} s later, "
        f"full run {full_s:.1f} s"
    )
    # aborted: the page holds less than the same request gives when it runs to completion ...
    assert len(stopped) < len(full.texts[0]), (len(stopped), len(full.texts[0]), why)
    # ... and the engine dropped the request instead of finishing it
    assert idle_after < full_s / 2, why


def test_four_pages_generate_at_once(browser, app) -> None:
    pages = [_page(browser, app) for _ in range(4)]
    for i, page in enumerate(pages):
        _fill(page, "request", f"第{i + 1}个读者的请求：续写雨夜")
        _fill(page, "max-tokens", "60")
        _fill(page, "seed", str(100 + i))
        _fill(page, "temperature", "1.0")
    for page in pages:
        page.click("#generate")
    texts = []
    for page in pages:
        page.wait_for_function("document.querySelector('#output textarea').value.length > 0", timeout=60_000)
        texts.append(_settle(lambda page=page: _output(page), quiet=1.0, timeout=90, what="a page's output"))
    assert all(texts) and len(set(texts)) == 4  # each page got its own text
    for page in pages:
        page.close()


def test_reload_never_loses_the_accepted_story(browser, app) -> None:
    """The data-loss bug: accept a candidate, reload, type one character, reload → the text is still there."""
    page = _page(browser, app)
    novel = page.locator("#novel input").input_value()  # the novel a freshly loaded page opens
    _fill(page, "request", "续写：夜色如墨")
    _fill(page, "max-tokens", "48")
    _fill(page, "seed", "3")
    page.click("#generate")
    page.wait_for_function("document.querySelector('#output textarea').value.length > 0", timeout=60_000)
    shown = _settle(lambda: _output(page), quiet=1.5, timeout=90, what="the candidate")
    # what 采用 stores: the model's text cleaned of U+FFFD and control characters (a random model's bytes
    # often end mid-character), as every stored generation is
    from xiaoshuo.writing.cleaning import clean_generated

    accepted = clean_generated(shown)
    page.click("#use-1")
    stories = app["services"].scratch
    deadline = time.monotonic() + 20
    while stories.load(novel) != accepted:
        if time.monotonic() > deadline:
            pytest.fail(f"accepted text not saved: {stories.load(novel)!r}")
        time.sleep(0.1)

    def reopen():
        page.reload()
        page.get_by_role("tab", name="随手写").click()
        page.wait_for_selector("#generate", timeout=30_000)
        page.wait_for_function(
            "v => document.querySelector('#story textarea').value.includes(v)", arg=accepted, timeout=20_000
        )

    reopen()  # the reloaded page shows the saved story (it used to be empty)
    box = page.locator("#story textarea")
    box.press("End")
    box.type("。")
    deadline = time.monotonic() + 20
    while stories.load(novel) != accepted + "。":
        if time.monotonic() > deadline:
            pytest.fail(f"the typed character was not autosaved: {stories.load(novel)[-50:]!r}")
        time.sleep(0.1)
    reopen()
    assert accepted in box.input_value() and accepted in stories.load(novel)
    page.close()


def test_memory_character_reaches_the_context_inspector(browser, app) -> None:
    page = _page(browser, app)
    page.get_by_role("tab", name="记忆").click()
    _fill(page, "memory-name", "顾长歌")
    _fill(page, "memory-aliases", "长歌, 顾少侠")
    _fill(page, "memory-text", "问道青云的少年，走了三个月的路来拜师。")
    page.click("#memory-add")
    page.wait_for_function(
        "document.querySelector('#memory-table').innerText.includes('顾长歌')", timeout=20_000
    )
    page.wait_for_selector("#memory-message:has-text('已添加：顾长歌')", timeout=20_000)
    novel = page.locator("#novel input").first.input_value()
    assert novel in page.inner_text("#memory-novel")  # the page says which novel it is about
    table = page.inner_text("#memory-table")
    assert "别名" in table and "现状" in table and "aliases" not in table
    entry = app["services"].store().list(novel)[0]
    assert entry.id not in table  # no 32-character ids on screen
    assert entry.chapter is None  # 章节 left empty stays empty (not 0)
    # edit by clicking the row (no id to type): the form fills in, 保存修改 changes that entry
    page.locator("#memory-table .virtual-body [role=gridcell]", has_text="顾长歌").first.click()
    page.wait_for_selector("#memory-selected:has-text('正在修改：顾长歌')", timeout=20_000)
    assert page.locator("#memory-name textarea, #memory-name input").first.input_value() == "顾长歌"
    _fill(page, "memory-state", "初入山门")
    page.click("#memory-edit")
    page.wait_for_selector("#memory-message:has-text('已修改：顾长歌')", timeout=20_000)
    page.wait_for_function(
        "document.querySelector('#memory-table').innerText.includes('初入山门')", timeout=20_000
    )
    edited = app["services"].store().get(entry.id, novel)
    assert (edited.state, edited.chapter, edited.aliases) == ("初入山门", None, ["长歌", "顾少侠"])
    page.wait_for_selector("#memory-selected:has-text('正在修改：顾长歌')", timeout=20_000)  # still selected
    _shot(page, "memory")
    page.get_by_role("tab", name="随手写").click()
    _fill(page, "request", "顾少侠登上了山顶")
    _fill(page, "max-tokens", "16")
    page.click("#generate")
    _open_inspector(page)
    page.wait_for_function(
        "document.querySelector('#context-inspector').innerText.includes('顾长歌')", timeout=60_000
    )
    # bad memory JSON: a visible error, nothing imported
    bad = app["work"] / "bad.json"
    bad.write_text("{not json", "utf-8")
    page.get_by_role("tab", name="记忆").click()
    page.locator("#memory-import input[type=file]").set_input_files(str(bad))
    page.wait_for_selector("text=not valid JSON", timeout=20_000)
    assert len(app["services"].store().list()) == 1
    page.close()


def test_bad_input_gives_visible_messages(browser, app) -> None:
    page = _page(browser, app)
    page.click("#generate")  # empty request
    page.wait_for_selector("text=请先填写写作要求", timeout=20_000)
    _fill(page, "request", "续写")
    _fill(page, "top-p", "2")
    page.click("#generate")
    page.wait_for_selector("text=top_p", timeout=20_000)
    page.close()


def test_training_from_the_ui_adds_an_adapter(browser, app) -> None:
    page = _page(browser, app)
    page.get_by_role("tab", name="训练").click()
    # on open: the form follows the loaded model, labels are Chinese, the command is already there (folded
    # away with the advanced settings: open both), QLoRA is off on this CPU-only machine
    page.locator("#train-advanced").get_by_text("高级设置").click()
    page.locator("#train-command-box").get_by_text("等价命令").click()
    model = str(app["services"].engine.model)
    page.wait_for_function(
        "document.querySelector('#train-command textarea')?.value.includes('train')", timeout=30_000
    )
    assert page.locator("#train-base-model textarea, #train-base-model input").first.input_value() == model
    assert page.locator("#train-tokenizer textarea, #train-tokenizer input").first.input_value() == model
    command = page.locator("#train-command textarea").input_value()
    assert f"model.base_model={model}" in command and "--no-qlora" in command
    assert not page.locator("#train-qlora input").is_checked()
    assert "学习率" in page.inner_text("#train-lr") and "training." not in page.inner_text("#train-lr")
    assert "本机预计用时" in page.inner_text("#train-estimate") or "还没有训练数据" in page.inner_text(
        "#train-estimate"
    )
    novel = app["work"] / "upload-novel.txt"
    novel.write_text(TINY_CORPUS * 3, "utf-8")
    binary = app["work"] / "picture.txt"
    binary.write_bytes(bytes(range(256)) * 50)
    page.locator("#train-upload input[type=file]").set_input_files([str(novel), str(binary)])
    page.wait_for_function(
        "document.querySelector('#train-upload-message').innerText.includes('upload-novel')", timeout=30_000
    )
    page.click("#train-prepare")
    page.wait_for_function(
        "document.querySelector('#train-prepare-table').innerText.includes('二进制')", timeout=60_000
    )
    page.wait_for_function(
        "document.querySelector('#train-estimate').innerText.includes('现有文字')", timeout=20_000
    )  # the estimate follows the prepared text
    summary = page.inner_text("#train-prepare-summary")
    assert "数据已准备好" in summary and "{" not in summary  # words, not JSON
    assert "upload-novel.txt" in page.inner_text("#train-prepare-table")
    _fill(page, "train-max-steps", "12")
    _fill(page, "train-batch", "1")
    _fill(page, "train-accum", "1")
    _fill(page, "train-lr", "0.005")
    _fill(page, "train-lora-r", "8")
    _fill(page, "train-run", "ui-run")
    page.wait_for_function(
        "document.querySelector('#train-command textarea').value.includes('--run ui-run')", timeout=20_000
    )
    page.click("#train-start")
    page.wait_for_function(
        "document.querySelector('#train-progress').innerText.startsWith('训练完成')", timeout=240_000
    )
    events = app["services"].jobs.events()
    assert any(e["event"] == "log" for e in events) and events[-1]["event"] == "end"
    assert "共 12 步" in page.inner_text("#train-progress")
    page.wait_for_function(
        "document.querySelector('#train-adapters').innerText.includes('ui-run')", timeout=20_000
    )
    _shot(page, "train")
    page.get_by_role("tab", name="随手写").click()
    page.locator("#adapter input").click()
    page.locator("[role=option]", has_text="ui-run").wait_for(timeout=20_000)  # selectable without a restart
    page.close()


def test_settings_shows_status(browser, app) -> None:
    import json

    from xiaoshuo.testing import build_tiny_lora

    # an adapter in the trained layout (checkpoints/<run>/final_model + manifest) before the page opens
    run_dir = app["settings"].paths.checkpoints_dir / "set-style"
    final = build_tiny_lora(app["work"] / "small", run_dir / "final_model")
    manifest = {"base_model": str(app["work"] / "small"), "created": "2026-11-03T09:00:00", "global_step": 7}
    (final / "xiaoshuo_manifest.json").write_text(json.dumps({**manifest, "eval_loss": 1.5}), "utf-8")
    page = _page(browser, app)
    page.get_by_role("tab", name="设置").click()
    # filled on open, no button pressed: the status table in words, the checks and adapters as tables
    page.wait_for_function(
        "document.querySelector('#settings-status').innerText.includes('已加载模型')", timeout=60_000
    )
    status = page.inner_text("#settings-status")
    assert str(app["work"] / "small") in status and "vllm" in status and "● 就绪" in status
    assert "内存占用（RSS）" in status and "GiB" in status and "{" not in status
    page.wait_for_function(
        "document.querySelector('#settings-doctor').innerText.includes('检查项')"
        " && document.querySelector('#settings-doctor').innerText.includes('Python')",
        timeout=60_000,
    )
    assert "✓ 正常" in page.inner_text("#settings-doctor")
    adapters = page.inner_text("#settings-adapters")
    assert "基础模型" in adapters and "set-style" in adapters and "1.5000" in adapters
    assert "模型 (engine.model)" in page.inner_text("#settings-model")
    _shot(page, "settings")
    # delete with the confirm step: pick it, 删除 asks, 确认删除 deletes
    page.locator("#settings-adapter-pick input").click()
    page.locator("[role=option]", has_text="set-style").click()
    page.wait_for_function(
        "document.querySelector('#settings-adapter-pick input').value === 'set-style'", timeout=20_000
    )
    page.click("#settings-adapter-delete")
    page.wait_for_selector("#settings-adapter-question:has-text('确定删除适配器 set-style')", timeout=20_000)
    assert final.is_dir()  # asking deletes nothing
    page.click("#settings-adapter-confirm")
    page.wait_for_selector("#settings-message:has-text('已删除 set-style')", timeout=20_000)
    assert not final.exists()
    page.wait_for_function(
        "!document.querySelector('#settings-adapters').innerText.includes('set-style')", timeout=20_000
    )
    page.close()
