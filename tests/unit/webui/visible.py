"""What a page shows, read from its built ``gr.Blocks`` without a browser, and the Latin-word check of the
Chinese page (issue 26 item 4): every label, info line, Markdown, button, accordion title, table header,
choice label and plot title, and the words in it that are not Chinese and not on the allow-list.

Left out on purpose: what a writer typed or the page filled into an editable box (a model path, a run
name), and the command boxes' contents (copyable commands, folded away under 等价命令 / 命令行).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import gradio as gr

#: Words the Chinese page may show (issue 26): formats, LoRA, units.
ALLOWED = {"LoRA", "QLoRA", "EPUB", "DOCX", "TXT", "GB", "MB", "UTF-8"}
#: A Latin word, with what makes it a file name, a path or a model id (``.txt``, ``a/b``, ``x.epub``); not
#: the unit of a number (``7B``, ``3.1GB`` are numbers).
_WORD = re.compile(r"(?<![0-9A-Za-z_])\.?[A-Za-z][\w.+\-/]*")
_FILE = re.compile(r"[\w\-]+\.[A-Za-z0-9]{1,5}")


def _texts(block: Any) -> Iterable[str]:
    for attr in ("label", "info", "placeholder", "title", "x_title", "y_title"):
        value = getattr(block, attr, None)
        if isinstance(value, str) and (attr != "label" or getattr(block, "show_label", True) is not False):
            yield value
    if isinstance(block, gr.LinePlot | gr.ScatterPlot | gr.BarPlot):
        yield from (v for v in (block.x, block.y) if isinstance(v, str))
    if isinstance(block, gr.Markdown | gr.Button | gr.HTML) and isinstance(block.value, str):
        yield block.value
    if isinstance(block, gr.Dataframe) and isinstance(block.value, dict):
        yield from (str(h) for h in block.value.get("headers", []))
    if isinstance(block, gr.Dropdown | gr.Radio):
        yield from (str(c[0]) if isinstance(c, tuple | list) else str(c) for c in block.choices or [])


def visible_texts(blocks: gr.Blocks) -> list[str]:
    """Every text the page shows as its own words (see the module docstring for what is left out)."""
    return [text for block in blocks.blocks.values() for text in _texts(block) if text]


def latin_words(text: str, ids: Iterable[str] = ()) -> list[str]:
    """The Latin words of ``text`` that the Chinese page should not show: not on ``ALLOWED``, not a
    file name, extension, path or model id (``ids``: names that are data, such as a model folder)."""
    known = set(ids)
    return [
        word
        for word in (w.rstrip(".") for w in _WORD.findall(text))
        if word
        and word not in ALLOWED
        and word not in known
        and not word.startswith(".")
        and "/" not in word
        and not _FILE.fullmatch(word)
    ]
