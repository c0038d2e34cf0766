"""Bench: does the WebUI add little on top of the work itself?  Three measurements, one JSON line.

(a) **The book journey** on three sides, the same small test model on vLLM and the same seeds, lengths and
    settings (the outline seeded too: the page's 种子 ``book-outline-seed``, ``--seed``, ``sampling``), so the
    work is the same — ``same_outline`` / ``same_candidates`` say whether it was: create a novel → generate
    an outline of 6 chapters → chapter 1 with 2 candidates → accept candidate 2 → extract proposals into the
    review queue → approve one, edit-and-approve one, reject one → edit chapter 1 by hand → export EPUB
    and DOCX.
    * **browser**: Debian's Chromium driven by Playwright against the running app, by ``elem_id`` (never by
      visible label); each step is timed from its first action to the page showing its result.
    * **api** (the work itself): the functions the page's handlers and the CLI call (``xiaoshuo.writing``,
      ``xiaoshuo.memory``), in this process on ONE engine started before the clock.
    * **cli**: the same steps as ``xiaoshuo …`` subprocesses; each model command (outline, write, memory
      extract) starts its own engine, as a writer's shell would.  That cost is measured on its own — a
      model command with nothing to do (``inference --max-tokens 1``) minus a command without a model
      (``novel list``) — and ``cli_minus_engine_starts_s`` takes it off the CLI's wall three times.
    Ratios: browser/cli (goal <= 1.2), browser/api, cli/api.  Extraction runs for real on every side, but the
    random model's proposals are unpredictable, so the three proposals that are reviewed are put into the
    queue (identically, untimed) right after it (extracting a chapter replaces its pending proposals); the
    page is reloaded to show them (untimed).
(b) **Streaming of 生成本章**: chars/s on the page (the candidate box sampled in the browser every 5 ms,
    from its first to its last streamed growth, counting only once the box was emptied for the run) ÷
    chars/s of ``xiaoshuo.writing.Writer`` on the same engine and memory (first to last ``on_text``
    piece), ``STREAM_RUNS`` times each on the same chapter, seed and target; the Writer runs once untimed
    first so every timed run sees the same prefix cache.  The bench asserts that the page's text and the
    Writer's are identical on every run, and reports the median ratio.  Goal >= 0.95.
(c) **Scratchpad tokens**: the 随手写 page's ``/generate`` endpoint (gradio_client, in its own process, 1 and
    4 clients) vs ``Engine.stream`` with the request the page composes (``webui.pages.scratch.handlers``);
    the outputs are the same length, so the rate ratio is the ratio of walls.  Goal >= 0.95; TTFT <= engine
    + 150 ms.

``--shots DIR`` copies the journey's screenshots (fixed 1280×900 viewport) there (the README uses docs/).
One JSON line; also bench/results/webui.json.  Run under the heavy lock on a shared machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import report

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
MAX_TOKENS = 256
CHAPTER_CHARS = 300  # 字 per chapter in the journey
STREAM_CHARS = 600  # 字 for the streaming-rate chapter
STREAM_CHAPTER, STREAM_SEED, STREAM_RUNS = 2, 11, 3  # the same chapter, seed and target every run
MODEL_COMMANDS = 3  # CLI commands of the journey that start an engine: outline, write, memory extract
OUTLINE_SEED = 5  # the page's 种子 (book-outline-seed), the CLI's --seed, the API's sampling seed
SLUG, TITLE = "yuye", "雨夜剑"
HAND_EDIT = "林远笑了笑，收剑入鞘。"
PROPOSALS = (("p0bench1", "赵铁山"), ("p1bench2", "苏晚晴"), ("p2bench3", "黑衣人"))
EDITED_TEXT = "江南来的剑客"
OVERRIDES = {  # the same on both sides (the CLI reads them from config.toml)
    "memory.embedding_model": "none",
    "model.vllm_max_model_len": 2048,
    "writing.segment_chars": 120,
    "writing.outline_synopsis_chars": 16,
    "writing.summary_chars": 20,
}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
SHOT_LIMIT = 150_000  # bytes per README screenshot


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean(text: str) -> str:
    """The hand edit: the random model's control characters dropped, a sentence of the writer's added."""
    return "".join(ch for ch in text if ch.isprintable() or ch == "\n") + HAND_EDIT


def _seed_proposals(settings) -> None:
    """The three proposals the journey reviews, quoting chapter 1 as it is now (untimed, both sides)."""
    from xiaoshuo.writing import Novels
    from xiaoshuo.writing.review import Evidence, Proposal, ReviewQueue

    novel = Novels.from_settings(settings).get(SLUG)
    text = novel.text(1)
    quotes = [text[:4], text[4:8], text[8:12]]
    ReviewQueue.of(novel).add(
        [
            Proposal(
                id=pid,
                novel=SLUG,
                chapter=1,
                kind="character",
                fields={"name": name, "text": f"{name}的描述"},
                evidence=Evidence(quote=q, start=text.index(q), end=text.index(q) + len(q)),
            )
            for (pid, name), q in zip(PROPOSALS, quotes, strict=True)
        ]
    )


def _memory_names(settings, store=None) -> dict[str, str]:
    from xiaoshuo.memory import MemoryStore

    if store is not None:
        return {e.name: e.text for e in store.list(SLUG)}
    with MemoryStore(settings) as opened:
        return {e.name: e.text for e in opened.list(SLUG)}


# ----------------------------------------------------------------------------- the page, by elem_id
class Page:
    def __init__(self, page, shots: Path) -> None:
        self.p, self.shots = page, shots

    def box(self, eid: str):
        return self.p.locator(f"#{eid} textarea, #{eid} input").first

    def fill(self, eid: str, value: str) -> None:
        box = self.box(eid)
        box.fill(value)
        box.dispatch_event("input")
        box.blur()

    def value(self, eid: str) -> str:
        return self.box(eid).input_value()

    def wait(self, js: str, arg=None, timeout: float = 240_000) -> None:
        self.p.wait_for_function(js, arg=arg, timeout=timeout)

    def wait_value(self, eid: str, predicate: str, arg=None, timeout: float = 240_000) -> None:
        self.wait(
            f"""([id, a]) => {{ const e = document.querySelector('#' + id + ' textarea, #' + id + ' input');
                if (!e) return false; const v = e.value; return ({predicate}); }}""",
            [eid, arg],
            timeout,
        )

    def wait_text(self, eid: str, predicate: str, arg=None, timeout: float = 240_000) -> None:
        self.wait(
            f"""([id, a]) => {{ const e = document.getElementById(id); if (!e) return false;
                const v = e.innerText; return ({predicate}); }}""",
            [eid, arg],
            timeout,
        )

    def rows(self, eid: str) -> str:
        return f"document.querySelectorAll('#{eid} .virtual-body [role=row]')"

    def open(self, eid: str) -> None:
        self.p.locator(f"#{eid}").locator("button").first.click()

    def pick_row(self, table: str, needle: str, column: int | None = 0) -> None:
        """Click the first row whose cell ``column`` is ``needle`` (column None: whose text contains it)."""
        rows = self.p.locator(f"#{table} .virtual-body [role=row]")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for i in range(rows.count()):
                cells = rows.nth(i).locator("[role=gridcell]")
                if column is None and needle in rows.nth(i).inner_text():
                    cells.first.click()
                    return
                if column is not None and cells.count() > column and cells.nth(column).inner_text() == needle:
                    cells.nth(column).click()
                    return
            time.sleep(0.05)
        raise RuntimeError(
            f"no row {needle!r} in #{table}: {self.p.locator(f'#{table}').inner_text()[:600]!r}"
        )

    def shot(self, name: str, anchor: str) -> None:
        """A viewport screenshot (fixed size) with ``anchor`` scrolled to the top."""
        self.p.evaluate("(id) => document.getElementById(id).scrollIntoView({block: 'start'})", anchor)
        self.p.evaluate("() => window.scrollBy(0, -8)")
        time.sleep(0.3)
        self.p.screenshot(path=str(self.shots / f"webui-{name}.png"))


def browser_journey(app: dict, browser) -> tuple[dict, dict]:
    """The journey on the page; returns per-step seconds and what it produced."""
    from xiaoshuo.writing import Novels

    services = app["services"]
    novels = Novels.from_settings(services.settings)
    steps: dict[str, float] = {}
    context = browser.new_context(viewport=VIEWPORT)
    pg = Page(context.new_page(), app["shots"])
    rows_of = "[...document.querySelectorAll('#book-review .virtual-body [role=row]')]"
    row_has = f"(a) => {rows_of}.some(r => r.innerText.includes(a))"
    row_gone = f"(a) => !{rows_of}.some(r => r.innerText.includes(a))"

    def timed(name, fn):
        start = time.perf_counter()
        fn()
        steps[name] = round(time.perf_counter() - start, 3)

    def open_page():
        pg.p.goto(app["url"])
        pg.p.wait_for_selector("#book-write", timeout=60_000)

    def create():
        pg.open("book-new-acc")
        pg.fill("book-new-title", TITLE)
        pg.fill("book-new-slug", SLUG)
        pg.fill("book-new-chars", str(CHAPTER_CHARS))
        pg.p.click("#book-create")
        pg.wait_value("book-novel", "v.includes(a)", SLUG)

    def outline():
        pg.open("book-outline-gen-acc")
        pg.fill("book-outline-count", "6")
        pg.fill("book-outline-seed", str(OUTLINE_SEED))
        pg.p.click("#book-outline-go")
        pg.wait(f"{pg.rows('book-outline')}.length === 6")
        pg.wait_value("book-chapter", "v === '1'")

    def write():
        pg.fill("book-n", "2")
        pg.fill("book-seed", "1")
        pg.fill("book-target", str(CHAPTER_CHARS))
        pg.p.click("#book-write")
        # done: both candidates saved on disk, and the page shows exactly what was saved
        deadline = time.monotonic() + 300
        while len(novels.get(SLUG).versions(1)) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("生成本章 saved no 2 candidates in 300 s")
            time.sleep(0.25)  # reading versions from disk in the app's process slows the app: poll gently
        saved = [v.text for v in novels.get(SLUG).versions(1)[:2]]  # in the order they finished
        pg.wait(
            """(a) => { const x = document.querySelector('#book-cand-1 textarea');
                const y = document.querySelector('#book-cand-2 textarea');
                return !!x && !!y && x.value !== y.value && a.includes(x.value) && a.includes(y.value); }""",
            saved,
        )

    def accept():
        pg.p.click("#book-accept-2")
        pg.wait_value("book-text", "v === a", out["cand2"])

    def extract():
        pg.open("book-review-acc")
        pg.p.click("#book-extract")
        # done: the page's "✓ N proposals" line (while it runs, the box shows only Gradio's status tracker)
        pg.wait_text("book-review-msg", "v.includes('✓')")

    def approve():
        pg.pick_row("book-review", PROPOSALS[0][1], None)
        pg.wait("document.querySelector('#book-evidence mark') !== null")
        pg.p.click("#book-approve")
        pg.wait(row_gone, PROPOSALS[0][1])

    def edit_approve():
        pg.pick_row("book-review", PROPOSALS[1][1], None)
        pg.wait_value("book-review-edits", "v.includes('name=' + a)", PROPOSALS[1][1])
        pg.fill(
            "book-review-edits",
            pg.value("book-review-edits").replace(f"{PROPOSALS[1][1]}的描述", EDITED_TEXT),
        )
        pg.p.click("#book-approve")
        pg.wait(row_gone, PROPOSALS[1][1])

    def reject():
        pg.pick_row("book-review", PROPOSALS[2][1], None)
        pg.wait_value("book-review-id", "v === a", PROPOSALS[2][0])
        pg.p.click("#book-reject")
        pg.wait(row_gone, PROPOSALS[2][1])

    def hand_edit():
        before = pg.p.locator("#book-save-msg").inner_text()
        pg.box("book-text").fill(out["edited"])
        pg.p.click("#book-save")
        pg.wait_text("book-save-msg", "v.includes('✓') && v !== a", before)

    def export():
        pg.open("book-export-acc")
        for fmt in ("epub", "docx"):
            pg.p.locator("#book-export-format").get_by_text(fmt, exact=True).click()
            pg.p.click("#book-export-go")
            link = pg.p.locator(f"#book-export-file a[href*='.{fmt}']").first
            link.wait_for(timeout=120_000)
            out[fmt] = pg.p.request.get(link.get_attribute("href")).body()

    out: dict = {}
    try:
        timed("open_page", open_page)
        timed("create_novel", create)
        timed("outline_6", outline)
        pg.shot("book-outline", "book-outline")
        timed("chapter_2_candidates", write)
        out["cand2"] = pg.value("book-cand-2")
        out["cands"] = [pg.value("book-cand-1"), out["cand2"]]
        pg.shot("book-candidates", "book-cand-1")
        timed("accept_2", accept)
        timed("extract", extract)
        _seed_proposals(services.settings)  # untimed, as on the CLI side; the page reloads to show them
        pg.p.reload()
        pg.p.wait_for_selector("#book-write", timeout=60_000)
        pg.wait_value("book-novel", "v.includes(a)", SLUG)
        pg.open("book-review-acc")
        pg.wait(row_has, PROPOSALS[2][1], timeout=60_000)
        pg.shot("book-review", "book-review-acc")
        timed("approve", approve)
        timed("edit_approve", edit_approve)
        timed("reject", reject)
        out["edited"] = _clean(out["cand2"])
        timed("hand_edit", hand_edit)
        pg.open("book-versions-acc")  # untimed: the diff is for the screenshot
        pg.p.click("#book-diff-btn")
        pg.wait("document.querySelector('#book-diff ins') !== null", timeout=60_000)
        pg.shot("book-diff", "book-versions-acc")
        timed("export_epub_docx", export)
        pg.shot("book-export", "book-export-acc")
    except BaseException:
        pg.p.screenshot(path=str(app["shots"] / "FAILED.png"), full_page=True)
        raise
    novel = novels.get(SLUG)
    out["outline"] = [c.title for c in novel.outline().chapters()]
    out["text"] = novel.text(1)
    out["memory"] = _memory_names(services.settings, services.store())
    out["page"] = pg.p
    out["context"] = context
    return steps, out


# ----------------------------------------------------------------------------- streaming: page vs core
RECORDER = """(id) => {
  // Armed only once the box is empty (cleared here, and by the run's first update): a box still holding
  // the previous run's candidate must not count as streamed text (it did: 1,204 "streamed" of a 600 字
  // chapter, and a clock started before the click).
  const r = {first: null, last: null, base: 0, grown: 0, prev: 0, armed: false};
  window.__xsRec = r;
  window.__xsTimer = setInterval(() => {
    const e = document.querySelector('#' + id + ' textarea'); if (!e) return;
    const n = e.value.length, now = performance.now();
    if (!r.armed) { if (n === 0) { r.armed = true; r.prev = 0; } return; }
    if (n > r.prev) {
      if (r.first === null) { r.first = now; r.base = n; } else { r.grown += n - r.prev; r.last = now; }
    }
    r.prev = n;
  }, 5);
}"""


def _nl(text: str) -> str:
    """Line ends as a textarea's value has them (a browser turns \\r\\n and \\r into \\n)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def core_rate(services, chapter: int, seed: int) -> dict:
    """``Writer.write_chapter`` on the app's engine and memory, not accepted; chars/s first to last piece."""
    from xiaoshuo.writing import Novels, Writer

    novel = Novels.from_settings(services.settings).get(SLUG)
    rec = {"first": None, "last": None, "base": 0, "grown": 0}

    def on_text(index: int, piece: str) -> None:
        if index != 0 or not piece:
            return
        now = time.perf_counter()
        if rec["first"] is None:
            rec["first"], rec["base"] = now, len(piece)
        else:
            rec["grown"] += len(piece)
            rec["last"] = now

    writer = Writer(services.settings, services.engine.get(), novel, store=services.store(), on_text=on_text)
    work = writer.write_chapter(chapter, target_chars=STREAM_CHARS, candidates=1, seed=seed, accept=False)
    done: dict = {}
    # Playwright's loop holds this thread: the writer runs on its own
    runner = threading.Thread(target=lambda: done.setdefault("result", asyncio.run(work)))
    runner.start()
    runner.join()
    span = rec["last"] - rec["first"]
    return {
        "chars": rec["base"] + rec["grown"],
        "span_s": round(span, 3),
        "rate": rec["grown"] / span,
        "text": _nl(done["result"].candidates[0].new_text),
    }


