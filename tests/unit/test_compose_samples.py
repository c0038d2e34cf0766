"""Compose-shaped training samples (issue 25): the prompt is compose()'s, samples fit the chunk with the
chat template, masks train only the answer, summaries offline / by a model that resumes after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from xiaoshuo import config
from xiaoshuo.data import prepare
from xiaoshuo.data.chunking import TokenCounter, load_tokenizer
from xiaoshuo.memory import MemoryEntry, MemoryStore
from xiaoshuo.testing import ScriptedEngine
from xiaoshuo.writing import Novels
from xiaoshuo.writing.compose import HEADINGS, compose
from xiaoshuo.writing.compose_samples import ComposeSamples, cut_segment
from xiaoshuo.writing.prompts import Prompts, chapter_request
from xiaoshuo.writing.schema import ChapterPlan, Outline, Volume
from xiaoshuo.writing.textstats import count_chars

CH1 = (
    "夜色如墨，细雨敲打着青石板路。林远撑着一把旧油纸伞，站在城门外的老槐树下，望着远处渐渐熄灭的灯火。\n"
    "“你终于来了。”身后传来一个清冷的声音。林远没有回头，只是轻轻叹了口气：“师姐，十年了。”\n"
    "苏晚晴从阴影里走出来，手里握着一柄长剑，剑鞘上刻着一朵小小的梅花。她看着林远，眼中有说不清的情绪。\n"
)
CH2 = (
    "十年前，青云山上的那场大火烧毁了半座藏经阁。没有人知道火是从哪里起的，只知道那一夜，掌门失踪了。\n"
    "林远那时只有十五岁。他记得自己背着受伤的师弟，在浓烟里跌跌撞撞地跑下山，身后是倒塌的房梁。\n"
    "苏晚晴站在山门外，一言不发。师弟在林远背上一直在说话，说山下的桃花开了，说等伤好了要去看。\n"
)
CH3 = (
    "客栈里人声嘈杂。掌柜是个胖胖的中年人，一边拨着算盘，一边偷偷打量这两位深夜来客。\n"
    "“两间上房。”苏晚晴把一锭银子放在柜台上。掌柜连忙笑着应道：“好嘞，二位客官楼上请！”\n"
    "窗外的雨越下越大。林远坐在桌前，打开那封泛黄的信，信上只有八个字：山河故人，此去经年。\n"
)


def _settings(tmp_path: Path, tokenizer: Path | str, **extra):
    values = {
        "paths.data_dir": str(tmp_path / "data"),
        "paths.models_dir": str(tmp_path / "models"),
        "memory.embedding_model": "none",
        "data.tokenizer": str(tokenizer),
        "data.chunk_size": 2048,
        "data.val_split": 0.0,
    }
    values.update(extra)
    return config.load(env={}, cwd=tmp_path, overrides=values)


def _project(settings) -> object:
    novel = Novels.from_settings(settings).create("qingyun", title="青云剑", genre="武侠", chapter_chars=150)
    plans = [
        ChapterPlan(number=1, title="雨夜", synopsis="林远与师姐重逢", characters=["林远", "苏晚晴"],
                    summary="雨夜城门外，林远与十年未见的师姐苏晚晴重逢。", summary_who=["林远", "苏晚晴"]),
        ChapterPlan(number=2, title="旧事", synopsis="回忆十年前的大火", characters=["林远"],
                    places=["青云山"], summary="十年前青云山大火，掌门失踪，林远背师弟下山。"),
        ChapterPlan(number=3, title="重逢", synopsis="客栈里读信", characters=["林远", "苏晚晴"]),
    ]  # fmt: skip
    novel.save_outline(Outline(volumes=[Volume(title="第一卷", chapters=plans)]))
    for number, text in ((1, CH1), (2, CH2), (3, CH3)):
        novel.set_text(number, text)
    return novel


def test_a_compose_sample_is_the_prompt_compose_builds_for_that_chapter(
    tmp_path: Path, tiny_model: Path
) -> None:
    settings = _settings(tmp_path, tiny_model)
    novel = _project(settings)
    with MemoryStore(settings) as store:
        store.add([
            MemoryEntry(novel="qingyun", kind="character", name="苏晚晴", text="林远的师姐，剑鞘刻梅花",
                        chapter=1),
            MemoryEntry(novel="qingyun", kind="setting", name="青云山", text="林远的师门，十年前失火",
                        chapter=2),
        ])  # fmt: skip
        entries = store.list("qingyun")
        counter = TokenCounter(load_tokenizer(str(tiny_model)))
        builder = ComposeSamples(settings, novel=novel, novel_memory=entries)
        builder.open(tmp_path / "out")
        try:
            samples = [s for s, _ in builder.samples(None, [], counter)]
        finally:
            builder.close()
        assert [c["summary_source"] for c in builder.report()["chapters"]] == [
            "project",
            "project",
            "extractive",
        ]
        assert len(samples) == 3  # one segment per (short) chapter
        prompts = Prompts.from_settings(settings)
        for number, text, sample in zip((1, 2, 3), (CH1, CH2, CH3), samples, strict=True):
            target = count_chars(text.strip())
            request = chapter_request(
                prompts, number=number, title=novel.outline().chapter(number).title, target=target,
                want=target, last=True, first=True,
            )  # fmt: skip
            expected = compose(
                novel, settings=settings, count_tokens=counter.count, chapter=number, text="",
                request=request, store=store, budget=100_000,
            )  # fmt: skip
            user = sample["messages"][-2]["content"]
            assert user == expected.user, f"chapter {number}"
            assert sample["messages"][:-1] == expected.messages
            assert sample["messages"][-1] == {"role": "assistant", "content": text.strip()}
    # same sections, in compose's order; chapter 3 has the summaries, the memory and the previous ending
    heads = [h for h in HEADINGS if f"【{h}】\n" in user]
    assert heads == ["作品信息", "本章大纲", "前情提要", "相关记忆", "上一章结尾", "写作要求"]
    assert [user.index(f"【{h}】") for h in heads] == sorted(user.index(f"【{h}】") for h in heads)
    assert "苏晚晴：林远的师姐，剑鞘刻梅花" in user and "十年前青云山大火" in user


def _corpus(tmp_path: Path, long_chapter: str) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "武侠-青云剑.txt").write_text(
        f"第一章 雨夜\n{CH1}第二章 旧事\n{CH2}第三章 重逢\n{long_chapter}", encoding="utf-8"
    )
    (raw / "book.toml").write_text('author = "示例作者"\nstyle = "冷峻"\n', encoding="utf-8")
    return raw


def test_samples_fit_the_chunk_with_the_chat_template_and_long_chapters_are_segmented(
    tmp_path: Path, tiny_model: Path
) -> None:
    from transformers import AutoTokenizer

    long_chapter = "".join(  # far over one segment distinct lines (cleaning drops repeats)
        f"第{i}日，林远在客栈里等了{i}个时辰，窗外的雨下个不停，掌柜拨着算盘，苏晚晴擦着她的长剑。\n"
        for i in range(1, 80)
    )
    raw = _corpus(tmp_path, long_chapter)
    settings = _settings(tmp_path, tiny_model, **{"data.sample_format": "compose", "data.chunk_size": 1024})
    manifest = prepare(settings, input_dir=raw, output_dir=tmp_path / "out", compose=ComposeSamples(settings))
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    rows = [json.loads(x) for x in (tmp_path / "out/train/compose.jsonl").read_text("utf-8").splitlines()]
    assert manifest["compose"]["summary_sources"] == {"extractive": 3}
    chapter3 = [r for r in rows if "请开始写第3章" in r["messages"][-2]["content"] or "继续写第3章" in
                r["messages"][-2]["content"]]  # fmt: skip
    assert len(chapter3) >= 3
    for row in rows:
        ids = tok.apply_chat_template(row["messages"], tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        assert len(ids) <= 1024
    # the segments, joined, are the chapter; each later one has the text so far as 【前文】
    assert "".join(r["messages"][-1]["content"] for r in chapter3).replace("\n", "") == long_chapter.replace(
        "\n", ""
    )
    second = chapter3[1]["messages"][-2]["content"]
    assert "【前文】\n" in second and chapter3[0]["messages"][-1]["content"][-30:] in second
    assert "请紧接【前文】继续写第3章" in second
    first = rows[0]["messages"][-2]["content"]
    assert "书名：《青云剑》\n作者：示例作者\n类型：武侠" in first and "文风：冷峻" in first


def test_masks_cover_only_the_answer(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    from xiaoshuo.training.data import tokenize

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    answer = CH1.strip()
    sample = {"messages": [
        {"role": "system", "content": "你是作家。"},
        {"role": "user", "content": "【作品信息】\n书名：《青云剑》\n\n【写作要求】\n请开始写第1章。"},
        {"role": "assistant", "content": answer},
    ]}  # fmt: skip
    [row], dropped = tokenize([sample], tok, 4096)
    assert dropped == 0
    trained = [t for t, lab in zip(row["input_ids"], row["labels"], strict=True) if lab != -100]
    prompt = tok.apply_chat_template(sample["messages"][:-1], tokenize=False, add_generation_prompt=True)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert all(lab == -100 for lab in row["labels"][:n_prompt])
    assert tok.decode(trained).startswith(answer)
    assert "写作要求" not in tok.decode(trained)


def test_extractive_summaries_offline_and_cut_segment(tmp_path: Path, tiny_model: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    raw = _corpus(tmp_path, CH3)
    settings = _settings(tmp_path, tiny_model, **{"data.sample_format": "compose"})
    builder = ComposeSamples(settings)  # no engine: extractive
    manifest = prepare(settings, input_dir=raw, output_dir=tmp_path / "out", compose=builder)
    assert [c["summary_source"] for c in manifest["compose"]["chapters"]] == ["extractive"] * 3
    last = json.loads((tmp_path / "out/train/compose.jsonl").read_text("utf-8").splitlines()[-1])
    user = last["messages"][-2]["content"]
    recap = user.split("【前情提要】\n")[1].split("\n\n")[0]
    assert "第1章 雨夜：夜色如墨，细雨敲打着青石板路。……" in recap  # opening … closing sentence
    assert "人物：林远" in recap  # the names found in it
    assert not list((tmp_path / "out/prepared/summaries").glob("*.json"))  # only model summaries are cached
    text = "甲乙丙丁。" * 40
    head, rest = cut_segment(text, 50)
    assert head.endswith("。") and 50 <= count_chars(head) <= 63 and head + rest == text


def test_compose_share_mixes_compose_and_continuation(tmp_path: Path, tiny_model: Path) -> None:
    raw = _corpus(tmp_path, CH3 * 6)
    counts = {}
    for share in (0.0, 1.0):
        values = {"data.sample_format": "both", "data.compose_share": share, "data.chunk_size": 512}
        settings = _settings(tmp_path, tiny_model, **values)
        out = tmp_path / f"out-{share}"
        manifest = prepare(settings, input_dir=raw, output_dir=out, compose=ComposeSamples(settings))
        counts[share] = {f: v["samples"] for f, v in manifest["outputs"]["train"].items()}
    assert counts[0.0]["compose"] == 0 and counts[0.0]["continuation"] > 0
    assert counts[1.0]["continuation"] == 0 and counts[1.0]["compose"] > 0
    assert counts[0.0]["instruction"] == counts[1.0]["instruction"] > 0  # instruction samples are not mixed


_SUMMARIZE = r"""
import json, sys, time
from pathlib import Path
from xiaoshuo import config
from xiaoshuo.data import prepare
from xiaoshuo.testing import ScriptedEngine
from xiaoshuo.writing.compose_samples import ComposeSamples

