"""The relational store, written once for SQLite and PostgreSQL.

Both keep the same tables (``sessions``, ``turns``, ``vectors``, ``entities``, and
``store_meta`` for the encryption key check) and run the same operations, written as I/O-free
plans (:mod:`langchain_hybrid_memory._plans`) of parametrized queries. A :class:`Dialect`
holds the few differences (placeholders, row locks, the clock, column types); :class:`SQLStore`
runs the plans for :class:`~langchain_hybrid_memory.stores.base.MemoryStore`, and a backend only
supplies how a plan runs inside one transaction.

Atomicity: every write plan runs in one transaction and locks the session's row first
(``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL), so concurrent appends
get contiguous turn ids, the summary compare-and-set cannot lose an update, and an entity merge
reads and writes the entities as one step. Ids are always bound parameters.

Incarnations and the fold lease live in the session's row: ``incarnation`` is a random token
set when the row is created (a session created by schema version 1 has none, read as ``""``),
``fold_holder`` and ``fold_until`` the lease (by the database's clock).

Expiry: ``sessions.expires_at`` (seconds since the epoch, by the database's clock) is set to
``now + ttl_seconds`` by every write, or cleared by a store without TTL. Reads never return an
expired session; they remove it (purge on access), and ``purge_expired`` removes all.
"""

from __future__ import annotations

import uuid
from abc import abstractmethod
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from langchain_hybrid_memory.errors import SessionOwnershipError, StoreError
from langchain_hybrid_memory.stores._codec import Codec
from langchain_hybrid_memory.stores.base import MemoryStore, check_ttl
from langchain_hybrid_memory.types import Appended, ErasureReport, SessionHead, SessionInfo, Turn

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np

    from langchain_hybrid_memory._plans import Plan
    from langchain_hybrid_memory.stores.base import FoldCommit
    from langchain_hybrid_memory.stores.encryption import EncryptionKey
    from langchain_hybrid_memory.types import Entity, EntityMention, TurnDraft

__all__ = [
    "META_TABLE",
    "MIGRATIONS",
    "REENCRYPTED",
    "SCHEMA_VERSION",
    "TABLES",
    "Dialect",
    "Query",
    "SQLPlans",
    "SQLStore",
    "SessionExpiredError",
    "execute",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: Version of the tables below; a database holding a newer one is refused.
SCHEMA_VERSION = 2

#: The tables, with ``{t}`` for the table prefix and ``{int}``, ``{real}``, ``{blob}`` for types.
TABLES = (
    "CREATE TABLE IF NOT EXISTS {t}sessions ("
    " session_id TEXT PRIMARY KEY,"
    " user_id TEXT,"
    " next_turn {int} NOT NULL DEFAULT 0,"
    " summary TEXT,"
    " summary_version {int} NOT NULL DEFAULT 0,"
    " expires_at {real},"
    " incarnation TEXT,"
    " fold_holder TEXT,"
    " fold_until {real})",
    "CREATE INDEX IF NOT EXISTS sessions_by_user ON {t}sessions (user_id)",
    "CREATE INDEX IF NOT EXISTS sessions_by_expiry ON {t}sessions (expires_at)",
    "CREATE TABLE IF NOT EXISTS {t}turns ("
    " session_id TEXT NOT NULL,"
    " turn_id {int} NOT NULL,"
    " record TEXT NOT NULL,"
    " PRIMARY KEY (session_id, turn_id))",
    "CREATE TABLE IF NOT EXISTS {t}vectors ("
    " session_id TEXT NOT NULL,"
    " turn_id {int} NOT NULL,"
    " vector {blob} NOT NULL,"
    " PRIMARY KEY (session_id, turn_id))",
    "CREATE TABLE IF NOT EXISTS {t}entities ("
    " session_id TEXT NOT NULL,"
    " entity_key TEXT NOT NULL,"
    " record TEXT NOT NULL,"
    " PRIMARY KEY (session_id, entity_key))",
)

#: What upgrades the tables of each older schema version to the next one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE {t}sessions ADD COLUMN incarnation TEXT",
        "ALTER TABLE {t}sessions ADD COLUMN fold_holder TEXT",
        "ALTER TABLE {t}sessions ADD COLUMN fold_until {real}",
    ),
}

