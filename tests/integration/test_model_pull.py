"""``xiaoshuo model pull`` with the real hub clients against a hub served locally.

No hub is reachable here, so the test starts one (``hub_server.Hub``: Hugging Face's and ModelScope's
URL layouts over real HTTP) serving a tiny model built on the spot, and points the clients at it —
``HF_ENDPOINT`` (the mirror switch a user in China sets) for ``huggingface_hub``, ``MODELSCOPE_ENDPOINT``
for the ``modelscope`` client.  Covered for both: the progress events, the files landing where
``model.base_model`` finds them, resuming after the download process is killed, the free-disk check
before anything is fetched; then ``auto`` picking the source that answers, offline → one "离线"
message naming ``xiaoshuo model pull`` in seconds, and the WebUI's download job (progress, cancel).
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
DEAD = "http://127.0.0.1:9"  # the discard port: connection refused at once
SOURCES = ["hf", "modelscope"]
QWEN = "Qwen/Qwen2.5-1.5B-Instruct"


def _env(tmp_path: Path, *, hf: str = DEAD, modelscope: str = DEAD, source: str = "hf", **extra: str):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XIAOSHUO_", "HF_", "MODELSCOPE_")) and k != "TRANSFORMERS_OFFLINE"
    }
    env.update(
        HF_ENDPOINT=hf,
        HF_HOME=str(tmp_path / "hf-home"),
        MODELSCOPE_ENDPOINT=modelscope,
        MODELSCOPE_CACHE=str(tmp_path / "modelscope-cache"),
        XIAOSHUO_MODEL__SOURCE=source,
        XIAOSHUO_PATHS__MODELS_DIR=str(tmp_path / "models"),
    )
    env.update(extra)
    return env


def _hub_env(tmp_path: Path, hub: Hub, source: str, **extra: str) -> dict[str, str]:
    return _env(tmp_path, hf=hub.url, modelscope=hub.url, source=source, **extra)


def _pull_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "xiaoshuo", "model", "pull", REPO_ID, "--json-progress", *args]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _file_requests(hub: Hub, name: str) -> list[tuple[str, str | None]]:
    """GETs of one file's bytes (either layout) and their Range headers."""
    return [
        (p, r)
        for m, p, r in hub.requests
        if m == "GET" and (p.endswith(f"/resolve/{p.split('/resolve/')[-1]}") or "FilePath=" in p)
        and (p.endswith("/" + name) or p.endswith("FilePath=" + name) or f"FilePath={name}&" in p)
    ]


def _same_files(a: Path, b: Path) -> None:
    want = {p.relative_to(a).as_posix(): p.read_bytes() for p in a.rglob("*") if p.is_file()}
    got = {
        p.relative_to(b).as_posix(): p.read_bytes()
        for p in b.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(b).parts
    }
    assert set(got) == set(want)
    assert all(got[k] == want[k] for k in want), [k for k in want if got[k] != want[k]]


@pytest.mark.parametrize("source", SOURCES)
def test_pull_shows_progress_and_lands_where_base_model_finds_it(
    tmp_path: Path, tiny_model: Path, source: str
) -> None:
    with Hub({REPO_ID: tiny_model}) as hub:
        hub.throttle = 300_000  # bytes/s: ~2 s for the tiny model, several progress events
        out = _run(_pull_cmd(), tmp_path, _hub_env(tmp_path, hub, source))
    assert out.returncode == 0, out.stderr[-3000:]
    events = _events(out.stdout)
    plan = events[0]
    total = sum(p.stat().st_size for p in tiny_model.iterdir() if p.is_file())
    assert plan["event"] == "plan" and plan["source"] == source and plan["total"] == total
    assert plan["endpoint"] == hub.url
    done = [e["done"] for e in events if e["event"] == "progress"]
    assert done == sorted(done) and done[-1] == total
    assert any(0 < d < total for d in done), done  # seen half-way, not only 0 and 100 %
    assert events[-1] == {"event": "done", "model": REPO_ID, "path": str(tmp_path / "models" / REPO_ID)}
    _same_files(tiny_model, tmp_path / "models" / REPO_ID)

    # the hub id now resolves to the pulled folder, offline, for every command
    offline = _env(tmp_path, HF_HUB_OFFLINE="1")
    cfg = _run(
        [sys.executable, "-m", "xiaoshuo", "--set", f"model.base_model={REPO_ID}", "config", "--json"],
        tmp_path,
        offline,
    )
    assert cfg.returncode == 0, cfg.stderr
    assert json.loads(cfg.stdout)["settings"]["model"]["base_model"] == str(tmp_path / "models" / REPO_ID)
    listed = _run(
        [sys.executable, "-m", "xiaoshuo", "--set", f"model.base_model={REPO_ID}", "model", "list", "--json"],
        tmp_path,
        offline,
    )
    rows = json.loads(listed.stdout)["models"]
    assert [(r["name"], r["where"], r["used_by"]) for r in rows] == [
        (REPO_ID, "models_dir", ["model.base_model"])
    ]


