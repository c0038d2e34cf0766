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
  write lock); :func:`revert`;
* :func:`mark_final` — 定稿 / back to 草稿 (the outline status ``novel export --only-final`` reads);
* :func:`update_card` — change the novel's card (书名、作者、视角 …), validated by the card's model;
* :func:`revise` / :func:`plan_revise` — 修订: rewrite the passages the review flags and keep only a
  better text (:mod:`xiaoshuo.writing.revise`), or list the planned edits (``--dry-run``).

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


# ---------------------------------------------------------------------------------------------- 定稿
#: what a chapter's outline status means to a writer (``ChapterPlan.status``)
STATUS_LABELS = {"planned": "未写", "drafted": "草稿", "final": "定稿"}


def mark_final(novel: Any, number: int, final: bool = True) -> Any:
    """定稿 (``final=True``) or back to 草稿 (``final=False``): chapter ``number``'s outline status.

    Only a chapter with text can be final (``novel export --only-final`` exports the final ones); undoing
    makes it ``drafted`` again (``planned`` when it has no text).  Under the novel's write lock; returns
    the chapter's :class:`~xiaoshuo.writing.schema.ChapterPlan`.  Editing a final chapter later keeps it
    final (the writer undoes it when they want it marked as a draft again)."""
    number = int(number)
    with novel.writer(timeout=30, what="chapter final"):
        plan = novel.plan(number)  # raises: 大纲里没有第 N 章
        has_text = bool(novel.text(number).strip())
        if final and not has_text:
            raise WritingError(
                f"第 {number} 章还没有正文，不能定稿 (chapter {number} has no text; it cannot be final)",
                expected="a chapter with text",
                received=f"第{number}章《{plan.title}》: {STATUS_LABELS.get(plan.status, plan.status)}",
                fix=f"先写或导入第 {number} 章，再 xiaoshuo chapter final {number} --novel {novel.slug}",
            )
        status = "final" if final else ("drafted" if has_text else "planned")
        if plan.status == status:
            return plan
        return novel.update_plan(number, status=status)


# ---------------------------------------------------------------------------------------------- the card
#: the card fields a writer may change, with their labels (``slug`` and ``created`` never change)
CARD_FIELDS = {
    "title": "书名",
    "author": "作者",
    "genre": "类型",
    "premise": "简介",
    "style": "文风",
    "pov": "视角",
    "chapter_chars": "每章目标字数",
    "adapter": "默认适配器",
    "variant": "简繁",
}
_CARD_EXPECTED = {
    "title": "1..200 个字符 (a non-empty title, at most 200 characters)",
    "chapter_chars": "50..200000 的整数 (an integer number of 字)",
    "variant": "简 或 繁",
}


def update_card(novel: Any, **changes: Any) -> Any:
    """Change the novel's card (:data:`CARD_FIELDS`; a value of None is left as it is); returns the new
    :class:`~xiaoshuo.writing.schema.NovelCard`.

    Validated by the card's model before anything is written; an error names the field (``作者 author``)
    and what it accepts.  Texts are stripped; the title may not be empty, the others may (an empty
    作者 removes the author).  Under the novel's write lock (read, change, write)."""
    from pydantic import ValidationError

    from xiaoshuo.writing.schema import NovelCard

    unknown = sorted(set(changes) - set(CARD_FIELDS))
    if unknown:
        raise WritingError(
            f"小说信息没有这个字段 (no such card field): {', '.join(unknown)}",
            expected=", ".join(f"{k} ({v})" for k, v in CARD_FIELDS.items()),
            received=unknown,
        )
    wanted = {k: (v.strip() if isinstance(v, str) else v) for k, v in changes.items() if v is not None}
    with novel.writer(timeout=30, what="novel set"):
        card = novel.card()
        if not wanted:
            return card
        try:
            new = NovelCard.model_validate({**card.model_dump(), **wanted})
        except ValidationError as exc:
            first = exc.errors()[0]
            key = str(first.get("loc", ("?",))[0])
            label = CARD_FIELDS.get(key, key)
            raise WritingError(
                f"{label}（{key}）的值不合适 (invalid {key}): {first.get('msg')}",
                expected=_CARD_EXPECTED.get(key, "a text"),
                received=first.get("input"),
                fix=f"修改{label}后重试",
            ) from None
        if new != card:
            novel.save_card(new)
        return new


# ---------------------------------------------------------------------------------------------- 修订
async def revise(
    writer: Writer,
    number: int,
    *,
    flavour: Any = None,
    entries: list[Any] | None = None,
    only: str | list[str] | None = None,
    passes: int = 2,
    candidates: int = 1,
    seed: int | None = None,
) -> Any:
    """修订 chapter ``number``: :func:`xiaoshuo.writing.revise.revise_chapter` (returns its Revision)."""
    from xiaoshuo.writing.revise import revise_chapter

    return await revise_chapter(
        writer, int(number), entries=entries, flavour=flavour, only=only, passes=passes,
        candidates=candidates, seed=seed,
    )  # fmt: skip


def plan_revise(
    settings: Any,
    novel: Any,
    number: int,
    *,
    flavour: Any = None,
    entries: list[Any] | None = None,
    only: str | list[str] | None = None,
) -> Any:
    """The review and the edits :func:`revise` would make, writing nothing and loading no model."""
    from xiaoshuo.writing.revise import plan_revision

    return plan_revision(settings, novel, int(number), entries=entries, flavour=flavour, only=only)