def page_rate(services, page, chapter: int, seed: int) -> dict:
    """生成本章 on the page with 1 candidate, ``seed`` and ``STREAM_CHARS``; the candidate box is sampled
    every 5 ms from its first to its last streamed growth.  Done: a new version of the chapter is on disk
    and the box shows exactly its text (the page's final update)."""
    from xiaoshuo.writing import Novels

    pg = Page(page, Path("."))
    novel = Novels.from_settings(services.settings).get(SLUG)
    if pg.value("book-chapter") != str(chapter):
        title = novel.outline().chapter(chapter).title
        before = page.locator("#book-header").inner_text()
        pg.pick_row("book-outline", str(chapter), 0)
        pg.wait_value("book-chapter", "v === a", str(chapter))
        pg.wait_text("book-header", "v !== a[0] && v.includes(a[1])", [before, title], timeout=60_000)
    wanted = {"book-n": "1", "book-seed": str(seed), "book-target": str(STREAM_CHARS)}
    deadline = time.monotonic() + 30
    while True:  # the chapter's own values arrive with the pick: fill until they stay
        for eid, value in wanted.items():
            pg.fill(eid, value)
        time.sleep(0.5)
        if all(pg.value(eid) == value for eid, value in wanted.items()):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the 生成本章 fields keep being reset")
    versions = len(novel.versions(chapter))
    page.evaluate("() => { const e = document.querySelector('#book-cand-1 textarea'); if (e) e.value = ''; }")
    page.evaluate(RECORDER, "book-cand-1")
    page.click("#book-write")
    deadline = time.monotonic() + 300
    while len(novel.versions(chapter)) <= versions:
        if time.monotonic() > deadline:
            raise RuntimeError("生成本章 saved no version in 300 s")
        time.sleep(0.25)
    saved = _nl(max(novel.versions(chapter), key=lambda v: v.id).text)
    pg.wait_value("book-cand-1", "v.replace(/\\r\\n?/g, '\\n') === a", saved)
    time.sleep(0.3)  # the run's refresh (.then) lands before the next run starts
    rec = page.evaluate("() => { clearInterval(window.__xsTimer); return window.__xsRec; }")
    span = (rec["last"] - rec["first"]) / 1000
    return {
        "chars": rec["base"] + rec["grown"],
        "span_s": round(span, 3),
        "rate": rec["grown"] / span,
        "text": _nl(pg.value("book-cand-1")),
    }


