"""PostgreSQL: long-term memory shared by every worker, with psycopg 3 connection pools."""

from __future__ import annotations

import logging
import re
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_hybrid_memory.errors import ConfigError, MissingDependencyError, StoreError
from langchain_hybrid_memory._plans import arun_plan, plan_name, run_plan
from langchain_hybrid_memory.stores._sql import (
    META_TABLE,
    SCHEMA_VERSION,
    TABLES,
    Dialect,
    Query,
    SQLStore,
    execute,
)

try:
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool
except ImportError as exc:  # pragma: no cover - exercised by the import test
    raise MissingDependencyError.for_extra("psycopg and psycopg-pool", "postgres") from exc

if TYPE_CHECKING:
    from langchain_hybrid_memory.stores.encryption import EncryptionKey
    from langchain_hybrid_memory._plans import Plan

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
    The schema and tables are created with ``IF NOT EXISTS`` under an advisory lock, so workers
    starting together do not race; the schema version lives in ``<schema>.schema_version``.

    Args:
        conninfo_or_pool: A libpq connection string or URL (``postgresql://...``), or a
            ``psycopg_pool.ConnectionPool``.
        schema: The PostgreSQL schema holding the tables (a plain identifier).
        ttl_seconds: A session expires this long after its last write (``None``: never).
            Expired sessions are never returned; they are deleted when accessed and by
            :meth:`purge_expired` (run it from a periodic job to reclaim space).
        async_pool: A ``psycopg_pool.AsyncConnectionPool`` for the async twins when a pool is
            passed. With a connection string the store opens its own async pool, in the event
            loop of the first async call. Without either, the async twins use the executor.
        max_connections: Size of the pools the store creates.
        encryption_key: A Fernet key, or a list of them (the first seals, all open), to encrypt
            turns, summaries and entities at rest; ``None`` stores them as plain JSON. See
            :meth:`reencrypt` for rotation.
        encrypt_vectors: With a key, encrypt the embedding vectors too.

    Raises:
        StoreError: The server cannot be reached, the schema cannot be created, or it holds a
            newer schema version.
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
        self._max_connections = max_connections
        self._apool = async_pool
        self._apool_lock = threading.Lock()
        self._apool_open = False
        if isinstance(conninfo_or_pool, str):
            self._conninfo: str | None = conninfo_or_pool
            self._owns_pools = True
            try:
                with psycopg.connect(
                    conninfo_or_pool, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_SECONDS
                ) as connection:
                    self._prepare(connection)
            except psycopg.Error as exc:
                msg = f"postgres store: cannot open the database: {exc}"
                raise StoreError(msg) from exc
            self._pool = ConnectionPool(
                conninfo_or_pool,
                min_size=1,
                max_size=max_connections,
                kwargs={"autocommit": True},
                check=ConnectionPool.check_connection,
                name="hybrid-memory",
                open=True,
            )
        elif isinstance(conninfo_or_pool, ConnectionPool):
            self._conninfo = None
            self._owns_pools = False
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
        """Create the schema and tables once, or check their version."""
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
            if version < SCHEMA_VERSION:
                for statement in TABLES:
                    connection.execute(self._dialect.sql(statement))
                connection.execute(
                    f"INSERT INTO {schema}.schema_version (version) VALUES (%s)", (SCHEMA_VERSION,)
                )
                logger.info("created the postgres memory schema, version %d", SCHEMA_VERSION)
            connection.execute(self._dialect.sql(META_TABLE))

    # -- drivers ----------------------------------------------------------------------------

    def _run(self, plan: Plan[Query, _R], *, write: bool) -> _R:
        try:
            with self._pool.connection() as connection, connection.transaction():
                return run_plan(plan, lambda query: execute(connection, query))
        except psycopg.Error as exc:
            msg = f"postgres store: {plan_name(plan)} failed: {exc}"
            raise StoreError(msg) from exc

    async def _arun(self, plan: Plan[Query, _R], *, write: bool) -> _R:
        pool = await self._async_pool()
        if pool is None:
            return await super()._arun(plan, write=write)
        try:
            async with pool.connection() as connection, connection.transaction():
                return await arun_plan(plan, lambda query: _aexecute(connection, query))
        except psycopg.Error as exc:
            msg = f"postgres store: {plan_name(plan)} failed: {exc}"
            raise StoreError(msg) from exc

    async def _async_pool(self) -> AsyncConnectionPool[Any] | None:
        if self._apool is None and self._conninfo is not None:
            with self._apool_lock:
                if self._apool is None:
                    self._apool = AsyncConnectionPool(
                        self._conninfo,
                        min_size=1,
                        max_size=self._max_connections,
                        kwargs={"autocommit": True},
                        check=AsyncConnectionPool.check_connection,
                        name="hybrid-memory-async",
                        open=False,
                    )
        if self._apool is not None and not self._apool_open:
            await self._apool.open()
            self._apool_open = True
        return self._apool

    def close(self) -> None:
        """Close the pools this store created (pools passed in are left open).

        An async pool can only be closed from its event loop: use :meth:`aclose` after using
        the async twins.
        """
        if self._owns_pools:
            self._pool.close()

    async def aclose(self) -> None:
        """Close the pools this store created, the async one included."""
        if self._owns_pools and self._apool is not None:
            await self._apool.close()
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self.schema!r}, ttl_seconds={self.ttl_seconds!r})"


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
