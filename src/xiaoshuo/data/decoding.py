"""Decode real-world Chinese text files without ever producing silent mojibake.

Order: byte-order marks (UTF-8, UTF-16 LE/BE) → strict UTF-8 → charset-normalizer
on a sample, restricted to the encodings a Chinese novel plausibly uses (GBK-family
files decode as GB18030, its superset; Big5 as Big5-HKSCS) → a full-file decode
that counts replacement characters.  A file whose decode needs more than
``MAX_REPLACEMENT_RATIO`` replacements is an error, not a warning.

This module only turns bytes into ``str``; it does not read directories, clean
or split text.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from xiaoshuo.errors import XiaoshuoError

SAMPLE_BYTES = 256 * 1024
MAX_REPLACEMENT_RATIO = 0.001  # 1 in 1000 characters

# charset-normalizer names → the codec we decode with and the name we record.
_CHINESE = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "gb18030": "gb18030",
    "hz": "hz",
    "big5": "big5hkscs",
    "big5hkscs": "big5hkscs",
    "cp950": "big5hkscs",
    "utf_8": "utf-8",
    "ascii": "utf-8",
    "utf_16": "utf-16",
    "utf_16_le": "utf-16-le",
    "utf_16_be": "utf-16-be",
}

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class DecodingError(XiaoshuoError):
    """A file is not text in a supported encoding."""


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str  # codec used: utf-8, utf-8-sig, utf-16, gb18030, big5hkscs, …
    replacements: int  # U+FFFD characters introduced by decoding


def decode_bytes(data: bytes, *, name: str = "<bytes>") -> Decoded:
    """Detect the encoding of ``data`` and decode it; raise :class:`DecodingError`."""
    if not data:
        raise DecodingError(
            f"{name}: 文件为空 (empty file)", expected="a text file with content", received="0 bytes"
        )
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _full_decode(data, codec, name)
    try:
        return Decoded(data.decode("utf-8"), "utf-8", 0)
    except UnicodeDecodeError:
        # A UTF-8 novel with a few corrupt bytes stays UTF-8 (replacements are recorded).
        text = data.decode("utf-8", errors="replace")
        if text.count("\ufffd") <= _allowed_replacements(text):
            return Decoded(text, "utf-8", text.count("\ufffd"))
    codec = _detect(_sample(data), name)
    return _full_decode(data, codec, name)


def _sample(data: bytes) -> bytes:
    """The first ``SAMPLE_BYTES``, cut after a newline so no character is split."""
    if len(data) <= SAMPLE_BYTES:
        return data
    cut = data.rfind(b"\n", 0, SAMPLE_BYTES)
    if cut < SAMPLE_BYTES // 2:
        return data[:SAMPLE_BYTES]
    end = cut + 1
    if end < len(data) and data[end] == 0:  # UTF-16 LE: keep the newline's second byte
        end += 1
    return data[:end]


def _detect(sample: bytes, name: str) -> str:
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    codec = _CHINESE.get(best.encoding) if best is not None else None
    if codec is not None:
        return codec
    if best is None or sample.count(0) > len(sample) // 100:
        raise DecodingError(
            f"{name}: 这是二进制文件或无法识别的编码 (binary file or unknown encoding)",
            expected="a text file (.txt in UTF-8, UTF-16, GB18030/GBK or Big5)",
            received=f"{sample.count(0)} NUL bytes in the first {len(sample)} bytes; no text encoding fits",
            fix="删除该文件，或用文本编辑器另存为 UTF-8",
        )
    raise DecodingError(
        f"{name}: 不是中文编码的文本 (not a Chinese text encoding)",
        expected="UTF-8, UTF-16, GB18030/GBK or Big5",
        received=f"{best.encoding} ({best.language or 'unknown language'})",
        fix="确认文件内容；若确是中文小说，请另存为 UTF-8",
    )


def _allowed_replacements(text: str) -> int:
    return max(2, int(len(text) * MAX_REPLACEMENT_RATIO))


def _full_decode(data: bytes, codec: str, name: str) -> Decoded:
    text = data.decode(codec, errors="replace")
    replacements = text.count("\ufffd")
    if replacements > _allowed_replacements(text):
        raise DecodingError(
            f"{name}: 解码出现大量乱码 (decoding produced mojibake)",
            expected=f"at most {MAX_REPLACEMENT_RATIO:.1%} undecodable characters",
            received=f"{replacements} replacement characters in {len(text)} decoded as {codec}",
            fix="文件可能混合了多种编码或已损坏；请用文本编辑器检查并另存为 UTF-8",
        )
    return Decoded(text, codec, replacements)