def streaming(app: dict, page) -> dict:
    """``STREAM_RUNS`` × (Writer, page) on the same chapter, seed and target: the texts must be identical."""
    services = app["services"]
    core_rate(services, STREAM_CHAPTER, STREAM_SEED)  # warm: the prefix cache holds this chapter's prompts
    runs = []
    for _ in range(STREAM_RUNS):
        core = core_rate(services, STREAM_CHAPTER, STREAM_SEED)
        ui = page_rate(services, page, STREAM_CHAPTER, STREAM_SEED)
        assert ui["text"] == core["text"], (
            f"the page and Writer wrote different chapters from one seed:\n{ui['text'][:200]!r}\n"
            f"{core['text'][:200]!r}"
        )
        runs.append({"core": core, "page": ui, "ratio": ui["rate"] / core["rate"]})
    assert len({r["core"]["text"] for r in runs}) == 1, "Writer's runs differ from one seed"
    return {
        "chapter": STREAM_CHAPTER,
        "seed": STREAM_SEED,
        "chapter_chars": STREAM_CHARS,
        "same_text_every_run": True,  # asserted above
        "text_chars": len(runs[0]["core"]["text"]),
        "core_chars_per_s": round(statistics.median(r["core"]["rate"] for r in runs), 1),
        "page_chars_per_s": round(statistics.median(r["page"]["rate"] for r in runs), 1),
        "page_over_core": round(statistics.median(r["ratio"] for r in runs), 3),
        "runs": [
            {
                side: {k: round(v, 1) if k == "rate" else v for k, v in r[side].items() if k != "text"}
                for side in ("core", "page")
            }
            | {"ratio": round(r["ratio"], 3)}
            for r in runs
        ],
    }


