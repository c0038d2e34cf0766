"""Books out: export a project as a whole book.

:func:`export_book` writes TXT, Markdown, EPUB 3 (ebooklib; nav + NCX by volume and
chapter) or DOCX (python-docx; heading styles, East Asian font on every run, a page break per
chapter), optionally converted with OpenCC (s2t/s2tw/s2hk/t2s) in titles, headings and text alike.
Export only reads the project and writes the target through a temp file renamed at the end, so a
failed export leaves no partial file.  The target is checked first (:func:`check_target`): an existing
file is replaced only when asked (``--overwrite``); a symbolic link, directory, device, FIFO or socket
never (links are refused, not followed); nothing is written inside the novels folder or the data,
models and checkpoints folders (``data/exports`` excepted), compared after resolving linked folders.
A killed export's temp file (``.NAME.tmp-PID-xxxxxx``, dead PID) is removed by the next export there.

This module never writes the project and does not import books (:mod:`xiaoshuo.writing.importing`).
"""

from __future__ import annotations

import contextlib
import datetime
import html
import os
import re
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xiaoshuo.files import fsync_dir
from xiaoshuo.writing.importing import DEFAULT_VOLUME, BookError, opencc_converter, pid_alive
from xiaoshuo.writing.project import Novel
from xiaoshuo.writing.textstats import count_chars

FORMATS = ("txt", "md", "epub", "docx")
CONVERSIONS = ("s2t", "s2tw", "s2hk", "t2s")
ENCODINGS = ("utf-8", "gb18030")
_LANG = {"s2t": "zh-TW", "s2tw": "zh-TW", "s2hk": "zh-HK", "t2s": "zh-CN"}
_NUMBERED_CHAPTER = re.compile(r"^(?:第\s*\S{1,12}?\s*[章回节]|序章|序言|楔子|引子|尾声|终章|番外|后记)")
_NUMBERED_VOLUME = re.compile(r"^(?:第\s*\S{1,12}?\s*[卷部集]|卷\s*\S)")


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
    conv = opencc_converter(convert).convert if convert else (lambda s: s)
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
            fix=f"xiaoshuo novel show {novel.slug} 查看章节状态；"
            f"xiaoshuo chapter final N --novel {novel.slug} 把写好的章定稿；"
            "或去掉 --only-final、放宽 --chapters",
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


# ---------------------------------------------------------------------- the target file
# A temp file beside the target: ``.<name>.tmp-<pid>-<6 hex>`` (the name shortened to fit 255 bytes).
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{6}$", re.DOTALL)
_NAME_MAX = 255
_KINDS = (
    (stat.S_ISDIR, "a directory 目录"),
    (stat.S_ISCHR, "a character device 设备"),
    (stat.S_ISBLK, "a block device 设备"),
    (stat.S_ISFIFO, "a FIFO 管道"),
    (stat.S_ISSOCK, "a socket 套接字"),
)


def protected_folders(settings: Any) -> tuple[list[tuple[Path, str]], list[Path]]:
    """(folders an export never writes into, with their setting; folders inside them that are allowed).

    The data, models and checkpoints folders hold the project; ``data/exports`` is export's own folder.
    """
    paths = getattr(settings, "paths", None)
    if paths is None:
        return [], []
    protected = [
        (Path(paths.data_dir), "paths.data_dir"),
        (Path(paths.models_dir), "paths.models_dir"),
        (Path(paths.checkpoints_dir), "paths.checkpoints_dir"),
    ]
    return protected, [Path(paths.data_dir) / "exports"]


