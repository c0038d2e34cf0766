"""The OpenAI backend against a real local vLLM server process (started like `xiaoshuo serve`).

The session's server (``openai_server`` in tests/integration/conftest.py, started by
``xiaoshuo.testing.start_openai_server``), serving the tiny model as ``tiny`` and one random LoRA as
``a`` (``--enable-lora --lora-modules a=…``).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from xiaoshuo.engine import EngineError, GenerationRequest, SamplingSettings, load_engine
from xiaoshuo.engine.openai_backend import OpenAIEngine
from xiaoshuo.testing import TINY_CORPUS, tiny_engine_settings

GREEDY = SamplingSettings(temperature=0.0, max_tokens=16, repetition_penalty=1.0)
PROMPT = "林远站在雨中"


@pytest.fixture
def server(openai_server: str) -> str:
    return openai_server


def _settings(tiny_model: Path, tmp_path: Path, url: str, **extra):
    return tiny_engine_settings(tiny_model, tmp_path, **{"engine.openai_base_url": url, **extra})


@pytest.mark.slow
def test_openai_backend_streams_and_selects_lora_by_name(server, tiny_model: Path, tmp_path: Path) -> None:
    with load_engine(_settings(tiny_model, tmp_path, server), backend="openai") as eng:

        async def collect(req: GenerationRequest) -> list:
            return [d async for d in eng.stream(req)]

        base = asyncio.run(collect(GenerationRequest(prompt=PROMPT, sampling=GREEDY)))
        assert len([d for d in base if d.text]) > 1  # streamed in pieces
        assert base[-1].finish_reason in ("length", "stop")
        base_text = "".join(d.text for d in base)
        lora_text = eng.generate(GenerationRequest(prompt=PROMPT, sampling=GREEDY, lora="a")).text
        assert base_text and lora_text and lora_text != base_text
        chat = eng.generate(
            GenerationRequest(messages=[{"role": "user", "content": "续写"}], sampling=GREEDY)
        )
        assert chat.text and chat.candidates[0].finish_reason
        many = eng.generate(
            GenerationRequest(prompt="雨夜", sampling=SamplingSettings(n=2, max_tokens=8, seed=1))
        )
        assert [c.index for c in many.candidates] == [0, 1]


@pytest.mark.slow
def test_openai_served_adapters_and_folder_paths(
    server, tiny_model: Path, tiny_loras: dict[str, Path], tmp_path: Path
) -> None:
    with load_engine(_settings(tiny_model, tmp_path, server), backend="openai") as eng:
        assert eng.served_adapters() == ["a"]  # the base model "tiny" is not an adapter
        assert eng.max_model_len == 4096  # vLLM's /v1/models max_model_len (the tiny model's context)
        base = eng.generate(GenerationRequest(prompt=PROMPT, sampling=GREEDY)).text
        by_name = eng.generate(GenerationRequest(prompt=PROMPT, sampling=GREEDY, lora="a")).text
        assert by_name != base
        # the very folder the server loaded (vLLM's "root"), and a copy under the served name
        # laid out like the WebUI's checkpoints/<run>/final_model
        same_folder = eng.generate(
            GenerationRequest(prompt=PROMPT, sampling=GREEDY, lora=str(tiny_loras["a"]))
        ).text
        run = tmp_path / "checkpoints" / "a" / "final_model"
        shutil.copytree(tiny_loras["a"], run)
        by_run = eng.generate(GenerationRequest(prompt=PROMPT, sampling=GREEDY, lora=str(run))).text
        assert same_folder == by_name and by_run == by_name
        # a folder the server does not serve (b) fails clearly, naming what is served and the fix
        with pytest.raises(EngineError, match="adapter not served") as err:
            eng.generate(GenerationRequest(prompt=PROMPT, sampling=GREEDY, lora=str(tiny_loras["b"])))
        assert "a" in str(err.value.expected) and "--lora-modules name=path" in str(err.value)


@pytest.mark.slow
def test_openai_counts_tokens_exactly_with_a_local_tokenizer(
    server, tiny_model: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    # model.base_model names nothing local: the tokenizer is found from the served model's root
    settings = _settings(tiny_model, tmp_path, server, **{"model.base_model": "nobody/no-such-model"})
    tok = AutoTokenizer.from_pretrained(tiny_model)
    with load_engine(settings, backend="openai") as eng:
        assert eng.token_count_exact and eng.tokenizer_source.startswith("local tokenizer")
        text = TINY_CORPUS[:200]
        assert eng.count_tokens(text) == len(tok(text, add_special_tokens=False)["input_ids"])
        served = eng.generate(GenerationRequest(prompt=text, sampling=GREEDY)).prompt_tokens
        assert eng.count_tokens(text) == served  # the server's own count


@pytest.mark.slow
def test_openai_estimates_tokens_without_a_local_tokenizer(
    server, tiny_model: Path, tmp_path: Path
) -> None:
    with OpenAIEngine(_settings(tiny_model, tmp_path, server), {}, tokenizer=None) as eng:
        assert not eng.token_count_exact and eng.tokenizer_source.startswith("estimate")
        for text in (PROMPT, TINY_CORPUS[:300], TINY_CORPUS):
            served = eng.generate(GenerationRequest(prompt=text, sampling=GREEDY)).prompt_tokens
            assert served > 0 and eng.count_tokens(text) >= served  # never under-counts
        # and the generation path works with memory-style counting of every piece
        assert eng.count_tokens("") == 0 and eng.count_tokens("【人物】林远") > 0


@pytest.mark.slow
def test_openai_backend_errors_are_clear(server, tiny_model: Path, tmp_path: Path) -> None:
    with (
        load_engine(_settings(tiny_model, tmp_path, server), backend="openai") as eng,
        pytest.raises(EngineError, match="adapter not served"),
    ):
        eng.generate(GenerationRequest(prompt="x", sampling=GREEDY, lora="nope"))
    dead = tiny_engine_settings(tiny_model, tmp_path, **{"engine.openai_base_url": "http://127.0.0.1:9/v1"})
    with pytest.raises(EngineError, match="server unreachable"):
        load_engine(dead, backend="openai")
