"""``Engine.context_len`` and ``Engine.prompt_tokens``: the two numbers every token budget starts from.

Exact with a local tokenizer and chat template (the tiny test model's ChatML); without one an
over-estimate of the same prompt.  The writing core's budgets (segments, extraction, the consistency
judge, planning, the scratch page) all read the engine's numbers: one context default, in one place.
"""

from __future__ import annotations

import re
from pathlib import Path

from xiaoshuo.engine.base import DEFAULT_CONTEXT
from xiaoshuo.testing import TINY_CORPUS, ScriptedEngine

SRC = Path(__file__).resolve().parents[2] / "src" / "xiaoshuo"
MESSAGES = [
    {"role": "system", "content": "你是一位中文小说作家。"},
    {"role": "user", "content": TINY_CORPUS[:600]},
]


def test_context_len_is_the_model_length_or_the_one_default() -> None:
    assert ScriptedEngine(max_model_len=4096).context_len == 4096
    remote = ScriptedEngine()
    remote.max_model_len = None  # an OpenAI-compatible server that does not list its context
    assert remote.context_len == DEFAULT_CONTEXT
    places = [p for p in SRC.rglob("*.py") if re.search(r"max_model_len or \d", p.read_text("utf-8"))]
    assert places == []  # the default is DEFAULT_CONTEXT in engine/base.py, nowhere else


def test_prompt_tokens_exact_with_a_chat_template_and_over_without(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    local = ScriptedEngine(tokenizer=tokenizer, max_model_len=4096)
    rendered = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    exact = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    assert local.prompt_tokens(MESSAGES) == exact

    remote = ScriptedEngine()  # no tokenizer: renders nothing locally
    assert remote.prompt_tokens(MESSAGES) >= exact
    # the engine's own system prompt is counted when the messages bring none
    with_system = ScriptedEngine(system_prompt="你是一位中文小说作家。" * 5)
    assert with_system.prompt_tokens(MESSAGES[1:]) > remote.prompt_tokens(MESSAGES[1:])


def test_budgets_follow_the_engine(tmp_path: Path) -> None:
    from xiaoshuo.config import load
    from xiaoshuo.writing import Novels, Writer
    from xiaoshuo.writing.extraction import answer_room

    class Short(ScriptedEngine):
        @property
        def context_len(self) -> int:  # a backend that knows better than max_model_len
            return 1000

    settings = load(None, overrides={"paths.data_dir": str(tmp_path / "data")}, env={})
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    engine = Short()
    writer = Writer(settings, engine, novel, memory_on=False)
    assert writer.prompt_budget(200) == 1000 - 200 - 8
    assert writer.max_tokens_for(10_000, 1.0) == 500  # at most half the context
    used = engine.prompt_tokens(MESSAGES)
    assert answer_room(engine, MESSAGES, least=1, most=5000, task="t") == 1000 - used - 16
