"""Books in and out: import an existing novel file as a project, export a project as a whole book.

**Import** (:func:`import_book`) reads any file ``prepare`` reads (TXT in any encoding it detects,
EPUB, the seed's JSON/JSONL) with prepare's own pieces — :func:`xiaoshuo.data.readers.read_source`
(which decodes with :func:`xiaoshuo.data.decoding.decode_bytes`), :func:`~xiaoshuo.data.cleaning.clean_text`
and :func:`~xiaoshuo.data.structure.split_chapters` — and stores volumes and chapters in order, every
chapter ``final`` with one version marked ``imported``.  A title block at the top (``《书名》`` /
``作者：…``) fills the card; other text before the first heading becomes a ``序言`` chapter.  A new
or replacing import is built in ``data/novels/.importing/`` and renamed into place once complete
(nothing half-imported is ever visible; ``--replace`` keeps the old folder under
``data/novels/.replaced/``).  ``--append`` adds chapters after the last one, holding the novel's lock,
and removes what it wrote if it fails.

**Export** (:func:`export_book`) writes TXT, Markdown, EPUB 3 (ebooklib; nav + NCX by volume and
chapter) or DOCX (python-docx; heading styles, East Asian font on every run, a page break per
chapter), optionally converted with OpenCC (s2t/s2tw/s2hk/t2s) in titles, headings and text alike.
Export only reads the project and writes the target through a temp file renamed at the end, so a
failed export leaves no partial file.

This module does not extract memory from chapters (the review queue does) and does not generate.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
from xiaoshuo.writing.project import Novel, Novels, sha256
from xiaoshuo.writing.schema import (
    ChapterPlan,
    NovelCard,
    Outline,
    Version,
    Volume,
    WritingError,
    check_slug,
)
from xiaoshuo.writing.textstats import count_chars

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)
FORMATS = ("txt", "md", "epub", "docx")
CONVERSIONS = ("s2t", "s2tw", "s2hk", "t2s")
ENCODINGS = ("utf-8", "gb18030")
DEFAULT_VOLUME = "正文"  # the writing core's default volume; its heading is not printed
PREFACE = "序言"  # text before the first heading (a title the chapter parser knows again)
_LANG = {"s2t": "zh-TW", "s2tw": "zh-TW", "s2hk": "zh-HK", "t2s": "zh-CN"}
_TITLE_LINE = re.compile(r"^(?:《(?P<b>[^》]{1,100})》|书名[:：]\s*(?P<n>.{1,100}))$")
_AUTHOR_LINE = re.compile(r"^(?:作者|作\s+者)[:：]\s*(?P<a>.{1,100})$")
_NUMBERED_CHAPTER = re.compile(r"^(?:第\s*\S{1,12}?\s*[章回节]|序章|序言|楔子|引子|尾声|终章|番外|后记)")
_NUMBERED_VOLUME = re.compile(r"^(?:第\s*\S{1,12}?\s*[卷部集]|卷\s*\S)")


class BookError(WritingError):
    """A book cannot be imported or exported as asked."""


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
    converted = _converter("t2s").convert(text)
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
    slug = check_slug(slug)
    started = time.perf_counter()
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
    novels.migrate_stories()
    if progress:
        progress("读取 read", 0, size)
    book = read_book(path, settings=settings)
    if progress:
        progress("读取 read", size, size)
    card_title = (title or book.title).strip()[:200] or slug
    card_author = author if author is not None else book.author
    report_extra: dict[str, Any] = {}
    if exists and mode == "append":
        numbers = _append(Novel(target, slug), book, progress)
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
    lengths = sorted(book.chars())
    median = lengths[len(lengths) // 2] if lengths else 3000
    return min(200_000, max(50, round(median, -2) or 3000))


def _outline_of(book: ParsedBook, first: int) -> list[Volume]:
    volumes, n = [], first
    for title, chapters in book.volumes:
        plans = []
        for ch in chapters:
            plans.append(ChapterPlan(number=n, title=ch.title, status="final"))
            n += 1
        volumes.append(Volume(title=title, chapters=plans))
    return volumes


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
    staging = novels.root / ".importing" / f"{slug}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        novel = Novel(staging, slug)
        novel.save_card(card)
        numbers = _write_chapters(novel, book, 1, progress, bulk=True)
        novel.save_outline(Outline(volumes=_outline_of(book, 1)))
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
            _fsync_dir(novels.root)
            return numbers, None
        old = Novel(target, slug)
        with old.writer(what="novel import --replace"):
            backup = novels.root / ".replaced" / f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            backup.parent.mkdir(parents=True, exist_ok=True)
            os.rename(target, backup)
            os.rename(staging, target)
            _fsync_dir(novels.root)
        return numbers, backup
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()


def _append(novel: Novel, book: ParsedBook, progress: ProgressFn | None) -> list[int]:
    with novel.writer(what="novel import --append"):
        outline = novel.outline()
        first = len(outline.chapters()) + 1
        beyond = [n for n in novel.written_chapters() if n >= first]
        if beyond:
            raise BookError(
                f"第 {beyond[0]} 章有正文但不在大纲里 (chapter files beyond the outline)",
                expected=f"chapters 1..{first - 1} only",
                received=", ".join(map(str, beyond[:10])),
                fix="先把这些章节加入大纲（xiaoshuo outline import）或移走它们，再 --append",
            )
        numbers: list[int] = []
        try:
            numbers = _write_chapters(novel, book, first, progress, bulk=False, written=numbers)
            for vol in _outline_of(book, first):
                if outline.volumes and outline.volumes[-1].title == vol.title:
                    outline.volumes[-1].chapters.extend(vol.chapters)
                else:
                    outline.volumes.append(vol)
            novel.save_outline(outline)
        except BaseException:
            for n in numbers:  # new numbers only: nothing else points at them
                novel.chapter_file(n).unlink(missing_ok=True)
                novel._state_file(n).unlink(missing_ok=True)
                shutil.rmtree(novel._versions_dir(n), ignore_errors=True)
            raise
        return numbers


def _write_chapters(
    novel: Novel,
    book: ParsedBook,
    first: int,
    progress: ProgressFn | None,
    *,
    bulk: bool,
    written: list[int] | None = None,
) -> list[int]:
    numbers = written if written is not None else []
    total = sum(len(c.text) for _, c in book.chapters())
    done = 0
    note = f"imported from {book.file}"
    chars = book.chars()
    if bulk:  # a staging folder: chapters are independent files, created by a few threads (I/O bound)
        (novel.root / "chapters").mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(4) as pool:
            jobs = [
                pool.submit(_write_imported, novel, first + i, ch.text, note, chars[i])
                for i, (_, ch) in enumerate(book.chapters())
            ]
            for i, (job, (_, ch)) in enumerate(zip(jobs, book.chapters(), strict=True)):
                job.result()
                numbers.append(first + i)
                done += len(ch.text)
                if progress and i % 20 == 0:
                    progress("写入 write", done, total)
    else:
        for i, (_, ch) in enumerate(book.chapters()):
            novel.add_version(first + i, ch.text, source="imported", kind="import", accept=True, note=note)
            numbers.append(first + i)
            done += len(ch.text)
            if progress and i % 20 == 0:
                progress("写入 write", done, total)
    if progress:
        progress("写入 write", total, total)
    return numbers


def _write_imported(novel: Novel, number: int, text: str, note: str, chars: int) -> None:
    """Chapter ``number`` with one current ``imported`` version, laid out as :class:`Novel` stores it.

    Only used in a staging folder nobody else sees: files are written without a sync each; the
    caller syncs once before renaming the folder into place.
    """
    digest = sha256(text)
    version = Version(
        id=1,
        chapter=number,
        time=time.time(),
        source="imported",
        kind="import",
        text=text,
        chars=chars,
        sha256=digest,
        note=note,
    )
    folder = novel._versions_dir(number)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{version.id:06d}.json").write_text(
        json.dumps(version.model_dump(), ensure_ascii=False, indent=2, default=str), "utf-8"
    )
    path = novel.chapter_file(number)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    novel._state_file(number).write_text(
        json.dumps({"current": version.id, "sha256": digest}, ensure_ascii=False, indent=2), "utf-8"
    )


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
        "seconds": round(seconds, 3),
        "path": str(novel.root),
    }


# ====================================================================== export
@dataclass
class BookChapter:
    number: int
    title: str
    text: str


@dataclass
class BookContents:
    """What an export writes: converted titles and texts, grouped by volume (``show`` = print its heading)."""

    title: str
    author: str
    language: str
    identifier: str
    volumes: list[tuple[str, bool, list[BookChapter]]]
    skipped: list[dict[str, Any]]

    def chapters(self) -> Iterator[BookChapter]:
        for _, _, chapters in self.volumes:
            yield from chapters


def parse_chapter_range(spec: str | None) -> Callable[[int], bool]:
    """``"1-50"``, ``"7"``, ``"1-5,8,10-"`` → a predicate over chapter numbers (None/"" = all)."""
    if not spec or not spec.strip():
        return lambda n: True
    ranges = []
    for part in spec.replace("，", ",").split(","):
        m = re.fullmatch(r"\s*(\d+)?\s*(-)?\s*(\d+)?\s*", part)
        if not m or not (m.group(1) or m.group(3)) or (m.group(2) is None and m.group(3)):
            raise BookError(
                "章节范围无效 (invalid chapter range)",
                expected="N, N-M, N- or a comma list, e.g. 1-50 or 1-5,8,10-",
                received=spec,
            )
        lo = int(m.group(1)) if m.group(1) else 1
        hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else 10**9)
        ranges.append((lo, hi))
    return lambda n: any(lo <= n <= hi for lo, hi in ranges)


@lru_cache(maxsize=8)
def _converter(config: str):
    import opencc

    return opencc.OpenCC(config)


def _check_choice(value: str | None, choices: tuple[str, ...], what: str) -> None:
    if value is not None and value not in choices:
        raise BookError(f"{what} 无效 (invalid {what})", expected=" | ".join(choices), received=value)


def book_contents(
    novel: Novel,
    *,
    chapters: str | None = None,
    only_final: bool = False,
    convert: str | None = None,
) -> BookContents:
    """Read (never write) the selected chapters, converted with OpenCC when asked."""
    _check_choice(convert, CONVERSIONS, "--convert")
    card = novel.card()
    wanted = parse_chapter_range(chapters)
    conv = _converter(convert).convert if convert else (lambda s: s)
    volumes: list[tuple[str, bool, list[BookChapter]]] = []
    skipped: list[dict[str, Any]] = []
    for vol in novel.outline().volumes:
        picked = []
        for plan in vol.chapters:
            if not wanted(plan.number):
                continue
            if only_final and plan.status != "final":
                skipped.append({"number": plan.number, "title": plan.title, "why": f"status {plan.status}"})
                continue
            text = novel.text(plan.number)
            if not text.strip():
                skipped.append({"number": plan.number, "title": plan.title, "why": "not written yet"})
                continue
            picked.append(BookChapter(plan.number, conv(plan.title), conv(_XML_ILLEGAL.sub("", text))))
        if picked:
            volumes.append((conv(vol.title), vol.title != DEFAULT_VOLUME, picked))
    if not volumes:
        raise BookError(
            f"《{card.title}》没有可导出的章节 (nothing to export)",
            expected="at least one written chapter in the selection",
            received=f"chapters={chapters or 'all'}, only_final={only_final}, skipped {len(skipped)}",
            fix="xiaoshuo novel show " + novel.slug + " 查看章节状态；去掉 --only-final 或放宽 --chapters",
        )
    language = _LANG[convert] if convert else ("zh-TW" if card.variant == "繁" else "zh-CN")
    ident = uuid.uuid5(uuid.NAMESPACE_URL, f"xiaoshuo:{card.slug}:{card.created}")
    return BookContents(
        title=conv(card.title),
        author=conv(card.author),
        language=language,
        identifier=f"urn:uuid:{ident}",
        volumes=volumes,
        skipped=skipped,
    )


# Characters XML 1.0 cannot hold (EPUB's XHTML, DOCX's XML): C0 controls but tab/newline/CR, lone
# surrogates, U+FFFE/U+FFFF.  A model can emit them; exports drop them rather than fail.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _paragraphs(text: str) -> list[str]:
    return [s for line in text.split("\n") if (s := line.strip(" \t\u3000\u00a0"))]


@contextlib.contextmanager
def _atomic_target(target: Path) -> Iterator[Path]:
    """A temp path beside ``target``; renamed onto it (after fsync) only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    try:
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def export_book(
    novel: Novel,
    fmt: str,
    output: str | os.PathLike[str],
    *,
    chapters: str | None = None,
    only_final: bool = False,
    convert: str | None = None,
    encoding: str = "utf-8",
    crlf: bool = False,
) -> dict[str, Any]:
    """Write the book to ``output`` as ``fmt`` (txt|md|epub|docx); returns what was written."""
    _check_choice(fmt, FORMATS, "--format")
    _check_choice(encoding, ENCODINGS, "--encoding")
    if encoding != "utf-8" and fmt != "txt":
        raise BookError(
            "只有 TXT 可以选编码 (only TXT takes --encoding)",
            expected="--encoding with --format txt",
            received=f"{fmt} + {encoding}",
            fix="EPUB / DOCX / Markdown 总是 UTF-8；去掉 --encoding",
        )
    started = time.perf_counter()
    book = book_contents(novel, chapters=chapters, only_final=only_final, convert=convert)
    target = Path(output)
    with _atomic_target(target) as tmp:
        if fmt == "txt":
            _write_txt(book, tmp, encoding=encoding, crlf=crlf)
        else:
            {"md": _write_md, "epub": _write_epub, "docx": _write_docx}[fmt](book, tmp)
    chapter_list = list(book.chapters())
    return {
        "slug": novel.slug,
        "path": str(target),
        "format": fmt,
        "bytes": target.stat().st_size,
        "encoding": encoding if fmt == "txt" else "utf-8",
        "convert": convert,
        "language": book.language,
        "volumes": [v for v, show, _ in book.volumes if show],
        "chapters": len(chapter_list),
        "first": chapter_list[0].number,
        "last": chapter_list[-1].number,
        "chars": sum(count_chars(c.text) for c in chapter_list),
        "skipped": book.skipped,
        "seconds": round(time.perf_counter() - started, 3),
    }


