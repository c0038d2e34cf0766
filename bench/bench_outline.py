"""Bench: 5-chapter outlines on the demo model, one per seed — how many succeed.

The model is the one ``xiaoshuo webui --demo`` builds (``build_tiny_model(size="small")``: a random
~19M-parameter Qwen2, 2,048-token context as the demo sets ``model.vllm_max_model_len``); the
outline settings are the defaults (``writing.outline_batch``, ``writing.outline_synopsis_chars``,
``writing.structured_retries``), as the 大纲 page runs them.  A random model under a grammar fills
every string to its maxLength, so this measures whether the forms and the token budget fit the
context: a run fails when no batch answer validates after its retries (``StructuredOutputError``).

One JSON line (also bench/results/outline.json): seeds, successes, the success rate, the failures'
first lines, wall time.  Usage:
    python bench/bench_outline.py [--seeds=10] [--chapters=5] [--backend=transformers|vllm]
The seeds run concurrently (one novel each).  ``--backend=vllm`` (the default) is the demo's; the
transformers backend works too but decodes one token at a time per request.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import report

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")


def _arg(name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in sys.argv if a.startswith(f"--{name}=")), default)


def main() -> None:
    import dataclasses

    from xiaoshuo.engine import load_engine
    from xiaoshuo.testing import build_tiny_model, tiny_engine_settings
    from xiaoshuo.writing import Novels, run_sync
    from xiaoshuo.writing.planning import PlanLimits, generate_outline
    from xiaoshuo.writing.structured import DEFAULT_SAMPLING, StructuredOutputError

    seeds = int(_arg("seeds", "10"))
    chapters = int(_arg("chapters", "5"))
    backend = _arg("backend", "vllm")
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "demo-model", size="small")
        settings = tiny_engine_settings(
            model,
            tmp,
            **{
                "model.vllm_max_model_len": 2048,  # as demo_settings
                "model.dtype": "auto",  # the demo's (tiny_engine_settings pins float32)
                "memory.embedding_model": "none",
                "engine.backend": backend,
            },
        )
        engine = load_engine(settings)
        novels = Novels.from_settings(settings)

        async def one(seed: int) -> dict:
            novel = novels.create(f"seed{seed}", title="雨夜归途", premise="少年林远雨夜归乡，旧案重开。")
            try:
                result = await generate_outline(
                    engine,
                    novel,
                    chapters=chapters,
                    batch=settings.writing.outline_batch,
                    limits=PlanLimits.from_settings(settings),
                    sampling=dataclasses.replace(DEFAULT_SAMPLING, seed=seed),
                )
            except StructuredOutputError as exc:
                print(f"seed {seed}: failed", file=sys.stderr)
                return {"seed": seed, "chapter": exc.chapter, "error": exc.expected}
            good = [c.number for c in novel.outline().chapters()] == list(range(1, chapters + 1))
            print(
                f"seed {seed}: {'ok' if good else 'wrong numbering'} ({result.batches} batches)",
                file=sys.stderr,
            )
            return {
                "seed": seed,
                "ok": good,
                "batches": result.batches,
                "form": getattr(result, "limits", None),
            }

        async def every() -> list[dict]:  # the seeds run at once (vLLM batches their requests)
            return await asyncio.gather(*(one(s) for s in range(seeds)))

        began = time.perf_counter()
        try:
            runs = run_sync(every())
        finally:
            engine.close()
    ok = sum(bool(r.get("ok")) for r in runs)
    report(
        "outline",
        {
            "model": "demo (tiny small, random weights, context 2048)",
            "backend": backend,
            "chapters": chapters,
            "seeds": seeds,
            "succeeded": ok,
            "success_rate": round(ok / seeds, 3),
            "batches_of_successes": sum(r.get("batches", 0) for r in runs if r.get("ok")),
            "failures": [r for r in runs if "error" in r],
            "form": next(
                (r["form"] for r in runs if r.get("form")), None
            ),  # a smaller form, if one was needed
            "wall_s": round(time.perf_counter() - began, 1),
        },
    )


if __name__ == "__main__":
    main()
