"""Every operation of the Redis store as a plan of Redis requests (no I/O here).

Key scheme (``<s>`` and ``<u>`` are the percent-encoded session and user ids, so ``:``, ``*``,
``{`` and ``}`` in an id cannot break it)::

    <prefix>:s:{<s>}:meta       hash    owner, incarnation, creation time, summary, its version
    <prefix>:s:{<s>}:turns      list    one JSON record per turn; the list index is the turn id
    <prefix>:s:{<s>}:vectors    hash    turn id -> float32 bytes
    <prefix>:s:{<s>}:entities   hash    normalized name (or its digest) -> JSON entity
    <prefix>:s:{<s>}:fold       string  the fold lease (expires by itself)
    <prefix>:u:{<u>}:sessions   set     ids of the sessions the user may own (checked on read)
    <prefix>:keycheck           string  a known value sealed under the store's encryption key

A session lives in one cluster slot and is written by the scripts of
:mod:`~langchain_hybrid_memory.stores._redis_lua`. A user's index lives in the user's slot, so it
cannot change in the same script as the session's owner; instead its writes are ordered so that
no session a user owns is ever left out of the user's index, whatever runs concurrently:

* an append with a user adds the session to the user's index before its script runs (a crash
  in between leaves an entry for a session that does not exist, filtered out on read), and
  again after it when the script gave the session its owner;
* whoever removes entries from an index (erasure, or a read dropping stale ones) reads each
  removed session's owner afterwards and adds back those the user owns by then.

So when an erasure races the user's first append to a new session, either the erasure removes
the session or the session stays listed: ``list_sessions`` and the next ``forget_user`` find it.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from langchain_hybrid_memory.errors import SessionOwnershipError, StoreError
from langchain_hybrid_memory.stores._codec import Codec
from langchain_hybrid_memory.types import Appended, ErasureReport, SessionHead, SessionInfo, Turn

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np

    from langchain_hybrid_memory._plans import Plan
    from langchain_hybrid_memory.stores._codec import FieldChange
    from langchain_hybrid_memory.stores.base import FoldCommit
    from langchain_hybrid_memory.types import Entity, EntityMention, TurnDraft

__all__ = ["Batch", "Command", "Pause", "RedisPlans", "Request", "Scan", "Script"]

logger = logging.getLogger(__name__)

_FIELDS_PER_HMGET = 1000
#: Times an entity merge is read again after another writer changed the entities meanwhile,
#: pausing between attempts (random, up to a bound doubling from the first to the last).
_MERGE_ATTEMPTS = 50
_FIRST_PAUSE = 0.001
_MAX_PAUSE = 0.05
#: Times the user's index is written again after an append gave the session its owner.
_LIST_ATTEMPTS = 3
REENCRYPT_PAGE = 200
_HASH_VALUES = {"vectors": "vector", "entities": "entity"}  # hash key suffix: what it holds
_CONFLICT = -2  # a script's answer: the entities changed since they were read


@dataclass(frozen=True)
class Command:
    """One command."""

    args: tuple[Any, ...]


@dataclass(frozen=True)
class Batch:
    """Commands sent in one pipeline, without a transaction (they may span slots)."""

    calls: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class Pause:
    """Wait before trying again (sleep, or ``asyncio.sleep``); answered with ``None``."""

    seconds: float


@dataclass(frozen=True)
class Script:
    """One of :data:`~langchain_hybrid_memory.stores._redis_lua.SCRIPTS` over some keys."""

    name: str
    keys: tuple[str, ...]
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Scan:
    """Every key matching ``pattern``, by ``SCAN`` (on every primary of a cluster).

    Answered with the key names.
    """

    pattern: str


Request = Command | Batch | Script | Pause | Scan


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _any_if_none(incarnation: str | None) -> str:
    """An incarnation as the scripts take it: ``"*"`` for any."""
    return "*" if incarnation is None else incarnation


def _change_args(changes: Sequence[FieldChange]) -> list[Any]:
    """Entity changes as a script reads them: how many, then field, value read, new value."""
    args: list[Any] = [len(changes)]
    for change in changes:
        args += [change.field, change.old or "", change.new or ""]
    return args


@dataclass(frozen=True)
class RedisPlans:
    """Every store operation as a plan of :data:`Request` objects."""

    prefix: str
    ttl_ms: int
    codec: Codec = field(default_factory=Codec)

    # -- keys -------------------------------------------------------------------------------

    def session_keys(self, session_id: str) -> tuple[str, str, str, str, str]:
        """The keys of a session: meta, turns, vectors, entities, fold lease."""
        tag = f"{self.prefix}:s:{{{quote(session_id, safe='')}}}"
        return (
            f"{tag}:meta",
            f"{tag}:turns",
            f"{tag}:vectors",
            f"{tag}:entities",
            f"{tag}:fold",
        )

    def user_key(self, user_id: str) -> str:
        """The key of a user's session index."""
        return f"{self.prefix}:u:{{{quote(user_id, safe='')}}}:sessions"

    def key_check_key(self) -> str:
        """The key of the store's encryption key check."""
        return f"{self.prefix}:keycheck"

    def session_key_pattern(self) -> str:
        """A ``SCAN`` pattern matching every session key of this prefix (and maybe others)."""
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.prefix)
        return f"{escaped}:s:*"

    def _session_of_meta_key(self, key: bytes | str) -> str | None:
        """The session id of one of this prefix's meta keys (``None``: another key)."""
        name = _text(key) or ""
        head, tail = f"{self.prefix}:s:{{", "}:meta"
        if not (name.startswith(head) and name.endswith(tail)):
            return None
        encoded = name[len(head) : -len(tail)]
        return None if any(c in encoded for c in "{}:") else unquote(encoded)

    def _script(self, name: str, session_id: str, *args: Any) -> Script:
        return Script(name, self.session_keys(session_id), args)

    # -- helpers ----------------------------------------------------------------------------

    def _check_key(self) -> Plan[Request, None]:
        """Refuse a key that does not match the store's key check; write one if there is none.

        Runs before every write of encrypted values (a refused write has written nothing).
        The key check is one store-wide key, outside any session's slot: it is read before the
        session's script and written once (``SET NX``: the first writer with a key wins, a
        later one verifies it).
        """
        key = self.key_check_key()
        if not self.codec.check_key((yield Command(("GET", key)))):
            return
        if not (yield Command(("SET", key, self.codec.new_key_check(), "NX"))):
            self.codec.check_key((yield Command(("GET", key))))

    def _index_expiry(self, key: str) -> tuple[Any, ...]:
        return ("PEXPIRE", key, self.ttl_ms) if self.ttl_ms else ("PERSIST", key)

    def _list(self, user_id: str, session_id: str) -> Plan[Request, None]:
        """Add a session to the user's index, giving the index the session's expiry."""
        key = self.user_key(user_id)
        yield Batch((("SADD", key, session_id), self._index_expiry(key)))

    def _unlist(self, user_id: str, session_ids: Sequence[str]) -> Plan[Request, None]:
        """Remove sessions from the user's index, then add back those the user owns by now.

        The second step is what keeps a session the user's first append is creating right now
        from falling out of the index (see the module docstring).
        """
        if not session_ids:
            return
        key = self.user_key(user_id)
        yield Command(("SREM", key, *session_ids))
        owners = yield Batch(tuple(("HGET", self.session_keys(s)[0], "user") for s in session_ids))
        owned = [s for s, owner in zip(session_ids, owners, strict=True) if _text(owner) == user_id]
        if owned:
            yield Batch((("SADD", key, *owned), self._index_expiry(key)))

    def _listed_again(self, user_id: str, session_id: str) -> Plan[Request, None]:
        """List a session again after the append that gave it its owner (see the docstring).

        The append succeeded and must not be reported as failed; a failure here is retried,
        then logged with the ids an operator needs to list the session by hand.
        """
        for attempt in range(_LIST_ATTEMPTS):
            try:
                yield from self._list(user_id, session_id)
            except Exception as exc:  # noqa: BLE001 - the write itself succeeded
                if attempt == _LIST_ATTEMPTS - 1:
                    logger.error(
                        "redis store: the append succeeded but listing session %r in user %r's "
                        "index failed (%s): add it to %s",
                        session_id,
                        user_id,
                        type(exc).__name__,
                        self.user_key(user_id),
                    )
            else:
                return

    def _slide_index(self, owner: bytes | str | None) -> Plan[Request, None]:
        """Give the owner's index the session's expiry (a later one than any older session's)."""
        user = _text(owner)
        if user:
            yield Command(self._index_expiry(self.user_key(user)))

    @staticmethod
    def _after_write(plan: Plan[Request, None], what: str) -> Plan[Request, None]:
        """Run a step that follows a successful write, logging its failure instead of raising.

        The write is done and must not be reported as failed: a caller would retry it and
        store the same turns twice.
        """
        try:
            yield from plan
        except Exception as exc:  # noqa: BLE001 - the write itself succeeded
            logger.warning(
                "redis store: the write succeeded but %s failed: %s", what, type(exc).__name__
            )

    def _merging(
        self,
        session_id: str,
        mentions: Sequence[EntityMention],
        script: Callable[[int, list[Any]], Script],
        *,
        after_turns: bool = False,
    ) -> Plan[Request, list[Any]]:
        """Run a session script that also merges ``mentions`` into the session's entities.

        The merge is computed from the entities as read, and the script applies it only if no
        other writer changed them since (else this reads them again and retries).

        Args:
            session_id: The session.
            mentions: The facts to merge (none: the script runs once, with no change).
            script: The script, given the turn count read (-1 when not read) and the entity
                changes as script arguments.
            after_turns: The mentions' turn ids are positions after the session's last turn
                (an append's): the turn count is read too, and the script checks it.

        Returns:
            The script's answer.
        """
        keys = self.session_keys(session_id)
        for attempt in range(_MERGE_ATTEMPTS):
            if attempt:  # another writer won the last round: let it finish, with jitter
                yield Pause(random.uniform(0, min(_MAX_PAUSE, _FIRST_PAUSE * 2**attempt)))
            count, said, rows = -1, mentions, {}
            if mentions and after_turns:
                count = int((yield Command(("LLEN", keys[1]))))
                said = [replace(m, turn_id=count + (m.turn_id or 0)) for m in mentions]
            if mentions:
                rows = yield Command(("HGETALL", keys[3]))
            changes = self.codec.entity_changes(list(rows.items()), said) if mentions else []
            answer: list[Any] = yield script(count, _change_args(changes))
            if answer[0] != _CONFLICT:
                return answer
        msg = "redis store: the session's entities kept changing; nothing was written"
        raise StoreError(msg)

    # -- turns ------------------------------------------------------------------------------

    def append_turns(
        self,
        session_id: str,
        drafts: Sequence[TurnDraft],
        user_id: str | None,
        mentions: Sequence[EntityMention],
    ) -> Plan[Request, Appended]:
        """Plan of :meth:`MemoryStore.append_turns`."""
        records = [self.codec.dump_turn(draft) for draft in drafts]
        yield from self._check_key()
        if user_id is not None:
            yield from self._list(user_id, session_id)
        now = datetime.now(UTC).isoformat()
        incarnation = uuid.uuid4().hex
        answer = yield from self._merging(
            session_id,
            mentions,
            lambda expected, changes: self._script(
                "append",
                session_id,
                self.ttl_ms,
                user_id or "",
                now,
                incarnation,
                expected,
                len(records),
                *records,
                *changes,
            ),
            after_turns=True,
        )
        if answer[0] == -1:
            if user_id is not None:
                yield from self._after_write(
                    self._unlist(user_id, [session_id]), "dropping the refused session's entry"
                )
            msg = f"session {session_id!r} belongs to another user"
            raise SessionOwnershipError(msg)
        first, owner, current, claimed, summary = answer
        if claimed and user_id is not None:  # listed again, after the owner is set
            yield from self._listed_again(user_id, session_id)
        elif user_id is None:
            yield from self._after_write(self._slide_index(owner), "refreshing the user's index")
        turns = [
            Turn(session_id, first + i, draft.message, draft.text, draft.timestamp)
            for i, draft in enumerate(drafts)
        ]
        head = SessionHead(
            _text(current) or "",
            _text(owner) or None,
            first + len(records),
            self.codec.load_summary(summary or None),
        )
        return Appended(turns, head)

    def head(self, session_id: str) -> Plan[Request, SessionHead]:
        """Plan of :meth:`MemoryStore.head`."""
        answer = yield self._script("head", session_id)
        if not answer[0]:
            return SessionHead()
        _, incarnation, owner, count, summary = answer
        return SessionHead(
            _text(incarnation) or "",
            _text(owner) or None,
            int(count),
            self.codec.load_summary(summary or None),
        )

    def count_turns(self, session_id: str) -> Plan[Request, int]:
        """Plan of :meth:`MemoryStore.count_turns`."""
        count = yield Command(("LLEN", self.session_keys(session_id)[1]))
        return int(count)

    def session_user(self, session_id: str) -> Plan[Request, str | None]:
        """Plan of :meth:`MemoryStore.session_user`."""
        owner = yield Command(("HGET", self.session_keys(session_id)[0], "user"))
        return _text(owner)

    def get_turns(self, session_id: str, start: int, stop: int | None) -> Plan[Request, list[Turn]]:
        """Plan of :meth:`MemoryStore.get_turns`."""
        start = max(0, start)
        if stop is not None and stop <= start:
            return []
        last = -1 if stop is None else stop - 1
        records = yield Command(("LRANGE", self.session_keys(session_id)[1], start, last))
        return [
            self.codec.load_turn(session_id, start + i, record) for i, record in enumerate(records)
        ]

    def get_turns_by_ids(
        self, session_id: str, turn_ids: Sequence[int]
    ) -> Plan[Request, list[Turn]]:
        """Plan of :meth:`MemoryStore.get_turns_by_ids`."""
        wanted = sorted({int(i) for i in turn_ids if i >= 0})
        if not wanted:
            return []
        key = self.session_keys(session_id)[1]
        records = yield Batch(tuple(("LINDEX", key, i) for i in wanted))
        return [
            self.codec.load_turn(session_id, i, record)
            for i, record in zip(wanted, records, strict=True)
            if record is not None
        ]

    # -- sessions and users -----------------------------------------------------------------

    def list_sessions(self, user_id: str) -> Plan[Request, list[str]]:
        """Plan of :meth:`MemoryStore.list_sessions`.

        Entries of sessions another user owns are dropped from the index; an entry whose
        session has no owner is kept, unlisted: the user's first append may be creating that
        session at this moment.
        """
        key = self.user_key(user_id)
        members = sorted(_text(m) or "" for m in (yield Command(("SMEMBERS", key))))
        if not members:
            return []
        owners = yield Batch(tuple(("HGET", self.session_keys(s)[0], "user") for s in members))
        owned = [s for s, owner in zip(members, owners, strict=True) if _text(owner) == user_id]
        stale = [
            s
            for s, owner in zip(members, owners, strict=True)
            if _text(owner) not in (None, user_id)
        ]
        yield from self._unlist(user_id, stale)
        return owned

    def list_all_sessions(self, after: str | None, limit: int) -> Plan[Request, list[SessionInfo]]:
        """Plan of :meth:`MemoryStore.list_all_sessions`.

        Redis keeps no ordered index of sessions: the page is cut from a ``SCAN`` of the meta
        keys (names only), then one pipeline reads each listed session's owner, length and last
        turn.
        """
        keys = yield Scan(f"{self.session_key_pattern()}:meta")
        found = {self._session_of_meta_key(key) for key in keys}
        ids = sorted(s for s in found if s is not None and (after is None or s > after))[:limit]
        if not ids:
            return []
        calls: list[tuple[Any, ...]] = []
        for session_id in ids:
            meta, turns, *_ = self.session_keys(session_id)
            calls += [("HGET", meta, "user"), ("LLEN", turns), ("LINDEX", turns, -1)]
        answers = yield Batch(tuple(calls))
        page = []
        for i, session_id in enumerate(ids):
            owner, count, last = answers[3 * i : 3 * i + 3]
            when = None if last is None else self.codec.load_turn(session_id, 0, last).timestamp
            page.append(SessionInfo(session_id, _text(owner), int(count), when))
        return page

    # -- summary and entities ---------------------------------------------------------------

    def get_entities(self, session_id: str) -> Plan[Request, dict[str, Entity]]:
        """Plan of :meth:`MemoryStore.get_entities`."""
        rows = yield Command(("HGETALL", self.session_keys(session_id)[3]))
        return self.codec.load_entities(list(rows.items()))

    def get_user_entities(self, user_id: str) -> Plan[Request, dict[str, dict[str, Entity]]]:
        """Plan of :meth:`MemoryStore.get_user_entities`.

        Three round trips, however many sessions the user has (their entities in one pipeline).
        """
        sessions = yield from self.list_sessions(user_id)
        if not sessions:
            return {}
        found = yield Batch(tuple(("HGETALL", self.session_keys(s)[3]) for s in sessions))
        return {
            session_id: self.codec.load_entities(list((rows or {}).items()))
            for session_id, rows in zip(sessions, found, strict=True)
        }

    def merge_entities(
        self, session_id: str, mentions: Sequence[EntityMention], incarnation: str | None
    ) -> Plan[Request, bool]:
        """Plan of :meth:`MemoryStore.merge_entities`."""
        yield from self._check_key()
        answer = yield from self._merging(
            session_id,
            mentions,
            lambda _, changes: self._script(
                "merge_entities", session_id, self.ttl_ms, _any_if_none(incarnation), *changes
            ),
        )
        if answer[0]:
            yield from self._after_write(
                self._slide_index(answer[1]), "refreshing the user's index"
            )
        return bool(answer[0])

    def compare_and_set_summary(self, session_id: str, commit: FoldCommit) -> Plan[Request, bool]:
        """Plan of :meth:`MemoryStore.compare_and_set_summary`."""
        summary = commit.summary
        record = self.codec.dump_summary(summary)
        yield from self._check_key()
        answer = yield from self._merging(
            session_id,
            commit.mentions,
            lambda _, changes: self._script(
                "set_summary",
                session_id,
                self.ttl_ms,
                _any_if_none(commit.incarnation),
                commit.expected_version,
                summary.version,
                record,
                commit.holder or "",
                *changes,
            ),
        )
        if answer[0]:
            yield from self._after_write(
                self._slide_index(answer[1]), "refreshing the user's index"
            )
        return bool(answer[0])

    def acquire_fold(
        self, session_id: str, incarnation: str, holder: str, seconds: float
    ) -> Plan[Request, bool]:
        """Plan of :meth:`MemoryStore.acquire_fold`."""
        taken = yield self._script(
            "acquire_fold", session_id, incarnation, holder, max(1, round(seconds * 1000))
        )
        return bool(taken)

    def release_fold(
        self, session_id: str, holder: str, keep_seconds: float
    ) -> Plan[Request, None]:
        """Plan of :meth:`MemoryStore.release_fold`."""
        keep = max(1, round(keep_seconds * 1000)) if keep_seconds > 0 else 0
        yield self._script("release_fold", session_id, holder, keep)

    # -- vectors ----------------------------------------------------------------------------

    def put_vectors(
        self,
        session_id: str,
        turn_ids: Sequence[int],
        vectors: np.ndarray,
        incarnation: str | None,
    ) -> Plan[Request, bool]:
        """Plan of :meth:`MemoryStore.put_vectors` (a turn keeps its first vector)."""
        blobs = self.codec.dump_vectors(turn_ids, vectors)
        fields = [item for i, blob in zip(turn_ids, blobs, strict=True) for item in (int(i), blob)]
        yield from self._check_key()
        answer = yield self._script(
            "put_vectors",
            session_id,
            self.ttl_ms,
            _any_if_none(incarnation),
            *fields,
        )
        if answer[0]:
            yield from self._after_write(
                self._slide_index(answer[1]), "refreshing the user's index"
            )
        return bool(answer[0])

    def get_vectors(
        self, session_id: str, start: int
    ) -> Plan[Request, tuple[list[int], np.ndarray | None]]:
        """Plan of :meth:`MemoryStore.get_vectors`."""
        _, turns_key, vectors_key, _, _ = self.session_keys(session_id)
        count = int((yield Command(("LLEN", turns_key))))
        wanted = list(range(max(0, start), count))
        if not wanted:
            return [], None
        chunks = [
            wanted[i : i + _FIELDS_PER_HMGET] for i in range(0, len(wanted), _FIELDS_PER_HMGET)
        ]
        answers = yield Batch(tuple(("HMGET", vectors_key, *chunk) for chunk in chunks))
        found = [
            (turn_id, blob)
            for turn_id, blob in zip(wanted, (b for answer in answers for b in answer), strict=True)
            if blob is not None
        ]
        if not found:
            return [], None
        return [turn_id for turn_id, _ in found], self.codec.load_vectors(
            [blob for _, blob in found]
        )

    # -- erasure ----------------------------------------------------------------------------

    def delete_session(
        self, session_id: str, incarnation: str | None
    ) -> Plan[Request, ErasureReport]:
        """Plan of :meth:`MemoryStore.delete_session`."""
        answer = yield self._script("delete", session_id, "", _any_if_none(incarnation))
        if not answer[0]:
            return ErasureReport()
        _, turns, vectors, summaries, entities, owner = answer
        if _text(owner):
            yield from self._after_write(
                self._unlist(_text(owner) or "", [session_id]), "updating the user's index"
            )
        return ErasureReport((session_id,), turns, vectors, summaries, entities)

    def delete_user(self, user_id: str) -> Plan[Request, ErasureReport]:
        """Plan of :meth:`MemoryStore.delete_user`: every session the user owns.

        Index entries of sessions that are gone or another user's are dropped too; an entry of
        a session without owner is kept (the user's first append may be creating it).
        """
        key = self.user_key(user_id)
        members = sorted(_text(m) or "" for m in (yield Command(("SMEMBERS", key))))
        report = ErasureReport()
        unlisted: list[str] = []
        for session_id in members:
            answer = yield self._script("delete", session_id, user_id, "*")
            if answer[0]:
                _, turns, vectors, summaries, entities, _ = answer
                report += ErasureReport((session_id,), turns, vectors, summaries, entities)
                unlisted.append(session_id)
            elif len(answer) == 1 or _text(answer[1]):  # gone, or another user's
                unlisted.append(session_id)
        yield from self._after_write(self._unlist(user_id, unlisted), "updating the user's index")
        return report

    def purge_expired(self) -> Plan[Request, ErasureReport]:
        """Plan of :meth:`MemoryStore.purge_expired`: nothing, the server expires sessions."""
        return ErasureReport()
        yield  # a plan without requests

    # -- key rotation -----------------------------------------------------------------------

    def reencrypt_key_check(self) -> Plan[Request, None]:
        """Re-encrypt the key check under the first key (write one if the store has none)."""
        key = self.key_check_key()
        old = yield Command(("GET", key))
        new = self.codec.reencrypt_key_check(old)
        if new is None:
            return
        if old is None:
            yield Command(("SET", key, new, "NX"))
        else:
            yield Script("reencrypt_string", (key,), (old, new))

    def reencrypt_key(self, key: str) -> Plan[Request, int]:
        """Re-encrypt the values of one session key; how many were rewritten (0: other keys)."""
        tag = f"{self.prefix}:s:{{"
        if not key.startswith(tag) or "{" in key[len(tag) :] or "}:" not in key[len(tag) :]:
            return 0
        kind = key[len(tag) :].split("}:", 1)[1]
        if kind == "turns":
            return (yield from self._reencrypt_list(key))
        if kind == "meta":
            return (yield from self._reencrypt_fields(key, [b"summary"], "summary"))
        if kind in _HASH_VALUES:
            fields = yield Command(("HKEYS", key))
            return (yield from self._reencrypt_fields(key, fields, _HASH_VALUES[kind]))
        return 0

    def _reencrypt_list(self, key: str) -> Plan[Request, int]:
        rewritten = 0
        start = 0
        while True:
            values = yield Command(("LRANGE", key, start, start + REENCRYPT_PAGE - 1))
            changes: list[Any] = []
            for index, value in enumerate(values, start):
                new = self.codec.reencrypt(value, "turn")
                if new is not None:
                    changes += [index, value, new]
            if changes:
                rewritten += yield Script("reencrypt_list", (key,), tuple(changes))
            if len(values) < REENCRYPT_PAGE:
                return rewritten
            start += REENCRYPT_PAGE

    def _reencrypt_fields(self, key: str, fields: Sequence[bytes], what: str) -> Plan[Request, int]:
        rewritten = 0
        for first in range(0, len(fields), REENCRYPT_PAGE):
            chunk = list(fields[first : first + REENCRYPT_PAGE])
            values = yield Command(("HMGET", key, *chunk))
            changes: list[Any] = []
            for name, value in zip(chunk, values, strict=True):
                if value is None:
                    continue
                if what == "entity":
                    change = self.codec.reencrypt_entity(name, value)
                    if change is not None:
                        changes += [name, value, *change]
                    continue
                new = (
                    self.codec.reencrypt_vector(value)
                    if what == "vector"
                    else self.codec.reencrypt(value, what)
                )
                if new is not None:
                    changes += [name, value, name, new]
            if changes:
                rewritten += yield Script("reencrypt_hash", (key,), tuple(changes))
        return rewritten
