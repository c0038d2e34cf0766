"""Books in: import an existing novel file as a project.

:func:`import_book` reads any file ``prepare`` reads (TXT in any encoding it detects,
EPUB, the seed's JSON/JSONL) with prepare's own pieces — :func:`xiaoshuo.data.readers.read_source`
(which decodes with :func:`xiaoshuo.data.decoding.decode_bytes`), :func:`~xiaoshuo.data.cleaning.clean_text`
and :func:`~xiaoshuo.data.structure.split_chapters` — and stores volumes and chapters in order, every
chapter ``final`` with one version marked ``imported``.  A title block at the top (``《书名》`` /
``作者：…``) fills the card; other text before the first heading becomes a ``序言`` chapter.  A chapter's
title is the author's heading as written (``第十一章 末班车``; shown with
:func:`~xiaoshuo.writing.exporting.chapter_heading`, never doubled); the outline numbers run from 1 and the
report's ``renumbered`` says when they differ from the author's; the card's 每章目标 is the chapters'
median.  A new or replacing import is built in ``data/novels/.importing/`` and renamed into place once
complete (nothing half-imported is ever visible; ``--replace`` keeps the old folder under
``data/novels/.replaced/``; staging folders of killed imports are removed by the next import).
``--append`` adds chapters after the last one, holding the novel's lock, through
:meth:`~xiaoshuo.writing.project.Novel.bulk_import`: all or nothing, even when killed (the next writer
rolls an unfinished append back).  Chapters are stored only through ``Novel``'s public methods.

This module does not export books (:mod:`xiaoshuo.writing.exporting`), does not extract memory from
chapters (the review queue does) and does not generate.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from xiaoshuo.data.cleaning import CleanOptions, CleanStats, clean_text
from xiaoshuo.data.readers import Chapter, read_source, supported_extensions
from xiaoshuo.data.structure import (
    MAX_HEADING_LEN,
    compile_chapter_regex,
    split_chapters,
)
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.files import fsync_dir
from xiaoshuo.writing.project import Novel, Novels
from xiaoshuo.writing.schema import (
    NovelCard,
    WritingError,
    check_slug,
)
from xiaoshuo.writing.textstats import count_chars

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)
DEFAULT_VOLUME = "正文"  # the writing core's default volume; its heading is not printed
PREFACE = "序言"  # text before the first heading (a title the chapter parser knows again)
_TITLE_LINE = re.compile(r"^(?:《(?P<b>[^》]{1,100})》|书名[:：]\s*(?P<n>.{1,100}))$")
_AUTHOR_LINE = re.compile(r"^(?:作者|作\s+者)[:：]\s*(?P<a>.{1,100})$")
_NUMBERED_TITLE = re.compile(r"^\s*第\s*[0-9０-９零〇一二两三四五六七八九十百千万]+\s*[章回节]")


class BookError(WritingError):
    """A book cannot be imported or exported as asked."""


@lru_cache(maxsize=8)
def opencc_converter(config: str):
    """An OpenCC converter (``s2t``, ``t2s``, …), built once per config."""
    import opencc

    return opencc.OpenCC(config)


# ====================================================================== import
@dataclass
class ParsedBook:
    """A file read, cleaned and split, ready to store (``volumes``: title → chapters, in order)."""

    file: str
    format: str
    bytes: int
    encoding: str
    encoding_rule: str
    title: str
    author: str
    volumes: list[tuple[str, list[Chapter]]]
    dropped: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    metadata_from_text: list[str] = field(default_factory=list)
    variant: str = "简"
    _chars: list[int] | None = None

    def chars(self) -> list[int]:
        """字 of each chapter, in order (counted once)."""
        if self._chars is None:
            self._chars = [count_chars(c.text) for _, c in self.chapters()]
        return self._chars

    def chapters(self) -> Iterator[tuple[str, Chapter]]:
        for vol, chapters in self.volumes:
            for ch in chapters:
                yield vol, ch


def read_book(path: str | os.PathLike[str], *, settings: Any = None) -> ParsedBook:
    """Read, clean (like ``prepare``) and split one file; raises :class:`XiaoshuoError` when unusable."""
    path = Path(path)
    if not path.exists():  # a folder, device or FIFO: read_source says so
        raise BookError(
            f"找不到要导入的文件 (file not found): {path}",
            expected="a novel file: " + ", ".join(supported_extensions()),
            received=str(path),
            fix="检查路径",
        )
    data = getattr(settings, "data", None)
    options = CleanOptions(
        strip_indent=getattr(data, "clean_strip_indent", True),
        drop_ads=getattr(data, "clean_drop_ads", True),
        collapse_blank_lines=getattr(data, "clean_collapse_blank_lines", True),
        to_simplified=False,  # the book keeps its 简/繁; export converts on request
    )
    chapter_re = compile_chapter_regex(getattr(data, "chapter_regex", "") or "")
    try:
        result = read_source(path, path.name, getattr(settings, "limits", None))
    except OSError as exc:
        raise BookError(f"{path.name}: 无法读取文件 (cannot read)", received=str(exc)) from None
    stats = CleanStats()
    book = ParsedBook(
        file=path.name,
        format=path.suffix.lower().lstrip("."),
        bytes=path.stat().st_size,
        encoding=result.encoding,
        encoding_rule=result.encoding_rule,
        title="",
        author="",
        volumes=[],
        warnings=list(result.warnings),
    )
    documents, result.documents = result.documents, []
    empty_headings = 0
    many = len(documents) > 1
    while documents:
        doc = documents.pop(0)  # each document's text is freed once it is split
        if doc.chapters is not None:  # EPUB: chapters from the spine
            chapters = [
                Chapter(title=clean_text(c.title, options), text=t)
                for c in doc.chapters
                if (t := clean_text(c.text, options, stats)).strip()
            ]
        else:
            text = clean_text(doc.text, options, stats)
            doc.text = ""
            empty_headings += _count_headings(text, chapter_re)
            chapters = split_chapters(text, chapter_re)
            del text
            empty_headings -= sum(1 for c in chapters if c.title)
        if chapters and not chapters[0].title and not chapters[0].volume:
            _take_title_block(book, chapters)
        if not book.title:
            book.title = doc.title if not many else path.stem
        book.author = book.author or str(doc.meta.get("author") or "")
        _add_volumes(book, chapters, doc.title if many else "")
    _record_dropped(book, stats, empty_headings)
    if not any(chs for _, chs in book.volumes):
        raise BookError(
            f"{path.name}: 清理后没有正文 (no text left after cleaning)",
            expected="a novel with chapters or at least some text",
            received=f"{book.bytes} bytes, encoding {book.encoding}",
            fix="检查文件内容；广告行和损坏的行会被删除（与 prepare 相同）",
        )
    book.title = (book.title or path.stem).strip()[:200] or path.stem[:200]
    book.variant = detect_variant(c.text for _, c in book.chapters())
    return book


def _count_headings(text: str, chapter_re: re.Pattern[str]) -> int:
    n = 0
    for line in text.split("\n"):
        s = line.strip()
        if s and len(s) <= MAX_HEADING_LEN and chapter_re.match(s):
            n += 1
    return n


def _take_title_block(book: ParsedBook, chapters: list[Chapter]) -> None:
    """``《书名》`` / ``作者：…`` lines at the very top fill the card instead of becoming text."""
    lines = chapters[0].text.split("\n")
    used = 0
    for i, line in enumerate(lines[:8]):
        s = line.strip()
        if not s:
            continue
        if (m := _TITLE_LINE.match(s)) and not book.title:
            book.title = (m.group("b") or m.group("n")).strip()
        elif (m := _AUTHOR_LINE.match(s)) and not book.author:
            book.author = m.group("a").strip()
        else:
            break
        book.metadata_from_text.append(s)
        used = i + 1
    if not used:
        return
    rest = "\n".join(lines[used:]).strip("\n")
    if rest.strip():
        chapters[0].text = rest
    else:
        chapters.pop(0)


def _add_volumes(book: ParsedBook, chapters: list[Chapter], doc_title: str) -> None:
    for ch in chapters:
        vol = " · ".join(t for t in (doc_title, ch.volume) if t) or DEFAULT_VOLUME
        if not ch.title:
            ch.title = PREFACE
        ch.title = ch.title[:200]
        vol = vol[:200]
        if book.volumes and book.volumes[-1][0] == vol:
            book.volumes[-1][1].append(ch)
        else:
            book.volumes.append((vol, [ch]))


def _record_dropped(book: ParsedBook, stats: CleanStats, empty_headings: int) -> None:
    if stats.ad_lines_dropped:
        book.dropped.append(
            {
                "what": "ad/banner lines",
                "count": stats.ad_lines_dropped,
                "why": "site banners, URLs, ads and short lines repeated ≥5 times (prepare's rules)",
            }
        )
    if stats.damaged_lines_dropped:
        book.dropped.append(
            {
                "what": "damaged lines",
                "count": stats.damaged_lines_dropped,
                "why": "U+FFFD or control characters (bytes that could not be decoded)",
            }
        )
    if empty_headings > 0:
        book.dropped.append(
            {"what": "empty chapters", "count": empty_headings, "why": "a chapter heading with no text"}
        )
    for w in book.warnings:
        book.dropped.append({"what": "reader warning", "count": 1, "why": w})


def detect_variant(texts: Any, sample_chars: int = 20_000) -> str:
    """``繁`` when OpenCC t2s changes more than 3 % of a sample's CJK characters, else ``简``."""
    sample = []
    n = 0
    for t in texts:
        sample.append(t[: sample_chars - n])
        n += len(sample[-1])
        if n >= sample_chars:
            break
    text = "".join(sample)
    cjk = sum(1 for c in text if "\u4e00" <= c <= "\u9fff")
    if not cjk:
        return "简"
    converted = opencc_converter("t2s").convert(text)
    changed = sum(1 for a, b in zip(text, converted, strict=False) if a != b)
    return "繁" if changed / cjk > 0.03 else "简"


