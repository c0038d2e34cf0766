"""Our own embedding function for Chroma (Chroma's default downloads a model at run time).

sentence-transformers with ``memory.embedding_model`` — a hub id or a local path;
``BAAI/bge-small-zh-v1.5`` is the sensible CPU choice, ``BAAI/bge-m3`` (the seed's)
on a GPU.  BGE Chinese models get their query instruction.  ``"none"`` turns dense
retrieval off: entries are stored with a constant 1-d vector and only triggers +
BM25 retrieve.  The function is registered with Chroma so a reopened collection
knows it.  This module embeds; it does not store or rank.

The model loads on first use, or in the background after :meth:`start_loading`
(``ready(timeout)`` tells a caller that cannot wait — the WebUI — whether it is
there yet).  A failed load is remembered for ``RETRY_AFTER_S`` so a missing model
costs one attempt, not one per query; retrieval then degrades instead of failing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from functools import lru_cache
from typing import Any

from xiaoshuo.errors import XiaoshuoError

NONE = "none"
_BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："
RETRY_AFTER_S = 30.0


class EmbeddingError(XiaoshuoError):
    """The embedding model cannot be loaded."""


def embedding_function(model: str, batch_size: int = 32) -> Any:
    """The (lazily defined and registered) embedding function for ``model``."""
    return _embedding_class()(model, batch_size)


@lru_cache(maxsize=1)
def _embedding_class() -> type:
    # Defined on first use so importing this module does not import chromadb.
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
    from chromadb.utils.embedding_functions import register_embedding_function

    @register_embedding_function
    class XiaoshuoEmbedding(EmbeddingFunction[Documents]):
        """Sentence-transformers embeddings (or none), loaded lazily, batched."""

        def __init__(self, model: str = NONE, batch_size: int = 32) -> None:
            self.model = model
            self.batch_size = batch_size
            self._st: Any = None
            self._lock = threading.Lock()
            self._error: EmbeddingError | None = None
            self._failed_at = 0.0
            self._loader: threading.Thread | None = None
            self._loader_lock = threading.Lock()  # not _lock: that one is held during a load

        @property
        def dense(self) -> bool:
            return self.model.lower() != NONE

        @property
        def loaded(self) -> bool:
            return self._st is not None

        def _load(self) -> Any:
            with self._lock:
                if self._st is not None:
                    return self._st
                if self._error is not None and time.monotonic() - self._failed_at < RETRY_AFTER_S:
                    raise self._error
                try:
                    from xiaoshuo.hf import require_model

                    require_model(self.model, setting="memory.embedding_model")  # offline: fail in seconds
                    import torch
                    from sentence_transformers import SentenceTransformer

                    device = "cuda" if torch.cuda.is_available() else "cpu"
                    self._st = SentenceTransformer(self.model, device=device)
                except Exception as exc:
                    self._error = load_error(self.model, exc)
                    self._failed_at = time.monotonic()
                    raise self._error from None
                self._error = None
                return self._st

        def start_loading(self) -> None:
            """Load the model on a background thread (no-op when off, loaded or already loading)."""
            if not self.dense or self._st is not None:
                return
            with self._loader_lock:
                if self._loader is not None and self._loader.is_alive():
                    return
                self._loader = threading.Thread(
                    target=self._load_quietly, name="xiaoshuo-embedding-load", daemon=True
                )
                self._loader.start()

        def _load_quietly(self) -> None:
            with contextlib.suppress(EmbeddingError):  # remembered in self._error; ready() raises it
                self._load()

        def ready(self, timeout: float | None = None) -> bool:
            """Whether the model can embed now.  ``None`` waits for (or does) the load; a number waits at most
            that many seconds for a background load.  A failed load raises :class:`EmbeddingError`."""
            if not self.dense or self._st is not None:
                return True
            if timeout is None:
                self._load()
                return True
            self.start_loading()
            loader = self._loader
            if loader is not None:
                loader.join(timeout)
            if self._st is None and self._error is not None and (loader is None or not loader.is_alive()):
                raise self._error
            return self._st is not None

        def __call__(self, input: Documents) -> Embeddings:
            if not self.dense:
                return [[1.0] for _ in input]
            vectors = self._load().encode(
                list(input), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
            return [v for v in vectors]

        def embed_query(self, input: Documents) -> Embeddings:
            if self.dense and "bge" in self.model.lower() and "zh" in self.model.lower():
                return self([_BGE_ZH_QUERY + q for q in input])
            return self(input)

        @staticmethod
        def name() -> str:
            return "xiaoshuo"

        def get_config(self) -> dict[str, Any]:
            return {"model": self.model, "batch_size": self.batch_size}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> XiaoshuoEmbedding:
            return XiaoshuoEmbedding(config.get("model", NONE), int(config.get("batch_size", 32)))

        def default_space(self) -> str:
            return "cosine"

        def supported_spaces(self) -> list[str]:
            return ["cosine", "l2", "ip"]

    return XiaoshuoEmbedding


def load_error(model: str, exc: BaseException) -> EmbeddingError:
    """One clean line (no newlines, no library prefixes) for a model that did not load."""
    from xiaoshuo.hf import ModelLoadError

    if isinstance(exc, ModelLoadError):  # offline: its own message names `xiaoshuo model pull`
        return EmbeddingError(
            exc.message,
            expected=exc.expected,
            received=exc.received,
            fix=f'{exc.fix}；或不用向量检索，只用关键词检索：设置 memory.embedding_model = "none"',
        )
    detail = " ".join(str(exc).split())
    return EmbeddingError(
        "无法加载向量模型 (cannot load the embedding model)",
        expected="memory.embedding_model: a local sentence-transformers folder, "
        'a hub id that is cached or downloadable, or "none"',
        received=f"{model}: {type(exc).__name__}: {detail[:200]}",
        fix='下载模型（如 BAAI/bge-small-zh-v1.5）或设置 memory.embedding_model = "none"',
    )
