"""The retrieval index of a novel saved beside its store, so a fresh process does not rebuild it.

One file per novel, ``<chroma path>/index/<collection>.npz``: the novel's active entries, each entry's
BM25 tokens and bm25s's score matrix (CSC arrays + vocabulary), with a header naming the *store version*
it was built at.  The version is a token in ``<collection>.version`` beside it that the store replaces
before every write to the novel (add, update, delete, reindex), so a file built before a write — by this
process or another — no longer matches and is not used; the header also records Chroma's entry count
(a write by something that does not replace the token still shows when it adds or deletes) and a format
signature (this format, the stopwords, jieba's and bm25s's versions).

Written atomically (one file, temp + fsync + rename: a crash mid-save leaves the previous file or none);
read as a zip whose members carry CRCs, so a damaged or truncated file fails to load and is rebuilt
from Chroma with a log line, never an error.  A process that writes without ever searching leaves its
changes in ``<collection>.journal`` (from the file's version to the new one) instead of loading and
saving the whole index; the next process applies them (tokenizing only those entries).  Size: about
the entries' JSON plus their tokens and the score matrix — 12 MB at 20k short entries, so some 60 MB at
100k.  Only an embedded store (a local path) has one; on a Chroma server other processes write without
telling us, and the store keeps its in-process index only.

This module reads and writes the file; building and updating the index is
:class:`xiaoshuo.memory.retrieval.Retriever`'s, deciding when to save is the store's.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
import zipfile
from pathlib import Path
from typing import Any

from xiaoshuo.files import atomic_write

_log = logging.getLogger("xiaoshuo.memory")
FORMAT = 1


def signature() -> str:
    """What the saved tokens and scores depend on besides the entries."""
    import bm25s
    import jieba

    from xiaoshuo.memory.retrieval import STOPWORDS

    words = "\n".join(sorted(STOPWORDS))
    raw = f"{FORMAT}|{jieba.__version__}|{bm25s.__version__}|{words}"
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()[:16]


def read_version(path: Path) -> str:
    try:
        return path.read_text("utf-8").strip()
    except OSError:
        return ""


def new_version(path: Path) -> str:
    """Replace the store version (before a write): every index file built earlier stops matching."""
    token = uuid.uuid4().hex
    atomic_write(path, token)
    return token


def save(path: Path, header: dict[str, Any], entries: list[Any], tokens: list[list[str]], bm25: Any) -> None:
    """Write the index file atomically; ``bm25`` is a ``bm25s.BM25`` with its scores (None: no entries)."""
    import numpy as np

    arrays: dict[str, Any] = {
        "header": _blob({**header, "format": FORMAT, "signature": signature()}),
        "entries": _blob([e.model_dump(mode="json") for e in entries]),
        "tokens": _blob(tokens),
    }
    if bm25 is not None:
        scores = bm25.scores
        arrays |= {
            "data": np.asarray(scores["data"]),
            "indices": np.asarray(scores["indices"]),
            "indptr": np.asarray(scores["indptr"]),
            "num_docs": np.asarray([scores["num_docs"]]),
            "vocab": _blob(bm25.vocab_dict),
        }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, buf.getvalue())


def load(path: Path, expect: dict[str, Any]) -> tuple[list[Any], list[list[str]], Any] | None:
    """(entries, tokens, score arrays or None) when the file exists, is whole and its header has the
    ``expect`` values and this code's signature; else None (a damaged file is logged, never raised)."""
    if not path.is_file():
        return None
    import numpy as np

    from xiaoshuo.memory.schema import MemoryEntry

    try:
        with np.load(path, allow_pickle=False) as z:
            header = _unblob(z["header"])
            want = {**expect, "format": FORMAT, "signature": signature()}
            if any(header.get(k) != v for k, v in want.items()):
                return None
            entries = [MemoryEntry.model_validate(raw) for raw in _unblob(z["entries"])]
            tokens = _unblob(z["tokens"])
            scores = None
            if "data" in z.files:
                scores = {
                    "data": z["data"],
                    "indices": z["indices"],
                    "indptr": z["indptr"],
                    "num_docs": int(z["num_docs"][0]),
                    "vocab": _unblob(z["vocab"]),
                }
        if len(tokens) != len(entries):
            raise ValueError(f"{len(entries)} entries but {len(tokens)} token lists")
        return entries, tokens, scores
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        _log.warning("记忆索引文件损坏，将重建 (memory index file damaged, rebuilding): %s: %s", path, exc)
        return None
    except Exception as exc:  # pydantic's ValidationError, zlib errors: still only a cache
        _log.warning("记忆索引文件无法读取，将重建 (memory index file unreadable, rebuilding): %s: %s", path,
                     exc)  # fmt: skip
        return None


def header(path: Path) -> dict[str, Any] | None:
    """The saved index's header alone (cheap: one small member of the file), None when unreadable."""
    if not path.is_file():
        return None
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            return _unblob(z["header"])
    except Exception:
        return None


def save_journal(path: Path, base: list[Any], version: list[Any], upserted: list[Any], deleted: Any) -> None:
    """Changes from the saved index's (version, count) ``base`` to ``version``: a process that wrote without
    searching leaves them here instead of loading and saving the whole index; the next one applies them."""
    data = {
        "format": FORMAT,
        "base": base,
        "version": version,
        "upserted": [e.model_dump(mode="json") for e in upserted],
        "deleted": sorted(deleted),
    }
    atomic_write(path, json.dumps(data, ensure_ascii=False))


def load_journal(path: Path) -> dict[str, Any] | None:
    """The journal with its entries parsed, None when missing or damaged (then the index is rebuilt)."""
    if not path.is_file():
        return None
    from xiaoshuo.memory.schema import MemoryEntry

    try:
        data = json.loads(path.read_text("utf-8"))
        if data.get("format") != FORMAT:
            return None
        data["upserted"] = [MemoryEntry.model_validate(raw) for raw in data["upserted"]]
        data["base"], data["version"] = list(data["base"]), list(data["version"])
        return data
    except Exception as exc:
        _log.warning("记忆索引日志损坏，将重建 (memory index journal damaged, rebuilding): %s: %s", path, exc)
        return None


def _blob(value: Any) -> Any:
    import numpy as np

    return np.frombuffer(json.dumps(value, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)


def _unblob(array: Any) -> Any:
    return json.loads(array.tobytes().decode("utf-8"))
