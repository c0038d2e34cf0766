"""Books in and out (writing.importing / exporting): import via prepare's readers, export TXT/MD/EPUB/DOCX.

Independent readers (epubcheck, pandoc) and the 20 MB import are in tests/integration/test_books_readers.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from xiaoshuo.data import write_sample_corpus
from xiaoshuo.data.sample import XIANXIA_SIMPLIFIED
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.writing import Novels, exporting, importing
from xiaoshuo.writing.exporting import export_book, parse_chapter_range
from xiaoshuo.writing.importing import BookError, import_book

HEADINGS = """《雨夜剑》
作者：林某

江湖传言，青云剑出，雨落无声。
没有人见过那柄剑。
序章 雨落
那一年的雨下了整整一个月。
第一卷 青云
第一章 夜雨
林远撑伞站在城门外。
“你终于来了。”师姐说。
第１２章 全角数字
他拔出了剑，剑光如水。
第一百零三章 归来
三年之后，他回到了青云山。
第二卷 风起
第二十章
一个没有章名的章节。
第二十一章 空章
番外 师姐的故事
苏晚晴第一次握剑时只有七岁。
"""


@pytest.fixture
def lib(tmp_path: Path) -> Novels:
    return Novels(tmp_path / "novels")


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def lines(text: str) -> list[str]:
    return [s for line in text.split("\n") if (s := line.strip(" \u3000\t"))]


def contents(novel) -> list[tuple[str, str, str]]:
    outline = novel.outline()
    return [(outline.volume_of(c.number).title, c.title, novel.text(c.number)) for c in outline.chapters()]


def test_headings_volumes_preface_title_block_and_empty_chapters(lib: Novels, tmp_path: Path):
    src = tmp_path / "雨夜剑.txt"
    src.write_text(HEADINGS, "utf-8")
    report = import_book(lib, src, "yuye")
    novel = lib.get("yuye")
    card = novel.card()
    assert (card.title, card.author, card.variant) == ("雨夜剑", "林某", "简")
    assert report["metadata_from_text"] == ["《雨夜剑》", "作者：林某"]
    got = [(v, t) for v, t, _ in contents(novel)]
    assert got == [
        ("正文", "序言"),
        ("正文", "序章 雨落"),
        ("第一卷 青云", "第一章 夜雨"),
        ("第一卷 青云", "第１２章 全角数字"),
        ("第一卷 青云", "第一百零三章 归来"),
        ("第二卷 风起", "第二十章"),
        ("第二卷 风起", "番外 师姐的故事"),
    ]
    assert novel.text(1) == "江湖传言，青云剑出，雨落无声。\n没有人见过那柄剑。"
    assert novel.text(6) == "一个没有章名的章节。"
    assert {c.status for c in novel.outline().chapters()} == {"final"}
    for n in range(1, 8):
        (version,) = novel.versions(n)
        assert (version.source, version.kind) == ("imported", "import")
        assert novel.current_version(n) == version.id
    assert report["encoding"] == "utf-8"
    assert [c["chars"] for c in report["chapters"]][-1] == len("苏晚晴第一次握剑时只有七岁。")
    empty = {"what": "empty chapters", "count": 1, "why": "a chapter heading with no text"}
    assert empty in report["dropped"]
    assert [v["title"] for v in report["volumes"]] == ["正文", "第一卷 青云", "第二卷 风起"]


def test_every_sample_corpus_file_imports(lib: Novels, tmp_path: Path):
    files = {p.name: p for p in write_sample_corpus(tmp_path / "raw")}
    wuxia = import_book(lib, files["sample-武侠-青云剑.txt"], "wuxia")
    assert [c["title"] for c in wuxia["chapters"]] == ["楔子", "第一章 雨夜", "第二章 旧事", "第三章 重逢"]
    assert wuxia["dropped"][0]["what"] == "ad/banner lines" and wuxia["dropped"][0]["count"] == 2
    assert "笔趣阁" not in "".join(lib.get("wuxia").text(n) for n in range(1, 5))
    urban = import_book(lib, files["sample-都市-归途.txt"], "urban")
    assert urban["encoding"] == "gb18030"
    assert [v["title"] for v in urban["volumes"]] == ["第一卷 归途", "第二卷 晴天"]
    xian = import_book(lib, files["sample-仙侠-問道.txt"], "xian")
    assert xian["encoding"].startswith("big5") and xian["variant"] == "繁"
    assert xian["chapters"][1]["title"] == "第一回 入山"
    js = import_book(lib, files["sample-科幻言情.json"], "json")
    assert [v["title"] for v in js["volumes"]] == ["星海尽头", "雨巷"] and js["author"] == "示例作者"
    jl = import_book(lib, files["sample-历史.jsonl"], "jsonl")
    assert [c["volume"] for c in jl["chapters"]] == ["长安旧梦", "边关月"]


def test_existing_slug_is_refused_unless_append_or_replace(lib: Novels, tmp_path: Path):
    src = tmp_path / "a.txt"
    src.write_text(HEADINGS, "utf-8")
    import_book(lib, src, "yuye")
    before = tree_digest(lib.root / "yuye")
    with pytest.raises(BookError, match="--append") as exc:
        import_book(lib, src, "yuye")
    assert "--replace" in str(exc.value)
    assert tree_digest(lib.root / "yuye") == before
    novel = lib.get("yuye")
    novel.set_text(3, "我改过的第一章。")  # a hand edit: must survive --append, be kept aside by --replace
    more = tmp_path / "b.txt"
    more.write_text("第八章 续篇\n林远又出发了。\n第九章 再续\n雨停了。\n", "utf-8")
    rep = import_book(lib, more, "yuye", mode="append")
    assert [c["number"] for c in rep["chapters"]] == [8, 9]
    assert [c.title for c in novel.outline().chapters()][-2:] == ["第八章 续篇", "第九章 再续"]
    assert novel.outline().volumes[-1].chapters[-1].status == "final"
    assert novel.text(3) == "我改过的第一章。" and novel.text(9) == "雨停了。"
    rep = import_book(lib, more, "yuye", mode="replace")
    assert [c.title for c in novel.outline().chapters()] == ["第八章 续篇", "第九章 再续"]
    assert not novel.chapter_file(3).exists()
    backup = Path(rep["replaced_backup"])
    assert (backup / "chapters" / "0003.txt").read_text("utf-8") == "我改过的第一章。"
    assert [c.slug for c in lib.list()] == ["yuye"]  # the backup and the staging folder are not novels
    assert not (lib.root / ".importing").exists()


def test_append_that_fails_leaves_the_novel_as_it_was(lib: Novels, tmp_path: Path, monkeypatch):
    src = tmp_path / "a.txt"
    src.write_text(HEADINGS, "utf-8")
    import_book(lib, src, "yuye")
    before = tree_digest(lib.root / "yuye")
    novel_cls = importing.Novel
    calls = []

    def failing(self, number, *a, **k):
        calls.append(number)
        if len(calls) == 2:
            raise OSError("disk full (injected)")
        return original(self, number, *a, **k)

    original = novel_cls._write_imported
    monkeypatch.setattr(novel_cls, "_write_imported", failing)
    more = tmp_path / "b.txt"
    more.write_text("第八章 续篇\n林远又出发了。\n第九章 再续\n雨停了。\n", "utf-8")
    with pytest.raises(OSError, match="injected"):
        import_book(lib, more, "yuye", mode="append")
    monkeypatch.undo()
    assert tree_digest(lib.root / "yuye") == before


def test_txt_round_trip_gb18030_crlf(lib: Novels, tmp_path: Path):
    src = tmp_path / "a.txt"
    src.write_text(HEADINGS, "utf-8")
    import_book(lib, src, "yuye")
    out = tmp_path / "out" / "雨夜剑.txt"
    rep = export_book(lib.get("yuye"), "txt", out, encoding="gb18030", crlf=True)
    raw = out.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("gb18030")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    assert text.startswith("《雨夜剑》\r\n作者：林某\r\n")
    assert "\r\n\u3000\u3000林远撑伞站在城门外。\r\n" in text
    assert "\r\n第一卷 青云\r\n" in text and "\r\n正文\r\n" not in text  # the default volume has no heading
    assert rep["encoding"] == "gb18030" and rep["chapters"] == 7
    again = import_book(lib, out, "again")
    assert again["encoding"] == "gb18030"
    assert (again["title"], again["author"]) == ("雨夜剑", "林某")
    assert contents(lib.get("again")) == contents(lib.get("yuye"))


def test_epub_round_trip_and_structure(lib: Novels, tmp_path: Path):
    src = tmp_path / "a.txt"
    src.write_text(HEADINGS, "utf-8")
    import_book(lib, src, "yuye")
    out = tmp_path / "雨夜剑.epub"
    rep = export_book(lib.get("yuye"), "epub", out)
    assert rep["language"] == "zh-CN" and rep["volumes"] == ["第一卷 青云", "第二卷 风起"]
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        assert names[0] == "mimetype" and z.read("mimetype") == b"application/epub+zip"
        opf = z.read("EPUB/content.opf").decode()
        nav = z.read("EPUB/nav.xhtml").decode()
        ncx = z.read("EPUB/toc.ncx").decode()
        css = z.read("EPUB/style/book.css").decode()
    assert "<dc:language>zh-CN</dc:language>" in opf and "<dc:creator" in opf and "<dc:date>" in opf
    assert "urn:uuid:" in opf and "dcterms:modified" in opf
    assert "text-indent: 2em" in css and "line-height" in css
    for doc in (nav, ncx):  # volume → chapter, in order
        titles = ("序言", "第一卷 青云", "第一章 夜雨", "第二卷 风起", "番外 师姐的故事")
        order = [doc.index(t) for t in titles]
        assert order == sorted(order)
    assert nav.count("<ol>") >= 3  # the two volumes nest their chapters
    again = import_book(lib, out, "again")
    assert again["title"] == "雨夜剑" and again["author"] == "林某" and again["encoding"] == "utf-8 (epub)"
    original = [(t, lines(x)) for _, t, x in contents(lib.get("yuye"))]
    assert [(t, lines(x)) for _, t, x in contents(lib.get("again"))] == original


def test_big5_traditional_exported_with_t2s(lib: Novels, tmp_path: Path):
    import opencc

    trad = opencc.OpenCC("s2t").convert(XIANXIA_SIMPLIFIED)
    src = tmp_path / "問道.txt"
    src.write_bytes(trad.encode("big5hkscs"))
    rep = import_book(lib, src, "wendao")
    assert rep["encoding"].startswith("big5") and rep["variant"] == "繁"
    assert lib.get("wendao").outline().chapters()[2].title == "第二回 試煉"
    for fmt in ("txt", "md"):
        out = tmp_path / f"wendao.{fmt}"
        export_book(lib.get("wendao"), fmt, out, convert="t2s", overwrite=True)
        text = out.read_text("utf-8")
        t2s = opencc.OpenCC("t2s").convert
        for line in lines(trad):
            assert t2s(line) in text, line
        same = [line for line in lines(XIANXIA_SIMPLIFIED) if line in text]  # OpenCC's 背→揹 does not return
        assert len(same) >= len(lines(XIANXIA_SIMPLIFIED)) - 1
        assert "試煉" not in text and "第二回 试炼" in text and "顾长歌" in text
    out = tmp_path / "wendao.epub"
    assert export_book(lib.get("wendao"), "epub", out, overwrite=True, convert="t2s")["language"] == "zh-CN"
    assert export_book(lib.get("wendao"), "epub", out, overwrite=True, convert="s2hk")["language"] == "zh-HK"
    assert (
        export_book(lib.get("wendao"), "epub", out, overwrite=True)["language"] == "zh-TW"
    )  # a 繁 novel unconverted


def test_docx_headings_east_asian_fonts_and_page_breaks(lib: Novels, tmp_path: Path):
    import docx
    from docx.oxml.ns import qn

    src = tmp_path / "a.txt"
    src.write_text(HEADINGS, "utf-8")
    import_book(lib, src, "yuye")
    out = tmp_path / "雨夜剑.docx"
    export_book(lib.get("yuye"), "docx", out, convert="s2tw")
    d = docx.Document(str(out))
    assert d.core_properties.title == "雨夜劍" and d.core_properties.language == "zh-TW"
    heads = [(p.style.name, p.text) for p in d.paragraphs if p.style.name.startswith(("Heading", "Title"))]
    assert heads == [
        ("Title", "雨夜劍"),
        ("Heading 2", "序言"),
        ("Heading 2", "序章 雨落"),
        ("Heading 1", "第一卷 青雲"),
        ("Heading 2", "第一章 夜雨"),
        ("Heading 2", "第１２章 全角數字"),
        ("Heading 2", "第一百零三章 歸來"),
        ("Heading 1", "第二卷 風起"),
        ("Heading 2", "第二十章"),
        ("Heading 2", "番外 師姐的故事"),
    ]
    runs = [r for p in d.paragraphs for r in p.runs]
    assert runs and all(r._r.rPr.rFonts.get(qn("w:eastAsia")) for r in runs)
    breaks = [p.text for p in d.paragraphs if p.paragraph_format.page_break_before]
    assert breaks == [
        "序言",
        "序章 雨落",
        "第一卷 青雲",  # the volume's first chapter follows its heading on the same page
        "第１２章 全角數字",
        "第一百零三章 歸來",
        "第二卷 風起",
        "番外 師姐的故事",
    ]
    assert "林遠撐傘站在城門外。" in [p.text for p in d.paragraphs]
    body = next(p for p in d.paragraphs if p.text == "林遠撐傘站在城門外。")
    assert body.style.paragraph_format.first_line_indent.pt == 24


def test_markdown_levels(lib: Novels, tmp_path: Path):
    src = tmp_path / "a.txt"
    src.write_text(HEADINGS + "# 不是标题\n", "utf-8")
    import_book(lib, src, "yuye")
    out = tmp_path / "b.md"
    export_book(lib.get("yuye"), "md", out)
    text = out.read_text("utf-8")
    assert text.startswith("# 雨夜剑\n\n作者：林某\n\n### 序言\n\n")
    assert "\n## 第一卷 青云\n\n### 第一章 夜雨\n\n林远撑伞站在城门外。\n\n“你终于来了。”师姐说。\n\n" in text
    assert "\n\\# 不是标题\n" in text


def test_selection_only_final_and_ranges(lib: Novels, tmp_path: Path):
    src = tmp_path / "a.txt"
    src.write_text(HEADINGS, "utf-8")
    import_book(lib, src, "yuye")
    novel = lib.get("yuye")
    novel.update_plan(4, status="drafted")
    novel.ensure_chapter(8, title="第八章 未写")
    out = tmp_path / "x.txt"
    rep = export_book(novel, "txt", out, chapters="2-5,7-", only_final=True)
    assert rep["chapters"] == 4 and (rep["first"], rep["last"]) == (2, 7)  # 2, 3, 5, 7
    text = out.read_text("utf-8")
    skipped = {(s["number"], s["why"]) for s in rep["skipped"]}
    assert skipped == {(4, "status drafted"), (8, "status planned")}
    assert {(s["number"], s["why"]) for s in export_book(novel, "txt", out, overwrite=True)["skipped"]} == {
        (8, "not written yet")
    }
    assert "第一章 夜雨" in text and "第１２章" not in text and "第二十章" not in text
    assert parse_chapter_range("7")(7) and not parse_chapter_range("7")(8)
    for bad in ("a-b", "5-3x", "-", "1,,2"):
        with pytest.raises(BookError, match="range"):
            parse_chapter_range(bad)
    with pytest.raises(BookError, match="nothing to export"):
        export_book(novel, "txt", out, chapters="100-200", overwrite=True)
    with pytest.raises(BookError, match="--format"):
        export_book(novel, "pdf", out)
    with pytest.raises(BookError, match="--convert"):
        export_book(novel, "txt", out, convert="s2j", overwrite=True)


def test_export_never_changes_the_project_and_a_failed_export_leaves_no_file(
    lib: Novels, tmp_path: Path, monkeypatch
):
    src = tmp_path / "a.txt"
    src.write_text(HEADINGS, "utf-8")
    import_book(lib, src, "yuye")
    novel = lib.get("yuye")
    novel.chapter_file(2).write_text("在别的编辑器里改过。", "utf-8")  # an outside edit, not yet a version
    before = tree_digest(lib.root)
    out = tmp_path / "out"
    for fmt in ("txt", "md", "epub", "docx"):
        export_book(novel, fmt, out / f"b.{fmt}", convert="s2t")
    assert tree_digest(lib.root) == before
    assert "在別的編輯器裡改過。" in (out / "b.txt").read_text("utf-8") or "在別的編輯器裏改過。" in (
        out / "b.txt"
    ).read_text("utf-8")

    old = (out / "b.docx").read_bytes()

    def broken(book, path):
        path.write_bytes(b"PK\x03\x04 half a file")
        raise OSError("disk full (injected)")

    monkeypatch.setattr(exporting, "_write_docx", broken)
    with pytest.raises(OSError, match="injected"):
        export_book(novel, "docx", out / "b.docx", overwrite=True)
    with pytest.raises(OSError, match="injected"):
        export_book(novel, "docx", out / "new.docx")
    assert (out / "b.docx").read_bytes() == old
    assert sorted(p.name for p in out.iterdir()) == ["b.docx", "b.epub", "b.md", "b.txt"]


def test_malformed_epub_is_a_clear_error(lib: Novels, tmp_path: Path):
    src = tmp_path / "a.txt"
    src.write_text(HEADINGS, "utf-8")
    import_book(lib, src, "yuye")
    good = tmp_path / "good.epub"
    export_book(lib.get("yuye"), "epub", good)
    truncated = tmp_path / "truncated.epub"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.epub"
    garbage.write_bytes(os.urandom(4096))
    no_opf = tmp_path / "no-opf.epub"
    with zipfile.ZipFile(no_opf, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("chapter.xhtml", "<html><body><p>正文</p></body></html>")
    for bad in (truncated, garbage, no_opf):
        with pytest.raises(XiaoshuoError) as exc:
            import_book(lib, bad, "bad")
        assert "EPUB" in str(exc.value) and "解决 fix" in str(exc.value)
        assert not (lib.root / "bad").exists()
    assert not (lib.root / ".importing").exists()
    binary = tmp_path / "cover.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(512))
    with pytest.raises(XiaoshuoError, match="binary"):
        import_book(lib, binary, "bad")
    with pytest.raises(XiaoshuoError, match="file not found"):
        import_book(lib, tmp_path / "missing.txt", "bad")


def test_cli_import_and_export(tmp_path: Path, monkeypatch):
    from typer.testing import CliRunner

    from xiaoshuo.cli import app

    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("XIAOSHUO_")]:
        monkeypatch.delenv(key)
    src = tmp_path / "a.txt"
    src.write_text(HEADINGS, "utf-8")
    runner = CliRunner()
    res = runner.invoke(app, ["novel", "import", str(src), "--slug", "yuye", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout[res.stdout.index("{") :])
    assert report["slug"] == "yuye" and len(report["chapters"]) == 7
    res = runner.invoke(app, ["novel", "import", str(src), "--slug", "yuye"])
    assert res.exit_code != 0 and isinstance(res.exception, BookError) and "--append" in str(res.exception)
    res = runner.invoke(app, ["novel", "export", "yuye", "--format", "epub", "--convert", "s2hk", "--json"])
    assert res.exit_code == 0, res.output
    exported = json.loads(res.stdout[res.stdout.index("{") :])
    assert Path(exported["path"]) == Path("data/exports/yuye-s2hk.epub")
    assert (tmp_path / exported["path"]).is_file() and exported["language"] == "zh-HK"
    res = runner.invoke(app, ["novel", "import", str(src), "--slug", "x", "--append", "--replace"])
    assert res.exit_code != 0


@pytest.mark.parametrize("fmt", ["docx", "epub"])
def test_model_control_characters_do_not_break_xml_exports(lib: Novels, tmp_path: Path, fmt: str):
    """A random (or a bad) model can emit C0 controls; XML formats drop them instead of failing."""
    novel = lib.create("ctl", title="控制符")
    novel.set_text(1, "林远\x01推门\x1b而入。\n雨声\x0c未歇。")
    out = tmp_path / f"ctl.{fmt}"
    export_book(novel, fmt, out)
    with zipfile.ZipFile(out) as z:
        xml = "".join(z.read(n).decode("utf-8") for n in z.namelist() if n.endswith((".xml", ".xhtml")))
    assert "林远推门而入。" in xml and "雨声未歇。" in xml
    assert not any(c in xml for c in "\x01\x1b\x0c")
    assert novel.text(1) == "林远\x01推门\x1b而入。\n雨声\x0c未歇。"  # the project is untouched


def test_import_keeps_the_authors_headings_median_target_and_says_when_numbers_move(
    lib: Novels, tmp_path: Path
):
    """Issue 26 item 9: ``第1章 第一章 雨夜归人`` (a doubled heading), ``每章目标 100 字`` for a book of
    ~130-字 chapters, and the sample's 第十一章 silently becoming chapter 1."""
    from xiaoshuo.data.structure import split_chapters
    from xiaoshuo.writing.exporting import chapter_heading

    files = {p.name: p for p in write_sample_corpus(tmp_path / "raw")}
    urban = import_book(lib, files["sample-都市-归途.txt"], "urban")
    novel = lib.get("urban")
    titles = [c.title for c in novel.outline().chapters()]
    assert titles == ["第十一章 末班车", "第十二章 老街", "第二十一章 早晨"]  # the author's numbering
    assert [chapter_heading(c.number, c.title) for c in novel.outline().chapters()] == titles  # not doubled
    assert chapter_heading(4, "雨夜") == "第4章 雨夜" and chapter_heading(1, "楔子") == "楔子"
    moved = urban["renumbered"]
    assert moved["count"] == 3 and moved["first"] == {"number": 1, "heading": 11, "title": "第十一章 末班车"}
    assert "第 11 章" in moved["note"] and "第 1 章" in moved["note"]
    lengths = sorted(c["chars"] for c in urban["chapters"])
    assert novel.card().chapter_chars == urban["chapter_chars"] == round(lengths[1], -1)  # the median
    assert abs(novel.card().chapter_chars - lengths[1]) <= 5 and novel.card().chapter_chars != 100
    wuxia = import_book(lib, files["sample-武侠-青云剑.txt"], "wuxia")  # 楔子, 第一章 … → chapters 1, 2 …
    assert wuxia["renumbered"]["first"]["heading"] == 1 and wuxia["renumbered"]["count"] == 3
    src = tmp_path / "one.txt"
    text = "第一章 雨夜归人\n" + "夜色如墨。" * 60 + "\n第二章 渡口\n" + "天亮了。" * 50 + "\n"
    src.write_text(text, "utf-8")
    report = import_book(lib, src, "one")
    assert report["renumbered"] is None  # numbers agree: nothing to say
    assert [c.title for c in split_chapters("第一章 雨夜归人\n正文")] == ["第一章 雨夜归人"]
    assert chapter_heading(1, "第一章 雨夜归人") == "第一章 雨夜归人"
