"""Merging an adapter into its base model — the one implementation — and the cache of merged models.

:func:`merge_into` is the merge: peft ``merge_and_unload`` in fp32 arithmetic, the result
saved in the base's own dtype (``config.json``'s ``torch_dtype``: an fp32 copy of a bf16
base would be twice its size and no more exact than the base), and the base's tokenizer
files copied byte for byte (the engine renders prompts with the base's tokenizer; the
adapter folder's copy carries training's pad-token change).  Both users go through it:

* :func:`merge_adapter`: ``xiaoshuo adapters merge`` and the WebUI's 合并进基础模型, a standalone
  model folder for deployment (with the adapter's manifest plus ``merged_from``);
* :func:`ensure_merged`: the vLLM engine's merged mode (``engine.merge_adapter``; *when* the
  engine merges is :func:`xiaoshuo.engine.merged.merge_decision`).

:func:`ensure_merged` returns the merged model folder, building it once under
``<paths.models_dir>/merged/<key>``; the key hashes the base's and the adapter's
*contents* (config + weight files), so a retrained adapter gets a new entry and
an unchanged one is reused.  A build goes to a temp folder renamed into place
(atomic), under a file lock (two processes never merge the same key twice).
Base hashes are memoised by (path, size, mtime) in ``.hashes.json`` so a
multi-GB base is read once.  :func:`list_merged` / :func:`prune_merged` back
``xiaoshuo adapters cache list|prune``.

Not responsible for serving the merged model, or switching to LoRA mode when a request
wants the base or another adapter (the vLLM backend, ``engine/vllm_backend.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xiaoshuo.adapters.registry import MANIFEST, AdapterError, get_adapter, merged_cache
from xiaoshuo.errors import XiaoshuoError

log = logging.getLogger(__name__)

MARKER = "xiaoshuo_merged.json"
_HASHES = ".hashes.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
)


class MergeError(XiaoshuoError):
    """An adapter could not be merged into its base model."""


@dataclass(frozen=True)
class MergedModel:
    path: Path
    key: str
    created: bool  # False: reused from the cache
    seconds: float


# ---------------------------------------------------------------------------- hashing
def _files(folder: Path, *, adapter: bool) -> list[Path]:
    """The files that define the weights: config + weight files (adapter's or model's)."""
    config = folder / ("adapter_config.json" if adapter else "config.json")
    weights = sorted(
        p
        for p in folder.iterdir()
        if p.suffix in _WEIGHT_SUFFIXES and p.name.startswith("adapter_model") == adapter
    )
    return [p for p in (config, *weights) if p.is_file()]


def _sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def content_hash(folder: Path, *, adapter: bool, memo: dict[str, Any] | None = None) -> str:
    """sha256 over the names and contents of a model's (or adapter's) config and weight files.

    ``memo`` (path → {size, mtime_ns, sha}) skips re-reading files whose size and mtime did not change.
    """
    files = _files(folder, adapter=adapter)
    if not files or not any(p.suffix in _WEIGHT_SUFFIXES for p in files):
        kind = "adapter" if adapter else "model"
        raise MergeError(
            f"找不到权重文件 (no weight files in the {kind} folder)",
            expected="config + *.safetensors / *.bin",
            received=str(folder),
            fix="检查路径 (check the path)",
        )
    h = hashlib.sha256()
    for path in files:
        st = path.stat()
        key = str(path.resolve())
        seen = (memo or {}).get(key)
        if seen and seen["size"] == st.st_size and seen["mtime_ns"] == st.st_mtime_ns:
            sha = seen["sha"]
        else:
            sha = _sha_file(path)
            if memo is not None:
                memo[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha": sha}
        h.update(f"{path.name}\0{sha}\n".encode())
    return h.hexdigest()


def _read_memo(cache: Path) -> dict[str, Any]:
    try:
        return json.loads((cache / _HASHES).read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def _write_memo(cache: Path, memo: dict[str, Any]) -> None:
    tmp = cache / f".hashes.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(memo), "utf-8")
    os.replace(tmp, cache / _HASHES)


def local_model_dir(model: str) -> Path:
    """A model's local folder: the path itself, or a hub id's snapshot in the Hugging Face cache."""
    folder = Path(model).expanduser()
    if (folder / "config.json").is_file():
        return folder.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception as exc:
        raise MergeError(
            "基础模型不在本地，无法合并 (the base model is not on disk, cannot merge)",
            expected="a local model folder or a hub id already downloaded",
            received=f"{model} ({type(exc).__name__})",
            fix=f"xiaoshuo model pull {model}（引擎自动合并时也可设置 engine.merge_adapter = never）",
        ) from None


def cache_key(base_hash: str, adapter_hash: str) -> str:
    return hashlib.sha256(f"{base_hash}:{adapter_hash}".encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------- the cache
def ensure_merged(
    models_dir: Path,
    base: str,
    adapter: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> MergedModel:
    """The merged model folder for ``base`` + ``adapter``: reused from the cache, or built once."""
    from filelock import FileLock

    say = progress or log.info
    started = time.monotonic()
    cache = merged_cache(models_dir)
    cache.mkdir(parents=True, exist_ok=True)
    base_dir = local_model_dir(base)
    adapter_dir = Path(adapter).expanduser().resolve()
    with FileLock(str(cache / ".lock"), timeout=3600):
        memo = _read_memo(cache)
        base_hash = content_hash(base_dir, adapter=False, memo=memo)
        adapter_hash = content_hash(adapter_dir, adapter=True)
        _write_memo(cache, memo)
        key = cache_key(base_hash, adapter_hash)
        final = cache / key
        if (final / MARKER).is_file():
            os.utime(final / MARKER)  # last used, for `adapters cache list`
            say(f"合并模型已缓存 merged model reused: {final}")
            return MergedModel(final, key, False, time.monotonic() - started)
        say(f"正在合并适配器 merging adapter {adapter_dir} into {base_dir} (one-time; cached as {final}) …")
        tmp = cache / f".{key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            merge_into(base_dir, adapter_dir, tmp)
            marker = {
                "key": key,
                "base": str(base_dir),
                "base_hash": base_hash,
                "adapter": str(adapter_dir),
                "adapter_hash": adapter_hash,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            (tmp / MARKER).write_text(json.dumps(marker, ensure_ascii=False, indent=2), "utf-8")
            if final.exists():
                shutil.rmtree(final)  # a half entry without a marker (crash before this fix)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.monotonic() - started
    say(f"合并完成 merged in {seconds:.1f} s: {final}")
    return MergedModel(final, key, True, seconds)


def merge_into(base_dir: Path, adapter_dir: Path, out: Path) -> None:
    """Write ``base_dir`` with ``adapter_dir`` merged in to ``out``: weights in the base's dtype, the base's
    tokenizer files.  The one merge (module docstring); callers own ``out`` (a temp folder they rename)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = json.loads((base_dir / "config.json").read_text("utf-8"))
    stored = cfg.get("torch_dtype") or cfg.get("dtype") or "float32"
    dtype = getattr(torch, str(stored), torch.float32)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
        merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    except Exception as exc:
        raise MergeError(
            "无法把适配器合并进基础模型 (cannot merge the adapter into the base model)",
            expected="an adapter trained on this base model",
            received=f"{adapter_dir}: {type(exc).__name__}: {exc}",
            fix="检查 model.base_model 与适配器的 base_model，或设置 engine.merge_adapter = never",
        ) from None
    merged.to(dtype).save_pretrained(str(out))
    for name in _TOKENIZER_FILES:
        if (base_dir / name).is_file():
            shutil.copy2(base_dir / name, out / name)


