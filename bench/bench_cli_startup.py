"""Bench: how long does `xiaoshuo --help` take, against a bare Python start?

Median of 7 runs each, in one run.  Prints one JSON line and writes
bench/results/cli_startup.json.  The target is under one second.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 7


def _median(cmd: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    bare = _median([sys.executable, "-c", "pass"])
    help_ = _median([sys.executable, "-m", "xiaoshuo", "--help"])
    result = {
        "bench": "cli_startup",
        "python_bare_s": round(bare, 3),
        "xiaoshuo_help_s": round(help_, 3),
        "help_over_bare": round(help_ / bare, 1),
        "under_one_second": help_ < 1.0,
    }
    print(json.dumps(result))
    out = Path(__file__).parent / "results" / "cli_startup.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
