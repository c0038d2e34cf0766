"""Planning on real engines with the tiny random model: decoding is constrained, so the plumbing is testable.

* ``outline generate`` through the CLI on vLLM (the session's OpenAI server, tests/integration/conftest.py:
  no engine start in either process): 60 chapters in batches of 8, ``kill -9`` in the middle,
  ``--resume`` → exactly chapters 1–60, each once.
* every structured task (outline batch, chapter summary) returns schema-valid output on vLLM in-process,
  the vLLM OpenAI server and transformers, and the same request without a schema is not valid JSON
  (so the constraint, not luck, makes it valid).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydantic
import pytest

from xiaoshuo.engine import GenerationRequest, SamplingSettings, load_engine
from xiaoshuo.testing import tiny_engine_settings
from xiaoshuo.writing import Novels, run_sync
from xiaoshuo.writing.planning import (
    PROGRESS_FILE,
    PlanLimits,
    batch_form,
    generate_outline,
    summarize_chapter,
    summary_form,
)

pytestmark = pytest.mark.slow

LIMITS = PlanLimits(title_chars=8, synopsis_chars=12, names=2, name_chars=4, summary_chars=16)


def _config(work: Path, model: Path, openai_url: str = "") -> None:
    backend = f'"openai"\nopenai_base_url = "{openai_url}"' if openai_url else '"vllm"'
    (work / "config.toml").write_text(
        f"""
