"""The relational store, written once for SQLite and PostgreSQL.

Both keep the same four tables (``sessions``, ``turns``, ``vectors``, ``entities``) and run the
same operations, written as I/O-free plans (:mod:`~langchain_hybrid_memory._plans`) of
parametrized queries. A :class:`Dialect` holds the few differences (placeholders, row locks, the
clock, column types); :class:`SQLStore` implements every :class:`MemoryStore` method from the
plans, and a backend only supplies how a plan runs inside a transaction.

Atomicity: every write plan runs in one transaction and locks the session's row first
(``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL), so concurrent appends
get contiguous turn ids and the summary compare-and-set cannot lose an update. Ids are always
bound parameters.

Expiry: ``sessions.expires_at`` (seconds since the epoch, by the database's clock) is set to
``now + ttl_seconds`` by every write, or cleared by a store without TTL. Reads never return an
expired session; they remove it (purge on access), and :meth:`SQLStore.purge_expired` removes all.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from langchain_hybrid_memory.errors import SessionOwnershipError
from langchain_hybrid_memory.stores.base import MemoryStore, check_ttl
from langchain_hybrid_memory.stores._codec import Codec
from langchain_hybrid_memory.types import ErasureReport, Turn

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np

    from langchain_hybrid_memory.stores.encryption import EncryptionKey
    from langchain_hybrid_memory._plans import Plan
    from langchain_hybrid_memory.types import Entity, RunningSummary, TurnDraft

__all__ = [
    "META_TABLE",
    "RESEALED",
    "SCHEMA_VERSION",
    "Dialect",
    "Query",
    "SQLPlans",
    "SQLStore",
    "SessionExpiredError",
]

_R = TypeVar("_R")

#: Version of the tables below; a database holding a newer one is refused.
SCHEMA_VERSION = 1

#: The tables, with ``{t}`` for the table prefix and ``{int}``, ``{real}``, ``{blob}`` for types.
TABLES = (
    "CREATE TABLE IF NOT EXISTS {t}sessions ("
    " session_id TEXT PRIMARY KEY,"
    " user_id TEXT,"
    " next_turn {int} NOT NULL DEFAULT 0,"
    " summary TEXT,"
    " summary_version {int} NOT NULL DEFAULT 0,"
    " expires_at {real})",
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

#: Store-wide values (the encryption key check), created on every open: an older database of
#: the same schema version gets it too, and older library versions ignore it.
META_TABLE = "CREATE TABLE IF NOT EXISTS {t}store_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
_KEY_CHECK = "key_check"

_IDS_PER_QUERY = 500

#: Tables holding sealed values: their key columns and the value column.
RESEALED: dict[str, tuple[tuple[str, ...], str]] = {
    "turns": (("session_id", "turn_id"), "record"),
    "sessions": (("session_id",), "summary"),
    "entities": (("session_id", "entity_key"), "record"),
    "vectors": (("session_id", "turn_id"), "vector"),
}
_RESEAL_PAGE = 200


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

    def count_turns(self, session_id: str) -> Plan[Query, int]:
        """Plan of :meth:`MemoryStore.count_turns`."""
        row = yield from self._live_session(session_id, "next_turn")
        return 0 if row is None else int(row[0])

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

    def session_user(self, session_id: str) -> Plan[Query, str | None]:
        """Plan of :meth:`MemoryStore.session_user`."""
        row = yield from self._live_session(session_id, "user_id")
        return None if row is None else row[0]

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

    def get_summary(self, session_id: str) -> Plan[Query, RunningSummary]:
        """Plan of :meth:`MemoryStore.get_summary`."""
        row = yield from self._live_session(session_id, "summary")
        return self.codec.load_summary(None if row is None else row[0])

    def get_entities(self, session_id: str) -> Plan[Query, dict[str, Entity]]:
        """Plan of :meth:`MemoryStore.get_entities`."""
        if (yield from self._live_session(session_id, "next_turn")) is None:
            return {}
        rows = yield self._q(
            "SELECT record FROM {t}entities WHERE session_id = %s", (session_id,), "all"
        )
        entities = [self.codec.load_entity(record) for (record,) in rows]
        return {entity.key: entity for entity in entities}

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

        Runs first in every write plan, so a refused write has written nothing. The key check
        is inserted at most once (the first writer with a key wins; a later one verifies it).
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

    def _lock_live(self, session_id: str) -> Plan[Query, bool]:
        """Lock the session's row, first removing the session if it expired; whether it exists."""
        yield from self.purge_sessions([session_id])
        row = yield self._q(
            "SELECT next_turn FROM {t}sessions WHERE session_id = %s{lock}", (session_id,), "one"
        )
        return row is not None

    def append_turns(
        self, session_id: str, drafts: Sequence[TurnDraft], user_id: str | None
    ) -> Plan[Query, list[Turn]]:
        """Plan of :meth:`MemoryStore.append_turns`."""
        records = [self.codec.dump_turn(draft) for draft in drafts]
        yield from self._check_key()
        yield from self.purge_sessions([session_id])
        yield self._q(
            "INSERT INTO {t}sessions (session_id) VALUES (%s) ON CONFLICT (session_id) DO NOTHING",
            (session_id,),
        )
        owner, first = yield self._q(
            "SELECT user_id, next_turn FROM {t}sessions WHERE session_id = %s{lock}",
            (session_id,),
            "one",
        )
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
        return [
            Turn(session_id, first + i, draft.message, draft.text, draft.timestamp)
            for i, draft in enumerate(drafts)
        ]

    def compare_and_set_summary(
        self, session_id: str, expected_version: int, summary: RunningSummary
    ) -> Plan[Query, bool]:
        """Plan of :meth:`MemoryStore.compare_and_set_summary`."""
        record = self.codec.dump_summary(summary)
        yield from self._check_key()
        yield from self.purge_sessions([session_id])
        changed = yield self._q(
            "UPDATE {t}sessions SET summary = %s, summary_version = %s, expires_at = {expiry} "
            "WHERE session_id = %s AND summary_version = %s",
            (record, summary.version, self.ttl_seconds, session_id, expected_version),
        )
        return bool(changed == 1)

    def put_entities(self, session_id: str, entities: Sequence[Entity]) -> Plan[Query, None]:
        """Plan of :meth:`MemoryStore.put_entities`."""
        codec = self.codec
        rows = [(session_id, codec.entity_field(e.key), codec.dump_entity(e)) for e in entities]
        stale = sorted({old for e in entities for old in codec.stale_entity_fields(e.key)})
        if not rows:
            return
        yield from self._check_key()
        if not (yield from self._lock_live(session_id)):
            return
        for first in range(0, len(stale), _IDS_PER_QUERY):
            chunk = stale[first : first + _IDS_PER_QUERY]
            marks = ", ".join(["%s"] * len(chunk))
            yield self._q(
                f"DELETE FROM {{t}}entities WHERE session_id = %s AND entity_key IN ({marks})",
                (session_id, *chunk),
            )
        yield self._q(
            "INSERT INTO {t}entities (session_id, entity_key, record) VALUES (%s, %s, %s) "
            "ON CONFLICT (session_id, entity_key) DO UPDATE SET record = excluded.record",
            rows,
            "many",
        )
        yield self._slide(session_id)

    def put_vectors(
        self, session_id: str, turn_ids: Sequence[int], vectors: np.ndarray
    ) -> Plan[Query, None]:
        """Plan of :meth:`MemoryStore.put_vectors` (a turn's first vector is kept)."""
        blobs = self.codec.dump_vectors(turn_ids, vectors)
        if not blobs:
            return
        yield from self._check_key()
        if not (yield from self._lock_live(session_id)):
            return
        yield self._q(
            "INSERT INTO {t}vectors (session_id, turn_id, vector) VALUES (%s, %s, %s) "
            "ON CONFLICT (session_id, turn_id) DO NOTHING",
            [(session_id, int(i), blob) for i, blob in zip(turn_ids, blobs, strict=True)],
            "many",
        )
        yield self._slide(session_id)

    # -- rotation ---------------------------------------------------------------------------

    def reencrypt_key_check(self) -> Plan[Query, None]:
        """Re-seal the key check under the first key (write one if the store has none).

        Raises:
            DecryptionError: No configured key opens the key check (nothing is changed).
        """
        row = yield self._q("SELECT value FROM {t}store_meta WHERE name = %s", (_KEY_CHECK,), "one")
        old = None if row is None else row[0]
        new = self.codec.reseal_key_check(old)
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
        """Re-seal the values of one page of ``table``'s rows whose key comes after ``after``.

        Each value is replaced only if it is still the one read (a compare-and-set), so a
        concurrent write is never undone. Returns how many values were rewritten and the key to
        continue after (``None``: the table is done).
        """
        keys, column = RESEALED[table]
        names = ", ".join(keys)
        condition = f"{column} IS NOT NULL"
        params: tuple[Any, ...] = ()
        if after is not None:
            marks = ", ".join(["%s"] * len(keys))
            condition += f" AND ({names}) > ({marks})"
            params = after
        rows = yield self._q(
            f"SELECT {names}, {column} FROM {{t}}{table} WHERE {condition} "
            f"ORDER BY {names} LIMIT {_RESEAL_PAGE}",
            params,
            "all",
        )
        match = " AND ".join(f"{name} = %s" for name in keys)
        rewritten = 0
        for *key, value in rows:
            if table == "entities":
                rewritten += yield from self._reseal_entity(key[0], key[1], value)
                continue
            new: str | bytes | None
            if table == "vectors":
                new = self.codec.reseal_vector(bytes(value))
            else:
                new = self.codec.reseal(value, "turn" if table == "turns" else "summary")
            if new is not None:
                rewritten += yield self._q(
                    f"UPDATE {{t}}{table} SET {column} = %s WHERE {match} AND {column} = %s",
                    (new, *key, value),
                )
        done = len(rows) < _RESEAL_PAGE
        return rewritten, None if done else tuple(rows[-1][: len(keys)])

    def _reseal_entity(self, session_id: str, field: str, record: str) -> Plan[Query, int]:
        change = self.codec.reseal_entity(field, record)
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

    def delete_session(self, session_id: str) -> Plan[Query, ErasureReport]:
        """Plan of :meth:`MemoryStore.delete_session`: every row of the session, counted."""
        row = yield self._q(
            "SELECT summary_version FROM {t}sessions WHERE session_id = %s{lock}",
            (session_id,),
            "one",
        )
        if row is None:
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
    """A :class:`MemoryStore` whose every method runs a :class:`SQLPlans` plan.

    Subclasses implement :meth:`_run` (one plan in one transaction, library errors turned into
    :class:`~langchain_hybrid_memory.errors.StoreError`) and may override :meth:`_arun` with a
    native async driver; by default the async twins run :meth:`_run` in the executor.
    """

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
    def _run(self, plan: Plan[Query, _R], *, write: bool) -> _R:
        """Run ``plan`` in one transaction (``write``: one that takes the write lock)."""

    async def _arun(self, plan: Plan[Query, _R], *, write: bool) -> _R:
        """Async :meth:`_run`; by default in the executor."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self._run(plan, write=write))

    def _read(self, make_plan: Callable[..., Plan[Query, _R]], *args: Any) -> _R:
        try:
            return self._run(make_plan(*args), write=False)
        except SessionExpiredError as expired:
            self._run(self._plans.purge_sessions(expired.session_ids), write=True)
            return self._run(make_plan(*args), write=False)

    async def _aread(self, make_plan: Callable[..., Plan[Query, _R]], *args: Any) -> _R:
        try:
            return await self._arun(make_plan(*args), write=False)
        except SessionExpiredError as expired:
            await self._arun(self._plans.purge_sessions(expired.session_ids), write=True)
            return await self._arun(make_plan(*args), write=False)

    # -- sync -------------------------------------------------------------------------------

    def append_turns(
        self, session_id: str, drafts: Sequence[TurnDraft], *, user_id: str | None = None
    ) -> list[Turn]:
        """Store new turns at the end of a session (see :class:`MemoryStore`)."""
        return self._run(self._plans.append_turns(session_id, drafts, user_id), write=True)

    def count_turns(self, session_id: str) -> int:
        """How many turns the session has."""
        return self._read(self._plans.count_turns, session_id)

    def get_turns(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Turn]:
        """Turns with ``start <= id < stop``."""
        return self._read(self._plans.get_turns, session_id, start, stop)

    def get_turns_by_ids(self, session_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        """The existing turns with these ids, in id order."""
        return self._read(self._plans.get_turns_by_ids, session_id, turn_ids)

    def session_user(self, session_id: str) -> str | None:
        """The session's owner."""
        return self._read(self._plans.session_user, session_id)

    def list_sessions(self, user_id: str) -> list[str]:
        """The user's session ids, sorted."""
        return self._read(self._plans.list_sessions, user_id)

    def get_summary(self, session_id: str) -> RunningSummary:
        """The session's rolling summary."""
        return self._read(self._plans.get_summary, session_id)

    def compare_and_set_summary(
        self, session_id: str, expected_version: int, summary: RunningSummary
    ) -> bool:
        """Replace the summary if its version is still ``expected_version``."""
        plan = self._plans.compare_and_set_summary(session_id, expected_version, summary)
        return self._run(plan, write=True)

    def get_entities(self, session_id: str) -> dict[str, Entity]:
        """The session's entities by normalized name."""
        return self._read(self._plans.get_entities, session_id)

    def put_entities(self, session_id: str, entities: Sequence[Entity]) -> None:
        """Insert or replace entities."""
        self._run(self._plans.put_entities(session_id, entities), write=True)

    def put_vectors(self, session_id: str, turn_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store one float32 vector per turn id (a turn's first vector is kept)."""
        self._run(self._plans.put_vectors(session_id, turn_ids, vectors), write=True)

    def get_vectors(self, session_id: str, start: int = 0) -> tuple[list[int], np.ndarray | None]:
        """Vectors of turns with ``id >= start``."""
        return self._read(self._plans.get_vectors, session_id, start)

    def delete_session(self, session_id: str) -> ErasureReport:
        """Remove every row of the session and report what was removed."""
        return self._run(self._plans.delete_session(session_id), write=True)

    def delete_user(self, user_id: str) -> ErasureReport:
        """Remove every session of the user, in one transaction."""
        return self._run(self._plans.delete_user(user_id), write=True)

    def purge_expired(self) -> ErasureReport:
        """Remove every expired session and report what was removed."""
        return self._run(self._plans.purge_expired(), write=True)

    def reencrypt(self) -> int:
        """Re-seal every stored value under the first key (see :meth:`MemoryStore.reencrypt`).

        Works through each table in pages of rows, one transaction per page; each value is
        replaced only if it is unchanged since it was read, so writers may keep working.
        """
        self._plans.codec.require_key()
        self._run(self._plans.reencrypt_key_check(), write=True)
        rewritten = 0
        for table in RESEALED:
            after: tuple[Any, ...] | None = None
            while True:
                count, after = self._run(self._plans.reencrypt_page(table, after), write=True)
                rewritten += count
                if after is None:
                    break
        return rewritten

    # -- async ------------------------------------------------------------------------------

    async def aappend_turns(
        self, session_id: str, drafts: Sequence[TurnDraft], *, user_id: str | None = None
    ) -> list[Turn]:
        """Async twin of :meth:`append_turns`."""
        return await self._arun(self._plans.append_turns(session_id, drafts, user_id), write=True)

    async def acount_turns(self, session_id: str) -> int:
        """Async twin of :meth:`count_turns`."""
        return await self._aread(self._plans.count_turns, session_id)

    async def aget_turns(
        self, session_id: str, start: int = 0, stop: int | None = None
    ) -> list[Turn]:
        """Async twin of :meth:`get_turns`."""
        return await self._aread(self._plans.get_turns, session_id, start, stop)

    async def aget_turns_by_ids(self, session_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        """Async twin of :meth:`get_turns_by_ids`."""
        return await self._aread(self._plans.get_turns_by_ids, session_id, turn_ids)

    async def asession_user(self, session_id: str) -> str | None:
        """Async twin of :meth:`session_user`."""
        return await self._aread(self._plans.session_user, session_id)

    async def alist_sessions(self, user_id: str) -> list[str]:
        """Async twin of :meth:`list_sessions`."""
        return await self._aread(self._plans.list_sessions, user_id)

    async def aget_summary(self, session_id: str) -> RunningSummary:
        """Async twin of :meth:`get_summary`."""
        return await self._aread(self._plans.get_summary, session_id)

    async def acompare_and_set_summary(
        self, session_id: str, expected_version: int, summary: RunningSummary
    ) -> bool:
        """Async twin of :meth:`compare_and_set_summary`."""
        plan = self._plans.compare_and_set_summary(session_id, expected_version, summary)
        return await self._arun(plan, write=True)

    async def aget_entities(self, session_id: str) -> dict[str, Entity]:
        """Async twin of :meth:`get_entities`."""
        return await self._aread(self._plans.get_entities, session_id)

    async def aput_entities(self, session_id: str, entities: Sequence[Entity]) -> None:
        """Async twin of :meth:`put_entities`."""
        await self._arun(self._plans.put_entities(session_id, entities), write=True)

    async def aput_vectors(
        self, session_id: str, turn_ids: Sequence[int], vectors: np.ndarray
    ) -> None:
        """Async twin of :meth:`put_vectors`."""
        await self._arun(self._plans.put_vectors(session_id, turn_ids, vectors), write=True)

    async def aget_vectors(
        self, session_id: str, start: int = 0
    ) -> tuple[list[int], np.ndarray | None]:
        """Async twin of :meth:`get_vectors`."""
        return await self._aread(self._plans.get_vectors, session_id, start)

    async def adelete_session(self, session_id: str) -> ErasureReport:
        """Async twin of :meth:`delete_session`."""
        return await self._arun(self._plans.delete_session(session_id), write=True)

    async def adelete_user(self, user_id: str) -> ErasureReport:
        """Async twin of :meth:`delete_user`."""
        return await self._arun(self._plans.delete_user(user_id), write=True)

    async def apurge_expired(self) -> ErasureReport:
        """Async twin of :meth:`purge_expired`."""
        return await self._arun(self._plans.purge_expired(), write=True)


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
