"""Strings of the 随手写 page (free request → story): key → {"zh": …, "en": …}."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {}
