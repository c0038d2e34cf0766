"""The options several commands share, declared once, and the helpers that turn their values into objects.

* ``NovelOpt`` / ``OptionalNovelOpt`` — ``--novel/-n``, the novel's slug, in every command group
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

from xiaoshuo.cli.state import _state


def _resolve_model_flag(ctx: typer.Context, value: str | None) -> str | None:
    """``--model``'s callback: the value as the engine loads it (None = not given: model.base_model)."""
    if value is None:
        return None
    from xiaoshuo.model_names import resolve_model

    return resolve_model(value, _state(ctx).settings().paths.models_dir)


NovelOpt = Annotated[str, typer.Option("--novel", "-n", help="The novel's slug (xiaoshuo novel list).")]
OptionalNovelOpt = Annotated[
    str | None, typer.Option("--novel", "-n", help="The novel's slug (xiaoshuo novel list).")
]
SlugOpt = Annotated[
    str, typer.Option("--slug", "--novel", "-n", help="The novel's slug (folder and memory key).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
BackendOpt = Annotated[str | None, typer.Option("--backend", help="auto | vllm | openai | transformers.")]
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

    return Novels.from_settings(_state(ctx).settings())


def echo_json(data) -> None:
    """``--json``'s output: one indented JSON document, Chinese kept as is."""
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def choose_adapter(settings, adapters: dict[str, str], wanted: str | None, backend: str) -> str | None:
    """The adapter a request uses; a trained name or a folder not given with ``--lora`` joins ``adapters``.

    Order: ``none``/``base`` → the base model; a ``--lora`` name; on the ``openai`` backend any other name is
    the server's served adapter name (the server checks it); a peft folder (``adapter_config.json``, or a run
    folder with ``final_model/``); a trained adapter's registry name (``checkpoints/<name>/final_model``).
    """
    from pathlib import Path

    from xiaoshuo.engine import EngineError

    if wanted is None:
        return next(iter(adapters), None)
    if wanted.strip().lower() in ("none", "base", ""):
        return None
    if wanted in adapters or backend == "openai":
        return wanted
    folder = Path(wanted).expanduser()
    from xiaoshuo.training.registry import FINAL, adapter_dir

    registered = adapter_dir(settings.paths.checkpoints_dir, wanted)
    for candidate in (folder, folder / FINAL, registered):
        if (candidate / "adapter_config.json").is_file():
            name = wanted if candidate == registered else folder.resolve().name
            if name in adapters and Path(adapters[name]).resolve() != candidate.resolve():
                name = str(candidate)
            adapters[name] = str(candidate)
            return name
    from xiaoshuo.training import list_adapters

    trained = [a.name for a in list_adapters(settings.paths.checkpoints_dir)]
    expected = []
    if adapters:
        expected.append("a --lora name (" + ", ".join(adapters) + ")")
    expected.append(
        "a trained adapter (" + ", ".join(trained) + ")" if trained else "a trained adapter (none yet)"
    )
    expected.append("a peft adapter folder (with adapter_config.json), or none")
    raise EngineError(
        "未知的 --adapter (unknown adapter)",
        expected="; ".join(expected),
        received=wanted,
        fix="xiaoshuo adapters list 查看已训练的适配器 (see trained adapters)",
    )


@contextlib.contextmanager
def planning_engine(ctx: typer.Context, *, backend, model, adapter, memory: bool = False):
    """(settings, engine, adapter name or None, memory store or None) for planning commands
    (``outline generate``, ``chapter summarize``, the work after ``chapter accept``)."""
    from xiaoshuo.engine import load_engine

    settings = _state(ctx).settings()
    adapters: dict[str, str] = {}
    use = choose_adapter(settings, adapters, adapter or "none", backend or settings.engine.backend)
    with contextlib.ExitStack() as stack:
        store = None
        if memory:
            from xiaoshuo.memory import MemoryStore

            store = stack.enter_context(MemoryStore(settings))
        engine = stack.enter_context(load_engine(settings, backend=backend, model=model, lora=adapters))
        yield settings, engine, use or None, store
