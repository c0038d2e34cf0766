"""Memory extraction on the real vLLM engine with the tiny random model, and the CLI around it.

The random model's text is nonsense, but decoding is constrained to the extraction form, so the
plumbing is checkable: every chapter's form validates, every queued proposal's evidence is really in
its chapter (made-up quotes are dropped and counted), the jieba names are proposed, nothing reaches
memory before approval, and ``memory extract / review / approve / reject``, ``check`` and ``threads``
work through the command line.  The in-process test uses the session's ``vllm_engine``, the command
line the session's ``openai_server`` (tests/integration/conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xiaoshuo.memory import MemoryStore, make_entry
from xiaoshuo.testing import run_cli, tiny_engine_settings
from xiaoshuo.writing import Novels, run_sync
from xiaoshuo.writing.extraction import Extractor
from xiaoshuo.writing.review import ReviewQueue, verify

pytestmark = pytest.mark.slow

CHAPTERS = {
    1: "青云山上，林远随老刀学打铁。\n老刀说：“剑要先会打，才会用。”\n张三丰在山门外等林远。",
    2: "夜里山贼来袭，老刀为护林远，被一刀穿心，当场身亡。\n林远抱着老刀，一夜未眠。",
    3: "三年后，林远在青云山练剑。\n老刀笑道：“小子，剑法长进了。”\n王小明推门进来。",
}


def _book(tmp_path: Path, tiny_model: Path):
    settings = tiny_engine_settings(tiny_model, tmp_path, **{"memory.embedding_model": "none"})
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    for n, text in CHAPTERS.items():
        novel.set_text(n, text)
    return settings, novel


def test_extraction_on_vllm_gives_schema_valid_verified_proposals(
    vllm_engine, tiny_model: Path, tmp_path: Path
):
    settings, novel = _book(tmp_path, tiny_model)
    with MemoryStore(settings) as store:
        store.add(make_entry(novel="yuye", kind="character", name="林远", text="少年"))
        before = store.export_novel("yuye")["entries"]
        results = run_sync(Extractor(settings, vllm_engine, novel, store, batch=3).extract([1, 2, 3]))
        assert store.export_novel("yuye")["entries"] == before  # nothing approved: memory unchanged
    assert [r.error for r in results] == ["", "", ""]
    queued = [p for r in results for p in r.proposals]
    for r in results:
        for p in r.proposals:
            assert p.chapter == r.chapter and verify(CHAPTERS[r.chapter], p.evidence)
        assert all(
            d["reason"].endswith("not found in the chapter") or "known" in d["reason"] for d in r.dropped
        )
    names = {p.fields.get("name") for p in queued if p.source == "names"}
    assert {"张三丰", "王小明"} <= names
    assert "林远" not in names  # known to memory: never proposed as new
    assert ReviewQueue.of(novel).stats()["pending"] == len(queued)
    record = json.loads((novel.root / "review" / "extracted.json").read_text("utf-8"))
    assert sorted(record) == ["1", "2", "3"]
    print(
        "model proposals",
        sum(p.source == "model" for p in queued),
        "dropped",
        sum(len(r.dropped) for r in results),
    )


def test_extract_review_check_and_threads_through_the_cli(
    openai_server: str, tiny_model: Path, tmp_path: Path
):
    """On the session's vLLM OpenAI server: the command loads no engine of its own."""
    _book(tmp_path, tiny_model)
    env = {
        "XIAOSHUO_MODEL__BASE_MODEL": str(tiny_model),
        "XIAOSHUO_MODEL__DTYPE": "float32",
        "XIAOSHUO_ENGINE__BACKEND": "openai",
        "XIAOSHUO_ENGINE__OPENAI_BASE_URL": openai_server,
        "XIAOSHUO_MEMORY__EMBEDDING_MODEL": "none",
        "XIAOSHUO_PATHS__DATA_DIR": str(tmp_path / "data"),
    }

    def cli(*args: str, ok: bool = True):
        out = run_cli(*args, cwd=tmp_path, env=env)
        assert (out.returncode == 0) == ok, out.stderr[-2000:]
        return out

    cli("memory", "add", "--novel", "yuye", "--kind", "character", "--name", "老刀", "--text", "铁匠")
    cli("memory", "add", "--novel", "yuye", "--kind", "character", "--name", "老刀", "--text", "铁匠",
        "--state", "被山贼杀害，已身亡", "--chapter", "2")  # fmt: skip
    cli("memory", "add", "--novel", "yuye", "--kind", "plot", "--chapter", "2", "--text", "老刀留下剑谱",
        "--thread", "open", "--payoff-chapter", "4")  # fmt: skip
    out = json.loads(cli("memory", "extract", "--novel", "yuye", "--all", "--json").stdout)
    assert [r["chapter"] for r in out] == [1, 2, 3] and not any(r["error"] for r in out)
    again = json.loads(cli("memory", "extract", "--novel", "yuye", "--all", "--json").stdout)
    assert all(r["skipped"] for r in again)  # resumable: the same texts are not extracted twice
    rows = json.loads(cli("memory", "review", "--novel", "yuye", "--json").stdout)
    assert rows and all(r["status"] == "pending" and r["preview"] for r in rows)
    wang = next(r for r in rows if r["fields"].get("name") == "王小明")
    zhang = next(r for r in rows if r["fields"].get("name") == "张三丰")
    approved = json.loads(
        cli(
            "memory", "review", "approve", wang["id"], "--novel", "yuye", "--set", "text=少年书生", "--json"
        ).stdout
    )
    # a new character's card stays undated unless the writer gives it a chapter
    assert [(e["name"], e["text"], e["chapter"]) for e in approved] == [("王小明", "少年书生", None)]
    cli("memory", "review", "reject", zhang["id"], "--novel", "yuye")
    cli("memory", "review", "reject", zhang["id"], "--novel", "yuye", ok=False)  # already decided
    listed = json.loads(cli("memory", "list", "--novel", "yuye", "--kind", "character", "--json").stdout)
    assert "王小明" in {e["name"] for e in listed} and "张三丰" not in {e["name"] for e in listed}
    left = len(json.loads(cli("memory", "review", "--novel", "yuye", "--json").stdout))
    assert left == len(rows) - 2
    report = json.loads(cli("check", "chapter", "3", "--novel", "yuye", "--json").stdout)
    assert any(f["rule"] == "dead_acts" and f["character"] == "老刀" for f in report["findings"])
    threads = json.loads(cli("threads", "--novel", "yuye", "--json").stdout)
    assert [(t["text"], t["status"]) for t in threads] == [("老刀留下剑谱", "due")]
