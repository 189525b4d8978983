"""PostgreSQL: long-term memory shared by every worker, with psycopg 3 connection pools."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_hybrid_memory._plans import arun_plan, plan_name, run_plan
from langchain_hybrid_memory.errors import ConfigError, MissingDependencyError, StoreError
from langchain_hybrid_memory.stores._loops import PerLoop
from langchain_hybrid_memory.stores._secrets import connection_error
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

try:
    import psycopg
    from psycopg import pq
    from psycopg_pool import AsyncConnectionPool, ConnectionPool
except ImportError as exc:  # pragma: no cover - exercised by the import test
    raise MissingDependencyError.for_extra("psycopg and psycopg-pool", "postgres") from exc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from langchain_hybrid_memory._plans import Plan
    from langchain_hybrid_memory.stores.encryption import EncryptionKey

__all__ = ["PostgresStore"]

logger = logging.getLogger(__name__)

_R = TypeVar("_R")

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_DEFAULT_MAX_CONNECTIONS = 10
_CONNECT_TIMEOUT_SECONDS = 10


class PostgresStore(SQLStore):
    """Keeps memory in PostgreSQL tables of one schema, created on first use.

    Every write is one transaction that locks the session's row (``SELECT ... FOR UPDATE``), so
    any number of workers can append to one session: ids stay contiguous, no turn is lost or
    duplicated, and the summary compare-and-set (by version) never overwrites a newer summary.
    The schema and tables are created (or upgraded from an older version) under an advisory
    lock, so workers starting together do not race; the schema version lives in
    ``<schema>.schema_version``.

    Args:
        conninfo_or_pool: A libpq connection string or URL (``postgresql://...``), or a
            ``psycopg_pool.ConnectionPool``.
        schema: The PostgreSQL schema holding the tables (a plain identifier).
        ttl_seconds: A session expires this long after its last write (``None``: never).
            Expired sessions are never returned; they are deleted when accessed and by
            :meth:`purge_expired` (run it from a periodic job to reclaim space).
        async_pool: A ``psycopg_pool.AsyncConnectionPool`` for the async twins when a pool is
            passed (left open by :meth:`aclose`). With a connection string the store opens its own
            async connections in each event loop that uses it (at most ``max_connections``),
            closed by :meth:`aclose` or when that loop ends. With neither, the async twins run
            the sync pool in a worker thread.
        max_connections: Most connections the store opens: for its sync pool, and for each
            event loop using the async twins.
        encryption_key: A Fernet key, or a list of them (the first seals, all open), to encrypt
            turns, summaries and entities at rest; ``None`` stores them as plain JSON. See
            :meth:`reencrypt` for rotation.
        encrypt_vectors: With a key, encrypt the embedding vectors too.

    Raises:
        StoreError: The server cannot be reached, the schema cannot be created, or it holds a
            newer schema version (the message never shows the connection string).
        ConfigError: A bad schema name, TTL or encryption key.

    Example:
        Needs a PostgreSQL server::

            store = PostgresStore("postgresql://bot@db.internal/memory", schema="support_bot")
            memory = HybridMemory(store=store)
            memory.store.purge_expired()  # from a periodic job, when ttl_seconds is set
    """

    name = "postgres"

    def __init__(
        self,
        conninfo_or_pool: str | ConnectionPool[Any],
        *,
        schema: str = "hybrid_memory",
        ttl_seconds: float | None = None,
        async_pool: AsyncConnectionPool[Any] | None = None,
        max_connections: int = _DEFAULT_MAX_CONNECTIONS,
        encryption_key: EncryptionKey | None = None,
        encrypt_vectors: bool = False,
    ) -> None:
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            msg = f"schema must be a plain identifier (letters, digits, _), got {schema!r}"
            raise ConfigError(msg)
        dialect = Dialect(
            tables=f'"{schema}".',
            placeholder="%s",
            lock=" FOR UPDATE",
            now="extract(epoch from clock_timestamp())::float8",
            int_type="BIGINT",
            real_type="DOUBLE PRECISION",
            blob_type="BYTEA",
        )
        super().__init__(
            dialect,
            ttl_seconds=ttl_seconds,
            encryption_key=encryption_key,
            encrypt_vectors=encrypt_vectors,
        )
        self.schema = schema
        self._dialect = dialect
        self._given_apool = async_pool
        self._apools: PerLoop[_LoopConnections] | None = None
        if isinstance(conninfo_or_pool, str):
            conninfo = conninfo_or_pool
            self._owns_pool = True
            failure: StoreError | None = None
            try:
                with psycopg.connect(
                    conninfo, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_SECONDS
                ) as connection:
                    self._prepare(connection)
            except (psycopg.Error, ValueError, TypeError) as exc:
                failure = connection_error(
                    "postgres store: cannot open the database", exc, conninfo
                )
            if failure is not None:  # raised here, not chained: the driver's message may hold
                raise failure  # a piece of the password
            self._pool = ConnectionPool(
                conninfo,
                min_size=1,
                max_size=max_connections,
                kwargs={"autocommit": True},
                check=ConnectionPool.check_connection,
                name="hybrid-memory",
                open=True,
            )
            if async_pool is None:
                self._apools = PerLoop(
                    lambda: _LoopConnections(conninfo, max_connections),
                    close=_LoopConnections.aclose,
                    abandon=_LoopConnections.abandon,
                )
        elif isinstance(conninfo_or_pool, ConnectionPool):
            self._owns_pool = False
            self._pool = conninfo_or_pool
            try:
                with self._pool.connection() as connection:
                    self._prepare(connection)
            except psycopg.Error as exc:
                msg = f"postgres store: cannot open the database: {exc}"
                raise StoreError(msg) from exc
        else:
            msg = (
                "conninfo_or_pool must be a connection string or a psycopg_pool.ConnectionPool, "
                f"got {type(conninfo_or_pool).__name__}"
            )
            raise ConfigError(msg)

    def _prepare(self, connection: psycopg.Connection[Any]) -> None:
        """Create the schema and tables once, upgrade them, or check their version."""
        schema = f'"{self.schema}"'
        with connection.transaction():
            connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (f"langchain_hybrid_memory:{self.schema}",),
            )
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {schema}.schema_version (version INTEGER NOT NULL)"
            )
            row = connection.execute(f"SELECT max(version) FROM {schema}.schema_version").fetchone()
            version = (row[0] if row else None) or 0
            if version > SCHEMA_VERSION:
                msg = (
                    f"postgres store: schema {self.schema!r} has version {version}, newer than "
                    f"this library's {SCHEMA_VERSION}; upgrade langchain-hybrid-memory"
                )
                raise StoreError(msg)
            if version == 0:
                for statement in TABLES:
                    connection.execute(self._dialect.sql(statement))
                logger.info("created the postgres memory schema, version %d", SCHEMA_VERSION)
            else:
                for old in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[old]:
                        connection.execute(self._dialect.sql(statement))
                    logger.info("upgraded the postgres memory schema to version %d", old + 1)
            if version < SCHEMA_VERSION:
                connection.execute(
                    f"INSERT INTO {schema}.schema_version (version) VALUES (%s)", (SCHEMA_VERSION,)
                )
            connection.execute(self._dialect.sql(META_TABLE))

    # -- drivers ----------------------------------------------------------------------------

    def _transaction(self, plan: Plan[Query, _R], *, write: bool) -> _R:
        try:
            with self._pool.connection() as connection, connection.transaction():
                return run_plan(plan, lambda query: execute(connection, query))
        except psycopg.Error as exc:
            msg = f"postgres store: {plan_name(plan)} failed: {exc}"
            raise StoreError(msg) from exc

    async def _atransaction(self, plan: Plan[Query, _R], *, write: bool) -> _R:
        pool: AsyncConnectionPool[Any] | _LoopConnections
        if self._given_apool is not None:
            pool = self._given_apool
        elif self._apools is not None:
            pool = await self._apools.get()
        else:  # a sync pool was passed without an async one
            return await asyncio.to_thread(self._transaction, plan, write=write)
        try:
            async with pool.connection() as connection, connection.transaction():
                return await arun_plan(plan, lambda query: _aexecute(connection, query))
        except psycopg.Error as exc:
            msg = f"postgres store: {plan_name(plan)} failed: {exc}"
            raise StoreError(msg) from exc

    def close(self) -> None:
        """Close the pools this store created (pools passed in are left open).

        An async pool can only be closed from its event loop: each closes when its loop shuts
        down, or use :meth:`aclose`.
        """
        if self._apools is not None:
            self._apools.close_other_threads()
        if self._owns_pool:
            self._pool.close()

    async def aclose(self) -> None:
        """Close the pools this store created, the async ones of every event loop included."""
        if self._apools is not None:
            await self._apools.aclose()
        if self._owns_pool:
            await asyncio.to_thread(self._pool.close)

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self.schema!r}, ttl_seconds={self.ttl_seconds!r})"


class _LoopConnections:
    """The async connections of one event loop: a pool with no task of its own.

    Not ``psycopg_pool.AsyncConnectionPool``: its worker and scheduler tasks catch
    ``CancelledError``, so a pool still open when ``asyncio.run`` ends its loop (which cancels
    every task before anything can close the pool) can hang that ``asyncio.run`` for good. These
    connections are opened by the coroutine that needs one, at most ``max_size`` at a time, kept
    while idle and checked before reuse (as the sync pool checks its own), and closed with the
    loop (or by the store's ``aclose()``). A connection that failed, or is left inside a
    transaction, is closed rather than kept.

    Args:
        conninfo: The connection string.
        max_size: Most connections open at once in this loop.
    """

    def __init__(self, conninfo: str, max_size: int) -> None:
        self._conninfo = conninfo
        self._slots = asyncio.Semaphore(max_size)
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._open: set[psycopg.AsyncConnection[Any]] = set()
        self._closed = False

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection for one transaction, returned (or closed) afterwards."""
        async with self._slots:
            connection = await self._reusable()
            if connection is None:
                connection = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_SECONDS
                )
                self._open.add(connection)
            reusable = False
            try:
                yield connection
                reusable = connection.info.transaction_status == pq.TransactionStatus.IDLE
            finally:
                if reusable and not self._closed and not connection.broken:
                    self._idle.append(connection)
                else:
                    self._open.discard(connection)
                    await connection.close()

    async def _reusable(self) -> psycopg.AsyncConnection[Any] | None:
        """An idle connection that still works (checked as the sync pool checks its own)."""
        while self._idle:
            connection = self._idle.pop()
            try:
                await AsyncConnectionPool.check_connection(connection)
            except psycopg.Error:
                self._open.discard(connection)
                await connection.close()
            else:
                return connection
        return None

    async def aclose(self) -> None:
        """Close every connection (in their loop)."""
        self._closed = True
        self._idle.clear()
        for connection in list(self._open):
            await connection.close()
        self._open.clear()

    def abandon(self) -> None:
        """Close the connections without their loop (closing the sockets), once it is gone."""
        self._closed = True
        for connection in list(self._open):
            if not connection.closed:
                connection.pgconn.finish()
        self._open.clear()
        self._idle.clear()


async def _aexecute(connection: psycopg.AsyncConnection[Any], query: Query) -> Any:
    """Answer one :class:`Query` on an async connection (the twin of ``sql.execute``)."""
    async with connection.cursor() as cursor:
        if query.fetch == "many":
            await cursor.executemany(query.sql, query.params)
            return None
        await cursor.execute(query.sql, query.params)
        if query.fetch == "one":
            return await cursor.fetchone()
        if query.fetch == "all":
            return await cursor.fetchall()
        return cursor.rowcount
