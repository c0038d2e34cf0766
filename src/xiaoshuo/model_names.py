"""What a model name means here: the one resolver for settings and for every ``--model`` flag.

* :func:`resolve` — ``(value, note)`` for a model name: ``auto`` → the hardware's choice, a hub id that
  ``xiaoshuo model pull`` put under ``paths.models_dir`` → that folder; paths and other ids as written.
  :func:`xiaoshuo.config.load` calls it for ``model.base_model`` / ``memory.embedding_model``, and the
  CLI's ``--model`` option (:mod:`xiaoshuo.cli.options`) and the WebUI's model box call it too, so a
  pulled hub id works under that id everywhere (offline, and without a second copy in the HF cache).
* :func:`auto_model` — which model ``auto`` means on this machine and why (``nvidia-smi``'s GPU memory).
* :func:`is_hub_id`, :func:`local_dir`, :func:`find_local`, :func:`pull_command` — hub-id syntax and where
  a pulled model lives.

This module sits below :mod:`xiaoshuo.config`, :mod:`xiaoshuo.hf` and :mod:`xiaoshuo.models` and imports
none of them (the hardware probe is imported inside :func:`auto_model`).  It does not download, list or
load anything: pulling and listing are :mod:`xiaoshuo.models`, loading is :mod:`xiaoshuo.hf`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: A GPU with at least this much memory (GiB, total) gets the seed's 7B model.
BIG_GPU_GIB = 16
#: A GPU with at least this much gets the 3B model; below it (and on CPU) the 1.5B one.
MID_GPU_GIB = 8

#: The settings whose value is a model name, resolved by :func:`xiaoshuo.config.load`.
MODEL_KEYS = ("model.base_model", "memory.embedding_model", "data.tokenizer")
#: Where ``auto`` means the hardware's choice (an empty ``data.tokenizer`` means the base model's).
AUTO_KEYS = ("model.base_model", "memory.embedding_model")


def auto_model(kind: str, gpus: tuple[dict[str, Any], ...] | None = None) -> tuple[str, str]:
    """``(hub id, why)`` for ``kind`` ``llm`` or ``embed`` on this machine (``gpus``: from nvidia-smi).

    Decided on the largest GPU's *total* memory, not its free memory, so the same machine always
    resolves to the same model (free memory drops while vLLM or training runs).
    """
    if gpus is None:
        from xiaoshuo.hardware import gpu_memory

        gpus = gpu_memory()
    best = max((g["total_gib"] for g in gpus), default=0.0)
    where = f"GPU {best:g} GiB" if gpus else "无 GPU (CPU)"
    if kind == "embed":
        if best >= MID_GPU_GIB:
            return "BAAI/bge-m3", f"auto: {where} → BAAI/bge-m3"
        return "BAAI/bge-small-zh-v1.5", f"auto: {where} → BAAI/bge-small-zh-v1.5（CPU 上够快的中文模型）"
    if best >= BIG_GPU_GIB:
        return "Qwen/Qwen2.5-7B-Instruct", f"auto: {where} ≥ {BIG_GPU_GIB} GiB → Qwen/Qwen2.5-7B-Instruct"
    if best >= MID_GPU_GIB:
        return "Qwen/Qwen2.5-3B-Instruct", f"auto: {where} < {BIG_GPU_GIB} GiB → Qwen/Qwen2.5-3B-Instruct"
    return (
        "Qwen/Qwen2.5-1.5B-Instruct",
        f"auto: {where} → Qwen/Qwen2.5-1.5B-Instruct（7B 在 CPU 上要 ~16 GB 内存、每秒只有几个字）",
    )


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def is_hub_id(name: str) -> bool:
    """``owner/name`` as both hubs spell it (no ``..``, no absolute or home paths)."""
    return bool(_HUB_ID.fullmatch(name)) and ".." not in name.split("/")


def local_dir(name: str, models_dir: Path | str) -> Path:
    """Where ``xiaoshuo model pull NAME`` puts a hub model: ``<models_dir>/<owner>/<name>``."""
    return Path(models_dir) / name


def find_local(name: str, models_dir: Path | str) -> Path | None:
    """The folder holding ``name`` (a path, or a hub id pulled under ``models_dir``), if complete."""
    for candidate in (Path(name).expanduser(), Path(models_dir) / name):
        if candidate.is_dir() and any((candidate / m).is_file() for m in ("config.json", "modules.json")):
            return candidate
    return None


def pull_command(name: str) -> str:
    return f"xiaoshuo model pull {name}"


def resolve(key: str, value: str, models_dir: Path | str) -> tuple[str, str | None]:
    """``(value to use, note)`` for a model name given for setting ``key`` (or a ``--model`` flag).

    ``auto`` becomes the hardware's choice (an embedding model for ``memory.embedding_model``, else a
    language model; not for ``data.tokenizer``); a hub id whose files were pulled under ``models_dir``
    becomes that folder.  Explicit paths and ids are otherwise kept as written.
    """
    note = None
    if key in AUTO_KEYS and value.strip().lower() == "auto":
        value, note = auto_model("embed" if key == "memory.embedding_model" else "llm")
    if is_hub_id(value) and not Path(value).exists():
        found = find_local(value, models_dir)
        if found is not None:
            note = (note + "; " if note else "") + f"{value} 已下载到 (pulled to) {found}"
            value = str(found)
    return value, note


def resolve_model(value: str | None, models_dir: Path | str) -> str | None:
    """A ``--model`` flag's (or the WebUI model box's) value as the engine loads it; None stays None."""
    if value is None or not value.strip():
        return None
    return resolve("model.base_model", value.strip(), models_dir)[0]
