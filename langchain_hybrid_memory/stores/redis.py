"""Redis: memory shared by many workers, with server-side expiry; runs on Redis Cluster too.

Key scheme (``<s>`` and ``<u>`` are the percent-encoded session and user ids, so ``:``, ``*``,
``{`` and ``}`` in an id cannot break it)::

    <prefix>:s:{<s>}:meta       hash    owner, creation time, summary and its version
    <prefix>:s:{<s>}:turns      list    one JSON record per turn; the list index is the turn id
    <prefix>:s:{<s>}:vectors    hash    turn id -> float32 bytes
    <prefix>:s:{<s>}:entities   hash    normalized name -> JSON entity
    <prefix>:u:{<u>}:sessions   set     ids of the sessions the user may own (checked on read)
    <prefix>:keycheck           string  a known value sealed under the store's encryption key

Every key of a session carries the hash tag ``{<s>}``, so a session lives in one cluster slot and
each write is one Lua script over its keys: appends get contiguous ids whatever the number of
writers, the summary compare-and-set is atomic, and every key of the session gets the same
expiry (``ttl_seconds`` after the write; a store without TTL makes the session permanent). The
user's index lives in the user's slot and is only ever touched by single-key commands; it is
written before the session claims its owner and filtered against each session's owner when
read, so a crash between the two leaves nothing wrong behind. Reading drops the entries of
sessions another user owns (an append refused for ownership drops its own entry at once); an
entry whose session has no owner is kept, unlisted, as the user's first append may be creating
that session at this moment.

The async twins use one ``redis.asyncio`` client per running event loop (a client only works in
the loop that first used it), so each ``asyncio.run`` works.

Only plain lists, hashes, sets and strings are used: any Redis 6+ works, no module needed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from langchain_hybrid_memory.errors import (
    ConfigError,
    MissingDependencyError,
    SessionOwnershipError,
    StoreError,
)
from langchain_hybrid_memory.stores.base import MemoryStore, check_ttl
from langchain_hybrid_memory.stores._codec import Codec
from langchain_hybrid_memory._plans import arun_plan, plan_name, run_plan
from langchain_hybrid_memory.types import ErasureReport, Turn

try:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster
    from redis.exceptions import RedisClusterException, RedisError
except ImportError as exc:  # pragma: no cover - exercised by the import test
    raise MissingDependencyError.for_extra("redis", "redis") from exc

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from langchain_hybrid_memory.stores.encryption import EncryptionKey
    from langchain_hybrid_memory._plans import Plan
    from langchain_hybrid_memory.types import Entity, RunningSummary, TurnDraft

__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)

_R = TypeVar("_R")

_SyncClient = redis.Redis | redis.cluster.RedisCluster
_AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

# KEYS of every session script: meta, turns, vectors, entities. ARGV[1]: TTL in ms, 0 for none.
_SLIDE = """
local function slide()
  local ttl = tonumber(ARGV[1])
  for _, key in ipairs(KEYS) do
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) else redis.call('PERSIST', key) end
  end
end
"""

# ARGV[2]: owner or '', ARGV[3]: creation time, ARGV[4..]: turn records.
# Returns {first id, owner}; {-1, owner} when the session belongs to someone else.
_APPEND = (
    _SLIDE
    + """
local owner = redis.call('HGET', KEYS[1], 'user')
if ARGV[2] ~= '' and owner and owner ~= ARGV[2] then return {-1, owner} end
local first = redis.call('LLEN', KEYS[2])
for i = 4, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
if not owner and ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'user', ARGV[2])
  owner = ARGV[2]
end
redis.call('HSETNX', KEYS[1], 'created', ARGV[3])
slide()
return {first, owner or ''}
"""
)

# ARGV[2]: expected version, ARGV[3]: new version, ARGV[4]: summary record.
# Returns {1 if written else 0, owner}.
_SET_SUMMARY = (
    _SLIDE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local current = tonumber(redis.call('HGET', KEYS[1], 'summary_version') or '0')
if current ~= tonumber(ARGV[2]) then return {0, ''} end
redis.call('HSET', KEYS[1], 'summary', ARGV[4], 'summary_version', ARGV[3])
slide()
return {1, redis.call('HGET', KEYS[1], 'user') or ''}
"""
)

