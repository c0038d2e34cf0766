"""LoRA / QLoRA fine-tuning on ``prepare``'s output, resume, events, and the adapter registry.

``plan(settings, …)`` checks everything that can be checked before a model loads;
``train(plan)`` runs it.  Heavy libraries load inside ``train``.
"""

from xiaoshuo.training.data import TrainDataError
from xiaoshuo.training.registry import AdapterError, get_adapter, list_adapters, merge_adapter, remove_adapter
from xiaoshuo.training.run import TrainError, TrainPlan, plan, resume_changes, train

__all__ = [
    "AdapterError",
    "TrainDataError",
    "TrainError",
    "TrainPlan",
    "get_adapter",
    "list_adapters",
    "merge_adapter",
    "plan",
    "remove_adapter",
    "resume_changes",
    "train",
]
