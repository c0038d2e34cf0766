"""The options several commands share, declared once, and the helpers that turn their values into objects.

* ``NovelOpt`` / ``OptionalNovelOpt`` — ``--novel/-n``, the novel's slug (or its unambiguous title,
  resolved to the slug by ``Novels.resolve`` before the command runs), in every command group
  (``SlugOpt``: ``novel import``'s ``--slug``, also spelled ``--novel/-n``).
* ``BackendOpt``, ``ModelOpt``, ``LoraOpt``, ``JsonOpt`` — the engine flags and ``--json``.
  ``--model`` is resolved while the command line is parsed, by the same resolver as ``model.base_model``
  (:func:`xiaoshuo.model_names.resolve_model`): a hub id pulled with ``xiaoshuo model pull`` reaches the
  command as its folder under ``paths.models_dir``, so it loads offline and is never downloaded twice.
* :func:`novels`, :func:`echo_json`, :func:`choose_adapter`, :func:`planning_engine` — what more than one
  command module needs (no command module imports another command module).

What each command does with the values is the command's business; this module declares and resolves.
Heavy libraries are imported inside the functions (``xiaoshuo --help`` stays fast).
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated

import typer

from xiaoshuo.cli.state import cli_state


def _resolve_model_flag(ctx: typer.Context, value: str | None) -> str | None:
    """``--model``'s callback: the value as the engine loads it (None = not given: model.base_model)."""
    if value is None:
        return None
    from xiaoshuo.model_names import resolve_model

    return resolve_model(value, cli_state(ctx).settings().paths.models_dir)


def _resolve_novel_flag(ctx: typer.Context, value: str | None) -> str | None:
    """``--novel``: a slug as given, or the title of exactly one novel → its slug (``Novels.resolve``):
    after ``novel new yuye --title 雨夜剑``, ``--novel 雨夜剑`` means yuye in every command, memory too."""
    if value is None or ctx.resilient_parsing:
        return value
    return novels(ctx).resolve(value)


_NOVEL_HELP = "The novel's slug (xiaoshuo novel list), or its title when only one novel has it."
NovelOpt = Annotated[str, typer.Option("--novel", "-n", help=_NOVEL_HELP, callback=_resolve_novel_flag)]
OptionalNovelOpt = Annotated[
    str | None, typer.Option("--novel", "-n", help=_NOVEL_HELP, callback=_resolve_novel_flag)
]
SlugOpt = Annotated[
    str, typer.Option("--slug", "--novel", "-n", help="The novel's slug (folder and memory key).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
BackendOpt = Annotated[
    str | None, typer.Option("--backend", help="auto | vllm | openai | transformers | llamacpp.")
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model path or hub id (a pulled one is used from paths.models_dir); default model.base_model.",
        callback=_resolve_model_flag,
    ),
]
LoraOpt = Annotated[
    list[str] | None, typer.Option("--lora", help="Adapter as name=path or path (repeatable).")
]


def novels(ctx: typer.Context):
    """The novels of the configured data folder (``--novel`` names one of them)."""
    from xiaoshuo.writing import Novels

    return Novels.from_settings(cli_state(ctx).settings())


def echo_json(data) -> None:
    """``--json``'s output: one indented JSON document, Chinese kept as is."""
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def choose_adapter(settings, adapters: dict[str, str], wanted: str | None, backend: str) -> str | None:
    """The adapter a request uses (``--adapter``): :func:`xiaoshuo.adapters.choose_adapter` with this
    command's checkpoints folder; on the ``openai`` backend any other name is the server's served name."""
    from xiaoshuo.adapters import choose_adapter as choose

    return choose(settings.paths.checkpoints_dir, adapters, wanted, served_by_name=backend == "openai")


@contextlib.contextmanager
def planning_engine(ctx: typer.Context, *, backend, model, adapter, memory: bool = False):
    """(settings, engine, adapter name or None, memory store or None) for planning commands
    (``outline generate``, ``chapter summarize``, the work after ``chapter accept``)."""
    from xiaoshuo.engine import load_engine
    from xiaoshuo.writing.prompts import Prompts

    settings = cli_state(ctx).settings()
    Prompts.from_settings(settings)  # a bad writing.prompts_file fails before the model loads
    adapters: dict[str, str] = {}
    use = choose_adapter(settings, adapters, adapter or "none", backend or settings.engine.backend)
    with contextlib.ExitStack() as stack:
        store = None
        if memory:
            from xiaoshuo.memory import MemoryStore

            store = stack.enter_context(MemoryStore(settings))
        engine = stack.enter_context(load_engine(settings, backend=backend, model=model, lora=adapters))
        yield settings, engine, use or None, store