[model]
base_model = "{model}"
dtype = "float32"
[engine]
backend = {backend}
cpu_kv_cache_gib = 1
[paths]
data_dir = "{work / "data"}"
[writing]
outline_synopsis_chars = 12
""",
        "utf-8",
    )


def _cli(work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "xiaoshuo", *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOSHUO_")}
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_outline_survives_kill_nine_and_resumes_to_exactly_1_to_60(
    openai_server: str, tiny_model: Path, tmp_path: Path
):
    _config(tmp_path, tiny_model, openai_server)
    settings = tiny_engine_settings(tiny_model, tmp_path)
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑", premise="十年后重逢")
    progress = novel.root / PROGRESS_FILE
    args = ["outline", "generate", "--novel", "yuye", "--chapters", "60", "--batch", "8", "--no-memory"]
    log = tmp_path / "first.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            _cli(tmp_path, *args), cwd=tmp_path, env=_env(), stdout=err, stderr=err, start_new_session=True
        )
    killed_at = None
    try:
        deadline = time.monotonic() + 600
        while killed_at is None:
            if proc.poll() is not None:
                pytest.fail(
                    f"outline generate exited (rc {proc.returncode}) before a checkpoint:\n"
                    + log.read_text("utf-8", errors="replace")[-3000:]
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    "no checkpoint within 600 s:\n" + log.read_text("utf-8", errors="replace")[-3000:]
                )
            try:
                state = json.loads(progress.read_text("utf-8"))
            except (OSError, ValueError):
                state = {}
            if state.get("next", 1) > 9:  # at least two batches done, the run not finished
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
                killed_at = state["next"]
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    before = [c.number for c in novel.outline().chapters()]
    assert killed_at < 61 and before[: killed_at - 1] == list(range(1, killed_at)), before
    assert not json.loads(progress.read_text("utf-8"))["done"]
    titles_before = {c.number: c.title for c in novel.outline().chapters() if c.number < killed_at}

    out = subprocess.run(
        _cli(tmp_path, *args, "--resume", "--json"),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["resumed"] and result["generated"][0] in range(killed_at - 8, killed_at + 1)
    chapters = novel.outline().chapters()
    assert [c.number for c in chapters] == list(range(1, 61))
    assert all(c.title.strip() and c.status == "planned" for c in chapters)
    # chapters checkpointed before the kill are kept as they were (not regenerated)
    kept = {n: t for n, t in titles_before.items() if n < result["generated"][0]}
    assert kept and all(novel.plan(n).title == t for n, t in kept.items())
    assert json.loads(progress.read_text("utf-8"))["done"]


def _check_engine(engine, novel) -> None:
    """Raw constrained output validates; the unconstrained control does not; the tasks run end to end."""
    form = batch_form(3, LIMITS)
    schema = form.model_json_schema()
    messages = [{"role": "user", "content": "写三章大纲"}]
    for seed in range(3):
        sampling = SamplingSettings(temperature=1.0, max_tokens=600, seed=seed, repetition_penalty=1.0)
        text = engine.generate(
            GenerationRequest(messages=messages, sampling=sampling, json_schema=schema)
        ).text
        assert len(form.model_validate_json(text).chapters) == 3, text
    free = engine.generate(
        GenerationRequest(
            messages=messages, sampling=SamplingSettings(temperature=1.0, max_tokens=200, seed=0)
        )
    ).text
    with pytest.raises(pydantic.ValidationError):
        form.model_validate_json(free)

    result = run_sync(generate_outline(engine, novel, chapters=5, batch=3, limits=LIMITS, retries=0))
    assert result.generated == [1, 2, 3, 4, 5]
    assert [c.number for c in novel.outline().chapters()] == [1, 2, 3, 4, 5]
    novel.set_text(2, "夜色如墨，细雨敲打着青石板路。林远撑着一把旧油纸伞。")
    answer = run_sync(summarize_chapter(engine, novel, 2, limits=LIMITS, retries=0))
    summary_form(LIMITS).model_validate(answer.model_dump())
    assert novel.plan(2).summary == answer.summary.strip() and novel.plan(2).summary


def test_structured_tasks_are_schema_valid_on_vllm(vllm_engine, tiny_model: Path, tmp_path: Path):
    settings = tiny_engine_settings(tiny_model, tmp_path)
    _check_engine(vllm_engine, Novels.from_settings(settings).create("yuye", title="雨夜剑"))


def test_structured_tasks_are_schema_valid_on_transformers(tiny_model: Path, tmp_path: Path):
    settings = tiny_engine_settings(tiny_model, tmp_path)
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    with load_engine(settings, backend="transformers") as engine:
        _check_engine(engine, novel)


def test_structured_tasks_are_schema_valid_on_the_openai_server(
    openai_server: str, tiny_model: Path, tmp_path: Path
):
    settings = tiny_engine_settings(tiny_model, tmp_path, **{"engine.openai_base_url": openai_server})
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    with load_engine(settings, backend="openai") as engine:
        _check_engine(engine, novel)


def test_chapter_summarize_and_accept_summarize_through_the_cli(tiny_model: Path, tmp_path: Path):
    _config(tmp_path, tiny_model)
    with (tmp_path / "config.toml").open("a", encoding="utf-8") as fh:
        fh.write("summary_chars = 20\n")
    settings = tiny_engine_settings(tiny_model, tmp_path)
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    novel.import_outline({"volumes": [{"title": "卷一", "chapters": [{"title": "雨夜"}, {"title": "旧事"}]}]})
    novel.set_text(1, "夜色如墨，细雨敲打着青石板路。")
    v = novel.add_version(2, "十年前，青云山上的那场大火。", source="edited", kind="set")
    common = {"cwd": tmp_path, "env": _env(), "capture_output": True, "text": True, "timeout": 600}
    out = subprocess.run(
        _cli(tmp_path, "chapter", "summarize", "--novel", "yuye", "1", "--backend", "transformers", "--json"),
        **common,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout)
    assert data["number"] == 1 and data["summary"].strip() == novel.plan(1).summary and novel.plan(1).summary
    assert novel.plan(1).summary_who == data["who"] and len(data["summary"]) <= 20

    plain = subprocess.run(
        _cli(tmp_path, "chapter", "accept", "--novel", "yuye", "2", "-v", str(v.id)), **common
    )
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert novel.plan(2).summary == ""  # writing.auto_summarize is off by default
    out = subprocess.run(
        _cli(tmp_path, "--set", "engine.backend=transformers", "chapter", "accept", "--novel", "yuye", "2"),
        **common,
    )
    assert out.returncode != 0  # --version is required
    out = subprocess.run(
        _cli(
            tmp_path,
            *("--set", "engine.backend=transformers", "--set", "writing.auto_summarize=true"),
            *("chapter", "accept", "--novel", "yuye", "2", "-v", str(v.id)),
        ),
        **common,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "前情提要" in out.stdout and novel.plan(2).summary
