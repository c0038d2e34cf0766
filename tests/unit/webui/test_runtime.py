"""``webui.runtime``: one engine wait, one stream pace, one subprocess job for training and downloads."""

from __future__ import annotations

import ast
import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import xiaoshuo.webui.locale as locale_pkg
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.webui import runtime
from xiaoshuo.webui.downloads import ModelDownload
from xiaoshuo.webui.services import TrainingJobs

from .conftest import Holder

WEBUI = Path(locale_pkg.__file__).parent.parent


class Loads(Holder):
    """Loading for ``polls`` questions, then ready."""

    def __init__(self, polls: int) -> None:
        super().__init__(object(), state="loading")
        self.polls = polls

    def loading(self) -> bool:
        self.polls -= 1
        if self.polls < 0:
            self.state = "ready"
        return self.state == "loading"


def test_the_page_waits_for_a_loading_engine_then_gets_it(services, monkeypatch) -> None:
    monkeypatch.setattr(runtime, "ENGINE_POLL_S", 0.01)
    services.engine = Loads(polls=2)

    async def seen():
        return [e async for e in runtime.wait_for_engine(services)]

    got = asyncio.run(asyncio.wait_for(seen(), timeout=10))
    assert got[:2] == [None, None] and got[2] is services.engine.engine and len(got) == 3
    services.engine = Loads(polls=2)
    assert runtime.engine_when_ready(services) is services.engine.engine
    services.engine = Loads(polls=1)
    assert asyncio.run(runtime.ready_engine(services)) is services.engine.engine


def test_a_load_longer_than_the_timeout_says_so_in_the_page_language(services, monkeypatch) -> None:
    monkeypatch.setattr(runtime, "ENGINE_POLL_S", 0.01)
    services.engine = Holder(state="loading", model="Qwen/Qwen3-8B")
    with pytest.raises(XiaoshuoError) as err:
        runtime.engine_when_ready(services, load_timeout=0.05, lang="en")
    assert err.value.message.startswith("The model is still loading") and "Qwen3-8B" in err.value.received

    async def wait():
        async for _ in runtime.wait_for_engine(services, load_timeout=0.05):
            pass

    with pytest.raises(XiaoshuoError, match="模型加载超时"):
        asyncio.run(asyncio.wait_for(wait(), timeout=10))
    services.engine = Holder(state="error")  # a failed load: its own error at once, no waiting
    with pytest.raises(XiaoshuoError, match="the model is not ready"):
        runtime.engine_when_ready(services)
    assert runtime.loading_texts(2) == [runtime.LOADING_TEXT] * 2 + [""]


def test_the_coalescer_gives_one_update_per_interval() -> None:
    now = [0.0]
    pace = runtime.Coalescer(0.25, clock=lambda: now[0])
    assert not pace.due()  # nothing changed
    pace.changed()
    assert not pace.due()  # changed, but too soon
    now[0] = 0.3
    assert pace.due() and not pace.due()  # once, then nothing new
    for step in range(10):  # 10 deltas within one interval: one update
        now[0] = 0.31 + step * 0.01
        pace.changed()
    updates = [pace.due()]
    now[0] = 0.6
    updates.append(pace.due())
    assert updates == [False, True]


def test_one_number_of_candidates_one_interval_one_load_timeout() -> None:
    """``MAX_CANDIDATES``, ``STREAM_INTERVAL`` and ``LOAD_TIMEOUT_S`` are assigned in runtime.py only."""
    names = {"MAX_CANDIDATES", "STREAM_INTERVAL", "LOAD_TIMEOUT_S"}
    found = []
    for path in sorted(WEBUI.rglob("*.py")):
        rel = path.relative_to(WEBUI).as_posix()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found += [(rel, t.id) for t in targets if isinstance(t, ast.Name) and t.id in names]
    assert sorted(found) == [("runtime.py", n) for n in sorted(names)]


# ----------------------------------------------------------------------------- subprocess jobs
def _sleeper(job: runtime.SubprocessJob, seconds: int = 60) -> subprocess.Popen:
    """A child that starts a grandchild in its group, both sleeping."""
    code = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep({seconds})']); "
        f"time.sleep({seconds})"
    )
    return job.launch([sys.executable, "-c", code])


def test_a_job_runs_one_at_a_time_and_stops_with_its_children() -> None:
    job = runtime.SubprocessJob(busy=lambda: XiaoshuoError("已有任务在运行"))
    assert not job.running() and not job.signal()
    proc = _sleeper(job)
    try:
        assert job.running() and job.proc is proc
        with pytest.raises(XiaoshuoError, match="已有任务在运行"):
            _sleeper(job)
        time.sleep(0.5)  # the grandchild has started
        start = time.monotonic()
        job.terminate(timeout=10)
        assert not job.running() and time.monotonic() - start < 10
        assert proc.returncode == -signal.SIGTERM
        # the whole group got it: nothing of it is left
        left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True, timeout=10)
        deadline = time.monotonic() + 10
        while left.stdout.strip() and time.monotonic() < deadline:
            time.sleep(0.1)
            left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True, timeout=10)
        assert left.stdout.strip() == ""
    finally:
        job.signal(signal.SIGKILL)


def test_training_and_downloads_are_the_same_job_class(services) -> None:
    assert isinstance(services.jobs, TrainingJobs) and isinstance(services.downloads, ModelDownload)
    assert isinstance(services.jobs, runtime.SubprocessJob) and isinstance(
        services.downloads, runtime.SubprocessJob
    )
    # a second download while one runs is refused with the page's words
    job = services.downloads
    job.launch([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(XiaoshuoError, match="已有下载在进行"):
            job.start("org/tiny", "hf")
    finally:
        job.terminate(timeout=10)
    assert not job.running()
