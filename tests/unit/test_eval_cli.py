"""Every `xiaoshuo eval` example in the README runs (in-process, offline, on the probe it builds)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from xiaoshuo.cli import main

REPO = Path(__file__).resolve().parents[2]


def eval_examples() -> list[list[str]]:
    """The README's ``xiaoshuo eval …`` lines, optional ``[--opt]`` parts included."""
    text = (REPO / "README.md").read_text("utf-8")
    out = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens[:2] == ["xiaoshuo", "eval"]:
                out.append([t.removeprefix("[").removesuffix("]") for t in tokens[1:]])
    return out


@pytest.fixture
def workdir(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Path:
    clean_env.chdir(tmp_path)
    clean_env.setenv("XIAOSHUO_MEMORY__EMBEDDING_MODEL", "none")
    clean_env.setenv("COLUMNS", "120")
    return tmp_path


def test_readme_eval_examples_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    examples = [e for e in eval_examples() if e[1] != "style"]  # style loads a model: test_eval_style.py
    assert [e[1] for e in examples] == ["probe", "book", "memory", "compare"]
    out: dict[str, str] = {}
    for argv in examples:
        capsys.readouterr()
        assert main(argv) == 0, f"README example failed: xiaoshuo {' '.join(argv)}\n{capsys.readouterr().err}"
        out[argv[1]] = capsys.readouterr().out
    book = json.loads(out["book"])
    assert len(book["chapters"]) == 60 and book["book"]["threads_overdue"] == 1
    assert json.loads((workdir / "book.json").read_text("utf-8")) == book
    memory = json.loads(out["memory"])
    assert [c["number"] for c in memory["chapters"]] == [12, 24, 36, 37, 38]
    assert memory["future_leaks"] == 0 and memory["cast_card_recall"] == 1.0
    assert "same" in out["compare"] and "worse" not in out["compare"]


def test_compare_names_what_got_worse(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "probe", "p", "--chapters", "6", "--characters", "3", "--events", "4"]) == 0
    assert main(["eval", "book", "p", "--output", "a.json"]) == 0
    chapter = workdir / "data" / "novels" / "p" / "chapters" / "0006.txt"
    chapter.write_text(chapter.read_text("utf-8") + "他嘴角勾起一抹冷笑，眼中闪过一丝寒意。\n" * 20, "utf-8")
    assert main(["eval", "book", "p", "--output", "b.json"]) == 0
    capsys.readouterr()
    assert main(["eval", "compare", "a.json", "b.json", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "compare-book"
    assert result["figures"]["ai_flavour"]["verdict"] == "worse"
    six = next(c for c in result["chapters"] if c["number"] == 6)
    assert six["ai_flavour"]["verdict"] == "worse" and six["ai_flavour"]["change"] > 0
    assert all(c["ai_flavour"]["verdict"] == "same" for c in result["chapters"] if c["number"] != 6)


def test_eval_errors_are_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "book", "nosuch"]) == 2
    assert "没有这本小说" in capsys.readouterr().err
    (workdir / "x.json").write_text("{}", "utf-8")
    assert main(["eval", "compare", "x.json", "x.json"]) == 2
    assert "not an eval report" in capsys.readouterr().err
    assert main(["eval", "probe", "p", "--characters", "99"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_reports_never_land_on_a_novels_files(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--output``/``--html`` aimed at another novel's outline.json (inside the data folder) or at a folder
    are refused in one line and change nothing; a report over an earlier report is replaced."""
    assert main(["eval", "probe", "p", "--chapters", "4", "--characters", "3", "--events", "3"]) == 0
    outline = workdir / "data" / "novels" / "p" / "outline.json"
    before = outline.read_bytes()
    for flag in ("--output", "--html"):
        capsys.readouterr()
        assert main(["eval", "book", "p", flag, str(outline)]) == 2
        assert "data_dir" in capsys.readouterr().err
        assert outline.read_bytes() == before
    (workdir / "folder").mkdir()
    assert main(["eval", "book", "p", "--output", str(workdir / "folder")]) == 2
    assert main(["eval", "book", "p", "--output", "r.json"]) == 0
    assert main(["eval", "book", "p", "--output", "r.json", "--html", "r.html"]) == 0  # replaced
    assert json.loads((workdir / "r.json").read_text("utf-8"))["kind"] == "book"
    assert "plotly" in (workdir / "r.html").read_text("utf-8").lower()
