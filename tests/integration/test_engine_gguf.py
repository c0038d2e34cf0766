"""Correctness across engines: the tiny model's greedy tokens through transformers, vLLM and llama.cpp.

The GGUFs come from :func:`xiaoshuo.gguf_convert.convert_hf_to_gguf`: f32 must agree token for token with
transformers (fp32) over the whole answer; f16 (the format users export) for the first :data:`N` tokens.
Skipped where llama-cpp-python is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from xiaoshuo.engine import GenerationRequest, SamplingSettings, load_engine
from xiaoshuo.gguf_convert import convert_hf_to_gguf
from xiaoshuo.testing import tiny_engine_settings

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (make llamacpp)")

N = 16
GREEDY = SamplingSettings(temperature=0.0, max_tokens=24, repetition_penalty=1.0)
PROMPTS = ["第1章 夜色如墨，林远", "“你终于来了。”身后传来", "客栈里人声嘈杂。掌柜"]


def _ids(engine) -> list[list[int]]:
    return [
        engine.generate(GenerationRequest(prompt=p, sampling=GREEDY)).candidates[0].token_ids for p in PROMPTS
    ]


@pytest.fixture(scope="module")
def transformers_ids(tiny_model: Path, tmp_path_factory) -> list[list[int]]:
    settings = tiny_engine_settings(tiny_model, tmp_path_factory.mktemp("tf"))
    with load_engine(settings, backend="transformers") as eng:
        return _ids(eng)


def _llama_ids(tiny_model: Path, work: Path, outtype: str) -> tuple[list[list[int]], list[list[int]]]:
    """(generated ids, prompt ids) through llama.cpp on a GGUF of ``outtype``."""
    gguf = convert_hf_to_gguf(tiny_model, work / f"tiny-{outtype}.gguf", outtype=outtype)
    settings = tiny_engine_settings(tiny_model, work, **{"engine.llamacpp_threads": 1})
    with load_engine(settings, backend="llamacpp", model=str(gguf)) as eng:
        assert eng.backend == "llamacpp"
        ids = _ids(eng)
    prompt_ids = [eng.tokenizer(p)["input_ids"] for p in PROMPTS]  # counting works after close
    return ids, prompt_ids


def test_gguf_tokenizer_and_f32_greedy_equal_transformers(
    tiny_model: Path, tmp_path: Path, transformers_ids: list[list[int]]
) -> None:
    from transformers import AutoTokenizer

    ids, prompt_ids = _llama_ids(tiny_model, tmp_path, "f32")
    hf = AutoTokenizer.from_pretrained(str(tiny_model))
    assert prompt_ids == [hf(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    assert all(len(t) == GREEDY.max_tokens for t in transformers_ids)
    assert ids == transformers_ids


def test_f16_gguf_agrees_with_transformers_for_the_first_tokens(
    tiny_model: Path, tmp_path: Path, transformers_ids: list[list[int]]
) -> None:
    ids, _ = _llama_ids(tiny_model, tmp_path, "f16")
    assert [t[:N] for t in ids] == [t[:N] for t in transformers_ids]


@pytest.mark.slow
def test_f16_gguf_agrees_with_vllm_for_the_first_tokens(
    tiny_model: Path, tmp_path: Path, vllm_engine
) -> None:
    ids, _ = _llama_ids(tiny_model, tmp_path, "f16")
    assert [t[:N] for t in ids] == [t[:N] for t in _ids(vllm_engine)]


def test_a_dry_run_counts_with_the_gguf_tokenizer_without_loading_weights(
    tiny_model: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    from xiaoshuo.engine import load_prompt_engine

    gguf = convert_hf_to_gguf(tiny_model, tmp_path / "tiny.gguf", outtype="f16")
    settings = tiny_engine_settings(tiny_model, tmp_path)
    engine = load_prompt_engine(settings, model=str(gguf))  # auto + a .gguf: llamacpp's tokenizer
    assert engine.of == "llamacpp" and engine.context_len == 4096  # the GGUF's own context
    hf = AutoTokenizer.from_pretrained(str(tiny_model))
    messages = [{"role": "user", "content": PROMPTS[0]}]
    assert engine.prompt_tokens(messages) == len(
        hf.apply_chat_template(
            [{"role": "system", "content": settings.engine.system_prompt}, *messages],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
    )


def test_a_gguf_lora_file_serves_like_its_peft_folder(
    tiny_model: Path, tiny_loras: dict[str, Path], tmp_path: Path
) -> None:
    from xiaoshuo.gguf_convert import convert_lora_to_gguf

    lora = convert_lora_to_gguf(tiny_loras["a"], tmp_path / "a.gguf", tiny_model)
    settings = tiny_engine_settings(tiny_model, tmp_path, **{"engine.llamacpp_threads": 1})
    request = GenerationRequest(prompt=PROMPTS[0], sampling=GREEDY, lora="a")
    with load_engine(settings, backend="llamacpp", lora={"a": str(lora), "p": str(tiny_loras["a"])}) as eng:
        from_file = eng.generate(request).candidates[0].token_ids
        from_folder = eng.generate(GenerationRequest(prompt=PROMPTS[0], sampling=GREEDY, lora="p"))
        base = eng.generate(GenerationRequest(prompt=PROMPTS[0], sampling=GREEDY)).candidates[0].token_ids
    assert from_file == from_folder.candidates[0].token_ids != base
    with pytest.raises(Exception, match="not a LoRA adapter folder"):
        load_engine(settings, backend="llamacpp", lora={"x": str(tmp_path)})
