"""Style eval on a scripted engine: known answers end to end (no model)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from xiaoshuo.eval.style import (
    StyleEvalError,
    passages_from_texts,
    perplexity_per_char,
    record_in_manifest,
    run_style_eval,
)
from xiaoshuo.testing import ScriptedEngine
from xiaoshuo.writing.textstats import count_chars

PARA = (
    "夜色如墨，细雨敲打着青石板路。林远撑着一把旧油纸伞，站在城门外的老槐树下，望着远处渐渐熄灭的灯火。"
    "“你终于来了。”身后传来一个清冷的声音。林远没有回头，只是轻轻叹了口气：“师姐，十年了，你还是这样。”"
    "苏晚晴从阴影里走出来，手里握着一柄长剑，剑鞘上刻着一朵小小的梅花。她看着他，眼中有说不清的情绪。"
    "十年前，青云山上的那场大火烧毁了半座藏经阁。没有人知道火是从哪里起的，只知道那一夜，掌门失踪了。"
)
TRAD = str.maketrans(
    "远迟钟说这来门灯声头气师剑鞘梅绪烧阁没从里那掌踪着终后样晴阴长与们还过发问么会见时亲",
    "遠遲鐘說這來門燈聲頭氣師劍鞘梅緒燒閣沒從裡那掌蹤著終後樣晴陰長與們還過發問麼會見時親",
)


def _prepared(tmp_path: Path, chapters: int = 6) -> Path:
    rng = random.Random(3)
    data = tmp_path / "data"
    (data / "val").mkdir(parents=True)
    rows = []
    for _ in range(chapters):
        sents = [s + "。" for s in PARA.split("。") if s]
        rng.shuffle(sents)
        rows.append({"text": "\n".join("".join(sents[j : j + 2]) for j in range(0, len(sents), 2)) * 3})
    (data / "val" / "val.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows), "utf-8"
    )
    (data / "train").mkdir()
    (data / "train" / "t.jsonl").write_text('{"text": "训练"}\n', "utf-8")
    return data


class AuthorEngine(ScriptedEngine):
    """The adapter writes the author's real continuation; the base writes ``base(reference)``."""

    def __init__(self, refs: dict[str, str], base, **kw) -> None:
        super().__init__(**kw)
        self.refs, self.base = refs, base

    def respond(self, request) -> str:
        ref = self.refs[request.prompt]
        return ref if request.lora else self.base(ref)


def _engine(tmp_path: Path, data: Path, base, **kw) -> AuthorEngine:
    from xiaoshuo.eval.style import held_out_texts

    refs = {p.prefix: p.reference for p in passages_from_texts(held_out_texts(data), samples=6, chars=120)}
    engine = AuthorEngine(refs, base, chunk=50, **kw)
    folder = tmp_path / "style-adapter"
    folder.mkdir(exist_ok=True)
    (folder / "adapter_config.json").write_text("{}", "utf-8")
    engine.register_adapter("style", folder)
    return engine


def _shuffled(text: str) -> str:
    chars = list(text)
    random.Random(len(text)).shuffle(chars)
    return "".join(chars)


def test_author_identical_is_zero_and_shuffled_base_loses_on_everything_but_unigrams(tmp_path: Path) -> None:
    data = _prepared(tmp_path)
    engine = _engine(tmp_path, data, _shuffled)
    report = run_style_eval(engine, data=data, adapter="style", samples=6, chars=120)
    assert report["kind"] == "style" and report["samples"] == 6
    assert report["adapter"]["style_distance"] == 0.0  # the author's own words: distance 0
    assert all(v == 0.0 for v in report["adapter"]["components"].values())
    base = report["base"]
    assert base["components"]["char_jsd"] < 1e-9  # the same characters …
    assert base["components"]["bigram_jsd"] > 0.3  # … in another order
    assert base["style_distance"] > 0.1
    assert report["gain"]["style_distance"] == base["style_distance"]
    assert report["author"]["features"] == {**report["author"]["features"]}
    assert report["author"]["features"]["chars"] == sum(p["chars"] for p in report["passages"])
    # same seeds: request i of the base and of the adapter share seed i
    seeds = {}
    for req in engine.requests:
        seeds.setdefault(req.prompt, set()).add(req.sampling.seed)
    assert all(len(s) == 1 for s in seeds.values()) and len(seeds) == 6
    assert report["base"]["perplexity"] == report["adapter"]["perplexity"]  # the default scorer: no adapter
    json.dumps(report)


def test_traditional_characters_are_far_in_characters(tmp_path: Path) -> None:
    data = _prepared(tmp_path)
    report = run_style_eval(_engine(tmp_path, data, lambda r: r.translate(TRAD)), data=data, adapter="style",
                            samples=6, chars=120)  # fmt: skip
    base = report["base"]["components"]
    assert base["char_jsd"] > 0.1 and base["bigram_jsd"] > base["char_jsd"]
    assert base["sentence_ks"] == 0.0 and base["punctuation"] == 0.0 and base["dialogue"] == 0.0


