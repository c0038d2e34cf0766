"""The API's errors as Gradio shows them on the page (``gr.Error``), never a string yielded as output.

Errors are worded by :func:`xiaoshuo.errors.translate`, as on the command line: typed errors as they are,
an ``OSError`` (disk full, read-only folder, name too long …) or the memory database's "disk is full" in
the same one line with its fix.  :func:`guard` is the one place a page handler's error becomes a
``gr.Error``: it wraps plain functions, generators, coroutines and async generators alike.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator

import gradio as gr

from xiaoshuo.errors import translate


def as_gradio_error(exc: Exception) -> gr.Error:
    """The error's one line (see :func:`xiaoshuo.errors.translate`); anything else with its type name."""
    error = translate(exc)
    return gr.Error(str(error) if error is not None else f"{type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _shown_on_the_page() -> Iterator[None]:
    """A typed or OS error inside becomes a ``gr.Error``; a ``gr.Error`` or a bug propagates as it is."""
    try:
        yield
    except gr.Error:
        raise
    except Exception as exc:
        if translate(exc) is None:
            raise
        raise as_gradio_error(exc) from None


def guard(fn):
    """Wrap a handler: a typed or OS error becomes a visible ``gr.Error``; a ``gr.Error`` or a bug propagates.

    The wrapper is of ``fn``'s kind (function, generator, coroutine function or async generator
    function): Gradio streams a generator's values only when the handler it is given is one.  Closing the
    wrapper (the page's stop button) closes ``fn``'s generator at once, so its ``finally`` runs."""
    # functools.wraps keeps the signature: Gradio counts inputs and injects gr.SelectData/gr.Progress from it
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def wrapped_agen(*args, **kwargs):
            agen = fn(*args, **kwargs)
            try:
                with _shown_on_the_page():
                    async for item in agen:
                        yield item
            finally:
                await agen.aclose()

        return wrapped_agen
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def wrapped_coro(*args, **kwargs):
            with _shown_on_the_page():
                return await fn(*args, **kwargs)

        return wrapped_coro
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def wrapped_gen(*args, **kwargs):
            gen = fn(*args, **kwargs)
            try:
                with _shown_on_the_page():
                    yield from gen
            finally:
                gen.close()

        return wrapped_gen

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with _shown_on_the_page():
            return fn(*args, **kwargs)

    return wrapped
