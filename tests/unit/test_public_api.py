from __future__ import annotations

import langchain_hybrid_memory
from langchain_hybrid_memory import stores


def test_the_public_surface_changes_only_on_purpose():
    assert sorted(langchain_hybrid_memory.__all__) == [
        "BudgetShares",
        "ConversationHybridMemory",
        "HybridChatMessageHistory",
        "HybridMemory",
        "HybridMemoryConfig",
        "HybridMemoryError",
        "HybridMemoryMiddleware",
        "MemoryContext",
        "__version__",
        "with_hybrid_memory",
    ]
    assert sorted(stores.__all__) == [
        "InMemoryStore",
        "MemoryStore",
        "PostgresStore",
        "RedisStore",
        "SQLiteStore",
        "open_store",
    ]


def test_the_version_has_one_source():
    from importlib.metadata import version

    assert version("langchain-hybrid-memory") == langchain_hybrid_memory.__version__
