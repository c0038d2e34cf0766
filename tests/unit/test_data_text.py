"""Decoding, cleaning and chapter structure on real bytes and real text."""

from __future__ import annotations

import codecs
import re

import pytest

from xiaoshuo.data.cleaning import CleanOptions, CleanStats, clean_text
from xiaoshuo.data.decoding import DecodingError, decode_bytes
from xiaoshuo.data.structure import (
    chinese_to_int,
    compile_chapter_regex,
    heading_number,
    split_chapters,
)
from xiaoshuo.errors import ConfigError
from xiaoshuo.testing import TINY_CORPUS

TRAD = "第一回 入山\n少年顧長歌揹著一個破舊的包袱，站在雲霧繚繞的山門前。守門的道童問道：「你來做什麼？」"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (TINY_CORPUS.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TINY_CORPUS.encode("utf-8"), "utf-8-sig"),
        (codecs.BOM_UTF16_LE + TINY_CORPUS.encode("utf-16-le"), "utf-16"),
        (codecs.BOM_UTF16_BE + TINY_CORPUS.encode("utf-16-be"), "utf-16"),
        (TINY_CORPUS.encode("utf-16-le"), "utf-16-le"),
        (TINY_CORPUS.encode("gbk"), "gb18030"),
        (TINY_CORPUS[:120].encode("gb2312"), "gb18030"),
        ((TINY_CORPUS + "𠀀").encode("gb18030"), "gb18030"),
        (TRAD.encode("big5"), "big5hkscs"),
    ],
)
def test_decodes_real_encodings(data: bytes, encoding: str) -> None:
    decoded = decode_bytes(data)
    assert decoded.encoding == encoding
    assert decoded.text.lstrip("\ufeff") in (TINY_CORPUS, TINY_CORPUS[:120], TINY_CORPUS + "𠀀", TRAD)
    assert decoded.replacements == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (bytes(range(256)) * 40, "binary"),
        ("Привет, как дела? Это русский текст для проверки кодировки.".encode("cp1251"), "not a Chinese"),
        ("Café déjà vu, naïve façade - résumé of the années folles.".encode("latin-1"), "not a Chinese"),
    ],
)
def test_rejects_non_chinese_or_binary(data: bytes, message: str) -> None:
    with pytest.raises(DecodingError, match=message):
        decode_bytes(data, name="bad.txt")


def test_mojibake_is_an_error_but_a_few_bad_bytes_are_not() -> None:
    good = (TINY_CORPUS * 20).encode("utf-8")
    damaged = bytearray(good)
    for i in range(0, len(damaged), 7):
        damaged[i] = 0xFF
    with pytest.raises(DecodingError, match="unknown encoding"):
        decode_bytes(bytes(damaged), name="broken.txt")
    # clean at the start (where the encoding is detected), damaged later: caught by the full decode
    head = (TINY_CORPUS * 300).encode("utf-8")
    with pytest.raises(DecodingError, match="mojibake") as info:
        decode_bytes(head + bytes(damaged), name="half-broken.txt")
    assert "half-broken.txt" in str(info.value)
    slightly = good[:-2]  # drop "\n" and the last byte of "。": a cut character
    decoded = decode_bytes(slightly + b"\n" + good)
    assert decoded.encoding == "utf-8" and decoded.replacements == 1


def test_cleaning_steps() -> None:
    raw = (
        "第一章 雨夜\r\n\u3000\u3000夜色如墨。  \r\n\r\n\r\n\r\n"
        "本书首发笔趣阁 www.biquge.com 请记住本站网址\r"
        "　　“走吧。”\n" + "☆☆☆\n" * 6 + "“走吧。”\n" * 6 + "最新章节请访问 http://x.cc\n收尾。"
    )
    stats = CleanStats()
    text = clean_text(raw, CleanOptions(), stats)
    assert "\r" not in text
    assert "\u3000" not in text and "  \n" not in text
    assert "biquge" not in text and "http" not in text and "☆☆☆" not in text
    assert text.count("“走吧。”") == 7  # repeated dialogue is story, kept
    assert "\n\n\n" not in text
    assert stats.ad_lines_dropped == 2 + 6
    off = clean_text(raw, CleanOptions(strip_indent=False, drop_ads=False, collapse_blank_lines=False))
    assert "\u3000\u3000夜色如墨" in off and "biquge" in off and "\n\n\n" in off
    long_story = "他在网上搜索最新章节的时候，" * 10  # a long paragraph that mentions 最新章节 stays
    assert long_story in clean_text(long_story, CleanOptions())


def test_traditional_to_simplified() -> None:
    text = clean_text(TRAD, CleanOptions(to_simplified=True))
    assert "顾长歌" in text and "顧" not in text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("一", 1),
        ("十", 10),
        ("十二", 12),
        ("二十", 20),
        ("一百零一", 101),
        ("一百二十三", 123),
        ("两千零五", 2005),
        ("三万五千", 35000),
        ("一二〇", 120),
        ("１２", 12),
        ("123", 123),
        ("壹佰", 100),
    ],
)
def test_chinese_numerals(text: str, value: int) -> None:
    assert chinese_to_int(text) == value


def test_split_volumes_and_chapters_all_heading_styles() -> None:
    text = "\n".join(
        [
            "书名：测试",
            "作者：某人",
            "楔子",
            "楔子的正文。",
            "第一卷 风起",
            "第一章 雨夜",
            "第一章正文。",
            "第十二章：重逢",
            "正文十二。",
            "卷二 云涌",
            "第一百零一回 大战",
            "正文一百零一。",
            "第 3 节",
            "正文三。",
            "第4章归来",
            "正文四。",
            "第十章了，他想着，这不是标题。",
            "序章",
            "序章正文。",
            "尾声",
            "尾声正文。",
            "番外一 旧梦",
            "番外正文。",
            "后记",
            "后记正文。",
        ]
    )
    chapters = split_chapters(text)
    titles = [c.title for c in chapters]
    assert titles == [
        "",
        "楔子",
        "第一章 雨夜",
        "第十二章：重逢",
        "第一百零一回 大战",
        "第 3 节",
        "第4章归来",
        "序章",
        "尾声",
        "番外一 旧梦",
        "后记",
    ]
    assert chapters[0].text == "书名：测试\n作者：某人"
    assert [c.number for c in chapters[2:7]] == [1, 12, 101, 3, 4]
    assert chapters[2].volume == "第一卷 风起" and chapters[4].volume == "卷二 云涌"
    assert "第十章了，他想着" in chapters[6].text  # a sentence, not a heading
    assert heading_number("第一千零一章 夜") == 1001


def test_no_headings_is_one_document_and_custom_regex() -> None:
    assert [c.title for c in split_chapters("只是一段话。\n又一段。")] == [""]
    custom = compile_chapter_regex(r"^Part \d+$")
    chapters = split_chapters("Part 1\n一。\nPart 2\n二。\n第一章 不算", custom)
    assert [c.title for c in chapters] == ["Part 1", "Part 2"]
    with pytest.raises(ConfigError, match="chapter_regex"):
        compile_chapter_regex("第(.+章")
    assert re.compile(r"x")  # keep the import honest
