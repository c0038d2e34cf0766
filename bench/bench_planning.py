"""Bench: planning on structured output, on the ~50M random test model with vLLM (bf16, CPU).

1. Structured-output overhead: the same requests (an outline batch form of 4 chapters) decoded
   under the JSON schema (llguidance) vs unconstrained with max_tokens = the constrained answer's
   length; 8 concurrent requests and 1 stream.  Reported as time per token, constrained /
   unconstrained.  Goal ≤ 1.3×.
2. Outline of 300 chapters (batches of 10) with ``generate_outline``: wall time, batches, tokens/s
   and peak memory (this process, and the vLLM engine-core process tree sampled every 0.2 s).
   The random model fills every string to its maxLength, so the forms are smaller than the
   defaults (synopsis ≤ 40 字) to fit its 4,096-token context; reported in the JSON.

3. Memory extraction over N accepted chapters (default 50; ``--extract-chapters=N``) with the real
   ``Extractor``: submitted as one batch (``batch=N``, vLLM runs the forms concurrently) vs one chapter
   at a time (``batch=1``); ``review/`` (extracted.json and the queue) is deleted before each run so both
   do the same work.  Goal ≥ 3× faster batched.  ``--quick``: 16 chapters.  Beyond 16 chapters also
   the CLI's default ``--batch 16`` (batches overlap: a sliding window of 16 chapters).  Each run
   reports its forms' answer tokens: a batch lasts as long as its longest form, so sum / max of the
   batched run's answer tokens (``speedup_ceiling``) bounds the speedup whatever the engine does.

One JSON line; also bench/results/planning.json.
Usage: python bench/bench_planning.py [--quick] [--only=overhead|outline|extraction] [--extract-chapters=N]
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import report

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
QUICK = "--quick" in sys.argv
ONLY = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")), "")  # a part
EXTRACT_N = int(
    next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--extract-chapters=")), 16 if QUICK else 50)
)


async def _run(engine, requests) -> tuple[list[int], float]:
    async def one(req) -> int:
        count = 0
        async for delta in engine.stream(req):
            count = max(count, delta.completion_tokens)
        return count

    start = time.perf_counter()
    counts = await asyncio.gather(*(one(r) for r in requests))
    return list(counts), time.perf_counter() - start


def bench_overhead(engine, concurrency: int, rounds: int) -> dict:
    from xiaoshuo.engine import GenerationRequest, SamplingSettings
    from xiaoshuo.writing.planning import PlanLimits, batch_form
    from xiaoshuo.writing.structured import with_schema_hint

    schema = batch_form(4, PlanLimits(synopsis_chars=40)).model_json_schema()
    messages = with_schema_hint([{"role": "user", "content": "为小说《雨夜剑》写四章大纲。"}], schema)
    constrained_t = free_t = 0.0
    constrained_n = free_n = 0
    for r in range(rounds):
        seeds = range(r * concurrency, (r + 1) * concurrency)
        sampling = [
            SamplingSettings(temperature=1.0, max_tokens=2000, seed=s, repetition_penalty=1.0) for s in seeds
        ]
        reqs = [GenerationRequest(messages=messages, sampling=s, json_schema=schema) for s in sampling]
        counts, seconds = asyncio.run(_run(engine, reqs))
        constrained_t += seconds
        constrained_n += sum(counts)
        free = [
            GenerationRequest(
                messages=messages,
                sampling=SamplingSettings(
                    temperature=1.0, max_tokens=n, seed=s.seed, repetition_penalty=1.0, ignore_eos=True
                ),
            )
            for s, n in zip(sampling, counts, strict=True)
        ]
        free_counts, seconds = asyncio.run(_run(engine, free))
        free_t += seconds
        free_n += sum(free_counts)
    per_c = constrained_t / constrained_n
    per_f = free_t / free_n
    return {
        "concurrency": concurrency,
        "requests": concurrency * rounds,
        "constrained_tokens": constrained_n,
        "unconstrained_tokens": free_n,
        "constrained_tok_s": round(constrained_n / constrained_t, 1),
        "unconstrained_tok_s": round(free_n / free_t, 1),
        "overhead": round(per_c / per_f, 3),
    }


class _PeakRss:
    """Peak resident memory of this process's children (the vLLM engine core), sampled."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.peak_children = 0
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        while not self._stop.wait(0.2):
            try:
                kids = sum(c.memory_info().rss for c in self.me.children(recursive=True))
                total = kids + self.me.memory_info().rss
            except psutil.Error:
                continue
            self.peak_children = max(self.peak_children, kids)
            self.peak_total = max(self.peak_total, total)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def bench_outline(engine, settings, chapters: int) -> dict:
    from xiaoshuo.writing import Novels, run_sync
    from xiaoshuo.writing.planning import PlanLimits, generate_outline

    novel = Novels.from_settings(settings).create(
        f"plan{chapters}", title="雨夜剑", premise="少年林远雨夜得剑，十年后重回青云山。"
    )
    limits = PlanLimits(synopsis_chars=40, names=3, name_chars=6)
    with _PeakRss() as peak:
        result = run_sync(generate_outline(engine, novel, chapters=chapters, batch=10, limits=limits))
    outline = novel.outline()
    numbers = [c.number for c in outline.chapters()]
    return {
        "chapters": chapters,
        "batch": 10,
        "limits": {"synopsis_chars": 40, "title_chars": limits.title_chars, "names": 3, "name_chars": 6},
        "ok_1_to_n_once": numbers == list(range(1, chapters + 1)),
        "batches": result.batches,
        "wall_s": round(result.seconds, 1),
        "s_per_batch": round(result.seconds / max(1, result.batches), 2),
        "peak_rss_main_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_engine_mib": round(peak.peak_children / 2**20, 1),
        "peak_rss_total_mib": round(peak.peak_total / 2**20, 1),
        "outline_json_kib": round((novel.root / "outline.json").stat().st_size / 1024, 1),
    }


