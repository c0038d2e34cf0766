"""Bench: `xiaoshuo eval` — book health over a generated 3 M 字 book, and the memory probe over 60 chapters.

A probe novel of 1,000 chapters × 3,000 字 (16 characters, 300 dated events, a real Chroma store with dense
retrieval off) is generated in a temp folder; its chapter files are written directly (as an outside editor
would), so building the book does not dominate.  Timed: ``book_health`` on the whole book (goal ≤ 10 s), and
``memory_probe`` composing 60 chapters of the issue-shaped probe (60 chapters, 10 characters, 36 events,
6,000-token budget; tokens counted one per 字).  One JSON line; usage: python bench/bench_eval.py [CHAPTERS]
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

from _common import report


def main() -> None:
    from xiaoshuo import config
    from xiaoshuo.eval.book import book_health
    from xiaoshuo.eval.flavour import load_flavour
    from xiaoshuo.eval.memory import memory_probe
    from xiaoshuo.eval.probe import build_probe, chapter_text
    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.writing import Novels

    chapters = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory(prefix="xiaoshuo-bench-eval-") as tmp:
        settings = config.load(
            env={},
            cwd=tmp,
            overrides={"paths.data_dir": str(Path(tmp) / "data"), "memory.embedding_model": "none"},
        )
        lib = Novels.from_settings(settings)
        t0 = time.perf_counter()
        with MemoryStore(settings) as store:
            probe = build_probe(lib, store, "big", chapters=chapters, characters=16, events=300, written=0,
                                chapter_chars=3000)  # fmt: skip
            entries = store.list("big")
            novel = lib.get("big")
            rng = random.Random(1)
            folder = novel.chapter_file(1).parent
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(1, chapters + 1):
                novel.chapter_file(n).write_text(chapter_text(rng, probe, n, 3000), "utf-8")
            build_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            health = book_health(novel, entries=entries, flavour=load_flavour())
            health_s = time.perf_counter() - t1

            build_probe(lib, store, "mem", chapters=60, characters=10, events=36)
            t2 = time.perf_counter()
            mem = memory_probe(lib.get("mem"), store, settings, len, chapters=list(range(1, 61)), budget=6000)
            memory_s = time.perf_counter() - t2
    report(
        "bench_eval",
        {
            "bench": "eval",
            "book_chapters": chapters,
            "book_chars": health["book"]["chars"],
            "build_s": round(build_s, 2),
            "book_health_s": round(health_s, 2),
            "book_health_goal_s": 10,
            "findings": health["book"]["findings"],
            "ai_flavour_per_1000": health["book"]["ai_flavour"],
            "memory_chapters": len(mem["chapters"]),
            "memory_probe_s": round(memory_s, 2),
            "memory_probe_goal_s": 30,
            "cast_card_recall": mem["cast_card_recall"],
            "past_event_recall": mem["past_event_recall"],
            "future_leaks": mem["future_leaks"],
            "latest_state_correctness": mem["latest_state_correctness"],
        },
    )


if __name__ == "__main__":
    main()
