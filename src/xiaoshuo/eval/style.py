"""Style eval (``xiaoshuo eval style``): does the adapter write more like the author than the base model?

From the author's held-out text — ``prepare``'s val split, or a novel's written chapters — take N passages;
each is a *prefix* (up to :data:`PREFIX_CHARS` 字 before a sentence end) and the author's real
*continuation* (``chars`` 字).  The base model and the adapter continue every prefix on one engine, with the
same sampling and the same seed per passage (request ``lora`` switches the weights, nothing else); every
continuation is cut to the length of the author's.  Then, for each system, its pooled continuations are
measured against the author's pooled continuations with :func:`xiaoshuo.eval.metrics.style_components`
(character unigram/bigram JSD, sentence-length KS, dialogue share, punctuation profile, Burrows' Delta on
function words — z-scored over slices of all three texts, so both systems share one reference — MATTR,
paragraph length) and combined into :func:`~xiaoshuo.eval.metrics.style_distance` (0 = written alike).
**Per-字 perplexity** of the author's continuations under each system comes from the engine's prompt
log-probs (:meth:`xiaoshuo.engine.Engine.score`) after the last :data:`SCORE_CONTEXT` 字 of the prefix:
``exp(−Σ log p(tokens) / Σ 字)``, comparable across tokenizers.  (vLLM reads no prefix cache for a
prompt-log-prob request, so the whole scored prompt is prefilled again; the shorter context keeps that
cheap.)  The gain is base − adapter (positive: the adapter is closer to the author / less surprised).

:func:`run_style_eval` is the one entry point (the CLI, ``train --eval-style`` and the 训练 page call it);
:func:`record_in_manifest` stores a summary in a trained adapter's manifest.  This module generates through
an engine it is given; it does not load models or write into novels.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.eval.metrics import (
    FUNCTION_WORDS,
    WEIGHTS,
    DeltaReference,
    function_word_freqs,
    profile,
    slices,
    style_components,
    style_distance,
)
from xiaoshuo.eval.report import SCHEMA_VERSION
from xiaoshuo.writing.textstats import count_chars, index_of_char_count, sentence_ends

PREFIX_CHARS = 800  # 字 of context before each passage's cut
SCORE_CONTEXT = 300  # 字 of that context the perplexity is conditioned on (a shorter prompt: cheaper)
MIN_TEXT_CHARS = 40  # shorter held-out texts are skipped
WORKERS = 16  # requests in flight at once (vLLM batches them)
EXAMPLES = 3  # passages shown in full in the report


class StyleEvalError(XiaoshuoError):
    """The style eval has no held-out text to work on, or bad parameters."""


@dataclass(frozen=True)
class Passage:
    """A prefix and the author's real continuation of it."""

    source: str  # where it comes from: "val/x.jsonl #3" or "第3章"
    prefix: str
    reference: str

    @property
    def chars(self) -> int:
        return count_chars(self.reference)


# ----------------------------------------------------------------------------- passages
def _cut_near(text: str, index: int, slack: int = 80) -> int:
    """A sentence end within ``slack`` characters of ``index`` (the nearest), else ``index``."""
    best = min(sentence_ends(text[: index + slack]), key=lambda e: abs(e - index), default=index)
    return best if abs(best - index) <= slack and 0 < best < len(text) else index


