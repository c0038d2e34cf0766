"""Bench: which training format writes chapters most like the author — continuation, compose or both.

For each format, ``prepare`` the same corpus (the same held-out books: val is chosen by document, in the
seed) and train a LoRA adapter for the same number of steps.  Then, on the held-out chapters:

* **held-out loss** of each adapter (and the base model) on the answers of the val compose samples (the
  chapter text given the prompt the writer sends) and on the val continuation text — perplexity = e^loss;
* **writing through compose()**: every held-out chapter's first segment is generated from its compose
  prompt (the prompt ``compose()`` builds for it: :mod:`xiaoshuo.writing.compose_samples`), greedy, as long
  as the real segment, by the base model and by each adapter; each text is scored against the author's real
  segment with :func:`xiaoshuo.eval.metrics.style_distance` (lower = closer in style; 0 = identical).
  ``xiaoshuo.eval.style`` (``xiaoshuo eval style``) is used instead when it is installed.

Default: the tiny random test model and the built-in sample corpus, on the CPU (minutes; the numbers
only show the bench runs — a random tiny model has no style to learn).  On your own model and novels::

    python bench/bench_style_formats.py --model ./models/Qwen2.5-7B-Instruct --corpus data/raw \\
        --steps 300 --chunk-size 2048 --backend vllm

One JSON line; also bench/results/style_formats.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import report

FORMATS = ("continuation", "compose", "both")


def _settings(work: Path, model: str, fmt: str, args, folder: str | None = None) -> object:
    from xiaoshuo import config

    folder = folder or fmt
    return config.load(env={}, cwd=work, overrides={
        "model.base_model": model,
        "model.load_in_4bit": False,
        "model.dtype": "float32" if args.backend == "transformers" else "auto",
        "model.lora_r": 8,
        "model.lora_alpha": 16,
        "engine.cpu_kv_cache_gib": 1,
        "memory.embedding_model": "none",
        "training.per_device_train_batch_size": 2,
        "training.gradient_accumulation_steps": 1,
        "training.learning_rate": args.lr,
        "training.gradient_checkpointing": False,
        "training.max_seq_length": args.chunk_size,
        "training.eval_steps": max(1, args.steps),
        "training.save_steps": max(1, args.steps),
        "training.logging_steps": max(1, args.steps // 4),
        "paths.data_dir": str(work / folder / "data"),
        "paths.models_dir": str(work / "models"),
        "paths.checkpoints_dir": str(work / folder / "checkpoints"),
        "paths.logs_dir": str(work / folder / "logs"),
        "data.tokenizer": model,
        "data.chunk_size": args.chunk_size,
        "data.val_split": args.val_split,
        "data.sample_format": fmt,
        "data.compose_share": args.share,
    })  # fmt: skip


def _prepare_and_train(work: Path, model: str, corpus: Path, fmt: str, args) -> dict:
    from xiaoshuo.data import prepare
    from xiaoshuo.training import plan, train
    from xiaoshuo.writing.compose_samples import ComposeSamples

    settings = _settings(work, model, fmt, args)
    final = work / fmt / "checkpoints" / fmt / "final_model"
    if args.reuse and final.is_dir():  # a finished run in --work: measure it again without retraining
        manifest = json.loads((work / fmt / "data" / "prepared" / "manifest.json").read_text("utf-8"))
        trained = json.loads((final / "xiaoshuo_manifest.json").read_text("utf-8"))
        return {
            "train_samples": {k: v["samples"] for k, v in manifest["outputs"]["train"].items()},
            "adapter": str(final),
            "trainer_eval_loss": trained.get("eval_loss"),
            "reused": True,
        }
    t0 = time.perf_counter()
    manifest = prepare(
        settings, input_dir=corpus, compose=ComposeSamples(settings) if fmt != "continuation" else None
    )
    t1 = time.perf_counter()
    result = train(plan(settings, run=fmt, max_steps=args.steps), progress=False)
    return {
        "train_samples": {k: v["samples"] for k, v in manifest["outputs"]["train"].items()},
        "adapter": result["final_model"],
        "trainer_eval_loss": result.get("eval_loss"),
        "prepare_s": round(t1 - t0, 1),
        "train_s": round(time.perf_counter() - t1, 1),
    }


def _held_out(work: Path, model: str, corpus: Path, args) -> tuple[list[dict], list[dict]]:
    """The val compose samples and val continuation samples (the same held-out books for every format)."""
    from xiaoshuo.data import prepare
    from xiaoshuo.writing.compose_samples import ComposeSamples

    settings = _settings(work, model, "both", args, folder="heldout")
    prepare(settings, input_dir=corpus, compose=ComposeSamples(settings))
    val = work / "heldout" / "data" / "val"

    def rows(name: str) -> list[dict]:
        path = val / f"{name}.jsonl"
        return [json.loads(x) for x in path.read_text("utf-8").splitlines()] if path.is_file() else []

    return rows("compose"), rows("continuation")


def _losses(model: str, adapters: dict[str, str], compose_rows, text_rows, max_len: int) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from xiaoshuo.training.data import tokenize

    tok = AutoTokenizer.from_pretrained(model)
    pairs = (("compose", compose_rows), ("continuation", text_rows))
    sets = {name: tokenize(rows, tok, max_len)[0] for name, rows in pairs}

    def mean(m, batch) -> float | None:
        if not batch:
            return None
        with torch.no_grad():
            losses = [
                float(m(input_ids=torch.tensor([r["input_ids"]]), labels=torch.tensor([r["labels"]])).loss)
                for r in batch
            ]
        return round(statistics.fmean(losses), 4)

    out = {}
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    out["base"] = {name: mean(base, b) for name, b in sets.items()}
    for fmt, path in adapters.items():
        tuned = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32), path
        )
        out[fmt] = {name: mean(tuned.eval(), b) for name, b in sets.items()}
    for row in out.values():
        row.update({f"ppl_{k}": round(math.exp(v), 2) for k, v in list(row.items()) if v is not None})
    return out


SCORERS: set[str] = set()  # which scorer measured the texts (reported)


def _style(generated: str, real: str) -> float:
    try:  # the eval issue's style eval, when installed (its API is assumed: distance(text, reference))
        from xiaoshuo.eval import style as style_eval  # type: ignore[attr-defined]

        value = float(style_eval.distance(generated, real))
        SCORERS.add("xiaoshuo.eval.style.distance")
        return value
    except (ImportError, AttributeError, TypeError):
        from xiaoshuo.eval.metrics import style_distance

        SCORERS.add("xiaoshuo.eval.metrics.style_distance")
        return style_distance(generated, real)


def _write(work: Path, model: str, adapters: dict[str, str], compose_rows, args) -> dict:
    """Each held-out chapter's first segment, written from its compose() prompt, vs the real segment."""
    from xiaoshuo.engine import GenerationRequest, SamplingSettings, load_engine

    firsts = [r for r in compose_rows if "【前文】" not in r["messages"][-2]["content"]][: args.chapters]
    settings = _settings(work, model, "continuation", args, folder="write")
    scores: dict[str, list[float]] = {"base": [], **{f: [] for f in adapters}}
    samples: dict[str, str] = {}
    with load_engine(settings, backend=args.backend, lora=adapters) as engine:
        for row in firsts:
            real = row["messages"][-1]["content"]
            tokens = min(args.max_tokens, engine.count_tokens(real) + 8)
            sampling = SamplingSettings(temperature=0.0, max_tokens=tokens, repetition_penalty=1.05)
            for name in scores:
                req = GenerationRequest(messages=row["messages"][:-1], sampling=sampling,
                                        lora=None if name == "base" else name)  # fmt: skip
                text = engine.generate(req, timeout=600).text
                samples.setdefault(name, text[:80])
                scores[name].append(_style(text, real) if text.strip() else 1.0)
    return {
        "chapters": len(firsts),
        "style_distance": {k: round(statistics.fmean(v), 4) if v else None for k, v in scores.items()},
        "style_scorer": sorted(SCORERS),
        "first_text": samples,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="base model folder or hub id (default: the tiny test model)")
    ap.add_argument("--corpus", help="folder of novels (default: the built-in sample corpus)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--val-split", type=float, default=0.3)
    ap.add_argument("--share", type=float, default=0.5, help="data.compose_share for 'both'")
    ap.add_argument("--chapters", type=int, default=6, help="held-out chapters written per model")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--backend", default="transformers")
    ap.add_argument("--work", help="keep the work folder here (default: a temp folder)")
    ap.add_argument("--formats", default=",".join(FORMATS), help="a comma-separated subset of FORMATS")
    ap.add_argument("--reuse", action="store_true", help="reuse adapters already trained in --work")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="xs-style-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.model:
            model = args.model
        else:
            from xiaoshuo.testing import build_tiny_model

            model = str(build_tiny_model(work / "models" / "tiny"))
        if args.corpus:
            corpus = Path(args.corpus)
        else:
            from xiaoshuo.data import write_sample_corpus

            corpus = work / "raw"
            write_sample_corpus(corpus)
        t0 = time.perf_counter()
        formats = [f for f in args.formats.split(",") if f in FORMATS]
        runs = {fmt: _prepare_and_train(work, model, corpus, fmt, args) for fmt in formats}
        adapters = {fmt: r.pop("adapter") for fmt, r in runs.items()}
        compose_rows, text_rows = _held_out(work, model, corpus, args)
        losses = _losses(model, adapters, compose_rows, text_rows, args.chunk_size)
        writing = _write(work, model, adapters, compose_rows, args)
        scored = {k: v for k, v in writing["style_distance"].items() if k != "base" and v is not None}
        result = {
            "bench": "style_formats",
            "model": "tiny test model" if not args.model else model,
            "corpus": "sample corpus" if not args.corpus else str(corpus),
            "steps": args.steps,
            "compose_share": args.share,
            "held_out": {"compose_samples": len(compose_rows), "continuation_samples": len(text_rows)},
            "runs": runs,
            "held_out_loss": losses,
            "writing": writing,
            "closest_style": min(scored, key=scored.get) if scored else None,
            "lowest_compose_loss": min(
                (k for k in losses if k != "base" and losses[k].get("compose") is not None),
                key=lambda k: losses[k]["compose"],
                default=None,
            ),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        report("style_formats", result)


if __name__ == "__main__":
    sys.exit(main())
