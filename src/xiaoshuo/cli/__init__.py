"""The ``xiaoshuo`` command line: thin typer commands over the Python API.

One module per command group (``cli/<group>.py``), each exposing a ``typer.Typer``
named ``app``: a module whose ``app`` has no name adds its commands at the top level
(``config``, ``doctor``, ``prepare`` …); a module whose ``app`` is
``typer.Typer(name="memory", …)`` adds a group (``xiaoshuo memory add`` …).
Registering a new module is one entry in :data:`COMMAND_MODULES` (help lists
commands in that order).  ``state.py`` holds what the global options set,
``render.py`` the rich formatting.

Every command loads settings through :func:`xiaoshuo.config.load` and calls one
API function; it formats results and errors, nothing else.  Heavy libraries
(torch, vllm, chromadb) are imported inside commands, never at module level, so
``xiaoshuo --help`` stays fast.  Core errors (:class:`XiaoshuoError`) and every operating-system
error (``OSError``: disk full, read-only folder, name too long …, worded by
:func:`xiaoshuo.errors.translate`) become one clear line on stderr and exit 2; ``--debug`` shows
the traceback.  Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from xiaoshuo import __version__
from xiaoshuo.cli.state import CliState
from xiaoshuo.config import parse_assignment
from xiaoshuo.errors import translate

EXIT_ERROR = 2

#: Command modules under ``xiaoshuo.cli``, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "config",
    "model",
    "prepare",
    "inference",
    "serve",
    "train",
    "adapters",
    "webui",
    "memory",
    "novel",
    "outline",
    "write",
    "chapter",
    "check",
    "eval",
)

app = typer.Typer(
    name="xiaoshuo",
    help="xiaoshuo 中文小说写作AI系统 — vLLM + LoRA + ChromaDB. Local Chinese novel-writing assistant.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"xiaoshuo {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="config.toml to read (default: ./config.toml or $XIAOSHUO_CONFIG).",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            help="Override one key: --set training.learning_rate=1e-4 (repeatable).",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """xiaoshuo 中文小说写作AI系统."""
    overrides = dict(parse_assignment(item) for item in (set_ or []))
    ctx.obj = CliState(config_file=config, overrides=overrides, debug=debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


for _module in COMMAND_MODULES:
    app.add_typer(importlib.import_module(f"xiaoshuo.cli.{_module}").app)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, turn core errors into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        result = app(args=args, prog_name="xiaoshuo", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("已中止 aborted", err=True)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: typer's own message and exit code
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"错误 error: {exc.format_message()}", err=True)
        return exc.exit_code
    except Exception as exc:  # typed errors, OS errors (disk full …): one line; anything else is a bug
        error = translate(exc)
        if error is None or debug:
            raise
        typer.secho(f"错误 error: {error}", err=True, fg=typer.colors.RED)
        return EXIT_ERROR
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
