"""``load_engine``: pick a backend, load the model and adapters, return an ``Engine``.

Backends are imported lazily; a missing one raises an error naming the install
command and the fallback.  ``auto`` is resolved by :mod:`xiaoshuo.engine.selection`
(llamacpp for a .gguf model, else vLLM when usable, else llamacpp or transformers on a CPU)
and the log says which and why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from xiaoshuo.config import Settings
from xiaoshuo.engine.base import Engine, EngineError
from xiaoshuo.errors import DependencyError
from xiaoshuo.hf import load_tokenizer

log = logging.getLogger(__name__)


def parse_lora_specs(specs: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``["name=path", "path"]`` → ``{name: path}`` (a bare path is named after its folder)."""
    adapters: dict[str, str] = {}
    for spec in specs or ():
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).name, spec
        name, path = name.strip(), path.strip()
        if not name or not path:
            raise EngineError(
                "无法解析 --lora 参数 (cannot parse --lora)", expected="name=path or path", received=spec
            )
        if name in adapters:
            raise EngineError(
                "重复的适配器名称 (duplicate adapter name)", received=name, expected="unique names"
            )
        adapters[name] = path
    return adapters


def _registry_path(config: Settings, path: str) -> str:
    """A trained adapter may be named by its run (``--lora style``); the registry resolves it."""
    from xiaoshuo.adapters import resolve_adapter

    found = resolve_adapter(config.paths.checkpoints_dir, path)
    return str(found) if found is not None else path  # not an adapter: register_adapter says why


def _merged_for(
    config: Settings, model: str, adapters: dict[str, str], *, on_cpu: bool
) -> tuple[tuple[str, str] | None, str]:
    """``((adapter name, merged folder), why)`` when the vLLM engine serves its adapter merged,
    else ``(None, why)``.  With ``auto`` a failed merge falls back to LoRA mode (logged); with
    ``always`` it raises."""
    from xiaoshuo.adapters import MergeError, ensure_merged, is_adapter_dir
    from xiaoshuo.engine.merged import merge_decision

    setting = config.engine.merge_adapter
    decision = merge_decision(setting, adapters, on_cpu=on_cpu, enable_lora=config.engine.enable_lora)
    log.info("engine mode: %s (%s)", decision.mode, decision.reason)
    if decision.mode != "merged" or decision.adapter is None:
        return None, decision.reason
    if not is_adapter_dir(adapters[decision.adapter]):
        return None, decision.reason  # not an adapter: the engine's register_adapter says why
    try:
        found = ensure_merged(config.paths.models_dir, model, adapters[decision.adapter])
    except MergeError as exc:
        if setting == "always":
            raise
        log.warning("合并失败，改用 LoRA 模式 merge failed, using LoRA mode: %s", exc)
        return None, f"merge failed ({exc}); LoRA mode"
    return (decision.adapter, str(found.path)), decision.reason


BUILTIN = ("auto", "vllm", "openai", "transformers", "llamacpp")

#: Extra backends by name → ``factory(config, model, adapters) -> Engine`` (``register_backend``).
#: Process-wide on purpose, like a plugin table: built-in backends are not in it and cannot be replaced.
_EXTRA_BACKENDS: dict[str, Callable[[Settings, str, dict[str, str]], Engine]] = {}


def register_backend(name: str, factory: Callable[[Settings, str, dict[str, str]], Engine]) -> None:
    """Make ``load_engine(backend=name)`` build an engine with ``factory`` (tests, plugins)."""
    if name in BUILTIN:
        raise EngineError("不能替换内置后端 (cannot replace a built-in backend)", received=name)
    _EXTRA_BACKENDS[name] = factory