def test_perplexity_comes_from_the_engines_scores(tmp_path: Path) -> None:
    data = _prepared(tmp_path)
    # the adapter finds every 字 twice as likely as the base does
    engine = _engine(
        tmp_path, data, _shuffled, scorer=lambda pre, text, lora: -count_chars(text) * (1.0 if lora else 2.0)
    )
    report = run_style_eval(engine, data=data, adapter="style", samples=4, chars=120)
    import math

    assert report["adapter"]["perplexity"] == pytest.approx(math.e, rel=1e-3)
    assert report["base"]["perplexity"] == pytest.approx(math.e**2, rel=1e-3)
    assert report["gain"]["perplexity"] > 0 and report["gain"]["perplexity_ratio"] == pytest.approx(
        1 / math.e, rel=1e-3
    )
    assert perplexity_per_char([-2.0, -2.0], 4) == pytest.approx(math.e)


def test_passages_cut_at_sentence_ends_and_keep_the_seed() -> None:
    texts = [("a", PARA * 4), ("b", PARA[:60]), ("c", "短")]
    one = passages_from_texts(texts, samples=5, chars=100, seed=1)
    assert one == passages_from_texts(texts, samples=5, chars=100, seed=1)
    assert one != passages_from_texts(texts, samples=5, chars=100, seed=2)
    assert all(p.prefix[-1] in "。”" for p in one if p.source.startswith("a"))
    assert all(p.chars <= 100 for p in one)
    with pytest.raises(StyleEvalError):
        passages_from_texts(texts, samples=0)


def test_no_val_split_and_no_adapter(tmp_path: Path) -> None:
    data = _prepared(tmp_path)
    report = run_style_eval(_engine(tmp_path, data, _shuffled), data=data, samples=3, chars=120)
    assert report["adapter"] is None and report["gain"] is None and report["warnings"]
    (data / "val" / "val.jsonl").unlink()
    with pytest.raises(StyleEvalError, match="val"):
        run_style_eval(ScriptedEngine(), data=data)


def test_summary_lands_in_the_adapter_manifest(tmp_path: Path) -> None:
    data = _prepared(tmp_path)
    report = run_style_eval(
        _engine(tmp_path, data, _shuffled), data=data, adapter="style", samples=3, chars=120
    )
    folder = tmp_path / "style-adapter"
    (folder / "xiaoshuo_manifest.json").write_text('{"run": "r", "global_step": 3}', "utf-8")
    record_in_manifest(folder, report)
    manifest = json.loads((folder / "xiaoshuo_manifest.json").read_text("utf-8"))
    assert manifest["global_step"] == 3
    assert manifest["style_eval"]["adapter_style_distance"] == 0.0
    assert manifest["style_eval"]["style_gain"] == report["gain"]["style_distance"]


# ----------------------------------------------------------------------------- CLI, compare, HTML
@pytest.fixture
def style_cli(tmp_path: Path, clean_env: pytest.MonkeyPatch):
    """A workdir with prepared data and a ``scripted-style`` backend: the adapter writes the author's text."""
    from xiaoshuo.engine import register_backend

    clean_env.chdir(tmp_path)
    clean_env.setenv("XIAOSHUO_MEMORY__EMBEDDING_MODEL", "none")
    data = _prepared(tmp_path)

    def factory(settings, model, adapters):
        engine = _engine(tmp_path, data, _shuffled)
        for name, path in adapters.items():
            engine.register_adapter(name, path)
        return engine

    _engine(tmp_path, data, _shuffled)  # the adapter folder
    register_backend("scripted-style", factory)
    return tmp_path, data