def merge_adapter(checkpoints: Path, name: str, output: Path) -> Path:
    """Merge the trained adapter ``name`` into its base model (its manifest's ``base_model``) as a
    standalone model folder ``output`` (``xiaoshuo adapters merge``); refused when ``output`` is not empty."""
    adapter = get_adapter(checkpoints, name)
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise AdapterError(
            "输出目录已存在且非空 (output folder is not empty)",
            received=str(output),
            fix="换一个 --output 目录",
        )
    base = str(adapter.manifest.get("base_model") or "").strip()
    if not base:
        raise AdapterError(
            f"适配器清单没有基础模型 (the adapter's manifest names no base_model): {name}",
            received=str(adapter.path / MANIFEST),
            fix="重新训练该适配器，或在清单里补上 base_model",
        )
    base_dir = local_model_dir(base)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        merge_into(base_dir, adapter.path, tmp)
        (tmp / MANIFEST).write_text(
            json.dumps({**adapter.manifest, "merged_from": str(adapter.path)}, ensure_ascii=False, indent=2),
            "utf-8",
        )
        if output.exists():
            output.rmdir()
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output


def _entry_state(entry: dict[str, Any], memo: dict[str, Any]) -> str:
    adapter = Path(entry.get("adapter", ""))
    base = Path(entry.get("base", ""))
    if not adapter.is_dir():
        return "stale: adapter folder gone"
    if not base.is_dir():
        return "stale: base model gone"
    try:
        if content_hash(adapter, adapter=True) != entry.get("adapter_hash"):
            return "stale: adapter changed"
        if content_hash(base, adapter=False, memo=memo) != entry.get("base_hash"):
            return "stale: base model changed"
    except (OSError, MergeError):
        return "stale: unreadable"
    return "ok"


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def list_merged(models_dir: Path) -> list[dict[str, Any]]:
    """Cached merged models: key, adapter, base, created, last used, size, ok/stale (and why)."""
    cache = merged_cache(models_dir)
    if not cache.is_dir():
        return []
    memo = _read_memo(cache)
    rows = []
    for marker in sorted(cache.glob(f"*/{MARKER}")):
        try:
            entry = json.loads(marker.read_text("utf-8"))
        except (OSError, ValueError):
            entry = {}
        rows.append(
            {
                "key": marker.parent.name,
                "path": str(marker.parent),
                "adapter": entry.get("adapter"),
                "base": entry.get("base"),
                "created": entry.get("created"),
                "last_used": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(marker.stat().st_mtime)),
                "bytes": _size(marker.parent),
                "state": _entry_state(entry, memo),
            }
        )
    return rows


def prune_merged(models_dir: Path, *, everything: bool = False) -> list[Path]:
    """Remove stale entries (adapter/base changed or gone), unfinished builds; all with ``everything``."""
    from filelock import FileLock

    cache = merged_cache(models_dir)
    if not cache.is_dir():
        return []
    removed = []
    with FileLock(str(cache / ".lock"), timeout=3600):
        rows = {r["key"]: r for r in list_merged(models_dir)}
        for child in sorted(cache.iterdir()):
            if not child.is_dir():
                continue
            row = rows.get(child.name)
            if everything or row is None or row["state"] != "ok":
                shutil.rmtree(child)
                removed.append(child)
    return removed
