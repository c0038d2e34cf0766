"""随手写's store: one free text per name under ``data/scratch/``, apart from every novel.

The 随手写 page writes freely "for" a name — the memory's novel key, often a book's slug — but what it
writes is a scratch text, never a book's chapter: this store shares no file with ``data/novels/``
and nothing here opens a :class:`~xiaoshuo.writing.project.Novel`.  Layout::

    data/scratch/<sha1(name)[:16]>.txt             the text, saved atomically on every change
    data/scratch/<sha1(name)[:16]>.versions/*.txt  texts a much shorter save replaced (the last KEEP_VERSIONS)
    data/scratch/index.json                         file name → name
    data/scratch/adapters.json                      name → the adapter last chosen for it
    data/scratch/migrated-stories.json              the one-time move of ``data/stories/`` is done

:func:`migrate_stories` moves the texts of the old store (``data/stories/``, written by the first
创作 page and by 随手写 before this store) here, once, when the WebUI starts; the old folder stays as
it is.  This module stores text; it does not generate or build prompts (``webui.generation``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from xiaoshuo.files import atomic_write, atomic_write_json
from xiaoshuo.writing.schema import WritingError

log = logging.getLogger(__name__)

MIGRATION_RECORD = "migrated-stories.json"


class Scratch:
    """One text per name, saved atomically on every change.

    Safe under concurrent Gradio handlers: one lock serialises every read-modify-write of a text,
    ``index.json`` and ``adapters.json``.  A save that would replace a saved text with a much shorter
    one (a reloaded, empty page; an accidental select-all + type) first keeps the saved text as a
    version under ``<hash>.versions/<timestamp>.txt`` (the last ``KEEP_VERSIONS``), so nothing
    accepted is ever lost.
    """

    KEEP_VERSIONS = 20

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Any) -> Scratch:
        return cls(settings.paths.data_dir / "scratch")

    def path(self, name: str) -> Path:
        return self.root / f"{hashlib.sha1(name.encode()).hexdigest()[:16]}.txt"

    def versions_dir(self, name: str) -> Path:
        return self.path(name).with_suffix(".versions")

    def load(self, name: str) -> str:
        try:
            return self.path(name).read_text("utf-8")
        except FileNotFoundError:
            return ""

    @staticmethod
    def shrinks(old: str, new: str) -> bool:
        """Whether ``new`` loses enough of ``old`` to keep ``old`` as a version first."""
        lost = len(old) - len(new)
        return lost > 0 and lost >= max(20, len(old) // 10)

    def save(self, name: str, text: str) -> None:
        with self._lock:
            path = self.path(name)
            old = self.load(name)
            if old == text and path.is_file():
                return
            if old and self.shrinks(old, text):
                self.keep_version(name, old)
            index = self.root / "index.json"
            names = self._read_json(index)
            if names.get(path.name) != name:
                names[path.name] = name
                atomic_write_json(index, names)
            atomic_write(path, text)

    def append_generated(self, name: str, story: str, generated: str) -> str:
        """采用候选: ``story`` + the model's ``generated`` text, cleaned
        (:func:`~xiaoshuo.writing.cleaning.clean_generated`), saved; returns the new story.

        ``story`` is the writer's own text and is kept as it is."""
        from xiaoshuo.writing.cleaning import clean_generated

        text = (story or "") + clean_generated(generated or "")
        self.save(name, text)
        return text

    def keep_version(self, name: str, text: str) -> Path:
        """Keep ``text`` as a version of ``name``'s text (the oldest beyond ``KEEP_VERSIONS`` go)."""
        with self._lock:
            folder = self.versions_dir(name)
            folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{time.time_ns() % 1_000_000_000:09d}"
            target = atomic_write(folder / f"{stamp}.txt", text)
            for extra in self.versions(name)[: -self.KEEP_VERSIONS]:
                extra.unlink(missing_ok=True)
            return target

    def versions(self, name: str) -> list[Path]:
        """Kept versions of ``name``'s text, oldest first."""
        folder = self.versions_dir(name)
        return sorted(folder.glob("*.txt")) if folder.is_dir() else []

    def _read_json(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise WritingError(
                f"随手写的索引文件损坏 (corrupt scratch index): {path.name}",
                expected="a JSON object",
                received=str(exc),
                fix=f"修复或删除 {path}（正文文件不受影响 / the text files are not affected）",
            ) from None
        return data if isinstance(data, dict) else {}

    def adapter(self, name: str) -> str | None:
        """The default adapter for ``name`` (the last one chosen while writing it)."""
        with self._lock:
            return self._read_json(self.root / "adapters.json").get(name)

    def set_adapter(self, name: str, adapter: str) -> None:
        with self._lock:
            path = self.root / "adapters.json"
            data = self._read_json(path)
            if data.get(name) != adapter:
                data[name] = adapter
                atomic_write_json(path, data)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._read_json(self.root / "index.json").values())


def migrate_stories(data_dir: Path) -> list[str]:
    """Move the old ``data/stories/`` texts into the scratch store, once; returns the names moved.

    Runs when the WebUI starts (an explicit call, not a side effect of opening novels) and is
    recorded in ``data/scratch/migrated-stories.json``; later calls do nothing.  It never opens a
    novel.  A name that already has a different scratch text keeps it, and the old text becomes one
    of its kept versions; the old kept versions and adapter choices come along; ``data/stories/``
    itself is left as it is.
    """
    old = Path(data_dir) / "stories"
    scratch = Scratch(Path(data_dir) / "scratch")
    record = scratch.root / MIGRATION_RECORD
    if record.is_file() or not (old / "index.json").is_file():
        return []
    try:
        names = json.loads((old / "index.json").read_text("utf-8"))
        chosen = old / "adapters.json"
        adapters = json.loads(chosen.read_text("utf-8")) if chosen.is_file() else {}
    except (OSError, ValueError) as exc:  # never stops the WebUI; the old folder stays to repair
        log.warning("data/stories not moved to data/scratch (unreadable index): %s", exc)
        return []
    if not isinstance(names, dict) or not isinstance(adapters, dict):
        log.warning("data/stories not moved to data/scratch: its index.json or adapters.json is no object")
        return []
    moved: list[str] = []
    try:
        for file, name in sorted(names.items()):
            if isinstance(name, str) and _move_one(old, scratch, file, name, adapters):
                moved.append(name)
        atomic_write_json(record, {"time": time.time(), "from": str(old), "names": moved})
    except OSError as exc:  # e.g. a full disk: not recorded, so the next start finishes it (idempotent)
        log.warning("moving data/stories to data/scratch stopped (retried at the next start): %s", exc)
    return moved


def _move_one(old: Path, scratch: Scratch, file: str, name: str, adapters: dict[str, Any]) -> bool:
    try:
        text = (old / file).read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    for kept in sorted((old / Path(file).stem).with_suffix(".versions").glob("*.txt")):
        target = scratch.versions_dir(name) / kept.name
        if not target.exists():
            atomic_write(target, kept.read_bytes())
    now = scratch.load(name)
    if not now:
        scratch.save(name, text)
    elif now != text:
        scratch.keep_version(name, text)
    if scratch.adapter(name) is None and isinstance(adapters.get(name), str):
        scratch.set_adapter(name, adapters[name])
    return True
