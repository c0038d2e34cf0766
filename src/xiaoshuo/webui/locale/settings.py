"""Strings of the 设置 page (status, adapters, model download): key → {"zh": …, "en": …}."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {}