#: Store-wide values (the encryption key check), created on every open: an older database of
#: the same schema version gets it too, and older library versions ignore it.
META_TABLE = "CREATE TABLE IF NOT EXISTS {t}store_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
_KEY_CHECK = "key_check"

_IDS_PER_QUERY = 500
#: Times a read that met expired sessions purges them and reads again.
_READ_ATTEMPTS = 5

#: Tables holding encrypted values: their key columns and the value column.
REENCRYPTED: dict[str, tuple[tuple[str, ...], str]] = {
    "turns": (("session_id", "turn_id"), "record"),
    "sessions": (("session_id",), "summary"),
    "entities": (("session_id", "entity_key"), "record"),
    "vectors": (("session_id", "turn_id"), "vector"),
}
_REENCRYPT_PAGE = 200


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL databases.

    Attributes:
        tables: Prefix of every table name (``""`` or a quoted schema and a dot).
        placeholder: The driver's parameter marker (queries are written with ``%s``).
        lock: Appended to a ``SELECT`` that must lock the rows it reads (``""`` when the whole
            transaction holds the write lock).
        now: An SQL expression for the database's current time in seconds since the epoch.
        int_type: Column type of integers.
        real_type: Column type of floating-point numbers.
        blob_type: Column type of byte strings.
    """

    tables: str
    placeholder: str
    lock: str
    now: str
    int_type: str
    real_type: str
    blob_type: str

    def sql(self, template: str) -> str:
        """Fill ``template`` (``{t}``, ``{lock}``, ``{now}``, types, ``%s``) for this database."""
        text = template.format(
            t=self.tables,
            lock=self.lock,
            now=self.now,
            int=self.int_type,
            real=self.real_type,
            blob=self.blob_type,
            expired=f"(expires_at IS NOT NULL AND expires_at <= {self.now})",
            expiry=f"{self.now} + CAST(%s AS DOUBLE PRECISION)",
        )
        return text if self.placeholder == "%s" else text.replace("%s", self.placeholder)


@dataclass(frozen=True)
class Query:
    """One statement of a plan and what its answer should be.

    Attributes:
        sql: The statement, with the driver's placeholders.
        params: Its parameters (for ``"many"``, a sequence of parameter tuples).
        fetch: ``"one"`` (a row or ``None``), ``"all"`` (rows), ``"rowcount"`` or ``"many"``
            (``executemany``, answer ``None``).
    """

    sql: str
    params: Sequence[Any] = ()
    fetch: Literal["one", "all", "rowcount", "many"] = "rowcount"


class SessionExpiredError(Exception):
    """Raised by a read plan that met expired sessions; the store purges them and reads again."""

    def __init__(self, session_ids: Sequence[str]) -> None:
        super().__init__(f"{len(session_ids)} expired session(s)")
        self.session_ids = tuple(session_ids)


@dataclass(frozen=True)
class SQLPlans:
    """Every store operation as a plan of :class:`Query` objects for one dialect.

    Read plans raise :class:`SessionExpiredError` on an expired session; write plans must run
    in a transaction that serializes writers of a session (see the module docstring).
    """

    dialect: Dialect
    ttl_seconds: float | None = None
    codec: Codec = field(default_factory=Codec)
    _cache: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def _q(
        self,
        template: str,
        params: Sequence[Any] = (),
        fetch: Literal["one", "all", "rowcount", "many"] = "rowcount",
    ) -> Query:
        sql = self._cache.get(template)
        if sql is None:
            sql = self._cache[template] = self.dialect.sql(template)
        return Query(sql, params, fetch)

    # -- reads ------------------------------------------------------------------------------

    def _live_session(self, session_id: str, columns: str) -> Plan[Query, tuple[Any, ...] | None]:
        """The session's ``columns``, ``None`` if it does not exist; raises if it expired."""
        row = yield self._q(
            f"SELECT CASE WHEN {{expired}} THEN 1 ELSE 0 END, {columns} "
            "FROM {t}sessions WHERE session_id = %s",
            (session_id,),
            "one",
        )
        if row is None:
            return None
        if row[0]:
            raise SessionExpiredError([session_id])
        return tuple(row[1:])

    def head(self, session_id: str) -> Plan[Query, SessionHead]:
        """Plan of :meth:`MemoryStore.head`."""
        row = yield from self._live_session(
            session_id, "user_id, next_turn, COALESCE(incarnation, ''), summary"
        )
        if row is None:
            return SessionHead()
        user_id, count, incarnation, summary = row
        return SessionHead(incarnation, user_id, int(count), self.codec.load_summary(summary))

    def count_turns(self, session_id: str) -> Plan[Query, int]:
        """Plan of :meth:`MemoryStore.count_turns`."""
        row = yield from self._live_session(session_id, "next_turn")
        return 0 if row is None else int(row[0])

    def session_user(self, session_id: str) -> Plan[Query, str | None]:
        """Plan of :meth:`MemoryStore.session_user`."""
        row = yield from self._live_session(session_id, "user_id")
        return None if row is None else row[0]

    def get_turns(self, session_id: str, start: int, stop: int | None) -> Plan[Query, list[Turn]]:
        """Plan of :meth:`MemoryStore.get_turns`."""
        start = max(0, start)
        if (yield from self._live_session(session_id, "next_turn")) is None:
            return []
        if stop is None:
            query = self._q(
                "SELECT turn_id, record FROM {t}turns WHERE session_id = %s AND turn_id >= %s "
                "ORDER BY turn_id",
                (session_id, start),
                "all",
            )
        elif stop <= start:
            return []
        else:
            query = self._q(
                "SELECT turn_id, record FROM {t}turns "
                "WHERE session_id = %s AND turn_id >= %s AND turn_id < %s ORDER BY turn_id",
                (session_id, start, stop),
                "all",
            )
        rows = yield query
        return [self.codec.load_turn(session_id, int(turn_id), record) for turn_id, record in rows]

    def get_turns_by_ids(self, session_id: str, turn_ids: Sequence[int]) -> Plan[Query, list[Turn]]:
        """Plan of :meth:`MemoryStore.get_turns_by_ids`."""
        wanted = sorted({int(i) for i in turn_ids if i >= 0})
        if not wanted or (yield from self._live_session(session_id, "next_turn")) is None:
            return []
        turns: list[Turn] = []
        for first in range(0, len(wanted), _IDS_PER_QUERY):
            chunk = wanted[first : first + _IDS_PER_QUERY]
            marks = ", ".join(["%s"] * len(chunk))
            rows = yield self._q(
                "SELECT turn_id, record FROM {t}turns "
                f"WHERE session_id = %s AND turn_id IN ({marks}) ORDER BY turn_id",
                (session_id, *chunk),
                "all",
            )
            turns.extend(
                self.codec.load_turn(session_id, int(turn_id), record) for turn_id, record in rows
            )
        return turns

    def list_sessions(self, user_id: str) -> Plan[Query, list[str]]:
        """Plan of :meth:`MemoryStore.list_sessions`."""
        rows = yield self._q(
            "SELECT session_id, CASE WHEN {expired} THEN 1 ELSE 0 END "
            "FROM {t}sessions WHERE user_id = %s",
            (user_id,),
            "all",
        )
        expired = [session_id for session_id, gone in rows if gone]
        if expired:
            raise SessionExpiredError(expired)
        return sorted(session_id for session_id, _ in rows)

    def list_all_sessions(self, after: str | None, limit: int) -> Plan[Query, list[SessionInfo]]:
        """Plan of :meth:`MemoryStore.list_all_sessions`: one query, with each last turn."""
        rows = yield self._q(
            "SELECT s.session_id, s.user_id, s.next_turn, t.record FROM {t}sessions s "
            "LEFT JOIN {t}turns t ON t.session_id = s.session_id AND t.turn_id = s.next_turn - 1 "
            "WHERE NOT {expired}"
            + ("" if after is None else " AND s.session_id > %s")
            + " ORDER BY s.session_id LIMIT %s",
            (limit,) if after is None else (after, limit),
            "all",
        )
        return [
            SessionInfo(
                session_id,
                user_id,
                int(count),
                None if record is None else self.codec.load_turn(session_id, 0, record).timestamp,
            )
            for session_id, user_id, count, record in rows
        ]

    def get_entities(self, session_id: str) -> Plan[Query, dict[str, Entity]]:
        """Plan of :meth:`MemoryStore.get_entities`."""
        if (yield from self._live_session(session_id, "next_turn")) is None:
            return {}
        rows = yield self._q(
            "SELECT entity_key, record FROM {t}entities WHERE session_id = %s",
            (session_id,),
            "all",
        )
        return self.codec.load_entities(rows)

    def get_user_entities(self, user_id: str) -> Plan[Query, dict[str, dict[str, Entity]]]:
        """Plan of :meth:`MemoryStore.get_user_entities`: two queries, however many sessions."""
        sessions = yield from self.list_sessions(user_id)
        if not sessions:
            return {}
        rows = yield self._q(
            "SELECT e.session_id, e.entity_key, e.record FROM {t}entities e "
            "JOIN {t}sessions s ON s.session_id = e.session_id WHERE s.user_id = %s",
            (user_id,),
            "all",
        )
        grouped: dict[str, list[tuple[str, str | bytes]]] = {s: [] for s in sessions}
        for session_id, key, record in rows:
            if session_id in grouped:
                grouped[session_id].append((key, record))
        return {s: self.codec.load_entities(found) for s, found in grouped.items()}

    def get_vectors(
        self, session_id: str, start: int
    ) -> Plan[Query, tuple[list[int], np.ndarray | None]]:
        """Plan of :meth:`MemoryStore.get_vectors`."""
        if (yield from self._live_session(session_id, "next_turn")) is None:
            return [], None
        rows = yield self._q(
            "SELECT turn_id, vector FROM {t}vectors WHERE session_id = %s AND turn_id >= %s "
            "ORDER BY turn_id",
            (session_id, max(0, start)),
            "all",
        )
        if not rows:
            return [], None
        return [int(turn_id) for turn_id, _ in rows], self.codec.load_vectors(
            [bytes(v) for _, v in rows]
        )

    # -- writes -----------------------------------------------------------------------------

    def _check_key(self) -> Plan[Query, None]:
        """Refuse a key that does not match the store's key check; write one if there is none.

        Runs first in every write plan that stores encrypted values, so a refused write has
        written nothing. The key check is inserted at most once (the first writer with a key
        wins; a later one verifies it).
        """
        row = yield self._q("SELECT value FROM {t}store_meta WHERE name = %s", (_KEY_CHECK,), "one")
        if not self.codec.check_key(None if row is None else row[0]):
            return
        yield self._q(
            "INSERT INTO {t}store_meta (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
            (_KEY_CHECK, self.codec.new_key_check()),
        )
        row = yield self._q("SELECT value FROM {t}store_meta WHERE name = %s", (_KEY_CHECK,), "one")
        self.codec.check_key(None if row is None else row[0])

    def _slide(self, session_id: str) -> Query:
        return self._q(
            "UPDATE {t}sessions SET expires_at = {expiry} WHERE session_id = %s",
            (self.ttl_seconds, session_id),
        )

    def _lock_live(self, session_id: str, incarnation: str | None) -> Plan[Query, bool]:
        """Lock the session's row, first removing the session if it expired.

        Returns:
            Whether the session exists and, when ``incarnation`` is given, is that one.
        """
        yield from self.purge_sessions([session_id])
        row = yield self._q(
            "SELECT COALESCE(incarnation, '') FROM {t}sessions WHERE session_id = %s{lock}",
            (session_id,),
            "one",
        )
        return row is not None and incarnation in (None, row[0])

    def _merge(self, session_id: str, mentions: Sequence[EntityMention]) -> Plan[Query, None]:
        """Merge mentions into the session's entities (caller holds the session's row lock)."""
        if not mentions:
            return
        rows = yield self._q(
            "SELECT entity_key, record FROM {t}entities WHERE session_id = %s",
            (session_id,),
            "all",
        )
        for change in self.codec.entity_changes(rows, mentions):
            if change.new is None:
                yield self._q(
                    "DELETE FROM {t}entities WHERE session_id = %s AND entity_key = %s",
                    (session_id, change.field),
                )
            else:
                yield self._q(
                    "INSERT INTO {t}entities (session_id, entity_key, record) VALUES (%s, %s, %s) "
                    "ON CONFLICT (session_id, entity_key) DO UPDATE SET record = excluded.record",
                    (session_id, change.field, change.new),
                )

    def append_turns(
        self,
        session_id: str,
        drafts: Sequence[TurnDraft],
        user_id: str | None,
        mentions: Sequence[EntityMention],
    ) -> Plan[Query, Appended]:
        """Plan of :meth:`MemoryStore.append_turns`."""
        records = [self.codec.dump_turn(draft) for draft in drafts]
        yield from self._check_key()
        yield from self.purge_sessions([session_id])
        row = None
        while row is None:  # an erasure elsewhere may delete the row between the two statements
            yield self._q(
                "INSERT INTO {t}sessions (session_id, incarnation) VALUES (%s, %s) "
                "ON CONFLICT (session_id) DO NOTHING",
                (session_id, uuid.uuid4().hex),
            )
            row = yield self._q(
                "SELECT user_id, next_turn, COALESCE(incarnation, ''), summary "
                "FROM {t}sessions WHERE session_id = %s{lock}",
                (session_id,),
                "one",
            )
        owner, first, incarnation, summary = row
        if user_id is not None and owner not in (None, user_id):
            msg = f"session {session_id!r} belongs to another user"
            raise SessionOwnershipError(msg)
        if records:
            yield self._q(
                "INSERT INTO {t}turns (session_id, turn_id, record) VALUES (%s, %s, %s)",
                [(session_id, first + i, record) for i, record in enumerate(records)],
                "many",
            )
        yield self._q(
            "UPDATE {t}sessions SET next_turn = %s, user_id = COALESCE(user_id, %s), "
            "expires_at = {expiry} WHERE session_id = %s",
            (first + len(records), user_id, self.ttl_seconds, session_id),
        )
        yield from self._merge(
            session_id, [replace(m, turn_id=first + (m.turn_id or 0)) for m in mentions]
        )
        turns = [
            Turn(session_id, first + i, draft.message, draft.text, draft.timestamp)
            for i, draft in enumerate(drafts)
        ]
        head = SessionHead(
            incarnation, owner or user_id, first + len(records), self.codec.load_summary(summary)
        )
        return Appended(turns, head)

    def merge_entities(
        self, session_id: str, mentions: Sequence[EntityMention], incarnation: str | None
    ) -> Plan[Query, bool]:
        """Plan of :meth:`MemoryStore.merge_entities`."""
        yield from self._check_key()
        if not (yield from self._lock_live(session_id, incarnation)):
            return False
        yield from self._merge(session_id, mentions)
        yield self._slide(session_id)
        return True

    def compare_and_set_summary(self, session_id: str, commit: FoldCommit) -> Plan[Query, bool]:
        """Plan of :meth:`MemoryStore.compare_and_set_summary`."""
        record = self.codec.dump_summary(commit.summary)
        yield from self._check_key()
        if not (yield from self._lock_live(session_id, commit.incarnation)):
            return False
        if commit.holder is not None:
            yield from self.release_fold(session_id, commit.holder, 0.0)
        changed = yield self._q(
            "UPDATE {t}sessions SET summary = %s, summary_version = %s, expires_at = {expiry} "
            "WHERE session_id = %s AND summary_version = %s",
            (record, commit.summary.version, self.ttl_seconds, session_id, commit.expected_version),
        )
        if changed != 1:
            return False
        yield from self._merge(session_id, commit.mentions)
        return True

    def acquire_fold(
        self, session_id: str, incarnation: str, holder: str, seconds: float
    ) -> Plan[Query, bool]:
        """Plan of :meth:`MemoryStore.acquire_fold`."""
        yield from self.purge_sessions([session_id])
        changed = yield self._q(
            "UPDATE {t}sessions SET fold_holder = %s, fold_until = {expiry} "
            "WHERE session_id = %s AND COALESCE(incarnation, '') = %s "
            "AND (fold_holder IS NULL OR fold_until IS NULL OR fold_until <= {now})",
            (holder, seconds, session_id, incarnation),
        )
        return bool(changed == 1)

    def release_fold(self, session_id: str, holder: str, keep_seconds: float) -> Plan[Query, None]:
        """Plan of :meth:`MemoryStore.release_fold`."""
        if keep_seconds > 0:
            yield self._q(
                "UPDATE {t}sessions SET fold_until = {expiry} "
                "WHERE session_id = %s AND fold_holder = %s",
                (keep_seconds, session_id, holder),
            )
        else:
            yield self._q(
                "UPDATE {t}sessions SET fold_holder = NULL, fold_until = NULL "
                "WHERE session_id = %s AND fold_holder = %s",
                (session_id, holder),
            )

    def put_vectors(
        self,
        session_id: str,
        turn_ids: Sequence[int],
        vectors: np.ndarray,
        incarnation: str | None,
    ) -> Plan[Query, bool]:
        """Plan of :meth:`MemoryStore.put_vectors` (a turn's first vector is kept)."""
        blobs = self.codec.dump_vectors(turn_ids, vectors)
        yield from self._check_key()
        if not (yield from self._lock_live(session_id, incarnation)):
            return False
        if blobs:
            yield self._q(
                "INSERT INTO {t}vectors (session_id, turn_id, vector) VALUES (%s, %s, %s) "
                "ON CONFLICT (session_id, turn_id) DO NOTHING",
                [(session_id, int(i), blob) for i, blob in zip(turn_ids, blobs, strict=True)],
                "many",
            )
            yield self._slide(session_id)
        return True

    # -- key rotation -----------------------------------------------------------------------

    def reencrypt_key_check(self) -> Plan[Query, None]:
        """Re-encrypt the key check under the first key (write one if the store has none).

        Raises:
            DecryptionError: No configured key opens the key check (nothing is changed).
        """
        row = yield self._q("SELECT value FROM {t}store_meta WHERE name = %s", (_KEY_CHECK,), "one")
        old = None if row is None else row[0]
        new = self.codec.reencrypt_key_check(old)
        if new is None:
            return
        if old is None:
            yield self._q(
                "INSERT INTO {t}store_meta (name, value) VALUES (%s, %s) "
                "ON CONFLICT (name) DO NOTHING",
                (_KEY_CHECK, new),
            )
            return
        yield self._q(
            "UPDATE {t}store_meta SET value = %s WHERE name = %s AND value = %s",
            (new, _KEY_CHECK, old),
        )

    def reencrypt_page(
        self, table: str, after: tuple[Any, ...] | None
    ) -> Plan[Query, tuple[int, tuple[Any, ...] | None]]:
        """Re-encrypt the values of one page of ``table``'s rows whose key comes after ``after``.

        Each value is replaced only if it is still the one read (a compare-and-set), so a
        concurrent write is never undone. Returns how many values were rewritten and the key to
        continue after (``None``: the table is done).
        """
        keys, column = REENCRYPTED[table]
        names = ", ".join(keys)
        condition = f"{column} IS NOT NULL"
        params: tuple[Any, ...] = ()
        if after is not None:
            marks = ", ".join(["%s"] * len(keys))
            condition += f" AND ({names}) > ({marks})"
            params = after
        rows = yield self._q(
            f"SELECT {names}, {column} FROM {{t}}{table} WHERE {condition} "
            f"ORDER BY {names} LIMIT {_REENCRYPT_PAGE}",
            params,
            "all",
        )
        match = " AND ".join(f"{name} = %s" for name in keys)
        rewritten = 0
        for *key, value in rows:
            if table == "entities":
                rewritten += yield from self._reencrypt_entity(key[0], key[1], value)
                continue
            new: str | bytes | None
            if table == "vectors":
                new = self.codec.reencrypt_vector(bytes(value))
            else:
                new = self.codec.reencrypt(value, "turn" if table == "turns" else "summary")
            if new is not None:
                rewritten += yield self._q(
                    f"UPDATE {{t}}{table} SET {column} = %s WHERE {match} AND {column} = %s",
                    (new, *key, value),
                )
        done = len(rows) < _REENCRYPT_PAGE
        return rewritten, None if done else tuple(rows[-1][: len(keys)])

    def _reencrypt_entity(self, session_id: str, field: str, record: str) -> Plan[Query, int]:
        change = self.codec.reencrypt_entity(field, record)
        if change is None:
            return 0
        new_field, new_record = change
        if new_field == field:
            changed = yield self._q(
                "UPDATE {t}entities SET record = %s "
                "WHERE session_id = %s AND entity_key = %s AND record = %s",
                (new_record, session_id, field, record),
            )
            return int(changed)
        removed = yield self._q(
            "DELETE FROM {t}entities WHERE session_id = %s AND entity_key = %s AND record = %s",
            (session_id, field, record),
        )
        if removed:  # a newer write under the new field wins
            yield self._q(
                "INSERT INTO {t}entities (session_id, entity_key, record) VALUES (%s, %s, %s) "
                "ON CONFLICT (session_id, entity_key) DO NOTHING",
                (session_id, new_field, new_record),
            )
        return int(removed)

    # -- erasure ----------------------------------------------------------------------------

    def delete_session(
        self, session_id: str, incarnation: str | None = None
    ) -> Plan[Query, ErasureReport]:
        """Plan of :meth:`MemoryStore.delete_session`: every row of the session, counted."""
        row = yield self._q(
            "SELECT summary_version, COALESCE(incarnation, '') FROM {t}sessions "
            "WHERE session_id = %s{lock}",
            (session_id,),
            "one",
        )
        if row is None or incarnation not in (None, row[1]):
            return ErasureReport()
        counts = {}
        for table in ("turns", "vectors", "entities"):
            counts[table] = yield self._q(
                f"DELETE FROM {{t}}{table} WHERE session_id = %s", (session_id,)
            )
        yield self._q("DELETE FROM {t}sessions WHERE session_id = %s", (session_id,))
        return ErasureReport(
            sessions=(session_id,),
            turns=counts["turns"],
            vectors=counts["vectors"],
            summaries=int(row[0] > 0),
            entities=counts["entities"],
        )

    def _delete_where(self, condition: str, params: Sequence[Any]) -> Plan[Query, ErasureReport]:
        rows = yield self._q(
            f"SELECT session_id FROM {{t}}sessions WHERE {condition} ORDER BY session_id{{lock}}",
            params,
            "all",
        )
        report = ErasureReport()
        for (session_id,) in rows:
            report += yield from self.delete_session(session_id)
        return report

    def delete_user(self, user_id: str) -> Plan[Query, ErasureReport]:
        """Plan of :meth:`MemoryStore.delete_user`."""
        return (yield from self._delete_where("user_id = %s", (user_id,)))

    def purge_expired(self) -> Plan[Query, ErasureReport]:
        """Plan of :meth:`MemoryStore.purge_expired`."""
        return (yield from self._delete_where("{expired}", ()))

    def purge_sessions(self, session_ids: Sequence[str]) -> Plan[Query, ErasureReport]:
        """Remove those of ``session_ids`` that are (still) expired."""
        report = ErasureReport()
        for session_id in session_ids:
            report += yield from self._delete_where("session_id = %s AND {expired}", (session_id,))
        return report


