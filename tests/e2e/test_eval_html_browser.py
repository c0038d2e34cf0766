"""The eval HTML reports (style, book, memory) in a real browser, offline: the charts are drawn and no
request leaves the machine (every request is routed; anything but a file:// URL fails the test)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (make browser)"),
]


def _reports(work: Path) -> dict[str, Path]:
    """A style report (scripted engine), and book + memory reports of a probe novel, as HTML files."""
    from xiaoshuo.cli import main
    from xiaoshuo.eval.html import write_html
    from xiaoshuo.eval.style import run_style_eval
    from xiaoshuo.testing import ScriptedEngine

    data = work / "data" / "prepared-style"
    (data / "val").mkdir(parents=True)
    para = (
        "夜色如墨，细雨敲打着青石板路。“你终于来了。”身后传来一个清冷的声音。林远没有回头，只是叹了口气。\n"
    )
    (data / "val" / "v.jsonl").write_text(
        "\n".join(json.dumps({"text": para * (8 + i)}, ensure_ascii=False) for i in range(4)), "utf-8"
    )
    (data / "train").mkdir()
    (data / "train" / "t.jsonl").write_text('{"text": "训练"}\n', "utf-8")
    folder = work / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}", "utf-8")
    engine = ScriptedEngine(default="他笑了。“走吧。”" * 40, chunk=200)
    engine.register_adapter("style", folder)
    out = {"style": work / "style.html"}
    write_html(out["style"], run_style_eval(engine, data=data, adapter="style", samples=4, chars=100))
    assert main(["eval", "probe", "p", "--chapters", "8", "--characters", "3", "--events", "5"]) == 0
    assert main(["eval", "book", "p", "--html", str(work / "book.html")]) == 0
    assert main(["eval", "memory", "p", "--tokenizer", "chars", "--html", str(work / "memory.html")]) == 0
    out["book"], out["memory"] = work / "book.html", work / "memory.html"
    return out


def test_reports_draw_their_charts_offline(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    from playwright.sync_api import sync_playwright

    clean_env.chdir(tmp_path)
    clean_env.setenv("XIAOSHUO_MEMORY__EMBEDDING_MODEL", "none")
    pages = _reports(tmp_path)
    outside: list[str] = []

    def guard(route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        try:
            context = browser.new_context()
            context.route("**/*", guard)
            for kind, path in pages.items():
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                page.goto(path.as_uri())
                plots = page.locator(".js-plotly-plot")
                drawn = (
                    "document.querySelectorAll('.js-plotly-plot').length > 0 && "
                    "[...document.querySelectorAll('.js-plotly-plot')]"
                    ".every(p => p.querySelector('svg.main-svg'))"
                )
                page.wait_for_function(drawn, timeout=30_000)
                assert plots.count() >= (5 if kind == "style" else 1), kind
                assert page.locator("svg.main-svg g.trace").count() > 0, f"{kind}: no traces drawn"
                assert not errors, f"{kind}: {errors}"
                page.close()
        finally:
            browser.close()
    assert not outside, f"requests left the machine: {outside}"
