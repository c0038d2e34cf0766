#!/usr/bin/env python3
"""Seed-compatible entry point: ``python start.py <command>`` == ``xiaoshuo <command>``."""

import sys
from pathlib import Path

if __name__ == "__main__":
    try:
        from xiaoshuo.cli import main
    except ImportError:  # running from a checkout without `make install`
        sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
        from xiaoshuo.cli import main
    sys.exit(main())
