"""Issue 26 item 15: ``make demo`` printed ~150 lines of vLLM/torch/Triton warnings after its 3 useful
lines — quiet unless ``webui --verbose`` (or ``--debug``); the demo's temporary folder is removed on exit,
also on SIGTERM, and a killed demo's folder by the next demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from xiaoshuo.cli import main

REPO = Path(__file__).resolve().parents[2]
KEYS = ("VLLM_LOGGING_LEVEL", "VLLM_LOGGING_STREAM", "PYTHONWARNINGS", "TORCH_CPP_LOG_LEVEL")
PROBE = (
    "import json, os, sys, warnings\n"
    "from xiaoshuo.engine import vllm_backend as v\n"
    "if sys.argv[1] == 'verbose': v.verbose_libraries()\n"
    "loud = v.library_logging()\n"
    "warnings.warn_explicit('noise', UserWarning, 'x.py', 1, module='torch.cuda')\n"
    "print(json.dumps({'loud': loud, **{k: os.environ.get(k) for k in KEYS}}))\n"
).replace("KEYS", repr(KEYS))


def _probe(mode: str, **env: str) -> tuple[dict, str]:
    clean = {k: v for k, v in os.environ.items() if k not in KEYS and not k.startswith("XIAOSHUO_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        env={**clean, "PYTHONPATH": str(REPO / "src"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), out.stderr


def test_engine_libraries_are_quiet_unless_verbose() -> None:
    quiet, err = _probe("quiet")
    assert quiet == {
        "loud": False,
        "VLLM_LOGGING_LEVEL": "ERROR",  # the EngineCore process inherits these
        "VLLM_LOGGING_STREAM": "ext://sys.stderr",
        "PYTHONWARNINGS": "ignore",
        "TORCH_CPP_LOG_LEVEL": "ERROR",
    }
    assert "noise" not in err
    loud, err = _probe("verbose")
    assert loud["loud"] and loud["VLLM_LOGGING_LEVEL"] == "INFO" and loud["PYTHONWARNINGS"] is None
    assert "noise" in err
    mine, _ = _probe("quiet", VLLM_LOGGING_LEVEL="DEBUG")  # the user's own setting wins
    assert mine["VLLM_LOGGING_LEVEL"] == "DEBUG"


def test_webui_verbose_flag_and_the_demo_folder(monkeypatch, clean_env, tmp_path: Path) -> None:
    import xiaoshuo.webui.launch as launch_module
    from xiaoshuo.engine import vllm_backend

    monkeypatch.setattr(vllm_backend, "_verbose", False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / "xiaoshuo-demo-999999999-abc"  # a demo killed with SIGKILL (no such pid)
    (dead / "demo-model").mkdir(parents=True)
    alive = tmp_path / f"xiaoshuo-demo-{os.getppid()}-abc"  # a demo still running: kept
    alive.mkdir()
    seen: dict = {}

    def fake_launch(settings, **kw):
        seen.update(kw, verbose=vllm_backend._verbose)
        if kw["demo_dir"] is not None:
            seen["existed"] = kw["demo_dir"].is_dir()
            (kw["demo_dir"] / "work.txt").write_text("x", "utf-8")
            raise KeyboardInterrupt  # what Ctrl-C / SIGTERM does to the server loop

    monkeypatch.setattr(launch_module, "launch", fake_launch)
    monkeypatch.chdir(tmp_path)
    main(["webui", "--demo"])  # interrupted: the CLI reports it and exits
    assert seen["existed"] and not seen["demo_dir"].exists() and not seen["verbose"]
    assert seen["demo_dir"].parent == tmp_path and not dead.exists() and alive.is_dir()
    assert main(["webui", "--verbose"]) == 0 and seen["verbose"] and seen["demo_dir"] is None