_SCENES = [
    "雨夜，林远背着古剑走进青云山下的客栈。掌柜赵铁山抬头看他一眼：“客官，住店还是打尖？”",
    "林远说：“住店。我要等一个人。”窗外雷声滚滚，檐下的灯笼被风吹得左右摇晃。",
    "子时刚过，黑衣人破窗而入，林远拔剑相迎，剑光映着雨水，两人在楼梯口交手三十余招。",
    "天亮时，苏晴撑伞而来，说师父在洛阳等他，又把半部剑谱交到他手里，叮嘱他莫要声张。",
    "两人出城向东，行至白马渡，老船夫王伯认出了林远腰间的古剑，脸色一变，默默撑船离岸。",
]


def _chapter_text(n: int) -> str:
    """~300 字 per chapter: a rotating set of scenes, numbered so no two chapters are equal."""
    scenes = [_SCENES[(n + i) % len(_SCENES)] for i in range(4)]
    return f"第{n}章\n" + "\n".join(scenes) + f"\n（第{n}日）"


def bench_extraction(engine, settings, chapters: int) -> dict:
    import shutil

    from xiaoshuo.memory import MemoryStore, make_entry
    from xiaoshuo.writing import Novels, run_sync
    from xiaoshuo.writing.extraction import DEFAULT_BATCH, Extractor

    novel = Novels.from_settings(settings).create(f"extract{chapters}", title="雨夜剑")
    numbers = list(range(1, chapters + 1))
    for n in numbers:
        novel.set_text(n, _chapter_text(n))
    answers: list[int] = []  # each form's answer tokens in the current run
    stream = engine.stream

    async def counted(request):
        count = 0
        async for delta in stream(request):
            count = max(count, delta.completion_tokens)
            yield delta
        answers.append(count)

    engine.stream = counted
    runs: dict[str, dict] = {}
    plan = [("batched", chapters), ("one_at_a_time", 1)]
    if chapters > DEFAULT_BATCH:  # the CLI's default --batch: batches overlap (a sliding window)
        plan.insert(1, ("default_batch", DEFAULT_BATCH))
    try:
        with MemoryStore(settings) as store:
            store.add(make_entry(novel=novel.slug, kind="character", name="林远", text="少年剑客"))
            run_sync(Extractor(settings, engine, novel, store, batch=1).extract([1]))  # warm-up
            for name, batch in plan:
                shutil.rmtree(novel.root / "review", ignore_errors=True)  # extracted.json + the queue
                answers.clear()
                start = time.perf_counter()
                results = run_sync(Extractor(settings, engine, novel, store, batch=batch).extract(numbers))
                seconds = time.perf_counter() - start
                runs[name] = {
                    "batch": batch,
                    "wall_s": round(seconds, 1),
                    "chapters_per_s": round(chapters / seconds, 3),
                    "pieces": sum(r.pieces for r in results),
                    "errors": sum(bool(r.error) for r in results),
                    "proposals": sum(len(r.proposals) for r in results),
                    "dropped": sum(len(r.dropped) for r in results),
                    "requests": len(answers),
                    "answer_tokens_sum": sum(answers),
                    "answer_tokens_max": max(answers, default=0),
                }
                print({"extraction": runs}, file=sys.stderr)
    finally:
        engine.stream = stream
    batched = runs["batched"]
    out = {
        "chapters": chapters,
        "chars_per_chapter": round(sum(len(_chapter_text(n)) for n in numbers) / chapters),
        **runs,
        "speedup": round(runs["one_at_a_time"]["wall_s"] / batched["wall_s"], 2),
        # one batch lasts as long as its longest form decodes (alone, at single-stream speed, at the end):
        # at best, sum / max of the answers' tokens faster than one at a time
        "speedup_ceiling": round(batched["answer_tokens_sum"] / max(1, batched["answer_tokens_max"]), 2),
    }
    if "default_batch" in runs:
        out["speedup_default_batch"] = round(
            runs["one_at_a_time"]["wall_s"] / runs["default_batch"]["wall_s"], 2
        )
    return out


