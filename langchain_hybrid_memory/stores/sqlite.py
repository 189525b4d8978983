"""SQLite: the embedded default store, one file shared by the processes of one machine."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from langchain_hybrid_memory._plans import plan_name, run_plan
from langchain_hybrid_memory.errors import StoreError
from langchain_hybrid_memory.stores._sql import (
    META_TABLE,
    MIGRATIONS,
    SCHEMA_VERSION,
    TABLES,
    Dialect,
    Query,
    SQLStore,
    execute,
)
from langchain_hybrid_memory.types import ErasureReport

if TYPE_CHECKING:
    from collections.abc import Iterator

    from langchain_hybrid_memory._plans import Plan
    from langchain_hybrid_memory.stores.encryption import EncryptionKey

__all__ = ["SQLiteStore"]

logger = logging.getLogger(__name__)

_R = TypeVar("_R")

_SQLITE = Dialect(
    tables="",
    placeholder="?",
    lock="",  # every write transaction is BEGIN IMMEDIATE: it holds the database's write lock
    now="((julianday('now') - 2440587.5) * 86400.0)",
    int_type="INTEGER",
    real_type="REAL",
    blob_type="BLOB",
)

_DEFAULT_TIMEOUT = 30.0


class SQLiteStore(SQLStore):
    """Keeps memory in one SQLite file: WAL mode, versioned schema, safe for many processes.

    Several processes (and threads) may use one file at once: writes take the database's write
    lock (``BEGIN IMMEDIATE``) and wait up to ``timeout`` seconds for it, so turn ids never
    repeat or skip; readers are not blocked by writers (WAL). Within a process one connection is
    shared under a lock; the async twins run it in a worker thread (``sqlite3`` has no async
    interface). The schema version is kept in ``PRAGMA user_version``: an older file is
    upgraded in place, a file written by a newer version of this library is refused.

    Erased data does not linger in the file: deleted content is overwritten with zeros
    (``PRAGMA secure_delete``), and each erasure checkpoints and truncates the write-ahead log
    (unless another connection is still reading an older snapshot; see the README).

    Args:
        path: The database file (created if missing; its folder must exist), or ``":memory:"``.
        ttl_seconds: A session expires this long after its last write (``None``: never).
            Expired sessions are never returned; they are deleted when accessed and by
            :meth:`purge_expired`.
        timeout: Seconds a write waits for another process's write lock before failing.
        encryption_key: A Fernet key, or a list of them (the first seals, all open), to encrypt
            turns, summaries and entities at rest; ``None`` stores them as plain JSON. See
            :meth:`reencrypt` for rotation.
        encrypt_vectors: With a key, encrypt the embedding vectors too.

    Raises:
        StoreError: The file cannot be opened, is not a database, or has a newer schema.
        ConfigError: A bad TTL or encryption key.

    Example:
        >>> from datetime import datetime, timezone
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_hybrid_memory.types import TurnDraft
        >>> store = SQLiteStore(":memory:")
        >>> draft = TurnDraft(HumanMessage("hi"), "hi", datetime.now(timezone.utc))
        >>> [turn.id for turn in store.append_turns("s1", [draft, draft], user_id="ana").turns]
        [0, 1]
        >>> store.get_turns("s1")[1].message.content, store.list_sessions("ana")
        ('hi', ['s1'])
        >>> store.close()
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl_seconds: float | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        encryption_key: EncryptionKey | None = None,
        encrypt_vectors: bool = False,
    ) -> None:
        super().__init__(
            _SQLITE,
            ttl_seconds=ttl_seconds,
            encryption_key=encryption_key,
            encrypt_vectors=encrypt_vectors,
        )
        self.path = os.fspath(path)
        self._timeout = timeout
        self._lock = threading.RLock()
        self._closed = False
        try:
            self._connection = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            msg = f"sqlite store: cannot open the database file: {exc}"
            raise StoreError(msg) from exc
        try:
            self._prepare()
        except (sqlite3.Error, StoreError) as exc:
            self._connection.close()
            if isinstance(exc, StoreError):
                raise
            msg = f"sqlite store: cannot open the database file: {exc}"
            raise StoreError(msg) from exc

    def _prepare(self) -> None:
        """WAL mode and secure deletes, then create or upgrade the tables (in one write)."""
        connection = self._connection
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA secure_delete=ON")
        with _transaction(connection, "BEGIN IMMEDIATE"):
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                msg = (
                    f"sqlite store: the database has schema version {version}, newer than this "
                    f"library's {SCHEMA_VERSION}; upgrade langchain-hybrid-memory"
                )
                raise StoreError(msg)
            if version == 0:
                for statement in TABLES:
                    connection.execute(_SQLITE.sql(statement))
                logger.info("created the sqlite memory schema, version %d", SCHEMA_VERSION)
            else:
                for old in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[old]:
                        connection.execute(_SQLITE.sql(statement))
                    logger.info("upgraded the sqlite memory schema to version %d", old + 1)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute(_SQLITE.sql(META_TABLE))

    def _transaction(self, plan: Plan[Query, _R], *, write: bool) -> _R:
        with self._lock:
            if self._closed:
                plan.close()
                msg = "sqlite store: the store is closed"
                raise StoreError(msg)
            connection = self._connection
            try:
                with _transaction(connection, "BEGIN IMMEDIATE" if write else "BEGIN"):
                    result = run_plan(plan, lambda query: execute(connection, query))
            except sqlite3.Error as exc:
                msg = f"sqlite store: {plan_name(plan)} failed: {exc}"
                raise StoreError(msg) from exc
            if isinstance(result, ErasureReport) and result.sessions:
                self._checkpoint()
            return result

    def _checkpoint(self) -> None:
        """Push an erasure out of the write-ahead log and truncate the log.

        Earlier versions of the erased rows stand in the log until then. Best effort, waiting
        for no one: while another connection reads an older snapshot, the log keeps what that
        reader needs until a later checkpoint. Caller holds ``self._lock``.
        """
        connection = self._connection
        try:
            connection.execute("PRAGMA busy_timeout = 0")
            try:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                connection.execute(f"PRAGMA busy_timeout = {round(self._timeout * 1000)}")
        except sqlite3.Error as exc:
            logger.info("sqlite store: checkpoint after an erasure failed: %s", exc)

    async def _atransaction(self, plan: Plan[Query, _R], *, write: bool) -> _R:
        return await asyncio.to_thread(self._transaction, plan, write=write)

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._connection.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, ttl_seconds={self.ttl_seconds!r})"


@contextmanager
def _transaction(connection: sqlite3.Connection, begin: str) -> Iterator[None]:
    """``begin``, then ``COMMIT`` if the block succeeds, else ``ROLLBACK`` and re-raise."""
    connection.execute(begin)
    try:
        yield
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
