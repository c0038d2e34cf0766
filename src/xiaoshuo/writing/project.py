"""Novel projects on disk: one folder per novel, chapters as plain text, every version kept.

Layout of ``data/novels/<slug>/`` (the slug is also the memory's ``novel``)::

    novel.json                    the novel card
    outline.json                  卷 → 章 with synopses, targets, status and summaries
    chapters/0001.txt             the chapter's current text: plain UTF-8, edit it anywhere
    chapters/0001.state.json      which version the text is, and its sha256
    versions/0001/000001.json     every candidate, edit and import, never rewritten
    versions/0001/000007.raw      the bytes of an outside edit that could not be decoded (kept as is)

Chapter numbers have at least four digits in file names (``10000.txt`` follows ``9999.txt``).

Durability: every file is written to a temp name, fsynced and renamed (``xiaoshuo.files``), and
a version file is written before anything points at it, so a crash at any point leaves the
previous state readable and every acknowledged version intact.  The text file is the truth: when
its hash differs from the recorded one, :meth:`Novel.sync` keeps it as a new ``edited`` version
(an edit made in another editor) or, if it equals a known version (a crash between two renames),
points the state at that version.  Nothing is ever overwritten without a version to go back to.
An outside edit saved as GBK/GB18030/Big5/UTF-16 is decoded as ``prepare`` decodes
(:func:`xiaoshuo.data.decoding.decode_bytes`) and kept as a UTF-8 version; a file that decodes in
no encoding is kept byte for byte (``.raw``) beside a best-effort version, so ``chapter set`` can
always replace it.

Concurrency: one writer per novel across processes — an exclusive ``flock`` on ``.lock`` held for
the whole write operation (a chapter generation holds it for minutes); a second writer gets an
error naming the process that holds it.  Readers never take the lock: :meth:`Novel.read` tells
a reader which version the file is, or that it is an outside edit not recorded yet — the next
writer records it (every write calls :meth:`Novel.sync` first).

This module stores and reads novels; it does not generate text or build prompts, and it does not
hold 随手写's scratch texts (:mod:`xiaoshuo.writing.scratch`).
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from xiaoshuo.files import atomic_write, atomic_write_json
from xiaoshuo.writing.schema import (
    ChapterPlan,
    NovelCard,
    Outline,
    Version,
    Volume,
    WritingError,
    check_slug,
    error_path,
    validation_error,
)
from xiaoshuo.writing.textstats import count_chars


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


_CHAPTER_FILE = re.compile(r"(\d{4,})\.txt")  # 0001.txt … 9999.txt, 10000.txt …
_VERSION_FILE = re.compile(r"(\d{6,})\.json")  # 000001.json …, 1000000.json


@dataclass(frozen=True)
class ChapterText:
    """A chapter file as a reader sees it, read without the writer lock (:meth:`Novel.read`)."""

    number: int
    text: str = ""  # '' when not written; a best-effort decode when ``problem``
    exists: bool = False  # the chapter file is on disk
    version: int | None = None  # the recorded version this text is (None: not written, or ``outside_edit``)
    outside_edit: bool = False  # differs from every version: the next write keeps it as one
    encoding: str = "utf-8"  # how the file was decoded (an outside editor may save GBK, UTF-16, …)
    problem: str = ""  # why the file cannot be decoded ('' when it can)


def decode_chapter(data: bytes, name: str) -> tuple[str, str, str]:
    """``(text, encoding, problem)`` of a chapter file's bytes: UTF-8, else what ``prepare`` detects,
    else a best-effort UTF-8 decode with ``problem`` saying why (never raises)."""
    try:
        return data.decode("utf-8"), "utf-8", ""
    except UnicodeDecodeError:
        pass
    from xiaoshuo.data.decoding import decode_bytes
    from xiaoshuo.errors import XiaoshuoError

    try:
        got = decode_bytes(data, name)
    except XiaoshuoError as exc:
        return data.decode("utf-8", errors="replace"), "undecodable", exc.message
    return got.text, got.encoding, ""


def _damaged(name: str, where: Path, exc: Exception, fix: str) -> WritingError:
    """One line for a card or outline file that does not load (pydantic's own text spans lines)."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        why = f"{error_path(tuple(first.get('loc', ())))}: {first.get('msg')}"
        why += f" (+{more} more)" if more else ""
    else:
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
    return WritingError(f"{name} 已损坏 (unreadable): {why}", received=str(where), fix=fix)


class NovelLockedError(WritingError):
    """Another process (or another writer in this one) is writing this novel."""


class Novel:
    """One novel folder.  Reads are lock-free; writes go through :meth:`writer`."""

    def __init__(self, root: Path, slug: str) -> None:
        self.slug = check_slug(slug)
        self.root = Path(root)
        self._fd: int | None = None
        self._depth = 0
        self._mutex = threading.RLock()

    # ------------------------------------------------------------------ locking
    @contextlib.contextmanager
    def writer(self, *, timeout: float = 0.0, what: str = "") -> Iterator[Novel]:
        """Hold the novel's write lock (re-entrant on this object).

        ``timeout``: seconds to wait for another writer (0 = fail at once, < 0 = wait forever).
        """
        if not self._mutex.acquire(blocking=timeout != 0, timeout=timeout if timeout > 0 else -1):
            raise NovelLockedError(f"《{self.slug}》正在被本进程的另一个操作写入 (busy in this process)")
        try:
            if self._depth == 0:
                self._acquire(timeout, what)
            self._depth += 1
            try:
                if self._depth == 1:
                    self.recover_bulk_import()  # an import killed before its commit
                yield self
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release()
        finally:
            self._mutex.release()

    def _acquire(self, timeout: float, what: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if timeout >= 0 and time.monotonic() >= deadline:
                    os.close(fd)
                    raise self._locked_error() from None
                time.sleep(0.05)
        self._fd = fd
        owner = {"pid": os.getpid(), "since": time.time(), "what": what, "argv": sys.argv[:6]}
        with contextlib.suppress(OSError):
            atomic_write_json(self.root / ".lock.owner.json", owner)

    def _release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                (self.root / ".lock.owner.json").unlink()
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _locked_error(self) -> NovelLockedError:
        try:
            owner = _read_json(self.root / ".lock.owner.json")
            since = time.strftime("%H:%M:%S", time.localtime(owner.get("since", 0)))
            what = owner.get("what") or " ".join(owner.get("argv", []))
            who = f"pid {owner.get('pid')} ({what}) since {since}"
        except (OSError, ValueError, AttributeError):
            owner, what, who = {}, "", "another process"
        if owner.get("pid") == os.getpid():  # e.g. the WebUI: a chapter of this book is generating
            return NovelLockedError(
                f"《{self.slug}》正在写入：{what} (this process is writing this novel: {what})",
                received=who,
                expected="one writer per novel at a time",
                fix="等它完成（或点「停止」）后再保存；打开和阅读章节不受影响",
            )
        return NovelLockedError(
            f"《{self.slug}》正被另一个进程写入 (another process is writing this novel)",
            received=who,
            expected="one writer per novel at a time",
            fix="等它完成（或停止该进程）后重试；只读命令（show / versions / diff）可以同时运行",
        )

    def _need_writer(self) -> contextlib.AbstractContextManager:
        return self.writer() if self._depth == 0 else contextlib.nullcontext(self)

    # ------------------------------------------------------------------ card & outline
    @property
    def exists(self) -> bool:
        return (self.root / "novel.json").is_file()

    def card(self) -> NovelCard:
        try:
            return NovelCard.model_validate(_read_json(self.root / "novel.json"))
        except FileNotFoundError:
            raise WritingError(
                f"没有这本小说 (no such novel): {self.slug}",
                fix=f"xiaoshuo novel new {self.slug} --title 书名；或 xiaoshuo novel list 查看已有小说",
            ) from None
        except (ValueError, ValidationError, RecursionError) as exc:
            raise _damaged("novel.json", self.root, exc, "修正 novel.json（JSON），或从备份恢复") from None

    def save_card(self, card: NovelCard) -> None:
        with self._need_writer():
            atomic_write_json(self.root / "novel.json", card.model_dump())

    def outline(self) -> Outline:
        path = self.root / "outline.json"
        if not path.is_file():
            return Outline()
        try:
            return Outline.model_validate(_read_json(path))
        except (ValueError, ValidationError, RecursionError) as exc:
            raise _damaged(
                "outline.json", path, exc, "修正 outline.json（JSON），或 xiaoshuo outline import 完好的大纲"
            ) from None

    def save_outline(self, outline: Outline) -> None:
        with self._need_writer():
            atomic_write_json(self.root / "outline.json", outline.model_dump())

    def import_outline(self, data: Any) -> Outline:
        """Replace the plan with ``{"volumes": [...]}``; chapters already written keep their status."""
        if not isinstance(data, dict) or "volumes" not in data:
            raise WritingError(
                "大纲格式不对 (malformed outline): volumes",
                expected='{"volumes": [{"title": …, "chapters": [{"title": …, "synopsis": …}]}]}',
                received=type(data).__name__ if not isinstance(data, dict) else sorted(data),
            )
        raw = json.loads(json.dumps(data))
        n = 0
        for vol in raw.get("volumes") or []:
            for ch in (vol.get("chapters") or []) if isinstance(vol, dict) else []:
                n += 1
                if isinstance(ch, dict):
                    ch.setdefault("number", n)
        try:
            outline = Outline.model_validate(raw)
        except ValidationError as exc:
            raise validation_error("大纲 (outline)", exc) from None
        outline.renumber()
        with self._need_writer():
            try:
                old = self.outline()
            except WritingError:  # a damaged outline is replaced (repaired), its file kept beside it
                damaged = self.root / "outline.json"
                atomic_write(
                    damaged.with_name(f"outline.damaged-{time.strftime('%Y%m%dT%H%M%S')}.json"),
                    damaged.read_bytes(),
                )
                old = Outline()
            for c in outline.chapters():
                before = old.chapter(c.number)
                if before is not None and self.chapter_file(c.number).is_file():
                    c.status = before.status if before.status != "planned" else "drafted"
                    c.summary = c.summary or before.summary
            self.save_outline(outline)
        return outline

    def plan(self, number: int) -> ChapterPlan:
        plan = self.outline().chapter(number)
        if plan is None:
            raise WritingError(
                f"大纲里没有第 {number} 章 (chapter {number} is not in the outline)",
                expected=f"1..{len(self.outline().chapters())}",
                received=number,
                fix="先 xiaoshuo outline import FILE 导入大纲，或写下一章（编号 = 已有章数 + 1）",
            )
        return plan

    def ensure_chapter(self, number: int, *, title: str | None = None) -> ChapterPlan:
        """The plan of chapter ``number``; the next chapter after the last is added on demand."""
        outline = self.outline()
        plan = outline.chapter(number)
        if plan is not None:
            return plan
        if number != len(outline.chapters()) + 1:
            return self.plan(number)  # raises with the range
        with self._need_writer():
            if not outline.volumes:
                outline.volumes.append(Volume(title="正文"))
            plan = ChapterPlan(number=number, title=title or f"第{number}章")
            outline.volumes[-1].chapters.append(plan)
            self.save_outline(outline)
        return plan

    def update_plan(self, number: int, **fields: Any) -> ChapterPlan:
        with self._need_writer():
            outline = self.outline()
            plan = outline.chapter(number) or self.plan(number)
            for key, value in fields.items():
                setattr(plan, key, value)
            ChapterPlan.model_validate(plan.model_dump())
            self.save_outline(outline)
            return plan

    def set_summary(self, number: int, summary: str) -> None:
        self.update_plan(number, summary=summary.strip())

    # ------------------------------------------------------------------ chapters
    def chapter_file(self, number: int) -> Path:
        return self.root / "chapters" / f"{number:04d}.txt"

    def _state_file(self, number: int) -> Path:
        return self.root / "chapters" / f"{number:04d}.state.json"

    def _versions_dir(self, number: int) -> Path:
        return self.root / "versions" / f"{number:04d}"

    def _load(self, number: int) -> tuple[bytes, ChapterText] | None:
        """The chapter file's bytes and decoded text (no version matching); None when not written."""
        path = self.chapter_file(number)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        text, encoding, problem = decode_chapter(data, str(path))
        return data, ChapterText(number, text, True, encoding=encoding, problem=problem)

    def text(self, number: int) -> str:
        """The chapter's current text as on disk ('' when not written yet), decoded like ``prepare``
        decodes when an outside editor saved it as GBK, UTF-16, …  (``\r`` stays as written)."""
        loaded = self._load(number)
        if loaded is None:
            return ""
        got = loaded[1]
        if got.problem:
            raise WritingError(
                f"第 {number} 章的文件无法解码 (chapter file cannot be decoded)",
                expected="a text file (UTF-8, GB18030/GBK, Big5 or UTF-16)",
                received=f"{self.chapter_file(number)}: {got.problem}",
                fix=f"xiaoshuo chapter set --novel {self.slug} {number} --file 修好的正文.txt"
                "（原文件会作为一个版本保留 / the file is kept as a version）",
            )
        return got.text

    def read(self, number: int, *, version: bool = True) -> ChapterText:
        """The chapter as a reader sees it, without the writer lock (a long write never blocks it):
        its text, which recorded version it is, or that it is an outside edit the next write records
        (``version=False``: the text only).  An undecodable file is a best-effort text with
        ``problem`` set; this never raises for it."""
        loaded = self._load(number)
        if loaded is None:
            return ChapterText(number)
        got = loaded[1]
        if not version:
            return got
        digest = sha256(got.text)
        state = self.state(number)
        vid = state.get("current") if state.get("sha256") == digest else None
        if vid is None:  # a crash between the text and the state rename, or an outside edit
            vid = next((v.id for v in reversed(self.versions(number)) if v.sha256 == digest), None)
        return ChapterText(
            number,
            got.text,
            True,
            version=vid,
            outside_edit=vid is None,
            encoding=got.encoding,
            problem=got.problem,
        )

    def written_chapters(self) -> list[int]:
        """Numbers of the chapters with a text file (any number of digits: 10000.txt too)."""
        folder = self.root / "chapters"
        if not folder.is_dir():
            return []
        numbers = []
        for path in folder.iterdir():
            match = _CHAPTER_FILE.fullmatch(path.name)
            if match and path.name == self.chapter_file(int(match[1])).name and path.is_file():
                numbers.append(int(match[1]))
        return sorted(numbers)

    def state(self, number: int) -> dict[str, Any]:
        try:
            return _read_json(self._state_file(number))
        except (FileNotFoundError, ValueError):
            return {}

    def _version_ids(self, number: int) -> list[int]:
        folder = self._versions_dir(number)
        names = (p.name for p in folder.iterdir()) if folder.is_dir() else ()
        return sorted(int(m[1]) for m in map(_VERSION_FILE.fullmatch, names) if m)

    def versions(self, number: int) -> list[Version]:
        out = []
        for vid in self._version_ids(number):
            try:
                out.append(Version.model_validate(_read_json(self._version_file(number, vid))))
            except (ValueError, ValidationError):
                continue  # a torn file cannot exist (atomic writes), but never fail a listing on one
        return out

    def _version_file(self, number: int, version_id: int) -> Path:
        return self._versions_dir(number) / f"{version_id:06d}.json"

    def version(self, number: int, version_id: int) -> Version:
        try:
            return Version.model_validate(_read_json(self._version_file(number, version_id)))
        except FileNotFoundError:
            ids = [v.id for v in self.versions(number)]
            raise WritingError(
                f"第 {number} 章没有版本 {version_id} (no such version)",
                expected="one of " + (", ".join(map(str, ids)) or "(none yet)"),
                received=version_id,
                fix=f"xiaoshuo chapter versions --novel {self.slug} {number}",
            ) from None

    def current_version(self, number: int) -> int | None:
        return self.state(number).get("current")

    def sync(self, number: int) -> Version | None:
        """Notice an edit made outside xiaoshuo and keep it as a version; returns it if made.

        Writers call this (it takes the writer lock); readers use :meth:`read`, which never waits.
        A file in another encoding is kept as a UTF-8 version; an undecodable one as a best-effort
        version plus its bytes (``versions/NNNN/<id>.raw``), so nothing an outside editor saved is lost."""
        path = self.chapter_file(number)
        if not path.is_file():
            return None
        with self._need_writer():
            loaded = self._load(number)
            if loaded is None:
                return None
            data, got = loaded
            digest = sha256(got.text)
            state = self.state(number)
            if state.get("sha256") == digest:
                return None
            for v in reversed(self.versions(number)):
                if v.sha256 == digest:  # a crash between the text and the state rename
                    self._write_state(number, v.id, digest)
                    return None
            note, raw = "", None
            if got.problem:
                note, raw = f"无法解码，原始字节另存 (undecodable: {got.problem}; raw bytes kept)", data
            elif got.encoding != "utf-8":
                note = f"外部编辑器保存为 {got.encoding}，已转为 UTF-8 (decoded from {got.encoding})"
            version = self._new_version(
                number,
                got.text,
                raw=raw,
                source="edited",
                kind="outside-edit",
                parent=state.get("current"),
                note=note,
            )
            self._write_state(number, version.id, digest)
            return version

    def add_version(
        self, number: int, text: str, *, source: str, kind: str, accept: bool = False, **meta: Any
    ) -> Version:
        """Store ``text`` as a new version of chapter ``number`` (and make it current if ``accept``)."""
        with self._need_writer():
            self.sync(number)
            meta.setdefault("parent", self.current_version(number))
            version = self._new_version(number, text, source=source, kind=kind, **meta)
            if accept:
                self.accept(number, version.id)
            return version

    def _new_version(self, number: int, text: str, *, raw: bytes | None = None, **meta: Any) -> Version:
        version = Version(
            id=max(self._version_ids(number), default=0) + 1,
            chapter=number,
            time=time.time(),
            text=text,
            chars=count_chars(text),
            sha256=sha256(text),
            **meta,
        )
        path = self._version_file(number, version.id)
        if raw is not None:  # on disk before the version that names it
            atomic_write(path.with_suffix(".raw"), raw)
        atomic_write_json(path, version.model_dump())
        return version

    def accept(self, number: int, version_id: int) -> Version:
        """Make a version the chapter's text (an outside edit is kept as a version first)."""
        with self._need_writer():
            self.sync(number)
            version = self.version(number, version_id)
            atomic_write(self.chapter_file(number), version.text)
            self._write_state(number, version.id, version.sha256)
            outline = self.outline()
            plan = outline.chapter(number)
            if plan is not None and plan.status == "planned":
                plan.status = "drafted"
                self.save_outline(outline)
            return version

    def revert(self, number: int, version_id: int) -> Version:
        """Bring back an older version's text as a new version (history stays linear)."""
        old = self.version(number, version_id)
        return self.add_version(
            number, old.text, source="edited", kind="revert", accept=True, note=f"revert to {version_id}"
        )

    def set_text(self, number: int, text: str, *, note: str = "", allow_empty: bool = False) -> Version:
        """Text written by hand becomes a new, current version (it replaces even a damaged file).

        An empty or whitespace-only text is refused unless ``allow_empty`` (an empty file or editor is
        far more often a mistake than a wish to empty the chapter)."""
        if not text.strip() and not allow_empty:
            raise WritingError(
                f"第 {number} 章的新正文是空的，未保存 (the new text is empty; nothing saved)",
                expected="some text",
                received=f"{len(text)} characters, all whitespace" if text else "an empty text",
                fix="检查文件或编辑框；确实要清空本章时加 --allow-empty（旧正文仍保留为版本）",
            )
        self.ensure_chapter(number)
        return self.add_version(number, text, source="edited", kind="set", accept=True, note=note)

    def _write_state(self, number: int, version_id: int, digest: str) -> None:
        atomic_write_json(self._state_file(number), {"current": version_id, "sha256": digest})

    def diff(self, number: int, a: int, b: int) -> list[dict[str, Any]]:
        """Character-level diff of two versions: ``[{"op": "equal|insert|delete|replace", "a", "b"}]``."""
        ta, tb = self.version(number, a).text, self.version(number, b).text
        matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
        return [
            {"op": op, "a": ta[i1:i2], "b": tb[j1:j2], "a_start": i1, "b_start": j1}
            for op, i1, i2, j1, j2 in matcher.get_opcodes()
        ]

    # ------------------------------------------------------------------ bulk import (novel import)
    BULK_JOURNAL = ".bulk-import.json"  # present only while a bulk import is unfinished

    def bulk_import(
        self,
        volumes: list[tuple[str, list[tuple[str, str, int]]]],
        *,
        note: str,
        durable: bool = True,
        progress: Any = None,
    ) -> list[int]:
        """Add whole chapters after the outline's last one, all or nothing; returns their numbers.

        ``volumes``: ``[(volume title, [(chapter title, text, 字), …]), …]`` in order; a volume whose
        title equals the outline's last volume continues it.  Every chapter gets one current ``imported``
        version and status ``final``.  The outline write is the commit: before it, a journal
        (``.bulk-import.json``) names the chapters being written, and whoever takes the lock next
        (:meth:`recover_bulk_import`) removes an unfinished import's files — so a crash, ``kill -9``
        or an error never leaves chapters outside the outline.  ``durable=False`` skips the one
        ``os.sync()`` before the commit (a staging folder the caller syncs before making it visible).
        ``progress(chapters written: int)``, when given, is called every 20 chapters.
        """
        with self._need_writer():
            self.recover_bulk_import()
            outline = self.outline()
            first = len(outline.chapters()) + 1
            beyond = [n for n in self.written_chapters() if n >= first]
            if beyond:
                raise WritingError(
                    f"第 {beyond[0]} 章有正文但不在大纲里 (chapter files beyond the outline)",
                    expected=f"chapters 1..{first - 1} only",
                    received=", ".join(map(str, beyond[:10])),
                    fix="先把这些章节加入大纲（xiaoshuo outline import）或移走它们，再导入",
                )
            jobs = []
            for vol_title, chapters in volumes:
                plans = []
                for title, text, chars in chapters:
                    number = first + len(jobs)
                    plans.append(ChapterPlan(number=number, title=title, status="final"))
                    jobs.append((number, text, chars))
                if outline.volumes and outline.volumes[-1].title == vol_title:
                    outline.volumes[-1].chapters.extend(plans)
                else:
                    outline.volumes.append(Volume(title=vol_title, chapters=plans))
            numbers = [n for n, _, _ in jobs]
            if not numbers:
                return []
            journal = self.root / self.BULK_JOURNAL
            atomic_write_json(
                journal,
                {
                    "pid": os.getpid(),
                    "time": time.time(),
                    "first": first,
                    "last": numbers[-1],
                    "outline_sha256": self._outline_digest(),
                    "note": note,
                },
            )
            try:
                (self.root / "chapters").mkdir(parents=True, exist_ok=True)
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(4) as pool:  # independent files, no fsync each: I/O bound
                    futures = [pool.submit(self._write_imported, n, text, note, c) for n, text, c in jobs]
                    for i, future in enumerate(futures, start=1):
                        future.result()
                        if progress and i % 20 == 0:
                            progress(i)
                if durable:
                    os.sync()  # one flush for every chapter before the outline points at them
                self.save_outline(outline)  # the commit
            except BaseException:
                self.recover_bulk_import()
                raise
            journal.unlink(missing_ok=True)
            if progress:
                progress(len(numbers))
            return numbers

    def recover_bulk_import(self) -> list[int]:
        """Remove what an unfinished :meth:`bulk_import` wrote (needs the lock); returns those numbers.

        The journal is only ever seen by a lock holder after its writer died or failed: the writer holds
        the lock from the journal's creation to its removal.  When the outline changed since the journal
        was written the import was committed, and only the journal goes.
        """
        journal = self.root / self.BULK_JOURNAL
        if self._depth == 0 or not journal.is_file():
            return []
        try:
            record = _read_json(journal)
            first, last = int(record["first"]), int(record["last"])
            committed = record.get("outline_sha256") != self._outline_digest()
        except (OSError, ValueError, KeyError, TypeError):
            committed, first, last = False, 0, -1
        import shutil

        removed = []
        if not committed:
            planned = {c.number for c in self.outline().chapters()}
            for n in range(max(first, 1), last + 1):
                if n in planned:
                    continue  # never touch a chapter the outline knows
                self.chapter_file(n).unlink(missing_ok=True)
                self._state_file(n).unlink(missing_ok=True)
                shutil.rmtree(self._versions_dir(n), ignore_errors=True)
                removed.append(n)
        journal.unlink(missing_ok=True)
        return removed

    def _outline_digest(self) -> str:
        try:
            return hashlib.sha256((self.root / "outline.json").read_bytes()).hexdigest()
        except FileNotFoundError:
            return ""

    def _write_imported(self, number: int, text: str, note: str, chars: int) -> None:
        """Chapter ``number`` as one current ``imported`` version, files written without a sync each."""
        digest = sha256(text)
        version = Version(
            id=1,
            chapter=number,
            time=time.time(),
            source="imported",
            kind="import",
            text=text,
            chars=chars,
            sha256=digest,
            note=note,
        )
        folder = self._versions_dir(number)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{version.id:06d}.json").write_text(
            # compact: json's C encoder (indent= makes it use the pure-Python one, 5x slower on a book)
            json.dumps(version.model_dump(), ensure_ascii=False, default=str), "utf-8"
        )
        with self.chapter_file(number).open("w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        self._state_file(number).write_text(
            json.dumps({"current": version.id, "sha256": digest}, ensure_ascii=False), "utf-8"
        )

    # ------------------------------------------------------------------ overview
    def overview(self) -> dict[str, Any]:
        card = self.card()
        chapters = []
        for plan in self.outline().chapters():
            loaded = self._load(plan.number)
            got = loaded[1] if loaded else ChapterText(plan.number)
            chapters.append(
                {
                    "number": plan.number,
                    "title": plan.title,
                    "status": plan.status,
                    "chars": count_chars(got.text),
                    "target_chars": plan.target_chars or card.chapter_chars,
                    "versions": len(self._version_ids(plan.number)),
                    "summary": plan.summary,
                    "problem": got.problem,
                }
            )
        return {
            "card": card.model_dump(),
            "chapters": chapters,
            "total_chars": sum(c["chars"] for c in chapters),
        }

    def summary(self, *, chapters: bool = True) -> NovelSummary:
        """One row of the novel list; damage (an unreadable card, outline or chapter file) is reported
        in ``problems``, never raised, so one damaged novel never hides the others.  ``chapters=False``
        reads the card and outline only (no counts of written text, no chapter file checked)."""
        out = NovelSummary(slug=self.slug, title=self.slug)
        try:
            card = self.card()
            out.title, out.genre = card.title, card.genre
        except WritingError as exc:
            out.problems.append(exc.message)
        try:
            plans = [c.number for c in self.outline().chapters()]
        except WritingError as exc:
            out.problems.append(exc.message)
            plans = []
        out.chapters = len(plans)
        for number in sorted(set(plans) | set(self.written_chapters())) if chapters else ():
            loaded = self._load(number)
            if loaded is None:
                continue
            got = loaded[1]
            if got.problem:
                out.problems.append(f"第 {number} 章的文件无法解码 (chapter {number} cannot be decoded)")
            chars = count_chars(got.text)
            out.written += bool(chars)
            out.total_chars += chars
        return out


@dataclass
class NovelSummary:
    """A row of ``novel list`` (CLI and WebUI): counts, and what is damaged (``problems``)."""

    slug: str
    title: str
    genre: str = ""
    chapters: int = 0  # in the outline
    written: int = 0  # chapters with text
    total_chars: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "title": self.title,
            "genre": self.genre,
            "chapters": self.chapters,
            "written": self.written,
            "total_chars": self.total_chars,
            "problems": list(self.problems),
        }


