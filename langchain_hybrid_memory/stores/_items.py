"""The items of a LangGraph store, kept in this project's SQL and Redis stores.

:class:`~langchain_hybrid_memory.langgraph_store.HybridMemoryStore` keeps LangGraph items
(namespace, key, JSON value) beside the memory's sessions, in tables and keys of their own, on
the store's connections and under its encryption key. This module is how they are written and
read, as plans (:mod:`langchain_hybrid_memory._plans`) run by the store's own sync and async
drivers; what an operation means is decided by the LangGraph store.

A namespace is stored as its labels joined by ``.`` (LangGraph forbids ``.`` in a label, so the
join is unambiguous): the namespaces under a prefix ``P`` are ``P`` itself and those between
``P.`` and ``P/`` (``/`` follows ``.``), a range an index answers.

SQL (one table, created on first use; the memory's schema version is not involved)::

    lg_items(namespace, item_key, record, created_at, updated_at, expires_at, ttl_minutes, vectors)

Redis (every key under one hash tag, so it runs on a cluster too)::

    <prefix>:lg:{items}:ns          sorted set   every namespace with items (lexical order)
    <prefix>:lg:{items}:k:<ns>      set          the keys of a namespace's items
    <prefix>:lg:{items}:i:<ns>:<k>  hash         record, created, updated, expires, ttl, vectors

Times are seconds since the epoch by the LangGraph store's clock; an item whose ``expires_at``
has passed is never returned, and is removed by a sweep (Redis also expires it on the server).
The record is a JSON object (the value and the fields indexed for search), sealed by the store's
:class:`~langchain_hybrid_memory.stores._codec.Codec`; the vectors are float32 rows, sealed with
``encrypt_vectors``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from langchain_hybrid_memory.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_hybrid_memory._plans import Plan
    from langchain_hybrid_memory.stores._codec import Codec
    from langchain_hybrid_memory.stores._sql import SQLStore
    from langchain_hybrid_memory.stores.base import MemoryStore
    from langchain_hybrid_memory.stores.redis import RedisStore

__all__ = [
    "ItemRows",
    "NewItem",
    "StoredItem",
    "item_rows_for",
    "namespace_text",
    "newest_first",
    "text_namespace",
]

_R = TypeVar("_R")

_SQL_TABLE = (
    "CREATE TABLE IF NOT EXISTS {t}lg_items ("
    " namespace TEXT{collate} NOT NULL,"
    " item_key TEXT{collate} NOT NULL,"
    " record TEXT NOT NULL,"
    " created_at {real} NOT NULL,"
    " updated_at {real} NOT NULL,"
    " expires_at {real},"
    " ttl_minutes {real},"
    " vectors {blob},"
    " PRIMARY KEY (namespace, item_key))"
)
_SQL_INDEX = "CREATE INDEX IF NOT EXISTS lg_items_by_expiry ON {t}lg_items (expires_at)"
_LIVE = "(expires_at IS NULL OR expires_at > %s)"
_REENCRYPT_PAGE = 200
_COLUMNS = "namespace, item_key, record, created_at, updated_at, ttl_minutes, vectors"


def namespace_text(namespace: Sequence[str]) -> str:
    """A namespace as stored: its labels joined by ``.``.

    Example:
        >>> namespace_text(("memories", "ana")), text_namespace("memories.ana")
        ('memories.ana', ('memories', 'ana'))
    """
    return ".".join(namespace)


def text_namespace(text: str) -> tuple[str, ...]:
    """The inverse of :func:`namespace_text`."""
    return tuple(text.split(".")) if text else ()


def _under(text: str, prefix: str) -> bool:
    return not prefix or text == prefix or text.startswith(prefix + ".")


@dataclass(frozen=True)
class StoredItem:
    """One item as read back: the record opened, times in epoch seconds, vectors as bytes.

    Attributes:
        namespace: The item's namespace.
        key: Its key.
        record: The stored JSON object (``{"value": ..., "fields": ...}``).
        created_at: When it was first put (since the last delete or expiry).
        updated_at: When it was last put.
        ttl_minutes: Its TTL (``None``: it never expires).
        vectors: Its float32 vectors, opened (``None``: not indexed, or not read).
    """

    namespace: tuple[str, ...]
    key: str
    record: dict[str, Any]
    created_at: float
    updated_at: float
    ttl_minutes: float | None
    vectors: bytes | None


@dataclass(frozen=True)
class NewItem:
    """An item to write.

    Attributes:
        namespace: Its namespace.
        key: Its key.
        record: The JSON object to store (``{"value": ..., "fields": ...}``).
        vectors: Its float32 vectors, as bytes (``None``: not indexed).
        ttl_minutes: Its TTL (``None``: never expires).
    """

    namespace: tuple[str, ...]
    key: str
    record: dict[str, Any]
    vectors: bytes | None = None
    ttl_minutes: float | None = None

    def expires_at(self, now: float) -> float | None:
        """When it expires if written at ``now``."""
        return None if self.ttl_minutes is None else now + self.ttl_minutes * 60.0


class ItemRows(ABC):
    """The items of one store: each operation a plan, run by the store's drivers.

    Args:
        codec: The store's codec (its encryption key).
    """

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    # -- running ----------------------------------------------------------------------------

    @abstractmethod
    def run(self, plan: Plan[Any, _R], *, write: bool) -> _R:
        """Run ``plan`` with the store's sync client (``write``: in one write transaction)."""

    @abstractmethod
    async def arun(self, plan: Plan[Any, _R], *, write: bool) -> _R:
        """Async twin of :meth:`run`."""

    # -- operations -------------------------------------------------------------------------

    @abstractmethod
    def put(self, new: NewItem, now: float) -> Plan[Any, None]:
        """Write an item (``created_at`` kept from a live earlier version)."""

    @abstractmethod
    def delete(self, namespace: tuple[str, ...], key: str) -> Plan[Any, None]:
        """Remove an item (nothing if absent)."""

    @abstractmethod
    def read(
        self, keys: Sequence[tuple[tuple[str, ...], str]], now: float, *, vectors: bool
    ) -> Plan[Any, list[Sequence[Any]]]:
        """The live items of these ``(namespace, key)`` pairs that exist, as stored (sealed)."""

    def get(self, namespace: tuple[str, ...], key: str, now: float) -> Plan[Any, StoredItem | None]:
        """The live item, without vectors, or ``None``."""
        rows = yield from self.read([(namespace, key)], now, vectors=False)
        return self._item(rows[0], vectors=False) if rows else None

    @abstractmethod
    def scan(
        self, prefix: tuple[str, ...], now: float, *, vectors: bool
    ) -> Plan[Any, list[Sequence[Any]]]:
        """Every live item whose namespace starts with ``prefix``, as stored (still sealed).

        Open them with :meth:`opened`: decrypting many items is CPU work, which the caller
        may run off the event loop. Vectors are read only when asked.
        """

    def newest(
        self, prefix: tuple[str, ...], now: float, limit: int, offset: int
    ) -> Plan[Any, list[Sequence[Any]]]:
        """A page of the live items under ``prefix``, newest ``updated_at`` first, as stored.

        Ties are ordered by namespace (as stored, ``.``-joined) and key, as
        :func:`newest_first` orders them. Only the page is opened by the caller.
        """
        rows = yield from self.scan(prefix, now, vectors=False)
        rows.sort(key=lambda row: newest_first(row[4], _str(row[0]), _str(row[1])))
        return rows[offset : offset + limit]

    def opened(self, rows: Sequence[Sequence[Any]], *, vectors: bool) -> list[StoredItem]:
        """The items of rows :meth:`scan` read, decrypted and parsed."""
        return [self._item(row, vectors=vectors) for row in rows]

    @abstractmethod
    def touch(self, keys: Sequence[tuple[tuple[str, ...], str]], now: float) -> Plan[Any, None]:
        """Restart the TTL of these live items that have one."""

    @abstractmethod
    def namespaces(
        self, now: float | None, prefix: tuple[str, ...] = ()
    ) -> Plan[Any, list[tuple[str, ...]]]:
        """Every namespace under ``prefix`` holding an item live at ``now`` (``None``: any)."""

    @abstractmethod
    def delete_prefix(
        self, prefix: tuple[str, ...]
    ) -> Plan[Any, tuple[int, list[tuple[str, ...]]]]:
        """Remove every item under ``prefix``: how many, and their namespaces, sorted."""

    @abstractmethod
    def sweep(self, now: float) -> Plan[Any, int]:
        """Remove every item expired at ``now``; how many."""

    @abstractmethod
    def reencrypt_page(self, after: Any) -> Plan[Any, tuple[int, Any]]:
        """Re-encrypt a page of items after ``after`` (``None``: the first page).

        Each item's record and vectors are replaced only if the record is still the one read.
        Returns how many items were rewritten and where to continue (``None``: done).
        """

    def _rotated(self, record: str | bytes, blob: bytes | None) -> tuple[str, bytes | None] | None:
        """An item's record and vectors under the first key; ``None``: nothing to change."""
        new_record = self.codec.reencrypt(record, "item")
        new_blob = None if blob is None else self.codec.reencrypt_vector(bytes(blob))
        if new_record is None and new_blob is None:
            return None
        kept = record.decode("utf-8") if isinstance(record, bytes) else record
        return new_record or kept, new_blob or (None if blob is None else bytes(blob))

    def after_erasure(self) -> None:  # noqa: B027 - a hook most stores do not need
        """Make an erasure final where the store keeps old copies (SQLite's log)."""

    # -- coding -----------------------------------------------------------------------------

    def _sealed(self, new: NewItem) -> tuple[str, bytes | None]:
        """The item's record and vectors as stored (sealed under the store's key)."""
        blob = None if new.vectors is None else self.codec.dump_blob(new.vectors)
        return self.codec.dump_record(new.record, "item"), blob

    def _item(self, row: Sequence[Any], *, vectors: bool) -> StoredItem:
        namespace, key, record, created, updated, ttl, blob = row
        return StoredItem(
            namespace=text_namespace(_str(namespace)),
            key=_str(key),
            record=self.codec.load_record(record, "item"),
            created_at=float(created),
            updated_at=float(updated),
            ttl_minutes=float(ttl) if ttl not in (None, b"", "") else None,
            vectors=self.codec.load_blob(blob, "item vectors") if vectors and blob else None,
        )


