"""Store fixtures shared by the store test modules: backends, encrypted backends, a Redis Cluster.

Import the fixtures into a test module (``from tests.unit.store_fixtures import cluster_port``);
each module then starts its own cluster, once, when a test asks for it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from cryptography.fernet import Fernet

from langchain_hybrid_memory.stores import PostgresStore, RedisStore, SQLiteStore
from tests.integration.backends import POSTGRES_URL, Backend, redis_cluster

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from langchain_hybrid_memory.stores import MemoryStore

#: Backend kind whose stores are SQLite stores with an encryption key (vectors sealed too).
SQLITE_ENCRYPTED = "sqlite-encrypted"

_CONFIGURED: Any = object()  # open(): use the backend's own keys


@dataclass
class SealedBackend(Backend):
    """A :class:`Backend` whose stores encrypt: ``open()`` passes ``keys`` unless told otherwise.

    ``kind`` stays the plain store kind (``"sqlite"``, ``"redis"``, ...), so everything that
    tells backends apart by kind treats it as that store.
    """

    keys: Any = field(default_factory=Fernet.generate_key)
    encrypt_vectors: bool = True

    def open(
        self,
        *,
        ttl_seconds: float | None = None,
        keys: Any = _CONFIGURED,
        encrypt_vectors: bool | None = None,
    ) -> MemoryStore:
        """A new store on this backend's namespace, with the backend's keys or ``keys``."""
        key = self.keys if keys is _CONFIGURED else keys
        vectors = self.encrypt_vectors if encrypt_vectors is None else encrypt_vectors
        options: dict[str, Any] = {
            "ttl_seconds": ttl_seconds,
            "encryption_key": key,
            "encrypt_vectors": vectors and key is not None,
        }
        store: MemoryStore
        if self.kind == "sqlite":
            store = SQLiteStore(self.tmp_path / "memory.db", **options)
        elif self.kind in ("redis", "redis-cluster"):
            store = RedisStore(self.url, prefix=self.namespace, **options)
        elif self.kind == "postgres":
            store = PostgresStore(self.url, schema=self.namespace, **options)
        else:
            msg = f"{self.kind} keeps nothing at rest to encrypt"
            raise ValueError(msg)
        self.opened.append(store)
        return store

    def raw_values(self, *, dumps: bool = True) -> list[bytes]:
        """Every value the stores left in storage, as the server holds it.

        Redis: each key's name and ``DUMP`` (unless ``dumps=False``: a hash's ``DUMP`` changes
        order as Redis rehashes it, even on reads), and every element of it (``GET``,
        ``LRANGE``, ``HGETALL``, ``SMEMBERS``). SQL: every column of every row, text as UTF-8.
        """
        if self.kind in ("redis", "redis-cluster"):
            return self._redis_values(dumps=dumps)
        if self.kind == "postgres":
            with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
                return _sql_values(connection, f'"{self.namespace}".')
        with contextlib.closing(sqlite3.connect(self.tmp_path / "memory.db")) as connection:
            return _sql_values(connection, "")

    def sqlite_file_bytes(self) -> bytes:
        """The SQLite database file and its WAL, after a checkpoint."""
        path = self.tmp_path / "memory.db"
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.execute("PRAGMA wal_checkpoint(FULL)")
        return b"".join(
            candidate.read_bytes()
            for candidate in (path, path.with_name("memory.db-wal"))
            if candidate.exists()
        )

    def _redis_values(self, *, dumps: bool) -> list[bytes]:
        client = self.redis_client()
        values: list[bytes] = []
        try:
            for key in client.scan_iter(match=f"{self.namespace}:*"):
                values.append(key)
                if dumps:
                    values.append(client.dump(key) or b"")
                kind = client.type(key).decode()
                if kind == "string":
                    values.append(client.get(key))
                elif kind == "list":
                    values.extend(client.lrange(key, 0, -1))
                elif kind == "hash":
                    for name, value in client.hgetall(key).items():
                        values.extend((name, value))
                elif kind == "set":
                    values.extend(client.smembers(key))
        finally:
            client.close()
        return values


def _sql_values(connection: Any, tables: str) -> list[bytes]:
    values: list[bytes] = []
    for table in ("sessions", "turns", "vectors", "entities"):
        for row in connection.execute(f"SELECT * FROM {tables}{table}").fetchall():
            for value in row:
                if isinstance(value, str):
                    values.append(value.encode("utf-8"))
                elif isinstance(value, (bytes, bytearray, memoryview)):
                    values.append(bytes(value))
                else:
                    values.append(str(value).encode("ascii"))
    return values


@pytest.fixture(scope="module")
def cluster_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A three-node Redis Cluster for this module; the port of one node."""
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as port:
        yield port


def open_backend(
    request: pytest.FixtureRequest, kind: str, tmp_path: Path, **options: Any
) -> Iterator[Backend]:
    """Yield a backend of ``kind`` (``SQLITE_ENCRYPTED`` or a ``SealedBackend`` when
    ``options`` are given), cleaned up afterwards."""
    port = request.getfixturevalue("cluster_port") if kind == "redis-cluster" else None
    backend: Backend
    if kind == SQLITE_ENCRYPTED:
        backend = SealedBackend("sqlite", tmp_path, **options)
    elif options:
        backend = SealedBackend(kind, tmp_path, cluster_port=port, **options)
    else:
        backend = Backend(kind, tmp_path, cluster_port=port)
    try:
        yield backend
    finally:
        backend.cleanup()