# ARGV[2]: index in KEYS of the hash, ARGV[3]: HSET or HSETNX, ARGV[4]: how many fields to
# remove first (n), ARGV[5..4+n]: those fields, ARGV[5+n..]: field, value, ...
# Writes only into an existing session. Returns {1 if it exists else 0, owner}.
_PUT_FIELDS = (
    _SLIDE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local hash = KEYS[tonumber(ARGV[2])]
local stale = tonumber(ARGV[4])
for i = 5, 4 + stale do redis.call('HDEL', hash, ARGV[i]) end
for i = 5 + stale, #ARGV, 2 do redis.call(ARGV[3], hash, ARGV[i], ARGV[i + 1]) end
slide()
return {1, redis.call('HGET', KEYS[1], 'user') or ''}
"""
)

# ARGV[1]: the owner the session must have, or '' for any.
# Returns {existed, turns, vectors, summaries, entities, owner}.
_DELETE = """
if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4]) == 0 then return {0} end
local owner = redis.call('HGET', KEYS[1], 'user') or ''
if ARGV[1] ~= '' and owner ~= ARGV[1] then return {0} end
local version = tonumber(redis.call('HGET', KEYS[1], 'summary_version') or '0')
local counts = {1, redis.call('LLEN', KEYS[2]), redis.call('HLEN', KEYS[3]),
                version > 0 and 1 or 0, redis.call('HLEN', KEYS[4]), owner}
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return counts
"""

# Re-sealing (key rotation) replaces a value only if it is still the one read, and never
# changes a key's expiry. KEYS[1]: a list; ARGV: index, old value, new value, ...
# Returns how many values were replaced.
_RESEAL_LIST = """
local replaced = 0
for i = 1, #ARGV, 3 do
  if redis.call('LINDEX', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('LSET', KEYS[1], ARGV[i], ARGV[i + 2])
    replaced = replaced + 1
  end
end
return replaced
"""

# KEYS[1]: a hash; ARGV: field, old value, new field, new value, ... A value moving to another
# field does not replace one already there (written later, under the newest key).
_RESEAL_HASH = """
local replaced = 0
for i = 1, #ARGV, 4 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    if ARGV[i + 2] == ARGV[i] then
      redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 3])
    else
      redis.call('HSETNX', KEYS[1], ARGV[i + 2], ARGV[i + 3])
      redis.call('HDEL', KEYS[1], ARGV[i])
    end
    replaced = replaced + 1
  end
