"""What the CLI's global options set (``--config``, ``--set``, ``--debug``), shared by the command modules."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from xiaoshuo.config import Settings, load


@dataclass
class CliState:
    """What the global options set; commands turn it into Settings."""

    config_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    debug: bool = False

    def settings(self, **flag_overrides: Any) -> Settings:
        """Settings with ``--set`` values and then command flags (None = not given)."""
        overrides = dict(self.overrides)
        overrides.update({k: v for k, v in flag_overrides.items() if v is not None})
        return load(self.config_file, overrides=overrides, override_source="cli (flag or --set)")


def cli_state(ctx: typer.Context) -> CliState:
    return ctx.obj if isinstance(ctx.obj, CliState) else CliState()
