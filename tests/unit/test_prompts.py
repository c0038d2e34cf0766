"""xiaoshuo.writing.prompts: one home for every model-facing text, and the writer's TOML overrides.

A scripted engine (1 token per character, no chat template) stands in for the model: what is checked is
which text reaches the request, not what a model makes of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from xiaoshuo.config import load
from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.testing import ScriptedEngine
from xiaoshuo.writing import Novels, Writer
from xiaoshuo.writing import prompts as P
from xiaoshuo.writing.extraction import Extractor, messages_for
from xiaoshuo.writing.planning import summarize_chapter


def _settings(tmp_path: Path, prompts_file: Path | None = None):
    overrides = {"paths.data_dir": str(tmp_path / "data"), "memory.embedding_model": "none"}
    if prompts_file is not None:
        overrides["writing.prompts_file"] = str(prompts_file)
    return load(None, overrides=overrides, env={})


def _novel(settings):
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑", chapter_chars=300)
    novel.import_outline(
        {"volumes": [{"title": "第一卷", "chapters": [{"title": "夜雨", "synopsis": "林远遇剑客"}]}]}
    )
    return novel


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prompts.toml"
    path.write_text(text, "utf-8")
    return path


def test_the_chapter_request_is_complete_by_default() -> None:
    first = P.chapter_request(P.DEFAULT_PROMPTS, number=3, title="断崖", target=3000, want=1200)
    assert first == (
        "请开始写第3章《断崖》的正文。本章共约3000字，这一段先写约1200字。"
        + "直接输出小说正文，不要标题和说明。"
    )
    last = P.chapter_request(
        P.DEFAULT_PROMPTS, number=3, title="断崖", target=3000, want=900, have=2100, last=True
    )
    assert last.startswith("请紧接【前文】继续写第3章《断崖》") and "这是本章最后一段" in last
    assert last.endswith("直接输出小说正文，不要标题和说明。")


def test_dry_run_sends_what_the_writer_sends(tmp_path: Path) -> None:
    """The dry run used to build its own request without the format line and the last-segment clause."""
    settings = _settings(tmp_path)
    novel = _novel(settings)
    engine = ScriptedEngine()
    data = Writer(settings, engine, novel, store=None, memory_on=False).dry_run(1)
    request = data["messages"][-1]["content"].rsplit("【写作要求】\n", 1)[1]
    # chapter 1 targets 300 字, one segment: the last one
    assert request == P.chapter_request(
        P.DEFAULT_PROMPTS, number=1, title="夜雨", target=300, want=300, last=True
    )
    assert "这是本章最后一段" in data["prompt"] and "直接输出小说正文，不要标题和说明。" in data["prompt"]


def test_overrides_reach_writing_summary_and_extraction(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'chapter_format = "只要正文。"\n'
        'chapter_first = "写第{number}章，约{want}字。"\n'
        'summary_ask = "概括第{number}章，{summary_chars}字内。"\n'
        'extract_system = "你是提取助手{{JSON}}。"\n',
    )
    settings = _settings(tmp_path, path)
    novel = _novel(settings)
    data = Writer(settings, ScriptedEngine(), novel, store=None, memory_on=False).dry_run(1)
    assert data["messages"][-1]["content"].endswith(
        "【写作要求】\n写第1章，约300字。这是本章最后一段，请按大纲收束本章。只要正文。"
    )

    novel.set_text(1, "林远走进客栈。" * 5)
    engine = ScriptedEngine(['{"summary": "林远到了客栈。", "who": ["林远"], "where": ["客栈"], "when": ""}'])
    from xiaoshuo.writing import run_sync

    run_sync(summarize_chapter(engine, novel, 1, prompts=P.Prompts.from_settings(settings)))
    assert "概括第1章，300字内。" in engine.requests[0].messages[-1]["content"]

    ex = Extractor(settings, None, novel, store=None)
    system = messages_for(novel.card(), 1, "夜雨", "正文", [], ex.prompts)[0]["content"]
    assert system.startswith("你是提取助手{JSON}。\n")
    assert messages_for(novel.card(), 1, "夜雨", "正文", [])[0]["content"].startswith("你是小说编辑的助手")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('chapter_fromat = "x"', ["chapter_fromat", "chapter_format"]),  # unknown key, with the close one
        ('continue = "请续写。"', ["continue", "{want}"]),  # a required placeholder is missing
        ('continue = "续写{want}字，风格{style}。"', ["continue", "{style}"]),  # unknown placeholder
        ('continue = "续写{want:d}字"', ["continue", "want"]),  # a format spec
        ('chapter_last = "收束{"', ["chapter_last", "{{"]),  # unbalanced brace
        ("chapter_last = 3", ["chapter_last"]),  # not text
        ("chapter_last = ", ["TOML"]),  # not TOML
    ],
)
def test_a_bad_prompts_file_is_a_clear_error_naming_the_key(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    settings = _settings(tmp_path, _write(tmp_path, text + "\n"))
    with pytest.raises(XiaoshuoError) as err:
        P.Prompts.from_settings(settings)
    shown = str(err.value)
    assert "writing.prompts_file" in shown
    for word in words:
        assert word in shown


def test_a_missing_prompts_file_is_an_error_and_an_empty_name_the_defaults(tmp_path: Path) -> None:
    with pytest.raises(XiaoshuoError, match="prompts file not found"):
        P.Prompts.from_settings(_settings(tmp_path, tmp_path / "nope.toml"))
    assert P.Prompts.from_settings(_settings(tmp_path)) is P.DEFAULT_PROMPTS


def test_a_deep_toml_a_device_a_fifo_or_a_folder_as_prompts_file_is_a_clear_error(tmp_path: Path) -> None:
    """/dev/zero was read until memory ran out, a FIFO hung the open, a deeply nested TOML (small)
    ended in a RecursionError traceback."""
    import os

    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n", "utf-8")
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    for path, word in ((deep, "TOML"), (fifo, "not a regular file"), ("/dev/zero", "not a regular file"),
                       (tmp_path, "not a regular file")):  # fmt: skip
        with pytest.raises(XiaoshuoError, match=word) as err:
            P.Prompts.from_settings(_settings(tmp_path, path))
        assert "writing.prompts_file" in str(err.value)


def test_an_edited_prompts_file_is_read_again(tmp_path: Path) -> None:
    path = _write(tmp_path, 'chapter_last = "收尾。"\n')
    settings = _settings(tmp_path, path)
    assert P.Prompts.from_settings(settings).text("chapter_last") == "收尾。"
    path.write_text('chapter_last = "这一段收束全章。"\n', "utf-8")
    assert P.Prompts.from_settings(settings).text("chapter_last") == "这一段收束全章。"


def test_every_default_validates_as_its_own_override() -> None:
    assert P.validate(dict(P.DEFAULTS)) == P.DEFAULTS


def test_the_cli_checks_the_prompts_file_before_loading_a_model(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from xiaoshuo.cli import app

    monkeypatch.chdir(tmp_path)
    for key in [k for k in __import__("os").environ if k.startswith("XIAOSHUO_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XIAOSHUO_PATHS__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XIAOSHUO_WRITING__PROMPTS_FILE", str(_write(tmp_path, 'continue = "续写。"\n')))
    _novel(load(None))
    # an unknown backend would be the error if the model were loaded first
    for args in (
        ["write", "chapter", "1", "--novel", "yuye", "--dry-run", "--backend", "no-such-backend"],
        ["outline", "generate", "--novel", "yuye", "--chapters", "3", "--backend", "no-such-backend"],
    ):
        res = CliRunner().invoke(app, args)
        shown = f"{res.output}{res.exception}"
        assert res.exit_code != 0 and isinstance(res.exception, XiaoshuoError)
        assert "continue" in shown and "{want}" in shown and "no-such-backend" not in shown


def test_compose_context_lines_come_from_the_prompts(tmp_path: Path) -> None:
    plan = P.plan_block(
        P.DEFAULT_PROMPTS, number=2, title="得剑", volume="第一卷", synopsis="林远得剑",
        characters=["林远", "苏晚晴"], places=["青云山"], target=300,
    )  # fmt: skip
    assert (
        plan
        == "第2章 得剑（第一卷）\n要点：林远得剑\n出场人物：林远、苏晚晴\n地点：青云山\n本章目标字数：约300字"
    )
    line = P.summary_line(
        P.DEFAULT_PROMPTS, number=1, title="夜雨", summary="林远遇剑客。", who=["林远"], when="夜"
    )
    assert line == "第1章 夜雨：林远遇剑客。（人物：林远；时间：夜）"

    settings = _settings(tmp_path, _write(tmp_path, 'plan_target = "全章写到{target}字上下。"\n'))
    data = Writer(settings, ScriptedEngine(), _novel(settings), store=None, memory_on=False).dry_run(1)
    assert "全章写到300字上下。" in data["prompt"] and "本章目标字数" not in data["prompt"]


def test_an_imported_heading_is_not_doubled_in_what_the_model_reads() -> None:
    from xiaoshuo.writing.prompts import DEFAULT_PROMPTS, bare_title

    assert bare_title("第十一章 雨夜归人") == "雨夜归人" and bare_title("第3回：夜宴") == "夜宴"
    assert bare_title("第十一章") == "第十一章" and bare_title("楔子") == "楔子"
    line = DEFAULT_PROMPTS.text("outline_title", number=1, title="第十一章 雨夜归人")
    assert line == "第1章 雨夜归人"
    ask = DEFAULT_PROMPTS.text("summary_ask", number=1, title="第十一章 雨夜归人", summary_chars=80)
    assert "第十一章" not in ask and "雨夜归人" in ask
