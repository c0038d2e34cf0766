"""Findings with spans (``writing.findings.review_chapter``) and ``chapter revise`` (``writing.revise``).

On a scripted backend (no model): a chapter with a planted repeated paragraph and AI phrases is revised to
fewer findings and the kept version records the findings before → after; a revision that would add
findings is discarded (no version kept, the text untouched); ``--dry-run`` changes no file; a length
fix rewrites only the chapter's end; a locked chapter is refused.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xiaoshuo import testing
from xiaoshuo.config import load
from xiaoshuo.engine import register_backend
from xiaoshuo.eval.flavour import load_flavour
from xiaoshuo.memory.schema import make_entry
from xiaoshuo.writing import Novels, Writer, WritingError, count_chars, run_sync
from xiaoshuo.writing.findings import review_chapter
from xiaoshuo.writing.revise import plan_revision, revise_chapter
from xiaoshuo.writing.schema import ChapterPlan

# distinct prose: no 8-字 n-gram repeats, no AI phrase
PROSE = "".join(chr(0x4E00 + (i * 37) % 5000) + ("。" if i % 9 == 8 else "") for i in range(9000))
PARA = "城门口的老槐树下，卖糖人的老汉收起了担子，雨水顺着油布滴进泥地里，巷子深处传来更夫的梆子声。"
AI = "他眼中闪过一丝寒意，嘴角勾起一抹冷笑，深吸一口气。"
CLEAN_BACKEND = "scripted-revise-clean"
FLAVOUR = load_flavour()


class Clean(testing.ScriptedEngine):
    """Answers each request with fresh prose of the length the request asks for (约N字)."""

    backend = CLEAN_BACKEND

    def respond(self, request) -> str:
        m = re.findall(r"约(\d+)字", request.messages[-1]["content"])
        want = int(m[-1]) if m else 60
        start = 5000 + (len(self.requests) * 331) % 3000
        return PROSE[start : start + want + 3]


class Flavoured(testing.ScriptedEngine):
    """Answers with AI phrases only: every revision has more findings."""

    def respond(self, request) -> str:
        return AI * 12


register_backend(CLEAN_BACKEND, lambda cfg, model, adapters: Clean())


def _settings(tmp_path: Path):
    overrides = {
        "paths.data_dir": str(tmp_path / "data"),
        "memory.embedding_model": "none",
        "writing.segment_chars": 400,
    }
    return load(None, overrides=overrides, env={})


def _planted() -> str:
    return (
        "林远推开客栈的门。"
        + PROSE[:120]
        + "\n"
        + PARA
        + "\n"
        + PROSE[200:300]
        + AI
        + "\n"
        + PARA
        + "\n"
        + PROSE[400:500]
    )


def _novel(settings, text: str | None = None, **plan):
    novel = Novels.from_settings(settings).create("yuye", title="雨夜剑")
    chapter = {"title": "夜雨", "characters": ["林远"], **plan}
    novel.import_outline({"volumes": [{"title": "一", "chapters": [chapter]}]})
    text = _planted() if text is None else text
    novel.update_plan(1, target_chars=len(text))  # on target: only the planted problems
    novel.set_text(1, text)
    return novel


def _entries():
    return [
        make_entry(novel="yuye", kind="character", name="林远", aliases=["阿远"], text="少年剑客"),
        make_entry(novel="yuye", kind="character", name="苏晚晴", text="林远的师姐"),
        make_entry(novel="yuye", kind="setting", name="客栈", text="雨夜的客栈"),
    ]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_review_finds_the_planted_repeat_and_ai_phrases_with_their_spans(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    novel = _novel(settings)
    text = novel.text(1)
    review = review_chapter(novel, 1, settings=settings, flavour=FLAVOUR, entries=_entries())
    reps = [f for f in review.findings if f.kind == "repetition"]
    assert len(reps) == 1 and reps[0].rule == "repeated_within"
    second = text.rindex(PARA)
    assert reps[0].start >= second - 2 and reps[0].end == second + len(PARA)  # the second copy, not the first
    assert reps[0].detail["first"] <= text.index(PARA) + 2
    phrases = {f.quote for f in review.findings if f.kind == "flavour"}
    assert {"眼中闪过一丝", "嘴角勾起一抹", "深吸一口气"} <= phrases
    for f in review.findings:
        assert text[f.start : f.end] == f.quote and f.instruction
    assert not [f for f in review.findings if f.kind in ("length", "outline")]
    assert review.weighted == pytest.approx(sum(f.weight for f in review.findings))


def test_outline_and_length_findings(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    text = "阿远推开门，外面下着雨。" + PROSE[:800]
    novel = _novel(settings, text, characters=["林远", "苏晚晴"], places=["客栈"])
    novel.update_plan(1, target_chars=2 * len(text))
    review = review_chapter(novel, 1, settings=settings, flavour=FLAVOUR, entries=_entries())
    outline = {(f.rule, f.detail["subject"]) for f in review.findings if f.kind == "outline"}
    assert outline == {("missing_character", "苏晚晴"), ("missing_place", "客栈")}  # 林远 is there as 阿远
    (short,) = [f for f in review.findings if f.kind == "length"]
    assert short.rule == "too_short" and short.end == len(text) and short.start > len(text) // 2
    assert "苏晚晴" in next(f.instruction for f in review.findings if f.detail.get("subject") == "苏晚晴")
    plan = plan_revision(settings, novel, 1, flavour=FLAVOUR, entries=_entries()).passes[0]["edits"]
    assert len(plan) == 1 and plan[0]["mode"] == "expand" and plan[0]["end"] == len(text)
    assert plan[0]["start"] > 0 and plan[0]["target_chars"] > plan[0]["chars"]  # only the end grows
    novel.update_plan(1, target_chars=len(text) * 3 // 4)
    (edit,) = plan_revision(settings, novel, 1, only="length").passes[0]["edits"]
    assert edit["mode"] == "shorten" and edit["end"] == len(text) and edit["start"] > 0
    assert edit["chars"] - edit["target_chars"] == count_chars(text) - len(text) * 3 // 4  # excess off


def test_revise_fixes_the_planted_problems_and_records_before_after(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    novel = _novel(settings)
    before_text, versions = novel.text(1), len(novel.versions(1))
    writer = Writer(settings, Clean(), novel, memory_on=False)
    result = run_sync(revise_chapter(writer, 1, flavour=FLAVOUR, entries=_entries(), seed=3)).as_dict()
    assert result["kept"] and result["weighted_after"] < result["weighted_before"]
    kinds_before = {f["kind"] for f in result["findings_before"]}
    assert kinds_before == {"repetition", "flavour"}
    assert not [f for f in result["findings_after"] if f["kind"] in ("repetition", "flavour")]
    text = novel.text(1)
    assert text != before_text and text.count(PARA) == 1 and "眼中闪过一丝" not in text
    assert text.startswith(before_text[:100]) and text.endswith(before_text[-60:])  # only flagged passages
    (vid,) = result["versions"]
    v = novel.version(1, vid)
    assert len(novel.versions(1)) == versions + 1 and novel.current_version(1) == vid and v.kind == "revise"
    assert v.report["revise"]["findings_before"] == result["findings_before"]
    assert v.report["revise"]["findings_after"] == result["findings_after"]


class Mixed(Clean):
    """Candidate 0 answers with AI phrases, candidate 1 with clean prose (told apart by the seed)."""

    def respond(self, request) -> str:
        return super().respond(request) if request.sampling.seed // 7919 == 1 else AI * 12


def test_the_best_of_k_candidates_is_kept(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    novel = _novel(settings)
    writer = Writer(settings, Mixed(), novel, memory_on=False)
    result = run_sync(revise_chapter(writer, 1, flavour=FLAVOUR, candidates=2, passes=1, seed=1)).as_dict()
    assert result["kept"] and result["weighted_after"] < result["weighted_before"]
    edits = result["passes"][0]["edits"]
    assert edits and all(e["kept"] and e["candidate"] == 1 for e in edits)
    assert "眼中闪过一丝" not in novel.text(1)


def test_a_revision_with_more_findings_is_discarded(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    novel = _novel(settings)
    files = _files(novel.root)
    writer = Writer(settings, Flavoured(), novel, memory_on=False)
    result = run_sync(revise_chapter(writer, 1, flavour=FLAVOUR, passes=2)).as_dict()
    assert not result["kept"] and result["versions"] == []
    assert result["findings_after"] == result["findings_before"]
    assert all(e["kept"] is False for e in result["passes"][0]["edits"])
    assert _files(novel.root) == files  # no version, the text untouched


def test_dry_run_changes_nothing(tmp_path: Path, monkeypatch) -> None:
    from xiaoshuo.cli import app

    monkeypatch.chdir(tmp_path)
    for key in [k for k in __import__("os").environ if k.startswith("XIAOSHUO_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XIAOSHUO_PATHS__DATA_DIR", str(tmp_path / "data"))
    settings = load(None)
    novel = _novel(settings)
    files = _files(novel.root)
    res = CliRunner().invoke(
        app, ["chapter", "revise", "1", "--novel", "yuye", "--dry-run", "--no-memory", "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["dry_run"] and not data["kept"] and data["passes"][0]["edits"]
    assert _files(novel.root) == files
    # the same command without --dry-run (scripted backend) keeps a version; --only limits the edits
    res = CliRunner().invoke(
        app,
        ["chapter", "revise", "1", "-n", "yuye", "--no-memory", "--only", "flavour",
         "--backend", CLEAN_BACKEND, "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["kept"] and all(e["findings"] == ["flavour:神态套话", "flavour:神态套话", "flavour:身体反应"]
                                for e in data["passes"][0]["edits"])  # fmt: skip
    assert "眼中闪过一丝" not in novel.text(1) and novel.text(1).count(PARA) == 2  # the repeat was not --only
    bad = CliRunner().invoke(app, ["chapter", "revise", "1", "-n", "yuye", "--only", "typo", "--dry-run"])
    assert isinstance(bad.exception, WritingError) and "typo" in str(bad.exception)


@pytest.mark.skipif(
    "locked" not in ChapterPlan.model_fields,
    reason="ChapterPlan.locked comes with chapter lock/unlock (issue 22 item 4, branch flow)",
)
def test_a_locked_chapter_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    novel = _novel(settings)
    novel.update_plan(1, locked=True)
    files = _files(novel.root)
    writer = Writer(settings, Clean(), novel, memory_on=False)
    with pytest.raises(WritingError, match="锁定"):
        run_sync(revise_chapter(writer, 1, flavour=FLAVOUR))
    with pytest.raises(WritingError, match="锁定"):
        plan_revision(settings, novel, 1, flavour=FLAVOUR)
    assert _files(novel.root) == files


def test_a_passage_repeated_from_an_earlier_chapter(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    novel = _novel(settings, PROSE[:300] + PARA + PROSE[300:400])
    novel.ensure_chapter(2)
    novel.set_text(2, PROSE[1000:1100] + PARA + PROSE[1200:1300])
    review = review_chapter(novel, 2, settings=settings)
    (rep,) = [f for f in review.findings if f.kind == "repetition"]
    assert rep.rule == "repeated_earlier" and rep.detail["chapter"] == 1 and PARA[2:-2] in rep.quote
    assert "flavour" not in review.checked  # no AI味 list given: not checked, not silently clean


def test_a_consistency_finding_carries_a_concrete_instruction(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    novel = _novel(settings, PROSE[:300])
    novel.ensure_chapter(2)
    novel.set_text(2, PROSE[1000:1100] + "苏晚晴笑道：“你来晚了。”" + PROSE[1200:1300])
    dead = make_entry(
        novel="yuye", kind="character", name="苏晚晴", text="林远的师姐", state="遇害身亡", chapter=1
    )
    review = review_chapter(novel, 2, settings=settings, entries=[*_entries(), dead])
    (f,) = [f for f in review.findings if f.kind == "consistency"]
    assert f.rule == "dead_acts" and f.severity == "warning" and "苏晚晴笑道" in f.quote
    assert "苏晚晴" in f.instruction and "遇害身亡" in f.instruction
    (edit,) = plan_revision(settings, novel, 2, entries=[*_entries(), dead], only="consistency").passes[0][
        "edits"
    ]
    assert edit["passage"].startswith("苏晚晴笑道") or "苏晚晴笑道" in edit["passage"]


def test_a_finding_is_the_same_finding_after_its_passage_changed(tmp_path: Path) -> None:
    """A length finding (its span is the chapter's end) stays the same finding when the end's text
    changes: fixing an AI phrase there is an improvement, not a fix plus a new problem."""
    from xiaoshuo.writing.findings import is_better

    settings = _settings(tmp_path)
    text = PROSE[:600] + AI
    novel = _novel(settings, text)
    novel.update_plan(1, target_chars=2 * len(text))
    before = review_chapter(novel, 1, settings=settings, flavour=FLAVOUR)
    after = review_chapter(
        novel, 1, settings=settings, flavour=FLAVOUR, text=PROSE[:600] + PROSE[700:720] + "。"
    )
    (short,) = [f for f in before.findings if f.kind == "length"]
    assert [f.kind for f in after.findings if f.kind != "outline"] == ["length"]
    assert after.findings[0].key() == short.key() and after.findings[0].quote != short.quote
    assert is_better(before, after)[0] and not is_better(after, before)[0]
