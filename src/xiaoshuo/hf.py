"""Loading Hugging Face pieces with one clear error (shared by prepare, the engine and training).

Only loading lives here; what a caller does with the tokenizer is its own business.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xiaoshuo.errors import XiaoshuoError


class ModelLoadError(XiaoshuoError):
    """A model or tokenizer cannot be loaded from the given path or hub id."""


def load_tokenizer(name_or_path: str, *, setting: str = "model.base_model") -> Any:
    """``AutoTokenizer.from_pretrained`` with an error that names the setting and the fix."""
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
