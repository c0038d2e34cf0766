"""The adapter registry: where trained adapters live, what names them, and what "no adapter" means.

An adapter's name is its run name; its folder is ``checkpoints/<run>/final_model``
with ``xiaoshuo_manifest.json``.  List, show and remove; any peft adapter folder
also works directly wherever an adapter is accepted, this module only indexes ours.

This module is the one owner of that layout: :data:`FINAL`, :data:`MANIFEST`,
:func:`adapter_dir` (run → folder), :func:`resolve_adapter` (a name, a run folder or a
peft folder → the adapter folder), :func:`choose_adapter` (what a command's
``--adapter`` means), :func:`run_name` (folder → name), :func:`merged_cache` (where
:mod:`xiaoshuo.adapters.merged` caches merged models), :func:`is_none` (the one test for
"no adapter": ``none``, ``base``, empty, or the WebUI's （无） label) and :func:`lora_rank`
(the ``max_lora_rank`` a vLLM engine or server needs).  Training, the engine, the CLI and
the WebUI ask it instead of spelling paths.  Not responsible for merging (``merged.py``),
training (:mod:`xiaoshuo.training`) or serving (:mod:`xiaoshuo.engine`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xiaoshuo.errors import XiaoshuoError

MANIFEST = "xiaoshuo_manifest.json"  # written by training.run beside the adapter weights
FINAL = "final_model"  # a run's finished adapter: checkpoints/<run>/final_model
MERGED = "merged"  # merged base+adapter models: <paths.models_dir>/merged/<key>
CONFIG = "adapter_config.json"  # what makes a folder a peft adapter
#: Words that choose the base model wherever an adapter is asked for (compared stripped, case-insensitive),
#: and the WebUI's label for that choice (webui/locale "none").
NONE_WORDS = ("", "none", "base")
NONE_LABELS = ("（无）", "(none)")
#: vLLM's allowed ``max_lora_rank`` values.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class AdapterError(XiaoshuoError):
    """An adapter is unknown or cannot be merged/removed."""


@dataclass
class Adapter:
    name: str
    path: Path
    manifest: dict[str, Any]

    def row(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "name": self.name,
            "path": str(self.path),
            "base_model": m.get("base_model"),
            "created": m.get("created"),
            "global_step": m.get("global_step"),
            "eval_loss": m.get("eval_loss"),
        }


def is_none(value: str | None) -> bool:
    """Whether ``value`` asks for no adapter (the base model): ``None``, empty, ``none``, ``base``, （无）."""
    if value is None:
        return True
    text = value.strip()
    return text.lower() in NONE_WORDS or text in NONE_LABELS


def adapter_dir(checkpoints: Path, run: str) -> Path:
    """The adapter folder of a trained run (it may not exist yet)."""
    return Path(checkpoints) / run / FINAL


def is_adapter_dir(path: str | Path) -> bool:
    """A peft-format adapter folder (``adapter_config.json`` inside)."""
    return (Path(path).expanduser() / CONFIG).is_file()


def resolve_adapter(checkpoints: Path, name_or_path: str | Path) -> Path | None:
    """The adapter folder meant by a peft folder, a run folder (``<run>/final_model``) or a trained
    run's name (``checkpoints/<name>/final_model``), in that order; ``None`` when none is one."""
    text = str(name_or_path).strip()
    if not text:
        return None
    folder = Path(text).expanduser()
    candidates = [folder, folder / FINAL]
    if "/" not in text and "\\" not in text:
        candidates.append(adapter_dir(checkpoints, text))
    return next((c for c in candidates if is_adapter_dir(c)), None)