work, raw, delay = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
settings = config.load(env={}, cwd=work, overrides={
    "paths.data_dir": str(work / "data"), "memory.embedding_model": "none", "data.tokenizer": sys.argv[4],
    "data.sample_format": "compose", "data.val_split": 0.0})

class Summaries(ScriptedEngine):
    def respond(self, request):
        with (work / "requests.log").open("a") as fh:
            fh.write("x\n")
        time.sleep(delay)
        return json.dumps({"summary": "林远回到了城里。", "who": ["林远"], "where": [], "when": ""},
                          ensure_ascii=False)

engine = Summaries(max_model_len=4096)
builder = ComposeSamples(settings, engine=engine, batch=1)
m = prepare(settings, input_dir=raw, output_dir=work / "out", compose=builder)
print(json.dumps(m["compose"]["summary_sources"]))
"""


def test_summarize_resumes_after_kill_9_without_redoing_finished_chapters(
    tmp_path: Path, tiny_model: Path
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    chapters = "".join(f"第{i}章 第{i}夜\n林远走进第{i}座城。{CH1}" for i in range(1, 7))
    (raw / "book.txt").write_text(chapters, encoding="utf-8")
    script = tmp_path / "run.py"
    script.write_text(_SUMMARIZE, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    cache = tmp_path / "out" / "prepared" / "summaries"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), str(raw), "0.4", str(tiny_model)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(list(cache.glob("*.json"))) < 2:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "no two summaries cached within 120 s"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)  # a real kill -9, mid-run
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    done = len(list(cache.glob("*.json")))
    assert 2 <= done < 6
    answer = json.dumps({"summary": "林远回到了城里。", "who": ["林远"], "where": [], "when": ""})
    engine = ScriptedEngine(default=answer, max_model_len=4096)
    settings = _settings(tmp_path, tiny_model, **{"data.sample_format": "compose"})
    builder = ComposeSamples(settings, engine=engine, batch=4)  # the rerun, in this process
    manifest = prepare(settings, input_dir=raw, output_dir=tmp_path / "out", compose=builder)
    assert manifest["compose"]["summary_sources"] == {"model": 6}
    assert len(engine.requests) == 6 - done  # the chapters finished before the kill are not redone
    assert len(list(cache.glob("*.json"))) == 6


def test_prepare_novel_cli_uses_the_project_and_leaves_it_unchanged(
    tmp_path: Path, tiny_model: Path, clean_env, monkeypatch, capsys
) -> None:
    from xiaoshuo.cli import main

    (tmp_path / "config.toml").write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n[memory]\nembedding_model = "none"\n'
        f'[data]\ntokenizer = "{tiny_model}"\nval_split = 0.0\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    settings = config.load(env={}, cwd=tmp_path)
    novel = _project(settings)
    before = novel.outline().model_dump()
    assert main(["prepare", "--novel", "qingyun", "--format", "compose", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["compose"]["summary_sources"] == {"project": 2, "extractive": 1}
    assert manifest["outputs"]["train"]["compose"]["samples"] == 3
    assert novel.outline().model_dump() == before  # the extractive summary of chapter 3 stays in the samples
    left = sorted(p.name for p in (tmp_path / "data" / "prepared").iterdir())
    assert left == ["manifest.json", "summaries"]  # no scratch corpus or memory folder left behind
