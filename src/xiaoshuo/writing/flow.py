"""Edits that flow forward: what each chapter used, which later chapters a change makes stale, resync.

* **Inputs**: a generated version records in ``Version.inputs`` a compact fingerprint of what its prompt
  used (:func:`inputs_of`, from :func:`~xiaoshuo.writing.compose.compose`): earlier chapters' summaries
  (``summary:N``), the previous chapter's ending (``text:N``) and memory entries (``memory:<id>``), each
  with the chapter it came from and a 12-hex hash of the content — never the text itself.
* **A change**: when a chapter's current text changes (accept, hand edit, revert, set, an outside edit:
  every path ends in :meth:`Novel.accept <xiaoshuo.writing.project.Novel.accept>` or ``Novel.sync``),
  :func:`on_text_changed` runs under the novel's write lock: the chapter's summary and extraction become
  *pending work* (``writing.flow_summarize`` / ``flow_extract``), and every later chapter whose current
  version used something of that chapter is marked **stale** with a Chinese reason
  (``writing.flow_stale``).  An import marks its chapters pending (:func:`on_imported`).
* **Resync** (:mod:`xiaoshuo.writing.resync`): the pending summaries and extractions in chapter order,
  in batches; ``flow.json`` is its journal.  Afterwards every stale reason is checked again
  (:func:`recheck`) against the refreshed summaries and memory: a reason whose input came out the same is
  dropped.  Locked chapters (``ChapterPlan.locked``) are skipped.

Two files under ``data/novels/<slug>/`` (compact JSON, written atomically under the write lock)::

    flow-inputs.json  {"12": {"version": 7, "inputs": [{"key": "summary:5", "chapter": 5, "hash": "…"}, …]}}
    flow.json         {"stale":   {"12": [{"key": "summary:5", "chapter": 5, "reason": "第12章 用到了…"}]},
                       "pending": {"5": {"summary": true, "extract": true, "since": 1.76e9}}}

The inputs index (~1.5 KB a chapter) is rewritten only when a generated version becomes current; a hand
edit reads it and writes the small ``flow.json`` (marking after an edit: tens of ms at 300 chapters).

Stale chapters are never rewritten here: the writer decides (a new generated version clears the mark).
This module reads and writes ``flow.json`` and ``flow-inputs.json`` only; it imports no other writing
module (the project, planning and extraction call it); :mod:`xiaoshuo.writing.resync` runs the model.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xiaoshuo.files import atomic_write

FLOW_FILE = "flow.json"
INPUTS_FILE = "flow-inputs.json"
HASH_CHARS = 12
_KIND_LABELS = {"character": "{name}的状态", "setting": "设定「{name}」", "plot": "情节「{name}」",
                "dialogue": "对话「{name}」"}  # fmt: skip


@dataclass(frozen=True)
class FlowOptions:
    """What a change of a chapter's text sets in motion (``writing.flow_*``)."""

    summarize: bool = True  # queue a refresh of the changed chapter's summary
    extract: bool = True  # queue a new extraction (its pending proposals are superseded)
    stale: bool = True  # mark the later chapters that used something of it

    @classmethod
    def from_settings(cls, settings: Any) -> FlowOptions:
        w = settings.writing
        return cls(summarize=w.flow_summarize, extract=w.flow_extract, stale=w.flow_stale)


# ---------------------------------------------------------------------------------------------- hashes
def sha256_of(text: str) -> str:
    """The sha256 a chapter's state and versions record for ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_CHARS]


def summary_hash(plan: Any) -> str:
    """A chapter plan's summary with its who/where/when, as a prompt uses it."""
    parts = [plan.summary.strip(), list(plan.summary_who), list(plan.summary_where), plan.summary_when]
    return short_hash(json.dumps(parts, ensure_ascii=False))


def entry_hash(entry: Any) -> str:
    """A memory entry's content (its timestamps aside)."""
    data = entry.model_dump(exclude={"created", "updated"})
    return short_hash(json.dumps(data, ensure_ascii=False, sort_keys=True, default=str))


def summary_input(plan: Any) -> dict[str, Any]:
    return {"key": f"summary:{plan.number}", "chapter": plan.number, "hash": summary_hash(plan)}


def text_input(number: int, ending: str) -> dict[str, Any]:
    """The previous chapter's ending as the prompt had it (【上一章结尾】): its length and hash, so an edit
    elsewhere in that chapter does not make this one stale."""
    return {"key": f"text:{number}", "chapter": number, "chars": len(ending), "hash": short_hash(ending)}


def ending_changed(item: dict[str, Any], text: str) -> bool:
    """Whether chapter text ``text`` no longer ends as the ``text:N`` input ``item`` recorded."""
    chars = int(item.get("chars") or len(text))
    return short_hash(text[-chars:] if chars else "") != item.get("hash")


def memory_input(entry: Any) -> dict[str, Any]:
    return {"key": f"memory:{entry.id}", "chapter": entry.chapter, "kind": entry.kind,
            "name": entry.name or entry.text[:12], "hash": entry_hash(entry)}  # fmt: skip