def import_book(
    novels: Novels,
    path: str | os.PathLike[str],
    slug: str,
    *,
    title: str | None = None,
    author: str | None = None,
    mode: str = "new",
    settings: Any = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Import ``path`` as novel ``slug``; ``mode``: ``new`` (refused if it exists), ``append``, ``replace``.

    Returns the report (chapters with 字 each, volumes, dropped lines and why, encoding, …).
    """
    if mode not in ("new", "append", "replace"):
        raise BookError(
            "导入方式无效 (invalid import mode)", expected="new, append or replace", received=mode
        )
    slug = check_slug(novels.resolve(slug))  # --slug is --novel: a title only one novel has names it
    started = time.perf_counter()
    clean_stale_staging(novels.root)
    size = Path(path).stat().st_size if Path(path).is_file() else 0
    target = novels.root / slug
    exists = (target / "novel.json").is_file()
    if exists and mode == "new":
        raise BookError(
            f"小说已存在 (novel exists): {slug}",
            expected="a new slug, or --append / --replace",
            received=str(target),
            fix=f"加 --append 接在第 {_chapter_count(novels, slug)} 章之后，或 --replace 整本替换"
            f"（旧的保留在 {novels.root / '.replaced'}），或换一个 --slug",
        )
    if progress:
        progress("读取 read", 0, size)
    book = read_book(path, settings=settings)
    if progress:
        progress("读取 read", size, size)
    card_title = (title or book.title).strip()[:200] or slug
    card_author = author if author is not None else book.author
    report_extra: dict[str, Any] = {}
    if exists and mode == "append":
        numbers = _append(Novel(target, slug, flow=novels.flow), book, progress)
    else:
        card = NovelCard(
            slug=slug,
            title=card_title,
            author=card_author,
            variant=book.variant,  # type: ignore[arg-type]
            chapter_chars=_typical_length(book),
        )
        numbers, backup = _import_whole(novels, slug, card, book, replace=exists, progress=progress)
        if backup is not None:
            report_extra["replaced_backup"] = str(backup)
        mode = "replace" if exists else "new"
    return _report(novels.get(slug), book, numbers, mode, time.perf_counter() - started) | report_extra


def _chapter_count(novels: Novels, slug: str) -> int:
    with contextlib.suppress(XiaoshuoError):
        return len(Novel(novels.root / slug, slug).outline().chapters())
    return 0


def _typical_length(book: ParsedBook) -> int:
    """The card's 每章目标字数: the imported chapters' median 字 (to 10 字 under 1,000, else to 100), so a
    book of 150-字 sample chapters gets 150, not 100 or 3,000; within the card's 50..200,000."""
    lengths = sorted(book.chars())
    if not lengths:
        return 3000
    mid = len(lengths) // 2
    median = lengths[mid] if len(lengths) % 2 else (lengths[mid - 1] + lengths[mid]) / 2
    return min(200_000, max(50, int(round(median, -1 if median < 1000 else -2))))


def renumbering(numbers: list[int], titles: list[str]) -> dict[str, Any] | None:
    """Where the author's chapter numbers (``第十一章`` in a title) differ from the stored ones: the titles
    keep the author's headings, the outline numbers run 1, 2, 3 …; None when every number agrees."""
    from xiaoshuo.data.structure import heading_number

    moved = []
    for n, title in zip(numbers, titles, strict=True):
        own = heading_number(title) if _NUMBERED_TITLE.match(title) else None
        if own is not None and own != n:
            moved.append({"number": n, "heading": own, "title": title})
    if not moved:
        return None
    first = moved[0]
    return {
        "count": len(moved),
        "first": first,
        "note": f"原书的章号与导入后的编号不同：《{first['title']}》（原第 {first['heading']} 章）现在是第 "
        f"{first['number']} 章，共 {len(moved)} 章；标题保留原书的章号"
        f" (chapter numbers re-based: the titles keep the author's numbers)",
    }


def _volumes_of(book: ParsedBook) -> list[tuple[str, list[tuple[str, str, int]]]]:
    """The book as :meth:`Novel.bulk_import` takes it: volumes of (title, text, 字)."""
    chars = iter(book.chars())
    return [(vol, [(ch.title, ch.text, next(chars)) for ch in chapters]) for vol, chapters in book.volumes]


def _store(novel: Novel, book: ParsedBook, progress: ProgressFn | None, *, durable: bool) -> list[int]:
    """All chapters of ``book`` after the novel's last one (all or nothing), with progress in characters."""
    done = [0]
    for _, ch in book.chapters():
        done.append(done[-1] + len(ch.text))
    total = done[-1]

    def on_chapters(n: int) -> None:
        if progress:
            progress("写入 write", done[min(n, len(done) - 1)], total)

    if progress:
        progress("写入 write", 0, total)
    return novel.bulk_import(
        _volumes_of(book), note=f"imported from {book.file}", durable=durable, progress=on_chapters
    )


def _import_whole(
    novels: Novels,
    slug: str,
    card: NovelCard,
    book: ParsedBook,
    *,
    replace: bool,
    progress: ProgressFn | None,
) -> tuple[list[int], Path | None]:
    """Build the novel in a staging folder, make it durable with one sync, then rename it into place."""
    if replace:
        _refuse_locked(Novel(novels.root / slug, slug))  # before any work; again under the lock
    staging = novels.root / STAGING / f"{slug}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        novel = Novel(staging, slug, flow=novels.flow)
        with novel.writer(what="novel import (staging)"):
            novel.save_card(card)
            numbers = _store(novel, book, progress, durable=False)
        os.sync()  # one flush for every file above (they are invisible until the rename below)
        target = novels.root / slug
        if not replace:
            try:
                os.rename(staging, target)
            except OSError as exc:
                raise BookError(
                    f"无法创建小说目录 (cannot create the novel folder): {target}",
                    received=str(exc),
                    fix="该目录已存在且不是空的小说目录：换一个 --slug，或移走它",
                ) from None
            fsync_dir(novels.root)
            return numbers, None
        old = Novel(target, slug)
        with old.writer(what="novel import --replace"):
            _refuse_locked(old)
            backup = novels.root / ".replaced" / f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            backup.parent.mkdir(parents=True, exist_ok=True)
            os.rename(target, backup)
            os.rename(staging, target)
            fsync_dir(novels.root)
        return numbers, backup
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()


def _refuse_locked(novel: Novel) -> None:
    """``--replace`` would replace locked chapters' text (``chapter lock``): refused, naming them."""
    try:
        locked = [c.number for c in novel.outline().chapters() if c.locked]
    except WritingError:
        return  # a damaged outline: replacing the book is the repair
    if locked:
        raise BookError(
            f"《{novel.slug}》有锁定的章节，不能整本替换 (the novel has locked chapters)",
            expected="no locked chapter (xiaoshuo chapter lock)",
            received="第" + "、".join(map(str, locked[:20])) + "章 locked",
            fix=f"先 xiaoshuo chapter unlock N --novel {novel.slug} 解锁，或导入为新书（--slug 换一个标识）",
        )


def _append(novel: Novel, book: ParsedBook, progress: ProgressFn | None) -> list[int]:
    """Chapters after the last one; :meth:`Novel.bulk_import` makes it all or nothing, even on kill -9."""
    with novel.writer(what="novel import --append"):
        return _store(novel, book, progress, durable=True)


# ---------------------------------------------------------------------- leftovers of killed imports
STAGING = ".importing"  # data/novels/.importing/<slug>-<pid>-<8 hex>: a new or replacing import
_STAGING_NAME = re.compile(r"^.+-(?P<pid>\d+)-[0-9a-f]{8}$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a process of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_staging(novels_root: Path) -> list[Path]:
    """Staging folders of imports whose process is gone (killed before the rename)."""
    folder = Path(novels_root) / STAGING
    out = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        m = _STAGING_NAME.match(path.name)
        if m and path.is_dir() and not path.is_symlink() and not pid_alive(int(m.group("pid"))):
            out.append(path)
    return out


def clean_stale_staging(novels_root: Path) -> list[Path]:
    """Remove :func:`stale_staging` folders (and ``.importing`` itself when empty); returns them."""
    removed = stale_staging(novels_root)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        (Path(novels_root) / STAGING).rmdir()
    return removed


def _report(novel: Novel, book: ParsedBook, numbers: list[int], mode: str, seconds: float) -> dict[str, Any]:
    card = novel.card()
    chapters = []
    for n, (vol, ch), chars in zip(numbers, book.chapters(), book.chars(), strict=True):
        chapters.append({"number": n, "title": ch.title, "volume": vol, "chars": chars})
    return {
        "slug": novel.slug,
        "title": card.title,
        "author": card.author,
        "variant": card.variant,
        "mode": mode,
        "file": book.file,
        "format": book.format,
        "bytes": book.bytes,
        "encoding": book.encoding,
        "encoding_rule": book.encoding_rule,
        "volumes": [{"title": t, "chapters": len(chs)} for t, chs in book.volumes],
        "chapters": chapters,
        "total_chars": sum(c["chars"] for c in chapters),
        "dropped": book.dropped,
        "metadata_from_text": book.metadata_from_text,
        "status": "final",
        "chapter_chars": card.chapter_chars,  # 每章目标: the median 字 of the chapters (a new import)
        "renumbered": renumbering(numbers, [c["title"] for c in chapters]),
        "seconds": round(seconds, 3),
        "path": str(novel.root),
    }