# ---------------------------------------------------------------------- TXT / Markdown
def txt_heading(title: str, number: int, pattern: re.Pattern[str], word: str) -> str:
    """A TXT heading readers (and our importer) recognise: ``第N章 标题`` unless it already is one."""
    return title if pattern.match(title) else f"第{number}{word} {title}"


def _write_txt(book: BookContents, path: Path, *, encoding: str = "utf-8", crlf: bool = False) -> None:
    indent = "\u3000\u3000"
    with path.open("w", encoding=encoding, newline="\r\n" if crlf else "\n") as fh:
        fh.write(f"《{book.title}》\n")
        if book.author:
            fh.write(f"作者：{book.author}\n")
        shown = 0
        for vol, show, chapters in book.volumes:
            if show:
                shown += 1
                fh.write(f"\n{txt_heading(vol, shown, _NUMBERED_VOLUME, '卷')}\n")
            for ch in chapters:
                fh.write(f"\n{txt_heading(ch.title, ch.number, _NUMBERED_CHAPTER, '章')}\n\n")
                for line in ch.text.strip("\n").split("\n"):
                    s = line.strip(" \t\u3000\u00a0")
                    fh.write(f"{indent}{s}\n" if s else "\n")


_MD_SPECIAL = re.compile(r"^([#>*+=|`~-]|\d+[.)]\s)")