def check_target(
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    protected: list[tuple[Path, str]] | None = None,
    allowed: list[Path] | None = None,
) -> Path:
    """The export target, checked: refused when it is not a plain file name, exists and ``overwrite`` is
    False, is a symbolic link, a directory, device, FIFO or socket (even with ``overwrite``), or lies
    inside a ``protected`` folder (compared after resolving symbolic links in the folders on the way)
    that is not inside an ``allowed`` one.  Returns the path as given."""
    target = Path(output)
    if str(output).strip() == "" or target.name in ("", ".", ".."):
        raise BookError(
            f"导出目标不是文件名 (the export target is not a file name): {str(output)!r}",
            expected="a file path such as 归途.epub",
            received=str(output) or "(empty)",
            fix="--output 给出一个文件路径，例如 --output 归途.epub",
        )
    try:
        st = target.lstat()
    except FileNotFoundError:
        st = None
    # any other OSError (name too long, permission …) reaches errors.translate(): one errno-worded line
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise BookError(
                f"导出目标是符号链接，不会写入 (the export target is a symbolic link): {target}",
                expected="a regular file or a new file name",
                received=f"a link to {os.readlink(target)}",
                fix="--output 用链接指向的真实路径（确认可以覆盖时再加 --overwrite），或换一个文件名",
            )
        kind = next((what for test, what in _KINDS if test(st.st_mode)), None)
        if kind is not None or not stat.S_ISREG(st.st_mode):
            raise BookError(
                f"导出目标不是普通文件，不会写入 (the export target is not a regular file): {target}",
                expected="a regular file or a new file name",
                received=kind or f"mode {stat.filemode(st.st_mode)}",
                fix="--output 给出一个文件路径（例如 归途.epub），不能是目录、设备或管道",
            )
        if not overwrite:
            raise BookError(
                f"导出目标已存在 (the export target exists): {target}",
                expected="a new file, or --overwrite to replace it",
                received=f"an existing file of {st.st_size} bytes",
                fix="确认可以替换时加 --overwrite，或用 --output 换一个文件名",
            )
    where = _resolved(target)
    # an allowed folder that is itself a link is no exemption (data/exports -> data/novels/x)
    exempt = [r for a in allowed or [] if (r := Path(a).resolve()) == _resolved(Path(a))]
    for folder, setting in protected or []:
        inside = Path(folder).resolve()
        if where.is_relative_to(inside) and not any(where.is_relative_to(a) for a in exempt):
            allowed_hint = f"（{allowed[0]} 除外 except）" if allowed else ""
            elsewhere = f"~/{target.name}" + (f" 或 {allowed[0] / target.name}" if allowed else "")
            raise BookError(
                f"不能导出到数据、模型或检查点目录里 (an export never writes inside {setting}): {target}",
                expected=f"a path outside {inside}{allowed_hint}",
                received=str(where),
                fix=f"--output 指向别处，例如 {elsewhere}",
            )
    return target


def _resolved(path: Path) -> Path:
    """``path`` with the symbolic links and ``..`` of its folders resolved (the last part kept as named)."""
    path = Path(path)
    return path.parent.resolve() / path.name


def _tmp_name(name: str) -> str:
    suffix = f".tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    room = _NAME_MAX - len(suffix.encode()) - 1
    raw = name.encode("utf-8")
    if len(raw) > room:
        name = raw[:room].decode("utf-8", errors="ignore")
    return f".{name}{suffix}"


def stale_temps(folder: Path) -> list[Path]:
    """Temp files of exports killed in ``folder``: our own name pattern, a plain file, a dead pid."""
    out = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    for entry in entries:
        m = _TMP_NAME.match(entry.name)
        if m and entry.is_file(follow_symlinks=False) and not pid_alive(int(m.group("pid"))):
            out.append(Path(entry.path))
    return out


def clean_stale_temps(folder: Path) -> list[Path]:
    """Remove :func:`stale_temps` (a file gone meanwhile is fine); returns them."""
    removed = stale_temps(folder)
    for path in removed:
        with contextlib.suppress(OSError):
            path.unlink()
    return removed


