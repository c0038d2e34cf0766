"""Measuring the writing: style features and distance, book health, what the memory puts in a prompt.

* :mod:`xiaoshuo.eval.metrics` — style features of a text and one combined style distance (pure functions);
* :mod:`xiaoshuo.eval.flavour` — the AI味 phrase list (shipped data file + ``eval.ai_flavour_file``);
* :mod:`xiaoshuo.eval.book` — ``xiaoshuo eval book``: per chapter and whole-book health, degradation;
* :mod:`xiaoshuo.eval.memory` — ``xiaoshuo eval memory``: recall and leaks of composed prompts;
* :mod:`xiaoshuo.eval.probe` — a generated probe novel to measure the instruments on;
* :mod:`xiaoshuo.eval.style` — ``xiaoshuo eval style``: base vs adapter vs the author's held-out text
  (:func:`~xiaoshuo.eval.style.run_style_eval`), per-字 perplexity; :mod:`xiaoshuo.eval.judge` — an optional
  judge model (rubric ``data/rubric.toml``);
* :mod:`xiaoshuo.eval.report` — reading reports back and comparing two (``xiaoshuo eval compare``);
* :mod:`xiaoshuo.eval.html` — a report as one self-contained HTML page with charts.

No UI code here (the CLI is ``xiaoshuo.cli.eval``); only the style eval and the judge generate, through an
engine they are given (they never load a model themselves, except ``evaluate_trained_adapter`` for
``train --eval-style``), and nothing is written to a novel.  Importing this package loads no torch, vllm,
chromadb or plotly.
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
