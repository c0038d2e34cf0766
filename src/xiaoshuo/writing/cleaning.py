"""Model output made fit to be saved: :func:`clean_generated`, the cleaning every stored generation passes.

A model can emit bytes that are no text: a byte-level tokenizer's token that ends inside a character
decodes to U+FFFD (the demo's random model wrote 781 of them into one chapter), and control characters
(NUL, ESC, BEL, form feed …) come through as they are.  They show as boxes, break DOCX/EPUB export
(XML 1.0 forbids most control characters) and pollute n-gram repetition checks, so every path that
stores generated text (the chapter writer's versions — 写一章 / 续写 / 改写 and their candidates —, an
accepted stopped candidate, 随手写's story) cleans it here first; the raw text is kept in the version
record when the cleaning changed it (``Version.raw_output``).

Removed: U+FFFD, C0/C1 control characters except newline and tab, lone surrogates and Unicode
noncharacters; ``\\r\\n`` and a lone ``\\r`` become ``\\n``.  Kept: everything else, including format
characters such as the zero-width joiner inside emoji.  A human's own edits are not cleaned here (what a
writer typed is theirs).  This module only transforms strings.
"""

from __future__ import annotations

import re

# C0 controls but \t (09) and \n (0a), DEL, C1 controls, U+FFFD, surrogates, noncharacters.
_BAD = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
    "\U0001fffe\U0001ffff\U0002fffe\U0002ffff\U0003fffe\U0003ffff\U0010fffe\U0010ffff]"
)


def clean_generated(text: str) -> str:
    """``text`` without U+FFFD, control characters (but newline and tab), surrogates and noncharacters;
    Windows and old-Mac line ends become ``\\n``.  Idempotent; a clean text comes back unchanged."""
    if not text:
        return text or ""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _BAD.sub("", text)


def bad_chars(text: str) -> int:
    """How many characters :func:`clean_generated` would remove (line ends not counted)."""
    return len(_BAD.findall(text or ""))
