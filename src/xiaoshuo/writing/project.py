"""Novel projects on disk: one folder per novel, chapters as plain text, every version kept.

Layout of ``data/novels/<slug>/`` (the slug is also the memory's ``novel``)::

    novel.json                    the novel card
    outline.json                  卷 → 章 with synopses, targets, status and summaries
    chapters/0001.txt             the chapter's current text: plain UTF-8, edit it anywhere
    chapters/0001.state.json      which version the text is, and its sha256
    versions/0001/000001.json     every candidate, edit and import, never rewritten

Durability: every file is written to a temp name, fsynced and renamed (``xiaoshuo.files``), and
a version file is written before anything points at it, so a crash at any point leaves the
previous state readable and every acknowledged version intact.  The text file is the truth: when
its hash differs from the recorded one, :meth:`Novel.sync` keeps it as a new ``edited`` version
(an edit made in another editor) or, if it equals a known version (a crash between two renames),
points the state at that version.  Nothing is ever overwritten without a version to go back to.

Concurrency: one writer per novel across processes — an exclusive ``flock`` on ``.lock`` held for
the whole write operation (a chapter generation holds it for minutes); a second writer gets an
error naming the process that holds it.  Readers never take the lock.

This module stores and reads; it does not generate text or build prompts.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
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
    validation_error,
)
from xiaoshuo.writing.textstats import count_chars


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


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
        except (OSError, ValueError):
            who = "another process"
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
        except (ValueError, ValidationError) as exc:
            raise WritingError(f"novel.json 已损坏 (unreadable): {exc}", received=str(self.root)) from None

    def save_card(self, card: NovelCard) -> None:
        with self._need_writer():
            atomic_write_json(self.root / "novel.json", card.model_dump())

    def outline(self) -> Outline:
        path = self.root / "outline.json"
        if not path.is_file():
            return Outline()
        try:
            return Outline.model_validate(_read_json(path))
        except (ValueError, ValidationError) as exc:
            raise WritingError(f"outline.json 已损坏 (unreadable): {exc}", received=str(path)) from None

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
            old = self.outline()
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

    def text(self, number: int) -> str:
        """The chapter's current text as on disk ('' when not written yet)."""
        try:
            with self.chapter_file(number).open(encoding="utf-8", newline="") as fh:  # keep \r as written
                return fh.read()
        except FileNotFoundError:
            return ""
        except UnicodeDecodeError as exc:
            raise WritingError(
                f"第 {number} 章的文件不是 UTF-8 (chapter file is not UTF-8)",
                received=str(exc),
                fix=f"用 UTF-8 重新保存 {self.chapter_file(number)}",
            ) from None

    def written_chapters(self) -> list[int]:
        folder = self.root / "chapters"
        if not folder.is_dir():
            return []
        return sorted(int(p.stem) for p in folder.glob("[0-9][0-9][0-9][0-9].txt"))

    def state(self, number: int) -> dict[str, Any]:
        try:
            return _read_json(self._state_file(number))
        except (FileNotFoundError, ValueError):
            return {}

    def versions(self, number: int) -> list[Version]:
        folder = self._versions_dir(number)
        out = []
        for path in sorted(folder.glob("[0-9]*.json")) if folder.is_dir() else []:
            try:
                out.append(Version.model_validate(_read_json(path)))
            except (ValueError, ValidationError):
                continue  # a torn file cannot exist (atomic writes), but never fail a listing on one
        return out

    def version(self, number: int, version_id: int) -> Version:
        path = self._versions_dir(number) / f"{version_id:06d}.json"
        try:
            return Version.model_validate(_read_json(path))
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
        """Notice an edit made outside xiaoshuo and keep it as a version; returns it if made."""
        path = self.chapter_file(number)
        if not path.is_file():
            return None
        with self._need_writer():
            text = self.text(number)
            digest = sha256(text)
            state = self.state(number)
            if state.get("sha256") == digest:
                return None
            for v in reversed(self.versions(number)):
                if v.sha256 == digest:  # a crash between the text and the state rename
                    self._write_state(number, v.id, digest)
                    return None
            version = self._new_version(
                number, text, source="edited", kind="outside-edit", parent=state.get("current")
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

    def _new_version(self, number: int, text: str, **meta: Any) -> Version:
        folder = self._versions_dir(number)
        ids = [int(p.stem) for p in folder.glob("[0-9]*.json")] if folder.is_dir() else []
        version = Version(
            id=max(ids, default=0) + 1,
            chapter=number,
            time=time.time(),
            text=text,
            chars=count_chars(text),
            sha256=sha256(text),
            **meta,
        )
        atomic_write_json(folder / f"{version.id:06d}.json", version.model_dump())
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

    def set_text(self, number: int, text: str, *, note: str = "") -> Version:
        """Text written by hand becomes a new, current version."""
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
            json.dumps(version.model_dump(), ensure_ascii=False, indent=2, default=str), "utf-8"
        )
        with self.chapter_file(number).open("w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        self._state_file(number).write_text(
            json.dumps({"current": version.id, "sha256": digest}, ensure_ascii=False, indent=2), "utf-8"
        )

    # ------------------------------------------------------------------ overview
    def overview(self) -> dict[str, Any]:
        card = self.card()
        chapters = []
        for plan in self.outline().chapters():
            text = self.text(plan.number)
            chapters.append(
                {
                    "number": plan.number,
                    "title": plan.title,
                    "status": plan.status,
                    "chars": count_chars(text),
                    "target_chars": plan.target_chars or card.chapter_chars,
                    "versions": len(self.versions(plan.number)),
                    "summary": plan.summary,
                }
            )
        return {
            "card": card.model_dump(),
            "chapters": chapters,
            "total_chars": sum(c["chars"] for c in chapters),
        }


