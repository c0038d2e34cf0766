"""`xiaoshuo doctor --smoke` generates real tokens through real backends, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _doctor(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("XIAOSHUO_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "xiaoshuo", *args, "doctor", "--smoke", "--json"],
        cwd=tmp_path,
        env=full,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_smoke_through_configured_backend_and_fallback(tmp_path: Path) -> None:
    out = _doctor(tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    smoke = {s["backend"]: s for s in report["smoke"]}
    selected = report["selected_backend"]["name"]
    assert selected in smoke and "transformers" in smoke
    for result in smoke.values():
        assert result["ok"], result
        assert 0 < result["tokens"] <= 8
    if report["vllm"]["installed"]:
        assert selected == "vllm"  # auto picks vLLM when it is usable here
        # fp32 greedy decoding: vLLM and transformers agree token for token.
        assert smoke["vllm"]["token_ids"] == smoke["transformers"]["token_ids"]
        assert len(set(smoke["vllm"]["token_ids"])) > 1  # the tiny model is not degenerate


@pytest.mark.slow
def test_smoke_with_transformers_backend_only(tmp_path: Path) -> None:
    out = _doctor(tmp_path, "--set", "engine.backend=transformers")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert [s["backend"] for s in report["smoke"]] == ["transformers"]


def test_smoke_failure_exits_nonzero(tmp_path: Path) -> None:
    # Nothing listens on this port: the openai backend's smoke check must fail clearly.
    out = _doctor(
        tmp_path,
        "--set",
        "engine.backend=openai",
        "--set",
        "engine.openai_base_url=http://127.0.0.1:9/v1",
    )
    assert out.returncode == 1
    report = json.loads(out.stdout)
    openai = next(s for s in report["smoke"] if s["backend"] == "openai")
    assert openai["ok"] is False and "server unreachable" in openai["detail"]


@pytest.mark.gpu
def test_doctor_sees_the_gpu_and_vllm_generates_on_it(tmp_path: Path) -> None:
    out = _doctor(tmp_path, "--set", "engine.backend=vllm")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["torch"]["cuda_available"] and report["torch"]["gpus"]
    assert all(s["ok"] for s in report["smoke"])
