"""What runs after a chapter is accepted — one place for every accept path.

:func:`xiaoshuo.writing.actions.accept` / ``accept_text`` (``chapter accept`` on the CLI, 采用 on the WebUI's
book page) and the :class:`~xiaoshuo.writing.generate.Writer` (``write`` accepting its candidate) call
:func:`on_accepted` after ``Novel.accept``.  It runs, as configured:

* ``writing.auto_summarize``: the chapter's 前情提要 + who/where/when (:func:`planning.summarize_chapter`);
* ``writing.auto_extract``: memory proposals from the chapter (:class:`extraction.Extractor`), into the
  review queue — or straight into memory with ``writing.auto_approve``.

Both are off by default (each is one more model call per accept).  What ran clears the chapter's pending
work of the forward flow (``summarize_chapter`` and the ``Extractor`` do; ``novel resync`` does the rest).
A form the model fails to fill is reported (in the result and as a ``progress`` event), never raised:
the accept itself stands, and the writer can run ``chapter summarize`` / ``memory extract`` later.
Other errors (no engine, a locked memory) propagate.
This module does not accept anything and does not load an engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AfterAccept:
    """What :func:`on_accepted` did for one chapter."""

    chapter: int
    summary: dict[str, Any] | None = None  # the ChapterSummary form, when summarised
    summary_error: str = ""
    extraction: dict[str, Any] | None = None  # ChapterResult.as_dict(), when extracted
    extract_error: str = ""
    ran: list[str] = field(default_factory=list)  # "summary", "extract"

    def as_dict(self) -> dict[str, Any]:
        return {
            "chapter": self.chapter,
            "ran": self.ran,
            "summary": self.summary,
            "summary_error": self.summary_error,
            "extraction": self.extraction,
            "extract_error": self.extract_error,
        }


def wanted(settings: Any, *, summarize: bool | None = None, extract: bool | None = None) -> tuple[bool, bool]:
    """(summarize, extract) after an accept: the explicit choice, else ``writing.auto_*``."""
    w = settings.writing
    return (
        w.auto_summarize if summarize is None else summarize,
        w.auto_extract if extract is None else extract,
    )


async def on_accepted(
    settings: Any,
    engine: Any,
    novel: Any,
    number: int,
    store: Any = None,
    *,
    summarize: bool | None = None,
    extract: bool | None = None,
    lora: str | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> AfterAccept:
    """Summarise and/or extract chapter ``number`` as configured (see the module docstring).

    ``store``: an open MemoryStore; when extraction runs without one, one is opened for it and closed.
    ``progress`` gets ``{"event": "summary_saved" | "summary_failed" | "extract_done" | "extract_failed",
    "chapter": n, …}``.
    """
    from xiaoshuo.writing.structured import StructuredOutputError

    do_summary, do_extract = wanted(settings, summarize=summarize, extract=extract)
    result = AfterAccept(number)

    def report(**event: Any) -> None:
        if progress is not None:
            progress({**event, "chapter": number})

    if do_summary:
        from xiaoshuo.writing.planning import PlanLimits, summarize_chapter

        result.ran.append("summary")
        try:
            from xiaoshuo.writing.prompts import Prompts

            limits, prompts = PlanLimits.from_settings(settings), Prompts.from_settings(settings)
            answer = await summarize_chapter(engine, novel, number, limits=limits, lora=lora, prompts=prompts)
            result.summary = answer.model_dump()
            report(event="summary_saved")
        except StructuredOutputError as exc:
            result.summary_error = str(exc)
            report(event="summary_failed", error=str(exc))
    if do_extract:
        from xiaoshuo.writing.extraction import Extractor

        result.ran.append("extract")
        with contextlib.ExitStack() as stack:
            if store is None:
                from xiaoshuo.memory import MemoryStore

                store = stack.enter_context(MemoryStore(settings))
            (done,) = await Extractor(settings, engine, novel, store, batch=1).extract([number])
        result.extraction = done.as_dict()
        if done.error:
            result.extract_error = done.error
            report(event="extract_failed", error=done.error)
        else:
            report(event="extract_done", proposals=len(done.proposals), approved=done.approved)
    return result
