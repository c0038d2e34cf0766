"""Structured output: the model fills a form (a pydantic model), the backend enforces its JSON schema.

    plan = await generate_json(engine, messages, OutlineBatch, task="outline", chapter=11)
    results = await generate_json_many(engine, [(messages, ChapterSummary, "summary", 3), ...])

Every backend constrains decoding to ``model_cls.model_json_schema()``
(``GenerationRequest.json_schema``: vLLM structured outputs with llguidance, ``response_format``
on an OpenAI-compatible server, an llguidance logits processor on transformers).  The text is
still validated with pydantic: a server that ignores ``response_format``, a cut-off answer
(``max_tokens``) or a value outside the schema's ranges is retried with a new seed up to
``retries`` times, then :class:`StructuredOutputError` names the task and the chapter.  Invalid
output is never returned, so it can never reach the outline or the memory.

This module does not build task prompts (planning, summaries and extraction do) and does not
write anything.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from typing import Any, TypeVar

import pydantic

from xiaoshuo.engine.types import GenerationRequest, SamplingSettings
from xiaoshuo.writing.schema import WritingError

M = TypeVar("M", bound=pydantic.BaseModel)

# JSON is copied, not invented: no repetition penalty (it punishes the quotes and brackets a form needs).
DEFAULT_SAMPLING = SamplingSettings(
    temperature=0.7, top_p=0.95, top_k=-1, repetition_penalty=1.0, max_tokens=1024
)

CUT_OFF = "the answer was cut off"
JsonItem = tuple[Sequence[dict[str, str]], type[pydantic.BaseModel], str, int | None]


class StructuredOutputError(WritingError):
    """The model's answer to a form-filling task did not validate against the task's schema."""

    def __init__(self, task: str, chapter: int | None, *, received: str, problem: str, tries: int) -> None:
        where = f"第 {chapter} 章 (chapter {chapter})" if chapter is not None else "全书 (no chapter)"
        self.task = task
        self.chapter = chapter
        self.text = received
        #: the last answer was cut off at max_tokens (a smaller form — fewer chapters — may fit)
        self.cut_off = problem.startswith(CUT_OFF)
        super().__init__(
            f"模型输出不符合格式：任务 {task}，{where} (invalid structured output for task {task!r})",
            expected=f"JSON valid against the {task} schema; {tries} tries failed, last: {problem}",
            received=received[:300] + ("…" if len(received) > 300 else ""),
            fix="重试；增大 max_tokens；或换用支持结构化输出的后端/更强的模型 "
            "(retry, raise max_tokens, or use a backend with structured outputs)",
        )


def schema_of(model_cls: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The JSON schema the backend enforces for ``model_cls``."""
    return model_cls.model_json_schema()


def schema_sketch(schema: dict[str, Any]) -> str:
    """A compact, readable shorthand of ``schema`` for the prompt (the backend enforces the full one).

    ``{"name":str1-12,"aliases"?:[≤3×str≤12],"thread"?:"none"|"open"}``: ``?`` = optional key,
    ``str≤N`` / ``strM-N`` = string length, ``[≤N×T]`` / ``[N×T]`` = array size, ``intM-N``.
    About a quarter of the JSON Schema's size: on a small model's context (4,096 tokens) the full
    schema of a rich form took more room than the chapter it is about.
    """
    defs = schema.get("$defs", {})

    def bounds(lo: Any, hi: Any) -> str:
        if lo not in (None, 0) and hi is not None:
            return f"{lo}-{hi}"
        if hi is not None:
            return f"≤{hi}"
        return f"≥{lo}" if lo not in (None, 0) else ""

    def walk(node: dict[str, Any], depth: int) -> str:
        if "$ref" in node:
            target = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
            return walk(target, depth + 1) if depth < 8 else "{…}"
        for key in ("anyOf", "oneOf"):
            if key in node:
                return "|".join(walk(n, depth) for n in node[key])
        if "const" in node:
            return json.dumps(node["const"], ensure_ascii=False)
        if "enum" in node:
            return "|".join(json.dumps(v, ensure_ascii=False) for v in node["enum"])
        kind = node.get("type")
        if kind == "object" or "properties" in node:
            required = set(node.get("required", ()))
            fields = [
                json.dumps(k, ensure_ascii=False) + ("" if k in required else "?") + ":" + walk(v, depth)
                for k, v in node.get("properties", {}).items()
            ]
            return "{" + ",".join(fields) + "}"
        if kind == "array":
            lo, hi = node.get("minItems"), node.get("maxItems")
            count = f"{hi}×" if hi is not None and lo == hi else (f"{bounds(lo, hi)}×" if lo or hi else "")
            return f"[{count}{walk(node.get('items', {}), depth)}]"
        if kind == "string":
            return "str" + bounds(node.get("minLength"), node.get("maxLength"))
        if kind in ("integer", "number"):
            return ("int" if kind == "integer" else "num") + bounds(node.get("minimum"), node.get("maximum"))
        if isinstance(kind, list):
            return "|".join(walk({**node, "type": k}, depth) for k in kind)
        return str(kind or "any")

    return walk(schema, 0)