def load_engine(
    config: Settings,
    *,
    backend: str | None = None,
    model: str | None = None,
    lora: Mapping[str, str] | list[str] | None = None,
) -> Engine:
    """Build the configured engine.  ``lora``: ``{name: path}`` or ``["name=path", …]``."""
    from xiaoshuo.engine.selection import backend_statuses, choose_backend
    from xiaoshuo.hardware import torch_status, vllm_status

    adapters = dict(lora) if isinstance(lora, Mapping) else parse_lora_specs(lora)
    adapters = {name: _registry_path(config, path) for name, path in adapters.items()}
    model = model or config.model.base_model
    wanted = backend or config.engine.backend
    if wanted in _EXTRA_BACKENDS:
        return _EXTRA_BACKENDS[wanted](config, model, adapters)
    if wanted not in BUILTIN:
        raise EngineError(
            "未知后端 (unknown backend)",
            expected="auto, vllm, openai, transformers or llamacpp",
            received=wanted,
        )
    if wanted == "openai":
        from xiaoshuo.engine.openai_backend import OpenAIEngine

        return OpenAIEngine(config, adapters)
    if wanted == "llamacpp" or (wanted == "auto" and model.lower().endswith(".gguf")):
        # no torch import (400 MB, seconds): llama.cpp needs none, and a missing llama_cpp says how to install
        from xiaoshuo.engine.llamacpp_backend import LlamaCppEngine

        why = "a .gguf model" if wanted == "auto" else "engine.backend = llamacpp"
        log.info("generation backend: llamacpp (%s)", why)
        return LlamaCppEngine(config, model, adapters)
    torch_info = torch_status()
    statuses = backend_statuses(config, torch_info, vllm_status())
    chosen = choose_backend(
        config, statuses, wanted=wanted, model=model, cuda=bool(torch_info.get("cuda_available"))
    )
    log.info("generation backend: %s", chosen.reason)
    if chosen.name == "llamacpp":
        from xiaoshuo.engine.llamacpp_backend import LlamaCppEngine

        return LlamaCppEngine(config, model, adapters)
    tokenizer = load_tokenizer(model, setting="--model / model.base_model")
    if chosen.name == "vllm":
        try:
            from xiaoshuo.engine.vllm_backend import VLLMEngine, library_logging
        except ImportError as exc:  # pragma: no cover - statuses said importable
            raise DependencyError(
                "无法导入 vllm (cannot import vllm)", received=str(exc), fix="make install"
            ) from None
        # vLLM's log (to stderr, not mixed with generated text) and the libraries' warnings: quiet unless
        # --debug or webui --verbose; read when vllm is imported
        library_logging()
        on_cpu = not torch_info.get("cuda_available")
        merged, reason = _merged_for(config, model, adapters, on_cpu=on_cpu)
        return VLLMEngine(
            config, model, adapters, on_cpu=on_cpu, tokenizer=tokenizer, merged=merged, mode_reason=reason
        )
    from xiaoshuo.engine.transformers_backend import TransformersEngine

    return TransformersEngine(config, model, adapters, tokenizer=tokenizer)


class PromptOnlyEngine(Engine):
    """Composes and counts exactly as the configured engine would, and never generates.

    The model's tokenizer (chat template included) and served context length, no weights: what a dry run
    or a context inspector needs, in the second a tokenizer takes to load instead of an engine's start."""

    backend = "prompt-only"

    def __init__(self, *, tokenizer: object, max_model_len: int | None, system_prompt: str, of: str) -> None:
        super().__init__(tokenizer=tokenizer, max_model_len=max_model_len, system_prompt=system_prompt)
        self.of = of  # the backend it stands in for

    def _submit(self, prepared, sink) -> None:
        raise EngineError(
            "这个引擎只用来组合提示词，不能生成 (a prompt-only engine does not generate)",
            expected="load_engine() for generation",
            received=self.of,
        )

    def _abort(self, request_id: str) -> None:
        return None

    def unfinished_requests(self) -> int:
        return 0

    def _shutdown(self) -> None:
        return None


def load_prompt_engine(
    config: Settings,
    *,
    backend: str | None = None,
    model: str | None = None,
    lora: Mapping[str, str] | list[str] | None = None,
) -> Engine:
    """An engine for composing prompts only (``write chapter --dry-run``): the model's tokenizer and
    context length (``model.vllm_max_model_len`` capped by the model's own), no model weights, no backend
    start.  The ``openai`` backend is a client (no weights here either): the real one is returned, since
    its server knows the context length and its tokenizer is found locally."""
    from xiaoshuo.engine.context_length import served_context_length

    wanted = backend or config.engine.backend
    if wanted == "openai":
        return load_engine(config, backend=wanted, model=model, lora=lora)
    if wanted not in BUILTIN and wanted not in _EXTRA_BACKENDS:
        raise EngineError(
            "未知后端 (unknown backend)",
            expected="auto, vllm, openai, transformers or llamacpp",
            received=wanted,
        )
    model = model or config.model.base_model
    if wanted == "llamacpp" or (wanted == "auto" and model.lower().endswith(".gguf")):
        from xiaoshuo.engine.llamacpp_backend import GGUFTokenizer, ensure_gguf

        tok = GGUFTokenizer(ensure_gguf(config, model))
        return PromptOnlyEngine(
            tokenizer=tok,
            max_model_len=min(config.model.vllm_max_model_len, tok.n_ctx_train or 1 << 20),
            system_prompt=config.engine.system_prompt,
            of="llamacpp",
        )
    tokenizer = load_tokenizer(model, setting="--model / model.base_model")
    return PromptOnlyEngine(
        tokenizer=tokenizer,
        max_model_len=served_context_length(config, model),
        system_prompt=config.engine.system_prompt,
        of=wanted,
    )