# ----------------------------------------------------------------------------- scratchpad tokens
def engine_round(services, n_clients: int) -> tuple[float, float, int]:
    from xiaoshuo.engine import SamplingSettings
    from xiaoshuo.webui.pages.scratch.handlers import compose_request

    engine = services.engine.get()

    async def one(i: int) -> tuple[float, int]:
        sampling = SamplingSettings(temperature=0.8, max_tokens=MAX_TOKENS, seed=i, repetition_penalty=1.05)
        req, _ = compose_request(
            services, engine, "default", f"第{i}段：续写雨夜", "", sampling, False, "（无）"
        )
        start, first, text = time.perf_counter(), None, ""
        async for d in engine.stream(req):
            if d.text and first is None:
                first = time.perf_counter() - start
            text += d.text
        return first or 0.0, len(text)

    async def run():
        start = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(n_clients)))
        return (
            time.perf_counter() - start,
            statistics.median(r[0] for r in results),
            sum(r[1] for r in results),
        )

    return asyncio.run(run())


def ui_round(url: str, n_clients: int) -> tuple[float, float, int]:
    """The clients run in their own process, as a browser would, not competing for the app's GIL."""
    out = subprocess.run(
        [sys.executable, __file__, "--client", url, str(n_clients)],
        capture_output=True,
        text=True,
        check=True,
    )
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def _clients(url: str, n_clients: int) -> tuple[float, float, int]:
    from gradio_client import Client

    results: list[tuple[float, int]] = [None] * n_clients  # type: ignore[list-item]
    clients = [Client(url, verbose=False) for _ in range(n_clients)]  # connected before the clock starts

    def one(i: int) -> None:
        start, first, last = time.perf_counter(), None, ""
        job = clients[i].submit(
            "default", f"第{i}段：续写雨夜", "", 0.8, 0.9, 50, MAX_TOKENS, 1.05, i, 1, False, "（无）",
            api_name="/generate",
        )  # fmt: skip
        for out in job:
            if out[0] and first is None:
                first = time.perf_counter() - start
            last = out[0]
        results[i] = (first or 0.0, len(last))

    start = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, statistics.median(r[0] for r in results), sum(r[1] for r in results)


