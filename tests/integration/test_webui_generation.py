"""The 随手写 page's generation without a browser: ``webui.pages.scratch.handlers.generate_stream`` — the
function the page's generate event calls — on real vLLM (in-process and behind its OpenAI server) and
real Chroma."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from xiaoshuo.engine import SamplingSettings
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.testing import tiny_engine_settings
from xiaoshuo.webui.pages.scratch.handlers import generate_stream
from xiaoshuo.webui.runtime import LOADING_TEXT
from xiaoshuo.webui.services import EngineHolder, Services

GREEDY = SamplingSettings(temperature=0.0, max_tokens=24, repetition_penalty=1.0, seed=1)


def _collect(services, *, request="续写：林远撑伞走过长街", adapter=None, memory_on=True, novel="雨夜剑"):
    async def run():
        return [
            u
            async for u in generate_stream(
                services, novel, request, "第一章 雨夜\n夜色如墨。", GREEDY, memory_on, adapter
            )
        ]

    return asyncio.run(asyncio.wait_for(run(), timeout=300))


def _settings(model: Path, work: Path, **extra):
    return tiny_engine_settings(
        model,
        work,
        **{
            "memory.embedding_model": "none",
            "memory.context_token_budget": 256,
            "paths.checkpoints_dir": str(work / "checkpoints"),
            "paths.logs_dir": str(work / "logs"),
            **extra,
        },
    )


def _add_character(settings) -> None:
    from xiaoshuo.memory import MemoryStore, make_entry

    with MemoryStore(settings) as store:
        store.add(make_entry(novel="雨夜剑", kind="character", name="林远", text="青云山弟子，惯用长剑。"))


@pytest.fixture(scope="module")
def local(tiny_model: Path, tmp_path_factory):
    """An in-process vLLM engine, still loading when the fixture returns."""
    work = tmp_path_factory.mktemp("webui-gen")
    settings = _settings(tiny_model, work, **{"engine.enable_lora": True})
    _add_character(settings)
    services = Services(settings, backend="vllm")
    yield services, settings, work
    services.close()


@pytest.mark.slow
def test_generate_waits_for_the_loading_engine_then_streams_with_memory(local) -> None:
    services, _, _ = local
    assert services.engine.loading()  # clicked while the model loads …
    updates = _collect(services)
    assert updates[0].loading and updates[0].texts[0] == LOADING_TEXT  # … the box says so …
    final = updates[-1]
    assert not final.loading and final.texts[0] and LOADING_TEXT not in final.texts[0]  # … then streams
    assert final.finish_reasons[0] in ("stop", "length")
    assert [item["name"] for item in final.report["memory_included"]] == ["林远"]
    assert "林远" in final.report["prompt"] and final.report["token_counts_exact"] is True
    assert final.warnings == []


@pytest.mark.slow
def test_memory_indexed_with_another_embedding_model_does_not_stop_generation(
    local, tiny_model: Path
) -> None:
    """The issue's scenario: entries added with embedding_model "none", the WebUI started with the
    default model (not loadable offline) → generation still runs, with a visible warning."""
    services, settings, _work = local
    services.engine.wait(timeout=600)
    changed = settings.model_copy(
        update={"memory": settings.memory.model_copy(update={"embedding_model": "BAAI/bge-small-zh-v1.5"})}
    )
    services.close_store()
    other = Services(changed, engine=services.engine)
    try:
        final = _collect(other)[-1]
    finally:
        other.close_store()
    assert final.texts[0] and final.warnings  # generated, and said why memory was limited
    assert final.report["memory_warnings"] == final.warnings and final.report["memory_dense_used"] is False
    assert [item["name"] for item in final.report["memory_included"]] == ["林远"]  # by its name trigger


def test_a_failed_engine_load_is_a_clear_error(tmp_path: Path, tiny_model: Path) -> None:
    settings = _settings(tiny_model, tmp_path)
    holder = EngineHolder(settings, model=str(tmp_path / "no-such-model"), backend="transformers", lora={})
    holder.wait(timeout=120)
    services = Services(settings, engine=holder)
    try:
        with pytest.raises(XiaoshuoError, match="模型加载失败") as info:
            _collect(services, memory_on=False)
        assert "no-such-model" in str(info.value)
    finally:
        services.close()


# --------------------------------------------------------------------------- openai backend
@pytest.mark.slow
def test_openai_backend_generates_with_memory_on_and_a_served_adapter(
    openai_server: str, tiny_model: Path, tiny_loras: dict[str, Path], tmp_path: Path
) -> None:
    """The session's server (tests/integration/conftest.py) serves adapter ``a``; checkpoints hold ``b``."""
    import shutil

    settings = _settings(
        tiny_model, tmp_path, **{"engine.backend": "openai", "engine.openai_base_url": openai_server}
    )
    shutil.copytree(tiny_loras["b"], tmp_path / "checkpoints" / "b" / "final_model")
    _add_character(settings)
    services = Services(settings, backend="openai")
    try:
        services.engine.wait(timeout=120)
        assert services.engine.status()[0] == "ready", services.engine.status()
        assert services.adapters() == ["a"]  # served names from /v1/models, not checkpoints folders
        styled = _collect(services, adapter="a")[-1]
        base = _collect(services, adapter="（无）")[-1]
    finally:
        services.close()
    assert styled.texts[0] and base.texts[0]
    assert styled.report["lora_sent"] == "a" and base.report["lora_sent"] is None
    assert styled.texts[0] != base.texts[0]  # the adapter's weights were used on the server
    assert [item["name"] for item in styled.report["memory_included"]] == ["林远"]
    assert styled.report["prompt_tokens"] > 0 and "林远" in styled.report["prompt"]
