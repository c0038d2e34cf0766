"""Every user-visible WebUI string, in one table: Chinese (default) and English (``webui.language``).

The table is assembled from one part per page (``common``, ``book``, ``scratch``, ``memory``, ``train``,
``settings``) so that a page's strings live beside each other; a key defined in two parts is an error at
import.  ``t(key, lang, **values)`` looks a key up and fills ``{placeholders}``.
"""

from __future__ import annotations

from xiaoshuo.webui.locale import book, common, memory, overview, scratch, settings, train

PARTS = {
    "common": common.STRINGS,
    "book": book.STRINGS,
    "scratch": scratch.STRINGS,
    "memory": memory.STRINGS,
    "overview": overview.STRINGS,
    "train": train.STRINGS,
    "settings": settings.STRINGS,
}


def _merge() -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {}
    for part, strings in PARTS.items():
        for key, entry in strings.items():
            if key in merged:
                raise RuntimeError(f"locale key {key!r} is defined twice (again in part {part!r})")
            if "zh" not in entry or "en" not in entry:
                raise RuntimeError(f"locale key {key!r} ({part}) needs both 'zh' and 'en'")
            merged[key] = entry
    return merged


STRINGS: dict[str, dict[str, str]] = _merge()


def t(key: str, lang: str = "zh", **values: object) -> str:
    """The string for ``key`` in ``lang`` (Chinese when missing), ``{name}`` filled from ``values``."""
    entry = STRINGS[key]
    text = entry.get(lang) or entry["zh"]
    return text.format(**values) if values else text