def test_a_pulled_hub_id_works_under_that_id_with_model_flags(tmp_path: Path, tiny_model: Path) -> None:
    """After ``model pull org/tiny``, ``--model org/tiny`` is ``models/org/tiny`` (issue 19.15): online the
    hub is not asked again (no second copy in the Hugging Face cache), offline a real generation runs.
    Every other command's ``--model`` is checked without an engine in tests/unit/test_cli.py."""
    folder = tmp_path / "models" / REPO_ID
    with Hub({REPO_ID: tiny_model}) as hub:
        out = _run(_pull_cmd(), tmp_path, _hub_env(tmp_path, hub, "hf"))
        assert out.returncode == 0, out.stderr[-3000:]
        hub.requests.clear()
        serve = _run(
            [sys.executable, "-m", "xiaoshuo", "serve", "--dry-run", "--model", REPO_ID],
            tmp_path,
            _hub_env(tmp_path, hub, "hf"),
        )
        asked = list(hub.requests)
    assert serve.returncode == 0, serve.stderr[-3000:]
    cmd = serve.stdout.split()
    assert cmd[cmd.index("--model") + 1] == str(folder) and asked == []
    generate = ["inference", "--model", REPO_ID, "--backend", "transformers", "-p", "你好", "--json"]
    offline = _env(tmp_path, HF_HUB_OFFLINE="1")
    gen = _run([sys.executable, "-m", "xiaoshuo", *generate, "--max-tokens", "4"], tmp_path, offline)
    assert gen.returncode == 0, gen.stderr[-3000:]  # was: 离线：org/tiny 不在本地
    answers = _events(gen.stdout)
    assert len(answers) == 1 and answers[0]["tokens"] >= 1, gen.stdout
    assert not list((tmp_path / "hf-home").rglob("models--org--tiny"))


