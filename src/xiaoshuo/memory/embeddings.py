"""Our own embedding function for Chroma (Chroma's default downloads a model at run time).

sentence-transformers with ``memory.embedding_model`` — a hub id or a local path;
``BAAI/bge-small-zh-v1.5`` is the sensible CPU choice, ``BAAI/bge-m3`` (the seed's)
on a GPU.  BGE Chinese models get their query instruction.  ``"none"`` turns dense
retrieval off: entries are stored with a constant 1-d vector and only triggers +
BM25 retrieve.  The function is registered with Chroma so a reopened collection
knows it.  This module embeds; it does not store or rank.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from xiaoshuo.errors import XiaoshuoError

NONE = "none"
_BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："


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

        @property
        def dense(self) -> bool:
            return self.model.lower() != NONE

        def _load(self) -> Any:
            with self._lock:
                if self._st is None:
                    try:
                        import torch
                        from sentence_transformers import SentenceTransformer

                        device = "cuda" if torch.cuda.is_available() else "cpu"
                        self._st = SentenceTransformer(self.model, device=device)
                    except Exception as exc:
                        raise EmbeddingError(
                            "无法加载向量模型 (cannot load the embedding model)",
                            expected="memory.embedding_model: a local sentence-transformers folder, "
                            'a hub id that is cached or downloadable, or "none"',
                            received=f"{self.model}: {type(exc).__name__}: {str(exc)[:200]}",
                            fix='下载模型（如 BAAI/bge-small-zh-v1.5）或设置 memory.embedding_model = "none"',
                        ) from None
            return self._st

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