def scratch_tokens(services, url: str) -> dict:
    ui_round(url, 1)  # warm-up
    result = {"max_tokens": MAX_TOKENS}
    for n in (1, 4):
        e_wall, e_ttft, e_chars = engine_round(services, n)
        u_wall, u_ttft, u_chars = ui_round(url, n)
        result[f"c{n}"] = {
            "engine_s": round(e_wall, 3),
            "ui_s": round(u_wall, 3),
            "ui_rate_over_engine": round(e_wall / u_wall, 3),
            "engine_ttft_ms": round(e_ttft * 1000, 1),
            "ui_ttft_ms": round(u_ttft * 1000, 1),
            "same_output_length": e_chars == u_chars,
        }
    return result


# ----------------------------------------------------------------------------- the CLI side
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return json.dumps(str(v), ensure_ascii=False)


def write_config(path: Path, values: dict) -> None:
    sections: dict[str, dict] = {}
    for key, value in values.items():
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = value
    lines = []
    for section, items in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in items.items()]
    path.write_text("\n".join(lines) + "\n", "utf-8")


def cli_journey(work: Path, values: dict, settings) -> tuple[dict, dict]:
    from xiaoshuo.writing import Novels

    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOSHUO_")}
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    write_config(work / "config.toml", values)
    steps: dict[str, float] = {}
    out: dict = {}

    def run(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "xiaoshuo", *args], cwd=work, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(f"xiaoshuo {' '.join(args)} failed: {proc.stderr[-2000:]}")
        return proc.stdout

    def timed(name: str, *commands: tuple[str, ...]) -> list[str]:
        start = time.perf_counter()
        outs = [run(*c) for c in commands]
        steps[name] = round(time.perf_counter() - start, 3)
        return outs

    nv = ("--novel", SLUG)
    timed("create_novel", ("novel", "new", SLUG, "--title", TITLE, "--chapter-chars", str(CHAPTER_CHARS)))
    timed("outline_6", ("outline", "generate", *nv, "--chapters", "6", "--seed", str(OUTLINE_SEED)))
    (written,) = timed(
        "chapter_2_candidates",
        ("write", "chapter", "1", *nv, "--target-chars", str(CHAPTER_CHARS), "--candidates", "2",
         "--seed", "1", "--json"),
    )  # fmt: skip
    versions = {c["candidate"]: c["version"] for c in json.loads(written)["candidates"]}
    timed("accept_2", ("chapter", "accept", *nv, "1", "--version", str(versions[1])))
    timed(
        "extract", ("memory", "extract", *nv, "--chapter", "1", "--json"), ("memory", "review", *nv, "--json")
    )
    _seed_proposals(settings)  # untimed, as on the page
    (p0, _), (p1, _), (p2, _) = PROPOSALS
    timed("approve", ("memory", "review", "approve", p0, *nv))
    timed("edit_approve", ("memory", "review", "approve", p1, *nv, "--set", f"text={EDITED_TEXT}"))
    timed("reject", ("memory", "review", "reject", p2, *nv))
    novel = Novels.from_settings(settings).get(SLUG)
    texts = {v.id: v.text for v in novel.versions(1)}
    out["cands"] = [texts[versions[0]], texts[versions[1]]]
    out["edited"] = _clean(novel.text(1))
    (work / "hand.txt").write_text(out["edited"], "utf-8")
    timed("hand_edit", ("chapter", "set", *nv, "1", "--file", str(work / "hand.txt")))
    timed(
        "export_epub_docx",
        ("novel", "export", SLUG, "--format", "epub", "--output", str(work / "book.epub")),
        ("novel", "export", SLUG, "--format", "docx", "--output", str(work / "book.docx")),
    )
    novel = Novels.from_settings(settings).get(SLUG)
    out["outline"] = [c.title for c in novel.outline().chapters()]
    out["text"] = novel.text(1)
    out["memory"] = _memory_names(settings)
    out["epub"], out["docx"] = (work / "book.epub").read_bytes(), (work / "book.docx").read_bytes()
    # what each model command pays before its work: a model command with (almost) nothing to do (one
    # token) against a command without a model; both start Python and import the CLI
    for name, command in (
        ("model_noop_s", ("inference", "--prompt", "雨", "--max-tokens", "1", "--seed", "1")),
        ("plain_s", ("novel", "list")),
    ):
        start = time.perf_counter()
        run(*command)
        out[name] = round(time.perf_counter() - start, 3)
    return steps, out


