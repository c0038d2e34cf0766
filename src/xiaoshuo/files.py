"""Durable file writes: write to a temp name in the same folder, fsync, rename.

The one way xiaoshuo writes a file that must never be seen half-written (manifests, run records,
stories, exports, the sample corpus).  Streams that are appended to (event logs) are not for here.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with tmp.open("wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or a new entry in ``path`` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    return atomic_write(path, json.dumps(data, ensure_ascii=False, indent=2, default=str))
