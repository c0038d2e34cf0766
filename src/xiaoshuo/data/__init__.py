"""Corpus preparation: novel files → cleaned chapters → token chunks → train/val JSONL.

Public API: :func:`prepare` (the whole pipeline), :func:`write_sample_corpus`
(the ``--sample`` corpus), :data:`READERS` (the format registry).
"""

from xiaoshuo.data.chunking import BUILTIN_TINY
from xiaoshuo.data.pipeline import PrepareError, prepare
from xiaoshuo.data.readers import READERS, supported_extensions
from xiaoshuo.data.sample import write_sample_corpus

__all__ = [
    "BUILTIN_TINY",
    "READERS",
    "PrepareError",
    "prepare",
    "supported_extensions",
    "write_sample_corpus",
]
