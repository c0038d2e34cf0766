"""Engines shared by the integration tests: each starts once per test session, when a test first asks.

Starting vLLM on the tiny model costs 15-60 s on 2 CPU cores, an OpenAI server more; a module that only
*uses* an engine takes one of these instead of starting its own:

* ``vllm_engine`` — in-process vLLM, no LoRA, default settings (prefix caching on), fp32;
* ``vllm_lora_engine`` — in-process vLLM in LoRA mode with the random adapters ``a`` and ``b``
  (``tiny_loras``);
* ``openai_server`` — a real vLLM OpenAI server (``xiaoshuo.testing.start_openai_server``) serving the
  tiny model as ``tiny`` and adapter ``a`` as ``a``; the fixture's value is its base URL.

Tests that share an engine must not change what it is (no close, no settings); requests, adapters by
path and cancellations are fine — every test here checks outputs against the same engine, never against
another test's.  Tests that need their own engine settings (LoRA slots, merged mode, a loading
engine, close and reopen) still start their own.  Command-line tests point ``engine.openai_base_url`` at
``openai_server`` so the command starts no engine.  ``started_engines`` says which shared ones are up.
Each held engine costs ~2.5 GB of RAM (1 GiB of it the CPU KV cache) until the session ends.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_STARTED = pytest.StashKey[set]()


@pytest.fixture
def started_engines(request: pytest.FixtureRequest) -> set[str]:
    """The names of the shared engines already started in this session (a copy)."""
    return set(request.config.stash.get(_STARTED, set()))


@pytest.fixture(scope="session")
def vllm_engine(request: pytest.FixtureRequest, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    from xiaoshuo.engine import load_engine
    from xiaoshuo.testing import tiny_engine_settings

    settings = tiny_engine_settings(tiny_model, tmp_path_factory.mktemp("vllm-engine"))
    engine = load_engine(settings, backend="vllm")
    assert engine.mode == "base", engine.mode
    request.config.stash.setdefault(_STARTED, set()).add("vllm_engine")
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def vllm_lora_engine(tiny_model: Path, tiny_loras: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    from xiaoshuo.engine import load_engine
    from xiaoshuo.testing import tiny_engine_settings

    settings = tiny_engine_settings(tiny_model, tmp_path_factory.mktemp("vllm-lora-engine"))
    engine = load_engine(settings, backend="vllm", lora={k: str(v) for k, v in tiny_loras.items()})
    assert engine.mode == "lora", engine.mode
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def openai_server(tiny_model: Path, tiny_loras: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    from xiaoshuo.testing import start_openai_server

    work = tmp_path_factory.mktemp("openai-server")
    with start_openai_server(tiny_model, {"a": str(tiny_loras["a"])}, workdir=work) as url:
        yield url
