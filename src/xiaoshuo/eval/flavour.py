"""AI味 (AI flavour): stock phrases readers call out, counted per 1,000 字.

The list ships as ``xiaoshuo/eval/data/ai_flavour.toml`` (categories, each with a weight, literal
``phrases`` and regular-expression ``patterns``; its comments name where the phrases are called out).  A
writer adds their own through ``eval.ai_flavour_file`` (same format; a category of the same name gets the
extra phrases and the file's weight; ``replace = true`` at the top drops the shipped list).  A bad file is a
:class:`~xiaoshuo.errors.ConfigError` naming the file and the category.

:meth:`FlavourList.scan` finds the matches of a text (non-overlapping within a category, longer phrases tried
first, then the patterns; categories are counted independently);
:meth:`FlavourList.rate` is Σ weight × matches per 1,000 字.  This module reads the list files; it writes
nothing and knows nothing of novels.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from xiaoshuo.errors import ConfigError
from xiaoshuo.files import MB, read_user_file
from xiaoshuo.writing.textstats import count_chars

BUILTIN = "ai_flavour.toml"


@dataclass
class Category:
    name: str
    weight: float
    phrases: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    _regex: re.Pattern[str] | None = field(default=None, repr=False)

    def regex(self) -> re.Pattern[str] | None:
        if self._regex is None:
            parts = [re.escape(p) for p in sorted(set(self.phrases), key=len, reverse=True)]
            parts += [f"(?:{p})" for p in self.patterns]
            self._regex = re.compile("|".join(parts)) if parts else None
        return self._regex


@dataclass
class Hit:
    category: str
    text: str
    start: int
    weight: float


class FlavourList:
    """The categories in force (the shipped list, plus or instead of the user's)."""

    def __init__(self, categories: list[Category], sources: list[str]) -> None:
        self.categories = categories
        self.sources = sources

    def scan(self, text: str) -> list[Hit]:
        out = []
        for c in self.categories:
            rx = c.regex()
            if rx is None:
                continue
            out.extend(Hit(c.name, m.group(0), m.start(), c.weight) for m in rx.finditer(text) if m.group(0))
        return sorted(out, key=lambda h: (h.start, h.category))

    def rate(self, text: str, hits: list[Hit] | None = None) -> float:
        """Σ weight × matches per 1,000 字 (0.0 for an empty text)."""
        chars = count_chars(text)
        if not chars:
            return 0.0
        hits = self.scan(text) if hits is None else hits
        return 1000.0 * sum(h.weight for h in hits) / chars

    def report(self, text: str) -> dict[str, Any]:
        """Rate, weighted hits, and per category its count and the phrases found (most frequent first)."""
        hits = self.scan(text)
        cats: dict[str, dict[str, Any]] = {}
        for h in hits:
            row = cats.setdefault(h.category, {"count": 0, "weighted": 0.0, "phrases": {}})
            row["count"] += 1
            row["weighted"] += h.weight
            row["phrases"][h.text] = row["phrases"].get(h.text, 0) + 1
        for row in cats.values():
            row["phrases"] = dict(sorted(row["phrases"].items(), key=lambda kv: (-kv[1], kv[0])))
        return {
            "rate_per_1000": round(self.rate(text, hits), 3),
            "hits": len(hits),
            "weighted_hits": round(sum(h.weight for h in hits), 3),
            "categories": cats,
        }


def _parse(data: dict[str, Any], where: str) -> list[Category]:
    cats = data.get("categories", {})
    if not isinstance(cats, dict):
        raise _bad(where, "categories", "a [categories.NAME] table per category", cats)
    out = []
    for name, body in cats.items():
        if not isinstance(body, dict):
            raise _bad(where, name, "a table with weight, phrases, patterns", body)
        weight = body.get("weight", 1.0)
        phrases, patterns = body.get("phrases", []), body.get("patterns", [])
        if not isinstance(weight, int | float) or weight < 0:
            raise _bad(where, f"{name}.weight", "a number >= 0", weight)
        for key, value in (("phrases", phrases), ("patterns", patterns)):
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise _bad(where, f"{name}.{key}", "a list of non-empty strings", value)
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise _bad(where, f"{name}.patterns", f"valid regular expressions ({exc})", p) from None
        out.append(Category(str(name), float(weight), list(phrases), list(patterns)))
    return out


def _bad(where: str, key: str, expected: str, received: Any) -> ConfigError:
    return ConfigError(
        f"AI味词表有误 (bad AI-flavour list): {where} → {key}",
        expected=expected,
        received=repr(received)[:200],
        fix="按 src/xiaoshuo/eval/data/ai_flavour.toml 的格式改正，或清空 eval.ai_flavour_file",
    )


def load_flavour(extra_file: str | Path | None = None) -> FlavourList:
    """The shipped list, with ``extra_file`` (``eval.ai_flavour_file``) merged in or replacing it."""
    text = resources.files("xiaoshuo.eval").joinpath("data").joinpath(BUILTIN).read_text("utf-8")
    cats = {c.name: c for c in _parse(tomllib.loads(text), BUILTIN)}
    sources = [f"builtin:{BUILTIN}"]
    if extra_file:
        path = Path(extra_file).expanduser()
        try:
            if not path.exists():
                raise FileNotFoundError(path)
            # a regular file only (never /dev/zero or a FIFO), within 16 MB
            what = f"AI味词表 (AI-flavour list, eval.ai_flavour_file) {path}"
            raw = read_user_file(path, limit=16 * MB, key="16 MB", what=what, error=ConfigError)
            data = tomllib.loads(raw.decode("utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"找不到 AI味词表 (AI-flavour list not found): {path}",
                expected="a TOML file in the format of the shipped ai_flavour.toml",
                received=str(path),
                fix="检查 eval.ai_flavour_file，或把它设为空字符串",
            ) from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
            why = "TOML nested too deeply (嵌套太深)" if isinstance(exc, RecursionError) else str(exc)
            raise _bad(str(path), "(file)", "a readable UTF-8 TOML file", why) from None
        if data.get("replace", False) is True:
            cats = {}
        for c in _parse(data, str(path)):
            old = cats.get(c.name)
            cats[c.name] = (
                Category(c.name, c.weight, [*old.phrases, *c.phrases], [*old.patterns, *c.patterns])
                if old is not None
                else c
            )
        sources.append(str(path))
    return FlavourList(list(cats.values()), sources)
