"""An optional judge model for the style eval (``--judge-url URL --judge-model NAME``).

Any OpenAI-compatible server (a bigger local model through ``vllm serve``, Ollama, llama.cpp's server)
reads a few passages' continuations and:

* scores each system's continuation — the author's, the base model's, the adapter's — on the rubric shipped
  as ``eval/data/rubric.toml`` (情节、人物、文笔、节奏、对话、设定一致、吸引力; 1–10 each with a one-line
  reason), as structured output: the answer must match a JSON schema built from the rubric;
* compares base and adapter pairwise, once as (A = base, B = adapter) and once swapped; **agreement** is the
  share of passages whose two verdicts name the same winner (a judge that prefers whatever comes first
  agrees 0%).

An answer that does not parse (a server without structured output) is counted in ``errors``, never
guessed.  This module asks the judge and tallies; it does not choose what to judge (``style.py``).
"""

from __future__ import annotations

import json
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from xiaoshuo.errors import XiaoshuoError

PREFIX_TAIL = 400  # 字 of the prefix the judge reads


class JudgeError(XiaoshuoError):
    """The judge is misconfigured or its rubric is unreadable."""


@dataclass(frozen=True)
class Rubric:
    dimensions: list[dict[str, str]]  # key, name, description
    min_score: int
    max_score: int
    reason_chars: int
    score_prompt: str
    pairwise_prompt: str
    version: int = 1

    @classmethod
    def load(cls, path: str | Path | None = None) -> Rubric:
        """The shipped rubric, or a file in the same format."""
        try:
            if path is None:
                text = resources.files("xiaoshuo.eval").joinpath("data/rubric.toml").read_text("utf-8")
            else:
                text = Path(path).read_text("utf-8")
            data = tomllib.loads(text)
            return cls(
                dimensions=[
                    {"key": d["key"], "name": d["name"], "description": d.get("description", "")}
                    for d in data["dimensions"]
                ],
                min_score=int(data.get("min_score", 1)),
                max_score=int(data.get("max_score", 10)),
                reason_chars=int(data.get("reason_chars", 60)),
                score_prompt=data["prompts"]["score"],
                pairwise_prompt=data["prompts"]["pairwise"],
                version=int(data.get("version", 1)),
            )
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
            raise JudgeError(
                f"评分标准文件无法读取 (rubric unreadable): {path or 'rubric.toml'}",
                received=f"{type(exc).__name__}: {exc}"[:200],
            ) from None

    def score_schema(self) -> dict[str, Any]:
        item = {
            "type": "object",
            "properties": {
                "score": {"type": "integer", "minimum": self.min_score, "maximum": self.max_score},
                "reason": {"type": "string", "maxLength": self.reason_chars},
            },
            "required": ["score", "reason"],
            "additionalProperties": False,
        }
        keys = [d["key"] for d in self.dimensions]
        return {
            "type": "object",
            "properties": {k: item for k in keys},
            "required": keys,
            "additionalProperties": False,
        }

    def pairwise_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "winner": {"type": "string", "enum": ["A", "B", "tie"]},
                "reason": {"type": "string", "maxLength": self.reason_chars},
            },
            "required": ["winner", "reason"],
            "additionalProperties": False,
        }

    def dimension_lines(self) -> str:
        return "\n".join(f"- {d['key']}（{d['name']}）：{d['description']}" for d in self.dimensions)


