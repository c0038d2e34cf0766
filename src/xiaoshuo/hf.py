"""Loading Hugging Face pieces with one clear error (shared by prepare, the engine and training).

Offline is known in a second, not a minute: before a hub id that is neither a local folder nor
cached is loaded, :func:`hub_reachable` asks the hub once (a 3 s HEAD request, no retries) and
caches the answer for the process.  Unreachable → ``HF_HUB_OFFLINE`` is switched on for this
process (every library then reads the cache instead of retrying for ~50 s) and the error says
"离线：…" with the local path or the ``xiaoshuo model pull`` command.

Only loading lives here; what a caller does with the tokenizer is its own business, and what a model
name means (``auto``, a pulled hub id) is :mod:`xiaoshuo.model_names`, the only xiaoshuo module this
one imports besides the errors.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Any

from xiaoshuo.errors import XiaoshuoError
from xiaoshuo.model_names import local_dir, pull_command

PROBE_TIMEOUT_S = 3.0


class ModelLoadError(XiaoshuoError):
    """A model or tokenizer cannot be loaded from the given path or hub id."""


def _env_offline() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@lru_cache(maxsize=8)
def hub_reachable(endpoint: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """``(answered, detail)`` for one HEAD request to ``endpoint``'s home page (any HTTP status but
    404 counts as an answer); asked once per endpoint per process.  Honours the proxy variables."""
    start = time.perf_counter()
    try:
        req = urllib.request.Request(endpoint, method="HEAD", headers={"User-Agent": "xiaoshuo"})
        with urllib.request.urlopen(req, timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # every hub and mirror has a home page: this is a proxy or a portal
            return False, f"HTTP 404 at {endpoint} (not a model hub: a proxy or captive portal?)"
        # any other status (401, 403, 405, 5xx …) came from the server: reachable
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{type(reason).__name__}: {reason} after {time.perf_counter() - start:.1f}s"
    return True, f"answered in {time.perf_counter() - start:.2f}s"


def go_offline() -> None:
    """Switch Hugging Face libraries in this process (and its children) to the local cache."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hub_constants

        hub_constants.HF_HUB_OFFLINE = True
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        pass


def hf_default_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def cached(name: str, filename: str) -> bool:
    """Whether the Hugging Face cache holds ``filename`` of hub id ``name`` (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, filename), str)
    except Exception:  # invalid repo id and the like
        return False


def require_model(
    name: str,
    *,
    setting: str,
    marker: str = "config.json",
    endpoint: str | None = None,
    models_dir: Path | str = "models",
) -> None:
    """Fail in seconds, not a minute, when ``name`` cannot come from anywhere.

    A local folder, or a hub id already in the Hugging Face cache, passes (offline, the libraries are
    told to use the cache).  Otherwise the hub is probed once; no answer → :class:`ModelLoadError`
    "离线：…" naming ``xiaoshuo model pull`` and the folder to put the files in.
    """
    if Path(name).expanduser().exists() or name.count("/") != 1 or name.startswith(("/", ".", "~")):
        return  # a local path (or not a hub id: the loader's own error says what is wrong)
    offline = _env_offline()
    in_cache = cached(name, marker)
    if not offline:
        ok, detail = hub_reachable(endpoint or hf_default_endpoint())
        if not ok:
            go_offline()
            offline = True
    else:
        detail = "HF_HUB_OFFLINE=1"
    if in_cache or not offline:
        return
    raise ModelLoadError(
        f"离线：{name} 不在本地，也连不上模型下载源 (offline: {name} is not on disk, no hub answered)",
        expected=f"{setting}: a local folder, a cached hub id, or a reachable hub",
        received=f"{name}: {detail}",
        fix=f"联网后运行 `{pull_command(name)}`（国内加 --source modelscope 或设置 model.hf_endpoint 镜像），"
        f"或把模型文件放到 {local_dir(name, Path(models_dir))}",
    )


def load_tokenizer(name_or_path: str, *, setting: str = "model.base_model") -> Any:
    """``AutoTokenizer.from_pretrained`` with an error that names the setting and the fix."""
    require_model(name_or_path, setting=setting, marker="tokenizer_config.json")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception as exc:  # HF raises OSError, ValueError, HFValidationError …
        first_line = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ModelLoadError(
            f"无法加载模型/分词器 (cannot load the model or tokenizer, from {setting})",
            expected="a local model folder with tokenizer files, or a hub id that is cached or downloadable",
            received=f"{name_or_path!r}: {type(exc).__name__}: {first_line}",
            fix=f"检查 {setting}；离线时把模型放到 models/ 下或填写本地路径",
        ) from None


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def load_local_tokenizer(name_or_path: str) -> Any | None:
    """The tokenizer of a local folder or an already-cached hub model, else ``None``.

    Never touches the network and fails fast: a folder needs tokenizer files, a
    hub id needs its ``tokenizer_config.json`` in the Hugging Face cache before
    transformers is even imported; loading uses ``local_files_only=True``.
    """
    if not name_or_path:
        return None
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
            return None
        source = str(folder)
    else:
        if name_or_path.count("/") != 1 or name_or_path.startswith(("/", ".", "~")):
            return None  # not a hub id (an Ollama tag, a served alias, a missing path)
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name_or_path, "tokenizer_config.json")
        except Exception:  # invalid repo id and the like
            return None
        if not isinstance(cached, str):
            return None
        source = name_or_path
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except Exception:  # incomplete cache, unknown tokenizer class …
        return None
