"""Training on tiny real models: real peft, Trainer and bitsandbytes; no mocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.adapters import list_adapters, merge_adapter
from xiaoshuo.data import prepare, write_sample_corpus
from xiaoshuo.engine import GenerationRequest, SamplingSettings, load_engine
from xiaoshuo.testing import build_tiny_model, tiny_engine_settings
from xiaoshuo.training import TrainDataError, TrainError, plan, train

GREEDY = SamplingSettings(temperature=0.0, max_tokens=16, repetition_penalty=1.0)


def _wait_for(condition, *, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    """Poll until ``condition()``; fail the test when the process dies first or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        tail = log.read_text("utf-8", errors="replace")[-2000:] if log.exists() else ""
        if proc.poll() is not None:
            pytest.fail(f"training exited (rc {proc.returncode}) before {what}:\n{tail}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f} s:\n{tail}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    """Kill a training process group that a failed test left running."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def _settings(work: Path, model: Path, **extra):
    values = {
        "model.base_model": str(model),
        "model.load_in_4bit": False,
        "model.lora_r": 8,
        "model.lora_alpha": 16,
        "training.per_device_train_batch_size": 2,
        "training.gradient_accumulation_steps": 1,
        "training.learning_rate": 5e-3,
        "training.logging_steps": 2,
        "training.eval_steps": 10,
        "training.save_steps": 10,
        "training.gradient_checkpointing": False,
        "paths.data_dir": str(work / "data"),
        "paths.checkpoints_dir": str(work / "checkpoints"),
        "paths.logs_dir": str(work / "logs"),
        "data.tokenizer": str(model),
        "data.chunk_size": 128,
        "data.val_split": 0.2,
    }
    values.update(extra)
    return config.load(env={}, cwd=work, overrides=values)


@pytest.fixture(scope="module")
def prepared(tiny_model: Path, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("train")
    settings = _settings(work, tiny_model, **{"data.sample_format": "both"})
    write_sample_corpus(settings.paths.raw_dir)
    prepare(settings)
    return work


def _events(work: Path, run: str) -> list[dict]:
    return [json.loads(x) for x in (work / "logs" / f"train-{run}.jsonl").read_text("utf-8").splitlines()]


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _train_loss(work: Path, model: Path, adapter: Path, rows: int = 16) -> tuple[float, float]:
    """Mean loss of the first ``rows`` training rows: (base model, base + adapter)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from xiaoshuo.training.data import find_data, read_samples, tokenize

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    samples = read_samples(find_data(work / "data").train)[:rows]
    batch, _ = tokenize(samples, tokenizer, 128)
    assert batch

    def mean_loss(m) -> float:
        with torch.no_grad():
            return sum(
                float(m(input_ids=torch.tensor([r["input_ids"]]), labels=torch.tensor([r["labels"]])).loss)
                for r in batch
            ) / len(batch)

    base = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32).eval()
    before = mean_loss(base)
    tuned = PeftModel.from_pretrained(base, str(adapter)).eval()
    return before, mean_loss(tuned)


@pytest.fixture(scope="module")
def short_run(prepared: Path, tiny_model: Path) -> dict:
    base_before = _weights(tiny_model / "model.safetensors")
    result = train(plan(_settings(prepared, tiny_model), run="short", max_steps=20), progress=False)
    return {**result, "base_before": base_before}


@pytest.mark.slow
def test_short_run_learns_and_only_the_adapter_changes(
    short_run: dict, prepared: Path, tiny_model: Path
) -> None:
    result = short_run
    base_before = result["base_before"]
    assert result["status"] == "done" and result["global_step"] == 20
    final = Path(result["final_model"])
    manifest = json.loads((final / "xiaoshuo_manifest.json").read_text("utf-8"))
    for key in (
        "base_model",
        "data_manifest_sha256",
        "config",
        "global_step",
        "train_loss",
        "eval_loss",
        "seconds",
    ):
        assert key in manifest
    assert (prepared / "checkpoints" / "final_model").resolve() == final.resolve()
    events = _events(prepared, "short")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and "eval" in kinds and "checkpoint" in kinds
    assert events[0]["config"]["training"]["learning_rate"] == 5e-3
    assert [e for e in events if e["event"] == "log"]
    # it learned: the training rows' loss with the adapter is below the base's. (Comparing
    # the first and last logged loss was flaky: each log is 2 steps of 2 random rows.)
    base_loss, tuned_loss = _train_loss(prepared, tiny_model, final)
    assert tuned_loss < base_loss - 0.01, (base_loss, tuned_loss)
    assert all(e["tokens_per_s"] > 0 for e in events if e["event"] == "log")
    # the adapter changed (LoRA B starts at zero), the base did not
    adapter = _weights(final / "adapter_model.safetensors")
    assert any(float(t.abs().max()) > 0 for k, t in adapter.items() if "lora_B" in k)
    base_after = _weights(tiny_model / "model.safetensors")
    assert all((base_before[k] == base_after[k]).all() for k in base_before)
    # the adapter loads in the engine and changes the output
    with load_engine(
        tiny_engine_settings(tiny_model, prepared), backend="transformers", lora={"s": str(final)}
    ) as e:
        base_text = e.generate(GenerationRequest(prompt="林远", sampling=GREEDY)).text
        tuned = e.generate(GenerationRequest(prompt="林远", sampling=GREEDY, lora="s")).text
    assert tuned != base_text
    assert "short" in [a.name for a in list_adapters(prepared / "checkpoints")]


@pytest.mark.slow
def test_trained_adapter_changes_vllm_output(short_run: dict, vllm_lora_engine) -> None:
    """The trained run's folder, sent by path (as the WebUI sends it) to the session's LoRA-mode engine."""
    eng = vllm_lora_engine
    base_text = eng.generate(GenerationRequest(prompt="林远", sampling=GREEDY), timeout=300).text
    final = str(short_run["final_model"])
    tuned = eng.generate(GenerationRequest(prompt="林远", sampling=GREEDY, lora=final), timeout=300).text
    assert tuned and tuned != base_text
    assert eng.adapters.get("short") == str(Path(final).resolve())  # named after its run


@pytest.mark.slow
def test_adapters_cli(short_run: dict, prepared: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "xiaoshuo",
                "--set",
                f"paths.checkpoints_dir={prepared / 'checkpoints'}",
                *args,
            ],
            cwd=prepared,
            capture_output=True,
            text=True,
            timeout=120,
        )

    rows = json.loads(cli("adapters", "list", "--json").stdout)
    assert any(r["name"] == "short" and r["eval_loss"] is not None for r in rows)
    shown = json.loads(cli("adapters", "show", "short").stdout)
    assert shown["global_step"] == 20
    missing = cli("adapters", "show", "nope")
    assert missing.returncode == 2 and "no such adapter" in missing.stderr
    assert cli("adapters", "rm", "short").returncode == 2  # needs --yes


@pytest.mark.slow
def test_qlora_on_cpu_with_eval_mid_training(prepared: Path, tiny_model: Path) -> None:
    settings = _settings(prepared, tiny_model, **{"model.load_in_4bit": True, "training.eval_steps": 3})
    result = train(plan(settings, run="qlora", max_steps=8), progress=False)
    assert result["status"] == "done" and result["global_step"] == 8
    evals = [e for e in _events(prepared, "qlora") if e["event"] == "eval"]
    assert [e["step"] for e in evals][:2] == [3, 6]  # evaluation in the middle did not break training
    assert result["strategy"]["qlora"] is True


def test_bad_inputs_fail_before_any_model_loads(tmp_path: Path, tiny_model: Path, prepared: Path) -> None:
    settings = _settings(tmp_path, tiny_model)
    with pytest.raises(TrainDataError, match="not found"):
        plan(settings)
    (tmp_path / "data" / "train").mkdir(parents=True)
    with pytest.raises(TrainDataError, match="no training samples"):
        plan(settings)
    other_model = build_tiny_model(tmp_path / "other", spec=None)
    with pytest.raises(TrainDataError, match="different tokenizer"):
        plan(_settings(prepared, other_model))
    with pytest.raises(TrainError, match="base model folder not found"):
        plan(_settings(prepared, tmp_path / "missing-model"))
    with pytest.raises(config.ConfigError, match="learning_rate"):
        _settings(prepared, tiny_model, **{"training.learning_rate": -1})


def test_cli_bad_lr_is_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "xiaoshuo", "train", "--lr", "-1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "training.learning_rate" in lines[0]


def _train_cmd(work: Path, model: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "xiaoshuo",
        "--set",
        f"paths.data_dir={work / 'data'}",
        "--set",
        f"paths.checkpoints_dir={work / 'checkpoints'}",
        "--set",
        f"paths.logs_dir={work / 'logs'}",
        "--set",
        f"model.base_model={model}",
        "train",
        "--no-qlora",
        "--batch-size",
        "1",
        "--grad-accum",
        "1",
        "--lr",
        "1e-3",
        "--lora-r",
        "8",
        "--save-steps",
        "10",
        "--eval-steps",
        "1000",
        "--logging-steps",
        "5",
        "--run",
        "killed",
        *extra,
    ]


@pytest.mark.slow
def test_kill_nine_then_resume_finishes_at_the_same_step(
    prepared: Path, tiny_model: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = _train_cmd(prepared, tiny_model, "--max-steps", "400")
    stderr = tmp_path / "train.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            cmd, cwd=prepared, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
    run_dir = prepared / "checkpoints" / "killed"
    try:
        _wait_for(
            lambda: (run_dir / "checkpoint-20" / "trainer_state.json").exists(),
            timeout=240,
            what="checkpoint-20",
            proc=proc,
            log=stderr,
        )
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        _stop(proc)
    assert not (run_dir / "final_model").exists()
    out = subprocess.run(
        _train_cmd(
            prepared, tiny_model, "--max-steps", "400", "--resume", "latest", "--lr", "2e-3", "--json"
        ),
        cwd=prepared,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "do NOT take effect" in out.stderr and "training.learning_rate" in out.stderr
    result = json.loads(out.stdout)
    assert result["global_step"] == 400
    events = _events(prepared, "killed")
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 2 and starts[1]["resume_from"].endswith(
        ("checkpoint-20", "checkpoint-30", "checkpoint-40")
    )
    # resuming with different data is refused, naming the key (the module's data is restored after)
    manifest = prepared / "data" / "prepared" / "manifest.json"
    original = manifest.read_bytes()
    manifest.write_text('{"changed": true}', "utf-8")
    try:
        refused = subprocess.run(
            _train_cmd(prepared, tiny_model, "--resume", str(run_dir)),
            cwd=prepared,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        manifest.write_bytes(original)
    assert refused.returncode == 2 and "data_manifest_sha256" in refused.stderr


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_stops_cleanly(
    prepared: Path, tiny_model: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        c if c != "killed" else "stopped" for c in _train_cmd(prepared, tiny_model, "--max-steps", "100000")
    ]
    stdout, stderr = tmp_path / "train.stdout", tmp_path / "train.stderr"
    with stdout.open("wb") as out_fh, stderr.open("wb") as err_fh:
        proc = subprocess.Popen(
            cmd, cwd=prepared, env=env, stdout=out_fh, stderr=err_fh, start_new_session=True
        )
    log = prepared / "logs" / "train-stopped.jsonl"
    try:
        _wait_for(
            lambda: log.exists() and '"event": "log"' in log.read_text("utf-8"),
            timeout=120,
            what="first log event",
            proc=proc,
            log=stderr,
        )
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("training did not stop within 120 s of SIGTERM")
    finally:
        _stop(proc)
    err = stderr.read_text("utf-8", errors="replace")
    assert proc.returncode == 0, err[-2000:]
    assert "resume" in stdout.read_text("utf-8")
    stopped = [e for e in _events(prepared, "stopped") if e["event"] == "stopped"]
    assert len(stopped) == 1 and Path(stopped[0]["checkpoint"]).is_dir()
    assert not (prepared / "checkpoints" / "stopped" / "final_model").exists()


@pytest.mark.slow
def test_overfit_small_model_reproduces_a_training_passage(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "small", size="small")
    passages = [
        "林远撑着一把旧油纸伞，站在城门外的老槐树下。",
        "苏晚晴从阴影里走出来，手里握着一柄长剑。",
        "十年前，青云山上的那场大火烧毁了半座藏经阁。",
        "窗外的雨越下越大，远处传来马蹄声。",
    ]
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "train" / "continuation.jsonl").write_text(
        "".join(json.dumps({"text": p}, ensure_ascii=False) + "\n" for p in passages), "utf-8"
    )
    settings = _settings(
        tmp_path,
        model,
        **{
            "training.learning_rate": 2e-3,
            "model.lora_r": 16,
            "model.lora_alpha": 32,
            "training.per_device_train_batch_size": 4,
            "training.save_steps": 1000,
        },
    )
    result = train(plan(settings, run="overfit", max_steps=60), progress=False)
    assert result["train_loss"] < 2.0
    losses = [e["loss"] for e in _events(tmp_path, "overfit") if e["event"] == "log"]
    assert losses[-1] < 0.2, losses
    with load_engine(
        tiny_engine_settings(model, tmp_path), backend="transformers", lora={"o": result["final_model"]}
    ) as eng:
        ids = eng.tokenizer(passages[0], add_special_tokens=False)["input_ids"]
        prompt = eng.tokenizer.decode(ids[:2])  # cut at a token boundary, as in training
        text = eng.generate(GenerationRequest(prompt=prompt, sampling=GREEDY, lora="o")).text
        base = eng.generate(GenerationRequest(prompt=prompt, sampling=GREEDY)).text
    assert (prompt + text).startswith(passages[0]), (prompt, text)
    assert not (prompt + base).startswith(passages[0])
    merged = merge_adapter(tmp_path / "checkpoints", "overfit", tmp_path / "merged")
    with load_engine(tiny_engine_settings(merged, tmp_path), backend="transformers") as eng:
        assert (prompt + eng.generate(GenerationRequest(prompt=prompt, sampling=GREEDY)).text).startswith(
            passages[0]
        )
