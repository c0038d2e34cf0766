"""随手写 (scratch)'s handlers without a browser: ``webui.pages.scratch.handlers`` over ``Services`` with a
scripted engine (``xiaoshuo.testing.ScriptedEngine``); the page on real vLLM is
``tests/integration/test_webui_generation.py``, in a browser ``tests/e2e/test_webui.py``."""

from __future__ import annotations

import asyncio

import gradio as gr
import pytest

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.testing import ScriptedEngine
from xiaoshuo.webui import runtime
from xiaoshuo.webui.errors import guard
from xiaoshuo.webui.pages.scratch import handlers as h
from xiaoshuo.webui.pages.scratch.layout import build_scratch_tab

from .conftest import Holder

FORM = (0.7, 0.9, 40, 30, 1.1, 1, 2)  # temperature, top-p, top-k, max tokens, repetition, seed, candidates


def _drain(agen) -> list:
    async def run():
        return [x async for x in agen]

    return asyncio.run(asyncio.wait_for(run(), timeout=60))


def test_generate_streams_candidates_through_the_guard(make_services) -> None:
    engine = ScriptedEngine(["夜色如墨，长街无人。"], chunk=2)  # (one stream: index 0)
    services = make_services(Holder(engine))
    generate = guard(h.generate)
    updates = _drain(generate(services, "zh", "yuye", "写雨夜", "第一章", *FORM, False, None))
    last = updates[-1]
    assert len(last) == runtime.MAX_CANDIDATES + 2  # the candidate boxes, the inspector, the notice
    assert last[:3] == ["夜色如墨，长街无人。", "", ""]
    # the inspector in words (issue 26 item 5: it was the report's JSON): the token line, a row per part
    # of the prompt with its reason in Chinese, the prompt itself folded away
    inspector = last[3]
    assert inspector.startswith("提示词 ") and "| 写作要求 | 写作要求 |" in inspector
    assert "总是放入" in inspector
    assert "<details><summary>完整提示词</summary>" in inspector and "写雨夜" in inspector and last[4] == ""
    assert '"prompt_tokens"' not in inspector and "always" not in inspector
    assert engine.requests[0].sampling.n == 2 and engine.requests[0].sampling.seed == 1


def test_a_loading_engine_shows_the_loading_text_then_the_candidates(make_services, monkeypatch) -> None:
    monkeypatch.setattr(runtime, "ENGINE_POLL_S", 0.01)
    engine = ScriptedEngine(["春风又绿江南岸。"])
    holder = Holder(engine, state="loading")
    services = make_services(holder)
    updates = []

    async def run():
        async for update in h.generate_stream(services, "yuye", "写春天", "", h.sampling(*FORM), False, None):
            updates.append(update)
            if update.loading:
                holder.state = "ready"

    asyncio.run(asyncio.wait_for(run(), timeout=60))
    assert updates[0].loading and updates[0].texts == [runtime.LOADING_TEXT] * 2 + [""]
    assert updates[-1].texts[0] == "春风又绿江南岸。" and not updates[-1].loading


def test_empty_request_and_bad_numbers_are_visible_errors(services) -> None:
    generate = guard(h.generate)
    with pytest.raises(gr.Error, match="请先填写写作要求"):
        _drain(generate(services, "zh", "yuye", "  ", "", *FORM, False, None))
    with pytest.raises(XiaoshuoError, match="not a valid number") as err:
        h.sampling("热", *FORM[1:], lang="en")
    assert "ValueError" in err.value.received
    with pytest.raises(gr.Error, match="采样参数不是合法的数字"):
        _drain(generate(services, "zh", "yuye", "写雨夜", "", None, *FORM[1:], False, None))


def test_the_story_is_saved_per_novel_with_its_adapter(services) -> None:
    assert h.use_candidate(services, "yuye", "第一章。", "雨停了。") == "第一章。雨停了。"
    h.set_adapter(services, "yuye", "wuxia-v1")
    story, adapter = h.switch_novel(services, "yuye")
    assert (story, adapter) == ("第一章。雨停了。", "wuxia-v1")
    h.autosave(services, None, "无名的草稿。")
    assert services.scratch.load(h.DEFAULT_NOVEL) == "无名的草稿。"
    novels, story, adapters = h.on_load(services, "zh", "yuye")
    assert "yuye" in novels["choices"] or ("yuye", "yuye") in novels["choices"]
    assert story == "第一章。雨停了。" and adapters["value"] == "wuxia-v1"


def test_the_page_builds_with_its_element_ids(services) -> None:
    with gr.Blocks() as demo:
        page = build_scratch_tab(services, "zh", services.settings.generation, 2)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    boxes = {"output", "output-2", "output-3", "use-1", "use-2", "use-3"}
    assert {"novel", "adapter", "request", "story", "generate", "stop", "context-inspector"} | boxes <= ids
    assert set(page) == {"novel", "adapter", "story", "on_load"}
