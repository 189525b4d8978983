from __future__ import annotations

import langchain_hybrid_memory
from langchain_hybrid_memory import stores


def test_the_public_surface_changes_only_on_purpose():
    assert sorted(langchain_hybrid_memory.__all__) == [
        "BudgetShares",
        "ChatModelError",
        "ConfigError",
        "ConversationHybridMemory",
        "DecryptionError",
        "EmbeddingError",
        "Entity",
        "EntityFact",
        "ErasureReport",
        "FactValue",
        "HybridChatMessageHistory",
        "HybridMemory",
        "HybridMemoryConfig",
        "HybridMemoryError",
        "HybridMemoryMiddleware",
        "HybridMemoryStore",
        "InvalidInputError",
        "InvalidMessageTypeError",
        "MemoryContext",
        "MissingDependencyError",
        "RecalledTurn",
        "RunningSummary",
        "SessionOwnershipError",
        "StoreError",
        "SummarizerError",
        "Turn",
        "__version__",
        "memory_tools",
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


def test_every_type_a_public_method_returns_or_raises_is_public():
    from langchain_hybrid_memory import errors

    assert set(errors.__all__) <= set(langchain_hybrid_memory.__all__)
    for name in ("Turn", "RecalledTurn", "ErasureReport", "RunningSummary", "MemoryContext"):
        assert getattr(langchain_hybrid_memory, name).__module__.startswith(
            "langchain_hybrid_memory."
        )


def test_the_version_has_one_source():
    from importlib.metadata import version

    assert version("langchain-hybrid-memory") == langchain_hybrid_memory.__version__
