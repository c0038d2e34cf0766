"""What every WebUI page shares while it runs: waiting for the engine, coalescing a stream into page
updates, and one CLI subprocess at a time (training, model downloads).

- :data:`MAX_CANDIDATES`, :data:`STREAM_INTERVAL`, :data:`LOAD_TIMEOUT_S`: the one number of candidates a
  page shows side by side, the one pause between streamed page updates, the one wait for a loading model;
  :func:`candidate_columns`: as many candidate boxes shown as 候选数.
- :func:`inspector_reason`, :func:`inspector_item`: the context inspector's rows (``writing.compose``
  records them in English, as the CLI prints them) in the page's language (创作 and 随手写).
- :func:`wait_for_engine` (async: yields ``None`` while the model loads, then the engine),
  :func:`ready_engine` (async) and :func:`engine_when_ready` (blocking, for a handler on a worker thread).
- :class:`Coalescer`: one page update per interval, not one per token.
- :class:`SubprocessJob`: starts ``xiaoshuo …`` in its own session, says whether it runs, stops it (and
  its children); ``TrainingJobs`` (``webui.services``) and ``ModelDownload`` (``webui.downloads``) are it.

Not responsible for loading the engine (``services.EngineHolder``), for what a job's command is or what
its output means (the job's own class), or for any component (the page folders under ``webui/pages``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui.locale import t

MAX_CANDIDATES = 3  # candidates shown side by side (the pages lay out this many boxes)
# seconds between streamed page updates: at 0.05 a 2-core machine lagged up to 7.5 s behind the engine
STREAM_INTERVAL = 0.25
LOAD_TIMEOUT_S = 1800.0  # how long a click waits for a model still loading (a large model, first time)


def candidate_columns(n: Any) -> list[Any]:
    """候选数 changed: show that many candidate boxes (with their 采用 buttons), hide the rest."""
    import gradio as gr

    try:
        shown = max(1, min(int(n or 1), MAX_CANDIDATES))
    except (TypeError, ValueError):
        shown = 1
    return [gr.update(visible=i < shown) for i in range(MAX_CANDIDATES)]
ENGINE_POLL_S = 0.5  # how often a waiting click asks whether the model is there
YIELD_S = 0.005  # a pause after each streamed update, so Gradio's sender task gets to run
LOADING_TEXT = t("engine_loading")  # what a candidate box says while the model loads (Chinese page)


# ----------------------------------------------------------------------------- engine readiness
def _load_timeout_error(services: Any, load_timeout: float, lang: str) -> XiaoshuoError:
    return XiaoshuoError(
        t("engine_err_load_timeout", lang),
        expected=f"the model loaded within {load_timeout:.0f} s",
        received=services.engine.status()[1],
        fix=t("engine_fix_load_timeout", lang),
    )


async def wait_for_engine(
    services: Any, *, load_timeout: float = LOAD_TIMEOUT_S, lang: str = "zh"
) -> AsyncIterator[Any]:
    """Wait for a loading engine, yielding ``None`` every :data:`ENGINE_POLL_S` meanwhile (a page shows
    :data:`LOADING_TEXT`), then yield the engine once.  A failed load raises its clear error; a load
    longer than ``load_timeout`` raises one that says the model is still loading."""
    deadline = time.monotonic() + load_timeout
    while services.engine.loading():  # wait for the engine instead of failing the click
        if time.monotonic() > deadline:
            raise _load_timeout_error(services, load_timeout, lang)
        yield None
        await asyncio.sleep(ENGINE_POLL_S)
    yield services.engine.get()


async def ready_engine(services: Any, *, load_timeout: float = LOAD_TIMEOUT_S, lang: str = "zh") -> Any:
    """The engine, once loaded (see :func:`wait_for_engine`)."""
    engine = None
    async for engine in wait_for_engine(services, load_timeout=load_timeout, lang=lang):  # noqa: B007
        pass
    return engine


def engine_when_ready(services: Any, *, load_timeout: float = LOAD_TIMEOUT_S, lang: str = "zh") -> Any:
    """The engine, once loaded, blocking this thread (a handler Gradio runs on a worker thread)."""
    deadline = time.monotonic() + load_timeout
    while services.engine.loading():
        if time.monotonic() > deadline:
            raise _load_timeout_error(services, load_timeout, lang)
        time.sleep(ENGINE_POLL_S)
    return services.engine.get()


def loading_texts(n: int, lang: str = "zh") -> list[str]:
    """The candidate boxes while the model loads: the first ``n`` say so, the rest stay empty."""
    n = max(0, min(n, MAX_CANDIDATES))
    return [t("engine_loading", lang)] * n + [""] * (MAX_CANDIDATES - n)


# ----------------------------------------------------------------------------- stream coalescing
class Coalescer:
    """One page update per ``interval`` while a stream changes, not one per token.

    Call :meth:`changed` when new text arrived and yield an update when :meth:`due` says so; the last
    state is always yielded by the caller after the stream ends."""

    def __init__(self, interval: float = STREAM_INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._last = clock()
        self._pending = False

    def changed(self) -> None:
        self._pending = True

    def due(self) -> bool:
        """Whether an update is owed now (something changed and ``interval`` has passed); resets."""
        if self._pending and self._clock() - self._last >= self.interval:
            self._last, self._pending = self._clock(), False
            return True
        return False


# ----------------------------------------------------------------------------- subprocess jobs
class SubprocessJob:
    """One CLI subprocess at a time, in its own session (so stopping it stops its children too).

    ``busy`` makes the error for a second start while one runs.  Subclasses say what the command is and
    read its output; ``self._lock`` (re-entrant) guards the process and may guard their own state."""

    def __init__(self, busy: Callable[[], XiaoshuoError]) -> None:
        self._busy = busy
        self._proc: subprocess.Popen | None = None
        self._lock = threading.RLock()

    @property
    def proc(self) -> subprocess.Popen | None:
        return self._proc

    def launch(self, cmd: list[str], **popen: Any) -> subprocess.Popen:
        """Start ``cmd`` (``popen``: ``subprocess.Popen``'s arguments); raises ``busy()`` while one runs."""
        with self._lock:
            if self.running():
                raise self._busy()
            self._proc = subprocess.Popen(cmd, start_new_session=True, **popen)
            return self._proc

    def running(self) -> bool:
        with self._lock:
            return self._proc is not None and self._proc.poll() is None

    def signal(self, sig: int = signal.SIGTERM, *, group: bool = True) -> bool:
        """Send ``sig`` to the process (``group``: and its children); whether it was running."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return False
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(proc.pid, sig)
                else:
                    proc.send_signal(sig)
            return True

    def terminate(self, *, timeout: float = 10.0) -> None:
        """Stop the process group now: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        proc = self._proc
        if not self.signal(signal.SIGTERM):
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)


