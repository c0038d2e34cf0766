"""The session check in tests/conftest.py: a suite that writes into the checkout fails, listing the files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

WRITES_INTO_CHECKOUT = '''
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_writes_runtime_output():
    (ROOT / "logs").mkdir(exist_ok=True)
    (ROOT / "logs" / "train-ui-run.jsonl").write_text("{}")
    (ROOT / "novel.json").write_text("{}")
    (ROOT / "data" / "stories" / "old.txt").write_text("changed text")
'''

CLEAN = '''
def test_writes_only_under_tmp_path(tmp_path):
    (tmp_path / "x").write_text("ok")
'''


def _project(root: Path, test_code: str, *, git: bool = True) -> Path:
    (root / "tests").mkdir(parents=True)
    shutil.copy(CONFTEST, root / "tests" / "conftest.py")
    (root / "tests" / "test_x.py").write_text(test_code, "utf-8")
    (root / ".gitignore").write_text("/data/\n/logs/\n__pycache__/\n.pytest_cache/\n", "utf-8")
    (root / "data" / "stories").mkdir(parents=True)
    (root / "data" / "stories" / "old.txt").write_text("a story", "utf-8")
    if git:
        subprocess.run(["git", "init", "-q", str(root)], check=True, timeout=60)
    return root


def _pytest(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_suite_that_writes_into_the_checkout_fails_listing_the_files(tmp_path: Path) -> None:
    out = _pytest(_project(tmp_path / "dirty", WRITES_INTO_CHECKOUT))
    assert out.returncode != 0, out.stdout
    assert "the test suite changed the checkout" in out.stdout
    assert "new      logs/train-ui-run.jsonl" in out.stdout
    assert "new      novel.json" in out.stdout
    assert "changed  data/stories/old.txt" in out.stdout
    assert "1 passed, 1 error" in out.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_clean_suite_passes_and_the_check_can_be_turned_off(tmp_path: Path) -> None:
    clean = _pytest(_project(tmp_path / "clean", CLEAN))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    off = _pytest(_project(tmp_path / "off", WRITES_INTO_CHECKOUT), "--no-checkout-check")
    assert off.returncode == 0, off.stdout + off.stderr
    no_git = _pytest(_project(tmp_path / "nogit", WRITES_INTO_CHECKOUT, git=False))
    assert no_git.returncode == 0, no_git.stdout + no_git.stderr
