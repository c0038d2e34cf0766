"""Shared fixtures: a tiny real Qwen2 model built offline, and the gpu marker's skip."""

from __future__ import annotations

import os

# Tests never reach a model hub and never oversubscribe the CPU (set before imports).
for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(_key, _value)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from xiaoshuo.testing import build_tiny_model  # noqa: E402


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real Qwen2ForCausalLM + byte-level BPE tokenizer with ChatML (fp32)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No XIAOSHUO_* variables from the developer's shell leak into a test."""
    for key in list(os.environ):
        if key.startswith("XIAOSHUO_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture(scope="session")
def tiny_loras(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two random, non-zero peft LoRA adapters for the tiny model."""
    from xiaoshuo.testing import build_tiny_lora

    root = tmp_path_factory.mktemp("loras")
    return {name: build_tiny_lora(tiny_model, root / name, seed=seed) for name, seed in (("a", 1), ("b", 2))}
