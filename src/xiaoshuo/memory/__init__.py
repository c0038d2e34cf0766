"""Story memory: a ChromaDB store of characters, plot, settings and dialogues; hybrid retrieval;
a token-budgeted context builder.

    with MemoryStore(settings) as store:
        store.add(make_entry(kind="character", name="林远", aliases=["阿远"], text="青云山弟子"))
        found = retrieve(store, "default", "阿远回到了青云山", max_chapter=5, extra_terms=["青云山"])
        found.warnings        # e.g. the embedding model is missing: triggers + BM25 only, said here
        block = build_context(found.hits, budget=512, count_tokens=engine.count_tokens)

Importing this package does not import chromadb; opening a store does.
"""

from xiaoshuo.memory.context import ContextResult, build_context
from xiaoshuo.memory.schema import (
    DEFAULT_NOVEL,
    KIND_LABELS,
    KINDS,
    MemoryEntry,
    StoryMemoryError,
    make_entry,
)

__all__ = [
    "DEFAULT_NOVEL",
    "KINDS",
    "KIND_LABELS",
    "ContextResult",
    "Hit",
    "MemoryEntry",
    "MemoryStore",
    "Retrieval",
    "StoryMemoryError",
    "build_context",
    "make_entry",
    "retrieve",
    "search",
]


def __getattr__(name: str):
    if name == "MemoryStore":
        from xiaoshuo.memory.store import MemoryStore

        return MemoryStore
    if name in ("search", "retrieve", "Retrieval", "Hit"):
        from xiaoshuo.memory import retrieval

        return getattr(retrieval, name)
    raise AttributeError(name)