def test_cli_style_writes_json_and_html_and_compare_reads_them(style_cli, capsys) -> None:
    from xiaoshuo.cli import main

    work, data = style_cli
    adapter = str(work / "style-adapter")
    base = ["eval", "style", "--data", str(data), "--backend", "scripted-style", "--samples", "4"]
    assert (
        main([*base, "--chars", "120", "--adapter", adapter, "--output", "a.json", "--html", "a.html"]) == 0
    )
    out = capsys.readouterr().out
    assert "style distance" in out
    report = json.loads((work / "a.json").read_text("utf-8"))
    assert report["schema_version"] == 1 and report["kind"] == "style"
    assert report["adapter"]["style_distance"] == 0.0 and report["base"]["style_distance"] > 0
    page = (work / "a.html").read_text("utf-8")
    assert "Plotly.newPlot" in page and not re.search(r"<script[^>]*\bsrc=", page)  # plotly.js inline
    assert (
        main(
            [*base, "--chars", "120", "--adapter", "none", "--output", "b.json", "--json", "--html", "b.html"]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["adapter"] is None
    assert main(["eval", "compare", "a.json", "b.json", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "compare-style"
    assert result["figures"]["base.style_distance"]["verdict"] == "same"
    assert result["figures"]["adapter.style_distance"]["verdict"] == "n/a"  # b has no adapter


def test_cli_style_needs_one_source(style_cli, capsys) -> None:
    from xiaoshuo.cli import main

    assert main(["eval", "style", "--backend", "scripted-style"]) != 0
    err = capsys.readouterr().err
    assert "--data PREPARED_DIR or --novel SLUG" in err and "Traceback" not in err


def test_book_and_memory_html(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    from xiaoshuo.cli import main

    clean_env.chdir(tmp_path)
    clean_env.setenv("XIAOSHUO_MEMORY__EMBEDDING_MODEL", "none")
    assert main(["eval", "probe", "p", "--chapters", "6", "--characters", "3", "--events", "4"]) == 0
    assert main(["eval", "book", "p", "--html", "book.html"]) == 0
    assert main(["eval", "memory", "p", "--tokenizer", "chars", "--html", "memory.html"]) == 0
    for name in ("book.html", "memory.html"):
        page = (tmp_path / name).read_text("utf-8")
        assert page.count("Plotly.newPlot") >= 1 and not re.search(r"<script[^>]*\bsrc=", page)
        assert page.count("<tr>") >= 7  # the chapter table


# ----------------------------------------------------------------------------- judge
def test_judge_tallies_scores_and_both_orders() -> None:
    from xiaoshuo.eval.judge import Judge, Rubric
    from xiaoshuo.eval.style import Passage

    rubric = Rubric.load()
    assert [d["name"] for d in rubric.dimensions] == [
        "情节",
        "人物",
        "文笔",
        "节奏",
        "对话",
        "设定一致",
        "吸引力",
    ]

    class FirstWins(ScriptedEngine):
        """Scores 7 everywhere; always prefers whatever comes first (pure position bias)."""

        def respond(self, request) -> str:
            prompt = request.messages[-1]["content"]
            if "续写 A" in prompt:
                return json.dumps({"winner": "A", "reason": "先出现"})
            keys = list(request.json_schema["properties"])
            return json.dumps({k: {"score": 7, "reason": "好"} for k in keys})

    engine = FirstWins(chunk=400)
    judge = Judge(engine, "first-wins", rubric=rubric, samples=2)
    passages = [Passage(f"p{i}", "前文。" * 10, "作者的续写。") for i in range(3)]
    result = judge.evaluate(passages, {"base": ["基础"] * 3, "adapter": ["适配"] * 3})
    assert result["model"] == "first-wins" and result["errors"] == 0 and result["passages"] == 2
    assert len(result["scores"]) == 6 and result["mean"] == {"author": 7.0, "base": 7.0, "adapter": 7.0}
    assert sorted(p["order"] for p in result["pairwise"]) == ["adapter,base"] * 2 + ["base,adapter"] * 2
    assert result["agreement"] == 0.0 and result["wins"] == {"base": 2, "adapter": 2, "tie": 0}
    assert all(r.json_schema for r in engine.requests)  # structured output asked every time
    engine.script = ["not json"] * 10
    engine.respond = lambda request: engine.script.pop(0)
    broken = judge.evaluate(passages[:1], {"base": ["基础"], "adapter": ["适配"]})
    assert broken["errors"] == 1 + 2 + 2 and broken["agreement"] is None


def test_an_engine_that_cannot_score_leaves_perplexity_out(tmp_path: Path) -> None:
    data = _prepared(tmp_path)
    engine = _engine(tmp_path, data, _shuffled)
    engine._score = lambda prefix, text, lora: (_ for _ in ()).throw(engine._cannot_score("remote"))
    report = run_style_eval(engine, data=data, adapter="style", samples=3, chars=120)
    assert report["base"]["perplexity"] is None and report["adapter"]["perplexity"] is None
    assert report["gain"]["perplexity"] is None and any("perplexity" in w for w in report["warnings"])
    assert report["adapter"]["style_distance"] == 0.0


def test_a_novels_written_chapters_are_the_held_out_text(tmp_path: Path) -> None:
    from xiaoshuo.writing import Novels

    novel = Novels(tmp_path / "novels").create("book", title="书")
    with novel.writer():
        for n in (1, 2):
            novel.ensure_chapter(n)
            novel.set_text(n, PARA * 3)
    engine = ScriptedEngine(default="他笑了。“走吧。”" * 30, chunk=100)
    report = run_style_eval(engine, novel=novel, samples=4, chars=100)
    assert report["source"] == {"novel": "book"} and report["novel"] == "book"
    assert report["samples"] == 4 and all(p["source"].startswith("第") for p in report["passages"])
    assert report["base"]["features"]["dialogue_share"] > report["author"]["features"]["dialogue_share"]
    with pytest.raises(StyleEvalError, match="exactly one"):
        run_style_eval(engine, novel=novel, data=tmp_path)