def passages_from_texts(
    texts: Sequence[tuple[str, str]],
    *,
    samples: int = 20,
    chars: int = 600,
    seed: int = 0,
    prefix_chars: int = PREFIX_CHARS,
) -> list[Passage]:
    """Up to ``samples`` passages from ``(label, text)`` pairs, chosen with ``seed``.

    A text of at least ``2 × chars`` 字 gives a cut after every ``chars`` 字 (the last one leaving ``chars``
    字 to continue); a shorter one (≥ :data:`MIN_TEXT_CHARS`) gives one cut at its middle, its second half
    the reference.  Cuts move to the nearest sentence end within 80 characters.  The chosen passages keep
    the texts' order.
    """
    if samples < 1 or chars < 10:
        raise StyleEvalError(
            "评估参数超出范围 (style eval size out of range)",
            expected="--samples >= 1, --chars >= 10",
            received={"samples": samples, "chars": chars},
        )
    candidates: list[tuple[int, int, int]] = []  # (text index, cut in 字, reference 字)
    for t, (_, text) in enumerate(texts):
        n = count_chars(text)
        if n < MIN_TEXT_CHARS:
            continue
        if n >= 2 * chars:
            candidates.extend((t, cut, chars) for cut in range(chars, n - chars + 1, chars))
        else:
            candidates.append((t, n - n // 2, n // 2))
    rng = random.Random(seed)
    rng.shuffle(candidates)
    out = []
    for t, cut, ref in sorted(candidates[:samples]):
        label, text = texts[t]
        at = _cut_near(text, index_of_char_count(text, cut))
        prefix = text[:at]
        prefix = prefix[index_of_char_count(prefix, max(0, count_chars(prefix) - prefix_chars)) :].lstrip()
        rest = text[at:].lstrip()
        reference = rest[: index_of_char_count(rest, ref)].rstrip()
        if prefix.strip() and reference:
            out.append(Passage(f"{label} @{cut}", prefix, reference))
    return out


def held_out_texts(data: str | Path) -> list[tuple[str, str]]:
    """``prepare``'s val split as ``(label, text)``: ``{"text"}`` samples, and the assistant turn of
    ``{"messages"}`` samples (the author's own words)."""
    from xiaoshuo.training.data import find_data, read_samples

    files = find_data(Path(data))
    if not files.val:
        raise StyleEvalError(
            "没有验证集 (no val split): 风格评估要用模型没见过的文字",
            expected=f"non-empty *.jsonl in {Path(data) / 'val'}",
            received=str(data),
            fix="用 data.val_split > 0 重新运行 xiaoshuo prepare，或改用 --novel SLUG",
        )
    out = []
    for path in files.val:
        for i, sample in enumerate(read_samples([path])):
            if "text" in sample:
                text = sample["text"]
            else:
                text = next(
                    (m["content"] for m in reversed(sample["messages"]) if m["role"] == "assistant"), ""
                )
            out.append((f"{path.parent.name}/{path.name} #{i + 1}", text))
    return out


def novel_texts(novel: Any) -> list[tuple[str, str]]:
    """A novel's written chapters as ``(第N章, text)``."""
    texts = [(f"第{n}章", novel.text(n)) for n in novel.written_chapters()]
    if not texts:
        raise StyleEvalError(
            f"还没有写好的章节 (no written chapters): {novel.slug}",
            fix="先写/导入章节，或改用 --data 指向 prepare 的输出",
        )
    return texts


# ----------------------------------------------------------------------------- running
def _fit(text: str, n: int) -> str:
    """``text`` cut to ``n`` 字."""
    return text[: index_of_char_count(text, n)].rstrip()


def _generate(engine: Any, passages: list[Passage], lora: str | None, sampling: Any, seed: int) -> list[str]:
    """Each passage continued by ``lora`` (None: the base), seed ``seed + i``, cut to the reference's 字."""
    import dataclasses

    from xiaoshuo.engine import GenerationRequest

    def one(i: int) -> str:
        p = passages[i]
        budget = max(16, int(engine.count_tokens(p.reference) * 1.5) + 16)
        s = dataclasses.replace(sampling, max_tokens=budget, seed=seed + i, n=1)
        return _fit(engine.generate(GenerationRequest(prompt=p.prefix, sampling=s, lora=lora)).text, p.chars)

    with ThreadPoolExecutor(max_workers=min(WORKERS, max(1, len(passages)))) as pool:
        return list(pool.map(one, range(len(passages))))


def _scores(engine: Any, passages: list[Passage], lora: str | None) -> list[float] | None:
    """Each reference's total log-prob after its prefix; None when the engine cannot score."""
    from xiaoshuo.engine import EngineError

    def one(p: Passage) -> float:
        context = p.prefix[index_of_char_count(p.prefix, max(0, count_chars(p.prefix) - SCORE_CONTEXT)) :]
        return engine.score(context, p.reference, lora=lora).logprob

    try:
        with ThreadPoolExecutor(max_workers=min(WORKERS, max(1, len(passages)))) as pool:
            return list(pool.map(one, passages))
    except EngineError as exc:
        if "cannot score" in exc.message:
            return None
        raise


def perplexity_per_char(logprobs: Sequence[float], chars: int) -> float | None:
    """``exp(−Σ logprob / 字)``: the per-字 perplexity (tokenizer-independent)."""
    if not chars:
        return None
    return math.exp(min(700.0, -sum(logprobs) / chars))


def _features(text: str) -> dict[str, Any]:
    p = profile(text)
    return {
        **p.summary(),
        "punctuation": {k: round(v, 3) for k, v in p.punctuation.items()},
        "function_words": {w: round(f, 2) for w, f in zip(FUNCTION_WORDS, p.function_words, strict=True)},
    }


def _system(
    author: str, texts: list[str], passages: list[Passage], ref: DeltaReference, logprobs: list[float] | None
) -> dict[str, Any]:
    pooled = "\n".join(texts)
    components = style_components(pooled, author, reference=ref)
    per = [style_distance(t, p.reference, reference=ref) for t, p in zip(texts, passages, strict=True)]
    return {
        "style_distance": round(
            sum(WEIGHTS[k] * v for k, v in components.items()) / sum(WEIGHTS.values()), 4
        ),
        "components": {k: round(v, 4) for k, v in components.items()},
        "features": _features(pooled),
        "passage_distance_mean": round(sum(per) / len(per), 4) if per else None,
        "perplexity": (
            None
            if logprobs is None
            else round(perplexity_per_char(logprobs, sum(p.chars for p in passages)) or 0.0, 4)
        ),
        "_per": per,
        "_ppl": (
            None
            if logprobs is None
            else [perplexity_per_char([lp], p.chars) for lp, p in zip(logprobs, passages, strict=True)]
        ),
    }


def run_style_eval(
    engine: Any,
    *,
    data: str | Path | None = None,
    novel: Any = None,
    adapter: str | None = None,
    samples: int = 20,
    chars: int = 600,
    seed: int = 0,
    sampling: Any = None,
    model: str = "",
    judge: Any = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure how like the author the base model and ``adapter`` write; return the JSON report.

    ``engine``: a loaded :class:`xiaoshuo.engine.Engine` that serves the base and ``adapter`` (a
    registered name or an adapter folder; None measures the base alone).  The held-out text is ``data``
    (a ``prepare`` output folder: its val split) or ``novel`` (a :class:`xiaoshuo.writing.Novel`: its
    written chapters).  ``samples`` passages of ``chars`` 字, chosen with ``seed``; ``sampling`` (a
    :class:`~xiaoshuo.engine.SamplingSettings`, default temperature 0.8, top-p 0.95) is used by both
    systems, each passage with seed ``seed + i``.  ``model`` names the base in the report; ``judge`` (a
    :class:`xiaoshuo.eval.judge.Judge`) adds rubric scores and pairwise verdicts.  ``progress`` gets a
    line per stage.  The report's stable keys: ``base.style_distance``, ``adapter.style_distance``,
    ``base.perplexity``, ``adapter.perplexity``, ``gain.style_distance``, ``gain.perplexity``.
    """
    from xiaoshuo.engine import SamplingSettings

    say = progress or (lambda _msg: None)
    if (data is None) == (novel is None):
        raise StyleEvalError(
            "请指定一个留出文本来源 (give exactly one source of held-out text)",
            expected="--data PREPARED_DIR or --novel SLUG",
            received={"data": str(data) if data else None, "novel": getattr(novel, "slug", None)},
        )
    texts = held_out_texts(data) if data is not None else novel_texts(novel)
    passages = passages_from_texts(texts, samples=samples, chars=chars, seed=seed)
    if not passages:
        raise StyleEvalError(
            "留出文本太短，取不出段落 (held-out text too short for any passage)",
            expected=f"texts of at least {MIN_TEXT_CHARS} 字",
            received=f"{len(texts)} texts",
        )
    sampling = sampling or SamplingSettings(temperature=0.8, top_p=0.95, top_k=50, repetition_penalty=1.05)
    systems = [("base", None)] + ([("adapter", adapter)] if adapter else [])
    started = time.perf_counter()
    outputs: dict[str, list[str]] = {}
    for name, lora in systems:
        say(f"{name}: 续写 {len(passages)} 段 continuing {len(passages)} passages")
        outputs[name] = _generate(engine, passages, lora, sampling, seed)
    generate_s = time.perf_counter() - started
    t1 = time.perf_counter()
    logprobs: dict[str, list[float] | None] = {}
    for name, lora in systems:
        say(f"{name}: 困惑度 scoring the author's text")
        logprobs[name] = _scores(engine, passages, lora)
    score_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    author = "\n".join(p.reference for p in passages)
    ref = DeltaReference.of(
        function_word_freqs(s)
        for t in [author, *("\n".join(o) for o in outputs.values())]
        for s in slices(t, 600)
    )
    result: dict[str, Any] = {
        name: _system(author, outputs[name], passages, ref, logprobs[name]) for name, _ in systems
    }
    warnings = []
    if logprobs["base"] is None:
        warnings.append(
            f"{engine.backend} 后端不能计算困惑度 (this backend cannot score text): perplexity left out"
        )
    if not adapter:
        warnings.append("没有适配器，只评估了基础模型 (no adapter: only the base model was measured)")
    gain = None
    if adapter:
        b, a = result["base"], result["adapter"]
        gain = {
            "style_distance": round(b["style_distance"] - a["style_distance"], 4),
            "style_distance_relative": (
                round((b["style_distance"] - a["style_distance"]) / b["style_distance"], 4)
                if b["style_distance"]
                else 0.0
            ),
            "perplexity": (None if a["perplexity"] is None else round(b["perplexity"] - a["perplexity"], 4)),
            "perplexity_ratio": (
                round(a["perplexity"] / b["perplexity"], 4) if a["perplexity"] and b["perplexity"] else None
            ),
            "components": {k: round(b["components"][k] - a["components"][k], 4) for k in b["components"]},
        }
    rows = []
    for i, p in enumerate(passages):
        row: dict[str, Any] = {"index": i + 1, "source": p.source, "prefix_chars": count_chars(p.prefix)}
        row["chars"] = p.chars
        for name, _ in systems:
            row[f"{name}_distance"] = round(result[name]["_per"][i], 4)
            ppl = result[name]["_ppl"]
            row[f"{name}_perplexity"] = None if ppl is None else round(ppl[i], 4)
        rows.append(row)
    examples = [
        {
            "source": p.source,
            "prefix_tail": p.prefix[-200:],
            "author": p.reference,
            **{name: outputs[name][i] for name, _ in systems},
        }
        for i, p in enumerate(passages[:EXAMPLES])
    ]
    for r in result.values():
        r.pop("_per")
        r.pop("_ppl")
    measure_s = time.perf_counter() - t2
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "style",
        "created": time.time(),
        "source": {"data": str(Path(data).resolve())} if data is not None else {"novel": novel.slug},
        "novel": getattr(novel, "slug", None),
        "model": model,
        "backend": getattr(engine, "backend", "?"),
        "adapter_name": adapter,
        "samples": len(passages),
        "chars": chars,
        "seed": seed,
        "sampling": {
            k: getattr(sampling, k) for k in ("temperature", "top_p", "top_k", "repetition_penalty")
        },
        "weights": dict(WEIGHTS),
        "author": {"features": _features(author)},
        "base": result["base"],
        "adapter": result.get("adapter"),
        "gain": gain,
        "passages": rows,
        "examples": examples,
        "judge": None,
        "seconds": {
            "generate": round(generate_s, 3),
            "score": round(score_s, 3),
            "measure": round(measure_s, 3),
        },
        "warnings": warnings,
    }
    if judge is not None:
        say(f"评委 judge: {judge.model}")
        t3 = time.perf_counter()
        report["judge"] = judge.evaluate(passages, outputs)
        report["seconds"]["judge"] = round(time.perf_counter() - t3, 3)
    return report


def style_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers of a style report that an adapter's manifest keeps (``style_eval``)."""
    base, adapter, gain = report["base"], report.get("adapter") or {}, report.get("gain") or {}
    return {
        "created": report["created"],
        "source": report["source"],
        "samples": report["samples"],
        "chars": report["chars"],
        "seed": report["seed"],
        "base_style_distance": base["style_distance"],
        "adapter_style_distance": adapter.get("style_distance"),
        "style_gain": gain.get("style_distance"),
        "base_perplexity": base["perplexity"],
        "adapter_perplexity": adapter.get("perplexity"),
        "perplexity_gain": gain.get("perplexity"),
    }


def record_in_manifest(adapter_folder: str | Path, report: dict[str, Any]) -> dict[str, Any]:
    """Store :func:`style_summary` as ``style_eval`` in the adapter's ``xiaoshuo_manifest.json``
    (atomic; the rest of the manifest kept).  Returns the summary."""
    import json

    from xiaoshuo.adapters import MANIFEST
    from xiaoshuo.files import atomic_write_json

    path = Path(adapter_folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        manifest = {}
    except (OSError, ValueError) as exc:
        raise StyleEvalError(
            f"适配器清单无法读取 (adapter manifest unreadable): {path}", received=str(exc)[:200]
        ) from None
    summary = style_summary(report)
    atomic_write_json(path, {**manifest, "style_eval": summary})
    return summary


def evaluate_trained_adapter(
    settings: Any,
    adapter_folder: str | Path,
    data: str | Path,
    *,
    backend: str | None = None,
    samples: int = 20,
    chars: int = 600,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``train --eval-style``: load an engine with the adapter (LoRA mode: one engine serves both systems),
    run :func:`run_style_eval` on ``data``'s val split, store the summary in the adapter's manifest, and
    return the report."""
    from xiaoshuo.adapters import run_name
    from xiaoshuo.engine import load_engine

    folder = Path(adapter_folder)
    name = run_name(folder)
    cfg = settings.model_copy(
        update={"engine": settings.engine.model_copy(update={"merge_adapter": "never"})}
    )
    with load_engine(cfg, backend=backend, lora={name: str(folder)}) as engine:
        report = run_style_eval(
            engine,
            data=data,
            adapter=name,
            samples=samples,
            chars=chars,
            seed=seed,
            model=settings.model.base_model,
            progress=progress,
        )
    record_in_manifest(folder, report)
    return report
