"""Stores: where the hybrid memory keeps its state.

``InMemoryStore`` is always available; it keeps everything in this process (nothing at rest, so
nothing to encrypt). ``SQLiteStore``, ``RedisStore`` and ``PostgresStore`` load lazily; the last
two need the ``redis`` and ``postgres`` extras, and importing them without it raises
:class:`~langchain_hybrid_memory.errors.MissingDependencyError` naming the extra. The persistent
stores encrypt what they keep when given ``encryption_key``
(:mod:`~langchain_hybrid_memory.stores.encryption`).
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Any

from langchain_hybrid_memory.errors import ConfigError, StoreError
from langchain_hybrid_memory.stores._codec import Codec
from langchain_hybrid_memory.stores.base import MemoryStore
from langchain_hybrid_memory.stores.in_memory import InMemoryStore

if TYPE_CHECKING:
    from langchain_hybrid_memory.stores.encryption import EncryptionKey
    from langchain_hybrid_memory.stores.postgres import PostgresStore
    from langchain_hybrid_memory.stores.redis import RedisStore
    from langchain_hybrid_memory.stores.sqlite import SQLiteStore

__all__ = [
    "InMemoryStore",
    "MemoryStore",
    "PostgresStore",
    "RedisStore",
    "SQLiteStore",
    "open_store",
]

_LAZY = {
    "SQLiteStore": "langchain_hybrid_memory.stores.sqlite",
    "RedisStore": "langchain_hybrid_memory.stores.redis",
    "PostgresStore": "langchain_hybrid_memory.stores.postgres",
}

_REDIS_SCHEMES = {"redis", "rediss", "unix", "redis+cluster", "rediss+cluster"}
_POSTGRES_SCHEMES = {"postgresql", "postgres"}
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_SUPPORTED = "memory://, sqlite:///path, redis://, rediss://, redis+cluster://, postgresql://"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)


def open_store(
    store: MemoryStore | str | None,
    *,
    ttl_seconds: float | None = None,
    encryption_key: EncryptionKey | None = None,
    encrypt_vectors: bool = False,
) -> MemoryStore:
    """Turn the ``store=`` argument into a store: a store object, a URL, or ``None``.

    URLs:

    - ``None``, ``memory://``: an :class:`InMemoryStore`.
    - ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite:///:memory:``:
      a :class:`SQLiteStore`.
    - ``redis://host:port/db``, ``rediss://...``, ``unix://...``: a :class:`RedisStore`;
      ``redis+cluster://host:port`` (or ``rediss+cluster://``) for Redis Cluster.
    - ``postgresql://...``, ``postgres://...``: a :class:`PostgresStore`.

    Args:
        store: A store (returned as it is), a URL, or ``None``.
        ttl_seconds: Expiry of sessions for a store opened from a URL (``None``: never).
        encryption_key: For a persistent store opened from a URL: a Fernet key, or a list of
            them (the first encrypts, all decrypt), to encrypt turns, summaries and entities at
            rest. An in-process store keeps nothing at rest and only checks the key. With a store
            object, pass the key to its constructor instead.
        encrypt_vectors: With a key, encrypt the embedding vectors too.

    Raises:
        StoreError: The URL's scheme is unknown (the URL itself is never shown: it may hold a
            password), or the store cannot be opened (the message names the store and cause).
        ConfigError: A bad TTL or encryption key, or an encryption key given with a store
            object (it could not apply it).
        MissingDependencyError: The store's extra is not installed.

    Example:
        >>> type(open_store("memory://")).__name__
        'InMemoryStore'
        >>> type(open_store("sqlite:///:memory:")).__name__
        'SQLiteStore'
    """
    Codec(encryption_key, encrypt_vectors=encrypt_vectors)  # a bad key fails here, for any store
    if store is None:
        return InMemoryStore(ttl_seconds=ttl_seconds)
    if isinstance(store, MemoryStore):
        if encryption_key is not None:
            msg = (
                "encryption_key applies to a store opened from a URL; for a store object, pass "
                "encryption_key to its constructor (e.g. SQLiteStore(path, encryption_key=...))"
            )
            raise ConfigError(msg)
        return store
    if not isinstance(store, str):
        msg = f"store must be a MemoryStore or a URL string, got {type(store).__name__}"
        raise StoreError(msg)
    scheme, separator, rest = store.partition("://")
    scheme = scheme.lower()
    if not separator or not _SCHEME.fullmatch(scheme):
        msg = f"store is not a URL (not shown); supported: {_SUPPORTED}"
        raise StoreError(msg)
    if scheme == "memory":
        return InMemoryStore(ttl_seconds=ttl_seconds)
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            msg = "a sqlite URL needs a path: sqlite:///relative/path or sqlite:////absolute/path"
            raise StoreError(msg)
        from langchain_hybrid_memory.stores.sqlite import SQLiteStore

        return SQLiteStore(
            rest[1:],
            ttl_seconds=ttl_seconds,
            encryption_key=encryption_key,
            encrypt_vectors=encrypt_vectors,
        )
    if scheme in _REDIS_SCHEMES:
        from langchain_hybrid_memory.stores.redis import RedisStore

        return RedisStore(
            store,
            ttl_seconds=ttl_seconds,
            encryption_key=encryption_key,
            encrypt_vectors=encrypt_vectors,
        )
    if scheme in _POSTGRES_SCHEMES:
        from langchain_hybrid_memory.stores.postgres import PostgresStore

        return PostgresStore(
            store,
            ttl_seconds=ttl_seconds,
            encryption_key=encryption_key,
            encrypt_vectors=encrypt_vectors,
        )
    msg = f"cannot open a store for scheme {scheme!r} (URL not shown); supported: {_SUPPORTED}"
    raise StoreError(msg)
