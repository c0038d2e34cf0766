"""How many tokens an engine serves: the model's own context length, capped by ``model.vllm_max_model_len``.

One function for all three backends (vLLM in-process, the ``serve`` command's server,
transformers).  Reads ``config.json`` of a local folder or from the Hugging Face cache, else asks
transformers' ``AutoConfig`` when the hub answers.
Not responsible for budgets inside that context (the callers'; the engine's ``count_tokens``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from xiaoshuo.config import Settings

UNKNOWN_CONTEXT = 1 << 20  # "no limit known": model.vllm_max_model_len decides


def model_context_length(model: str) -> int:
    """The model's own context length from its config.json; a large default when it cannot be read.

    A local folder's file, else the Hugging Face cache's copy (no network), else transformers'
    ``AutoConfig`` — only when the hub answers: offline (``HF_HUB_OFFLINE`` or no answer to one 3 s
    probe, :func:`xiaoshuo.hf.hub_reachable`) the default is used at once instead of a minute of
    retries (``serve --dry-run`` spent 29.7 s on them)."""
    cfg = _read_json(Path(model).expanduser() / "config.json")
    if cfg is None:
        cfg = _cached_config(model)
    if cfg is None:
        if not _hub_answers():
            return UNKNOWN_CONTEXT
        try:
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(model).to_dict()
        except Exception:
            return UNKNOWN_CONTEXT
    return int(cfg.get("max_position_embeddings") or UNKNOWN_CONTEXT)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _cached_config(model: str) -> dict | None:
    """config.json of a hub id from the Hugging Face cache, without the network."""
    if model.count("/") != 1 or model.startswith(("/", ".", "~")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json")
    except Exception:  # an invalid repo id and the like
        return None
    return _read_json(Path(found)) if isinstance(found, str) else None


def _hub_answers() -> bool:
    """Whether the hub can be asked: not offline by environment, and it answered the process's probe."""
    from xiaoshuo.hf import go_offline, hf_default_endpoint, hub_reachable

    if any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    ):
        return False
    ok, _ = hub_reachable(hf_default_endpoint())
    if not ok:
        go_offline()  # the other Hugging Face calls of this process read the cache, too
    return ok


def served_context_length(settings: Settings, model: str) -> int:
    """The engine's ``max_model_len``: ``model.vllm_max_model_len``, or less when the model's own is."""
    return min(settings.model.vllm_max_model_len, model_context_length(model))
