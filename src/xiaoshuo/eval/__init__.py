"""Measuring the writing: style features and distance, book health, what the memory puts in a prompt.

* :mod:`xiaoshuo.eval.metrics` — style features of a text and one combined style distance (pure functions);
* :mod:`xiaoshuo.eval.flavour` — the AI味 phrase list (shipped data file + ``eval.ai_flavour_file``);
* :mod:`xiaoshuo.eval.book` — ``xiaoshuo eval book``: per chapter and whole-book health, degradation;
* :mod:`xiaoshuo.eval.memory` — ``xiaoshuo eval memory``: recall and leaks of composed prompts;
* :mod:`xiaoshuo.eval.probe` — a generated probe novel to measure the instruments on;
* :mod:`xiaoshuo.eval.report` — reading reports back and comparing two (``xiaoshuo eval compare``).

No UI code here (the CLI is ``xiaoshuo.cli.eval``), no model calls, and nothing is written to a novel.
Importing this package loads no torch, vllm or chromadb.
"""

from xiaoshuo.eval.flavour import FlavourList, load_flavour
from xiaoshuo.eval.metrics import StyleProfile, profile, style_components, style_distance
from xiaoshuo.eval.report import SCHEMA_VERSION, compare, load_report

__all__ = [
    "SCHEMA_VERSION",
    "FlavourList",
    "StyleProfile",
    "compare",
    "load_flavour",
    "load_report",
    "profile",
    "style_components",
    "style_distance",
]
