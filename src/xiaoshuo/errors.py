"""Typed errors for xiaoshuo: what was expected, what was received, how to fix it.

Core code raises these; the edges (CLI, WebUI) turn them into one clear line.
This module formats messages only; it does not print, log or exit.
"""

from __future__ import annotations


class XiaoshuoError(Exception):
    """Base error. ``str(err)`` is one line a novelist can act on.

    Parameters
    ----------
    message:
        What went wrong, in one short sentence (Chinese first, key names verbatim).
    expected:
        What the program wanted (a form, a range, a file type …).
    received:
        What it actually got (the value, the path …).
    fix:
        What the user should do next.
    """

    def __init__(
        self,
        message: str,
        *,
        expected: str | None = None,
        received: object | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.expected = expected
        self.received = received
        self.fix = fix
        super().__init__(self.format())

    def format(self) -> str:
        parts = [self.message.rstrip("。. ")]
        if self.expected is not None:
            parts.append(f"期望 expected: {self.expected}")
        if self.received is not None:
            parts.append(f"收到 received: {_short(self.received)}")
        if self.fix is not None:
            parts.append(f"解决 fix: {self.fix}")
        return "；".join(parts)


class ConfigError(XiaoshuoError):
    """A configuration key, value or file is wrong."""


class DependencyError(XiaoshuoError):
    """An optional package (vllm, chromadb, …) is missing or unusable."""


class HardwareError(XiaoshuoError):
    """The hardware cannot do what was asked (no GPU, not enough memory …)."""


def _short(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
