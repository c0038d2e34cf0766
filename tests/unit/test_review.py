"""The review queue: proposals with verified evidence; approve, edit then approve, reject; dated updates.

Real Chroma (embedding model "none": triggers + BM25), real files; the model is a scripted engine so a
malformed answer can be forced and shown never to reach memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xiaoshuo import testing
from xiaoshuo.config import load
from xiaoshuo.engine.base import END
from xiaoshuo.engine.types import Delta
from xiaoshuo.memory import MemoryStore, make_entry, retrieve
from xiaoshuo.writing import Novels, run_sync
from xiaoshuo.writing.extraction import ChapterFacts, Extractor, to_proposals
from xiaoshuo.writing.review import ReviewError, ReviewQueue, as_row, locate, parse_edits, verify

CH1 = (
    "雨夜，林远背着古剑走进青云山下的客栈。\n"
    "掌柜赵铁山抬头看他一眼：“客官，住店还是打尖？”\n"
    "林远说：“住店。我要等一个人。”\n"
    "窗外雷声滚滚，林远被黑衣人一掌打成重伤，倒在楼梯口。\n"
)


def settings_for(tmp_path: Path, **overrides):
    values = {"paths.data_dir": str(tmp_path / "data"), "memory.embedding_model": "none", **overrides}
    return load(None, overrides=values, env={})


def scripted(script: list[str]) -> testing.ScriptedEngine:
    """Answers each request with the next scripted text ("{" once the script is used up)."""
    return testing.ScriptedEngine(script, default="{")


@pytest.fixture
def book(tmp_path: Path):
    settings = settings_for(tmp_path)
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    novel.set_text(1, CH1)
    store = MemoryStore(settings)
    card = make_entry(novel="yuye", kind="character", name="林远", aliases=["阿远"], text="青云山少年弟子")
    first = make_entry(
        novel="yuye", kind="character", name="林远", text="青云山少年弟子", state="初入江湖", chapter=0
    )
    store.add([card, first])
    yield settings, novel, store
    store.close()


FACTS = {
    "characters": [
        {"name": "阿远", "state": "重伤", "location": "客栈", "evidence": "林远被黑衣人一掌打成重伤"},
        {
            "name": "赵铁山",
            "aliases": ["赵掌柜"],
            "description": "客栈掌柜",
            "evidence": "掌柜赵铁山抬头看他一眼",
        },
        {"name": "白衣女", "description": "神秘女子", "evidence": "白衣女子飘然而至"},  # made up
    ],
    "events": [
        {
            "title": "等人",
            "summary": "林远在客栈等一个人",
            "thread": "open",
            "payoff_chapter": 5,
            "evidence": "我要等一个人",
        }
    ],
    "settings": [{"name": "客栈", "description": "青云山下的客栈", "evidence": "青云山下的客栈"}],
    "dialogues": [{"speaker": "阿远", "quote": "住店。我要等一个人。", "why": "引出伏笔"}],
}


def _export(store: MemoryStore) -> list[dict]:
    return sorted(store.export_novel("yuye")["entries"], key=lambda e: e["id"])


def _strip(entry) -> dict:
    return {k: v for k, v in entry.model_dump(mode="json").items() if k not in ("created", "updated")}


def test_evidence_is_located_and_made_up_quotes_are_refused():
    text = "林远走进客栈。\n　　“住店。”他说。"
    assert locate(text, "林远走进客栈") == (0, 6)
    assert locate(text, "“住店。”") == (11, 13)  # quotation marks and end punctuation do not count
    start, end = locate(text, "客栈。“住店")  # across a line break and a full-width indent
    assert text[start:end].replace("\n", "").replace("　", "") == "客栈。“住店"
    assert locate(text, "白衣女子飘然而至") is None
    assert locate(text, "林") is None  # one character proves nothing


def test_proposals_match_known_names_and_drop_unverifiable_evidence(book):
    store = book[2]
    proposals, dropped = to_proposals(
        "yuye", 1, CH1, ChapterFacts.model_validate(FACTS), store.list("yuye"), {}
    )
    kinds = {p.kind: p for p in proposals}
    assert sorted(p.kind for p in proposals) == [
        "character",
        "character_update",
        "dialogue",
        "plot",
        "setting",
    ]
    assert kinds["character_update"].target == "林远"  # 阿远 is 林远's alias: an update, not a new character
    assert kinds["character"].fields["name"] == "赵铁山"
    assert kinds["dialogue"].fields["characters"] == ["林远"]
    assert [(d["name"], d["reason"]) for d in dropped] == [("白衣女", "evidence not found in the chapter")]
    for p in proposals:
        assert verify(CH1, p.evidence) and CH1[p.evidence.start : p.evidence.end] == p.evidence.quote


def test_approve_edit_and_reject_change_memory_exactly_as_shown(book):
    _, novel, store = book
    queue = ReviewQueue.of(novel)
    proposals, _ = to_proposals("yuye", 1, CH1, ChapterFacts.model_validate(FACTS), store.list("yuye"), {})
    queue.add(proposals)
    assert queue.add(proposals) == []  # the same proposals are not queued twice
    by_kind = {p.kind: p for p in queue.list()}
    before = _export(store)

    # approve: memory gains exactly the entries the listing showed
    row = as_row(by_kind["setting"], store.list("yuye"), CH1)
    assert row["stale"] is False and len(row["preview"]) == 1
    written = queue.approve(by_kind["setting"].id, store)
    assert [_strip(e) for e in written] == row["preview"]
    assert [_strip(store.get(e.id, "yuye")) for e in written] == row["preview"]

    # edit, then approve: the edited fields are what memory holds
    edits = parse_edits("character", ["state=惊魂未定", "aliases=赵掌柜,老赵", "relationships=林远:房客"])
    shown = [_strip(e) for e in queue.preview(by_kind["character"], store.list("yuye"), edits)]
    written = queue.approve(by_kind["character"].id, store, edits=edits)
    got = store.get(written[0].id, "yuye")
    assert [_strip(got)] == shown
    assert (
        got.state == "惊魂未定"
        and got.aliases == ["赵掌柜", "老赵"]
        and got.relationships == {"林远": "房客"}
    )
    # a new character's 章节 was left blank: the card stays undated (issue 26 item 10)
    assert got.chapter is None and got.source == "extracted"
    dated = queue.preview(by_kind["character"], store.list("yuye"), parse_edits("character", ["chapter=2"]))
    assert dated[0].chapter == 2

    # reject: memory unchanged, the proposal is decided
    mid = _export(store)
    queue.reject(by_kind["plot"].id)
    assert _export(store) == mid
    assert queue.get(by_kind["plot"].id).status == "rejected"
    with pytest.raises(ReviewError, match="already rejected"):
        queue.approve(by_kind["plot"].id, store)
    with pytest.raises(ReviewError, match="cannot set"):
        parse_edits("dialogue", ["state=x"])
    assert len(_export(store)) == len(before) + 2
    assert queue.stats() == {"pending": 2, "approved": 2, "rejected": 1}

    # approve --all writes the rest; approving again writes nothing new
    rest = queue.approve_all(store)
    assert sorted(e.kind for e in rest) == ["character", "dialogue"]
    assert len(_export(store)) == len(before) + 4 and queue.list() == []


def test_an_update_adds_a_dated_state_and_retrieval_is_chapter_aware(book):
    _, novel, store = book
    queue = ReviewQueue.of(novel)
    facts = ChapterFacts.model_validate({"characters": [FACTS["characters"][0]]})
    proposals, _ = to_proposals("yuye", 1, CH1, facts, store.list("yuye"), {})
    queue.add([p.model_copy(update={"chapter": 3}) for p in proposals])  # the injury happens in chapter 3
    old = {e.id: _strip(e) for e in store.list("yuye")}
    (p,) = queue.list()
    (written,) = queue.approve(p.id, store)
    after = {e.id: _strip(e) for e in store.list("yuye")}
    assert {k: after[k] for k in old} == old  # history kept: no earlier entry changed
    assert set(after) - set(old) == {written.id}
    assert written.name == "林远" and written.chapter == 3 and written.aliases == ["阿远"]
    assert written.state == "重伤（位于客栈）"

    def states(chapter: int) -> set[str]:
        hits = retrieve(store, "yuye", "林远", max_chapter=chapter).hits
        return {h.entry.state for h in hits if h.entry.kind == "character" and h.entry.chapter is not None}

    assert states(2) == {"初入江湖"}
    assert states(3) == states(9) == {"重伤（位于客栈）"}


def test_a_malformed_model_answer_never_touches_memory(book, tmp_path: Path):
    settings, novel, store = book
    settings = settings_for(tmp_path, **{"writing.auto_approve": True})
    before = _export(store)
    engine = scripted(['{"characters": [{"name": 42', "not json at all", '{"events": "nope"}'] * 2)
    result = run_sync(Extractor(settings, engine, novel, store).extract([1]))
    assert len(engine.requests) >= 2  # retried, then gave up
    assert result[0].error and "extract" in result[0].error and result[0].proposals == []
    assert _export(store) == before
    assert ReviewQueue.of(novel).all() == []
    assert not (novel.root / "review" / "extracted.json").is_file() or "1" not in json.loads(
        (novel.root / "review" / "extracted.json").read_text("utf-8")
    )


def test_scripted_extraction_queues_verified_proposals_names_and_resumes(book):
    settings, novel, store = book
    novel.set_text(2, "次日，王小明来到客栈，对林远说：“师父在洛阳等你。”")
    answer = json.dumps(FACTS, ensure_ascii=False)
    engine = scripted([answer, json.dumps({"characters": []})])
    ex = Extractor(settings, engine, novel, store, batch=8)
    results = run_sync(ex.extract([1, 2]))
    assert [r.error for r in results] == ["", ""]
    assert [len(r.dropped) for r in results] == [1, 0]
    names = {p.fields.get("name") for p in results[1].proposals if p.source == "names"}
    assert {"王小明", "洛阳"} <= names  # jieba's nr tag: a new person the model missed
    for r in results:
        for p in r.proposals:
            assert verify(novel.text(r.chapter), p.evidence)
    assert store.export_novel("yuye")["entries"] and len(store.list("yuye")) == 2  # nothing approved yet
    appearances = json.loads((novel.root / "appearances.json").read_text("utf-8"))["chapters"]
    assert appearances["1"]["characters"] == {"林远": CH1.index("林远")}
    again = run_sync(ex.extract([1, 2], resume=True))
    assert all(r.skipped for r in again) and len(engine.requests) == 2  # resumed: no new requests


class Timed(testing.ScriptedEngine):
    """Scripted forms, streamed slowly; notes, as each request arrives, which requests had finished and
    how many were in flight."""

    def __init__(self, script: list[str]) -> None:
        super().__init__(script, default="{}", delay=0.01)
        self.seen: list[tuple[int, set[str], int]] = []  # (request no., finished ids, live incl. this one)

    def respond(self, request) -> str:
        with self._lock:
            self.seen.append((len(self.requests), set(self.finished), self._live))
        return super().respond(request)


@pytest.mark.parametrize("auto_approve", [False, True])
def test_the_next_batch_takes_the_slots_a_batch_frees_while_its_slowest_form_decodes(
    book, tmp_path: Path, auto_approve: bool
):
    # A batch lasts as long as its longest form: the next batch's forms start as soon as slots are free
    # (at most `batch` chapters in flight), yet results, queue and record come in chapter order.
    _, novel, store = book
    settings = settings_for(tmp_path, **{"writing.auto_approve": auto_approve})
    for n in (2, 3, 4):
        novel.set_text(n, f"第{n}日，林远在客栈等人。")
    slow = '{"characters": []}' + " " * 600  # ~86 deltas of 10 ms
    engine = Timed([slow, "{}", "{}", "{}"])
    seen: list[int] = []
    results = run_sync(
        Extractor(settings, engine, novel, store, batch=2).extract(
            [1, 2, 3, 4], progress=lambda d, t: seen.append(d)
        )
    )
    assert [r.chapter for r in results] == [1, 2, 3, 4] and not any(r.error for r in results)
    assert seen == [2, 4]
    assert json.loads((novel.root / "review" / "extracted.json").read_text("utf-8")).keys() == {
        "1",
        "2",
        "3",
        "4",
    }
    first = engine.requests[0].request_id
    third_arrived_before_first_finished = first not in engine.seen[2][1]
    assert third_arrived_before_first_finished is not auto_approve  # auto_approve: names approved first
    assert max(live for _, _, live in engine.seen) <= 2


def test_a_long_chapters_pieces_share_one_slot_of_the_window(book, tmp_path: Path):
    # batch=1 (as after an accept): the pieces of one long chapter still go to the engine together
    _, novel, store = book
    settings = settings_for(tmp_path)
    novel.set_text(2, CH1 * 12)  # ~1,000 字; split to fit a 2,000-token context
    engine = Timed([])
    engine.default, engine.max_model_len = "{}" + " " * 100, 2000
    (result,) = run_sync(Extractor(settings, engine, novel, store, batch=1).extract([2]))
    assert result.pieces >= 2 and not result.error
    assert len(engine.requests) == result.pieces
    assert max(live for _, _, live in engine.seen) == result.pieces


class ProseAndForms(testing.ScriptedEngine):
    """Prose for plain requests (the Writer), the next scripted form for structured ones."""

    PROSE = "次日清晨，王小明推开客栈的门，对林远说：“师父在洛阳等你。”林远点点头，背起古剑出了门。"

    def _submit(self, prepared, sink) -> None:
        req = prepared.request
        if req.json_schema is not None:
            return super()._submit(prepared, sink)
        text = (self.PROSE * 3)[: req.sampling.max_tokens]
        sink(Delta(req.request_id, 0, text, None, 0, len(text)))
        sink(Delta(req.request_id, 0, "", "stop", 0, len(text)))
        sink(END)


def test_on_accepted_runs_only_what_is_configured(book, tmp_path: Path):
    from xiaoshuo.writing.accepted import on_accepted

    settings, novel, store = book
    before = _export(store)
    engine = scripted([json.dumps(FACTS, ensure_ascii=False)])
    off = run_sync(on_accepted(settings, engine, novel, 1, store))  # defaults: both off
    assert off.ran == [] and engine.requests == [] and ReviewQueue.of(novel).all() == []

    on = settings_for(tmp_path, **{"writing.auto_extract": True})
    events = []
    done = run_sync(on_accepted(on, engine, novel, 1, store, progress=events.append))
    assert done.ran == ["extract"] and done.extract_error == "" and done.summary is None
    assert len(engine.requests) == 1 and engine.requests[0].json_schema is not None
    queued = ReviewQueue.of(novel).list()
    assert queued and {p.chapter for p in queued} == {1} and len(queued) == len(done.extraction["proposals"])
    assert _export(store) == before  # proposals wait for review
    assert events == [{"event": "extract_done", "chapter": 1, "proposals": len(queued), "approved": 0}]


def test_on_accepted_reports_a_failed_form_and_memory_stays_untouched(book, tmp_path: Path):
    from xiaoshuo.writing.accepted import on_accepted

    _, novel, store = book
    settings = settings_for(tmp_path, **{"writing.auto_extract": True, "writing.auto_approve": True})
    before = _export(store)
    engine = scripted(["not json", '{"events": "nope"}', "{"])
    events = []
    done = run_sync(on_accepted(settings, engine, novel, 1, store, progress=events.append))
    assert done.ran == ["extract"] and "extract" in done.extract_error
    assert [e["event"] for e in events] == ["extract_failed"]
    assert _export(store) == before and ReviewQueue.of(novel).all() == []


def test_writer_accept_extracts_when_configured(book, tmp_path: Path):
    from xiaoshuo.writing import Writer

    _, novel, store = book
    settings = settings_for(tmp_path, **{"writing.auto_extract": True})
    novel.import_outline({"volumes": [{"title": "卷一", "chapters": [{"title": "雨夜"}, {"title": "洛阳"}]}]})
    novel.save_card(novel.card().model_copy(update={"chapter_chars": 60}))
    facts = {"dialogues": [{"speaker": "王小明", "quote": "师父在洛阳等你。"}]}
    engine = ProseAndForms([json.dumps(facts, ensure_ascii=False)], default="{")
    events = []
    writer = Writer(settings, engine, novel, store=store, memory_on=False, on_progress=events.append)
    result = run_sync(writer.write_chapter(2, target_chars=60, seed=1))
    assert result.accepted is not None and "王小明" in novel.text(2)
    assert engine.requests[-1].json_schema is not None  # the last request: the extraction form
    done = [e for e in events if e.get("event") == "extract_done"]
    assert done and done[0]["chapter"] == 2 and done[0]["proposals"] >= 2
    queued = ReviewQueue.of(novel).list()
    assert {p.chapter for p in queued} == {2}
    assert any(p.kind == "dialogue" and p.fields["text"] == "师父在洛阳等你" for p in queued)
    assert "王小明" in {p.fields.get("name") for p in queued if p.source == "names"}