class SQLStore(MemoryStore):
    """A :class:`MemoryStore` whose every operation runs a :class:`SQLPlans` plan.

    Subclasses implement :meth:`_transaction` and :meth:`_atransaction`: run one plan in one
    transaction (``write``: one that takes the write lock), library errors turned into
    :class:`~langchain_hybrid_memory.errors.StoreError`. A read that meets an expired session
    purges it and reads again.
    """

    _plans: SQLPlans

    def __init__(
        self,
        dialect: Dialect,
        *,
        ttl_seconds: float | None,
        encryption_key: EncryptionKey | None = None,
        encrypt_vectors: bool = False,
    ) -> None:
        self.ttl_seconds = check_ttl(ttl_seconds)
        codec = Codec(encryption_key, encrypt_vectors=encrypt_vectors)
        self._plans = SQLPlans(dialect, self.ttl_seconds, codec)

    @abstractmethod
    def _transaction(self, plan: Plan[Query, _R], *, write: bool) -> _R:
        """Run ``plan`` in one transaction."""

    @abstractmethod
    async def _atransaction(self, plan: Plan[Query, _R], *, write: bool) -> _R:
        """Async twin of :meth:`_transaction`."""

    def _read(
        self, make_plan: Callable[_P, Plan[Any, _R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        for _ in range(_READ_ATTEMPTS):
            try:
                return self._transaction(make_plan(*args, **kwargs), write=False)
            except SessionExpiredError as expired:
                self._transaction(self._plans.purge_sessions(expired.session_ids), write=True)
        raise _still_expiring()

    def _write(
        self, make_plan: Callable[_P, Plan[Any, _R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        return self._transaction(make_plan(*args, **kwargs), write=True)

    async def _aread(
        self, make_plan: Callable[_P, Plan[Any, _R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        for _ in range(_READ_ATTEMPTS):
            try:
                return await self._atransaction(make_plan(*args, **kwargs), write=False)
            except SessionExpiredError as expired:
                purge = self._plans.purge_sessions(expired.session_ids)
                await self._atransaction(purge, write=True)
        raise _still_expiring()

    async def _awrite(
        self, make_plan: Callable[_P, Plan[Any, _R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        return await self._atransaction(make_plan(*args, **kwargs), write=True)

    def reencrypt(self) -> int:
        """Re-encrypt every stored value under the first key (see :meth:`MemoryStore.reencrypt`).

        Works through each table in pages of rows, one transaction per page; each value is
        replaced only if it is unchanged since it was read, so writers may keep working.
        """
        self._plans.codec.require_key()
        self._write(self._plans.reencrypt_key_check)
        rewritten = 0
        for table in REENCRYPTED:
            after: tuple[Any, ...] | None = None
            while True:
                count, after = self._write(self._plans.reencrypt_page, table, after)
                rewritten += count
                if after is None:
                    break
        return rewritten


def _still_expiring() -> StoreError:
    msg = f"sql store: sessions kept expiring while being read ({_READ_ATTEMPTS} attempts)"
    return StoreError(msg)


def execute(connection: Any, query: Query) -> Any:
    """Answer one :class:`Query` on a DB-API connection (``sqlite3`` or ``psycopg``)."""
    cursor = connection.cursor()
    try:
        if query.fetch == "many":
            cursor.executemany(query.sql, query.params)
            return None
        cursor.execute(query.sql, query.params)
        if query.fetch == "one":
            return cursor.fetchone()
        if query.fetch == "all":
            return cursor.fetchall()
        return cursor.rowcount
    finally:
        cursor.close()
