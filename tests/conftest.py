"""Shared fixtures: a tiny real Qwen2 model built offline, and the gpu marker's skip."""

from __future__ import annotations

import os

# Tests never reach a model hub and never oversubscribe the CPU (set before imports).
for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(_key, _value)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from xiaoshuo.testing import build_tiny_model  # noqa: E402


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real Qwen2ForCausalLM + byte-level BPE tokenizer with ChatML (fp32)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No XIAOSHUO_* variables from the developer's shell leak into a test."""
    for key in list(os.environ):
        if key.startswith("XIAOSHUO_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture(scope="session")
def tiny_loras(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two random, non-zero peft LoRA adapters for the tiny model."""
    from xiaoshuo.testing import build_tiny_lora

    root = tmp_path_factory.mktemp("loras")
    return {name: build_tiny_lora(tiny_model, root / name, seed=seed) for name, seed in (("a", 1), ("b", 2))}


# --- The suite leaves the checkout as it found it -------------------------------------------------------
# Tests write only under their temp folders.  A session fixture snapshots the checkout before the first test
# and compares after the last: a new, changed or removed file fails the run, listing the paths.  Checked:
# every git-ignored path (runtime folders data/, checkpoints/, logs/, models/, config.toml, …) and untracked
# files outside src/, tests/, bench/, docs/.  Not checked: tracked files and new files in those (that is
# where people edit code while tests run; such changes show in `git status` anyway), caches, the venv, and
# the documented outputs below.  Skipped outside a git checkout; `pytest --no-checkout-check` turns it off.
REPO_ROOT = Path(__file__).resolve().parents[1]
_NOT_CHECKED_DIRS = {
    ".git",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    "build",
    "dist",
}
#: Outputs the suite or the benchmarks write on purpose (README): e2e screenshots, benchmark results.
_DOCUMENTED_OUTPUTS = ("test-artifacts/", "bench/results/")
_EDITED_WHILE_TESTING = ("src/", "tests/", "bench/", "docs/")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-checkout-check",
        action="store_true",
        help="do not fail when the suite leaves new, changed or removed files in the git checkout",
    )


def _git_status(*flags: str) -> list[tuple[str, str]] | None:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain=v1", "-z", *flags],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    entries = out.stdout.decode("utf-8", "surrogateescape").split("\0")
    return [(e[:2], e[3:]) for e in entries if len(e) > 3]


def _skipped(rel: str) -> bool:
    parts = rel.rstrip("/").split("/")
    return (
        any(p in _NOT_CHECKED_DIRS or p.endswith(".egg-info") for p in parts)
        or rel.startswith(_DOCUMENTED_OUTPUTS)
        or (rel + "/").startswith(_DOCUMENTED_OUTPUTS)
    )


def _checkout_snapshot() -> dict[str, tuple[int, int]] | None:
    """``{relative path: (size, mtime_ns)}`` of what the check watches; None when not a git checkout."""
    if not (REPO_ROOT / ".git").exists():
        return None
    untracked = _git_status("--untracked-files=all")
    ignored = _git_status("--untracked-files=normal", "--ignored=traditional")
    if untracked is None or ignored is None:
        return None
    paths = [p for code, p in untracked if code == "??" and not p.startswith(_EDITED_WHILE_TESTING)]
    paths += [p for code, p in ignored if code == "!!"]
    snapshot: dict[str, tuple[int, int]] = {}
    for rel in paths:
        if _skipped(rel):
            continue
        top = REPO_ROOT / rel
        files = [top] if not top.is_dir() else []
        if top.is_dir():
            for folder, dirs, names in os.walk(top):
                dirs[:] = [d for d in dirs if d not in _NOT_CHECKED_DIRS and not d.endswith(".egg-info")]
                files += [Path(folder) / n for n in names]
        for f in files:
            try:
                st = f.lstat()
            except OSError:
                continue
            snapshot[f.relative_to(REPO_ROOT).as_posix()] = (st.st_size, st.st_mtime_ns)
    return snapshot


def _checkout_changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    new = [f"  new      {p}" for p in sorted(after.keys() - before.keys())]
    changed = [f"  changed  {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    removed = [f"  removed  {p}" for p in sorted(before.keys() - after.keys())]
    return new + changed + removed


@pytest.fixture(scope="session", autouse=True)
def _checkout_unchanged_by_the_suite(request: pytest.FixtureRequest):
    """Fails the session (an error at the last test's teardown) when tests wrote into the checkout."""
    before = None if request.config.getoption("--no-checkout-check") else _checkout_snapshot()
    yield
    if before is None:
        return
    after = _checkout_snapshot()
    changes = _checkout_changes(before, after or {})
    if changes:
        shown = "\n".join(changes[:50]) + (f"\n  … and {len(changes) - 50} more" if len(changes) > 50 else "")
        pytest.fail(
            "测试在代码目录里留下了文件 (the test suite changed the checkout; tests must write only under "
            f"tmp_path):\n{shown}\nFix the test that wrote them (pass tmp_path / a paths.* override), then "
            "delete these files. (`pytest --no-checkout-check` skips this check.)",
            pytrace=False,
        )


# --- WebUI downloads made by the suite go with it ---------------------------------------------------------
# The page's exports land in fresh ``xiaoshuo-book-*`` / ``xiaoshuo-export-*`` folders in the system temp
# directory (the app removes them after an hour); the suite removes the ones it made when it ends.
@pytest.fixture(scope="session", autouse=True)
def _remove_the_suites_downloads():
    import shutil
    import tempfile

    def downloads() -> set[Path]:
        root = Path(tempfile.gettempdir())
        return {p for pattern in ("xiaoshuo-book-*", "xiaoshuo-export-*") for p in root.glob(pattern)}

    before = downloads()
    yield
    for folder in downloads() - before:
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
