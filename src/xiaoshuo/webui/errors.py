"""The API's errors as Gradio shows them on the page (``gr.Error``), never a string yielded as output.

Errors are worded by :func:`xiaoshuo.errors.translate`, as on the command line: typed errors as they are,
an ``OSError`` (disk full, read-only folder, name too long …) or the memory database's "disk is full" in
the same one line with its fix.
"""

from __future__ import annotations

import functools

import gradio as gr

from xiaoshuo.errors import translate


def as_gradio_error(exc: Exception) -> gr.Error:
    """The error's one line (see :func:`xiaoshuo.errors.translate`); anything else with its type name."""
    error = translate(exc)
    return gr.Error(str(error) if error is not None else f"{type(exc).__name__}: {exc}")


def guard(fn):
    """Wrap a synchronous handler: a typed or OS error becomes a visible ``gr.Error``; a bug propagates."""

    @functools.wraps(fn)  # keeps the signature: Gradio counts inputs and injects gr.SelectData from it
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            if translate(exc) is None:
                raise
            raise as_gradio_error(exc) from None

    return wrapped