# ----------------------------------------------------------------------------- the Python API side
def api_journey(work: Path, model: Path) -> tuple[dict, dict, float]:
    """The same steps in this process on ONE engine: the functions the page's handlers and the CLI call
    (``xiaoshuo.writing`` / ``xiaoshuo.memory``).  Returns (per-step seconds, what it produced, the
    engine's start in seconds, untimed in the steps)."""
    import dataclasses

    from xiaoshuo.engine import load_engine
    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.testing import tiny_engine_settings
    from xiaoshuo.writing import Novels, Writer, run_sync
    from xiaoshuo.writing.exporting import export_book
    from xiaoshuo.writing.extraction import Extractor
    from xiaoshuo.writing.planning import PlanLimits, generate_outline
    from xiaoshuo.writing.review import ReviewQueue, parse_edits
    from xiaoshuo.writing.structured import DEFAULT_SAMPLING

    work.mkdir(parents=True, exist_ok=True)
    settings = tiny_engine_settings(model, work, **OVERRIDES)
    steps: dict[str, float] = {}
    out: dict = {}

    def timed(name, fn):
        start = time.perf_counter()
        value = fn()
        steps[name] = round(time.perf_counter() - start, 3)
        return value

    start = time.perf_counter()
    with load_engine(settings, backend="vllm") as engine, MemoryStore(settings) as store:
        engine_start = time.perf_counter() - start
        lib = Novels.from_settings(settings)
        novel = timed("create_novel", lambda: lib.create(SLUG, title=TITLE, chapter_chars=CHAPTER_CHARS))
        timed(
            "outline_6",
            lambda: run_sync(
                generate_outline(
                    engine,
                    novel,
                    chapters=6,
                    batch=settings.writing.outline_batch,
                    limits=PlanLimits.from_settings(settings),
                    sampling=dataclasses.replace(DEFAULT_SAMPLING, seed=OUTLINE_SEED),
                    store=store,
                )
            ),
        )
        writer = Writer(settings, engine, novel, store=store)
        written = timed(
            "chapter_2_candidates",
            lambda: run_sync(writer.write_chapter(1, target_chars=CHAPTER_CHARS, candidates=2, seed=1)),
        )
        out["cands"] = [c.new_text for c in written.candidates]
        timed("accept_2", lambda: novel.accept(1, written.candidates[1].version))
        timed("extract", lambda: run_sync(Extractor(settings, engine, novel, store).extract([1])))
        _seed_proposals(settings)  # untimed, as on the other sides
        queue = ReviewQueue.of(novel)
        (p0, _), (p1, _), (p2, _) = PROPOSALS
        timed("approve", lambda: queue.approve(p0, store))
        edits = parse_edits("character", [f"text={EDITED_TEXT}"])
        timed("edit_approve", lambda: queue.approve(p1, store, edits=edits))
        timed("reject", lambda: queue.reject(p2))
        out["edited"] = _clean(novel.text(1))
        timed("hand_edit", lambda: novel.set_text(1, out["edited"]))

        def export():
            for fmt in ("epub", "docx"):
                export_book(novel, fmt, work / f"book.{fmt}")

        timed("export_epub_docx", export)
        out["outline"] = [c.title for c in novel.outline().chapters()]
        out["text"] = novel.text(1)
        out["memory"] = _memory_names(settings, store)
    out["epub"], out["docx"] = (work / "book.epub").read_bytes(), (work / "book.docx").read_bytes()
    return steps, out, engine_start


