"""The API's errors as Gradio shows them on the page (``gr.Error``), never a string yielded as output."""

from __future__ import annotations

import functools

import gradio as gr

from xiaoshuo.errors import XiaoshuoError, from_os_error


def as_gradio_error(exc: Exception) -> gr.Error:
    """A typed error's own (bilingual) message; an ``OSError`` as the CLI words it; else its type name."""
    if isinstance(exc, OSError):
        exc = from_os_error(exc)
    return gr.Error(str(exc) if isinstance(exc, XiaoshuoError) else f"{type(exc).__name__}: {exc}")


def guard(fn):
    """Wrap a synchronous handler: its ``XiaoshuoError`` / ``OSError`` becomes a visible ``gr.Error``."""

    @functools.wraps(fn)  # keeps the signature: Gradio counts inputs and injects gr.SelectData from it
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (XiaoshuoError, OSError) as exc:
            raise as_gradio_error(exc) from None

    return wrapped