end
return replaced
"""

# KEYS[1]: the key check; ARGV[1]: the value read, ARGV[2]: the re-sealed one.
_RESEAL_STRING = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_SCRIPTS = {
    "append": _APPEND,
    "reseal_string": _RESEAL_STRING,
    "set_summary": _SET_SUMMARY,
    "put_fields": _PUT_FIELDS,
    "delete": _DELETE,
    "reseal_list": _RESEAL_LIST,
    "reseal_hash": _RESEAL_HASH,
}

_VECTORS_KEY = "3"  # position of the vectors hash in a session's KEYS (Lua counts from 1)
_ENTITIES_KEY = "4"
_FIELDS_PER_HMGET = 1000
_RESEAL_PAGE = 200
_HASH_VALUES = {"vectors": "vector", "entities": "entity"}  # hash key suffix: what it holds
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


@dataclass(frozen=True)
class _Call:
    """One command."""

    args: tuple[Any, ...]


@dataclass(frozen=True)
class _Batch:
    """Commands sent in one pipeline, without a transaction (they may span slots)."""

    calls: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class _Eval:
    """One of :data:`_SCRIPTS` over the keys of one session."""

    script: str
    keys: tuple[str, ...]
    args: tuple[Any, ...]


_Request = _Call | _Batch | _Eval


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class _RedisPlans:
    """Every store operation as a plan of Redis requests (no I/O here)."""

    prefix: str
    ttl_ms: int
    codec: Codec = field(default_factory=Codec)

    def session_keys(self, session_id: str) -> tuple[str, str, str, str]:
        tag = f"{self.prefix}:s:{{{quote(session_id, safe='')}}}"
        return (f"{tag}:meta", f"{tag}:turns", f"{tag}:vectors", f"{tag}:entities")

    def user_key(self, user_id: str) -> str:
        return f"{self.prefix}:u:{{{quote(user_id, safe='')}}}:sessions"

    def key_check_key(self) -> str:
        return f"{self.prefix}:keycheck"

    def _check_key(self) -> Plan[_Request, None]:
        """Refuse a key that does not match the store's key check; write one if there is none.

        Runs before every write (a refused write has written nothing). The key check is one
        store-wide key, outside any session's slot: it is read before the session's script and
        written once (``SET NX``: the first writer with a key wins, a later one verifies it).
        """
        key = self.key_check_key()
        if not self.codec.check_key((yield _Call(("GET", key)))):
            return
        if not (yield _Call(("SET", key, self.codec.new_key_check(), "NX"))):
            self.codec.check_key((yield _Call(("GET", key))))

    def reencrypt_key_check(self) -> Plan[_Request, None]:
        """Re-seal the key check under the first key (write one if the store has none)."""
        key = self.key_check_key()
        old = yield _Call(("GET", key))
        new = self.codec.reseal_key_check(old)
        if new is None:
            return
        if old is None:
            yield _Call(("SET", key, new, "NX"))
        else:
            yield _Eval("reseal_string", (key,), (old, new))

    def _session_script(self, name: str, session_id: str, *args: Any) -> _Eval:
        return _Eval(name, self.session_keys(session_id), args)

    def _user_expiry(self, key: str) -> tuple[Any, ...]:
        return ("PEXPIRE", key, self.ttl_ms) if self.ttl_ms else ("PERSIST", key)

    def _unlist(self, user_id: str, session_id: str) -> Plan[_Request, None]:
        """Remove a session the user was refused from the user's index (best effort).

        The index entry was written before the append script found another owner; left there,
        the refused user's index would mention a session of someone else. A failure here is
        logged: the entry is filtered out on read anyway.
        """
        try:
            yield _Call(("SREM", self.user_key(user_id), session_id))
        except (RedisError, RedisClusterException, OSError) as exc:
            logger.warning(
                "redis store: removing a refused session from the user's index failed: %s",
                type(exc).__name__,
            )

    def _slide_user(self, owner: bytes | str) -> Plan[_Request, None]:
        """Give the owner's index the session's expiry (a later one than any older session's).

        Best effort: it runs after the session's write succeeded, which must not be reported as
        failed (a caller would retry and store the turns twice).
        """
        user = _text(owner)
        if not user:
            return
        try:
            yield _Call(self._user_expiry(self.user_key(user)))
        except (RedisError, RedisClusterException, OSError) as exc:
            logger.warning(
                "redis store: the write succeeded but refreshing the expiry of the owner's "
                "session index failed: %s",
                type(exc).__name__,
            )

    # -- turns ------------------------------------------------------------------------------

    def append_turns(
        self, session_id: str, drafts: Sequence[TurnDraft], user_id: str | None
    ) -> Plan[_Request, list[Turn]]:
        records = [self.codec.dump_turn(draft) for draft in drafts]
        yield from self._check_key()
        if user_id is not None:
            key = self.user_key(user_id)
            yield _Batch((("SADD", key, session_id), self._user_expiry(key)))
        now = datetime.now(UTC).isoformat()
        first, owner = yield self._session_script(
            "append", session_id, self.ttl_ms, user_id or "", now, *records
        )
        if first < 0:
            if user_id is not None:
                yield from self._unlist(user_id, session_id)
            msg = f"session {session_id!r} belongs to another user"
            raise SessionOwnershipError(msg)
        if user_id is None:  # the owner's index was not refreshed above
            yield from self._slide_user(owner)
        return [
            Turn(session_id, first + i, draft.message, draft.text, draft.timestamp)
            for i, draft in enumerate(drafts)
        ]

    def count_turns(self, session_id: str) -> Plan[_Request, int]:
        count = yield _Call(("LLEN", self.session_keys(session_id)[1]))
        return int(count)

    def get_turns(
        self, session_id: str, start: int, stop: int | None
    ) -> Plan[_Request, list[Turn]]:
        start = max(0, start)
        if stop is not None and stop <= start:
            return []
        last = -1 if stop is None else stop - 1
        records = yield _Call(("LRANGE", self.session_keys(session_id)[1], start, last))
        return [
            self.codec.load_turn(session_id, start + i, record) for i, record in enumerate(records)
        ]

    def get_turns_by_ids(
        self, session_id: str, turn_ids: Sequence[int]
    ) -> Plan[_Request, list[Turn]]:
        wanted = sorted({int(i) for i in turn_ids if i >= 0})
        if not wanted:
            return []
        key = self.session_keys(session_id)[1]
        records = yield _Batch(tuple(("LINDEX", key, i) for i in wanted))
        return [
            self.codec.load_turn(session_id, i, record)
            for i, record in zip(wanted, records, strict=True)
            if record is not None
        ]

    # -- sessions and users -----------------------------------------------------------------

    def session_user(self, session_id: str) -> Plan[_Request, str | None]:
        owner = yield _Call(("HGET", self.session_keys(session_id)[0], "user"))
        return _text(owner)

    def list_sessions(self, user_id: str) -> Plan[_Request, list[str]]:
        key = self.user_key(user_id)
        members = sorted(_text(m) or "" for m in (yield _Call(("SMEMBERS", key))))
        if not members:
            return []
        owners = yield _Batch(tuple(("HGET", self.session_keys(s)[0], "user") for s in members))
        owned: list[str] = []
        stale: list[str] = []
        for session_id, owner in zip(members, owners, strict=True):
            name = _text(owner)
            if name == user_id:
                owned.append(session_id)
            elif name:  # another user's: this user was refused it
                stale.append(session_id)
            # no owner: being created by the user's first append right now (its index entry is
            # written before the session), or gone (expiry) -- kept, and not listed
        if stale:
            yield _Call(("SREM", key, *stale))
        return owned

    # -- summary and entities ---------------------------------------------------------------

    def get_summary(self, session_id: str) -> Plan[_Request, RunningSummary]:
        record = yield _Call(("HGET", self.session_keys(session_id)[0], "summary"))
        return self.codec.load_summary(record)

    def compare_and_set_summary(
        self, session_id: str, expected_version: int, summary: RunningSummary
    ) -> Plan[_Request, bool]:
        record = self.codec.dump_summary(summary)
        yield from self._check_key()
        written, owner = yield self._session_script(
            "set_summary",
            session_id,
            self.ttl_ms,
            expected_version,
            summary.version,
            record,
        )
        if written:
            yield from self._slide_user(owner)
        return bool(written)

    def get_entities(self, session_id: str) -> Plan[_Request, dict[str, Entity]]:
        records = yield _Call(("HVALS", self.session_keys(session_id)[3]))
        entities = [self.codec.load_entity(record) for record in records]
        return {entity.key: entity for entity in entities}

    def put_entities(self, session_id: str, entities: Sequence[Entity]) -> Plan[_Request, None]:
        codec = self.codec
        fields = [
            item for e in entities for item in (codec.entity_field(e.key), codec.dump_entity(e))
        ]
        stale = sorted({old for e in entities for old in codec.stale_entity_fields(e.key)})
        yield from self._put_fields(session_id, _ENTITIES_KEY, "HSET", fields, stale)

    # -- vectors ----------------------------------------------------------------------------

    def put_vectors(
        self, session_id: str, turn_ids: Sequence[int], vectors: np.ndarray
    ) -> Plan[_Request, None]:
        blobs = self.codec.dump_vectors(turn_ids, vectors)
        fields = [item for i, blob in zip(turn_ids, blobs, strict=True) for item in (int(i), blob)]
        yield from self._put_fields(session_id, _VECTORS_KEY, "HSETNX", fields)

    def _put_fields(
        self,
        session_id: str,
        hash_position: str,
        command: str,
        fields: list[Any],
        stale: Sequence[str] = (),
    ) -> Plan[_Request, None]:
        if not fields:
            return
        yield from self._check_key()
        exists, owner = yield self._session_script(
            "put_fields",
            session_id,
            self.ttl_ms,
            hash_position,
            command,
            len(stale),
            *stale,
            *fields,
        )
        if exists:
            yield from self._slide_user(owner)

    def get_vectors(
        self, session_id: str, start: int
    ) -> Plan[_Request, tuple[list[int], np.ndarray | None]]:
        _, turns_key, vectors_key, _ = self.session_keys(session_id)
        count = int((yield _Call(("LLEN", turns_key))))
        wanted = list(range(max(0, start), count))
        if not wanted:
            return [], None
        chunks = [
            wanted[i : i + _FIELDS_PER_HMGET] for i in range(0, len(wanted), _FIELDS_PER_HMGET)
        ]
        answers = yield _Batch(tuple(("HMGET", vectors_key, *chunk) for chunk in chunks))
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

    # -- rotation ---------------------------------------------------------------------------

    def session_key_pattern(self) -> str:
        """A ``SCAN`` pattern matching every session key of this prefix (and maybe others)."""
        escaped = _GLOB_SPECIAL.sub(r"\\\1", self.prefix)
        return f"{escaped}:s:*"

    def reencrypt_key(self, key: str) -> Plan[_Request, int]:
        """Re-seal the values of one session key; how many were rewritten (0 for other keys)."""
        tag = f"{self.prefix}:s:{{"
        if not key.startswith(tag) or "{" in key[len(tag) :] or "}:" not in key[len(tag) :]:
            return 0
        kind = key[len(tag) :].split("}:", 1)[1]
        if kind == "turns":
            return (yield from self._reseal_list(key))
        if kind == "meta":
            return (yield from self._reseal_fields(key, [b"summary"], "summary"))
        if kind in _HASH_VALUES:
            fields = yield _Call(("HKEYS", key))
            return (yield from self._reseal_fields(key, fields, _HASH_VALUES[kind]))
        return 0

    def _reseal_list(self, key: str) -> Plan[_Request, int]:
        rewritten = 0
        start = 0
        while True:
            values = yield _Call(("LRANGE", key, start, start + _RESEAL_PAGE - 1))
            changes: list[Any] = []
            for index, value in enumerate(values, start):
                new = self.codec.reseal(value, "turn")
                if new is not None:
                    changes += [index, value, new]
            if changes:
                rewritten += yield _Eval("reseal_list", (key,), tuple(changes))
            if len(values) < _RESEAL_PAGE:
                return rewritten
            start += _RESEAL_PAGE

    def _reseal_fields(self, key: str, fields: Sequence[bytes], what: str) -> Plan[_Request, int]:
        rewritten = 0
        for first in range(0, len(fields), _RESEAL_PAGE):
            chunk = list(fields[first : first + _RESEAL_PAGE])
            values = yield _Call(("HMGET", key, *chunk))
            changes: list[Any] = []
            for name, value in zip(chunk, values, strict=True):
                if value is None:
                    continue
                if what == "entity":
                    change = self.codec.reseal_entity(name, value)
                    if change is not None:
                        changes += [name, value, *change]
                    continue
                new = (
                    self.codec.reseal_vector(value)
                    if what == "vector"
                    else self.codec.reseal(value, what)
                )
                if new is not None:
                    changes += [name, value, name, new]
            if changes:
                rewritten += yield _Eval("reseal_hash", (key,), tuple(changes))
        return rewritten

    # -- erasure ----------------------------------------------------------------------------

    def delete_session(
        self, session_id: str, required_owner: str = ""
    ) -> Plan[_Request, ErasureReport]:
        answer = yield self._session_script("delete", session_id, required_owner)
        if not answer[0]:
            return ErasureReport()
        _, turns, vectors, summaries, entities, owner = answer
        if owner:
            yield _Call(("SREM", self.user_key(_text(owner) or ""), session_id))
        return ErasureReport((session_id,), turns, vectors, summaries, entities)

    def delete_user(self, user_id: str) -> Plan[_Request, ErasureReport]:
        key = self.user_key(user_id)
        members = sorted(_text(m) or "" for m in (yield _Call(("SMEMBERS", key))))
        report = ErasureReport()
        for session_id in members:
            report += yield from self.delete_session(session_id, required_owner=user_id)
        yield _Call(("DEL", key))
        return report


class RedisStore(MemoryStore):
    """Keeps memory in Redis (or Redis Cluster), shared by every worker that opens it.

    Appends, the summary compare-and-set and erasure are Lua scripts over the keys of one
    session (one hash tag), so any number of processes can write one session: no turn is lost
    or duplicated and ids stay contiguous. With ``ttl_seconds`` every key of a session expires
    together, ``ttl_seconds`` after the session's last write, on the server. See the module
    docstring for the key scheme.

    Args:
        client_or_url: A ``redis.Redis`` or ``redis.cluster.RedisCluster`` client (created with
            ``decode_responses=False``), or a URL: ``redis://host:port/db``, ``rediss://...``,
            ``unix://...``, or ``redis+cluster://host:port`` (``rediss+cluster://``) for a
            cluster.
        prefix: Namespace of every key (no ``{`` or ``}``).
        ttl_seconds: Sessions expire this long after their last write (``None``: never).
        async_client: The ``redis.asyncio`` client for the async twins when ``client_or_url``
            is a client (with a URL, both clients are created). Without one, the async twins run
            the sync client in the executor.
        encryption_key: A Fernet key, or a list of them (the first seals, all open), to encrypt
            turns, summaries and entities at rest; ``None`` stores them as plain JSON. See
            :meth:`reencrypt` for rotation.
        encrypt_vectors: With a key, encrypt the embedding vectors too.

    Raises:
        StoreError: The server cannot be reached or is not what the URL says.
        ConfigError: A bad prefix, TTL, client or encryption key.

    Example:
        Needs a Redis server::

            store = RedisStore("redis://127.0.0.1:6379/0", prefix="bot", ttl_seconds=86400)
            memory = HybridMemory(store=store)
            cluster = RedisStore("redis+cluster://10.0.0.5:7000")
    """

    name = "redis"

    def __init__(
        self,
        client_or_url: str | _SyncClient,
        *,
        prefix: str = "hm",
        ttl_seconds: float | None = None,
        async_client: _AsyncClient | None = None,
        encryption_key: EncryptionKey | None = None,
        encrypt_vectors: bool = False,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            msg = f"prefix must be a non-empty string without braces, got {prefix!r}"
            raise ConfigError(msg)
        self.prefix = prefix
        self.ttl_seconds = check_ttl(ttl_seconds)
        ttl_ms = 0 if self.ttl_seconds is None else max(1, round(self.ttl_seconds * 1000))
        codec = Codec(encryption_key, encrypt_vectors=encrypt_vectors)
        self._plans = _RedisPlans(prefix, ttl_ms, codec)
        self._owns_clients = isinstance(client_or_url, str)
        self._client: _SyncClient
        self._url: str | None = None
        # async clients by event loop: a redis.asyncio client only works in the loop that
        # first used it, so each running loop gets its own (a passed one serves the first)
        self._given_aclient: _AsyncClient | None = None
        self._given_aclient_used = False
        self._aclients: dict[asyncio.AbstractEventLoop, tuple[_AsyncClient, dict[str, Any]]] = {}
        self._aclients_lock = threading.Lock()
        if isinstance(client_or_url, str):
            self._client = _sync_client_from_url(client_or_url)
            self._url = client_or_url
        elif isinstance(client_or_url, _SyncClient):
            self._client, self._given_aclient = client_or_url, async_client
        else:
            msg = (
                "client_or_url must be a redis URL, redis.Redis or redis.cluster.RedisCluster, "
                f"got {type(client_or_url).__name__}"
            )
            raise ConfigError(msg)
        for client in (self._client, self._given_aclient):
            if client is not None and client.get_connection_kwargs().get("decode_responses"):
                msg = "redis store: the client must be created with decode_responses=False"
                raise ConfigError(msg)
        self.cluster = isinstance(self._client, redis.cluster.RedisCluster)
        self._scripts = {name: self._client.register_script(src) for name, src in _SCRIPTS.items()}
        try:
            self._client.ping()
        except (RedisError, RedisClusterException, OSError) as exc:
            msg = f"redis store: cannot reach the server: {exc}"
            raise StoreError(msg) from exc

    # -- drivers ----------------------------------------------------------------------------

    def _execute(self, request: _Request) -> Any:
        if isinstance(request, _Eval):
            return self._scripts[request.script](keys=request.keys, args=request.args)
        if isinstance(request, _Batch):
            pipe = self._client.pipeline(transaction=False)
            for call in request.calls:
                pipe.execute_command(*call)
            return pipe.execute()
        return self._client.execute_command(*request.args)  # type: ignore[no-untyped-call]

    def _async_client(self) -> tuple[_AsyncClient, dict[str, Any]] | None:
        """The running loop's async client and its scripts; ``None``: use the executor.

        A store opened with a URL creates one client per event loop; a passed ``async_client``
        serves the first loop that uses it, later loops run the sync client in the executor.
        Clients of closed loops are dropped (they cannot be used or closed any more).
        """
        loop = asyncio.get_running_loop()
        with self._aclients_lock:
            for closed in [old for old in self._aclients if old.is_closed()]:
                del self._aclients[closed]
            found = self._aclients.get(loop)
            if found is not None:
                return found
            if self._url is not None:
                client = _async_client_from_url(self._url)
            elif self._given_aclient is not None and not self._given_aclient_used:
                client = self._given_aclient
                self._given_aclient_used = True
            else:
                return None
            found = (client, {name: client.register_script(src) for name, src in _SCRIPTS.items()})
            self._aclients[loop] = found
            return found

    async def _aexecute(
        self, client: _AsyncClient, scripts: dict[str, Any], request: _Request
    ) -> Any:
        if isinstance(request, _Eval):
            return await scripts[request.script](keys=request.keys, args=request.args)
        if isinstance(request, _Batch):
            pipe = client.pipeline(transaction=False)
            for call in request.calls:
                pipe.execute_command(*call)
            return await pipe.execute()
        return await client.execute_command(*request.args)

    def _run(self, plan: Plan[_Request, _R]) -> _R:
        try:
            return run_plan(plan, self._execute)
        except (RedisError, RedisClusterException, OSError) as exc:
            msg = f"redis store: {plan_name(plan)} failed: {exc}"
            raise StoreError(msg) from exc

    async def _arun(self, plan: Plan[_Request, _R]) -> _R:
        try:
            found = self._async_client()
        except BaseException:
            plan.close()
            raise
        if found is None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, self._run, plan)
        client, scripts = found
        try:
            return await arun_plan(plan, lambda request: self._aexecute(client, scripts, request))
        except (RedisError, RedisClusterException, OSError, RuntimeError) as exc:
            # RuntimeError: the client's connections belong to a closed event loop
            msg = f"redis store: {plan_name(plan)} failed: {exc}"
            raise StoreError(msg) from exc

    # -- sync -------------------------------------------------------------------------------

    def append_turns(
        self, session_id: str, drafts: Sequence[TurnDraft], *, user_id: str | None = None
    ) -> list[Turn]:
        """Store new turns at the end of a session (see :class:`MemoryStore`)."""
        return self._run(self._plans.append_turns(session_id, drafts, user_id))

    def count_turns(self, session_id: str) -> int:
        """How many turns the session has."""
        return self._run(self._plans.count_turns(session_id))

    def get_turns(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Turn]:
        """Turns with ``start <= id < stop``."""
        return self._run(self._plans.get_turns(session_id, start, stop))

    def get_turns_by_ids(self, session_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        """The existing turns with these ids, in id order."""
        return self._run(self._plans.get_turns_by_ids(session_id, turn_ids))

    def session_user(self, session_id: str) -> str | None:
        """The session's owner."""
        return self._run(self._plans.session_user(session_id))

    def list_sessions(self, user_id: str) -> list[str]:
        """The user's session ids, sorted."""
        return self._run(self._plans.list_sessions(user_id))

    def get_summary(self, session_id: str) -> RunningSummary:
        """The session's rolling summary."""
        return self._run(self._plans.get_summary(session_id))

    def compare_and_set_summary(
        self, session_id: str, expected_version: int, summary: RunningSummary
    ) -> bool:
        """Replace the summary if its version is still ``expected_version`` (atomically)."""
        plan = self._plans.compare_and_set_summary(session_id, expected_version, summary)
        return self._run(plan)

    def get_entities(self, session_id: str) -> dict[str, Entity]:
        """The session's entities by normalized name."""
        return self._run(self._plans.get_entities(session_id))

    def put_entities(self, session_id: str, entities: Sequence[Entity]) -> None:
        """Insert or replace entities."""
        self._run(self._plans.put_entities(session_id, entities))

    def put_vectors(self, session_id: str, turn_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store one float32 vector per turn id (a turn's first vector is kept)."""
        self._run(self._plans.put_vectors(session_id, turn_ids, vectors))

    def get_vectors(self, session_id: str, start: int = 0) -> tuple[list[int], np.ndarray | None]:
        """Vectors of turns with ``id >= start``."""
        return self._run(self._plans.get_vectors(session_id, start))

    def delete_session(self, session_id: str) -> ErasureReport:
        """Delete every key of the session and its entry in the owner's index."""
        return self._run(self._plans.delete_session(session_id))

    def delete_user(self, user_id: str) -> ErasureReport:
        """Delete every session the user owns, then the user's index."""
        return self._run(self._plans.delete_user(user_id))

    def reencrypt(self) -> int:
        """Re-seal every stored value under the first key (see :meth:`MemoryStore.reencrypt`).

        ``SCAN``s the prefix's session keys (on every node of a cluster) and re-seals each
        key's values with one script per page of values, which replaces a value only if it is
        unchanged since it was read and keeps the key's expiry.
        """
        self._plans.codec.require_key()
        self._run(self._plans.reencrypt_key_check())
        rewritten = 0
        pattern = self._plans.session_key_pattern()
        try:
            for key in self._client.scan_iter(match=pattern, count=_RESEAL_PAGE):
                name = key.decode() if isinstance(key, bytes) else str(key)
                rewritten += self._run(self._plans.reencrypt_key(name))
        except (RedisError, RedisClusterException, OSError) as exc:
            msg = f"redis store: reencrypt failed: {exc}"
            raise StoreError(msg) from exc
        return rewritten

    def close(self) -> None:
        """Close the clients this store created (clients passed in are left open)."""
        if self._owns_clients:
            self._client.close()

    # -- async ------------------------------------------------------------------------------

    async def aappend_turns(
        self, session_id: str, drafts: Sequence[TurnDraft], *, user_id: str | None = None
    ) -> list[Turn]:
        """Async twin of :meth:`append_turns`."""
        return await self._arun(self._plans.append_turns(session_id, drafts, user_id))

    async def acount_turns(self, session_id: str) -> int:
        """Async twin of :meth:`count_turns`."""
        return await self._arun(self._plans.count_turns(session_id))

    async def aget_turns(
        self, session_id: str, start: int = 0, stop: int | None = None
    ) -> list[Turn]:
        """Async twin of :meth:`get_turns`."""
        return await self._arun(self._plans.get_turns(session_id, start, stop))

    async def aget_turns_by_ids(self, session_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        """Async twin of :meth:`get_turns_by_ids`."""
        return await self._arun(self._plans.get_turns_by_ids(session_id, turn_ids))

    async def asession_user(self, session_id: str) -> str | None:
        """Async twin of :meth:`session_user`."""
        return await self._arun(self._plans.session_user(session_id))

    async def alist_sessions(self, user_id: str) -> list[str]:
        """Async twin of :meth:`list_sessions`."""
        return await self._arun(self._plans.list_sessions(user_id))

    async def aget_summary(self, session_id: str) -> RunningSummary:
        """Async twin of :meth:`get_summary`."""
        return await self._arun(self._plans.get_summary(session_id))

    async def acompare_and_set_summary(
        self, session_id: str, expected_version: int, summary: RunningSummary
    ) -> bool:
        """Async twin of :meth:`compare_and_set_summary`."""
        plan = self._plans.compare_and_set_summary(session_id, expected_version, summary)
        return await self._arun(plan)

    async def aget_entities(self, session_id: str) -> dict[str, Entity]:
        """Async twin of :meth:`get_entities`."""
        return await self._arun(self._plans.get_entities(session_id))

    async def aput_entities(self, session_id: str, entities: Sequence[Entity]) -> None:
        """Async twin of :meth:`put_entities`."""
        await self._arun(self._plans.put_entities(session_id, entities))

    async def aput_vectors(
        self, session_id: str, turn_ids: Sequence[int], vectors: np.ndarray
    ) -> None:
        """Async twin of :meth:`put_vectors`."""
        await self._arun(self._plans.put_vectors(session_id, turn_ids, vectors))

    async def aget_vectors(
        self, session_id: str, start: int = 0
    ) -> tuple[list[int], np.ndarray | None]:
        """Async twin of :meth:`get_vectors`."""
        return await self._arun(self._plans.get_vectors(session_id, start))

    async def adelete_session(self, session_id: str) -> ErasureReport:
        """Async twin of :meth:`delete_session`."""
        return await self._arun(self._plans.delete_session(session_id))

    async def adelete_user(self, user_id: str) -> ErasureReport:
        """Async twin of :meth:`delete_user`."""
        return await self._arun(self._plans.delete_user(user_id))

    async def aclose(self) -> None:
        """Async twin of :meth:`close` (also closes the async client this store created)."""
        if self._owns_clients:
            loop = asyncio.get_running_loop()
            with self._aclients_lock:
                clients = list(self._aclients.items())
                self._aclients.clear()
            for owner, (client, _) in clients:
                if owner is loop:  # other loops' clients cannot be closed from here
                    await client.aclose()
        self.close()

    def __repr__(self) -> str:
        kind = "cluster" if self.cluster else "single"
        return f"RedisStore({kind}, prefix={self.prefix!r}, ttl_seconds={self.ttl_seconds!r})"


def _cluster_url(url: str) -> str | None:
    """The plain URL of a ``redis+cluster://`` (``rediss+cluster://``) URL, else ``None``."""
    scheme, _, rest = url.partition("://")
    if scheme.lower().endswith("+cluster"):
        return f"{scheme[: -len('+cluster')]}://{rest}"
    return None


def _sync_client_from_url(url: str) -> _SyncClient:
    """A sync client for a URL; ``redis+cluster://`` gives a cluster client."""
    plain = _cluster_url(url)
    try:
        if plain is not None:
            return redis.cluster.RedisCluster.from_url(plain)
        return redis.Redis.from_url(url)
    except (RedisError, RedisClusterException, OSError, ValueError) as exc:
        msg = f"redis store: cannot connect with this URL (not shown): {type(exc).__name__}: {exc}"
        raise StoreError(msg) from exc


def _async_client_from_url(url: str) -> _AsyncClient:
    """An async client for a URL (for the running event loop); cluster as for the sync one."""
    plain = _cluster_url(url)
    try:
        if plain is not None:
            return redis.asyncio.cluster.RedisCluster.from_url(plain)
        return redis.asyncio.Redis.from_url(url)
    except (RedisError, RedisClusterException, OSError, ValueError) as exc:
        msg = f"redis store: cannot connect with this URL (not shown): {type(exc).__name__}: {exc}"
        raise StoreError(msg) from exc