class Novels:
    """The novels under ``data/novels``; migrates the WebUI's old ``data/stories`` on first use."""

    def __init__(self, root: Path, *, stories_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.stories_dir = stories_dir
        self._migrated = False

    @classmethod
    def from_settings(cls, settings: Any) -> Novels:
        data = settings.paths.data_dir
        return cls(data / "novels", stories_dir=data / "stories")

    def get(self, slug: str) -> Novel:
        self.migrate_stories()
        novel = Novel(self.root / check_slug(slug), slug)
        novel.card()  # raises a clear error when missing
        return novel

    def create(self, slug: str, *, title: str, **card: Any) -> Novel:
        self.migrate_stories()
        novel = Novel(self.root / check_slug(slug), slug)
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

    def list(self) -> list[NovelCard]:
        self.migrate_stories()
        cards = []
        for path in sorted(self.root.glob("*/novel.json")) if self.root.is_dir() else []:
            with contextlib.suppress(WritingError):
                cards.append(Novel(path.parent, path.parent.name).card())
        return cards

    def migrate_stories(self) -> list[str]:
        """Bring stories saved by the old 创作 page into novels (chapter 1), keeping the originals."""
        if self._migrated or self.stories_dir is None:
            return []
        self._migrated = True
        index = self.stories_dir / "index.json"
        if not index.is_file():
            return []
        try:
            names: dict[str, str] = _read_json(index)
        except ValueError:
            return []
        record_path = self.root / ".migrated-stories.json"
        try:
            record: dict[str, str] = _read_json(record_path)
        except (FileNotFoundError, ValueError):
            record = {}
        done = []
        for file, name in sorted(names.items()):
            try:
                text = (self.stories_dir / file).read_text("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            digest = sha256(text)
            if record.get(file) == digest or not text.strip():
                continue
            try:
                slug = check_slug(name)
            except WritingError:
                slug = "story-" + Path(file).stem
            novel = Novel(self.root / slug, slug)
            with novel.writer(what="migrate stories"):
                if not novel.exists:
                    novel.save_card(NovelCard(slug=slug, title=name[:200] or slug))
                    novel.save_outline(Outline(volumes=[Volume(title="正文")]))
                novel.ensure_chapter(1, title="正文")
                if sha256(novel.text(1)) != digest:
                    novel.add_version(
                        1, text, source="imported", kind="migrated", accept=True, note=f"data/stories/{file}"
                    )
            record[file] = digest
            done.append(slug)
        if done:
            atomic_write_json(record_path, record)
        return done