@pytest.mark.parametrize("source", SOURCES)
def test_a_killed_download_resumes_where_it_stopped(tmp_path: Path, tiny_model: Path, source: str) -> None:
    weights = "model.safetensors"
    size = (tiny_model / weights).stat().st_size
    target = tmp_path / "models" / REPO_ID
    partial_glob = ".cache/xiaoshuo/**/*.part" if source == "hf" else "**/*.incomplete"
    with Hub({REPO_ID: tiny_model}) as hub:
        hub.throttle = 60_000  # ~9 s for the weights: time to kill it half-way on a busy machine
        proc = subprocess.Popen(
            _pull_cmd(),
            cwd=tmp_path,
            env=_hub_env(tmp_path, hub, source),
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
                partial = sum(p.stat().st_size for p in target.glob(partial_glob) if p.is_file())
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
        assert not (target / weights).exists()

        hub.throttle = None
        hub.requests.clear()
        out = _run(_pull_cmd(), tmp_path, _hub_env(tmp_path, hub, source))
        assert out.returncode == 0, out.stderr[-3000:]
        ranges = [r for _, r in _file_requests(hub, weights)]
    assert len(ranges) == 1 and ranges[0] is not None, hub.requests
    start = int(ranges[0].split("=")[1].split("-")[0])
    # asked only for the missing tail (ours: from the partial file's end; the modelscope client resumes
    # from its last verified chunk boundary, which may lie a little before it)
    assert (100_000 if source == "hf" else 1) <= start < size, start
    first = _events(out.stdout)[1]
    assert first["event"] == "progress" and first["done"] >= start  # progress starts from what is there
    _same_files(tiny_model, target)


@pytest.mark.parametrize("source", SOURCES)
def test_disk_check_refuses_before_fetching_anything(tmp_path: Path, tiny_model: Path, source: str) -> None:
    with Hub({REPO_ID: tiny_model}) as hub:
        hub.claimed_sizes["model.safetensors"] = 1 << 50  # the hub's file list says 1 PiB
        out = _run(_pull_cmd(), tmp_path, _hub_env(tmp_path, hub, source))
        fetched = [p for m, p, _ in hub.requests if "/resolve/" in p or "FilePath=" in p]
    assert out.returncode != 0
    assert "磁盘空间不够" in out.stderr and "GiB free" in out.stderr, out.stderr
    assert fetched == []
    assert not (tmp_path / "models" / REPO_ID / "model.safetensors").exists()
    assert _events(out.stdout)[-1]["event"] == "error"


def test_auto_takes_the_source_that_answers_and_says_so(tmp_path: Path, tiny_model: Path) -> None:
    """Hugging Face silent (as in much of mainland China), ModelScope up: auto falls through to it."""
    with Hub({REPO_ID: tiny_model}) as hub:
        start = time.perf_counter()
        out = _run(_pull_cmd(), tmp_path, _env(tmp_path, hf=DEAD, modelscope=hub.url, source="auto"))
        seconds = time.perf_counter() - start
    assert out.returncode == 0, out.stderr[-3000:]
    plan = _events(out.stdout)[0]
    assert plan["source"] == "modelscope" and plan["endpoint"] == hub.url
    assert "已响应 answered" in plan["why"] and f"hf {DEAD}" in plan["why"], plan["why"]
    assert seconds < 60, seconds
    _same_files(tiny_model, tmp_path / "models" / REPO_ID)


def test_offline_with_nothing_cached_says_what_to_do_in_seconds(tmp_path: Path) -> None:
    """No hub answers, HF_HUB_OFFLINE not set: one 离线 line naming `xiaoshuo model pull`, fast."""
    start = time.perf_counter()
    out = _run(
        [sys.executable, "-m", "xiaoshuo", "--set", f"model.base_model={QWEN}", "prepare", "--sample"],
        tmp_path,
        _env(tmp_path),
    )
    seconds = time.perf_counter() - start
    assert out.returncode != 0
    error = [line for line in out.stderr.splitlines() if line.startswith("错误 error:")]
    assert len(error) == 1, out.stderr[-3000:]
    assert "离线" in error[0] and "xiaoshuo model pull Qwen/Qwen2.5-1.5B-Instruct" in error[0], error[0]
    assert str(Path("models") / "Qwen" / "Qwen2.5-1.5B-Instruct") in error[0]
    assert seconds < 30, seconds  # the hub client's own retries took ~50 s before (imports take seconds)


def test_webui_download_job_reports_progress_and_cancels(tmp_path: Path, tiny_model: Path, monkeypatch):
    """The 设置 tab's download: the same pull as a subprocess, its progress, cancel, then a resumed finish."""
    from xiaoshuo import config
    from xiaoshuo.webui.downloads import ModelDownload
    from xiaoshuo.webui.pages.downloads.handlers import progress_text

    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with Hub({REPO_ID: tiny_model}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        settings = config.load(env={}, cwd=tmp_path, overrides={"paths.models_dir": str(tmp_path / "models")})
        job = ModelDownload(settings)
        hub.throttle = 50_000  # ~11 s for the weights: ample time to cancel half-way on a busy machine
        job.start(REPO_ID, "hf")
        deadline = time.monotonic() + 60
        while not (job.status().get("state") == "downloading" and job.status().get("done", 0) > 0):
            assert time.monotonic() < deadline, job.status()
            assert job.status().get("state") != "error", job.status().get("message")
            time.sleep(0.1)
        assert "下载中：org/tiny" in progress_text(job.status())
        job.cancel()
        assert job.status()["state"] == "cancelled" and not job.running(), job.status()
        assert "已取消" in progress_text(job.status())
        assert not (tmp_path / "models" / REPO_ID / "model.safetensors").exists()

        hub.throttle = None
        job.start(REPO_ID, "hf")
        deadline = time.monotonic() + 120
        while job.status().get("state") != "done":
            assert time.monotonic() < deadline, job.status()
            assert job.status().get("state") != "error", job.status().get("message")
            time.sleep(0.1)
    assert job.take_finished() == str(tmp_path / "models" / REPO_ID)
    assert job.take_finished() is None  # the page switches the engine once
    _same_files(tiny_model, tmp_path / "models" / REPO_ID)


def test_pull_file_fetches_one_gguf_and_list_shows_it(tmp_path: Path, tiny_model: Path) -> None:
    import shutil

    from xiaoshuo.gguf_convert import convert_hf_to_gguf

    repo = tmp_path / "repo"
    shutil.copytree(tiny_model, repo)
    convert_hf_to_gguf(tiny_model, repo / "tiny-f16.gguf", outtype="f16")
    convert_hf_to_gguf(tiny_model, repo / "tiny-f32.gguf", outtype="f32")
    with Hub({REPO_ID: repo}) as hub:
        env = _hub_env(tmp_path, hub, "hf")
        out = _run(_pull_cmd("--file", "*f16.gguf"), tmp_path, env)
        assert out.returncode == 0, out.stderr[-3000:]
        missing = _run(_pull_cmd("--file", "*Q4_K_M.gguf"), tmp_path, env)
    target = tmp_path / "models" / REPO_ID
    assert sorted(p.name for p in target.iterdir() if p.name != ".cache") == ["tiny-f16.gguf"]
    assert (target / "tiny-f16.gguf").read_bytes() == (repo / "tiny-f16.gguf").read_bytes()
    assert _events(out.stdout)[-1]["files"] == [str(target / "tiny-f16.gguf")]
    assert missing.returncode != 0 and "tiny-f32.gguf" in missing.stderr  # says which files there are
    listed = _run([sys.executable, "-m", "xiaoshuo", "model", "list", "--json"], tmp_path, _env(tmp_path))
    rows = json.loads(listed.stdout)["models"]
    assert [(r["name"], r["where"]) for r in rows] == [(f"{REPO_ID}/tiny-f16.gguf", "models_dir (gguf)")]
