"""LoRA / QLoRA fine-tuning on ``prepare``'s output, resume and events.

``plan(settings, …)`` checks everything that can be checked before a model loads;
``train(plan)`` runs it.  Heavy libraries load inside ``train``.  The finished adapters
(where they go, listing, merging) are :mod:`xiaoshuo.adapters`'.
"""

from xiaoshuo.training.data import TrainDataError
from xiaoshuo.training.run import TrainError, TrainPlan, plan, resume_changes, train

__all__ = [
    "TrainDataError",
    "TrainError",
    "TrainPlan",
    "plan",
    "resume_changes",
    "train",
]