def schema_hint(schema: dict[str, Any]) -> str:
    """The line asking for JSON of this shape (:func:`schema_sketch`'s shorthand, not the JSON Schema)."""
    from xiaoshuo.writing.prompts import JSON_HINT

    return JSON_HINT + schema_sketch(schema)


def with_schema_hint(messages: Sequence[dict[str, str]], schema: dict[str, Any]) -> list[dict[str, str]]:
    """The messages with :func:`schema_hint` closing the last user message (weaker servers need it).

    A caller that already placed the hint (e.g. in the system message, so that many requests share a
    cached prompt prefix on vLLM) gets its messages unchanged.
    """
    out = [dict(m) for m in messages]
    text = schema_hint(schema)
    if any(text in m["content"] for m in out):
        return out
    hint = "\n\n" + text
    for msg in reversed(out):
        if msg["role"] == "user":
            msg["content"] += hint
            return out
    out.append({"role": "user", "content": hint.strip()})
    return out


def parse_json(text: str, model_cls: type[M]) -> M:
    """Validate ``text`` as ``model_cls`` (raises ``pydantic.ValidationError``)."""
    return model_cls.model_validate_json(text.strip())


async def _complete(engine: Any, request: GenerationRequest) -> tuple[str, str | None]:
    parts: list[str] = []
    finish = None
    async for delta in engine.stream(request):
        if delta.index == 0:
            parts.append(delta.text)
            finish = delta.finish_reason or finish
    return "".join(parts), finish


async def generate_json(
    engine: Any,
    messages: Sequence[dict[str, str]],
    model_cls: type[M],
    *,
    task: str,
    chapter: int | None = None,
    sampling: SamplingSettings | None = None,
    lora: str | None = None,
    retries: int = 2,
) -> M:
    """Ask the model to fill ``model_cls``; return the validated instance or raise StructuredOutputError.

    ``retries``: further tries (each with a new seed) after an invalid answer.  Engine errors
    (closed engine, prompt too long …) propagate unchanged: they are not format problems.
    """
    schema = schema_of(model_cls)
    sampling = sampling or DEFAULT_SAMPLING
    base_seed = sampling.seed if sampling.seed is not None else random.randrange(2**31)
    prompt = with_schema_hint(messages, schema)
    text, problem = "", ""
    for attempt in range(retries + 1):
        seed = (base_seed + attempt * 7919) % 2**31
        request = GenerationRequest(
            messages=prompt,
            sampling=SamplingSettings(**{**_fields(sampling), "seed": seed, "n": 1}),
            lora=lora,
            json_schema=schema,
        )
        text, finish = await _complete(engine, request)
        try:
            return parse_json(text, model_cls)
        except pydantic.ValidationError as exc:
            problem = _describe(exc, finish, sampling.max_tokens)
    raise StructuredOutputError(task, chapter, received=text, problem=problem, tries=retries + 1)


async def generate_json_many(
    engine: Any,
    items: Sequence[JsonItem],
    *,
    sampling: SamplingSettings | None = None,
    lora: str | None = None,
    retries: int = 2,
) -> list[pydantic.BaseModel | StructuredOutputError]:
    """Run many form-filling tasks at once (vLLM batches them); results in input order.

    ``items``: ``(messages, model_cls, task, chapter)``.  A task whose answer never validates
    yields its StructuredOutputError in place; any other error is raised.
    """
    coros = [
        generate_json(
            engine,
            messages,
            model_cls,
            task=task,
            chapter=chapter,
            sampling=sampling,
            lora=lora,
            retries=retries,
        )
        for messages, model_cls, task, chapter in items
    ]
    results = await asyncio.gather(*coros, return_exceptions=True)
    for res in results:
        if isinstance(res, BaseException) and not isinstance(res, StructuredOutputError):
            raise res
    return list(results)  # type: ignore[arg-type]


def _fields(sampling: SamplingSettings) -> dict[str, Any]:
    return {name: getattr(sampling, name) for name in sampling.__dataclass_fields__}


def _describe(exc: pydantic.ValidationError, finish: str | None, max_tokens: int) -> str:
    if finish == "length":
        return f"{CUT_OFF} at max_tokens={max_tokens}"
    first = exc.errors()[0] if exc.errors() else {}
    loc = ".".join(str(p) for p in first.get("loc", ())) or "(root)"
    return f"{loc}: {first.get('msg', str(exc))}"