def merge_inputs(*groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The union of several generations' inputs (a chapter's segments), first hash per key kept."""
    seen: dict[str, dict[str, Any]] = {}
    for group in groups:
        for item in group:
            seen.setdefault(item["key"], item)
    return list(seen.values())


def label(item: dict[str, Any]) -> str:
    """第5章的摘要 / 第4章的结尾 / 第5章的沈青岚的状态."""
    key, n = item["key"], item.get("chapter")
    where = f"第{n}章的" if n is not None else ""
    if key.startswith("summary:"):
        return f"{where}摘要"
    if key.startswith("text:"):
        return f"{where}结尾"
    pattern = _KIND_LABELS.get(item.get("kind", ""), "记忆「{name}」")
    return where + pattern.format(name=item.get("name", "") or key.split(":", 1)[-1][:8])


# ---------------------------------------------------------------------------------------------- the files
def _read(path: Any) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Any, data: dict[str, Any]) -> None:
    """One line of compact JSON (json's C encoder: several times faster than ``indent``)."""
    atomic_write(path, json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def load(novel: Any) -> dict[str, Any]:
    """``flow.json``: ``{"stale": {…}, "pending": {…}}``."""
    data = _read(novel.root / FLOW_FILE)
    for key in ("stale", "pending"):
        if not isinstance(data.get(key), dict):
            data[key] = {}
    return data


def save(novel: Any, data: dict[str, Any]) -> None:
    _write(novel.root / FLOW_FILE, data)


def load_inputs(novel: Any) -> dict[str, Any]:
    """``flow-inputs.json``: chapter → ``{"version", "inputs"}`` of its current generated text."""
    return _read(novel.root / INPUTS_FILE)


def save_inputs(novel: Any, index: dict[str, Any]) -> None:
    _write(novel.root / INPUTS_FILE, index)


# ---------------------------------------------------------------------------------------------- a change
def on_text_changed(novel: Any, number: int, version: Any, options: FlowOptions | None = None) -> list[int]:
    """Chapter ``number``'s current text is now ``version`` (called under the novel's write lock by
    :class:`~xiaoshuo.writing.project.Novel`); returns the later chapters newly marked stale."""
    options = options or FlowOptions()
    data = load(novel)
    key = str(number)
    index = load_inputs(novel) if options.stale or version.inputs else {}
    if version.inputs:  # a generation: its inputs were current when it was written
        index[key] = {"version": version.id, "inputs": version.inputs}
        save_inputs(novel, index)
        data["stale"].pop(key, None)
    if options.summarize or options.extract:
        data["pending"][key] = {
            "summary": options.summarize,
            "extract": options.extract,
            "sha256": version.sha256,
            "since": time.time(),
        }
    marked = mark_stale(data, index, number, version.text) if options.stale else []
    save(novel, data)
    return marked


def on_summary_changed(novel: Any, plan: Any, options: FlowOptions | None = None) -> list[int]:
    """Chapter ``plan.number``'s summary was set (by hand, ``chapter summarize``, resync): mark the later
    chapters whose prompt used a different one (under the write lock, by ``Novel.update_plan``)."""
    if not (options or FlowOptions()).stale:
        return []
    index = load_inputs(novel)
    if not index:
        return []
    data = load(novel)
    marked = _mark(data, index, plan.number, lambda item: item["key"] == f"summary:{plan.number}"
                   and item.get("hash") != summary_hash(plan))  # fmt: skip
    if marked:
        save(novel, data)
    return marked


def mark_stale(data: dict[str, Any], index: dict[str, Any], number: int, text: str) -> list[int]:
    """Mark the chapters after ``number`` that used its summary, its ending (when the text differs) or a
    memory entry dated in it; returns them.  Works on ``data`` and ``index`` only (no file is read)."""

    def changed(item: dict[str, Any]) -> bool:  # the same text again: a revert to what m was written after
        return not item["key"].startswith("text:") or ending_changed(item, text)

    return _mark(data, index, number, changed)


def _mark(data: dict[str, Any], index: dict[str, Any], number: int, changed: Callable[..., bool]) -> list:
    marked = []
    for key, row in index.items():
        m = int(key)
        if m <= number:
            continue
        reasons = data["stale"].get(key, [])
        have = {r["key"] for r in reasons}
        added = False
        for item in row.get("inputs", []):
            if item.get("chapter") != number or item["key"] in have or not changed(item):
                continue
            reason = {"key": item["key"], "chapter": number, "hash": item.get("hash", ""),
                      "reason": f"第{m}章 用到了{label(item)}，已改动"}  # fmt: skip
            if "chars" in item:
                reason["chars"] = item["chars"]
            reasons.append(reason)
            have.add(item["key"])
            added = True
        if added:
            data["stale"][key] = reasons
            marked.append(m)
    return sorted(marked)


def on_imported(novel: Any, numbers: list[int], options: FlowOptions | None = None) -> None:
    """Imported chapters have no summary or extraction yet: pending work (one write for all)."""
    options = options or FlowOptions()
    if not numbers or not (options.summarize or options.extract):
        return
    data = load(novel)
    now = time.time()
    for n in numbers:
        data["pending"][str(n)] = {"summary": options.summarize, "extract": options.extract,
                                   "sha256": novel.state(n).get("sha256", ""), "since": now}  # fmt: skip
    save(novel, data)


def refreshed(novel: Any, done: dict[int, str], *, summary: bool = False, extract: bool = False) -> bool:
    """Clear the pending summary / extraction of the chapters in ``done`` (chapter → sha256 of the text the
    work was made from): only where that is still the chapter's pending text.  Returns False when another
    writer holds the novel for over 10 s (the work then stays pending; ``novel resync`` finds extraction's
    record and skips it, or summarises again)."""
    from xiaoshuo.writing.schema import WritingError  # the novel's lock is busy (NovelLockedError)

    if not done:
        return True
    try:
        with novel.writer(timeout=10, what="flow"):
            data = load(novel)
            for n, digest in done.items():
                row = data["pending"].get(str(n))
                if row is not None and row.get("sha256") in (digest, "", None):
                    clear_pending(data, n, summary=summary, extract=extract)
            save(novel, data)
    except WritingError:
        return False
    return True


def clear_pending(data: dict[str, Any], number: int, *, summary: bool, extract: bool) -> None:
    row = data["pending"].get(str(number))
    if row is None:
        return
    if summary:
        row["summary"] = False
    if extract:
        row["extract"] = False
    if not row.get("summary") and not row.get("extract"):
        data["pending"].pop(str(number), None)


# ---------------------------------------------------------------------------------------------- status
def status(novel: Any) -> dict[str, Any]:
    """``{"stale": [{chapter, reasons}], "pending": [{chapter, summary, extract, since}], "locked": [...]}``
    — reads only (``novel status``)."""
    data = load(novel)
    stale = [
        {"chapter": int(k), "reasons": [r["reason"] for r in v]}
        for k, v in sorted(data["stale"].items(), key=lambda kv: int(kv[0]))
        if v
    ]
    pending = [
        {"chapter": int(k), "summary": bool(v.get("summary")), "extract": bool(v.get("extract")),
         "since": v.get("since")}
        for k, v in sorted(data["pending"].items(), key=lambda kv: int(kv[0]))
    ]  # fmt: skip
    try:
        locked = [c.number for c in novel.outline().chapters() if c.locked]
    except Exception:  # a damaged outline is `novel show`'s error, not status's
        locked = []
    return {"novel": novel.slug, "stale": stale, "pending": pending, "locked": locked}


def recheck(novel: Any, entries: list[Any] | None, queue_pending: set[int] | None = None) -> list[int]:
    """Drop the stale reasons whose input came out the same after a refresh (summary hash, memory entry
    hash, the previous chapter's text) and that can no longer change (:func:`_source_pending`); returns
    the chapters no longer stale.  ``entries``: the novel's memory entries (None: memory reasons are kept)."""
    outline = novel.outline()
    by_id = {e.id: e for e in entries or []}
    queue_pending = queue_pending or set()
    cleared = []
    with novel.writer(timeout=30, what="flow"):
        data = load(novel)
        for key in list(data["stale"]):
            keep = []
            for r in data["stale"][key]:
                if _source_pending(r, data["pending"], queue_pending):
                    keep.append(r)
                    continue
                now = _current_hash(novel, outline, by_id, r, entries is not None)
                if now is None or now != r.get("hash"):
                    keep.append(r)
            if keep:
                data["stale"][key] = keep
            else:
                data["stale"].pop(key)
                cleared.append(int(key))
        save(novel, data)
    return sorted(cleared)


def _source_pending(reason: dict[str, Any], pending: dict[str, Any], queue_pending: set[int]) -> bool:
    """Whether what the reason names may still change: the source chapter's summary is pending (a
    summary reason), or its extraction is pending or its proposals wait for review (a memory reason)."""
    src, kind = reason.get("chapter"), reason["key"].partition(":")[0]
    row = pending.get(str(src)) or {}
    if kind == "summary":
        return bool(row.get("summary"))
    if kind == "memory":
        return bool(row.get("extract")) or src in queue_pending
    return False


def _current_hash(novel, outline, by_id, reason: dict[str, Any], have_memory: bool) -> str | None:
    kind, _, ident = reason["key"].partition(":")
    if kind == "summary":
        plan = outline.chapter(int(ident))
        return summary_hash(plan) if plan is not None else None
    if kind == "text":
        text = novel.read(int(ident), version=False).text
        chars = int(reason.get("chars") or len(text))
        return short_hash(text[-chars:] if chars else "")
    if kind == "memory" and have_memory:
        entry = by_id.get(ident)
        return entry_hash(entry) if entry is not None else None
    return None