class Judge:
    """A judge model behind an OpenAI-compatible engine; :meth:`evaluate` fills a style report's ``judge``."""

    def __init__(self, engine: Any, model: str, *, rubric: Rubric | None = None, samples: int = 3) -> None:
        self.engine = engine
        self.model = model
        self.rubric = rubric or Rubric.load()
        self.samples = max(1, samples)
        self.url = ""

    @classmethod
    def connect(cls, settings: Any, url: str | None, model: str | None, *, samples: int = 3) -> Judge:
        """A judge on the server at ``url`` serving ``model`` (both needed; the server is asked now)."""
        from xiaoshuo.config import EngineSettings, mask_url
        from xiaoshuo.engine.openai_backend import OpenAIEngine

        if not url or not model:
            raise JudgeError(
                "评委需要服务器地址和模型名 (the judge needs a server URL and a model name)",
                expected="--judge-url http://host:port/v1 --judge-model NAME",
                received={"judge_url": url, "judge_model": model},
            )
        try:
            engine_cfg = EngineSettings.model_validate(
                {
                    **settings.engine.model_dump(),
                    "openai_base_url": url,
                    "openai_model": model,
                    "system_prompt": "",
                }
            )
        except ValueError as exc:
            raise JudgeError("评委地址无效 (bad judge URL)", received=url, expected=str(exc)[:200]) from None
        judge = cls(
            OpenAIEngine(settings.model_copy(update={"engine": engine_cfg}), {}, tokenizer=None),
            model,
            samples=samples,
        )
        judge.url = mask_url(url)
        return judge

    def close(self) -> None:
        self.engine.close()

    # ------------------------------------------------------------------ asking
    def _ask(self, prompt: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        from xiaoshuo.engine import EngineError, GenerationRequest, SamplingSettings

        sampling = SamplingSettings(
            temperature=0.0, top_p=1.0, repetition_penalty=1.0, max_tokens=1024, seed=0
        )
        request = GenerationRequest(
            messages=[{"role": "user", "content": prompt}], sampling=sampling, json_schema=schema
        )
        try:
            text = self.engine.generate(request).text
            data = json.loads(text)
        except (EngineError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def score(self, prefix: str, text: str) -> dict[str, Any] | None:
        """``{key: {"score", "reason"}}`` of one continuation, or None when the answer does not parse."""
        r = self.rubric
        prompt = r.score_prompt.format(
            min_score=r.min_score,
            max_score=r.max_score,
            reason_chars=r.reason_chars,
            dimensions=r.dimension_lines(),
            prefix=prefix[-PREFIX_TAIL:],
            text=text,
        )
        data = self._ask(prompt, r.score_schema())
        if data is None:
            return None
        out = {}
        for d in r.dimensions:
            item = data.get(d["key"])
            if not isinstance(item, dict) or not isinstance(item.get("score"), int):
                return None
            out[d["key"]] = {
                "score": min(r.max_score, max(r.min_score, item["score"])),
                "reason": str(item.get("reason", ""))[: r.reason_chars],
            }
        return out

    def compare(self, prefix: str, a: str, b: str) -> dict[str, Any] | None:
        """``{"winner": "A" | "B" | "tie", "reason"}``, or None when the answer does not parse."""
        r = self.rubric
        prompt = r.pairwise_prompt.format(reason_chars=r.reason_chars, prefix=prefix[-PREFIX_TAIL:], a=a, b=b)
        data = self._ask(prompt, r.pairwise_schema())
        if data is None or data.get("winner") not in ("A", "B", "tie"):
            return None
        return {"winner": data["winner"], "reason": str(data.get("reason", ""))[: r.reason_chars]}

    # ------------------------------------------------------------------ a style report's judge section
    def evaluate(self, passages: list[Any], outputs: dict[str, list[str]]) -> dict[str, Any]:
        """Scores of the author's and each system's continuation of the first :attr:`samples` passages, and
        base vs adapter in both orders (when there is an adapter)."""
        n = min(self.samples, len(passages))
        systems = ["author", *outputs]
        texts = {"author": [p.reference for p in passages], **outputs}
        score_jobs = [(i, who) for i in range(n) for who in systems]
        pair_jobs = []
        if "adapter" in outputs:
            pair_jobs = [(i, order) for i in range(n) for order in (("base", "adapter"), ("adapter", "base"))]
        with ThreadPoolExecutor(max_workers=8) as pool:
            scored = list(
                pool.map(lambda j: self.score(passages[j[0]].prefix, texts[j[1]][j[0]]), score_jobs)
            )
            paired = list(
                pool.map(
                    lambda j: self.compare(passages[j[0]].prefix, texts[j[1][0]][j[0]], texts[j[1][1]][j[0]]),
                    pair_jobs,
                )
            )
        keys = [d["key"] for d in self.rubric.dimensions]
        names = {d["key"]: d["name"] for d in self.rubric.dimensions}
        scores, errors = [], 0
        per_system: dict[str, dict[str, list[int]]] = {s: {names[k]: [] for k in keys} for s in systems}
        for (i, who), result in zip(score_jobs, scored, strict=True):
            if result is None:
                errors += 1
                continue
            for k in keys:
                per_system[who][names[k]].append(result[k]["score"])
            mean = sum(result[k]["score"] for k in keys) / len(keys)
            scores.append({"passage": i + 1, "system": who, "scores": result, "mean": round(mean, 3)})
        pairwise, verdicts = [], {}
        wins = {"base": 0, "adapter": 0, "tie": 0}
        for (i, (a, b)), result in zip(pair_jobs, paired, strict=True):
            if result is None:
                errors += 1
                continue
            winner = {"A": a, "B": b, "tie": "tie"}[result["winner"]]
            wins[winner] += 1
            verdicts.setdefault(i, []).append(winner)
            pairwise.append(
                {"passage": i + 1, "order": f"{a},{b}", "winner": winner, "reason": result["reason"]}
            )
        both = [v for v in verdicts.values() if len(v) == 2]
        return {
            "model": self.model,
            "url": self.url,
            "rubric_version": self.rubric.version,
            "dimensions": [names[k] for k in keys],
            "passages": n,
            "scores": scores,
            "dimension_means": {
                s: {d: (round(sum(v) / len(v), 3) if v else None) for d, v in dims.items()}
                for s, dims in per_system.items()
            },
            "mean": {
                s: (round(sum(x["mean"] for x in scores if x["system"] == s) / c, 3) if c else None)
                for s in systems
                for c in [sum(1 for x in scores if x["system"] == s)]
            },
            "pairwise": pairwise,
            "wins": wins,
            "agreement": round(sum(v[0] == v[1] for v in both) / len(both), 3) if both else None,
            "errors": errors,
        }
