"""Stores: where the hybrid memory keeps its state.

``InMemoryStore`` is always available. ``SQLiteStore``, ``RedisStore`` and ``PostgresStore``
load lazily (the last two need the ``redis`` and ``postgres`` extras).
"""

from __future__ import annotations

from langchain_hybrid_memory.stores.base import MemoryStore
from langchain_hybrid_memory.stores.in_memory import InMemoryStore

__all__ = ["InMemoryStore", "MemoryStore", "open_store"]


def open_store(store: MemoryStore | str | None) -> MemoryStore:
    """Turn the ``store=`` argument into a store: a store object, a URL, or ``None``.

    ``None`` and ``"memory://"`` give an :class:`InMemoryStore`.

    Raises:
        StoreError: The URL's scheme is unknown or its backend is not available yet.

    Example:
        >>> type(open_store("memory://")).__name__
        'InMemoryStore'
    """
    from langchain_hybrid_memory.errors import StoreError

    if store is None:
        return InMemoryStore()
    if isinstance(store, MemoryStore):
        return store
    if not isinstance(store, str):
        msg = f"store must be a MemoryStore or a URL string, got {type(store).__name__}"
        raise StoreError(msg)
    scheme = store.split("://", 1)[0].lower() if "://" in store else ""
    if scheme == "memory":
        return InMemoryStore()
    msg = f"cannot open a store for scheme {scheme!r} (URL not shown); supported: memory://"
    raise StoreError(msg)
