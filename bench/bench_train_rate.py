"""Bench: the training rate behind ``xiaoshuo.training.estimate``'s CPU figure (``CPU_GFLOPS_PER_CORE``).

A random Qwen2-shaped model (~77M parameters, tied embeddings) with LoRA r=16 on every linear layer and
gradient checkpointing — what ``xiaoshuo train`` does on a CPU — trains a few steps on 512-token samples;
the rate in tokens/s times ``FLOPS_PER_PARAM_TOKEN`` × parameters gives the effective GFLOP/s per core,
to compare with the constant.  Random weights train exactly as fast as real ones.  One JSON line; also
bench/results/train_rate.json.  Usage: python bench/bench_train_rate.py [--threads N] [--steps N]
"""

from __future__ import annotations

import argparse
import time

from _common import report


def main() -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from xiaoshuo.training.estimate import CPU_GFLOPS_PER_CORE, FLOPS_PER_PARAM_TOKEN

    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seq", type=int, default=512)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    config = Qwen2Config(
        hidden_size=1024,
        num_hidden_layers=4,
        intermediate_size=2816,
        num_attention_heads=16,
        num_key_value_heads=2,
        vocab_size=32000,
        tie_word_embeddings=True,
        max_position_embeddings=2048,
    )
    model = Qwen2ForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (1, args.seq))

    def step() -> None:
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step()  # warm-up
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - started
    rate = args.steps * args.seq / seconds
    per_core = FLOPS_PER_PARAM_TOKEN * params * rate / 1e9 / args.threads
    report(
        "train_rate",
        {
            "params": params,
            "threads": args.threads,
            "tokens_per_s": round(rate, 1),
            "gflops_per_core": round(per_core, 1),
            "estimate_assumes_gflops_per_core": CPU_GFLOPS_PER_CORE,
        },
    )


if __name__ == "__main__":
    main()