class Novels:
    """The novels under ``data/novels`` (随手写's texts are not novels: :mod:`xiaoshuo.writing.scratch`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def from_settings(cls, settings: Any) -> Novels:
        return cls(settings.paths.data_dir / "novels")

    def get(self, slug: str) -> Novel:
        """The novel ``slug`` names (or, when no slug is that, the one novel with that title)."""
        slug = self.resolve(slug)
        novel = Novel(self.root / check_slug(slug), slug)
        novel.card()  # raises a clear error when missing
        return novel

    def resolve(self, key: str) -> str:
        """The slug ``key`` means: a novel's slug (folder and memory key) as it is; otherwise the title of
        exactly one novel gives that novel's slug; anything else is returned as given (:meth:`get` then
        says there is no such novel; memory keeps entries under any key).  Two novels with that title
        and none with that slug is an error listing their slugs — one identifier, never a guess."""
        s = (key or "").strip()
        try:
            if (self.root / check_slug(s) / "novel.json").is_file():
                return s
        except WritingError:
            pass  # not a slug (a title with / in it …): may still be a title
        if not s:
            return key
        same = []
        for folder in self._folders():
            with contextlib.suppress(WritingError):
                if Novel(folder, folder.name).card().title.strip() == s:
                    same.append(folder.name)
        if len(same) > 1:
            raise WritingError(
                f"有 {len(same)} 本小说都叫《{s}》，请用标识 (ambiguous title: use the slug)",
                expected="one of " + ", ".join(same),
                received=s,
                fix=f"--novel {same[0]}（xiaoshuo novel list 列出标识 slug）",
            )
        return same[0] if same else key

    def create(self, slug: str, *, title: str, **card: Any) -> Novel:
        novel = Novel(self.root / check_slug(slug), slug)
        self.check_new_slug(novel.slug)
        try:
            new = NovelCard(slug=novel.slug, title=title, **{k: v for k, v in card.items() if v is not None})
        except ValidationError as exc:
            raise validation_error("小说信息 (novel card)", exc) from None
        with novel.writer(what="novel new"):
            if novel.exists:
                raise WritingError(
                    f"小说已存在 (novel exists): {slug}",
                    fix=f"换一个标识，或用 xiaoshuo novel show {slug} 查看",
                )
            novel.save_card(new)
            novel.save_outline(Outline())
        return novel

    def check_new_slug(self, slug: str) -> None:
        """Refuse a new novel's ``slug`` that is another novel's title: it would silently move ``--novel
        <title>`` from that novel to the new one (:meth:`resolve` prefers a slug)."""
        if (self.root / slug / "novel.json").is_file():
            return  # an existing novel: the caller says "exists"
        owner = self.resolve(slug)  # two novels with that title: resolve's own error
        if owner != slug:
            raise WritingError(
                f"「{slug}」是小说 {owner} 的书名，不能再用作标识 (the slug is another novel's title)",
                expected=f"a slug that is no novel's title (--novel {slug} means {owner})",
                received=slug,
                fix=f"换一个标识；要写《{slug}》这本书请用 --novel {owner}",
            )

    def _folders(self) -> list[Path]:
        return sorted(p.parent for p in self.root.glob("*/novel.json")) if self.root.is_dir() else []

    def list(self) -> list[NovelCard]:
        """The cards of the novels whose card is readable (:meth:`summaries` lists damaged ones too)."""
        cards = []
        for folder in self._folders():
            with contextlib.suppress(WritingError):
                cards.append(Novel(folder, folder.name).card())
        return cards

    def summaries(self, *, chapters: bool = True) -> list[NovelSummary]:
        """Every novel folder as a list row, the damaged ones with their ``problems``
        (``chapters=False``: card and outline only, for a quick picker)."""
        out = []
        for folder in self._folders():
            try:
                novel = Novel(folder, folder.name)
            except WritingError as exc:  # a folder name that is no slug (made by hand)
                out.append(NovelSummary(slug=folder.name, title=folder.name, problems=[exc.message]))
                continue
            out.append(novel.summary(chapters=chapters))
        return out
