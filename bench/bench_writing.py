"""Bench: the writing core — compose latency at book scale, segment-loop throughput, length scores.

1. ``write chapter --dry-run`` (compose only, engine loaded): p50/p95 of ``Writer.dry_run`` for a
   novel of 10 chapters / 100 memory entries and of 300 chapters (all with summaries) / 10,000
   entries (dense off: ``memory.embedding_model = "none"``).  Goals: large p50 ≤ 50 ms and ≤ 3× small.
2. Chapter generation through the segment loop vs one plain ``Engine.stream`` of the same number of
   tokens on the ~50M test model (vLLM, tokens/s ratio).  Goal ≥ 0.9.
3. Length score (LongBench-Write) over 30 chapters with targets spread over 300–5,000 字.
   Goals: mean ≥ 95, minimum ≥ 80.

One JSON line; also bench/results/writing.json.  Usage: python bench/bench_writing.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import report

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
QUICK = "--quick" in sys.argv


def make_novel(settings, slug: str, chapters: int):
    from xiaoshuo.writing import Novels

    novel = Novels.from_settings(settings).create(
        slug, title=f"长篇{chapters}", premise="少年林远雨夜得剑" * 5
    )
    vols = []
    per = 30
    for v in range(0, chapters, per):
        vols.append(
            {
                "title": f"第{v // per + 1}卷",
                "chapters": [
                    {
                        "title": f"第{i + 1}章",
                        "synopsis": f"林远在第{i + 1}章与众人周旋，" * 3,
                        "characters": ["林远"],
                        "target_chars": 2000,
                    }
                    for i in range(v, min(v + per, chapters))
                ],
            }
        )
    novel.import_outline({"volumes": vols})
    outline = novel.outline()
    for c in outline.chapters():
        c.summary = f"第{c.number}章：林远历经波折，" * 4
    novel.save_outline(outline)
    novel.set_text(chapters // 2, "夜色如墨，细雨敲打着青石板路。" * 150)
    return novel


def bench_compose(engine, settings, store, chapters: int, entries: int, runs: int) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_memory import generate

    from xiaoshuo.writing import Writer

    slug = f"c{chapters}"
    novel = make_novel(settings, slug, chapters)
    batch, _labels = generate(entries, seed=chapters)
    for e in batch:
        e.novel = slug
    for i in range(0, len(batch), 2000):
        store.add(batch[i : i + 2000])
    writer = Writer(settings, engine, novel, store=store)
    target = chapters // 2
    writer.dry_run(target)  # builds the retriever's index once, as a running app has
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        writer.dry_run(target)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
    }


async def plain_stream(engine, messages, max_tokens: int) -> tuple[int, float]:
    from xiaoshuo.engine import GenerationRequest, SamplingSettings

    req = GenerationRequest(messages=messages, sampling=SamplingSettings(max_tokens=max_tokens, seed=1))
    t = time.perf_counter()
    tokens = 0
    async for d in engine.stream(req):
        tokens = max(tokens, d.completion_tokens)
    return tokens, time.perf_counter() - t


def bench_throughput(engine, settings) -> dict:
    from xiaoshuo.writing import Novels, Writer, run_sync

    settings = settings.model_copy(
        update={"writing": settings.writing.model_copy(update={"segment_chars": 400 if QUICK else 800})}
    )
    novel = Novels.from_settings(settings).create("tp", title="吞吐")
    novel.import_outline({"volumes": [{"title": "卷", "chapters": [{"title": "一", "synopsis": "林远"}]}]})
    writer = Writer(settings, engine, novel, memory_on=False)
    target = 1500 if QUICK else 4000
    run_sync(writer.write_chapter(1, target_chars=300, seed=0, accept=False))  # warm-up
    t = time.perf_counter()
    result = run_sync(writer.write_chapter(1, target_chars=target, seed=2, accept=False))
    loop_s = time.perf_counter() - t
    cand = result.candidates[0]
    loop_tokens = sum(s["tokens"] for s in cand.segments)
    comp = writer.compose(1, "", "请写第1章。", max_tokens=loop_tokens)
    plain_tokens, plain_s = asyncio.run(plain_stream(engine, comp.messages, loop_tokens))
    loop_rate, plain_rate = loop_tokens / loop_s, plain_tokens / plain_s
    return {
        "target_chars": target,
        "segments": len(cand.segments),
        "loop_tokens": loop_tokens,
        "loop_tok_s": round(loop_rate, 1),
        "plain_tokens": plain_tokens,
        "plain_tok_s": round(plain_rate, 1),
        "ratio": round(loop_rate / plain_rate, 3),
    }


def bench_lengths(engine, settings) -> dict:
    from xiaoshuo.writing import Novels, Writer, run_sync

    n = 10 if QUICK else 30
    targets = [300 + round(i * (5000 - 300) / (n - 1)) for i in range(n)]
    novel = Novels.from_settings(settings).create("len", title="长度")
    chapters = [
        {"title": f"第{i + 1}章", "synopsis": "林远", "target_chars": t} for i, t in enumerate(targets)
    ]
    novel.import_outline({"volumes": [{"title": "卷", "chapters": chapters}]})
    writer = Writer(settings, engine, novel, memory_on=False)
    scores, boundary = [], 0
    for i in range(n):
        cand = run_sync(writer.write_chapter(i + 1, seed=i)).candidates[0]
        scores.append(cand.score)
        boundary += cand.on_boundary
    return {
        "chapters": n,
        "mean_score": round(statistics.mean(scores), 2),
        "min_score": round(min(scores), 2),
        "on_sentence_boundary": boundary,
    }


def main() -> None:
    from xiaoshuo.engine import load_engine
    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.testing import build_tiny_model, tiny_engine_settings

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "bench", size="bench", dtype="bfloat16")
        settings = tiny_engine_settings(
            model,
            tmp,
            **{"model.dtype": "bfloat16", "memory.embedding_model": "none", "memory.max_memory_items": 20000},
        )
        out: dict = {"bench": "writing", "model": "~50M random Qwen2 (bf16)", "quick": QUICK}
        with load_engine(settings, backend="vllm") as engine:
            with MemoryStore(settings) as store:
                runs = 20 if QUICK else 50
                small = bench_compose(engine, settings, store, 10, 100, runs)
                large = bench_compose(engine, settings, store, 300, 10_000, runs)
            out["compose_small"] = small
            out["compose_large"] = large
            out["compose_large_over_small"] = round(large["p50_ms"] / small["p50_ms"], 2)
            print(out, file=sys.stderr)
            out["throughput"] = bench_throughput(engine, settings)
            print(out["throughput"], file=sys.stderr)
            out["length"] = bench_lengths(engine, settings)
        out["goals"] = {
            "compose_large_p50_le_50ms": large["p50_ms"] <= 50,
            "compose_ratio_le_3": out["compose_large_over_small"] <= 3,
            "throughput_ratio_ge_0.9": out["throughput"]["ratio"] >= 0.9,
            "length_mean_ge_95": out["length"]["mean_score"] >= 95,
            "length_min_ge_80": out["length"]["min_score"] >= 80,
        }
        report("writing", out)


if __name__ == "__main__":
    main()
