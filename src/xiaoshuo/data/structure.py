"""Split a novel's cleaned text into volumes and chapters by their headings.

Recognised: 第X卷/部/集 and 卷X volumes; 第X章/回/节 chapters with Chinese numerals
(零〇一二两三…十百千万, also 壹贰叁… and full-width digits) or Arabic numerals;
序章/序言/楔子/引子/尾声/终章/番外/后记.  ``data.chapter_regex`` replaces the built-in
chapter pattern.  Headings are short lines; a long line that starts with 第一章 is
story text.  This module does not clean or chunk text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from xiaoshuo.data.readers import Chapter
from xiaoshuo.errors import ConfigError

_NUM = r"[零〇一二两三四五六七八九十百千万壹贰叁肆伍陆柒捌玖拾佰仟0-9０-９]+"
# After the heading word: nothing, a separator then any title, or a title glued on
# without sentence punctuation (so "第十章了，他想" stays story text).
_REST = r"(?:[\s:：、.．·—-]+.*|[^\s，。；,;：:][^，。；,;]{0,30})?"
VOLUME_RE = re.compile(rf"^(?:第\s*{_NUM}\s*[卷部集]|卷\s*{_NUM}){_REST}$")
CHAPTER_RE = re.compile(
    rf"^(?:第\s*{_NUM}\s*[章回节]|序章|序言|楔子|引子|尾声|终章|番外|后记|Chapter\s*\d+){_REST}$",
    re.IGNORECASE,
)
MAX_HEADING_LEN = 40

_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")}
_DIGITS.update(
    {"〇": 0, "两": 2, "壹": 1, "贰": 2, "叁": 3, "肆": 4, "伍": 5, "陆": 6, "柒": 7, "捌": 8, "玖": 9}
)
_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}


def chinese_to_int(text: str) -> int | None:
    """``"一百二十三"`` → 123, ``"两千零五"`` → 2005, ``"十二"`` → 12, ``"１２"`` → 12."""
    text = text.strip().translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if not text:
        return None
    if text.isdigit():
        return int(text)
    if all(c in _DIGITS for c in text):  # 一二〇 style: digit by digit
        return int("".join(str(_DIGITS[c]) for c in text))
    total, section, digit = 0, 0, 0
    for c in text:
        if c in _DIGITS:
            digit = _DIGITS[c]
        elif c in _UNITS:
            section += (digit or 1) * _UNITS[c]
            digit = 0
        elif c == "万":
            total += (section + digit) * 10000
            section, digit = 0, 0
        else:
            return None
    return total + section + digit


_NUMBER_IN = re.compile(rf"第\s*({_NUM})\s*[章回节卷部集]|^卷\s*({_NUM})")


def heading_number(heading: str) -> int | None:
    m = _NUMBER_IN.search(heading)
    return chinese_to_int(m.group(1) or m.group(2)) if m else None


def compile_chapter_regex(pattern: str) -> re.Pattern[str]:
    if not pattern:
        return CHAPTER_RE
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            "data.chapter_regex 不是合法的正则表达式 (invalid regex)",
            expected="a Python regular expression matching a whole heading line, e.g. ^第.+章.*$",
            received=f"{pattern!r}: {exc}",
            fix="修正 data.chapter_regex，或留空使用内置规则",
        ) from None


def split_chapters(text: str, chapter_re: re.Pattern[str] = CHAPTER_RE) -> list[Chapter]:
    """Chapters in order; text before the first heading becomes a chapter titled ""."""
    chapters: list[Chapter] = []
    volume, title, body = "", "", []
    for line in text.split("\n"):
        stripped = line.strip()
        kind = _heading_kind(stripped, chapter_re)
        if kind is None:
            body.append(line)
            continue
        _flush(chapters, volume, title, body)
        body = []
        if kind == "volume":
            volume, title = stripped, ""
        else:
            title = stripped
    _flush(chapters, volume, title, body)
    return chapters


def _heading_kind(line: str, chapter_re: re.Pattern[str]) -> str | None:
    if not line or len(line) > MAX_HEADING_LEN:
        return None
    if chapter_re.match(line):
        return "chapter"
    if VOLUME_RE.match(line):
        return "volume"
    return None


def _flush(chapters: list[Chapter], volume: str, title: str, body: list[str]) -> None:
    text = "\n".join(body).strip("\n")
    if not text.strip() and not title:
        return
    if not text.strip() and title:
        # a heading with no text (e.g. a volume title right before its first chapter) adds nothing
        return
    chapters.append(Chapter(title=title, text=text, volume=volume, number=heading_number(title)))


def iter_paragraphs(text: str) -> Iterator[str]:
    for line in text.split("\n"):
        if line.strip():
            yield line