@contextlib.contextmanager
def _atomic_target(target: Path, *, overwrite: bool) -> Iterator[Path]:
    """A temp path beside ``target``, moved onto it (after fsync) only if the block succeeds.

    Without ``overwrite`` the move is a hard link, which fails if something appeared at ``target``
    meanwhile (a filesystem without hard links falls back to a checked rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)  # an OSError is worded by errors.translate()
    clean_stale_temps(target.parent)
    tmp = target.with_name(_tmp_name(target.name))
    try:
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        if overwrite:
            check_target(target, overwrite=True)  # still a regular file (or nothing) right before the rename
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                check_target(target)  # raises: something appeared at the target meanwhile
                raise
            except OSError:
                check_target(target)
                os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_export(
    settings: Any, output: str | os.PathLike[str], data: bytes, *, overwrite: bool = False
) -> Path:
    """Write ``data`` (a report, a chart page …) to a user-named file by export's rules: the target is
    checked like a book export's (:func:`check_target` with :func:`protected_folders`) and replaced
    atomically; without ``overwrite`` an existing file is never replaced."""
    protected, allowed = protected_folders(settings)
    target = check_target(output, overwrite=overwrite, protected=protected, allowed=allowed)
    with _atomic_target(target, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return target


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
    overwrite: bool = False,
    settings: Any = None,
) -> dict[str, Any]:
    """Write the book to ``output`` as ``fmt`` (txt|md|epub|docx); returns what was written.

    The target is checked first (:func:`check_target`): an existing file is replaced only with
    ``overwrite``; links, directories, devices and FIFOs never; nothing is written inside the novels
    folder, nor inside the data, models or checkpoints folders of ``settings`` (but ``data/exports``).
    Temp files of exports killed earlier in the target's folder are removed.
    """
    _check_choice(fmt, FORMATS, "--format")
    _check_choice(encoding, ENCODINGS, "--encoding")
    _check_choice(convert, CONVERSIONS, "--convert")
    if encoding != "utf-8" and fmt != "txt":
        raise BookError(
            "只有 TXT 可以选编码 (only TXT takes --encoding)",
            expected="--encoding with --format txt",
            received=f"{fmt} + {encoding}",
            fix="EPUB / DOCX / Markdown 总是 UTF-8；去掉 --encoding",
        )
    protected, allowed = protected_folders(settings)
    protected.append((novel.root.parent, "the novels folder 小说目录"))
    target = check_target(output, overwrite=overwrite, protected=protected, allowed=allowed)
    started = time.perf_counter()
    book = book_contents(novel, chapters=chapters, only_final=only_final, convert=convert)
    with _atomic_target(target, overwrite=overwrite) as tmp:
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
def chapter_heading(number: int, title: str) -> str:
    """How a chapter is named to a writer: ``第N章 标题``, or the title alone when it already is a
    heading (an imported ``第十一章 末班车`` or ``楔子`` keeps the author's heading; never
    ``第1章 第十一章 末班车``)."""
    return txt_heading(title, number, _NUMBERED_CHAPTER, "章")


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
    # the title page (书名 and 作者), then the table of contents, then the book
    cover = f'<section epub:type="titlepage"><h1>{html.escape(book.title)}</h1>'
    if book.author:
        cover += f'<p class="author">作者：{html.escape(book.author)}</p>'
    title_page = _epub_page(epub, "title.xhtml", book.title, cover + "</section>", book, css)
    eb.add_item(title_page)
    spine: list[Any] = [title_page, "nav"]
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
    props.created = props.modified = datetime.datetime.now(datetime.UTC).replace(microsecond=0, tzinfo=None)
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
    if book.author:  # Word's "Author" paragraph style: readers (pandoc) take it as the book's author
        author_style = doc.styles.add_style("Author", WD_STYLE_TYPE.PARAGRAPH)
        author_style.base_style = normal
        body.add(f"作者：{book.author}", author_style, DOCX_FONT).alignment = WD_ALIGN_PARAGRAPH.CENTER
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
