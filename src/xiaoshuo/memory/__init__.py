"""Story memory: a ChromaDB store of characters, plot, settings and dialogues; hybrid retrieval;
a token-budgeted context builder.

    with MemoryStore(settings) as store:
        store.add(make_entry(kind="character", name="林远", aliases=["阿远"], text="青云山弟子"))
        hits = search(store, "default", "阿远回到了青云山")
        block = build_context(hits, budget=512, count_tokens=engine.count_tokens)

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
    "MemoryEntry",
    "MemoryStore",
    "StoryMemoryError",
    "build_context",
    "make_entry",
    "search",
]


def __getattr__(name: str):
    if name == "MemoryStore":
        from xiaoshuo.memory.store import MemoryStore

        return MemoryStore
    if name == "search":
        from xiaoshuo.memory.retrieval import search

        return search
    raise AttributeError(name)
