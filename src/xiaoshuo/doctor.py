"""``xiaoshuo doctor``: the system status, the models, the disk and an offline smoke test.

``diagnose(settings)`` gathers what the CLI's ``doctor`` and the WebUI's 设置 tab show (hardware
facts from :mod:`xiaoshuo.hardware`, the backend choice from :mod:`xiaoshuo.engine.selection`, where
each configured model is and what ``auto`` resolved to, leftovers of killed runs in the novels
folder); ``run_smoke(settings)`` proves the install works offline by generating a few tokens from a
tiny random model; ``fix_leftovers(settings)`` (``doctor --fix``) removes those leftovers
(:mod:`xiaoshuo.writing.leftovers`).

This module reports; apart from ``--fix``'s leftovers it does not install, download or fix anything
(``xiaoshuo model pull`` does).
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xiaoshuo.config import Settings, mask_url
from xiaoshuo.engine.selection import BackendStatus, backend_statuses, choose_backend
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.hardware import GIB, cpu_status, gpu_processes, torch_status, vllm_status


@dataclass
class ModelStatus:
    setting: str
    name: str
    state: str  # local | cached | download | missing | disabled | invalid
    detail: str
    note: str = ""  # how auto resolved (and why), or where a pulled hub id was found


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
    hubs: list[dict[str, Any]] = field(default_factory=list)
    smoke: list[dict[str, Any]] = field(default_factory=list)
    adapter_mode: dict[str, Any] = field(default_factory=dict)  # how the engine serves an adapter, and why
    leftovers: list[dict[str, Any]] = field(default_factory=list)  # of killed runs; "done" after --fix

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(settings: Settings) -> Report:
    """Collect the system status (a few seconds: imports torch)."""
    torch_info = torch_status()
    vllm_info = vllm_status()
    backends = backend_statuses(settings, torch_info, vllm_info)
    selected = choose_backend(settings, backends)
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
        selected_backend=selected,
        models=[
            model_status("model.base_model", settings.model.base_model, settings, kind="llm"),
            model_status("memory.embedding_model", settings.memory.embedding_model, settings, kind="embed"),
        ],
        disk=disk_status(settings),
        gpu_processes=gpu_processes() if torch_info.get("cuda_available") else [],
        hubs=hub_status(settings),
        adapter_mode=adapter_mode(settings, selected.name, on_cpu=not torch_info.get("cuda_available")),
        leftovers=find_leftovers(settings),
    )


def find_leftovers(settings: Settings) -> list[dict[str, Any]]:
    """Leftovers of killed imports, appends, writes and exports under the data folder (nothing changed)."""
    from xiaoshuo.writing.leftovers import find_leftovers as find

    data = settings.paths.data_dir
    try:
        return find(data / "novels", data / "exports")
    except OSError:
        return []


def fix_leftovers(settings: Settings) -> list[dict[str, Any]]:
    """``doctor --fix``: remove :func:`find_leftovers`'s rows (each gets ``done``)."""
    from xiaoshuo.writing.leftovers import clean_leftovers

    data = settings.paths.data_dir
    return clean_leftovers(data / "novels", data / "exports")


