"""doctor's facts and backend choice, on this (GPU-less) machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xiaoshuo import config, hardware
from xiaoshuo.errors import DependencyError


def _settings(tmp_path: Path, **overrides):
    return config.load(env={}, cwd=tmp_path, overrides=overrides)


def test_model_status_local_invalid_and_missing(tmp_path: Path, tiny_model: Path, monkeypatch) -> None:
    s = _settings(tmp_path, **{"paths.models_dir": str(tmp_path / "models")})
    assert hardware.model_status("model.base_model", str(tiny_model), s, kind="llm").state == "local"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert hardware.model_status("model.base_model", str(empty), s, kind="llm").state == "invalid"
    assert hardware.model_status("m", "./does/not/exist", s, kind="llm").state == "missing"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    status = hardware.model_status("model.base_model", "Qwen/Qwen2.5-7B-Instruct", s, kind="llm")
    assert status.state == "missing" and "HF_HUB_OFFLINE" in status.detail
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert hardware.model_status("m", "Qwen/Qwen2.5-7B-Instruct", s, kind="llm").state == "download"
    assert hardware.model_status("memory.embedding_model", "none", s, kind="embed").state == "disabled"
    # a model placed under models_dir by its hub id counts as local
    (tmp_path / "models" / "org" / "m").mkdir(parents=True)
    (tmp_path / "models" / "org" / "m" / "config.json").write_text("{}")
    assert hardware.model_status("m", "org/m", s, kind="llm").state == "local"


def test_backend_choice(tmp_path: Path) -> None:
    statuses = [
        hardware.BackendStatus("vllm", False, "not installed"),
        hardware.BackendStatus("transformers", True, "cpu"),
        hardware.BackendStatus("openai", True, "remote"),
    ]
    assert hardware.choose_backend(_settings(tmp_path), statuses).name == "transformers"
    with pytest.raises(DependencyError, match=r"engine\.backend") as info:
        hardware.choose_backend(_settings(tmp_path, **{"engine.backend": "vllm"}), statuses)
    assert "not installed" in str(info.value)
    statuses[0] = hardware.BackendStatus("vllm", True, "cpu build")
    assert hardware.choose_backend(_settings(tmp_path), statuses).name == "vllm"


def test_doctor_json_on_this_machine(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "xiaoshuo", "doctor", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["python"]["version"].startswith("3.")
    assert report["torch"]["installed"] is True
    names = {b["name"]: b for b in report["backends"]}
    assert set(names) == {"vllm", "transformers", "openai"}
    assert names["transformers"]["usable"] is True
    assert {m["setting"] for m in report["models"]} == {"model.base_model", "memory.embedding_model"}
    assert {d["setting"] for d in report["disk"]} >= {"paths.data_dir", "paths.models_dir"}
    if not report["torch"]["cuda_available"]:
        assert report["torch"]["gpus"] == []
        human = subprocess.run(
            [sys.executable, "-m", "xiaoshuo", "doctor"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={"COLUMNS": "200", **_env()},
        )
        assert "no GPU" in human.stdout


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("XIAOSHUO_")}
