"""The story-memory store over ChromaDB: one collection per novel.

Embedded ``PersistentClient`` at ``data/chroma_db`` by default; ``HttpClient`` when
``memory.chroma_url`` is set (a Chroma server: the path to more processes and
machines).  Chroma is not process-safe on one path (two writers silently lost
vectors in our checks), so an embedded store takes an exclusive ``flock`` on
``<path>/.xiaoshuo.lock`` and a second writer — another process, or a second
store object in this one — is refused with the holder's pid.

Each entry is stored whole as JSON in its metadata (plus scalar fields for
filters), so export → import is exact.  Writes go in batches below Chroma's max
batch size and return after Chroma committed them.  ``memory.max_memory_items``
per novel is enforced by ``memory.overflow_policy``: ``reject`` (default: the add
fails, nothing is written) or ``archive_plot`` (the least important, oldest,
unpinned plot entries are archived — kept, exported, but no longer retrieved).
The embedding model a novel was indexed with is recorded on its collection.  Reads
never depend on it; writes embed first (a model that does not load changes nothing
and records nothing) and refuse a novel indexed with another model, unless that
novel is empty; :meth:`MemoryStore.nearest` raises :class:`DenseUnavailableError`
(the caller degrades to triggers + BM25) when the dense part cannot run.
Retrieval lives in :mod:`xiaoshuo.memory.retrieval`; this module stores.

The retrieval index (BM25 + triggers) of an embedded store is saved beside it
(``<path>/index/``, :mod:`xiaoshuo.memory.index_file`) and reused by the next process
when no write happened in between: the store replaces the novel's version token before
every write, and an index file is used only at the version it was built at.  A write
updates this process's index incrementally (only the changed entries are tokenized
again); the file is written after a full build and, when writes changed the index, at
:meth:`MemoryStore.close`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from xiaoshuo.config import Settings
from xiaoshuo.memory.schema import (
    DEFAULT_NOVEL,
    KINDS,
    DenseUnavailableError,
    MemoryEntry,
    StoryMemoryError,
    make_entry,
)

EXPORT_VERSION = 1
SHARED_INDEX_TTL_S = 30.0


class StoreLockedError(StoryMemoryError):
    """Another writer holds this store path."""


class EmbeddingModelChangedError(StoryMemoryError):
    """A write to a novel indexed with another embedding model."""


def _reindex_fix(novel: str, stored: str, model: str) -> str:
    return (
        f"运行 xiaoshuo memory reindex --novel {novel} 用 {model!r} 重建索引 "
        f"(rebuild the index with the configured model)，或把 memory.embedding_model 改回 {stored!r} "
        "(or set memory.embedding_model back)"
    )


def _collection_name(novel: str) -> str:
    return "novel_" + hashlib.sha1(novel.encode("utf-8")).hexdigest()[:20]


class MemoryStore:
    """Open with ``MemoryStore(settings)``; close (or use as a context manager) to release the lock."""

    def __init__(self, settings: Settings, *, path: str | os.PathLike[str] | None = None) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        from xiaoshuo.memory.embeddings import embedding_function

        self.settings = settings
        mem = settings.memory
        self.embedding = embedding_function(mem.embedding_model)
        self._lock_fh = None
        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        if mem.chroma_url:
            from urllib.parse import urlparse

            url = urlparse(mem.chroma_url)
            self.client = chromadb.HttpClient(
                host=url.hostname or "localhost",
                port=url.port or 8000,
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
            self.path = None
        else:
            self.path = Path(path) if path is not None else settings.paths.chroma_dir
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock()
            # an absolute path: Chroma caches one system per path string in the process, so a relative
            # "data/chroma_db" opened from another folder would reuse the first folder's database
            self.client = chromadb.PersistentClient(path=str(self.path.resolve()), settings=chroma_settings)
        self.max_batch = max(1, min(self.client.get_max_batch_size(), 5000) - 1)
        self._collections: dict[str, Any] = {}
        self._retrievers: dict[str, Any] = {}
        self._unsaved: set[str] = set()  # novels whose index in this process changed since it was saved
        self._pending: dict[str, _Pending] = {}  # writes not yet applied to the index

    # ------------------------------------------------------------ lifecycle
    def _lock(self) -> None:
        import fcntl

        lock_path = self.path / ".xiaoshuo.lock"
        fh = lock_path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise StoreLockedError(
                "记忆库正被另一个进程写入 (the memory store is in use by another writer)",
                expected="one writer per store path (Chroma is not process-safe on one path)",
                received=f"{self.path} locked by {holder}",
                fix="停止另一个 xiaoshuo 进程，或在它的 WebUI「记忆」页里做这件事 "
                "(stop the other process, or do this in the WebUI's 记忆 page)；"
                f"或让两边共用 Chroma 服务器：chroma run --path {self.path} --port 8000，"
                '再设置 memory.chroma_url = "http://localhost:8000" '
                "(or run a Chroma server and point memory.chroma_url at it)",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._lock_fh = fh

    def close(self) -> None:
        try:
            if self.path is not None and self._lock_fh is not None:
                for novel in sorted(self._pending):
                    if novel in self._retrievers:
                        self.retriever(novel)  # applies the pending writes
                    else:
                        self._journal(novel, self._pending[novel])
                for novel in sorted(self._unsaved):
                    if novel in self._retrievers:
                        self._save_index(novel, self._retrievers[novel][0])
        except Exception as exc:  # the index is a cache: never keep the lock for it
            import logging

            logging.getLogger("xiaoshuo.memory").warning(
                "记忆索引未能保存，下次将重建 (memory index not saved, rebuilt next time): %s", exc
            )
        self._pending.clear()
        self._unsaved.clear()
        self._collections.clear()
        self._retrievers.clear()
        if self._lock_fh is not None:
            import fcntl

            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ collections
    def _collection(self, novel: str, *, create: bool = True) -> Any:
        # On a server another process may re-create a collection (reindex): look it up each time there.
        if novel in self._collections and self.path is not None:
            return self._collections[novel]
        name = _collection_name(novel)
        model = self.settings.memory.embedding_model
        if create:
            col = self.client.get_or_create_collection(
                name,
                embedding_function=self.embedding,
                metadata={"novel": novel, "embedding_model": model, "hnsw:space": "cosine"},
            )
        else:
            try:
                col = self.client.get_collection(name, embedding_function=self.embedding)
            except Exception:
                return None
        self._collections[novel] = col
        return col

    def indexed_model(self, novel: str) -> str | None:
        """The embedding model ``novel`` was indexed with (None: no such novel or not recorded)."""
        col = self._collection(novel, create=False)
        return None if col is None else (col.metadata or {}).get("embedding_model")

    def _writable(self, novel: str) -> Any:
        """The collection if its vectors come from the configured model; an empty one is re-created."""
        col = self._collection(novel)
        model = self.settings.memory.embedding_model
        stored = (col.metadata or {}).get("embedding_model")
        if stored is None or stored == model:
            return col
        if col.count() == 0:  # nothing indexed yet (e.g. a first add that failed): adopt the configured model
            self.client.delete_collection(col.name)
            self._collections.pop(novel, None)
            return self._collection(novel)
        raise EmbeddingModelChangedError(
            f"小说《{novel}》的记忆用另一个向量模型建立了索引 (embedding model changed)",
            expected=f"memory.embedding_model = {stored!r} (the model this novel was indexed with)",
            received=model,
            fix=_reindex_fix(novel, stored, model),
        )

    def novels(self) -> list[str]:
        names = []
        for col in self.client.list_collections():
            c = col if hasattr(col, "metadata") else self.client.get_collection(col)
            novel = (c.metadata or {}).get("novel")
            if novel:
                names.append(novel)
        return sorted(set(names) | {DEFAULT_NOVEL})

    def _writing(self, novel: str) -> None:
        """Before a write to ``novel``: a new version, so no saved index of an older one is used as is.
        Without an index in this process, the saved one's version is remembered: the changes are applied
        to it at the next search or at :meth:`close` (tokenizing only what changed)."""
        if self.path is None:
            return
        from xiaoshuo.memory import index_file

        version = self._index_path(novel, ".version")
        if novel not in self._retrievers and novel not in self._pending:
            base = (index_file.read_version(version), self._collection(novel).count())
            self._pending[novel] = _Pending(base=base)
        index_file.new_version(version)

    def _touch(
        self, novel: str, upserted: list[MemoryEntry] | None = None, deleted: Iterable[str] = ()
    ) -> None:
        """After a write: what changed (``upserted``/``deleted``) is queued for the index, or the index is
        dropped (neither given, or on a server) so the next search rebuilds it from Chroma."""
        pending = self._pending.get(novel)
        if self.path is None or (upserted is None and not deleted):
            self._retrievers.pop(novel, None)
            self._pending.pop(novel, None)
            self._unsaved.discard(novel)
            return
        if pending is None:
            if novel not in self._retrievers:
                return
            pending = self._pending[novel] = _Pending(base=None)
        pending.add(upserted or [], deleted)

    def _index_path(self, novel: str, suffix: str = ".npz") -> Path:
        return self.path / "index" / (_collection_name(novel) + suffix)

    # ------------------------------------------------------------ writes
    def add(self, entries: MemoryEntry | Iterable[MemoryEntry]) -> list[str]:
        entries = [entries] if isinstance(entries, MemoryEntry) else list(entries)
        by_novel: dict[str, list[MemoryEntry]] = {}
        for e in entries:
            by_novel.setdefault(e.novel, []).append(e)
        for novel, group in by_novel.items():
            vectors = self._embed(group)  # first: a model that does not load changes nothing
            self._writable(novel)
            self._make_room(novel, group)
            self._upsert(novel, group, vectors)
        return [e.id for e in entries]

    def update(
        self, entry_id: str, novel: str = DEFAULT_NOVEL, *, clear: Iterable[str] = (), **fields: Any
    ) -> MemoryEntry:
        """Change the given fields (``None`` = leave as is); the fields named in ``clear`` become None."""
        current = self.get(entry_id, novel)
        data = current.model_dump()
        data.update({k: v for k, v in fields.items() if v is not None})
        for name in clear:
            if name not in data:
                raise StoryMemoryError(
                    "无法清空未知字段 (unknown field to clear)", expected=sorted(data), received=name
                )
            data[name] = None
        data["updated"] = time.time()
        entry = make_entry(**data)
        self._upsert(novel, [entry])
        return entry

    def delete(self, entry_ids: str | Iterable[str], novel: str = DEFAULT_NOVEL) -> int:
        ids = [entry_ids] if isinstance(entry_ids, str) else list(entry_ids)
        col = self._collection(novel)
        existing = col.get(ids=ids, include=[])["ids"]
        if not existing:
            return 0
        self._writing(novel)
        try:
            for i in range(0, len(existing), self.max_batch):
                col.delete(ids=existing[i : i + self.max_batch])
        except BaseException:
            self._touch(novel)
            raise
        self._touch(novel, deleted=existing)
        return len(existing)

    def _embed(self, entries: list[MemoryEntry]) -> list[Any]:
        """Vectors for ``entries`` (raises :class:`EmbeddingError` itself, not wrapped by Chroma)."""
        docs = [e.document() for e in entries]
        return [v for i in range(0, len(docs), 1024) for v in self.embedding(docs[i : i + 1024])]

    def _upsert(self, novel: str, entries: list[MemoryEntry], vectors: list[Any] | None = None) -> None:
        vectors = self._embed(entries) if vectors is None else vectors
        col = self._writable(novel)
        self._writing(novel)
        try:
            for i in range(0, len(entries), self.max_batch):
                batch = entries[i : i + self.max_batch]
                col.upsert(
                    ids=[e.id for e in batch],
                    embeddings=vectors[i : i + self.max_batch],
                    documents=[e.document() for e in batch],
                    metadatas=[_metadata(e) for e in batch],
                )
        except BaseException:
            self._touch(novel)  # part of it may be written: the next search rebuilds from Chroma
            raise
        self._touch(novel, upserted=entries)

    def _make_room(self, novel: str, new: list[MemoryEntry]) -> None:
        limit = self.settings.memory.max_memory_items
        existing_ids = set(self._collection(novel).get(include=[])["ids"])
        adding = [e for e in new if e.id not in existing_ids]
        active = self.count(novel)
        overflow = active + len(adding) - limit
        if overflow <= 0:
            return
        policy = self.settings.memory.overflow_policy
        if policy == "archive_plot":
            plots = sorted(
                (e for e in self.list(novel, kind="plot") if not e.pinned),
                key=lambda e: (e.importance, e.created),
            )
            if len(plots) >= overflow:
                archived = [
                    e.model_copy(update={"archived": True, "updated": time.time()}) for e in plots[:overflow]
                ]
                self._upsert(novel, archived)
                return
        raise StoryMemoryError(
            f"小说《{novel}》的记忆条目已达上限 (memory is full)",
            expected=f"at most memory.max_memory_items = {limit} active entries per novel",
            received=f"{active} active + {len(adding)} new",
            fix="删除或归档不需要的条目，调大 memory.max_memory_items，或设置 memory.overflow_policy = "
            '"archive_plot"',
        )

    # ------------------------------------------------------------ reads
    def get(self, entry_id: str, novel: str = DEFAULT_NOVEL) -> MemoryEntry:
        col = self._collection(novel)
        got = col.get(ids=[entry_id], include=["metadatas"])
        if not got["ids"]:
            raise StoryMemoryError(
                f"没有这条记忆 (no such entry): {entry_id}",
                received=entry_id,
                fix=f"xiaoshuo memory list --novel {novel}",
            )
        return _entry(got["metadatas"][0])

    def list(
        self, novel: str = DEFAULT_NOVEL, *, kind: str | None = None, include_archived: bool = False
    ) -> list[MemoryEntry]:
        col = self._collection(novel)
        where: dict[str, Any] | None = None
        conditions = []
        if kind is not None:
            if kind not in KINDS:
                raise StoryMemoryError(
                    "未知的记忆类型 (unknown kind)", expected=", ".join(KINDS), received=kind
                )
            conditions.append({"kind": kind})
        if not include_archived:
            conditions.append({"archived": False})
        if len(conditions) == 1:
            where = conditions[0]
        elif conditions:
            where = {"$and": conditions}
        entries = []
        total = col.count()
        for offset in range(0, total, self.max_batch):
            got = col.get(where=where, include=["metadatas"], limit=self.max_batch, offset=offset)
            entries.extend(_entry(m) for m in got["metadatas"])
        return sorted(entries, key=lambda e: (e.created, e.id))

    def count(self, novel: str = DEFAULT_NOVEL, *, kind: str | None = None) -> int:
        """Active (not archived) entries, counted by id only (no entry is parsed)."""
        where: dict[str, Any] = {"archived": False}
        if kind is not None:
            where = {"$and": [where, {"kind": kind}]}
        return len(self._collection(novel).get(where=where, include=[])["ids"])

    # ------------------------------------------------------------ retrieval support
    def retriever(self, novel: str = DEFAULT_NOVEL):
        """The BM25 + trigger index of a novel: this process's (kept up to date by its writes), else the
        saved one when it is of the novel's current version, else built from Chroma (and saved).

        On a Chroma server other processes write too: nothing is saved, and the index is rebuilt when the
        novel's entry count changed (an add or delete elsewhere shows at once) or it is older than
        ``SHARED_INDEX_TTL_S`` (an edit elsewhere shows within that time)."""
        from xiaoshuo.memory.retrieval import Retriever

        cached = self._retrievers.get(novel)
        if cached is not None and self.path is None:
            _, built, count = cached
            if time.monotonic() - built > SHARED_INDEX_TTL_S or self._collection(novel).count() != count:
                cached = None
        pending = self._pending.pop(novel, None)
        if cached is not None and pending is not None:  # this process's writes since it was built
            cached = (cached[0].updated(pending.upserted.values(), pending.deleted), time.monotonic(), None)
            self._retrievers[novel] = cached
            self._unsaved.add(novel)
        if cached is None:
            count = self._collection(novel).count()  # before reading: a write in between rebuilds again
            retriever = None
            if pending is not None and pending.base is not None:
                retriever = self._apply_to_saved(novel, pending)
            elif pending is None:
                version = self._version(novel)
                retriever = self._load_index(novel, version, count) if version else None
            if retriever is None:
                retriever = Retriever(self.list(novel))
                self._save_index(novel, retriever)
            cached = (retriever, time.monotonic(), count)
            self._retrievers[novel] = cached
        return cached[0]

    def _version(self, novel: str) -> str:
        if self.path is None:
            return ""
        from xiaoshuo.memory import index_file

        return index_file.read_version(self._index_path(novel, ".version"))

    def _apply_to_saved(self, novel: str, pending: _Pending):
        """The saved index of the version before this process's writes, with them applied (marked unsaved),
        or None when there is none (the next search builds from Chroma)."""
        if pending.base is None or not pending.base[0]:
            return None
        base = self._load_index(novel, *pending.base)
        if base is None:
            return None
        retriever = base.updated(pending.upserted.values(), pending.deleted)
        self._retrievers[novel] = (retriever, time.monotonic(), None)
        self._unsaved.add(novel)
        return retriever

    def _journal(self, novel: str, pending: _Pending) -> None:
        """At close, writes never searched here: appended to the journal of the saved index (cheap) when
        they start where it ends; else nothing (the version changed: the next search rebuilds)."""
        from xiaoshuo.memory import index_file

        if pending.base is None or not pending.base[0]:
            return
        base, upserted, deleted = list(pending.base), dict(pending.upserted), set(pending.deleted)
        head = index_file.header(self._index_path(novel)) or {}
        if [head.get("version"), head.get("count")] != base:
            journal = index_file.load_journal(self._index_path(novel, ".journal"))
            if journal is None or journal["version"] != base or [head.get("version"), head.get("count")] != (
                journal["base"]
            ):
                return
            merged = _Pending(base=None)
            merged.add(journal["upserted"], journal["deleted"])
            merged.add(list(upserted.values()), deleted)
            base, upserted, deleted = journal["base"], merged.upserted, merged.deleted
        now = [self._version(novel), self._collection(novel).count()]
        journal = self._index_path(novel, ".journal")
        index_file.save_journal(journal, base, now, list(upserted.values()), deleted)

    def _load_index(self, novel: str, version: str, count: int):
        """The saved index if it was built at ``version`` with ``count`` entries in Chroma (or, with its
        journal's changes applied, reaches them), else None."""
        if self.path is None:
            return None
        from xiaoshuo.memory import index_file
        from xiaoshuo.memory.retrieval import Retriever

        found = index_file.load(self._index_path(novel), {"novel": novel, "version": version, "count": count})
        if found is None:
            journal = index_file.load_journal(self._index_path(novel, ".journal"))
            if journal is None or journal["version"] != [version, count] or not journal["base"][0]:
                return None
            base = self._load_index(novel, *journal["base"]) if journal["base"] != [version, count] else None
            if base is None:
                return None
            self._unsaved.add(novel)
            return base.updated(journal["upserted"], journal["deleted"])
        entries, tokens, scores = found
        by_id = {e.id: t for e, t in zip(entries, tokens, strict=True)}
        return Retriever(entries, tokens=by_id, scores=scores)

    def _save_index(self, novel: str, retriever: Any) -> None:
        """Save ``retriever`` as the index of the novel's current version (a failure is logged: the index
        is a cache, rebuilt when missing)."""
        if self.path is None:
            return
        from xiaoshuo.memory import index_file

        try:
            version = self._version(novel)
            if not version:
                version = index_file.new_version(self._index_path(novel, ".version"))
            header = {"novel": novel, "version": version, "count": self._collection(novel).count()}
            index_file.save(
                self._index_path(novel), header, retriever.entries, retriever.doc_tokens, retriever.index
            )
            self._index_path(novel, ".journal").unlink(missing_ok=True)  # of an older index
            self._unsaved.discard(novel)
        except OSError as exc:
            import logging

            logging.getLogger("xiaoshuo.memory").warning(
                "记忆索引未能保存，下次将重建 (memory index not saved, rebuilt next time): %s", exc
            )

    def nearest(
        self, novel: str, query: str, k: int, *, max_chapter: int | None = None, timeout: float | None = None
    ) -> list[str]:
        """Ids of the ``k`` active entries nearest to ``query`` by embedding, best first (empty when dense
        retrieval is off by config).  ``max_chapter`` leaves out entries of later chapters; ``timeout``: how
        long to wait for a model still loading (None: wait).  Raises :class:`DenseUnavailableError` when
        the dense part cannot run; the caller degrades to triggers + BM25."""
        from xiaoshuo.memory.embeddings import EmbeddingError

        model = self.settings.memory.embedding_model
        if not self.embedding.dense or not query.strip():
            return []
        col = self._collection(novel)
        stored = (col.metadata or {}).get("embedding_model")
        if stored is not None and stored != model:
            raise DenseUnavailableError(
                f"小说《{novel}》的记忆用另一个向量模型建立了索引 (indexed with another embedding model)",
                expected=f"the configured memory.embedding_model {model!r}",
                received=stored,
                fix=_reindex_fix(novel, stored, model),
            )
        try:
            if not self.embedding.ready(timeout):
                raise DenseUnavailableError(
                    "向量模型仍在加载 (the embedding model is still loading)",
                    received=model,
                    fix="稍候片刻，加载完成后自动启用 (wait; dense retrieval resumes once it has loaded)",
                )
            where: dict[str, Any] = {"archived": False}
            if max_chapter is not None:
                where = {"$and": [where, {"chapter": {"$lte": max_chapter}}]}
            n = col.count()
            if n == 0:
                return []
            vector = self.embedding.embed_query([query])
            got = col.query(query_embeddings=vector, n_results=min(k, n), where=where, include=[])
        except EmbeddingError as exc:
            raise DenseUnavailableError(
                exc.message, expected=exc.expected, received=exc.received, fix=exc.fix
            ) from None
        except DenseUnavailableError:
            raise
        except Exception as exc:  # the vector index failed while the entries are readable: degrade
            raise DenseUnavailableError(
                "向量检索失败 (the dense query failed)",
                received=f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
                fix="运行 xiaoshuo memory reindex 重建索引 (rebuild the index)",
            ) from None
        return list(got["ids"][0])

    # ------------------------------------------------------------ import / export
    def export_novel(self, novel: str = DEFAULT_NOVEL) -> dict[str, Any]:
        return {
            "version": EXPORT_VERSION,
            "novel": novel,
            "embedding_model": self.settings.memory.embedding_model,
            "entries": [e.model_dump(mode="json") for e in self.list(novel, include_archived=True)],
        }

    def import_novel(self, data: Any, *, novel: str | None = None) -> list[str]:
        """Validate everything first; a bad file changes nothing."""
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise StoryMemoryError(
                "记忆导入文件格式不对 (not a memory export)",
                expected='{"version": 1, "novel": ..., "entries": [...]} (from xiaoshuo memory export)',
                received=type(data).__name__ if not isinstance(data, dict) else sorted(data),
            )
        target = novel or data.get("novel") or DEFAULT_NOVEL
        entries = []
        for i, raw in enumerate(data["entries"]):
            if not isinstance(raw, dict):
                raise StoryMemoryError(f"第 {i} 条不是对象 (entry {i} is not an object)", received=raw)
            try:
                entries.append(make_entry(**{**raw, "novel": target}))
            except StoryMemoryError as exc:
                raise StoryMemoryError(
                    f"第 {i} 条记忆无效 (entry {i} invalid): {exc.message}",
                    expected=exc.expected,
                    received=exc.received,
                    fix=exc.fix,
                ) from None
        return self.add(entries)

    def reindex(self, novel: str | None = None) -> dict[str, int]:
        """Re-embed novels with the configured model (after changing memory.embedding_model)."""
        done = {}
        for name in [novel] if novel else self.novels():
            col = self._collection(name, create=False)
            if col is None:
                continue
            entries = [_entry(m) for m in col.get(include=["metadatas"])["metadatas"]]
            vectors = self._embed(entries)  # before deleting: a model that does not load loses nothing
            self._writing(name)
            self._touch(name)
            self.client.delete_collection(col.name)
            self._collections.pop(name, None)
            if entries:
                self._upsert(name, entries, vectors)
            else:
                self._collection(name)
            done[name] = len(entries)
        return done


class _Pending:
    """Writes to a novel not yet applied to its index; ``base``: (version, entry count) of the saved index
    they apply to, or None when they apply to this process's index."""

    def __init__(self, base: tuple[str, int] | None) -> None:
        self.base = base
        self.upserted: dict[str, MemoryEntry] = {}
        self.deleted: set[str] = set()

    def add(self, upserted: list[MemoryEntry], deleted: Iterable[str]) -> None:
        for e in upserted:
            self.upserted[e.id] = e
            self.deleted.discard(e.id)
        for entry_id in deleted:
            self.upserted.pop(entry_id, None)
            self.deleted.add(entry_id)


def _metadata(e: MemoryEntry) -> dict[str, Any]:
    return {
        "kind": e.kind,
        "importance": e.importance,
        "pinned": e.pinned,
        "archived": e.archived,
        "chapter": e.chapter if e.chapter is not None else -1,
        "thread": e.thread,
        "entry": json.dumps(e.model_dump(mode="json"), ensure_ascii=False),
    }


def _entry(meta: dict[str, Any]) -> MemoryEntry:
    return MemoryEntry.model_validate(json.loads(meta["entry"]))
