"""The login page in a real browser with ``--auth`` (webui.security guards every other route): the form
draws without a refused request, a wrong password is refused, the right one opens the whole page and its
load events run.  No model on disk: the engine fails fast and nothing here needs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.testing import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (make browser)"),
]




def test_login_page_then_the_whole_page_in_a_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from xiaoshuo.webui.launch import launch

    port = free_port()
    settings = config.load(
        env={},
        cwd=tmp_path,
        overrides={
            "webui.port": port,
            "model.base_model": "org/not-downloaded",
            "memory.embedding_model": "none",
            "paths.data_dir": str(tmp_path / "data"),
            "paths.models_dir": str(tmp_path / "models"),
            "paths.checkpoints_dir": str(tmp_path / "checkpoints"),
            "paths.logs_dir": str(tmp_path / "logs"),
        },
    )
    demo, services = launch(settings, backend="transformers", block=False, auth=[("writer", "s3cret")])
    refused: list[tuple[int, str]] = []
    try:
        with sync_playwright() as p:
            args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
            browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
            try:
                page = browser.new_page()
                page.on("response", lambda r: r.status >= 400 and refused.append((r.status, r.url)))
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector("input[type=password]", timeout=30_000)
                assert "连续输错 5 次密码" in page.content()  # the lock is announced on the form
                assert refused == []  # the login page needs nothing the guard refuses

                page.locator("input").first.fill("writer")
                page.locator("input[type=password]").fill("wrong")
                page.get_by_role("button", name="Login").click()
                page.get_by_text("Incorrect Credentials").wait_for(timeout=30_000)
                assert [s for s, _ in refused] == [400]  # the refused login, nothing else

                page.locator("input").first.fill("writer")  # the form empties itself after a refusal
                page.locator("input[type=password]").fill("s3cret")
                page.get_by_role("button", name="Login").click()
                page.get_by_role("tab", name="设置").click(timeout=60_000)
                page.get_by_text("org/not-downloaded").first.wait_for(timeout=30_000)  # 设置's load ran
                assert [s for s, _ in refused] == [400], refused
            finally:
                browser.close()
    finally:
        services.close()
        demo.close()
