"""Leftovers of killed runs in the novels and exports folders: find them (``doctor``), clean them (``--fix``).

What a ``kill -9`` (or a power cut) can leave behind, each recognised by our own names and a process id
that no longer runs:

- ``data/novels/.importing/<slug>-<pid>-<8 hex>/``: a new or replacing ``novel import`` killed before
  its rename (never visible as a novel; the next import removes these too);
- ``<novel>/.bulk-import.json``: an append killed before its outline commit (its chapters are outside
  the outline; the next writer of that novel rolls them back — ``--fix`` takes the lock to do it now);
- ``<novel>/.lock.owner.json`` naming a dead process (only the lock itself counts; the record names who
  holds it in the "busy" message);
- ``.NAME.tmp-<pid>-<n>`` temp files of an atomic write inside a novel, and ``.NAME.tmp-<pid>-<6 hex>``
  of an export in ``data/exports`` (the next export to a folder removes those there).

This module never touches a file another running process may own, nor anything not named as above.
The WebUI's temporary download folders are not handled here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.writing.exporting import stale_temps
from xiaoshuo.writing.importing import STAGING, pid_alive, stale_staging
from xiaoshuo.writing.project import Novel

_WRITE_TMP = re.compile(r"^\..+\.tmp-(?P<pid>\d+)-\d+$", re.DOTALL)  # xiaoshuo.files.atomic_write


def _pid_of(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text("utf-8")).get("pid"))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def find_leftovers(novels_root: Path, exports_dir: Path | None = None) -> list[dict[str, Any]]:
    """Every leftover as ``{"what", "path", "detail"}`` (nothing is changed)."""
    novels_root = Path(novels_root)
    found = [
        {"what": "import staging folder", "path": str(p), "detail": "a novel import killed before its rename"}
        for p in stale_staging(novels_root)
    ]
    novels = sorted(p for p in novels_root.iterdir() if p.is_dir()) if novels_root.is_dir() else []
    for root in novels:
        if root.name in (STAGING, ".replaced"):
            continue
        journal = root / Novel.BULK_JOURNAL
        pid = _pid_of(journal) if journal.is_file() else None
        if journal.is_file() and (pid is None or not pid_alive(pid)):
            found.append(
                {
                    "what": "unfinished append",
                    "path": str(journal),
                    "detail": _journal_detail(journal),
                }
            )
        owner = root / ".lock.owner.json"
        pid = _pid_of(owner) if owner.is_file() else None
        if pid is not None and not pid_alive(pid):
            found.append({"what": "stale lock owner", "path": str(owner), "detail": f"pid {pid} is gone"})
        for path in _write_temps(root):
            found.append({"what": "temp file", "path": str(path), "detail": "an atomic write killed midway"})
    if exports_dir is not None:
        for path in stale_temps(Path(exports_dir)):
            found.append({"what": "export temp file", "path": str(path), "detail": "an export killed midway"})
    return found


def _journal_detail(journal: Path) -> str:
    try:
        record = json.loads(journal.read_text("utf-8"))
        return f"chapters {record['first']}–{record['last']} of a killed append (pid {record.get('pid')})"
    except (OSError, ValueError, KeyError, TypeError):
        return "a killed append"


def _write_temps(root: Path) -> list[Path]:
    out = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            m = _WRITE_TMP.match(name)
            path = Path(folder) / name
            if m and not path.is_symlink() and not pid_alive(int(m.group("pid"))):
                out.append(path)
    return out


def clean_leftovers(novels_root: Path, exports_dir: Path | None = None) -> list[dict[str, Any]]:
    """Remove what :func:`find_leftovers` finds; each row gets ``"done"`` (what happened)."""
    novels_root = Path(novels_root)
    rows = find_leftovers(novels_root, exports_dir)
    by_novel: dict[Path, list[dict[str, Any]]] = {}
    for row in rows:
        path = Path(row["path"])
        if row["what"] == "import staging folder":
            shutil.rmtree(path, ignore_errors=True)
            row["done"] = "removed" if not path.exists() else "could not remove"
        elif row["what"] in ("unfinished append", "stale lock owner"):
            by_novel.setdefault(path.parent, []).append(row)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            row["done"] = "removed"
    with contextlib.suppress(OSError):
        (novels_root / STAGING).rmdir()
    for root, novel_rows in by_novel.items():
        skipped = ""
        try:
            novel = Novel(root, root.name)
            with novel.writer(what="doctor --fix"):  # taking the lock rolls an unfinished append back
                pass
        except XiaoshuoError as exc:  # busy: a live writer holds the lock (then nothing is stale)
            skipped = f"skipped: {exc.message}"
        for row in novel_rows:
            row["done"] = skipped or ("rolled back" if row["what"] == "unfinished append" else "removed")
    return rows
