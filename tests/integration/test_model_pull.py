"""``xiaoshuo model pull`` with the real ``huggingface_hub`` client against a hub served locally.

No hub is reachable here, so the test starts one (``hub_server.Hub``: Hugging Face's URL layout over
real HTTP) serving a tiny model built on the spot, and points the client at it through ``HF_ENDPOINT``
— the mirror switch a user in China sets.  Covered: the progress events, the files landing where
``model.base_model`` finds them, resuming after the download process is killed, the free-disk check
before anything is fetched, and offline → one "离线" message naming ``xiaoshuo model pull`` in seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import Hub

REPO_ID = "org/tiny"


def _env(hub_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XIAOSHUO_", "HF_", "MODELSCOPE_")) and k != "TRANSFORMERS_OFFLINE"
    }
    env.update(
        HF_ENDPOINT=hub_url,
        HF_HOME=str(tmp_path / "hf-home"),
        XIAOSHUO_MODEL__SOURCE="hf",
        XIAOSHUO_PATHS__MODELS_DIR=str(tmp_path / "models"),
    )
    env.update(extra)
    return env


def _pull_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "xiaoshuo", "model", "pull", REPO_ID, "--json-progress", *args]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _same_files(a: Path, b: Path) -> None:
    want = {p.relative_to(a).as_posix(): p.read_bytes() for p in a.rglob("*") if p.is_file()}
    got = {
        p.relative_to(b).as_posix(): p.read_bytes()
        for p in b.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(b).parts
    }
    assert set(got) == set(want)
    assert all(got[k] == want[k] for k in want), [k for k in want if got[k] != want[k]]


def test_pull_shows_progress_and_lands_where_base_model_finds_it(tmp_path: Path, tiny_model: Path) -> None:
    with Hub({REPO_ID: tiny_model}) as hub:
        hub.throttle = 400_000  # bytes/s: ~1.5 s for the tiny model, several progress events
        out = _run(_pull_cmd(), tmp_path, _env(hub.url, tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    events = _events(out.stdout)
    plan = events[0]
    total = sum(p.stat().st_size for p in tiny_model.iterdir() if p.is_file())
    assert plan["event"] == "plan" and plan["source"] == "hf" and plan["total"] == total
    assert plan["endpoint"] == hub.url
    done = [e["done"] for e in events if e["event"] == "progress"]
    assert done == sorted(done) and done[-1] == total
    assert any(0 < d < total for d in done), done  # seen half-way, not only 0 and 100 %
    assert events[-1] == {"event": "done", "model": REPO_ID, "path": str(tmp_path / "models" / REPO_ID)}
    _same_files(tiny_model, tmp_path / "models" / REPO_ID)

    # the hub id now resolves to the pulled folder, offline, for every command
    cfg = subprocess.run(
        [sys.executable, "-m", "xiaoshuo", "--set", f"model.base_model={REPO_ID}", "config", "--json"],
        cwd=tmp_path,
        env=_env("http://127.0.0.1:9", tmp_path, HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cfg.returncode == 0, cfg.stderr
    assert json.loads(cfg.stdout)["settings"]["model"]["base_model"] == str(tmp_path / "models" / REPO_ID)
    listed = subprocess.run(
        [sys.executable, "-m", "xiaoshuo", "--set", f"model.base_model={REPO_ID}", "model", "list", "--json"],
        cwd=tmp_path,
        env=_env("http://127.0.0.1:9", tmp_path, HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    rows = json.loads(listed.stdout)["models"]
    assert [(r["name"], r["used_by"]) for r in rows] == [(REPO_ID, ["model.base_model"])]


def test_a_killed_download_resumes_where_it_stopped(tmp_path: Path, tiny_model: Path) -> None:
    weights = "model.safetensors"
    size = (tiny_model / weights).stat().st_size
    target = tmp_path / "models" / REPO_ID
    with Hub({REPO_ID: tiny_model}) as hub:
        hub.throttle = 100_000  # ~5 s for the weights: time to kill it half-way
        proc = subprocess.Popen(
            _pull_cmd(),
            cwd=tmp_path,
            env=_env(hub.url, tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            partial = 0
            while partial < 100_000:
                assert time.monotonic() < deadline, "the download never got going"
                assert proc.poll() is None, proc.communicate()[1][-2000:]
                partial = sum(p.stat().st_size for p in target.glob(".cache/xiaoshuo/**/*.part"))
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
        assert not (target / weights).exists()

        hub.throttle = None
        hub.requests.clear()
        out = _run(_pull_cmd(), tmp_path, _env(hub.url, tmp_path))
        assert out.returncode == 0, out.stderr[-3000:]
        ranges = [r for m, p, r in hub.requests if m == "GET" and p.endswith("/" + weights)]
    assert len(ranges) == 1 and ranges[0] is not None, hub.requests
    start = int(ranges[0].split("=")[1].split("-")[0])
    assert 100_000 <= start < size  # asked only for the missing tail
    first = _events(out.stdout)[1]
    assert first["event"] == "progress" and first["done"] >= start  # progress starts from what is there
    _same_files(tiny_model, target)


def test_disk_check_refuses_before_fetching_anything(tmp_path: Path, tiny_model: Path) -> None:
    with Hub({REPO_ID: tiny_model}) as hub:
        hub.claimed_sizes["model.safetensors"] = 1 << 50  # the hub's file list says 1 PiB
        out = _run(_pull_cmd(), tmp_path, _env(hub.url, tmp_path))
        fetched = [p for m, p, _ in hub.requests if "/resolve/" in p]
    assert out.returncode != 0
    assert "磁盘空间不够" in out.stderr and "PiB" not in out.stderr and "GiB free" in out.stderr, out.stderr
    assert fetched == []
    assert not (tmp_path / "models" / REPO_ID / "model.safetensors").exists()
    assert _events(out.stdout)[-1]["event"] == "error"


def test_offline_with_nothing_cached_says_what_to_do_in_seconds(tmp_path: Path) -> None:
    """No hub answers (a closed port), HF_HUB_OFFLINE not set: one 离线 line naming model pull, fast."""
    env = _env("http://127.0.0.1:9", tmp_path)  # port 9 (discard): connection refused
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "xiaoshuo", "--set", "model.base_model=Qwen/Qwen2.5-1.5B-Instruct", "prepare",
         "--sample"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.perf_counter() - start
    assert out.returncode != 0
    error = [line for line in out.stderr.splitlines() if line.startswith("错误 error:")]
    assert len(error) == 1, out.stderr[-3000:]
    assert "离线" in error[0] and "xiaoshuo model pull Qwen/Qwen2.5-1.5B-Instruct" in error[0], error[0]
    assert str(Path("models") / "Qwen" / "Qwen2.5-1.5B-Instruct") in error[0]
    assert seconds < 30, seconds  # the hub's own retries took ~50 s before (imports alone take ~10 s here)


@pytest.mark.parametrize("source", ["auto"])
def test_auto_source_says_which_answered(tmp_path: Path, tiny_model: Path, source: str) -> None:
    with Hub({REPO_ID: tiny_model}) as hub:
        out = subprocess.run(
            _pull_cmd("--source", source),
            cwd=tmp_path,
            env=_env(hub.url, tmp_path, MODELSCOPE_ENDPOINT="http://127.0.0.1:9"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 0, out.stderr[-3000:]
    plan = _events(out.stdout)[0]
    assert plan["source"] == "hf" and "已响应 answered" in plan["why"]
