"""The adapter registry: finished runs under ``checkpoints/``, by name.

An adapter's name is its run name; its folder is ``checkpoints/<run>/final_model``
with ``xiaoshuo_manifest.json``.  List, show, merge into the base model (for
deployment without LoRA overhead) and remove.  Any peft adapter folder also works
directly wherever an adapter is accepted; this module only indexes ours.

This module is the one owner of that layout: :data:`FINAL`, :data:`MANIFEST`,
:func:`adapter_dir` (run → folder), :func:`resolve_adapter` (a name, a run folder or a
peft folder → the adapter folder), :func:`run_name` (folder → name) and
:func:`merged_cache` (the merged-weights cache of :mod:`xiaoshuo.engine.merged`).
Callers (engine loading, the CLI, the WebUI) ask it instead of spelling paths.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xiaoshuo.errors import XiaoshuoError

MANIFEST = "xiaoshuo_manifest.json"  # written by training.run beside the adapter weights
FINAL = "final_model"  # a run's finished adapter: checkpoints/<run>/final_model
MERGED = "merged"  # merged base+adapter models: <paths.models_dir>/merged/<key>


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


def adapter_dir(checkpoints: Path, run: str) -> Path:
    """The adapter folder of a trained run (it may not exist yet)."""
    return Path(checkpoints) / run / FINAL


def is_adapter_dir(path: str | Path) -> bool:
    """A peft-format adapter folder (``adapter_config.json`` inside)."""
    return (Path(path).expanduser() / "adapter_config.json").is_file()


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


def run_name(folder: str | Path) -> str:
    """An adapter's display name from its folder: the run for ``<run>/final_model``, else the folder."""
    folder = Path(folder)
    return (folder.parent.name if folder.name == FINAL else folder.name) or "adapter"


def merged_cache(models_dir: Path) -> Path:
    """Where merged base+adapter models are cached (see :mod:`xiaoshuo.engine.merged`)."""
    return Path(models_dir) / MERGED


def list_adapters(checkpoints: Path) -> list[Adapter]:
    found = []
    for manifest in sorted(checkpoints.glob(f"*/{FINAL}/{MANIFEST}")):
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
    alias = checkpoints / FINAL
    if alias.is_symlink() and alias.resolve() == adapter.path.resolve():
        alias.unlink()
    shutil.rmtree(run_dir)
    return run_dir


def merge_adapter(checkpoints: Path, name: str, output: Path) -> Path:
    """Merge the adapter into its base model and save a standalone model folder."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = get_adapter(checkpoints, name)
    if output.exists() and any(output.iterdir()):
        raise AdapterError(
            "输出目录已存在且非空 (output folder is not empty)",
            received=str(output),
            fix="换一个 --output 目录",
        )
    base = adapter.manifest.get("base_model")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter.path)).merge_and_unload()
    tmp = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(str(tmp))
    AutoTokenizer.from_pretrained(str(adapter.path)).save_pretrained(str(tmp))
    (tmp / MANIFEST).write_text(
        json.dumps({**adapter.manifest, "merged_from": str(adapter.path)}, ensure_ascii=False, indent=2),
        "utf-8",
    )
    if output.exists():
        output.rmdir()
    tmp.rename(output)
    return output
