"""xiaoshuo.adapters: one idea of "no adapter", resolution of names and folders, the LoRA rank, and the one
merge (the standalone export and the engine's merged cache write the same model: the base's dtype and the
base's tokenizer files).  Real peft adapters on the tiny model; no engine is loaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from xiaoshuo.adapters import (
    AdapterError,
    adapter_dir,
    choose_adapter,
    ensure_merged,
    is_none,
    lora_rank,
    merge_adapter,
    resolve_adapter,
)
from xiaoshuo.engine import GenerationRequest
from xiaoshuo.testing import ScriptedEngine, build_tiny_lora, build_tiny_model

NONE_SPELLINGS = [None, "", "  ", "none", " None ", "BASE", "（无）", "(none)"]


@pytest.mark.parametrize("value", NONE_SPELLINGS)
def test_every_spelling_of_no_adapter_means_the_base_model_everywhere(value, tmp_path: Path) -> None:
    assert is_none(value)
    if value is None or value.strip():  # a request's lora is None or a non-empty name (types.py)
        # the engine (any backend: the base class resolves) sends it to the base model, no error
        engine = ScriptedEngine(["好"])
        assert engine.prepare(GenerationRequest(prompt="雨", lora=value)).lora is None
    # a command's --adapter: the base model, nothing joins the engine's adapters
    adapters: dict[str, str] = {}
    if value is not None:
        assert choose_adapter(tmp_path, adapters, value) is None and adapters == {}


def test_the_webui_none_label_is_one_of_them() -> None:
    from xiaoshuo.webui.locale import STRINGS

    assert all(is_none(label) for label in STRINGS["none"].values())
    assert not is_none("wuxia-v1") and not is_none("none-style")


def _trained(tiny: Path, checkpoints: Path, run: str, *, seed: int = 1, r: int = 8) -> Path:
    """A peft adapter laid out as ``xiaoshuo train`` leaves it: weights, the training tokenizer (its pad
    token set to eos, as training does), the manifest."""
    from transformers import AutoTokenizer

    final = build_tiny_lora(tiny, adapter_dir(checkpoints, run), seed=seed, r=r)
    tok = AutoTokenizer.from_pretrained(str(tiny))
    tok.pad_token = tok.eos_token
    tok.save_pretrained(str(final))
    manifest = {"run": run, "base_model": str(tiny), "created": "2026-11-01T10:00:00"}
    (final / "xiaoshuo_manifest.json").write_text(json.dumps(manifest), "utf-8")
    return final


def test_resolution_of_names_run_folders_and_peft_folders(tiny_model: Path, tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    final = _trained(tiny_model, checkpoints, "wuxia", r=16)
    assert resolve_adapter(checkpoints, "wuxia") == final  # a trained run's name
    assert resolve_adapter(checkpoints, str(final.parent)) == final  # a run folder
    assert resolve_adapter(checkpoints, str(final)) == final  # a peft folder
    assert resolve_adapter(checkpoints, "nope") is None and resolve_adapter(checkpoints, " ") is None

    adapters = {"other": str(final)}
    assert choose_adapter(checkpoints, adapters, None) == "other"  # default: the first --lora
    assert choose_adapter(checkpoints, adapters, "wuxia") == "wuxia"  # joins the engine's adapters
    assert adapters["wuxia"] == str(final)
    assert choose_adapter(checkpoints, {}, "served-name", served_by_name=True) == "served-name"
    with pytest.raises(AdapterError, match="未知的 --adapter") as info:
        choose_adapter(checkpoints, {}, "nope")
    assert "wuxia" in str(info.value)  # the trained adapters are offered

    # the rank vLLM is started with: the smallest allowed one that fits config and every adapter
    assert lora_rank([final], 8) == 16
    assert lora_rank([], 8) == 8 and lora_rank([], 20) == 32 and lora_rank([], 10_000) == 512


def _tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    out: dict = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def test_one_merge_the_export_and_the_engine_cache_write_the_same_model(tmp_path: Path) -> None:
    import torch

    base = build_tiny_model(tmp_path / "bf16-base", dtype="bfloat16")
    checkpoints = tmp_path / "checkpoints"
    final = _trained(base, checkpoints, "wuxia")

    exported = merge_adapter(checkpoints, "wuxia", tmp_path / "out" / "wuxia-merged")
    cached = ensure_merged(tmp_path / "models", str(base), final).path

    for merged in (exported, cached):
        config = json.loads((merged / "config.json").read_text("utf-8"))
        assert (config.get("dtype") or config.get("torch_dtype")) == "bfloat16"  # the base's dtype, not fp32
        assert {t.dtype for t in _tensors(merged).values()} == {torch.bfloat16}
        for name in ("tokenizer.json", "tokenizer_config.json"):  # the base's tokenizer, byte for byte
            assert (merged / name).read_bytes() == (base / name).read_bytes(), name
    a, b = _tensors(exported), _tensors(cached)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    manifest = json.loads((exported / "xiaoshuo_manifest.json").read_text("utf-8"))
    assert manifest["merged_from"] == str(final) and manifest["run"] == "wuxia"
    assert not list(exported.parent.glob(".*"))  # no temp folder left beside the output
    with pytest.raises(AdapterError, match="非空"):
        merge_adapter(checkpoints, "wuxia", exported)


def test_export_without_a_base_model_in_the_manifest_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    final = _trained(tiny_model, checkpoints, "nobase")
    (final / "xiaoshuo_manifest.json").write_text(json.dumps({"run": "nobase"}), "utf-8")
    with pytest.raises(AdapterError, match="base_model"):
        merge_adapter(checkpoints, "nobase", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    shutil.rmtree(checkpoints)
