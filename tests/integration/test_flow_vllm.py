"""``novel resync`` on the real vLLM engine with the tiny random model (issue 22 item 3).

The model's text is nonsense, but decoding is constrained to the summary and extraction forms, so the
batched path is checkable end to end: an edit of chapter 2 marks chapter 3 (which used its summary)
stale and makes chapter 2 pending; resync sends the pending chapters to the engine in batches, stores
the summaries, queues the proposals and clears the pending work; the new summary differs from the one
chapter 3 used, so chapter 3 stays stale (never rewritten).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from xiaoshuo.memory import MemoryStore
from xiaoshuo.testing import tiny_engine_settings
from xiaoshuo.writing import Novels, flow, run_sync
from xiaoshuo.writing.resync import resync

pytestmark = pytest.mark.slow

CHAPTERS = {
    1: "青云山上，林远随老刀学打铁。\n老刀说：“剑要先会打，才会用。”",
    2: "夜里山贼来袭，老刀为护林远，被一刀穿心。\n林远抱着老刀，一夜未眠。",
    3: "三年后，林远在青云山练剑。\n王小明推门进来。",
}


def test_resync_on_vllm_refreshes_the_pending_chapters_in_batches(
    vllm_engine, tiny_model: Path, tmp_path: Path
):
    settings = tiny_engine_settings(
        tiny_model, tmp_path, **{"memory.embedding_model": "none", "writing.resync_batch": 2}
    )
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    for n, text in CHAPTERS.items():
        novel.set_text(n, text)
        novel.set_summary(n, f"第{n}章")
    novel.add_version(3, CHAPTERS[3], source="generated", kind="chapter", accept=True,
                      inputs=[flow.summary_input(novel.plan(2))])  # fmt: skip
    with MemoryStore(settings) as store:
        first = run_sync(resync(settings, vllm_engine, novel, store))
        assert first.batches == 2 and not first.failed, first.as_dict()
        novel.set_text(2, CHAPTERS[2] + "\n天亮了。")
        assert [r["chapter"] for r in flow.status(novel)["stale"]] == [3]
        done = run_sync(resync(settings, vllm_engine, novel, store))
    assert done.summarized == [2] and done.extracted == [2] and not done.failed, done.as_dict()
    assert flow.status(novel)["pending"] == [] and novel.plan(2).summary
    assert [r["chapter"] for r in flow.status(novel)["stale"]] == [3]  # the summary it used changed