def newest_first(
    updated_at: float | str | bytes, namespace: tuple[str, ...] | str, key: str
) -> tuple[float, str, str]:
    """The order of a listing (a search without query): newest first, then namespace and key.

    Every store orders alike: the namespace compares as stored (``.``-joined), as the SQL
    stores' ``ORDER BY`` compares it.

    Example:
        >>> sorted([(1.0, ("a", "b"), "k"), (1.0, ("a-x",), "k")], key=lambda r: newest_first(*r))
        [(1.0, ('a-x',), 'k'), (1.0, ('a', 'b'), 'k')]
    """
    text = namespace if isinstance(namespace, str) else namespace_text(namespace)
    return -float(updated_at), text, key


def _str(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


# -- SQL ------------------------------------------------------------------------------------


class SQLItemRows(ItemRows):
    """Items in the ``lg_items`` table of a SQLite or PostgreSQL store."""

    def __init__(self, store: SQLStore) -> None:
        super().__init__(store._plans.codec)
        from langchain_hybrid_memory.stores._sql import Query

        self.store = store
        self._query = Query
        self._dialect = store._plans.dialect
        self.run(self._create(), write=True)

    def _create(self) -> Plan[Any, None]:
        """Create the table and its index if missing (PostgreSQL: one worker at a time)."""
        collate = ""
        schema = getattr(self.store, "schema", None)
        if schema is not None:  # PostgreSQL: compare bytes, as SQLite does, for prefix ranges
            collate = ' COLLATE "C"'
            yield self._q(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (f"langchain_hybrid_memory:{schema}:lg_items",),
                "one",
            )
        yield self._q(_SQL_TABLE.replace("{collate}", collate))
        yield self._q(_SQL_INDEX)

    def _q(self, template: str, params: Sequence[Any] = (), fetch: str = "rowcount") -> Any:
        return self._query(self._dialect.sql(template), params, fetch)  # type: ignore[arg-type]

    def run(self, plan: Plan[Any, _R], *, write: bool) -> _R:
        """Run ``plan`` in one transaction of the store."""
        return self.store._transaction(plan, write=write)

    async def arun(self, plan: Plan[Any, _R], *, write: bool) -> _R:
        """Async twin of :meth:`run`."""
        return await self.store._atransaction(plan, write=write)

    @staticmethod
    def _prefix(prefix: tuple[str, ...]) -> tuple[str, list[Any]]:
        text = namespace_text(prefix)
        if not text:
            return "1 = 1", []
        return (
            "(namespace = %s OR (namespace >= %s AND namespace < %s))",
            [text, text + ".", text + "/"],
        )

    def put(self, new: NewItem, now: float) -> Plan[Any, None]:
        """Plan of :meth:`ItemRows.put`: an upsert keeping a live item's ``created_at``."""
        yield from self.store._plans._check_key()
        ns, key = namespace_text(new.namespace), new.key
        record, blob = self._sealed(new)
        row = yield self._q(
            f"SELECT created_at FROM {{t}}lg_items WHERE namespace = %s AND item_key = %s "
            f"AND {_LIVE}{{lock}}",
            (ns, key, now),
            "one",
        )
        created = now if row is None else float(row[0])
        yield self._q(
            "INSERT INTO {t}lg_items (namespace, item_key, record, created_at, updated_at, "
            "expires_at, ttl_minutes, vectors) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (namespace, item_key) DO UPDATE SET record = excluded.record, "
            "created_at = excluded.created_at, updated_at = excluded.updated_at, "
            "expires_at = excluded.expires_at, ttl_minutes = excluded.ttl_minutes, "
            "vectors = excluded.vectors",
            (ns, key, record, created, now, new.expires_at(now), new.ttl_minutes, blob),
        )

    def delete(self, namespace: tuple[str, ...], key: str) -> Plan[Any, None]:
        """Plan of :meth:`ItemRows.delete`."""
        yield self._q(
            "DELETE FROM {t}lg_items WHERE namespace = %s AND item_key = %s",
            (namespace_text(namespace), key),
        )

    def read(
        self, keys: Sequence[tuple[tuple[str, ...], str]], now: float, *, vectors: bool
    ) -> Plan[Any, list[Sequence[Any]]]:
        """Plan of :meth:`ItemRows.read`: one query per item, in one transaction."""
        columns = _COLUMNS if vectors else _COLUMNS.replace("vectors", "NULL")
        rows = []
        for namespace, key in keys:
            row = yield self._q(
                f"SELECT {columns} FROM {{t}}lg_items "
                f"WHERE namespace = %s AND item_key = %s AND {_LIVE}",
                (namespace_text(namespace), key, now),
                "one",
            )
            if row is not None:
                rows.append(row)
        return rows

    def scan(
        self, prefix: tuple[str, ...], now: float, *, vectors: bool
    ) -> Plan[Any, list[Sequence[Any]]]:
        """Plan of :meth:`ItemRows.scan`: one query over the namespace range."""
        condition, params = self._prefix(prefix)
        columns = _COLUMNS if vectors else _COLUMNS.replace("vectors", "NULL")
        rows: list[Sequence[Any]] = yield self._q(
            f"SELECT {columns} FROM {{t}}lg_items WHERE {condition} AND {_LIVE}",
            (*params, now),
            "all",
        )
        return rows

    def newest(
        self, prefix: tuple[str, ...], now: float, limit: int, offset: int
    ) -> Plan[Any, list[Sequence[Any]]]:
        """Plan of :meth:`ItemRows.newest`: the database sorts and cuts the page."""
        condition, params = self._prefix(prefix)
        rows: list[Sequence[Any]] = yield self._q(
            f"SELECT {_COLUMNS.replace('vectors', 'NULL')} FROM {{t}}lg_items "
            f"WHERE {condition} AND {_LIVE} "
            "ORDER BY updated_at DESC, namespace, item_key LIMIT %s OFFSET %s",
            (*params, now, limit, offset),
            "all",
        )
        return rows

    def touch(self, keys: Sequence[tuple[tuple[str, ...], str]], now: float) -> Plan[Any, None]:
        """Plan of :meth:`ItemRows.touch`."""
        if not keys:
            return
        yield self._q(
            f"UPDATE {{t}}lg_items SET expires_at = %s + ttl_minutes * 60.0 "
            f"WHERE namespace = %s AND item_key = %s AND ttl_minutes IS NOT NULL AND {_LIVE}",
            [(now, namespace_text(namespace), key, now) for namespace, key in keys],
            "many",
        )

    def namespaces(
        self, now: float | None, prefix: tuple[str, ...] = ()
    ) -> Plan[Any, list[tuple[str, ...]]]:
        """Plan of :meth:`ItemRows.namespaces`: one ``SELECT DISTINCT`` over the prefix's range."""
        condition, params = self._prefix(prefix)
        live = "" if now is None else f" AND {_LIVE}"
        rows = yield self._q(
            f"SELECT DISTINCT namespace FROM {{t}}lg_items WHERE {condition}{live}",
            (*params, *(() if now is None else (now,))),
            "all",
        )
        return [text_namespace(_str(text)) for (text,) in rows]

    def delete_prefix(
        self, prefix: tuple[str, ...]
    ) -> Plan[Any, tuple[int, list[tuple[str, ...]]]]:
        """Plan of :meth:`ItemRows.delete_prefix`."""
        condition, params = self._prefix(prefix)
        rows = yield self._q(
            f"SELECT DISTINCT namespace FROM {{t}}lg_items WHERE {condition}", params, "all"
        )
        count = yield self._q(f"DELETE FROM {{t}}lg_items WHERE {condition}", params)
        return int(count), sorted(text_namespace(_str(text)) for (text,) in rows)

    def after_erasure(self) -> None:
        """Push deleted rows out of SQLite's write-ahead log, as the store does after erasures."""
        checkpoint = getattr(self.store, "_checkpoint", None)
        if checkpoint is not None:
            with self.store._lock:  # type: ignore[attr-defined]  # SQLite's connection lock
                checkpoint()

    def reencrypt_page(self, after: Any) -> Plan[Any, tuple[int, Any]]:
        """Plan of :meth:`ItemRows.reencrypt_page`: pages in key order, a compare-and-set each."""
        condition, params = (
            ("", ())
            if after is None
            else (
                "WHERE (namespace, item_key) > (%s, %s) ",
                tuple(after),
            )
        )
        rows = yield self._q(
            f"SELECT namespace, item_key, record, vectors FROM {{t}}lg_items {condition}"
            f"ORDER BY namespace, item_key LIMIT {_REENCRYPT_PAGE}",
            params,
            "all",
        )
        rewritten = 0
        for ns, key, record, blob in rows:
            rotated = self._rotated(record, blob)
            if rotated is not None:
                rewritten += yield self._q(
                    "UPDATE {t}lg_items SET record = %s, vectors = %s "
                    "WHERE namespace = %s AND item_key = %s AND record = %s",
                    (*rotated, ns, key, record),
                )
        done = len(rows) < _REENCRYPT_PAGE
        return rewritten, None if done else (rows[-1][0], rows[-1][1])

    def sweep(self, now: float) -> Plan[Any, int]:
        """Plan of :meth:`ItemRows.sweep`."""
        count = yield self._q(
            "DELETE FROM {t}lg_items WHERE expires_at IS NOT NULL AND expires_at <= %s", (now,)
        )
        return int(count)


# -- Redis ----------------------------------------------------------------------------------

_PUT = """
local old = redis.call('HMGET', KEYS[1], 'c', 'e')
local created = old[1]
if (not created) or (old[2] and old[2] ~= '' and tonumber(old[2]) <= tonumber(ARGV[4])) then
  created = ARGV[4]
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'c', created, 'u', ARGV[4], 'e', ARGV[5], 't', ARGV[6])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'x', ARGV[7]) end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
if ARGV[8] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[8]) end
return 1
"""

_DELETE = """
local removed = 0
for i = 3, #KEYS do removed = removed + redis.call('DEL', KEYS[i]) end
for i = 2, #ARGV do redis.call('SREM', KEYS[1], ARGV[i]) end
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return removed
"""

_SWEEP = """
local removed = 0
for i = 3, #KEYS do
  local expires = redis.call('HGET', KEYS[i], 'e')
  if (not expires) or (expires ~= '' and tonumber(expires) <= tonumber(ARGV[2])) then
    removed = removed + redis.call('DEL', KEYS[i])
    redis.call('SREM', KEYS[1], ARGV[i])
  end
end
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return removed
"""

_TOUCH = """
local item = redis.call('HMGET', KEYS[1], 'e', 't')
if (not item[2]) or item[2] == '' or item[1] == '' then return 0 end
if tonumber(item[1]) <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'e', tostring(tonumber(ARGV[1]) + tonumber(item[2]) * 60))
redis.call('PEXPIRE', KEYS[1], math.floor(tonumber(item[2]) * 60000) + 60000)
return 1
"""

_REENCRYPT = """
if redis.call('HGET', KEYS[1], 'r') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'r', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'x', ARGV[3]) end
return 1
"""

_FIELDS = ("r", "c", "u", "e", "t", "x")


class RedisItemRows(ItemRows):
    """Items in Redis keys of the store's prefix (see the module docstring)."""

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store._plans.codec)
        from langchain_hybrid_memory.stores._redis_plans import Batch, Command

        self.store = store
        self._command = Command
        self._batch = Batch
        self._tag = f"{store.prefix}:lg:{{items}}"

    def run(self, plan: Plan[Any, _R], *, write: bool) -> _R:
        """Run ``plan`` with the store's client."""
        return self.store._run(plan)

    async def arun(self, plan: Plan[Any, _R], *, write: bool) -> _R:
        """Async twin of :meth:`run`."""
        return await self.store._arun(plan)

    # -- keys -------------------------------------------------------------------------------

    def _namespaces_key(self) -> str:
        return f"{self._tag}:ns"

    def _keys_key(self, ns: str) -> str:
        return f"{self._tag}:k:{quote(ns, safe='')}"

    def _item_key(self, ns: str, key: str) -> str:
        return f"{self._tag}:i:{quote(ns, safe='')}:{quote(key, safe='')}"

    def _eval(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self._command(("EVAL", script, len(keys), *keys, *args))

    # -- operations -------------------------------------------------------------------------

    def put(self, new: NewItem, now: float) -> Plan[Any, None]:
        """Plan of :meth:`ItemRows.put`: one script over the item, its namespace and the index."""
        yield from self.store._plans._check_key()
        ns, key = namespace_text(new.namespace), new.key
        record, blob = self._sealed(new)
        ttl = new.ttl_minutes
        expires = new.expires_at(now)
        yield self._eval(
            _PUT,
            (self._item_key(ns, key), self._keys_key(ns), self._namespaces_key()),
            (
                ns,
                key,
                record,
                repr(now),
                "" if expires is None else repr(expires),
                "" if ttl is None else repr(ttl),
                b"" if blob is None else blob,
                "" if ttl is None else str(int(ttl * 60_000) + 60_000),  # the server's backstop
            ),
        )

    def _remove(self, ns: str, keys: Sequence[str], *, expired_at: float | None = None) -> Any:
        """Remove items of ``ns`` (only those still expired at ``expired_at``, when given).

        A sweep checks each item again in the script: another worker may have put it anew
        since the sweep read its expiry.
        """
        script, args = (
            (_DELETE, (ns, *keys))
            if expired_at is None
            else (_SWEEP, (ns, repr(expired_at), *keys))
        )
        return self._eval(
            script,
            (
                self._keys_key(ns),
                self._namespaces_key(),
                *(self._item_key(ns, key) for key in keys),
            ),
            args,
        )

    def delete(self, namespace: tuple[str, ...], key: str) -> Plan[Any, None]:
        """Plan of :meth:`ItemRows.delete`."""
        yield self._remove(namespace_text(namespace), [key])

    def _read_rows(
        self, pairs: Sequence[tuple[str, str]], now: float | None, *, vectors: bool
    ) -> Plan[Any, list[Sequence[Any]]]:
        """The stored rows of ``(namespace, key)`` pairs that exist (and live at ``now``)."""
        if not pairs:
            return []
        answers = yield self._batch(
            tuple(("HMGET", self._item_key(ns, key), *_FIELDS) for ns, key in pairs)
        )
        return [
            (ns, key, record, created, updated, ttl, blob if vectors else None)
            for (ns, key), (record, created, updated, expires, ttl, blob) in zip(
                pairs, answers, strict=True
            )
            if record is not None and (now is None or not expires or float(expires) > now)
        ]

    def _members(self, prefix: str) -> Plan[Any, list[tuple[str, str]]]:
        """Every ``(namespace, key)`` under ``prefix`` the index lists."""
        if prefix:
            found = yield self._command(
                ("ZRANGEBYLEX", self._namespaces_key(), f"[{prefix}", f"({prefix}/")
            )
        else:
            found = yield self._command(("ZRANGE", self._namespaces_key(), 0, -1))
        names = [ns for ns in map(_str, found) if _under(ns, prefix)]
        if not names:
            return []
        members = yield self._batch(tuple(("SMEMBERS", self._keys_key(ns)) for ns in names))
        return [
            (ns, _str(key)) for ns, keys in zip(names, members, strict=True) for key in sorted(keys)
        ]

    def read(
        self, keys: Sequence[tuple[tuple[str, ...], str]], now: float, *, vectors: bool
    ) -> Plan[Any, list[Sequence[Any]]]:
        """Plan of :meth:`ItemRows.read`: one pipeline."""
        pairs = [(namespace_text(namespace), key) for namespace, key in keys]
        return (yield from self._read_rows(pairs, now, vectors=vectors))

    def scan(
        self, prefix: tuple[str, ...], now: float, *, vectors: bool
    ) -> Plan[Any, list[Sequence[Any]]]:
        """Plan of :meth:`ItemRows.scan`: three round trips (namespaces, keys, items)."""
        pairs = yield from self._members(namespace_text(prefix))
        return (yield from self._read_rows(pairs, now, vectors=vectors))

    def touch(self, keys: Sequence[tuple[tuple[str, ...], str]], now: float) -> Plan[Any, None]:
        """Plan of :meth:`ItemRows.touch`: one script per item, in one pipeline."""
        if keys:
            yield self._batch(
                tuple(
                    ("EVAL", _TOUCH, 1, self._item_key(namespace_text(namespace), key), now)
                    for namespace, key in keys
                )
            )

    def namespaces(
        self, now: float | None, prefix: tuple[str, ...] = ()
    ) -> Plan[Any, list[tuple[str, ...]]]:
        """Plan of :meth:`ItemRows.namespaces`: reads the expiry (not the value) of each item."""
        pairs = yield from self._members(namespace_text(prefix))
        if not pairs:
            return []
        answers = yield self._batch(
            tuple(("HMGET", self._item_key(ns, key), "c", "e") for ns, key in pairs)
        )
        live = {
            ns
            for (ns, _), (created, expires) in zip(pairs, answers, strict=True)
            if created is not None and (now is None or not expires or float(expires) > now)
        }
        return [text_namespace(ns) for ns in sorted(live)]

    def delete_prefix(
        self, prefix: tuple[str, ...]
    ) -> Plan[Any, tuple[int, list[tuple[str, ...]]]]:
        """Plan of :meth:`ItemRows.delete_prefix`: one script per namespace."""
        pairs = yield from self._members(namespace_text(prefix))
        by_namespace: dict[str, list[str]] = {}
        for ns, key in pairs:
            by_namespace.setdefault(ns, []).append(key)
        removed = 0
        for ns, keys in by_namespace.items():
            removed += int((yield self._remove(ns, keys)))
        return removed, sorted(text_namespace(ns) for ns in by_namespace)

    def reencrypt_page(self, after: Any) -> Plan[Any, tuple[int, Any]]:
        """Plan of :meth:`ItemRows.reencrypt_page`: every item at once (a maintenance job)."""
        pairs = yield from self._members("")
        rewritten = 0
        for ns, key in pairs:
            item = self._item_key(ns, key)
            record, blob = yield self._command(("HMGET", item, "r", "x"))
            rotated = None if record is None else self._rotated(record, blob or None)
            if rotated is not None:
                new_record, new_blob = rotated
                rewritten += yield self._eval(
                    _REENCRYPT, (item,), (record, new_record, new_blob or b"")
                )
        return rewritten, None

    def sweep(self, now: float) -> Plan[Any, int]:
        """Plan of :meth:`ItemRows.sweep`: reads every item's expiry, removes the expired."""
        pairs = yield from self._members("")
        if not pairs:
            return 0
        answers = yield self._batch(
            tuple(("HMGET", self._item_key(ns, key), "c", "e") for ns, key in pairs)
        )
        expired: dict[str, list[str]] = {}
        for (ns, key), (created, expires) in zip(pairs, answers, strict=True):
            if created is None or (expires and float(expires) <= now):
                expired.setdefault(ns, []).append(key)
        removed = 0
        for ns, keys in expired.items():
            removed += int((yield self._remove(ns, keys, expired_at=now)))
        return removed


def item_rows_for(store: MemoryStore) -> ItemRows:
    """The item rows of ``store``: a SQLite, PostgreSQL or Redis store.

    Raises:
        ConfigError: The store keeps nothing outside the process (``InMemoryStore``).
    """
    from langchain_hybrid_memory.stores._sql import SQLStore

    if isinstance(store, SQLStore):
        return SQLItemRows(store)
    if store.name == "redis":
        from langchain_hybrid_memory.stores.redis import RedisStore

        if isinstance(store, RedisStore):
            return RedisItemRows(store)
    msg = (
        f"HybridMemoryStore needs a SQLite, Redis or PostgreSQL store, got {type(store).__name__}; "
        "for one process, use sqlite:///:memory: (the default)"
    )
    raise ConfigError(msg)
