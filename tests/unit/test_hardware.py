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
    assert set(names) == {"vllm", "transformers", "openai", "llamacpp"}
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


# ------------------------------------------------------------ machine facts: hardware.py is their one owner
FAKE_SMI = """#!/bin/sh
case "$1" in
  --query-gpu=*) cat "$(dirname "$0")/gpus.csv" ;;
  --query-compute-apps=*) cat "$(dirname "$0")/apps.csv" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path, monkeypatch):
    """An ``nvidia-smi`` on PATH that prints ``gpus.csv`` / ``apps.csv`` from its folder (edit them to change
    what the 'driver' says); the process-wide cached answer is cleared before and after."""
    import os

    from xiaoshuo import hardware

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_SMI, "utf-8")
    smi.chmod(0o755)
    (bin_dir / "gpus.csv").write_text("0, NVIDIA H200, 143771, 140000\n", "utf-8")
    (bin_dir / "apps.csv").write_text(
        f"{os.getpid()}, python, 2048\n999999999, someone-else, 4096\n{os.getpid()}, python, [N/A]\n", "utf-8"
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    hardware.gpu_memory.cache_clear()
    yield bin_dir
    hardware.gpu_memory.cache_clear()


def test_gpu_facts_come_from_one_nvidia_smi_reader(fake_nvidia_smi: Path) -> None:
    from xiaoshuo import hardware
    from xiaoshuo.webui.pages.settings import handlers as settings_page

    h200 = {"index": 0, "name": "NVIDIA H200", "total_gib": 140.4, "free_gib": 136.7}
    assert hardware.gpu_memory() == (h200,)
    assert hardware.process_gpu_mib() == 2048.0  # ours only; [N/A] skipped
    assert [p["name"] for p in hardware.gpu_processes()] == ["python", "someone-else", "python"]
    assert settings_page._vram("en") == ["NVIDIA H200: this program 2.0 GiB, free 136.7 / 140.4 GiB"]

    (fake_nvidia_smi / "gpus.csv").write_text("0, NVIDIA H200, 143771, 100000\n", "utf-8")
    assert hardware.gpu_memory()[0]["free_gib"] == 136.7  # decisions: asked once per process
    assert hardware.gpu_memory_now()[0]["free_gib"] == 97.7  # the page: asked now
    assert "free 97.7 / 140.4 GiB" in settings_page._vram("en")[0]

    (fake_nvidia_smi / "gpus.csv").write_text("garbage\n0, x, not-a-number, 1\n", "utf-8")
    assert hardware.gpu_memory_now() == () and settings_page._vram("en") == []


def test_machine_facts_have_one_owner() -> None:
    """Only hardware.py runs nvidia-smi (once, in one reader), reads /proc/cpuinfo and imports psutil; nobody
    reaches around its cache with ``__wrapped__`` (the 设置 page once re-implemented all of this)."""
    import ast

    import xiaoshuo

    root = Path(xiaoshuo.__file__).parent
    smi_calls: list[str] = []
    others: list[str] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        docstrings = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and n.body
            and isinstance(n.body[0], ast.Expr)
        }
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if node.value == "nvidia-smi" or node.value.startswith("nvidia-smi "):
                    smi_calls.append(f"{rel}:{node.lineno}")
                if "/proc/cpuinfo" in node.value:
                    others.append(f"{rel}:{node.lineno} reads /proc/cpuinfo")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] == "psutil" for n in names) and rel != "hardware.py":
                    others.append(f"{rel}:{node.lineno} imports psutil")
            elif isinstance(node, ast.Attribute) and node.attr == "__wrapped__":
                others.append(f"{rel}:{node.lineno} uses __wrapped__")
    # hardware.py names the program twice: shutil.which and the command line of its one reader
    assert len(smi_calls) == 2 and all(c.startswith("hardware.py:") for c in smi_calls), smi_calls
    assert [o for o in others if not o.startswith("hardware.py:")] == [], others