# ----------------------------------------------------------------------------- main
def _small_png(path: Path) -> int:
    """Palette-quantise a screenshot when it is over the README's size limit; returns its size."""
    if path.stat().st_size > SHOT_LIMIT:
        from PIL import Image

        Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)
    return path.stat().st_size


def _check_journey(name: str, out: dict) -> dict:
    import zipfile
    from io import BytesIO

    assert len(out["outline"]) == 6, (name, out["outline"])
    assert out["text"] == out["edited"], f"{name}: chapter 1 is not the hand edit"
    assert out["memory"] == {PROPOSALS[0][1]: f"{PROPOSALS[0][1]}的描述", PROPOSALS[1][1]: EDITED_TEXT}, (
        name,
        out["memory"],
    )
    for fmt in ("epub", "docx"):
        assert zipfile.is_zipfile(BytesIO(out[fmt])), f"{name}: {fmt} is not a zip"
    return {"outline": out["outline"], "cands": [_nl(c) for c in out["cands"]]}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        print(json.dumps(_clients(sys.argv[2], int(sys.argv[3]))))
        return
    shots_to = Path(sys.argv[sys.argv.index("--shots") + 1]) if "--shots" in sys.argv else None
    from playwright.sync_api import sync_playwright

    from xiaoshuo.testing import build_tiny_model, tiny_engine_settings
    from xiaoshuo.webui.launch import launch

    result: dict = {
        "bench": "webui",
        "model": "tiny test model size=small on vLLM (fp32)",
        "chapter_chars": CHAPTER_CHARS,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_tiny_model(tmp / "small", size="small")
        shots = Path(tempfile.mkdtemp(prefix="xiaoshuo-bench-shots-"))  # outlives tmp: kept on failure
        print(f"screenshots: {shots}", file=sys.stderr)
        # --- the page
        ui_dir = tmp / "ui"
        port = _free_port()
        settings = tiny_engine_settings(model, ui_dir, **OVERRIDES, **{"webui.port": port})
        start = time.perf_counter()
        demo, services = launch(settings, backend="vllm", block=False)
        services.engine.wait(timeout=600)
        engine_start = time.perf_counter() - start
        assert services.engine.status()[0] == "ready", services.engine.status()
        app = {"url": f"http://127.0.0.1:{port}/", "services": services, "shots": shots}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    ui_steps, ui_out = browser_journey(app, browser)
                    stream = streaming(app, ui_out["page"])
                finally:
                    browser.close()
            scratch = scratch_tokens(services, app["url"])
        finally:
            services.close()
            demo.close()
        # --- the Python API in this process on one engine, after the app is gone
        api_steps, api_out, api_engine_start = api_journey(tmp / "api", model)
        # --- the CLI, after both (nothing else on the two cores)
        cli_dir = tmp / "cli"
        cli_dir.mkdir()
        cli_settings = tiny_engine_settings(model, cli_dir, **OVERRIDES)
        values = {
            "model.base_model": str(model),
            "model.dtype": "float32",
            "engine.backend": "vllm",
            "engine.cpu_kv_cache_gib": 1,
            "paths.data_dir": str(cli_dir / "data"),
            "paths.models_dir": str(cli_dir / "models"),
            **OVERRIDES,
        }
        cli_steps, cli_out = cli_journey(cli_dir, values, cli_settings)
        same = {
            side: _check_journey(side, o)
            for side, o in (("browser", ui_out), ("cli", cli_out), ("api", api_out))
        }
        journey_ui = sum(v for k, v in ui_steps.items() if k != "open_page")
        journey_cli = sum(cli_steps.values())
        journey_api = sum(api_steps.values())
        engine_per_command = cli_out["model_noop_s"] - cli_out["plain_s"]
        cli_work = journey_cli - MODEL_COMMANDS * engine_per_command
        result["journey"] = {
            "browser_s": round(journey_ui, 2),
            "browser_with_page_load_s": round(journey_ui + ui_steps["open_page"], 2),
            "cli_s": round(journey_cli, 2),
            "api_s": round(journey_api, 2),
            "browser_over_cli": round(journey_ui / journey_cli, 3),
            "browser_over_api": round(journey_ui / journey_api, 3),
            "cli_over_api": round(journey_cli / journey_api, 3),
            "cli_model_command_noop_s": cli_out["model_noop_s"],
            "cli_plain_command_s": cli_out["plain_s"],
            "cli_engine_start_per_command_s": round(engine_per_command, 2),
            "cli_model_commands": MODEL_COMMANDS,
            "cli_minus_engine_starts_s": round(cli_work, 2),
            "cli_minus_engine_starts_over_api": round(cli_work / journey_api, 3),
            "browser_over_cli_minus_engine_starts": round(journey_ui / cli_work, 3),
            "app_engine_start_s": round(engine_start, 1),
            "api_engine_start_s": round(api_engine_start, 1),
            "note": "the CLI's outline_6, chapter_2_candidates and extract each include an engine start "
            "(cli_engine_start_per_command_s: `inference --max-tokens 1` minus `novel list`); "
            "the page and the API each run on one engine started before the clock",
            "outline_seed": OUTLINE_SEED,
            "same_outline": same["browser"]["outline"] == same["cli"]["outline"] == same["api"]["outline"],
            "same_candidates": same["browser"]["cands"] == same["cli"]["cands"] == same["api"]["cands"],
            "same_pairwise": {
                f"{a}_{b}": {
                    "outline": same[a]["outline"] == same[b]["outline"],
                    "candidates": same[a]["cands"] == same[b]["cands"],
                }
                for a, b in (("browser", "cli"), ("browser", "api"), ("cli", "api"))
            },
            "steps": {
                k: {"browser_s": ui_steps[k], "cli_s": cli_steps.get(k), "api_s": api_steps.get(k)}
                for k in ui_steps
            },
        }
        result["streaming"] = stream
        result["scratch_tokens"] = scratch
        if shots_to is not None:
            shots_to.mkdir(parents=True, exist_ok=True)
            sizes = {}
            for png in sorted(shots.glob("webui-*.png")):
                sizes[png.name] = _small_png(png)
                shutil.copy(png, shots_to / png.name)
            result["screenshots"] = sizes
    report("webui", result)


if __name__ == "__main__":
    sys.exit(main())
