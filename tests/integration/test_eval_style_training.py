"""A real style check that can fail: a tiny model trained a few dozen steps writes more like its author
than its base (smaller style distance, lower held-out perplexity); a zero adapter shows no gain."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.data import prepare
from xiaoshuo.data.sample import URBAN, WUXIA, XIANXIA_SIMPLIFIED
from xiaoshuo.engine import load_engine
from xiaoshuo.eval.style import run_style_eval
from xiaoshuo.training import plan, train

pytestmark = pytest.mark.slow


def _zero_lora(model: Path, out: Path) -> Path:
    """A peft adapter whose B matrices are zero (peft's own initialisation): it changes nothing."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    get_peft_model(base, cfg).save_pretrained(out)
    return out


def test_trained_adapter_writes_more_like_the_author_and_a_zero_adapter_gains_nothing(
    tiny_model: Path, tmp_path: Path
) -> None:
    work = tmp_path
    settings = config.load(
        env={},
        cwd=work,
        overrides={
            "model.base_model": str(tiny_model),
            "model.dtype": "float32",
            "model.load_in_4bit": False,
            "model.lora_r": 8,
            "model.lora_alpha": 16,
            "training.per_device_train_batch_size": 4,
            "training.gradient_accumulation_steps": 1,
            "training.learning_rate": 5e-3,
            "training.logging_steps": 10,
            "training.eval_steps": 100,
            "training.save_steps": 100,
            "training.gradient_checkpointing": False,
            "paths.data_dir": str(work / "data"),
            "paths.checkpoints_dir": str(work / "checkpoints"),
            "paths.logs_dir": str(work / "logs"),
            "data.tokenizer": str(tiny_model),
            "data.chunk_size": 96,
            "data.val_split": 0.2,
        },
    )
    # one author, five books: the same paragraphs in other orders (val gets whole books)
    paragraphs = [p.strip() for p in (WUXIA + URBAN + XIANXIA_SIMPLIFIED).splitlines() if len(p.strip()) > 12]
    raw = settings.paths.raw_dir
    raw.mkdir(parents=True)
    for i in range(5):
        random.Random(i).shuffle(paragraphs)
        (raw / f"book{i}.txt").write_text("\n".join(paragraphs), "utf-8")
    prepare(settings)
    result = train(plan(settings, run="style", max_steps=40), progress=False)
    trained = Path(result["final_model"])
    zero = _zero_lora(tiny_model, work / "zero")
    with load_engine(
        settings, backend="transformers", lora={"style": str(trained), "zero": str(zero)}
    ) as engine:
        kw = {"data": settings.paths.data_dir, "samples": 8, "chars": 60, "seed": 0}
        style = run_style_eval(engine, adapter="style", **kw)
        nothing = run_style_eval(engine, adapter="zero", **kw)
    base, tuned = style["base"], style["adapter"]
    print(
        "style distance",
        base["style_distance"],
        tuned["style_distance"],
        "ppl",
        base["perplexity"],
        tuned["perplexity"],
    )
    assert tuned["style_distance"] < base["style_distance"] - 0.02, (base, tuned)
    assert tuned["perplexity"] < base["perplexity"] * 0.9, (base["perplexity"], tuned["perplexity"])
    # same seeds: the same base text in both runs, and the zero adapter writes exactly what the base writes
    assert [e["base"] for e in nothing["examples"]] == [e["base"] for e in style["examples"]]
    assert [e["adapter"] for e in nothing["examples"]] == [e["base"] for e in nothing["examples"]]
    assert nothing["gain"]["style_distance"] == 0.0
    assert nothing["adapter"]["perplexity"] == pytest.approx(nothing["base"]["perplexity"], rel=1e-5)