def adapter_mode(settings: Settings, backend: str, *, on_cpu: bool) -> dict[str, Any]:
    """Which mode the engine uses for one adapter (the newest trained one, if any) and why.

    vLLM: merged into the base or LoRA mode (``engine.merge_adapter``, :mod:`xiaoshuo.engine.merged`);
    whether the merged copy is already cached (else the first load merges once).
    """
    from xiaoshuo.adapters import list_adapters

    trained = list_adapters(settings.paths.checkpoints_dir)
    adapter = trained[-1] if trained else None
    row: dict[str, Any] = {
        "adapter": adapter.name if adapter else None,
        "merge_adapter": settings.engine.merge_adapter,
    }
    if backend != "vllm":
        how = {
            "transformers": "peft on the model (transformers)",
            "llamacpp": "llama.cpp as a GGUF LoRA (a peft adapter is converted once), switched per request",
        }.get(backend, "the server's LoRA modules")
        return row | {"mode": "lora", "reason": f"backend {backend}: adapters are applied by {how}"}
    from xiaoshuo.engine.merged import merge_decision

    one = {adapter.name if adapter else "adapter": str(adapter.path) if adapter else ""}
    decision = merge_decision(
        settings.engine.merge_adapter, one, on_cpu=on_cpu, enable_lora=settings.engine.enable_lora
    )
    row |= {"mode": decision.mode, "reason": decision.reason}
    if decision.mode == "merged" and adapter is not None:
        from xiaoshuo.adapters import list_merged

        ready = any(
            r["state"] == "ok" and r["adapter"] == str(adapter.path.resolve())
            for r in list_merged(settings.paths.models_dir)
        )
        row["cache"] = "ready (cached)" if ready else "not cached yet: the first load merges once"
    if adapter is None:
        row["reason"] = (
            "no trained adapter yet: the base model alone; "
            f"with one adapter: {decision.mode} ({row['reason']})"
        )
        row["mode"] = "base"
    return row


def hub_status(settings: Settings) -> list[dict[str, Any]]:
    """Whether each download source answers (one 3 s probe each; none when HF_HUB_OFFLINE is set)."""
    from xiaoshuo.hf import hub_reachable
    from xiaoshuo.models import hf_endpoint, modelscope_endpoint, source_order

    rows = []
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    for name in source_order(settings, None):
        endpoint = hf_endpoint(settings) if name == "hf" else modelscope_endpoint()
        if offline:
            detail = "HF_HUB_OFFLINE=1"
            rows.append({"source": name, "endpoint": mask_url(endpoint), "reachable": None, "detail": detail})
            continue
        ok, detail = hub_reachable(endpoint)
        rows.append({"source": name, "endpoint": mask_url(endpoint), "reachable": ok, "detail": detail})
    return rows


def model_status(setting: str, name: str, settings: Settings, *, kind: str) -> ModelStatus:
    """Is a model a local folder, in the Hugging Face cache, or a download away?"""
    status = _model_status(setting, name, settings, kind=kind)
    if setting in ("model.base_model", "memory.embedding_model"):
        status.note = settings.note_of(setting) or ""
    return status


def _model_status(setting: str, name: str, settings: Settings, *, kind: str) -> ModelStatus:
    from xiaoshuo.models import CATALOGUE, pull_command

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
    size = f" (≈{CATALOGUE[name].size_gib:g} GB)" if name in CATALOGUE else ""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return ModelStatus(
            setting,
            name,
            "missing",
            f"离线 offline: not on disk and HF_HUB_OFFLINE is set; run `{pull_command(name)}`{size} "
            f"with network, or put the files under {settings.paths.models_dir / name}",
        )
    return ModelStatus(
        setting, name, "download", f"not on disk: `{pull_command(name)}`{size} (else fetched on first use)"
    )


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
    from xiaoshuo.tiny import build_tiny_model

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
            return "", [], f"{mask_url(settings.engine.openai_base_url)} answered"
        sampling = SamplingSettings(temperature=0.0, max_tokens=8, repetition_penalty=1.0)
        result = engine.generate(GenerationRequest(messages=_PROMPT, sampling=sampling))
        cand = result.candidates[0]
        flavour = (
            vllm_status()
            if backend == "vllm"
            else {"flavour": backend, "version": _version(_DISTRIBUTIONS.get(backend, backend))}
        )
        return cand.text, cand.token_ids, f"{flavour['flavour']} {flavour['version']} via Engine"


_DISTRIBUTIONS = {"llamacpp": "llama_cpp_python"}
_PROMPT = [{"role": "user", "content": "续写：夜色如墨，细雨敲打着青石板路。"}]


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "?"
