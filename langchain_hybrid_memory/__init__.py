"""langchain-hybrid-memory: LangChain conversation memory that stays small and still remembers.

One engine, :class:`HybridMemory`, combines a recent window of turns, a rolling summary,
entity memory and FAISS recall, and hands LangChain a context that never exceeds a token budget.
"""

from __future__ import annotations

from langchain_hybrid_memory._version import __version__
from langchain_hybrid_memory.config import BudgetShares, HybridMemoryConfig
from langchain_hybrid_memory.errors import HybridMemoryError
from langchain_hybrid_memory.hybrid import HybridMemory
from langchain_hybrid_memory.types import MemoryContext

__all__ = [
    "BudgetShares",
    "HybridMemory",
    "HybridMemoryConfig",
    "HybridMemoryError",
    "MemoryContext",
    "__version__",
]
