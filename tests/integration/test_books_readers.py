"""Whole books checked by independent readers (Debian's epubcheck and pandoc; `make book-tools` installs
them) and a 20 MB / 1,000-chapter import in bounded memory."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xiaoshuo.writing import Novels
from xiaoshuo.writing.exporting import export_book
from xiaoshuo.writing.importing import import_book

EPUBCHECK_JAR = Path("/usr/share/java/epubcheck.jar")
#: A short-lived JVM: the quick JIT tier and the serial collector halve epubcheck's CPU time.
JAVA = ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
_VOCAB = "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏云腾致雨露结为霜金生丽水玉出昆冈剑号巨阙珠称夜光"


def generated_novel(chapters: int, chars: int, seed: int = 1, per_volume: int = 100) -> str:
    """《长篇》 in volumes of ``per_volume`` chapters; every sentence unique (no line looks like a banner)."""
    rnd = random.Random(seed)
    out = ["《长篇》", "作者：测试", ""]
    for c in range(1, chapters + 1):
        if c % per_volume == 1:
            out.append(f"第{c // per_volume + 1}卷 卷名{c // per_volume + 1}")
        out.append(f"第{c}章 标题{c}")
        n = 0
        while n < chars:
            p = f"第{c}章第{n}字，" + "".join(rnd.choice(_VOCAB) for _ in range(rnd.randint(40, 120))) + "。"
            out.append("\u3000\u3000" + p)
            n += len(p)
    return "\n".join(out) + "\n"


def _need(tool: str) -> None:
    if tool == "epubcheck" and not (EPUBCHECK_JAR.is_file() and shutil.which("java")):
        pytest.skip("epubcheck is not installed (make book-tools installs Debian's epubcheck as root)")
    if tool == "pandoc" and not shutil.which("pandoc"):
        pytest.skip("pandoc is not installed (make book-tools installs Debian's pandoc as root)")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[。！？])|\n", text) if s.strip()]


@pytest.mark.slow
def test_epub_passes_epubcheck_and_pandoc_reads_epub_and_docx(tmp_path: Path):
    _need("epubcheck")
    _need("pandoc")
    src = tmp_path / "book.txt"
    book = generated_novel(12, 400, per_volume=5)
    book = book.replace("作者：测试\n\n", "作者：测试\n\n序章\n很久以前。\n", 1)
    src.write_text(book, "utf-8")
    lib = Novels(tmp_path / "novels")
    import_book(lib, src, "book")
    novel = lib.get("book")
    outline = novel.outline()
    assert [v.title for v in outline.volumes] == ["正文", "第1卷 卷名1", "第2卷 卷名2", "第3卷 卷名3"]
    chapters = [(c.title, novel.text(c.number)) for c in outline.chapters()]
    for convert in (None, "s2hk"):
        epub = tmp_path / f"book-{convert}.epub"
        export_book(novel, "epub", epub, convert=convert)
        out = subprocess.run(
            [*JAVA, "-jar", str(EPUBCHECK_JAR), str(epub)], capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "0 fatals / 0 errors / 0 warnings" in out.stdout, out.stdout
    docx = tmp_path / "book.docx"
    export_book(novel, "docx", docx)
    for path, fmt in ((tmp_path / "book-None.epub", "epub"), (docx, "docx")):
        meta = subprocess.run(  # the author in the book's metadata, as a reader sees it (issue 26 item 3)
            ["pandoc", "-s", "-f", fmt, "-t", "markdown", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        assert re.search(r"^author:.*测试", meta.split("\n---", 1)[0], re.M), (fmt, meta[:300])
        plain = subprocess.run(
            ["pandoc", "-f", fmt, "-t", "plain", "--wrap=none", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        at = 0
        for title, text in chapters:  # every title in order, with its first and last sentence after it
            at = plain.index(title, at)
            first, last = _sentences(text)[0], _sentences(text)[-1]
            assert plain.index(first, at) <= plain.index(last, at), (fmt, title)
            at += len(title)


IMPORT_IN_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    from xiaoshuo.writing import Novels
    from xiaoshuo.writing.importing import import_book
    lib = Novels(Path(sys.argv[2]))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stages = []
    t = time.perf_counter()
    report = import_book(lib, sys.argv[1], "big", progress=lambda s, d, n: stages.append(s))
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_kb": peak - before, "seconds": seconds, "stages": sorted(set(stages)),
                      "chapters": len(report["chapters"]), "volumes": len(report["volumes"])}))
    """
)


@pytest.mark.slow
def test_20mb_novel_imports_in_bounded_memory(tmp_path: Path):
    src = tmp_path / "big.txt"
    src.write_bytes(generated_novel(1000, 7000).encode("utf-8"))
    size = src.stat().st_size
    assert size > 20_000_000
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_IN_CHILD, str(src), str(tmp_path / "novels")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (result["chapters"], result["volumes"]) == (1000, 10)
    assert result["stages"] == ["写入 write", "读取 read"]  # the progress bar's stages
    # Bounded: the file, its text and its chapters a few times over — never per-chapter copies of the book.
    assert result["growth_kb"] * 1024 < 6 * size, result
    novel = Novels(tmp_path / "novels").get("big")
    outline = novel.outline()
    assert len(outline.chapters()) == 1000 and {c.status for c in outline.chapters()} == {"final"}
    assert outline.chapters()[499].title == "第500章 标题500"
    assert novel.text(500).startswith("第500章第0字，") and novel.text(500).endswith("。")
    assert len(novel.versions(1000)) == 1
