"""The writing use cases the CLI and the WebUI share: write, preview, accept, save an edit, revert.

Both frontends call these functions and only turn their results into output (text on stdout, components
on the page), so a behaviour cannot differ between them:

* :func:`operation` / :func:`write` — 生成本章 / 续写 / 改写 / 扩写 / 缩写 through one
  :class:`~xiaoshuo.writing.generate.Writer` (streaming through its ``on_text`` callback, or not);
* :func:`preview` — the messages the next generation of that action would send, built by the same
  function the segment loop calls (``Writer._segment``), memory retrieved, nothing generated;
* :func:`accept` / :func:`accept_text` — make a version (or a text shown on the page) the chapter's text,
  then always :func:`~xiaoshuo.writing.accepted.on_accepted` (``writing.auto_summarize`` /
  ``auto_extract``); the engine is opened only when one of them runs, after the accept, so a model that
  cannot load never undoes an accept;
* :func:`save_edit` — a hand edit becomes the current version (compared and written under the novel's
  write lock); :func:`revert`.

It does not open novels, load engines or memory stores (the caller passes them, or a function that
opens the engine when needed) and knows nothing of Typer or Gradio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xiaoshuo.writing.generate import Operation, Preview, Writer, WriteResult
from xiaoshuo.writing.schema import Version, WritingError

ACTIONS = ("chapter", "continue", "rewrite", "expand", "shorten")
#: opens the engine for what runs after an accept: ``() -> (engine, lora or None)``
OpenEngine = Callable[[], tuple[Any, str | None]]


def operation(
    writer: Writer,
    action: str,
    chapter: int,
    *,
    target_chars: int | None = None,
    chars: int | None = None,
    start: int | None = None,
    end: int | None = None,
    instruction: str = "",
) -> Operation:
    """What ``action`` on chapter ``chapter`` would generate (see :data:`ACTIONS`); reads only."""
    if action == "chapter":
        return writer.chapter_operation(chapter, target_chars=target_chars)
    if action == "continue":
        return writer.continue_operation(chapter, chars=chars or 500)
    if action in ("rewrite", "expand", "shorten"):
        if start is None or end is None:
            raise WritingError(
                "改写需要选中一段正文 (a rewrite needs a selection)",
                expected="start and end character offsets",
                received=f"start={start}, end={end}",
            )
        return writer.rewrite_operation(
            chapter, start=start, end=end, instruction=instruction, mode=action, chars=chars
        )
    raise WritingError("未知的写作动作 (unknown action)", expected=", ".join(ACTIONS), received=action)


def preview(writer: Writer, action: str, chapter: int, **options: Any) -> Preview:
    """The first request of ``action`` exactly as :func:`write` would send it (``options`` as there)."""
    return writer.preview(operation(writer, action, chapter, **options))


async def write(
    writer: Writer,
    action: str,
    chapter: int,
    *,
    candidates: int = 1,
    seed: int | None = None,
    accept: bool | None = None,
    target_chars: int | None = None,
    chars: int | None = None,
    start: int | None = None,
    end: int | None = None,
    instruction: str = "",
) -> WriteResult:
    """Run ``action`` (streaming through ``writer.on_text`` / ``on_progress`` when set)."""
    if action == "chapter":
        return await writer.write_chapter(
            chapter, target_chars=target_chars, candidates=candidates, seed=seed, accept=accept
        )
    if action == "continue":
        return await writer.continue_chapter(
            chapter, chars=chars or 500, candidates=candidates, seed=seed, accept=accept
        )
    if action in ("rewrite", "expand", "shorten") and start is not None and end is not None:
        return await writer.rewrite(
            chapter,
            start=start,
            end=end,
            instruction=instruction,
            mode=action,
            chars=chars,
            candidates=candidates,
            seed=seed,
            accept=accept,
        )
    operation(writer, action, chapter, start=start, end=end)  # raises the matching error
    raise AssertionError("unreachable")


@dataclass
class Accepted:
    """An accept and what ran after it (``after`` None: nothing was configured to run)."""

    version: Version
    after: Any = None  # writing.accepted.AfterAccept

    def as_dict(self) -> dict[str, Any]:
        out = self.version.brief()
        if self.after is not None:
            out["after_accept"] = self.after.as_dict()
        return out


async def accept(
    settings: Any,
    novel: Any,
    number: int,
    version: int,
    *,
    open_engine: OpenEngine | None = None,
    store: Any = None,
    summarize: bool | None = None,
    extract: bool | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> Accepted:
    """Make ``version`` chapter ``number``'s text, then run :func:`on_accepted` as configured."""
    v = novel.accept(int(number), int(version))
    return await _after(settings, novel, v, open_engine, store, summarize, extract, progress)


async def accept_text(
    settings: Any,
    novel: Any,
    number: int,
    text: str,
    *,
    kind: str,
    note: str = "",
    open_engine: OpenEngine | None = None,
    store: Any = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> Accepted:
    """A generated text that was never saved (a stopped run's candidate) as a new, current version.

    The text is cleaned (:func:`~xiaoshuo.writing.cleaning.clean_generated`); the version keeps the text
    as it came in ``raw_output`` when the cleaning changed it."""
    from xiaoshuo.writing.cleaning import clean_generated

    clean = clean_generated(text or "")
    v = novel.add_version(
        int(number),
        clean,
        source="generated",
        kind=kind,
        accept=True,
        note=note,
        raw_output=text if clean != text else None,
    )
    return await _after(settings, novel, v, open_engine, store, None, None, progress)


async def _after(settings, novel, v, open_engine, store, summarize, extract, progress) -> Accepted:
    from xiaoshuo.writing.accepted import on_accepted, wanted

    if not any(wanted(settings, summarize=summarize, extract=extract)):
        return Accepted(v)
    if open_engine is None:
        raise WritingError(
            "采用后要生成摘要或提取记忆，但没有模型 (nothing to run writing.auto_* with)",
            expected="an engine for writing.auto_summarize / auto_extract",
            received="none",
            fix="关闭 writing.auto_summarize / auto_extract，或在加载了模型的地方采用",
        )
    engine, lora = open_engine()
    after = await on_accepted(
        settings,
        engine,
        novel,
        v.chapter,
        store,
        summarize=summarize,
        extract=extract,
        lora=lora,
        progress=progress,
    )
    return Accepted(v, after)


def save_edit(
    novel: Any, number: int, text: str, *, note: str = "", keep_empty: bool = True, allow_empty: bool = False
) -> Version | None:
    """A hand edit as the new current version; None when it equals the chapter's text.

    ``keep_empty=False``: an empty text for a chapter never written stays unwritten (an editor's blur);
    an empty text for a written chapter is refused by :meth:`Novel.set_text` unless ``allow_empty``.
    An unchanged text returns without the lock (a long generation never blocks it); otherwise the
    compare and the write happen under the novel's write lock (two saves at once make one version).
    """
    text, number = text or "", int(number)
    if text == novel.read(number, version=False).text:
        return None
    if not keep_empty and not text.strip() and not novel.chapter_file(number).is_file():
        return None
    with novel.writer(timeout=30, what="save edit"):
        if text == novel.read(number, version=False).text:
            return None
        return novel.set_text(number, text, note=note, allow_empty=allow_empty)


def revert(novel: Any, number: int, version: int) -> Version:
    """Bring back an older version's text as a new, current version."""
    return novel.revert(int(number), int(version))