def main() -> None:
    from xiaoshuo.engine import load_engine
    from xiaoshuo.testing import build_tiny_model, tiny_engine_settings

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "bench", size="bench", dtype="bfloat16")
        # memory without an embedding model (offline; extraction's memory: triggers + BM25)
        settings = tiny_engine_settings(
            model, tmp, **{"model.dtype": "bfloat16", "memory.embedding_model": "none"}
        )
        out: dict = {"bench": "planning", "model": "~50M random Qwen2 (bf16), vLLM CPU", "quick": QUICK}
        with load_engine(settings, backend="vllm") as engine:
            if ONLY in ("", "overhead"):
                bench_overhead(engine, 2, 1)  # warm-up: grammar compiler, first batches
                out["structured_overhead_batched"] = bench_overhead(engine, 8, 1 if QUICK else 2)
                print(out, file=sys.stderr)
                out["structured_overhead_single"] = bench_overhead(engine, 1, 2 if QUICK else 4)
                print(out, file=sys.stderr)
            if ONLY in ("", "outline"):
                out["outline"] = bench_outline(engine, settings, 60 if QUICK else 300)
            if ONLY in ("", "extraction"):
                out["extraction"] = bench_extraction(engine, settings, EXTRACT_N)
        goals = {}
        if "structured_overhead_single" in out:
            goals["structured_overhead_le_1.3_batched"] = (
                out["structured_overhead_batched"]["overhead"] <= 1.3
            )
            goals["structured_overhead_le_1.3_single"] = out["structured_overhead_single"]["overhead"] <= 1.3
        if "outline" in out:
            goals["outline_exact"] = out["outline"]["ok_1_to_n_once"]
        if "extraction" in out:
            goals["extraction_batched_ge_3x"] = out["extraction"]["speedup"] >= 3.0
            goals["extraction_no_errors"] = not any(
                out["extraction"][k]["errors"]
                for k in ("batched", "default_batch", "one_at_a_time")
                if k in out["extraction"]
            )
        out["goals"] = goals
        report("planning" + (f"-{ONLY}" if ONLY else ""), out)


if __name__ == "__main__":
    main()
