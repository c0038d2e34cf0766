"""Hugging Face model folder → GGUF file (and a peft LoRA adapter → GGUF LoRA), with the ``gguf`` library.

``convert_hf_to_gguf(model_dir, out_file, outtype="f16")`` writes a GGUF that llama.cpp
(llama-cpp-python, llama-server, Ollama, LM Studio) loads: the architecture's hyper-parameters, the
byte-level BPE tokenizer (tokens, types, merges, special ids, ``add_bos``), the chat template, and every
weight under llama.cpp's tensor names (``gguf.get_tensor_name_map``).  ``outtype``: ``f32``, ``f16``
or ``bf16`` (2-D weights; norms and biases stay f32, as llama.cpp's own converter does).  Quantizing
(Q8_0, Q4_K_M) is llama.cpp's job: :func:`quantize_gguf` calls its quantizer through llama-cpp-python.

``convert_lora_to_gguf(adapter_dir, out_file, base_model_dir)`` writes a peft LoRA adapter as a GGUF
adapter (``general.type = adapter``), for ``Llama(lora_path=…)`` / ``llama-server --lora``.

Supported architectures: the Qwen2 / Qwen3 families (``Qwen2ForCausalLM``, ``Qwen3ForCausalLM``) —
the shape of the built-in tiny models and of the Qwen2.5 models xiaoshuo defaults to; their weights need no
permutation.  Other architectures raise an error that names llama.cpp's maintained
``convert_hf_to_gguf.py``.  Writes are atomic (a temporary file beside the target, then a rename).
Not responsible for the merged-model cache or the ``adapters export`` command (their callers).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xiaoshuo.errors import DependencyError, XiaoshuoError

OUTTYPES = ("f32", "f16", "bf16")
QUANT_TYPES = ("F16", "Q8_0", "Q5_K_M", "Q4_K_M")

_ARCHES = {"Qwen2ForCausalLM": "QWEN2", "Qwen3ForCausalLM": "QWEN3"}


INSTALL = 'pip install -e ".[llamacpp]"（或 make llamacpp；从源码编译 llama.cpp，需几分钟）'


def import_llama_cpp() -> Any:
    """``llama_cpp``, or an error naming the install command and the fallback backends."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise DependencyError(
            "未安装 llama-cpp-python，无法使用 llamacpp 后端 (llama-cpp-python is not installed)",
            expected="the llamacpp extra installed",
            received=f"{type(exc).__name__}: {exc}",
            fix=f"{INSTALL}；或设置 engine.backend = auto / transformers / vllm",
        ) from None
    return llama_cpp


class ConversionError(XiaoshuoError):
    """A model or adapter could not be converted to GGUF."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConversionError(
            "无法读取模型配置 (cannot read the model's config)",
            received=f"{path}: {type(exc).__name__}: {exc}",
            expected="a Hugging Face model folder with config.json",
        ) from None
    if not isinstance(data, dict):
        raise ConversionError("模型配置格式不对 (config is not a JSON object)", received=str(path))
    return data


def convertible(model_dir: str | os.PathLike[str]) -> bool:
    """Whether ``model_dir`` is a local Hugging Face folder this converter handles (reads config.json)."""
    try:
        config = json.loads((Path(model_dir).expanduser() / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and any(a in _ARCHES for a in config.get("architectures") or [])


def _arch(config: dict[str, Any]) -> Any:
    import gguf

    names = config.get("architectures") or []
    for name in names:
        if name in _ARCHES:
            return getattr(gguf.MODEL_ARCH, _ARCHES[name])
    raise ConversionError(
        "暂不支持转换这种模型结构 (architecture not supported by xiaoshuo's GGUF converter)",
        expected="Qwen2ForCausalLM or Qwen3ForCausalLM",
        received=", ".join(names) or "no architectures in config.json",
        fix="用 llama.cpp 自带的 convert_hf_to_gguf.py 转换 (use llama.cpp's convert_hf_to_gguf.py)",
    )


def _weights(model_dir: Path) -> Iterator[tuple[str, Any]]:
    """(name, float32 numpy array) of every tensor in the folder's safetensors files."""
    import numpy as np
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ConversionError(
            "模型目录里没有 safetensors 权重 (no .safetensors weights in the folder)",
            received=str(model_dir),
            expected="model.safetensors (or shards) as save_pretrained writes them",
        )
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                yield name, f.get_tensor(name).float().numpy().astype(np.float32, copy=False)


