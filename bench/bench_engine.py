"""Bench: vLLM vs transformers through our Engine, and the cost of the engine-thread bridge.

On the ~50M-parameter test model (bf16): tokens/s at 1, 8 and 32 concurrent
requests with mixed output lengths (16-256 tokens, ignore EOS via min length), at
n=3 candidates, time to first token; then the same 8-request load through
``Engine.stream`` vs calling ``AsyncLLM`` directly on the caller's loop.  One JSON
line; also bench/results/engine.json.  Usage: python bench/bench_engine.py [--quick]
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

LENGTHS = [128, 16, 256, 64, 32, 192, 96, 224]  # mixed output lengths (16-256), cycled; c1 gets 128


def _requests(count: int, n: int = 1, scale: float = 1.0):
    from xiaoshuo.engine import GenerationRequest, SamplingSettings

    reqs = []
    for i in range(count):
        length = max(8, int(LENGTHS[i % len(LENGTHS)] * scale))
        sampling = SamplingSettings(temperature=0.8, top_p=0.95, max_tokens=length, seed=i, n=n)
        reqs.append(
            GenerationRequest(prompt=f"第{i + 1}章 夜色如墨，细雨敲打着青石板路。林远", sampling=sampling)
        )
    return reqs


async def _run(engine, reqs) -> dict:
    ttft: list[float] = []
    tokens = 0

    async def one(req) -> int:
        start = time.perf_counter()
        first = None
        counts: dict[int, int] = {}
        async for d in engine.stream(req):
            if first is None and d.completion_tokens:
                first = time.perf_counter() - start
            counts[d.index] = d.completion_tokens
        ttft.append(first or 0.0)
        return sum(counts.values())

    start = time.perf_counter()
    tokens = sum(await asyncio.gather(*(one(r) for r in reqs)))
    seconds = time.perf_counter() - start
    return {
        "tok_s": round(tokens / seconds, 1),
        "tokens": tokens,
        "ttft_p50_s": round(statistics.median(ttft), 3),
    }


def _load(settings, backend: str):
    from xiaoshuo.engine import load_engine

    return load_engine(settings, backend=backend)


async def _direct_vllm(model_dir: str, reqs) -> float:
    """The same requests straight into AsyncLLM on this loop (no engine thread)."""
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.async_llm import AsyncLLM

    llm = AsyncLLM.from_engine_args(
        AsyncEngineArgs(
            model=model_dir,
            dtype="bfloat16",
            max_model_len=2048,
            enforce_eager=True,
            kv_cache_memory_bytes=1 << 30,
            disable_log_stats=True,
            seed=0,
        )
    )
    try:

        async def one(req) -> int:
            s = req.sampling
            params = SamplingParams(
                temperature=s.temperature,
                top_p=s.top_p,
                max_tokens=s.max_tokens,
                seed=s.seed,
                repetition_penalty=s.repetition_penalty,
                top_k=s.top_k,
                output_kind=RequestOutputKind.DELTA,
            )
            ids = llm.get_tokenizer()(req.prompt, add_special_tokens=False)["input_ids"]
            n = 0
            async for out in llm.generate({"prompt_token_ids": ids}, params, req.request_id + "-d"):
                n += sum(len(c.token_ids) for c in out.outputs)
            return n

        await asyncio.gather(*(one(r) for r in reqs[:2]))  # warm-up
        start = time.perf_counter()
        tokens = sum(await asyncio.gather(*(one(r) for r in reqs)))
        return tokens / (time.perf_counter() - start)
    finally:
        llm.shutdown()


def main() -> None:
    from xiaoshuo.testing import build_tiny_model, tiny_engine_settings

    quick = "--quick" in sys.argv
    scale = 0.25 if quick else 1.0
    concurrency = [1, 8] if quick else [1, 8, 32]
    result: dict = {"bench": "engine", "threads": os.environ.get("OMP_NUM_THREADS"), "quick": quick}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "bench", size="bench")
        settings = tiny_engine_settings(
            model_dir, tmp, **{"model.dtype": "bfloat16", "model.vllm_max_model_len": 2048}
        )
        for backend in ("vllm", "transformers"):
            with _load(settings, backend) as engine:
                asyncio.run(_run(engine, _requests(2, scale=0.1)))  # warm-up
                for c in concurrency:
                    result[f"{backend}_c{c}"] = asyncio.run(_run(engine, _requests(c, scale=scale)))
                result[f"{backend}_n3_c8"] = asyncio.run(_run(engine, _requests(8, n=3, scale=scale * 0.5)))
                if backend == "vllm":
                    bridge = _requests(8, scale=scale)
                    result["bridge_engine_tok_s"] = asyncio.run(_run(engine, bridge))["tok_s"]
        result["bridge_direct_tok_s"] = round(
            asyncio.run(_direct_vllm(str(model_dir), _requests(8, scale=scale))), 1
        )
    top = concurrency[-1]
    result[f"vllm_over_transformers_c{top}"] = round(
        result[f"vllm_c{top}"]["tok_s"] / result[f"transformers_c{top}"]["tok_s"], 2
    )
    result["vllm_over_transformers_c1"] = round(
        result["vllm_c1"]["tok_s"] / result["transformers_c1"]["tok_s"], 2
    )
    result["bridge_cost_pct"] = round(
        100 * (1 - result["bridge_engine_tok_s"] / result["bridge_direct_tok_s"]), 1
    )
    report("engine", result)


if __name__ == "__main__":
    main()
