"""Strings of the 记忆 page: key → {"zh": …, "en": …}."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {}
