"""The tiny-model kit builds a real, loadable, deterministic model offline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from xiaoshuo.testing import SIZES, build_tiny_model, count_parameters


def _digest(path: Path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_tiny_model_loads_and_generates(tiny_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    cfg = json.loads((tiny_model / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen2ForCausalLM"]
    assert cfg["hidden_size"] // cfg["num_attention_heads"] == 32  # a vLLM CPU head size
    assert tok.eos_token == "<|im_end|>"
    assert model.config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    text = "林远说：“十年了，你还是这样。”𠀀 English too"
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: nothing is [UNK]
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "续写"}, {"role": "assistant", "content": "好的"}],
        tokenize=False,
    )
    assert chat == "<|im_start|>user\n续写<|im_end|>\n<|im_start|>assistant\n好的<|im_end|>\n"
    masked = tok.apply_chat_template(
        [{"role": "user", "content": "续写"}, {"role": "assistant", "content": "好的"}],
        return_assistant_tokens_mask=True,
        return_dict=True,
    )
    assert 0 < sum(masked["assistant_masks"]) < len(masked["assistant_masks"])
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "续写"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**enc, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape[1] == enc["input_ids"].shape[1] + 5
    assert torch.isfinite(model(**enc).logits).all()


def test_build_is_deterministic_and_cached(tmp_path: Path, tiny_model: Path) -> None:
    other = build_tiny_model(tmp_path / "again")
    assert _digest(other) == _digest(tiny_model)
    mtime = (other / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model(tmp_path / "again") == other
    assert (other / "model.safetensors").stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert count_parameters(tiny_model) < 1_000_000
    assert not list(tmp_path.glob(".tiny-*"))  # no temp folder left behind


def test_bench_size_is_about_50m_parameters() -> None:
    spec = SIZES["bench"]
    per_layer = (
        spec.hidden_size * spec.hidden_size * 2
        + 2 * spec.hidden_size * (spec.hidden_size // spec.num_attention_heads) * spec.num_key_value_heads
        + 3 * spec.hidden_size * spec.intermediate_size
    )
    total = per_layer * spec.num_hidden_layers + 1024 * spec.hidden_size
    assert 35_000_000 < total < 70_000_000
    assert spec.hidden_size // spec.num_attention_heads in {32, 64, 80, 96, 112, 128}
