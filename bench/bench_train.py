"""Bench: training throughput of batching strategies, and peak RSS of LoRA vs QLoRA.

On the ~50M-parameter test model with LoRA (r=16, all linear), over samples with a
realistic length spread (log-normal, 24-512 tokens of Chinese text): real
(non-pad) tokens/s and the non-pad token fraction of
  * naive: padded batches in random order,
  * grouped: padded batches of similar length (what xiaoshuo uses on CPU),
  * packing: samples concatenated into one row with position ids restarting
    (DataCollatorWithFlattening, padding-free; fast only with FlashAttention),
then peak RSS of a few LoRA vs QLoRA steps (separate processes).  One JSON line;
also bench/results/train.json.  Usage: python bench/bench_train.py [--steps N]
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report

BATCH = 8
SAMPLES = 256


def _samples(tokenizer, n: int, seed: int = 0) -> list[list[int]]:
    from xiaoshuo.testing import TINY_CORPUS

    rng = random.Random(seed)
    text_ids = tokenizer(TINY_CORPUS * 20, add_special_tokens=False)["input_ids"]
    out = []
    for _ in range(n):
        length = int(min(512, max(24, rng.lognormvariate(4.8, 0.6))))
        start = rng.randrange(0, len(text_ids) - length)
        out.append(text_ids[start : start + length])
    return out


def _batches(samples, strategy: str, seed: int = 0):
    import torch

    rng = random.Random(seed)
    order = list(range(len(samples)))
    rng.shuffle(order)
    if strategy == "grouped":  # like transformers' LengthGroupedSampler: sort inside megabatches
        mega = BATCH * 16
        order = [
            i
            for k in range(0, len(order), mega)
            for i in sorted(order[k : k + mega], key=lambda j: -len(samples[j]))
        ]
    for k in range(0, len(order) - BATCH + 1, BATCH):
        rows = [samples[i] for i in order[k : k + BATCH]]
        if strategy == "packing":
            ids = [t for r in rows for t in r]
            pos = [p for r in rows for p in range(len(r))]
            labels = [t if p else -100 for r in rows for p, t in enumerate(r)]
            yield (
                {
                    "input_ids": torch.tensor([ids]),
                    "position_ids": torch.tensor([pos]),
                    "labels": torch.tensor([labels]),
                },
                len(ids),
                len(ids),
            )
            continue
        width = max(len(r) for r in rows)
        ids = torch.zeros((BATCH, width), dtype=torch.long)
        mask = torch.zeros((BATCH, width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        yield ({"input_ids": ids, "attention_mask": mask, "labels": labels}, int(mask.sum()), BATCH * width)


def _model(model_dir: str, qlora: bool):
    from xiaoshuo.testing import tiny_engine_settings
    from xiaoshuo.training.model import load_model

    with tempfile.TemporaryDirectory() as tmp:
        settings = tiny_engine_settings(
            model_dir,
            tmp,
            **{
                "model.load_in_4bit": qlora,
                "model.lora_r": 16,
                "model.lora_alpha": 32,
                "training.gradient_checkpointing": False,
            },
        )
        return load_model(settings, use_cuda=False, flash=False)


def measure(model_dir: str, strategy: str, steps: int, qlora: bool) -> dict:
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = _model(model_dir, qlora)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batches = list(_batches(_samples(tok, SAMPLES), strategy))
    real = slots = 0
    batch, _, _ = batches[0]
    model(**batch).loss.backward()  # warm-up
    opt.zero_grad()
    start = time.perf_counter()
    for batch, n_real, n_slots in batches[1 : steps + 1]:
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
        real += n_real
        slots += n_slots
    seconds = time.perf_counter() - start
    return {
        "tok_s": round(real / seconds, 1),
        "non_pad_fraction": round(real / slots, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1")))
        return
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 8
    from xiaoshuo.testing import build_tiny_model, count_parameters

    result: dict = {"bench": "train", "batch": BATCH, "steps": steps}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_tiny_model(Path(tmp) / "bench", size="bench"))
        result["model_params"] = count_parameters(model_dir)

        def run(strategy: str, qlora: bool) -> dict:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--measure",
                    model_dir,
                    strategy,
                    str(steps),
                    "1" if qlora else "0",
                ],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                return {"error": out.stderr.strip().splitlines()[-1][:300]}
            return json.loads(out.stdout.strip().splitlines()[-1])

        for strategy in ("naive", "grouped", "packing"):
            result[strategy] = run(strategy, False)
        result["qlora_grouped"] = run("grouped", True)
    if "tok_s" in result["grouped"] and "tok_s" in result["naive"]:
        result["grouped_over_naive"] = round(result["grouped"]["tok_s"] / result["naive"]["tok_s"], 2)
    if "tok_s" in result["packing"]:
        result["packing_over_naive"] = round(result["packing"]["tok_s"] / result["naive"]["tok_s"], 2)
    if "peak_rss_mb" in result["qlora_grouped"]:
        result["rss_qlora_over_lora"] = round(
            result["qlora_grouped"]["peak_rss_mb"] / result["grouped"]["peak_rss_mb"], 2
        )
    report("train", result)


if __name__ == "__main__":
    main()
