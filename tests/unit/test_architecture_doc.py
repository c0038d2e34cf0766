"""docs/architecture.md stays true: every module it names exists, and every package is named."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "xiaoshuo"
DOC = ROOT / "docs" / "architecture.md"


def test_every_module_the_architecture_page_names_exists() -> None:
    text = DOC.read_text("utf-8")
    named = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py)`", text))
    assert len(named) > 15, named  # the page names modules; a regex that finds none would prove nothing
    def exists(name: str) -> bool:
        return (ROOT / name).is_file() if name.startswith("tests/") else any(SRC.rglob(name))

    missing = sorted(n for n in named if not exists(n))
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_package_is_on_the_architecture_page() -> None:
    text = DOC.read_text("utf-8")
    packages = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file())
    assert len(packages) >= 8, packages  # adapters, cli, data, engine, eval, memory, training, writing
    unnamed = [p for p in packages if f"`{p}/`" not in text]
    assert not unnamed, f"packages missing from docs/architecture.md: {unnamed}"
