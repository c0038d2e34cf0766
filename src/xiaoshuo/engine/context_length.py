"""How many tokens an engine serves: the model's own context length, capped by ``model.vllm_max_model_len``.

One function for all three backends (vLLM in-process, the ``serve`` command's server,
transformers).  Reads ``config.json`` of a local folder, else asks transformers' ``AutoConfig``.
Not responsible for budgets inside that context (the callers'; the engine's ``count_tokens``).
"""

from __future__ import annotations

import json
from pathlib import Path

from xiaoshuo.config import Settings


def model_context_length(model: str) -> int:
    """The model's own context length from config.json (local folders); a large default otherwise."""
    cfg_path = Path(model) / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text("utf-8"))
    except (OSError, ValueError):
        try:
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(model).to_dict()
        except Exception:
            return 1 << 20
    return int(cfg.get("max_position_embeddings") or 1 << 20)


def served_context_length(settings: Settings, model: str) -> int:
    """The engine's ``max_model_len``: ``model.vllm_max_model_len``, or less when the model's own is."""
    return min(settings.model.vllm_max_model_len, model_context_length(model))
