"""WebUI download files and safe file names: where a download is written, how long it lives, how it is named.

Every file the page hands out (创作 导出, 记忆 导出) is written by its handler into a fresh
``xiaoshuo-<kind>-*`` folder in the system temp directory that ``download_path`` makes; Gradio then copies
it into its own cache and serves that copy, which ``gr.Blocks(delete_cache=GRADIO_DELETE_CACHE)`` removes
after a day (and all of them when the server stops).  ``clean_downloads`` removes this user's download
folders older than ``DOWNLOAD_MAX_AGE``; it runs before each new download and when the app starts, so a
crashed or killed server's leftovers go too.  ``fit_name`` shortens a file name to ``MAX_NAME_BYTES`` of
UTF-8 keeping its extension and whole characters (a book title of 100 汉字 is 300 bytes; a file name may
have 255, and temp names derived from it add ~40).

Not responsible for: what goes into the files (``writing.exporting``, ``memory``), upload size/extension
checks (``services.save_uploads``), or Gradio's own upload folder.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import unicodedata
from pathlib import Path

DOWNLOAD_PREFIXES = ("xiaoshuo-book-", "xiaoshuo-export-")  # 创作 导出, 记忆 导出
# exactly what ``tempfile.mkdtemp(prefix=...)`` names them: not e.g. the browser tests' xiaoshuo-book-shots-*
_DOWNLOAD_FOLDER = re.compile("(?:" + "|".join(map(re.escape, DOWNLOAD_PREFIXES)) + ")[a-z0-9_]{8}")
DOWNLOAD_MAX_AGE = 3600.0  # seconds; Gradio has copied a download into its cache long before
GRADIO_DELETE_CACHE = (3600, 86400)  # every hour, Gradio's copies (and uploads) older than a day
MAX_NAME_BYTES = 150
_MAX_EXT_BYTES = 16  # a longer "extension" is part of the name
_UNSAFE = re.compile(r"[\\/:*?\"<>|\x00-\x1f\x7f]")
_JOINERS = {"\u200d", "\ufe0e", "\ufe0f"}  # never end a shortened name inside an emoji sequence


def fit_name(name: str, max_bytes: int = MAX_NAME_BYTES, *, fallback: str = "file") -> str:
    """``name`` shortened, by whole characters, until its UTF-8 is at most ``max_bytes`` (extension kept)."""
    stem, ext = os.path.splitext(name)
    if len(ext.encode("utf-8")) > _MAX_EXT_BYTES:
        stem, ext = name, ""
    if len((stem + ext).encode("utf-8")) <= max_bytes:
        return stem + ext if stem else fallback + ext
    budget = max(0, max_bytes - len(ext.encode("utf-8")))
    kept, used = [], 0
    for ch in stem:
        size = len(ch.encode("utf-8", "surrogatepass"))
        if used + size > budget:
            break
        kept.append(ch)
        used += size
    while kept and (kept[-1] in _JOINERS or unicodedata.combining(kept[-1]) or kept[-1] in " ."):
        kept.pop()
    return ("".join(kept) or fallback) + ext


def download_path(title: str, ext: str, *, kind: str = "book", fallback: str = "download") -> Path:
    """A fresh download folder's file for ``title`` + ``.ext`` (older download folders removed first)."""
    prefix = f"xiaoshuo-{kind}-"
    if prefix not in DOWNLOAD_PREFIXES:  # else clean_downloads would never remove it
        raise ValueError(f"unknown download kind {kind!r}")
    clean_downloads()
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    name = _UNSAFE.sub("_", title).strip().lstrip(".") or fallback
    return folder / fit_name(f"{name}.{ext}" if ext else name, fallback=fallback)


def clean_downloads(max_age: float = DOWNLOAD_MAX_AGE, now: float | None = None) -> int:
    """Remove this user's download folders older than ``max_age`` seconds; returns how many went.

    Only real folders (not links) directly in the temp directory, named as ``download_path`` names them
    (``DOWNLOAD_PREFIXES`` + 8 random characters) and owned by this user are touched; one that cannot be
    removed is left for the next run."""
    now = time.time() if now is None else now
    uid = os.getuid() if hasattr(os, "getuid") else None
    removed = 0
    try:
        entries = list(os.scandir(tempfile.gettempdir()))
    except OSError:
        return 0
    for entry in entries:
        if not _DOWNLOAD_FOLDER.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not entry.is_dir(follow_symlinks=False) or (uid is not None and st.st_uid != uid):
                continue
        except OSError:
            continue
        if now - st.st_mtime > max_age:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += not os.path.lexists(entry.path)
    return removed
