"""SamplingSettings and GenerationRequest reject every bad field before an engine sees it."""

from __future__ import annotations

import pytest

from xiaoshuo.config import GenerationSettings
from xiaoshuo.engine import GenerationRequest, SamplingError, SamplingSettings, parse_lora_specs
from xiaoshuo.engine.base import EngineError


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -0.1),
        ("temperature", 9.0),
        ("temperature", "hot"),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("top_k", -2),
        ("top_k", 1.5),
        ("min_p", -0.1),
        ("min_p", 1.1),
        ("repetition_penalty", 0.0),
        ("presence_penalty", 3.0),
        ("frequency_penalty", -3.0),
        ("max_tokens", 0),
        ("max_tokens", -5),
        ("max_tokens", True),
        ("stop", ["<|im_end|>", ""]),
        ("stop", "。"),
        ("stop", [1]),
        ("seed", -1),
        ("seed", 1.5),
        ("n", 0),
        ("n", 17),
    ],
)
def test_every_invalid_sampling_field_is_rejected(field: str, value: object) -> None:
    with pytest.raises(SamplingError) as info:
        SamplingSettings(**{field: value})
    assert field in str(info.value)
    assert repr(value)[:20].strip("'") in str(info.value) or str(value) in str(info.value)


def test_defaults_suit_fiction_and_config_overrides() -> None:
    s = SamplingSettings()
    assert 0.7 <= s.temperature <= 0.9 and s.stop == () and s.n == 1
    cfg = SamplingSettings.from_config(GenerationSettings(), temperature=0.3, max_tokens=None, stop=["。"])
    assert cfg.temperature == 0.3 and cfg.max_tokens == GenerationSettings().max_tokens
    assert cfg.stop == ("。",)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"prompt": "a", "messages": [{"role": "user", "content": "b"}]},
        {"prompt": ""},
        {"messages": []},
        {"messages": [{"role": "narrator", "content": "x"}]},
        {"messages": [{"role": "user"}]},
        {"prompt": "a", "sampling": {"temperature": 1}},
        {"prompt": "a", "lora": " "},
    ],
)
def test_invalid_requests(kwargs: dict) -> None:
    with pytest.raises(SamplingError):
        GenerationRequest(**kwargs)


def test_lora_specs() -> None:
    assert parse_lora_specs(["a=/x/y", "/p/style"]) == {"a": "/x/y", "style": "/p/style"}
    with pytest.raises(EngineError, match="duplicate"):
        parse_lora_specs(["a=/x", "a=/y"])
    with pytest.raises(EngineError, match="cannot parse"):
        parse_lora_specs(["=/x"])
