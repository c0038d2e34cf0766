"""Loading Hugging Face pieces with one clear error (shared by prepare, the engine and training).

Only loading lives here; what a caller does with the tokenizer is its own business.
"""

from __future__ import annotations

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
