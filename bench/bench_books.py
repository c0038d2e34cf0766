"""Bench: books in and out (xiaoshuo.writing.importing, xiaoshuo.writing.exporting).

1. Import MB/s of a generated 20 MB / 1,000-chapter TXT vs ``prepare``'s read + decode + clean +
   structure stage on the same file (read_source, clean_text, split_chapters).  Goal ≥ 0.8×.
2. Export of a 1,000-chapter, ~3-million-字 book to txt, md, epub and docx, each in its own process:
   wall time and peak RSS.  Goals: EPUB ≤ 10 s; RSS ≤ 3× the book's text size + 200 MB.

One JSON line; also bench/results/books.json.  Usage: python bench/bench_books.py [--quick]
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report

QUICK = "--quick" in sys.argv
_VOCAB = "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏云腾致雨露结为霜金生丽水玉出昆冈剑号巨阙珠称夜光"


def novel_text(chapters: int, chars: int, seed: int = 1) -> str:
    rnd = random.Random(seed)
    out = ["《长篇》", "作者：测试", ""]
    for c in range(1, chapters + 1):
        if c % 100 == 1:
            out.append(f"第{c // 100 + 1}卷 卷名{c // 100 + 1}")
        out.append(f"第{c}章 标题{c}")
        n = 0
        while n < chars:
            p = f"第{c}章第{n}字，" + "".join(rnd.choice(_VOCAB) for _ in range(rnd.randint(40, 120))) + "。"
            out.append("\u3000\u3000" + p)
            n += len(p)
    return "\n".join(out) + "\n"


def prepare_stage(path: Path) -> float:
    from xiaoshuo.data.cleaning import CleanOptions, CleanStats, clean_text
    from xiaoshuo.data.readers import read_source
    from xiaoshuo.data.structure import split_chapters

    t = time.perf_counter()
    result = read_source(path, path.name)
    for doc in result.documents:
        split_chapters(clean_text(doc.text, CleanOptions(), CleanStats()))
    return time.perf_counter() - t


def import_seconds(path: Path, root: Path, slug: str) -> float:
    from xiaoshuo.writing import Novels
    from xiaoshuo.writing.importing import import_book

    t = time.perf_counter()
    import_book(Novels(root), path, slug)
    return time.perf_counter() - t


EXPORT_CHILD = """
import json, resource, sys, time
from pathlib import Path
from xiaoshuo.writing import Novels
from xiaoshuo.writing.exporting import export_book
novel = Novels(Path(sys.argv[1])).get(sys.argv[2])
t = time.perf_counter()
rep = export_book(novel, sys.argv[3], sys.argv[4])
print(json.dumps({"seconds": round(time.perf_counter() - t, 2), "bytes": rep["bytes"],
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def main() -> None:
    chapters = 100 if QUICK else 1000
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "big.txt"
        src.write_bytes(novel_text(chapters, 7000).encode("utf-8"))  # ~20 MB
        mb = src.stat().st_size / 1e6
        prep = min(prepare_stage(src) for _ in range(2))
        imp = min(import_seconds(src, tmp / f"novels{i}", "big") for i in range(2))
        book = tmp / "book.txt"
        book.write_bytes(novel_text(chapters, 3000, seed=2).encode("utf-8"))  # 1,000 × 3,000 字
        import_seconds(book, tmp / "books", "book")
        from xiaoshuo.writing import Novels

        total_chars = Novels(tmp / "books").get("book").overview()["total_chars"]
        text_mb = book.stat().st_size / 1e6
        exports = {}
        for fmt in ("txt", "md", "epub", "docx"):
            out = subprocess.run(
                [sys.executable, "-c", EXPORT_CHILD, str(tmp / "books"), "book", fmt, str(tmp / f"b.{fmt}")],
                capture_output=True,
                text=True,
                check=True,
            )
            exports[fmt] = json.loads(out.stdout.strip().splitlines()[-1])
        base = subprocess.run(
            [sys.executable, "-c", "import resource, xiaoshuo.writing.importing, xiaoshuo.writing.exporting;"
             "import docx, ebooklib.epub, opencc;"
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        base_mb = float(base.stdout.strip())
    limit = 3 * text_mb + 200
    report(
        "books",
        {
            "bench": "books",
            "quick": QUICK,
            "import_file_mb": round(mb, 1),
            "import_chapters": chapters,
            "prepare_stage_mb_s": round(mb / prep, 2),
            "import_mb_s": round(mb / imp, 2),
            "import_vs_prepare": round(prep / imp, 2),
            "import_goal": ">= 0.8",
            "export_book_chars": total_chars,
            "export_book_text_mb": round(text_mb, 1),
            "export": exports,
            "process_baseline_rss_mb": round(base_mb, 1),
            "export_rss_limit_mb": round(limit, 1),
            "export_rss_ok": all(e["peak_rss_mb"] <= limit for e in exports.values()),
            "epub_goal_s": 10,
            "epub_ok": exports["epub"]["seconds"] <= 10,
        },
    )


if __name__ == "__main__":
    main()
