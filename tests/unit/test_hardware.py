"""doctor's facts (xiaoshuo.doctor), backend choice (xiaoshuo.engine.selection), on this GPU-less machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xiaoshuo import config, doctor
from xiaoshuo.engine import selection
from xiaoshuo.errors import DependencyError


def _settings(tmp_path: Path, **overrides):
    return config.load(env={}, cwd=tmp_path, overrides=overrides)


def test_model_status_local_invalid_and_missing(tmp_path: Path, tiny_model: Path, monkeypatch) -> None:
    s = _settings(tmp_path, **{"paths.models_dir": str(tmp_path / "models")})
    assert doctor.model_status("model.base_model", str(tiny_model), s, kind="llm").state == "local"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert doctor.model_status("model.base_model", str(empty), s, kind="llm").state == "invalid"
    assert doctor.model_status("m", "./does/not/exist", s, kind="llm").state == "missing"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    status = doctor.model_status("model.base_model", "Qwen/Qwen2.5-7B-Instruct", s, kind="llm")
    assert status.state == "missing" and "HF_HUB_OFFLINE" in status.detail
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert doctor.model_status("m", "Qwen/Qwen2.5-7B-Instruct", s, kind="llm").state == "download"
    assert doctor.model_status("memory.embedding_model", "none", s, kind="embed").state == "disabled"
    # a model placed under models_dir by its hub id counts as local
    (tmp_path / "models" / "org" / "m").mkdir(parents=True)
    (tmp_path / "models" / "org" / "m" / "config.json").write_text("{}")
    assert doctor.model_status("m", "org/m", s, kind="llm").state == "local"


def test_backend_choice(tmp_path: Path) -> None:
    statuses = [
        selection.BackendStatus("vllm", False, "not installed"),
        selection.BackendStatus("transformers", True, "cpu"),
        selection.BackendStatus("openai", True, "remote"),
    ]
    assert selection.choose_backend(_settings(tmp_path), statuses).name == "transformers"
    with pytest.raises(DependencyError, match=r"engine\.backend") as info:
        selection.choose_backend(_settings(tmp_path, **{"engine.backend": "vllm"}), statuses)
    assert "not installed" in str(info.value)
    statuses[0] = selection.BackendStatus("vllm", True, "cpu build")
    assert selection.choose_backend(_settings(tmp_path), statuses).name == "vllm"


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
    # the defaults are "auto": doctor says what they resolved to on this machine and why
    base = next(m for m in report["models"] if m["setting"] == "model.base_model")
    if not report["torch"]["cuda_available"]:
        assert base["name"] == "Qwen/Qwen2.5-1.5B-Instruct" and "CPU" in base["note"], base
        assert "xiaoshuo model pull Qwen/Qwen2.5-1.5B-Instruct" in base["detail"], base
    assert [h["source"] for h in report["hubs"]] == ["hf", "modelscope"]
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


def test_hardware_facts_do_not_import_the_engine_or_doctor() -> None:
    """Backend choice lives in engine.selection, doctor checks in doctor: hardware imports neither."""
    code = (
        "import sys, xiaoshuo.hardware as h; print(sorted(m for m in sys.modules if m.startswith"
        "(('xiaoshuo.engine', 'xiaoshuo.doctor', 'torch')))); print(h.gpu_memory() == h.gpu_memory())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[:2] == ["[]", "True"], out.stdout + out.stderr
