"""Bench: how long does `xiaoshuo --help` take, against a bare Python start?

Median of 7 runs each, in one run.  Prints one JSON line and writes
bench/results/cli_startup.json.  The target is under one second.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from _common import report

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
    report("cli_startup", result)


if __name__ == "__main__":
    main()
