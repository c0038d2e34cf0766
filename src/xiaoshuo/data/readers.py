"""Readers for novel files, in a registry keyed by file extension.

Each reader turns one source file into :class:`Document` objects (a book, or one
entry of a JSON export) with metadata and the source path.  Readers decode
bytes (via :mod:`xiaoshuo.data.decoding`) and parse formats; they do not clean,
split into chapters or chunk.  A problem with the whole file raises
:class:`ReadError`; a problem with part of it (a broken JSONL line, a JSON entry
without content) becomes a warning and the rest is kept.  Every read is bounded by
the ``limits.*`` settings (:mod:`xiaoshuo.files`): only regular files, at most
``limits.max_file_mb``; JSON nested absurdly deep is refused; an EPUB is checked
for zip bombs before ebooklib opens it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xiaoshuo.config import LimitSettings
from xiaoshuo.data.decoding import decode_bytes
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.files import MB, check_zip, parse_user_json, read_user_file


class ReadError(XiaoshuoError):
    """A source file cannot be used at all."""


@dataclass
class Chapter:
    title: str  # "" for text before the first heading
    text: str
    volume: str = ""
    number: int | None = None


@dataclass
class Document:
    source: str  # path relative to the input folder
    index: int  # position inside the source (JSON entries); 0 for single-book files
    title: str
    text: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    chapters: list[Chapter] | None = None  # pre-split (EPUB spine); None = split by headings

    @property
    def doc_id(self) -> str:
        return f"{self.source}#{self.index}"


@dataclass
class ReadResult:
    documents: list[Document]
    encoding: str
    warnings: list[str] = field(default_factory=list)
    encoding_rule: str = ""  # which detection rule chose ``encoding`` (Decoded.rule_text)


Reader = Callable[[Path, str, LimitSettings], ReadResult]
READERS: dict[str, Reader] = {}


def reader(*extensions: str) -> Callable[[Reader], Reader]:
    def register(fn: Reader) -> Reader:
        for ext in extensions:
            READERS[ext] = fn
        return fn

    return register


def supported_extensions() -> list[str]:
    return sorted(READERS)


def read_source(path: Path, rel: str, limits: LimitSettings | None = None) -> ReadResult:
    """Read one file with the reader registered for its extension, within ``limits`` (default: the
    defaults of ``limits.*``)."""
    fn = READERS.get(path.suffix.lower())
    if fn is None:
        raise ReadError(
            f"{rel}: 不支持的文件格式 (unsupported format)",
            expected="one of " + ", ".join(supported_extensions()),
            received=path.suffix or "(no extension)",
            fix="转换为 .txt / .json / .jsonl / .epub，或把它移出输入目录",
        )
    return fn(path, rel, limits or LimitSettings())


def _read_bytes(path: Path, rel: str, limits: LimitSettings) -> bytes:
    limit = limits.max_file_mb * MB
    return read_user_file(path, limit=limit, key="limits.max_file_mb", what=f"文件 {rel}", error=ReadError)


@reader(".txt")
def read_txt(path: Path, rel: str, limits: LimitSettings) -> ReadResult:
    decoded = decode_bytes(_read_bytes(path, rel, limits), name=rel)
    if not decoded.text.strip():
        raise ReadError(
            f"{rel}: 文件只有空白 (whitespace only)", expected="novel text", received="blank text"
        )
    warnings = (
        [f"{decoded.replacements} undecodable byte sequence(s) replaced; their lines are dropped"]
        if decoded.replacements
        else []
    )
    doc = Document(source=rel, index=0, title=path.stem, text=decoded.text)
    return ReadResult([doc], decoded.encoding, warnings, decoded.rule_text)


def _entry_to_document(obj: Any, rel: str, index: int, where: str) -> Document:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected an object {{title, content}}, got {type(obj).__name__}")
    content = obj.get("content")
    if not isinstance(content, str) or not content.strip():
        raise ValueError(f"{where}: missing or empty 'content' (a string)")
    title = obj.get("title")
    title = title.strip() if isinstance(title, str) and title.strip() else f"untitled-{index + 1}"
    meta = {k: obj[k] for k in ("author", "genre", "tags") if obj.get(k) not in (None, "", [])}
    return Document(source=rel, index=index, title=title, text=content, meta=meta)


@reader(".json")
def read_json(path: Path, rel: str, limits: LimitSettings) -> ReadResult:
    decoded = decode_bytes(_read_bytes(path, rel, limits), name=rel)
    data = parse_user_json(
        decoded.text,
        what=f"文件 {rel}",
        error=ReadError,
        expected='a list: [{"title": ..., "content": ..., "author": ..., "genre": ..., "tags": [...]}]',
    )
    if not isinstance(data, list):
        raise ReadError(
            f"{rel}: JSON 顶层必须是列表 (top level must be a list)",
            expected='[{"title": ..., "content": ...}, ...]',
            received=type(data).__name__,
            fix="把对象放进 [ ] 列表里",
        )
    docs, warnings = [], []
    for i, obj in enumerate(data):
        try:
            docs.append(_entry_to_document(obj, rel, i, f"entry {i}"))
        except ValueError as exc:
            warnings.append(str(exc))
    if not docs:
        raise ReadError(
            f"{rel}: 没有可用的条目 (no usable entries)", received="; ".join(warnings[:5]) or "[]"
        )
    return ReadResult(docs, decoded.encoding, warnings, decoded.rule_text)


@reader(".jsonl")
def read_jsonl(path: Path, rel: str, limits: LimitSettings) -> ReadResult:
    decoded = decode_bytes(_read_bytes(path, rel, limits), name=rel)
    docs, warnings, bad_lines = [], [], []
    for lineno, line in enumerate(decoded.text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = parse_user_json(line, what=f"line {lineno}", error=ReadError)
            docs.append(_entry_to_document(obj, rel, lineno, f"line {lineno}"))
        except ReadError as exc:
            bad_lines.append(lineno)
            warnings.append(f"line {lineno}: invalid JSON ({exc.received})")
        except ValueError as exc:
            bad_lines.append(lineno)
            warnings.append(str(exc))
    if bad_lines:
        shown = ", ".join(map(str, bad_lines[:20])) + (" …" if len(bad_lines) > 20 else "")
        warnings.insert(0, f"{len(bad_lines)} bad line(s) skipped: {shown}")
    if not docs:
        raise ReadError(
            f"{rel}: 没有可用的行 (no usable lines)",
            expected='one {"title": ..., "content": ...} object per line',
            received="; ".join(warnings[:3]) or "empty",
        )
    return ReadResult(docs, decoded.encoding, warnings, decoded.rule_text)


_BLOCKS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre"}
_HEADINGS = ("h1", "h2", "h3")
#: EPUB 3 structural semantics of a page that is not part of the text (title page, cover)
_FRONT_MATTER = re.compile(rb"""epub:type\s*=\s*["'][^"']*\b(?:titlepage|halftitlepage|cover)\b""")


@reader(".epub")
def read_epub(path: Path, rel: str, limits: LimitSettings) -> ReadResult:
    import ebooklib
    from ebooklib import epub

    check_zip(path, limits, what=f"EPUB {rel}", error=ReadError)  # ebooklib reads every entry into memory
    try:
        book = epub.read_epub(str(path), options={"ignore_ncx": True})
    except Exception as exc:
        raise ReadError(
            f"{rel}: 无法解析 EPUB (cannot parse EPUB)",
            expected="a valid .epub (zip with OPF)",
            received=f"{type(exc).__name__}: {exc}",
            fix="用电子书工具重新导出",
        ) from None
    chapters, warnings = [], []
    for idref, _linear in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT or not item.is_chapter():
            continue
        try:
            content = item.get_content()
            if _FRONT_MATTER.search(content[:4000]):
                continue  # a title page or cover (书名、作者) is no chapter; the metadata holds both
            title, text = _html_to_text(content)
        except Exception as exc:
            warnings.append(f"spine item {idref}: {type(exc).__name__}: {exc}")
            continue
        if text.strip():
            chapters.append(Chapter(title=title, text=text))
    if not chapters:
        raise ReadError(
            f"{rel}: EPUB 中没有正文 (no text in the spine)", received=f"{len(book.spine)} spine items"
        )
    titles = book.get_metadata("DC", "title")
    authors = book.get_metadata("DC", "creator")
    meta = {"author": authors[0][0]} if authors else {}
    doc = Document(
        source=rel, index=0, title=titles[0][0] if titles else path.stem, meta=meta, chapters=chapters
    )
    doc.text = "\n".join(c.text for c in chapters)
    return ReadResult([doc], "utf-8 (epub)", warnings, "epub")


def _html_to_text(content: bytes) -> tuple[str, str]:
    import lxml.html

    root = lxml.html.fromstring(content)
    for br in root.iter("br"):
        br.tail = "\n" + (br.tail or "")
    title, lines = "", []
    for el in root.iter(*_BLOCKS):
        if any(child.tag in _BLOCKS for child in el.iterdescendants()):
            continue  # only leaf blocks, so nested divs are not repeated
        text = el.text_content().strip()
        if not text:
            continue
        if not title and el.tag in _HEADINGS:
            title = text
            continue
        lines.append(text)
    return title, "\n".join(lines)
