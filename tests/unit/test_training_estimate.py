"""``xiaoshuo.training.estimate``: how much text an adapter needs and how long training takes, before a run.

Numbers with known answers: the needs follow the chunk size, batch, accumulation and epochs; the parameter
count comes from the weights on disk, the catalogue or the name; a rate measured in an earlier run of the
same model wins over the hardware's rough one; the text is counted exactly once ``prepare`` ran.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from xiaoshuo.config import load
from xiaoshuo.training import estimate as e

H200 = ({"index": 0, "name": "NVIDIA H200", "total_gib": 139.8, "free_gib": 139.0},)


def _settings(tmp_path: Path, **overrides):
    return load(
        None,
        overrides={
            "paths.data_dir": str(tmp_path / "data"),
            "paths.checkpoints_dir": str(tmp_path / "checkpoints"),
            "paths.logs_dir": str(tmp_path / "logs"),
            "paths.models_dir": str(tmp_path / "models"),
            "memory.embedding_model": "none",
            **overrides,
        },
        env={},
    )


def test_needs_follow_chunk_size_batch_accumulation_and_epochs() -> None:
    needs = e.data_needs(chunk_tokens=2048, batch_size=2, grad_accum=8, epochs=3, val_split=0.1)
    # 20 steps × 16 samples over 3 epochs = 107 samples of 2,048 tokens at 1.4 字 each, 10 % kept back
    assert needs.min_chars == int(107 * 2048 * 1.4 / 0.9) == 340_878
    assert needs.good_chars == int(534 * 2048 * 1.4 / 0.9)  # 100 steps
    half = e.data_needs(chunk_tokens=2048, batch_size=2, grad_accum=4, epochs=3, val_split=0.1)
    assert half.min_chars == pytest.approx(needs.min_chars / 2, rel=0.01)
    more_epochs = e.data_needs(chunk_tokens=2048, batch_size=2, grad_accum=8, epochs=6, val_split=0.1)
    assert more_epochs.min_chars < needs.min_chars
    assert e.data_needs(chunk_tokens=512, batch_size=2, grad_accum=8, epochs=3).min_chars < needs.min_chars


def test_model_size_from_disk_catalogue_or_name(tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"torch_dtype": "float32"}))
    (folder / "model.safetensors").write_bytes(b"\0" * 4000)  # not a real header: by size
    assert e.model_params(str(folder)) == 1000  # 4 bytes a parameter
    assert e.model_params("Qwen/Qwen2.5-7B-Instruct") == pytest.approx(8.2e9, rel=0.01)  # 15.2 GiB of bf16
    assert e.model_params("Qwen/Qwen2.5-0.5B-Instruct") == 500_000_000
    assert e.model_params("someone/story-270M") == 270_000_000
    assert e.model_params("someone/writer") is None
    pulled = tmp_path / "models" / "someone" / "writer"  # `xiaoshuo model pull` put it here
    pulled.mkdir(parents=True)
    (pulled / "config.json").write_text("{}")
    (pulled / "model.safetensors").write_bytes(b"\0" * 2000)
    assert e.model_params("someone/writer", tmp_path / "models") == 1000  # bf16 by default
    from safetensors import safe_open

    with safe_open(str(next(tiny_model.glob("*.safetensors"))), "np") as fh:  # every tensor, loaded
        exact = sum(fh.get_tensor(k).size for k in fh.keys())  # noqa: SIM118 - safe_open has no __iter__
    assert e.model_params(str(tiny_model)) == exact  # from the header alone


def _log(logs: Path, run: str, base: str, rates: list[float], mtime: float) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    lines = [{"event": "start", "run": run, "config": {"model": {"base_model": base}}}]
    lines += [{"event": "log", "step": i + 1, "tokens_per_s": r} for i, r in enumerate(rates)]
    path = logs / f"train-{run}.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"event": "lo', "utf-8")  # a torn line
    os.utime(path, (mtime, mtime))


def test_the_rate_measured_in_an_earlier_run_of_the_same_model_is_used(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    assert e.measured_rate(logs, "Qwen/Qwen2.5-1.5B-Instruct") is None
    now = time.time()
    _log(logs, "old", "/models/Qwen/Qwen2.5-1.5B-Instruct", [50.0, 120.0], now - 100)
    _log(logs, "other", "Qwen/Qwen2.5-7B-Instruct", [30.0], now)  # newest, but another model
    _log(logs, "nolog", "Qwen/Qwen2.5-1.5B-Instruct", [], now - 10)  # started, never logged a step
    # the hub id and the folder `model pull` put it in are one model; the last logged rate counts
    assert e.measured_rate(logs, "Qwen/Qwen2.5-1.5B-Instruct") == (120.0, "old")
    _log(logs, "new", "Qwen/Qwen2.5-1.5B-Instruct", [200.0], now - 5)
    assert e.measured_rate(logs, "Qwen/Qwen2.5-1.5B-Instruct") == (200.0, "new")


def test_hardware_rate_from_the_gpu_or_the_cpu() -> None:
    gpu, cpu = e.this_device(H200), e.this_device((), cores=16)
    assert (gpu.kind, gpu.gib, cpu.kind, cpu.cores) == ("gpu", 139.8, "cpu", 16)
    params = 1_500_000_000
    cpu_rate = e.hardware_rate(params, cpu)
    assert cpu_rate == pytest.approx(16 * e.CPU_GFLOPS_PER_CORE * 1e9 / (6 * params))  # ~18 tokens/s
    assert e.hardware_rate(params, gpu) == pytest.approx(989e12 * e.GPU_UTILISATION / (6 * params))
    assert e.hardware_rate(2 * params, cpu) == pytest.approx(cpu_rate / 2)
    assert e.hardware_rate(params, cpu, checkpointing=False) == pytest.approx(cpu_rate * 1.5)
    odd = e.this_device(({"name": "Some Card", "total_gib": 24},))
    assert e.hardware_rate(params, odd) == pytest.approx(e.GPU_TFLOPS_UNKNOWN * 1e12 * 0.3 / (6 * params))


def test_estimate_guesses_from_uploads_then_counts_the_prepared_text(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    form = {"epochs": 3.0, "batch_size": 2, "grad_accum": 8, "max_seq_length": 2048}
    model = "Qwen/Qwen2.5-1.5B-Instruct"
    empty = e.estimate(settings, base_model=model, gpus=(), cores=16, **form)
    assert (empty.amount.chars, empty.steps, empty.seconds, empty.enough) == (0, 0, None, "none")
    raw = settings.paths.raw_dir
    raw.mkdir(parents=True)
    (raw / "book.txt").write_text("雨" * 300_000, "utf-8")  # 900,000 bytes of UTF-8
    guessed = e.estimate(settings, base_model=model, gpus=(), cores=16, **form)
    assert guessed.amount.exact is False and guessed.amount.chars == 300_000 and guessed.enough == "little"
    assert guessed.source == "hardware"
    assert guessed.seconds == pytest.approx(e.STARTUP_SECONDS + guessed.tokens_trained / guessed.rate)
    # prepare counted it (after the upload): exact numbers, its own 字-per-token ratio
    prepared = settings.paths.data_dir / "prepared"
    prepared.mkdir(parents=True)
    totals = {"characters": 2_000_000, "tokens": 1_000_000, "train_tokens": 900_000, "train_samples": 450}
    (prepared / "manifest.json").write_text(json.dumps({"totals": {**totals, "files_ok": 1}}))
    exact = e.estimate(settings, base_model=model, gpus=(), cores=16, **form)
    assert exact.amount.exact and exact.amount.chars == 1_800_000 and exact.amount.tokens == 900_000
    assert exact.needs.chars_per_token == pytest.approx(2.0) and exact.enough == "ok"  # 1.8 M < 2.4 M
    assert exact.steps == 3 * 29  # 450 samples / 16 a step, rounded up, 3 epochs
    assert exact.tokens_trained == 3 * 900_000
    on_gpu = e.estimate(settings, base_model=model, gpus=H200, **form)
    assert on_gpu.seconds < exact.seconds / 100
    short = e.estimate(settings, base_model=model, gpus=(), cores=16, **{**form, "epochs": 1.0})
    startup = e.STARTUP_SECONDS
    assert short.seconds - startup == pytest.approx((exact.seconds - startup) / 3)
    capped = e.estimate(settings, base_model=model, gpus=(), cores=16, max_steps=10, **form)
    assert capped.steps == 10 and capped.tokens_trained == 10 * 16 * 2000
    # a newer upload makes the manifest stale: back to the guess
    later = time.time() + 5
    os.utime(raw / "book.txt", (later, later))
    assert e.estimate(settings, base_model=model, gpus=(), cores=16, **form).amount.exact is False
    # an earlier run of this model here measured 400 tokens/s: that rate is used
    _log(settings.paths.logs_dir, "first", model, [400.0], time.time())
    measured = e.estimate(settings, base_model=model, gpus=(), cores=16, **form)
    assert (measured.source, measured.rate, measured.measured_run) == ("measured", 400.0, "first")
    unknown = e.estimate(settings, base_model="someone/writer", gpus=(), cores=16, **form)
    assert (unknown.source, unknown.seconds) == ("unknown", None)
