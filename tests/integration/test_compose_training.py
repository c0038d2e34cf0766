"""Training on compose samples (issue 25) on the tiny real model; the adapter then writes in the writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.data import prepare, write_sample_corpus
from xiaoshuo.engine import SamplingSettings, load_engine
from xiaoshuo.testing import tiny_engine_settings
from xiaoshuo.training import plan, train
from xiaoshuo.writing import Novels, run_sync
from xiaoshuo.writing.compose_samples import ComposeSamples
from xiaoshuo.writing.generate import Writer


@pytest.mark.slow
def test_training_on_compose_samples_and_the_adapter_writes_in_the_writer(
    tmp_path: Path, tiny_model: Path
) -> None:
    settings = config.load(env={}, cwd=tmp_path, overrides={
        "model.base_model": str(tiny_model), "model.load_in_4bit": False, "model.lora_r": 8,
        "model.lora_alpha": 16, "training.per_device_train_batch_size": 2,
        "training.gradient_accumulation_steps": 1, "training.learning_rate": 5e-3,
        "training.gradient_checkpointing": False, "training.logging_steps": 1,
        "training.max_seq_length": 1024,
        "paths.data_dir": str(tmp_path / "data"), "paths.checkpoints_dir": str(tmp_path / "checkpoints"),
        "paths.logs_dir": str(tmp_path / "logs"), "memory.embedding_model": "none",
        "data.tokenizer": str(tiny_model), "data.chunk_size": 1024, "data.val_split": 0.2,
        "data.sample_format": "compose",
    })  # fmt: skip
    write_sample_corpus(settings.paths.raw_dir)
    manifest = prepare(settings, compose=ComposeSamples(settings))
    assert manifest["outputs"]["train"]["compose"]["samples"] >= 8
    result = train(plan(settings, run="compose", max_steps=4), progress=False)
    assert result["status"] == "done" and result["global_step"] == 4
    assert result["eval_loss"] is not None  # the held-out compose samples were evaluated
    final = str(result["final_model"])

    engine_settings = tiny_engine_settings(tiny_model, tmp_path)
    greedy = SamplingSettings(temperature=0.0, max_tokens=64, repetition_penalty=1.0)
    novels = Novels.from_settings(engine_settings)
    texts = {}
    with load_engine(engine_settings, backend="transformers", lora={"compose": final}) as engine:
        for name, adapter in (("base", ""), ("tuned", "compose")):
            novel = novels.create(name, title="青云剑", genre="武侠", chapter_chars=60)
            writer = Writer(engine_settings, engine, novel, memory_on=False, sampling=greedy, adapter=adapter)
            assert writer.lora() == (adapter or None)
            done = run_sync(writer.write_chapter(1, target_chars=60, seed=1))
            texts[name] = done.candidates[0].text
    assert texts["tuned"].strip() and texts["tuned"] != texts["base"]  # the adapter was applied
