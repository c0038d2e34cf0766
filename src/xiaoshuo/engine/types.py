"""Requests and results of the generation engine, validated before any backend sees them.

``SamplingSettings`` rejects bad values (an empty stop string, top_p outside
(0, 1], max_tokens < 1 …) at construction with an error naming the field and the
value — the seed crashed inside vLLM on ``stop=[..., ""]``.  These are plain data
types; they do not generate anything.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from xiaoshuo.errors import XiaoshuoError


class SamplingError(XiaoshuoError):
    """A sampling setting or request field is invalid."""


def _bad(name: str, value: Any, expected: str) -> SamplingError:
    return SamplingError(
        f"采样参数 {name} 无效 (invalid sampling setting {name})",
        expected=expected,
        received=value,
        fix=f"把 {name} 改为 {expected}",
    )


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(name, value, "a number")
    return float(value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, value, "an integer")
    return value


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample.  Defaults suit fiction: warm (0.8) but not wild, mild repetition penalty."""

    temperature: float = 0.8  # 0 = greedy
    top_p: float = 0.9  # (0, 1]
    top_k: int = 50  # -1 or 0 = off
    min_p: float = 0.0  # [0, 1]
    repetition_penalty: float = 1.05  # > 0, 1 = off
    presence_penalty: float = 0.0  # [-2, 2]
    frequency_penalty: float = 0.0  # [-2, 2]
    max_tokens: int = 512  # >= 1
    stop: tuple[str, ...] = ()  # no empty strings
    seed: int | None = None
    n: int = 1  # candidates, 1..16
    ignore_eos: bool = False  # generate exactly max_tokens (benchmarks: equal lengths with/without a schema)

    def __post_init__(self) -> None:
        checks = [
            ("temperature", 0.0, 5.0, "a number in [0, 5] (0 = greedy)"),
            ("min_p", 0.0, 1.0, "a number in [0, 1]"),
            ("presence_penalty", -2.0, 2.0, "a number in [-2, 2]"),
            ("frequency_penalty", -2.0, 2.0, "a number in [-2, 2]"),
        ]
        for name, low, high, expected in checks:
            value = _number(name, getattr(self, name))
            if not low <= value <= high:
                raise _bad(name, value, expected)
        top_p = _number("top_p", self.top_p)
        if not 0.0 < top_p <= 1.0:
            raise _bad("top_p", top_p, "a number in (0, 1]")
        if _number("repetition_penalty", self.repetition_penalty) <= 0:
            raise _bad("repetition_penalty", self.repetition_penalty, "a number > 0 (1 = off)")
        if _integer("top_k", self.top_k) < -1:
            raise _bad("top_k", self.top_k, "an integer >= 1, or -1 / 0 for off")
        if _integer("max_tokens", self.max_tokens) < 1:
            raise _bad("max_tokens", self.max_tokens, "an integer >= 1")
        if not 1 <= _integer("n", self.n) <= 16:
            raise _bad("n", self.n, "an integer in [1, 16]")
        if not isinstance(self.ignore_eos, bool):
            raise _bad("ignore_eos", self.ignore_eos, "true or false")
        if self.seed is not None and (_integer("seed", self.seed) < 0):
            raise _bad("seed", self.seed, "an integer >= 0, or None for random")
        stop = self.stop
        if isinstance(stop, str) or not isinstance(stop, list | tuple):
            raise _bad("stop", stop, "a list of non-empty strings")
        for item in stop:
            if not isinstance(item, str) or item == "":
                raise _bad(
                    "stop", list(stop), "a list of non-empty strings (an empty stop string is not allowed)"
                )
        object.__setattr__(self, "stop", tuple(stop))

    @classmethod
    def from_config(cls, generation: Any, **overrides: Any) -> SamplingSettings:
        """From ``settings.generation`` plus overrides (``None`` values are ignored)."""
        values = {
            "temperature": generation.temperature,
            "top_p": generation.top_p,
            "top_k": generation.top_k,
            "repetition_penalty": generation.repetition_penalty,
            "max_tokens": generation.max_tokens,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


_ROLES = {"system", "user", "assistant"}


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: a ``prompt`` string or chat ``messages``, sampling, an optional adapter.

    ``json_schema``: when set, the backend constrains decoding to that JSON schema
    (vLLM structured outputs, ``response_format`` on a server, a grammar-constrained
    decoder on transformers).  Callers still validate the text (``writing.structured``).
    """

    prompt: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    lora: str | None = None  # adapter name (registered) or path
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    json_schema: dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise SamplingError(
                "请求必须且只能包含 prompt 或 messages 之一 (need exactly one of prompt / messages)",
                received={"prompt": self.prompt is not None, "messages": self.messages is not None},
            )
        if self.prompt is not None and (not isinstance(self.prompt, str) or not self.prompt):
            raise _bad("prompt", self.prompt, "a non-empty string")
        if self.messages is not None:
            if not isinstance(self.messages, list | tuple) or not self.messages:
                raise _bad("messages", self.messages, "a non-empty list of {role, content}")
            for msg in self.messages:
                if (
                    not isinstance(msg, dict)
                    or msg.get("role") not in _ROLES
                    or not isinstance(msg.get("content"), str)
                ):
                    raise _bad("messages", msg, "{'role': system|user|assistant, 'content': str}")
            object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))
        if not isinstance(self.sampling, SamplingSettings):
            raise _bad("sampling", self.sampling, "a SamplingSettings")
        if self.lora is not None and (not isinstance(self.lora, str) or not self.lora.strip()):
            raise _bad("lora", self.lora, "an adapter name or path")
        if self.json_schema is not None:
            if not isinstance(self.json_schema, dict) or not self.json_schema:
                raise _bad("json_schema", self.json_schema, "a non-empty JSON schema dict")
            try:
                json.dumps(self.json_schema)
            except (TypeError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                raise _bad("json_schema", problem, "a JSON-serialisable dict") from None


@dataclass(frozen=True)
class Delta:
    """A piece of streamed output for one candidate."""

    request_id: str
    index: int  # candidate index, 0..n-1
    text: str
    finish_reason: str | None = None  # None while running; "stop", "length" or "abort" at the end
    prompt_tokens: int = 0
    completion_tokens: int = 0  # tokens generated so far for this candidate
    token_ids: tuple[int, ...] = ()  # the new token ids in this delta (empty when the backend cannot tell)
    cached_tokens: int | None = None  # prompt tokens served from the prefix cache (None: not reported)


@dataclass
class Candidate:
    index: int
    text: str = ""
    finish_reason: str | None = None
    completion_tokens: int = 0
    token_ids: list[int] = field(default_factory=list)


@dataclass
class GenerationResult:
    request_id: str
    candidates: list[Candidate]
    prompt_tokens: int = 0

    @property
    def text(self) -> str:
        return self.candidates[0].text if self.candidates else ""
