"""Bench: the forward flow (issue 22 item 3) — marking stale chapters after an edit, and resync batched.

* **mark stale**: a 300-chapter novel whose every chapter was "generated" with a realistic fingerprint of
  inputs (the 5 previous summaries, the previous chapter's ending, 8 memory entries); chapter 5 is edited.
  Reported: the time of the whole change hook (read ``flow.json``, mark, write it atomically) and of the
  marking alone, median of ``--repeat`` edits, and the whole ``chapter set`` for context.  Goal ≤ 100 ms.
* **resync**: 50 pending chapters re-summarised and re-extracted with ``writing.resync_batch`` = 16 vs 1.
  The engine is :class:`xiaoshuo.testing.ScriptedEngine` with a fixed delay per request (``--delay``; a
  request's answer arrives after it, concurrent requests overlap as vLLM batches them) — no GPU here, and
  vLLM on 2 shared CPU cores would measure the CPU contention, not the batching.  Goal ≥ 2×.

The CPU work per chapter (jieba's name tagging for the extraction's name proposals, files) is not batched
and is reported apart (``cpu_s``).

Usage: python bench/bench_flow.py [--chapters 300] [--resync 50] [--delay 1.0] [--repeat 5]
Prints one JSON line (and keeps it under bench/results/bench_flow.json).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import report

FORMS = """
import json
from xiaoshuo.testing import ScriptedEngine


class FormsEngine(ScriptedEngine):
    def __init__(self, delay):
        super().__init__(chunk=1 << 20, delay=delay)

    def respond(self, request):
        if "who" in (request.json_schema or {}).get("properties", {}):
            return json.dumps({"summary": "林远在客栈等人。", "who": ["林远"], "where": ["客栈"], "when": ""},
                              ensure_ascii=False)
        return json.dumps({"characters": [], "events": [], "settings": [], "dialogues": []})
"""


def _settings(root: Path, **extra):
    from xiaoshuo.config import load

    values = {"paths.data_dir": str(root / "data"), "memory.embedding_model": "none", **extra}
    return load(None, overrides=values, env={})


def _book(settings, slug: str, chapters: int):
    from xiaoshuo.writing import Novels

    novel = Novels.from_settings(settings).create(slug, title=slug)
    plans = [{"title": f"第{i}章"} for i in range(1, chapters + 1)]
    novel.import_outline({"volumes": [{"title": "一", "chapters": plans}]})
    (novel.root / "chapters").mkdir(parents=True, exist_ok=True)
    with novel.writer():  # the chapters are in the outline already: their files as an import writes them
        for i in range(1, chapters + 1):
            text = f"林远在客栈里等了一夜。第{i}章。" * 40
            novel._write_imported(i, text, "bench", len(text))
    return novel


def bench_mark(root: Path, chapters: int, repeat: int) -> dict:
    from xiaoshuo.memory import make_entry
    from xiaoshuo.writing import flow

    settings = _settings(root)
    novel = _book(settings, "mark", chapters)
    entries = [
        make_entry(novel="mark", kind="character", name=f"人物{i}", text="剑客", state=f"状态{i}", chapter=i)
        for i in range(1, chapters + 1)
    ]
    index = {}
    for m in range(1, chapters + 1):
        inputs = [flow.summary_input(novel.plan(n)) for n in range(max(1, m - 5), m)]
        if m > 1:
            inputs.append(flow.text_input(m - 1, novel.text(m - 1)[-600:]))
        inputs += [flow.memory_input(entries[(m * 7 + k) % chapters]) for k in range(8)]
        index[str(m)] = {"version": 1, "inputs": inputs}
    flow.save_inputs(novel, index)
    size = (novel.root / flow.INPUTS_FILE).stat().st_size
    hook, mark_only, whole = [], [], []
    for r in range(repeat):
        version = novel.add_version(5, f"第5章改过第{r}次。" * 40, source="edited", kind="set")
        with novel.writer():
            started = time.perf_counter()
            marked = flow.on_text_changed(novel, 5, version)
            hook.append(time.perf_counter() - started)
        d = flow.load(novel)
        d["stale"], index = {}, flow.load_inputs(novel)
        started = time.perf_counter()
        flow.mark_stale(d, index, 5, version.text)
        mark_only.append(time.perf_counter() - started)
        flow.save(novel, {**d, "stale": {}})
        started = time.perf_counter()
        novel.set_text(5, f"第5章手改第{r}次。" * 40)
        whole.append(time.perf_counter() - started)
        with novel.writer():
            flow.save(novel, {**flow.load(novel), "stale": {}})
    return {
        "chapters": chapters,
        "inputs_json_bytes": size,
        "marked_chapters": len(marked),
        "hook_ms_median": round(statistics.median(hook) * 1000, 2),
        "hook_ms_max": round(max(hook) * 1000, 2),
        "mark_only_ms_median": round(statistics.median(mark_only) * 1000, 2),
        "chapter_set_ms_median": round(statistics.median(whole) * 1000, 2),
        "goal_ms": 100,
    }


def bench_resync(root: Path, chapters: int, delay: float) -> dict:
    from xiaoshuo.memory import MemoryStore
    from xiaoshuo.writing import flow, run_sync
    from xiaoshuo.writing.resync import resync

    namespace: dict = {}
    exec(FORMS, namespace)  # the scripted engine above
    out = {}
    for batch in (16, 1):
        settings = _settings(root / f"b{batch}", **{"writing.resync_batch": batch})
        novel = _book(settings, f"resync{batch}", chapters)
        flow.on_imported(novel, list(range(1, chapters + 1)))
        engine = namespace["FormsEngine"](delay)
        with MemoryStore(settings) as store:
            # jieba's dictionary loads once per process (~1 s): warm it outside the timing
            from xiaoshuo.writing.bookkeeping import NameTagger

            NameTagger([])
            started = time.perf_counter()
            done = run_sync(resync(settings, engine, novel, store))
            seconds = time.perf_counter() - started
        assert done.summarized == list(range(1, chapters + 1)), done.as_dict()
        assert done.extracted == list(range(1, chapters + 1)), done.as_dict()
        rounds = done.batches  # a batch's summaries and extraction forms are answered together
        out[batch] = {
            "seconds": round(seconds, 2),
            "requests": len(engine.requests),
            "batches": done.batches,
            "engine_wait_s": round(rounds * delay, 2),  # what the engine's batching can save
            "cpu_s": round(seconds - rounds * delay, 2),  # jieba name tagging, files: the same either way
        }
    return {
        "chapters": chapters,
        "engine": f"ScriptedEngine, {delay}s per request, concurrent requests overlap",
        "batched_16": out[16],
        "one_at_a_time": out[1],
        "speedup": round(out[1]["seconds"] / out[16]["seconds"], 2),
        "goal_speedup": 2.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chapters", type=int, default=300)
    parser.add_argument("--resync", type=int, default=50)
    # a request to a real model (a 300-字 summary, a ~600-token extraction form) takes seconds; 1 s is low
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp:
        root = Path(tmp)
        result = {
            "bench": "flow",
            "mark_stale": bench_mark(root / "mark", args.chapters, args.repeat),
            "resync": bench_resync(root / "resync", args.resync, args.delay),
        }
    report("bench_flow", result)


if __name__ == "__main__":
    main()
