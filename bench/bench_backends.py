"""Bench: is vLLM faster than the transformers fallback on this machine?

8 prompts x 128 new tokens, greedy, on the ~50M-parameter tiny Qwen2
(xiaoshuo.testing size "bench"), both backends in one run.  Prints one JSON
line and writes bench/results/backends.json.  Not a test: timing only.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from _common import report

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

N_PROMPTS = 8
NEW_TOKENS = 128
PROMPTS = [f"第{i + 1}章 夜色如墨，细雨敲打着青石板路。林远撑着一把旧油纸伞，" for i in range(N_PROMPTS)]


def bench_vllm(model_dir: Path, dtype: str) -> float:
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(model_dir), dtype=dtype, max_model_len=1024, enforce_eager=True, seed=0)
    params = SamplingParams(max_tokens=NEW_TOKENS, temperature=0.0, ignore_eos=True)
    llm.generate(PROMPTS[:1], params, use_tqdm=False)  # warm-up
    start = time.perf_counter()
    outs = llm.generate(PROMPTS, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    llm.llm_engine.engine_core.shutdown()
    return tokens / seconds


def bench_transformers(model_dir: Path, dtype: str) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    kwargs = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
    with torch.inference_mode():
        model.generate(**tok(PROMPTS[:1], return_tensors="pt"), max_new_tokens=4)  # warm-up
        start = time.perf_counter()
        out = model.generate(**enc, **kwargs)
        seconds = time.perf_counter() - start
    tokens = (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]
    return tokens / seconds


def main() -> None:
    from xiaoshuo.testing import build_tiny_model, count_parameters

    dtype = sys.argv[1] if len(sys.argv) > 1 else "bfloat16"
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "bench", size="bench")
        params = count_parameters(model_dir)
        hf = bench_transformers(model_dir, dtype)
        vl = bench_vllm(model_dir, dtype)
    result = {
        "bench": "backends",
        "model_params": params,
        "dtype": dtype,
        "prompts": N_PROMPTS,
        "new_tokens": NEW_TOKENS,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "vllm_tok_s": round(vl, 1),
        "transformers_tok_s": round(hf, 1),
        "vllm_over_transformers": round(vl / hf, 2),
    }
    report("backends", result)


if __name__ == "__main__":
    main()