def _md_escape(line: str) -> str:
    line = line.replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_").replace("<", "&lt;")
    return "\\" + line if _MD_SPECIAL.match(line) else line


def _write_md(book: BookContents, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(f"# {_md_escape(book.title)}\n\n")
        if book.author:
            fh.write(f"作者：{_md_escape(book.author)}\n\n")
        for vol, show, chapters in book.volumes:
            if show:
                fh.write(f"## {_md_escape(vol)}\n\n")
            for ch in chapters:
                fh.write(f"### {_md_escape(ch.title)}\n\n")
                for p in _paragraphs(ch.text):
                    fh.write(f"{_md_escape(p)}\n\n")


# ---------------------------------------------------------------------- EPUB 3
EPUB_CSS = """@charset "utf-8";
body { margin: 0 4%; line-height: 1.8; text-align: justify; word-break: normal; line-break: strict; }
h1 { font-size: 1.6em; text-align: center; margin: 3em 0 1em; }
h2 { font-size: 1.3em; text-align: center; margin: 1.5em 0 1.2em; }
p { text-indent: 2em; margin: 0 0 0.4em; }
p.author { text-indent: 0; text-align: center; }
"""


def _write_epub(book: BookContents, path: Path) -> None:
    from ebooklib import epub

    eb = epub.EpubBook()
    eb.set_identifier(book.identifier)
    eb.set_title(book.title)
    eb.set_language(book.language)
    if book.author:
        eb.add_author(book.author)
    eb.add_metadata("DC", "date", time.strftime("%Y-%m-%d"))
    eb.add_metadata("DC", "publisher", "xiaoshuo")
    css = epub.EpubItem(uid="style", file_name="style/book.css", media_type="text/css", content=EPUB_CSS)
    eb.add_item(css)
    toc: list[Any] = []
    spine: list[Any] = ["nav"]
    for v, (vol, show, chapters) in enumerate(book.volumes, start=1):
        links = []
        vol_page = None
        if show:
            vol_page = _epub_page(epub, f"v{v:03d}.xhtml", vol, f"<h1>{html.escape(vol)}</h1>", book, css)
            eb.add_item(vol_page)
            spine.append(vol_page)
        for ch in chapters:
            body = "".join(f"<p>{html.escape(p)}</p>" for p in _paragraphs(ch.text))
            page = _epub_page(
                epub,
                f"c{ch.number:05d}.xhtml",
                ch.title,
                f'<section epub:type="chapter"><h2>{html.escape(ch.title)}</h2>{body}</section>',
                book,
                css,
            )
            eb.add_item(page)
            spine.append(page)
            links.append(epub.Link(page.file_name, ch.title, f"c{ch.number:05d}"))
        if vol_page is not None:
            toc.append((epub.Section(vol, href=vol_page.file_name), links))
        else:
            toc.extend(links)
    eb.toc = toc
    eb.add_item(epub.EpubNcx())
    nav = epub.EpubNav(title="目录")
    nav.add_item(css)
    eb.add_item(nav)
    eb.spine = spine
    epub.write_epub(str(path), eb, {"epub3_pages": False})


def _epub_page(epub: Any, name: str, title: str, body: str, book: BookContents, css: Any) -> Any:
    page = epub.EpubHtml(title=title, file_name=name, lang=book.language)
    page.content = body
    page.add_item(css)
    return page


# ---------------------------------------------------------------------- DOCX
DOCX_FONT = "宋体"  # East Asian font on every run (SimSun); Latin text keeps the theme font
DOCX_HEADING_FONT = "黑体"


def _set_east_asian(element: Any, font: str) -> None:
    from docx.oxml.ns import qn

    rpr = element.get_or_add_rPr()
    fonts = rpr.get_or_add_rFonts()
    fonts.set(qn("w:eastAsia"), font)


def _write_docx(book: BookContents, path: Path) -> None:
    """python-docx's ``add_paragraph`` scans the whole body per call (quadratic for a long book), so
    paragraphs are appended to the body element directly, the section properties moved to the end."""
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Pt

    doc = docx.Document()
    props = doc.core_properties
    props.title, props.author, props.language = book.title, book.author, book.language
    props.identifier = book.identifier
    normal = doc.styles["Normal"]
    normal.font.size = Pt(12)
    _set_east_asian(normal.element, DOCX_FONT)
    body_style = doc.styles.add_style("Body Text Chinese", WD_STYLE_TYPE.PARAGRAPH)
    body_style.base_style = normal
    body_style.paragraph_format.first_line_indent = Pt(24)  # two characters of 12 pt
    body_style.paragraph_format.space_after = Pt(0)
    heading_styles = [doc.styles[name] for name in ("Title", "Heading 1", "Heading 2")]
    for style in heading_styles:
        _set_east_asian(style.element, DOCX_HEADING_FONT)
    body = _DocxBody(doc)
    body.add(book.title, heading_styles[0], DOCX_HEADING_FONT).alignment = WD_ALIGN_PARAGRAPH.CENTER
    if book.author:
        body.add(f"作者：{book.author}", normal, DOCX_FONT).alignment = WD_ALIGN_PARAGRAPH.CENTER
    any_volume = any(show for _, show, _ in book.volumes)
    chapter_style = heading_styles[2] if any_volume else heading_styles[1]
    for vol, show, chapters in book.volumes:
        if show:
            body.add(vol, heading_styles[1], DOCX_HEADING_FONT).paragraph_format.page_break_before = True
        for i, ch in enumerate(chapters):
            h = body.add(ch.title, chapter_style, DOCX_HEADING_FONT)
            h.paragraph_format.page_break_before = not (show and i == 0)
            for text in _paragraphs(ch.text):
                body.add(text, body_style, DOCX_FONT)
    body.close()
    doc.save(str(path))


class _DocxBody:
    """Appends paragraphs (a style, one run with the East Asian font) as raw elements, O(1) each."""

    def __init__(self, doc: Any) -> None:
        from docx.oxml.ns import qn

        self.doc = doc
        self.body = doc.element.body
        self.sect = self.body.find(qn("w:sectPr"))
        if self.sect is not None:
            self.body.remove(self.sect)
        self.tags = {k: qn(f"w:{k}") for k in ("p", "pPr", "pStyle", "r", "rPr", "rFonts", "t")}
        self.val, self.east = qn("w:val"), qn("w:eastAsia")
        self.space = "{http://www.w3.org/XML/1998/namespace}space"

    def add(self, text: str, style: Any, font: str) -> Any:
        from docx.text.paragraph import Paragraph
        from lxml import etree

        tag = self.tags
        p = etree.SubElement(self.body, tag["p"])
        etree.SubElement(etree.SubElement(p, tag["pPr"]), tag["pStyle"], {self.val: style.style_id})
        r = etree.SubElement(p, tag["r"])
        etree.SubElement(etree.SubElement(r, tag["rPr"]), tag["rFonts"], {self.east: font})
        t = etree.SubElement(r, tag["t"])
        t.text = text
        if text != text.strip():
            t.set(self.space, "preserve")
        return Paragraph(p, self.doc._body)

    def close(self) -> None:
        if self.sect is not None:
            self.body.append(self.sect)
