"""Shared by the bench scripts: print the one JSON line and keep a copy under bench/results/."""

from __future__ import annotations

import json
from pathlib import Path


def report(name: str, result: dict) -> None:
    print(json.dumps(result, ensure_ascii=False))
    out = Path(__file__).parent / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", "utf-8")