# ---------------------------------------------------------------- the context inspector's words (both pages)
def inspector_reason(reason: str, lang: str = "zh") -> str:
    """An inspector reason as :mod:`xiaoshuo.writing.compose` / :mod:`xiaoshuo.memory.context` record it
    (English, what the CLI prints) in the page's words; parts joined by ``; `` one by one; a reason no
    pattern knows is shown as it is."""
    import re

    from xiaoshuo.webui.locale import STRINGS
    from xiaoshuo.webui.locale.book import INSPECTOR_PATTERNS

    def one(part: str) -> str:
        for pattern, key in INSPECTOR_PATTERNS:
            m = re.fullmatch(pattern, part)
            if m is None:
                continue
            values = m.groupdict()
            if "how" in values:
                values["how"] = "+".join(
                    t(f"book_insp_how_{x}", lang) if f"book_insp_how_{x}" in STRINGS else x
                    for x in values["how"].split("+")
                )
            return t(key, lang, **values) if values else t(key, lang)
        return part

    return ("；" if lang == "zh" else "; ").join(one(p.strip()) for p in str(reason).split(";"))


def inspector_item(row: dict[str, Any], lang: str = "zh") -> str:
    """The 条目 cell: the entry's name (a memory entry, a chapter title), else where the row comes from."""
    import re

    source, name = str(row.get("source") or ""), str(row.get("name") or "")
    kind, _, ref = source.partition(":")
    if kind == "config":
        return t("book_insp_s_config", lang)
    if kind == "text":
        m = re.match(r"(\d+)", name)
        return t("book_insp_s_text", lang, n=m.group(1)) if m else name
    if name:
        return name
    if kind == "request":
        return t("book_insp_s_request", lang)
    if kind in ("outline", "chapter", "summary") and ref.isdigit():
        return t(f"book_insp_s_{kind}", lang, n=ref)
    return source