def _vocab(model_dir: Path, n_vocab: int) -> tuple[list[str], list[int]]:
    """Tokens by id (padded to the model's embedding rows) and their llama.cpp token types."""
    import gguf
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    by_id = {i: t for t, i in tok.get_vocab().items()}
    added = {i: t for i, t in tok.added_tokens_decoder.items()}
    if len(by_id) > n_vocab:
        raise ConversionError(
            "分词器的词表比模型的嵌入层大 (tokenizer has more tokens than the model's embedding rows)",
            received=f"{len(by_id)} tokens, {n_vocab} rows",
        )
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_vocab):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _pre_tokenizer(model_dir: Path, config: dict[str, Any]) -> str:
    """llama.cpp's name for the pre-tokenizer regex: GPT-2's for a plain ByteLevel, else Qwen2's."""
    try:
        data = json.loads((model_dir / "tokenizer.json").read_text("utf-8"))
    except (OSError, ValueError):
        data = {}
    pre = data.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    return "qwen2"


def _atomic_target(out_file: Path) -> Path:
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_file.name}.", suffix=".part", dir=out_file.parent)
    os.close(fd)
    return Path(tmp)


def _write(writer: Any, tmp: Path, out_file: Path) -> Path:
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out_file)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return out_file


def convert_hf_to_gguf(
    model_dir: str | os.PathLike[str], out_file: str | os.PathLike[str], outtype: str = "f16"
) -> Path:
    """Write the Hugging Face model at ``model_dir`` as a GGUF file at ``out_file``; returns its path.

    ``outtype``: ``f32``, ``f16`` or ``bf16`` for the 2-D weights.  An existing file at ``out_file`` is
    replaced atomically.  Raises :class:`ConversionError` for an unsupported model."""
    import gguf
    import numpy as np

    if outtype not in OUTTYPES:
        raise ConversionError(
            "不支持的 GGUF 输出类型 (unsupported GGUF outtype)",
            expected=" / ".join(OUTTYPES) + " (quantize afterwards for Q8_0 / Q4_K_M)",
            received=outtype,
        )
    model_dir = Path(model_dir).expanduser()
    out_file = Path(out_file).expanduser()
    config = _read_json(model_dir / "config.json")
    config = config.get("text_config", config) if "hidden_size" not in config else config
    arch = _arch(config)
    n_layers = int(config["num_hidden_layers"])
    names = gguf.get_tensor_name_map(arch, n_layers)
    n_vocab = int(config["vocab_size"])
    heads = int(config["num_attention_heads"])

    tmp = _atomic_target(out_file)
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(model_dir.name)
    writer.add_context_length(int(config.get("max_position_embeddings", 4096)))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(n_layers)
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads", heads)))
    if config.get("head_dim"):
        writer.add_key_length(int(config["head_dim"]))
        writer.add_value_length(int(config["head_dim"]))
    writer.add_rope_freq_base(
        float(config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    )
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    ftype = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    }[outtype]
    writer.add_file_type(ftype)

    tokens, types = _vocab(model_dir, n_vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(model_dir, config))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=n_vocab)
    special.add_to_gguf(writer, quiet=True)
    if "bos" not in special.add_special_token:
        writer.add_add_bos_token(False)  # Qwen-style: no BOS before a prompt

    seen: set[str] = set()
    for name, data in _weights(model_dir):
        if name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        target = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if target is None:
            writer.close()
            tmp.unlink(missing_ok=True)
            raise ConversionError(
                "模型里有转换器不认识的权重 (a weight the converter cannot map)",
                received=name,
                fix="用 llama.cpp 自带的 convert_hf_to_gguf.py 转换 (use llama.cpp's convert_hf_to_gguf.py)",
            )
        if data.ndim >= 2 and outtype == "f16":
            data = data.astype(np.float16)
            writer.add_tensor(target, data)
        elif data.ndim >= 2 and outtype == "bf16":
            raw = gguf.quants.quantize(data, gguf.GGMLQuantizationType.BF16)
            writer.add_tensor(target, raw, raw_shape=raw.shape, raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            writer.add_tensor(target, data)
        seen.add(target)
    if "token_embd.weight" not in seen:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise ConversionError(
            "模型没有词嵌入权重 (no token embedding in the weights)", received=str(model_dir)
        )
    return _write(writer, tmp, out_file)


def convert_lora_to_gguf(
    adapter_dir: str | os.PathLike[str],
    out_file: str | os.PathLike[str],
    base_model_dir: str | os.PathLike[str],
) -> Path:
    """Write the peft LoRA adapter at ``adapter_dir`` as a GGUF LoRA adapter (f32) for the base model at
    ``base_model_dir`` — its Hugging Face folder (config.json) or its GGUF file (metadata) names the
    architecture.  rsLoRA is folded into the alpha."""
    import gguf
    from safetensors.numpy import load_file

    adapter_dir = Path(adapter_dir).expanduser()
    out_file = Path(out_file).expanduser()
    acfg = _read_json(adapter_dir / "adapter_config.json")
    arch, n_layers = _base_arch(Path(base_model_dir).expanduser())
    names = gguf.get_tensor_name_map(arch, n_layers)
    weights_file = adapter_dir / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise ConversionError(
            "适配器目录里没有 adapter_model.safetensors (no adapter weights)", received=str(adapter_dir)
        )
    rank = int(acfg.get("r", 8))
    alpha = float(acfg.get("lora_alpha", rank))
    if acfg.get("use_rslora"):
        alpha = alpha * math.sqrt(rank)  # llama.cpp scales by alpha / r; rsLoRA by alpha / sqrt(r)
    tensors = load_file(str(weights_file))
    pairs: dict[str, dict[str, Any]] = {}
    for key, value in tensors.items():
        if ".lora_A." in key or ".lora_B." in key:
            part = "a" if ".lora_A." in key else "b"
            base = key.replace(".lora_A", "").replace(".lora_B", "")
            base = base.removeprefix("base_model.model.")
            pairs.setdefault(base, {})[part] = value
        else:
            raise ConversionError(
                "适配器含有 LoRA 之外的权重，GGUF LoRA 无法表达 (adapter holds non-LoRA weights)",
                received=key,
                fix="导出合并后的模型 (export the merged model instead)",
            )
    tmp = _atomic_target(out_file)
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for base, parts in sorted(pairs.items()):
        target = names.get_name(base, try_suffixes=(".weight", ".bias"))
        if target is None or set(parts) != {"a", "b"}:
            writer.close()
            tmp.unlink(missing_ok=True)
            raise ConversionError("无法映射适配器的权重 (cannot map an adapter weight)", received=base)
        writer.add_tensor(target + ".lora_a", parts["a"].astype("float32"))
        writer.add_tensor(target + ".lora_b", parts["b"].astype("float32"))
    return _write(writer, tmp, out_file)


def _base_arch(base: Path) -> tuple[Any, int]:
    """(gguf MODEL_ARCH, block count) of a base model given as a Hugging Face folder or a GGUF file."""
    import gguf

    if base.is_file():
        reader = gguf.GGUFReader(str(base))
        name = reader.fields["general.architecture"].contents()
        by_name = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
        if name not in by_name:
            raise ConversionError("GGUF 的模型结构未知 (unknown GGUF architecture)", received=name)
        return by_name[name], int(reader.fields[f"{name}.block_count"].contents())
    config = _read_json(base / "config.json")
    return _arch(config), int(config["num_hidden_layers"])


def quantize_gguf(in_file: str | os.PathLike[str], out_file: str | os.PathLike[str], quant: str) -> Path:
    """Quantize a GGUF with llama.cpp's quantizer (llama-cpp-python): ``F16``, ``Q8_0``, ``Q5_K_M`` or
    ``Q4_K_M``.  Atomic like the converter."""
    llama_cpp = import_llama_cpp()
    ftypes = {
        "F16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
        "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
        "Q5_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
        "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    }
    if quant not in ftypes:
        raise ConversionError(
            "不支持的量化类型 (unsupported quantization)", expected=" / ".join(QUANT_TYPES), received=quant
        )
    out_file = Path(out_file).expanduser()
    tmp = _atomic_target(out_file)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftypes[quant]
    params.nthread = max(1, min(os.cpu_count() or 1, 4))
    rc = llama_cpp.llama_model_quantize(str(in_file).encode(), str(tmp).encode(), params)
    if rc != 0:
        tmp.unlink(missing_ok=True)
        raise ConversionError(
            "GGUF 量化失败 (llama.cpp quantization failed)", received=f"return code {rc}", expected="0"
        )
    os.replace(tmp, out_file)
    return out_file
