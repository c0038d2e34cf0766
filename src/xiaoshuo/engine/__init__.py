"""Generation engine: one interface over vLLM (in-process), an OpenAI-compatible server, and transformers.

Public API (import exactly these names)::

    from xiaoshuo.engine import SamplingSettings, GenerationRequest, load_engine

    with load_engine(settings) as engine:
        async for delta in engine.stream(GenerationRequest(prompt="…")): ...
        result = engine.generate(GenerationRequest(messages=[{"role": "user", "content": "…"}]))

``engine.count_tokens(text)`` never fails: exact with a local tokenizer, else an
over-estimate (``engine.token_count_exact``, ``engine.tokenizer_source``).
``engine.score(prefix, text, lora=)`` returns the text's log-probability (a :class:`TextScore`).
``engine.served_adapters()`` lists the adapter names a request's ``lora`` accepts.
``load_prompt_engine(settings)`` composes and counts like the configured engine without loading a model
(tokenizer only; it cannot generate): dry runs.

Heavy libraries load only inside ``load_engine``.
"""

from xiaoshuo.engine.base import Engine, EngineError, TextScore, estimate_tokens
from xiaoshuo.engine.loading import load_engine, load_prompt_engine, parse_lora_specs, register_backend
from xiaoshuo.engine.types import (
    Candidate,
    Delta,
    GenerationRequest,
    GenerationResult,
    SamplingError,
    SamplingSettings,
)

__all__ = [
    "Candidate",
    "Delta",
    "Engine",
    "EngineError",
    "GenerationRequest",
    "GenerationResult",
    "SamplingError",
    "SamplingSettings",
    "TextScore",
    "estimate_tokens",
    "load_engine",
    "load_prompt_engine",
    "parse_lora_specs",
    "register_backend",
]
