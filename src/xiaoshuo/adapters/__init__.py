"""LoRA adapters: the registry of trained ones, resolving a name or folder, "no adapter", merging.

Below both :mod:`xiaoshuo.engine` and :mod:`xiaoshuo.training` (it imports neither):
:mod:`~xiaoshuo.adapters.registry` owns the ``checkpoints/<run>/final_model`` layout, names,
manifests, resolution (name / run folder / peft folder → adapter folder), :func:`is_none`
and the LoRA rank a vLLM engine needs; :mod:`~xiaoshuo.adapters.merged` owns the one merge
implementation and the merged-model cache.  Importing it is cheap (torch and peft load
inside a merge).  Not responsible for training adapters (:mod:`xiaoshuo.training`) or
serving them (:mod:`xiaoshuo.engine`).
"""

from xiaoshuo.adapters.merged import (
    MergedModel,
    MergeError,
    ensure_merged,
    list_merged,
    merge_adapter,
    merge_into,
    prune_merged,
)
from xiaoshuo.adapters.registry import (
    FINAL,
    MANIFEST,
    Adapter,
    AdapterError,
    adapter_dir,
    choose_adapter,
    get_adapter,
    is_adapter_dir,
    is_none,
    list_adapters,
    lora_rank,
    merged_cache,
    remove_adapter,
    resolve_adapter,
    run_name,
)

__all__ = [
    "FINAL",
    "MANIFEST",
    "Adapter",
    "AdapterError",
    "MergeError",
    "MergedModel",
    "adapter_dir",
    "choose_adapter",
    "ensure_merged",
    "get_adapter",
    "is_adapter_dir",
    "is_none",
    "list_adapters",
    "list_merged",
    "lora_rank",
    "merge_adapter",
    "merge_into",
    "merged_cache",
    "prune_merged",
    "remove_adapter",
    "resolve_adapter",
    "run_name",
]
