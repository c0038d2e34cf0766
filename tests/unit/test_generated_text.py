"""Issue 26 items 12 and 13: generated text is cleaned before it is saved; a dry run loads no engine.

* item 12 — a scripted model answers text full of U+FFFD and control characters: the chapter's versions
  (写一章, 续写 and its candidates), an accepted stopped candidate and 随手写's story hold clean text, and a
  version keeps the model's own text in ``raw_output`` when the cleaning changed it;
* item 13 — ``write chapter --dry-run`` composes the prompt with the tokenizer only: a registered backend
  that fails when it is built, and ``load_engine`` itself, are never called.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xiaoshuo.config import load
from xiaoshuo.testing import ScriptedEngine
from xiaoshuo.writing import Novels, Writer, actions, run_sync
from xiaoshuo.writing.cleaning import bad_chars, clean_generated
from xiaoshuo.writing.scratch import Scratch

PROSE = "夜雨落在青石街上，檐角的铜铃被风吹得叮当作响。林远收起油纸伞，推开客栈的木门。"
DIRTY = "\ufffd\x00".join(PROSE) + "\x1b\x07\r\n\ufffd\x7f\x85"  # what a random model's bytes decode to
BAD = ("\ufffd", "\x00", "\x1b", "\x07", "\r", "\x7f", "\x85")


def _clean(text: str) -> bool:
    return not any(c in text for c in BAD)


def test_clean_generated_removes_replacement_and_control_characters_only() -> None:
    assert (
        clean_generated("林\ufffd远\x00说：\r\n“好\t的。”\x1b\u200d👨\u200d👩")
        == "林远说：\n“好\t的。”\u200d👨\u200d👩"
    )
    assert clean_generated(clean_generated(DIRTY)) == clean_generated(DIRTY) == PROSE + "\n"
    assert clean_generated(PROSE) is not None and clean_generated(PROSE) == PROSE
    assert bad_chars(DIRTY) == 2 * (len(PROSE) - 1) + 6  # \r\n is a line end, not removed


@pytest.fixture
def settings(tmp_path: Path):
    return load(
        env={},
        cwd=tmp_path,
        overrides={
            "paths.data_dir": str(tmp_path / "data"),
            "memory.embedding_model": "none",
            "writing.segment_chars": 200,
        },
    )


def test_chapter_continue_and_candidates_are_saved_clean_with_the_raw_text_kept(settings) -> None:
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑", chapter_chars=60)
    writer = Writer(settings, ScriptedEngine(default=DIRTY, chunk=5), novel, store=None, memory_on=False)
    written = run_sync(actions.write(writer, "chapter", 1, target_chars=60, candidates=2))
    more = run_sync(actions.write(writer, "continue", 1, chars=30))
    for result in (written, more):
        for cand in result.candidates:
            version = novel.version(1, cand.version)
            assert _clean(version.text) and version.text.startswith("夜雨")
            assert version.raw_output is not None and "\ufffd" in version.raw_output
            assert version.report["cleaned_chars"] > 0
            assert "raw_output" not in version.brief()
    assert _clean(novel.text(1))


def test_a_clean_answer_keeps_no_raw_copy(settings) -> None:
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑", chapter_chars=60)
    writer = Writer(settings, ScriptedEngine(default=PROSE), novel, store=None, memory_on=False)
    result = run_sync(actions.write(writer, "chapter", 1, target_chars=60))
    assert novel.version(1, result.candidates[0].version).raw_output is None


def test_an_accepted_stopped_candidate_and_scratch_text_are_cleaned(settings, tmp_path: Path) -> None:
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    accepted = run_sync(actions.accept_text(settings, novel, 1, DIRTY, kind="chapter"))
    assert novel.text(1) == PROSE + "\n" and accepted.version.raw_output == DIRTY
    scratch = Scratch(tmp_path / "scratch")
    story = scratch.append_generated("yuye", "我写的\x00开头。", DIRTY)
    # the writer's own text stays as typed
    assert story == "我写的\x00开头。" + PROSE + "\n" == scratch.load("yuye")


def test_write_dry_run_never_starts_an_engine(tiny_model: Path, tmp_path: Path, monkeypatch) -> None:
    import os

    import xiaoshuo.engine as engine_pkg
    from xiaoshuo.cli import app
    from xiaoshuo.engine import register_backend

    built: list[str] = []

    def refuse(cfg, model, adapters):
        built.append(model)
        raise AssertionError("the dry run built an engine")

    register_backend("must-not-load", refuse)
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("XIAOSHUO_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XIAOSHUO_PATHS__DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    base = ["--set", f"model.base_model={tiny_model}", "--set", "memory.embedding_model=none"]
    assert runner.invoke(app, [*base, "novel", "new", "yuye", "--title", "雨夜剑"]).exit_code == 0

    def no_engine(*args, **kwargs):
        raise AssertionError("load_engine called by a dry run")

    monkeypatch.setattr(engine_pkg, "load_engine", no_engine)
    for backend in ("must-not-load", "vllm"):
        res = runner.invoke(
            app,
            [*base, "write", "chapter", "1", "--novel", "yuye", "--dry-run", "--json", "--backend", backend],
        )
        assert res.exit_code == 0, f"{backend}: {res.output}{res.exception}"
        data = json.loads(res.stdout)
        # composed with the model's own tokenizer and chat template
        assert data["prompt"].startswith("<|im_start|>") and data["token_count_exact"]
        assert data["max_tokens"] > 0 and data["budget"] > 0
    assert built == []


def test_the_context_length_never_asks_the_hub_offline(tmp_path: Path, monkeypatch) -> None:
    """``serve --dry-run`` spent 29.7 s in Hugging Face retries offline reading a hub model's config."""
    import transformers

    from xiaoshuo import hf
    from xiaoshuo.engine import context_length as cl

    asked: list[str] = []

    def no_hub(name, *args, **kwargs):
        asked.append(name)  # (the old code swallowed any error here: record, then fail like offline does)
        raise OSError("offline")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_hub)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cl.model_context_length("nobody/not-cached-model") == cl.UNKNOWN_CONTEXT
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hf, "hub_reachable", lambda endpoint, timeout=3.0: (False, "no network"))
    monkeypatch.setattr(hf, "go_offline", lambda: None)
    assert cl.model_context_length("nobody/not-cached-model") == cl.UNKNOWN_CONTEXT
    local = tmp_path / "local-model"
    local.mkdir()
    (local / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}), "utf-8")
    assert cl.model_context_length(str(local)) == 4096
    assert asked == []
