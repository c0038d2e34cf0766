"""Issue 26 items 2, 3 and 14: 定稿 (``chapter final``, ``--only-final``), the card edited after creation
(``novel set``, the author in the exports), and one identifier for a novel (a title finds its slug)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from xiaoshuo.cli import main
from xiaoshuo.writing import Novels, WritingError, actions


@pytest.fixture
def book(tmp_path: Path, clean_env):
    """A novel written here (no import): chapter 1 and 2 written, 3 planned."""
    clean_env.chdir(tmp_path)
    clean_env.setenv("XIAOSHUO_MEMORY__EMBEDDING_MODEL", "none")
    clean_env.setenv("HF_HUB_OFFLINE", "1")
    outline = tmp_path / "outline.json"
    chapters = [{"title": "雨夜"}, {"title": "渡口"}, {"title": "远行"}]
    outline.write_text(json.dumps({"volumes": [{"title": "卷一", "chapters": chapters}]}), "utf-8")
    for n, text in ((1, "夜色如墨，林远撑伞走过长街。"), (2, "天亮了，渡口的船已经走了。")):
        (tmp_path / f"ch{n}.txt").write_text(text, "utf-8")
    for args in (
        ["novel", "new", "yuye", "--title", "雨夜剑"],
        ["outline", "import", str(outline), "--novel", "yuye"],
        ["chapter", "set", "--novel", "yuye", "1", "--file", str(tmp_path / "ch1.txt")],
        ["chapter", "set", "--novel", "yuye", "2", "--file", str(tmp_path / "ch2.txt")],
    ):
        assert main(args) == 0, args
    return Novels(tmp_path / "data" / "novels").get("yuye")


def test_chapter_final_then_export_only_final(book, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.txt"
    assert main(["novel", "export", "yuye", "--only-final", "-o", str(out)]) != 0  # nothing final yet
    assert "chapter final" in capsys.readouterr().err
    assert main(["chapter", "final", "1", "--novel", "yuye"]) == 0
    assert "定稿" in capsys.readouterr().out
    assert book.plan(1).status == "final" and book.plan(2).status == "drafted"
    assert main(["novel", "export", "yuye", "--only-final", "-o", str(out)]) == 0
    text = out.read_text("utf-8")
    assert "林远撑伞" in text and "渡口的船" not in text
    assert main(["novel", "show", "yuye"]) == 0
    shown = capsys.readouterr().out
    assert "定稿" in shown and "草稿" in shown and "未写" in shown
    # a chapter without text cannot be final; --undo makes it a draft again
    assert main(["chapter", "final", "3", "--novel", "yuye"]) != 0
    assert "没有正文" in capsys.readouterr().err and book.plan(3).status == "planned"
    assert main(["chapter", "final", "1", "--undo", "--novel", "yuye"]) == 0
    assert book.plan(1).status == "drafted"
    with pytest.raises(WritingError, match="大纲里没有第 9 章"):
        actions.mark_final(book, 9)


def test_novel_set_changes_every_card_field_and_names_a_bad_one(book, capsys) -> None:
    args = ["--title", "雨夜归途", "--author", "林某", "--pov", "第三人称", "--genre", "武侠"]
    args += ["--premise", "少年下山", "--style", "冷峻", "--chapter-chars", "2500", "--variant", "繁"]
    assert main(["novel", "set", "yuye", *args, "--adapter", "mine"]) == 0
    card = book.card()
    assert (card.title, card.author, card.pov, card.genre, card.premise, card.style) == (
        "雨夜归途", "林某", "第三人称", "武侠", "少年下山", "冷峻",
    )  # fmt: skip
    assert (card.chapter_chars, card.variant, card.adapter, card.slug) == (2500, "繁", "mine", "yuye")
    assert "作者 author:  → 林某" in capsys.readouterr().out
    assert main(["novel", "set", "yuye", "--chapter-chars", "10"]) != 0
    err = capsys.readouterr().err
    assert "每章目标字数" in err and "chapter_chars" in err and book.card().chapter_chars == 2500
    assert main(["novel", "set", "yuye", "--title", " "]) != 0
    assert "书名" in capsys.readouterr().err and book.card().title == "雨夜归途"
    with pytest.raises(WritingError, match="slug"):
        actions.update_card(book, slug="other")
    assert actions.update_card(book, author="").author == ""  # an empty author removes it


def test_the_author_is_in_epub_and_docx_metadata_and_title_page(book, tmp_path: Path) -> None:
    from xiaoshuo.writing.exporting import export_book

    actions.update_card(book, author="林某")
    epub, docx = tmp_path / "b.epub", tmp_path / "b.docx"
    export_book(book, "epub", epub)
    export_book(book, "docx", docx)
    with zipfile.ZipFile(epub) as z:  # read as files, not through the library that wrote them
        opf = next(z.read(n).decode() for n in z.namelist() if n.endswith(".opf"))
        title_page = next(z.read(n).decode() for n in z.namelist() if n.endswith("title.xhtml"))
    assert "<dc:creator" in opf and "林某</dc:creator>" in opf
    assert "雨夜剑" in title_page and "作者：林某" in title_page
    with zipfile.ZipFile(docx) as z:
        core, body = z.read("docProps/core.xml").decode(), z.read("word/document.xml").decode()
    assert "<dc:creator>林某</dc:creator>" in core and "作者：林某" in body


def test_a_title_means_its_slug_everywhere_and_two_titles_are_refused(book, tmp_path: Path, capsys) -> None:
    """Issue 26 item 14: README's ``novel new yuye --title 雨夜剑`` then ``memory add --novel 雨夜剑``
    put the memory under another key; now the title resolves to the slug (in the one place novels are
    looked up), and two novels with one title are refused with their slugs."""
    from xiaoshuo.config import load
    from xiaoshuo.memory import MemoryStore

    lib = Novels(tmp_path / "data" / "novels")
    assert (
        lib.resolve("yuye") == "yuye" and lib.resolve("雨夜剑") == "yuye" and lib.get("雨夜剑").slug == "yuye"
    )
    assert lib.resolve("default") == "default"  # memory's key without a novel stays as it is
    add = ["memory", "add", "--novel", "雨夜剑", "--kind", "setting", "--name", "青云山", "--text", "仙山"]
    assert main(add) == 0
    assert main(["chapter", "final", "1", "--novel", "雨夜剑"]) == 0 and book.plan(1).status == "final"
    settings = load(None, overrides={"paths.data_dir": str(tmp_path / "data")}, env={})
    with MemoryStore(settings) as store:
        assert [e.name for e in store.list("yuye")] == ["青云山"] and store.list("雨夜剑") == []
    capsys.readouterr()
    assert main(["novel", "new", "other", "--title", "雨夜剑"]) == 0
    assert main(["memory", "list", "--novel", "雨夜剑"]) != 0
    err = capsys.readouterr().err
    assert "other" in err and "yuye" in err
    assert main(["memory", "list", "--novel", "yuye"]) == 0  # the slug always works
    capsys.readouterr()
    assert main([*add[:3], "雨夜", *add[4:]]) == 0  # a typo: kept, but said
    assert "没有叫 雨夜 的小说" in capsys.readouterr().err


def test_a_new_slug_never_takes_a_title_away_and_import_slug_takes_a_title(book, tmp_path: Path, capsys):
    """A novel whose slug is another novel's title would silently move ``--novel 雨夜剑`` from yuye to it;
    ``novel import --slug 雨夜剑 --append`` made a new novel 雨夜剑 instead of appending to yuye."""
    lib = Novels(tmp_path / "data" / "novels")
    capsys.readouterr()
    assert main(["novel", "new", "雨夜剑", "--title", "别的书"]) != 0
    assert "yuye" in capsys.readouterr().err
    assert lib.resolve("雨夜剑") == "yuye" and not (lib.root / "雨夜剑").exists()
    with pytest.raises(WritingError, match="yuye"):
        lib.create("雨夜剑", title="别的书")
    src = tmp_path / "more.txt"
    src.write_text("第一章 远山\n林远翻过了山，山那边还是雨。\n", "utf-8")
    assert main(["novel", "import", str(src), "--slug", "雨夜剑", "--append"]) == 0
    assert not (lib.root / "雨夜剑").exists() and len(lib.get("yuye").outline().chapters()) == 4
    assert main(["novel", "import", str(src), "--slug", "雨夜剑"]) != 0  # an existing novel, named by title
    assert not (lib.root / "雨夜剑").exists()


def test_the_offline_embedding_error_names_the_none_setting() -> None:
    from xiaoshuo.hf import ModelLoadError
    from xiaoshuo.memory.embeddings import load_error

    err = load_error(
        "BAAI/bge-small-zh-v1.5", ModelLoadError("离线：…", fix="联网后运行 `xiaoshuo model pull …`")
    )
    assert 'memory.embedding_model = "none"' in err.fix and "model pull" in err.fix


def test_card_fields_refuse_control_characters_and_overlong_values(tmp_path) -> None:
    import pytest

    from xiaoshuo.writing import Novels
    from xiaoshuo.writing.schema import WritingError

    novels = Novels(tmp_path / "novels")
    with pytest.raises(WritingError) as err:
        novels.create("a", title="雨夜", author="\x1b[31m林某")
    assert "author" in err.value.message and "control" in str(err.value.expected)
    novel = novels.create("a", title="雨夜", premise="第一行\n第二行")  # newlines in 简介 are fine
    from xiaoshuo.writing import actions

    with pytest.raises(WritingError):
        actions.update_card(novel, genre="长" * 101)
    with pytest.raises(WritingError):
        actions.update_card(novel, style="冷\x01峻")
    assert novel.card().genre == "" and novel.card().premise == "第一行\n第二行"
