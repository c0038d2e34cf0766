"""Strings of the 创作 book page (novel, outline, chapter, review, export): key → {"zh": …, "en": …}."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {}
