"""langchain-hybrid-memory: LangChain conversation memory that stays small and still remembers.

One engine, :class:`HybridMemory`, combines a recent window of turns, a rolling summary,
entity memory and FAISS recall, and hands LangChain a context that never exceeds a token budget.
Adapters plug it into every LangChain surface: :class:`HybridChatMessageHistory` and
:func:`with_hybrid_memory` (LCEL), :class:`ConversationHybridMemory` (classic chains, ``classic``
extra), :class:`HybridMemoryMiddleware` and :func:`memory_tools` (``create_agent``, ``agents``
extra), and :class:`HybridMemoryStore`, a LangGraph store over the same databases (``agents``
extra). Those needing an extra load on first access, so the core needs none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_hybrid_memory._version import __version__
from langchain_hybrid_memory.chat_message_history import (
    HybridChatMessageHistory,
    with_hybrid_memory,
)
from langchain_hybrid_memory.config import BudgetShares, HybridMemoryConfig
from langchain_hybrid_memory.context import MemoryContext
from langchain_hybrid_memory.errors import (
    ChatModelError,
    ConfigError,
    DecryptionError,
    EmbeddingError,
    HybridMemoryError,
    InvalidInputError,
    InvalidMessageTypeError,
    MissingDependencyError,
    SessionOwnershipError,
    StoreError,
    SummarizerError,
)
from langchain_hybrid_memory.hybrid import HybridMemory
from langchain_hybrid_memory.types import (
    Entity,
    EntityFact,
    ErasureReport,
    FactValue,
    RecalledTurn,
    RunningSummary,
    Turn,
)

if TYPE_CHECKING:
    from langchain_hybrid_memory.classic_memory import ConversationHybridMemory
    from langchain_hybrid_memory.langgraph_store import HybridMemoryStore
    from langchain_hybrid_memory.middleware import HybridMemoryMiddleware
    from langchain_hybrid_memory.tools import memory_tools

__all__ = [
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

_LAZY = {
    "ConversationHybridMemory": "langchain_hybrid_memory.classic_memory",
    "HybridMemoryMiddleware": "langchain_hybrid_memory.middleware",
    "HybridMemoryStore": "langchain_hybrid_memory.langgraph_store",
    "memory_tools": "langchain_hybrid_memory.tools",
}


def __getattr__(name: str) -> Any:
    """Load the adapters that need an optional extra only when they are used."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