def choose_adapter(
    checkpoints: Path, adapters: dict[str, str], wanted: str | None, *, served_by_name: bool = False
) -> str | None:
    """The adapter a command's request uses (``--adapter``); a trained name or a folder not given with
    ``--lora`` joins ``adapters`` (name → folder), so the engine loads it.

    Order: ``None`` → the first of ``adapters`` (or none); :func:`is_none` → the base model; a name in
    ``adapters``; with ``served_by_name`` (the ``openai`` backend) any other name is the server's served
    adapter name (the server checks it); a peft folder, a run folder, a trained adapter's name
    (:func:`resolve_adapter`).  Anything else raises :class:`AdapterError` listing the choices.
    """
    if wanted is None:
        return next(iter(adapters), None)
    if is_none(wanted):
        return None
    if wanted in adapters or served_by_name:
        return wanted
    found = resolve_adapter(checkpoints, wanted)
    if found is not None:
        registered = adapter_dir(checkpoints, wanted)
        name = wanted if found == registered else Path(wanted).expanduser().resolve().name
        if name in adapters and Path(adapters[name]).resolve() != found.resolve():
            name = str(found)
        adapters[name] = str(found)
        return name
    trained = [a.name for a in list_adapters(checkpoints)]
    expected = []
    if adapters:
        expected.append("a --lora name (" + ", ".join(adapters) + ")")
    expected.append(
        "a trained adapter (" + ", ".join(trained) + ")" if trained else "a trained adapter (none yet)"
    )
    expected.append("a peft adapter folder (with adapter_config.json), or none")
    raise AdapterError(
        "未知的 --adapter (unknown adapter)",
        expected="; ".join(expected),
        received=wanted,
        fix="xiaoshuo adapters list 查看已训练的适配器 (see trained adapters)",
    )


def run_name(folder: str | Path) -> str:
    """An adapter's display name from its folder: the run for ``<run>/final_model``, else the folder."""
    folder = Path(folder)
    return (folder.parent.name if folder.name == FINAL else folder.name) or "adapter"


def merged_cache(models_dir: Path) -> Path:
    """Where merged base+adapter models are cached (see :mod:`xiaoshuo.adapters.merged`)."""
    return Path(models_dir) / MERGED


def adapter_rank(path: str | Path) -> int:
    """The LoRA rank ``r`` of an adapter folder (8 when its config cannot be read)."""
    try:
        cfg = json.loads((Path(path) / CONFIG).read_text("utf-8"))
        return int(cfg.get("r", 8))
    except (OSError, ValueError):
        return 8


def lora_rank(adapter_paths: Iterable[str | Path], configured: int) -> int:
    """The vLLM ``max_lora_rank`` that fits ``configured`` (``engine.max_lora_rank``) and every adapter:
    the smallest allowed value at least as large as all of them (the largest allowed one otherwise)."""
    wanted = max([configured, *(adapter_rank(p) for p in adapter_paths)])
    return next((r for r in LORA_RANKS if r >= wanted), LORA_RANKS[-1])


def list_adapters(checkpoints: Path) -> list[Adapter]:
    found = []
    for manifest in sorted(Path(checkpoints).glob(f"*/{FINAL}/{MANIFEST}")):
        folder = manifest.parent
        if folder.parent.name.startswith("."):
            continue
        try:
            data = json.loads(manifest.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        found.append(Adapter(folder.parent.name, folder, data))
    return sorted(found, key=lambda a: str(a.manifest.get("created", "")))


def get_adapter(checkpoints: Path, name: str) -> Adapter:
    for adapter in list_adapters(checkpoints):
        if adapter.name == name:
            return adapter
    names = [a.name for a in list_adapters(checkpoints)]
    raise AdapterError(
        f"没有这个适配器 (no such adapter): {name}",
        expected="one of " + ", ".join(names) if names else "a trained adapter (run xiaoshuo train)",
        received=name,
        fix="运行 xiaoshuo adapters list 查看",
    )


def remove_adapter(checkpoints: Path, name: str) -> Path:
    adapter = get_adapter(checkpoints, name)
    run_dir = adapter.path.parent
    alias = Path(checkpoints) / FINAL
    if alias.is_symlink() and alias.resolve() == adapter.path.resolve():
        alias.unlink()
    shutil.rmtree(run_dir)
    return run_dir
