"""Novel slugs: counted in UTF-8 bytes with room for every name built from them, valid UTF-8, nothing
invisible or bidirectional (two novels must never look the same)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xiaoshuo.cli import main
from xiaoshuo.writing.project import Novels
from xiaoshuo.writing.schema import SLUG_MAX_BYTES, WritingError, check_slug

INVISIBLE = [
    *(chr(c) for c in range(0x200B, 0x2010)),  # zero-width space / non-joiner / joiner, LRM, RLM
    *(chr(c) for c in range(0x202A, 0x202F)),  # bidi embeddings and overrides
    *(chr(c) for c in range(0x2066, 0x206A)),  # bidi isolates
    "\ufeff",  # BOM / zero-width no-break space
    "\u00ad",  # soft hyphen
    "\u2060",  # word joiner
    "\u2028",  # line separator
    "\x7f",
    "\x85",
]


@pytest.mark.parametrize("char", INVISIBLE, ids=[f"U+{ord(c):04X}" for c in INVISIBLE])
def test_invisible_and_bidi_characters_are_refused(char: str, tmp_path: Path) -> None:
    with pytest.raises(WritingError, match="invalid novel slug") as err:
        check_slug(f"雨夜{char}剑")
    assert f"U+{ord(char):04X}" in str(err.value) or repr(char)[1:-1] in str(err.value)
    with pytest.raises(WritingError):
        Novels(tmp_path / "novels").create(f"yu{char}ye", title="雨夜")
    assert not (tmp_path / "novels").exists()


def test_lookalike_forms_are_refused() -> None:
    for lookalike, same in (("cafe\u0301", "café"), ("\uf900", "\u8c48")):  # e + ◌́; 豈 compatibility form
        with pytest.raises(WritingError, match="NFC"):
            check_slug(lookalike)
        assert check_slug(same) == same


def test_slug_bytes_leave_room_for_every_derived_name(tmp_path: Path, clean_env, capsys) -> None:
    for ok in ("yuye-jian", "雨夜剑", "雨" * 64, "😀" * 50, "a" * 64):
        assert check_slug(ok) == ok
    with pytest.raises(WritingError, match="字节"):  # 248 bytes: its export temp name was 279 (OSError 36)
        check_slug("😀" * 62)
    with pytest.raises(WritingError, match="too many characters"):
        check_slug("a" * 65)
    slug = "😀" * 50  # the most bytes a slug may have
    assert len(slug.encode()) == SLUG_MAX_BYTES
    clean_env.chdir(tmp_path)
    outline = '{"volumes": [{"title": "卷一", "chapters": [{"title": "开端"}]}]}'
    (tmp_path / "o.json").write_text(outline, "utf-8")
    (tmp_path / "c.txt").write_text("第一版正文。", "utf-8")
    (tmp_path / "book.txt").write_text("第一章 开端\n正文一。\n第二章 承接\n正文二。\n", "utf-8")
    for args in (
        ["novel", "new", slug, "--title", "长标识"],
        ["outline", "import", "o.json", "--novel", slug],
        ["chapter", "set", "1", "--novel", slug, "--file", "c.txt"],
        ["novel", "export", slug, "--format", "epub", "--convert", "s2hk"],  # .<slug>-s2hk.epub.tmp-…
        ["novel", "import", "book.txt", "--slug", slug, "--replace"],  # .importing/… and .replaced/…
    ):
        assert main(args) == 0, (args, capsys.readouterr().err)
    assert (tmp_path / "data" / "exports" / f"{slug}-s2hk.epub").is_file()
    assert [p.name.startswith(slug) for p in (tmp_path / "data" / "novels" / ".replaced").iterdir()] == [True]


def test_invalid_utf8_slug_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    novels = Novels(tmp_path / "novels")
    with pytest.raises(WritingError, match="UTF-8"):
        novels.create("\udcff\udcfe雨夜", title="雨夜")  # what a GBK terminal's bytes become in argv
    assert not (tmp_path / "novels").exists()  # was: a folder holding only .lock
