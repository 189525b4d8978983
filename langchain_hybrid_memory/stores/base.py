"""The persistence boundary: everything the engine keeps goes through a :class:`MemoryStore`.

A store keeps, per session: the turns (ids assigned by the store, from 0, without gaps), the
owning user, the *incarnation* (a token that changes when the session is erased and written
again), the rolling summary (replaced by a compare-and-set), the entities, one float32 vector
per embedded turn, and the fold lease (which worker is summarizing it now).

**One shell.** :class:`MemoryStore` defines every operation once, with its async twin, over
the store's *plans* (I/O-free generators, see :mod:`langchain_hybrid_memory._plans`): a backend
supplies the plans (:class:`StorePlans`) and how a plan runs, in a read or a write, with its
sync client and with its async client. ``InMemoryStore`` runs them on dictionaries,
``SQLiteStore`` and ``PostgresStore`` on SQL, ``RedisStore`` on Redis commands and scripts.

**Derived data follows its incarnation.** Vectors, summaries and the entities a summary batch
states are computed from a session's turns, often by another worker and seconds later. Every
write of them names the incarnation it was computed from and is refused (``False``) when the
session was erased, or erased and written again, meanwhile; so erased text never comes back.

**One fold per batch.** A worker about to send a batch of turns to the summarizer first takes
the session's fold lease (:meth:`MemoryStore.acquire_fold`); a worker that finds it held moves
on. The lease expires by itself, so a worker that dies while folding blocks nobody for long.

Expiry: a store built with ``ttl_seconds`` lets a session expire that many seconds after its
last write (every write slides it); an expired session reads as unknown (empty values) and its
data is removed, by the server (Redis), on access, or by :meth:`MemoryStore.purge_expired`.
"""

from __future__ import annotations

import asyncio
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

import numpy as np

from langchain_hybrid_memory.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from langchain_hybrid_memory._plans import Plan
    from langchain_hybrid_memory.types import (
        Appended,
        Entity,
        EntityMention,
        ErasureReport,
        RunningSummary,
        SessionHead,
        SessionInfo,
        Turn,
        TurnDraft,
    )

__all__ = ["FoldCommit", "MemoryStore", "StorePlans", "check_ttl", "check_vectors"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def check_ttl(ttl_seconds: float | None) -> float | None:
    """Return ``ttl_seconds`` as a float if it is ``None`` or a positive finite number.

    Raises:
        ConfigError: Zero, negative, infinite or not a number.

    Example:
        >>> check_ttl(90)
        90.0
    """
    if ttl_seconds is None:
        return None
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, (int, float)):
        msg = f"ttl_seconds must be a number of seconds or None, got {type(ttl_seconds).__name__}"
        raise ConfigError(msg)
    if not math.isfinite(ttl_seconds) or ttl_seconds <= 0:
        msg = f"ttl_seconds must be > 0 and finite, got {ttl_seconds!r}"
        raise ConfigError(msg)
    return float(ttl_seconds)


def check_vectors(turn_ids: Sequence[int], vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as a float32 matrix with one row per turn id.

    Raises:
        InvalidInputError: ``vectors`` is not a matrix of numbers with one row per turn id.

    Example:
        >>> check_vectors([0, 1], np.eye(2)).dtype
        dtype('float32')
    """
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        msg = "vectors must be a matrix of numbers"
        raise InvalidInputError(msg) from exc
    if matrix.ndim != 2 or matrix.shape[0] != len(turn_ids):
        msg = f"expected one vector per turn id ({len(turn_ids)}), got shape {matrix.shape}"
        raise InvalidInputError(msg)
    return matrix


#: Sessions per page of :meth:`MemoryStore.list_all_sessions` unless told, and the most.
DEFAULT_PAGE, MAX_PAGE = 100, 1000


def _check_page(after: object, limit: object) -> None:
    """Refuse a page of :meth:`MemoryStore.list_all_sessions` that is not one."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        msg = f"limit must be a whole number from 1 to {MAX_PAGE}, got {limit!r}"
        raise InvalidInputError(msg)
    if after is not None and not isinstance(after, str):
        msg = f"after must be a session id (a string) or None, got {type(after).__name__}"
        raise InvalidInputError(msg)


@dataclass(frozen=True)
class FoldCommit:
    """A folded summary to write, and what goes with it in the same atomic write.

    Attributes:
        expected_version: The version the new summary was folded from: the write happens only
            if the stored summary is still at it.
        summary: The new summary.
        incarnation: When given, write only into this incarnation of the session.
        mentions: Entity facts the folded batch states, merged in the same write.
        holder: The fold lease the writer holds, released by the write.
    """

    expected_version: int
    summary: RunningSummary
    incarnation: str | None = None
    mentions: Sequence[EntityMention] = ()
    holder: str | None = None


class StorePlans(Protocol):
    """The operations of a store as plans: what a backend writes once for both drivers.

    Each method returns a plan of the backend's own requests; :class:`MemoryStore` documents
    what each operation does.
    """

    def append_turns(
        self,
        session_id: str,
        drafts: Sequence[TurnDraft],
        user_id: str | None,
        mentions: Sequence[EntityMention],
    ) -> Plan[Any, Appended]:
        """Plan of :meth:`MemoryStore.append_turns`."""
        ...

    def head(self, session_id: str) -> Plan[Any, SessionHead]:
        """Plan of :meth:`MemoryStore.head`."""
        ...

    def count_turns(self, session_id: str) -> Plan[Any, int]:
        """Plan of :meth:`MemoryStore.count_turns`."""
        ...

    def session_user(self, session_id: str) -> Plan[Any, str | None]:
        """Plan of :meth:`MemoryStore.session_user`."""
        ...

    def get_turns(self, session_id: str, start: int, stop: int | None) -> Plan[Any, list[Turn]]:
        """Plan of :meth:`MemoryStore.get_turns`."""
        ...

    def get_turns_by_ids(self, session_id: str, turn_ids: Sequence[int]) -> Plan[Any, list[Turn]]:
        """Plan of :meth:`MemoryStore.get_turns_by_ids`."""
        ...

    def list_sessions(self, user_id: str) -> Plan[Any, list[str]]:
        """Plan of :meth:`MemoryStore.list_sessions`."""
        ...

    def list_all_sessions(self, after: str | None, limit: int) -> Plan[Any, list[SessionInfo]]:
        """Plan of :meth:`MemoryStore.list_all_sessions`."""
        ...

    def get_entities(self, session_id: str) -> Plan[Any, dict[str, Entity]]:
        """Plan of :meth:`MemoryStore.get_entities`."""
        ...

    def merge_entities(
        self, session_id: str, mentions: Sequence[EntityMention], incarnation: str | None
    ) -> Plan[Any, bool]:
        """Plan of :meth:`MemoryStore.merge_entities`."""
        ...

    def compare_and_set_summary(self, session_id: str, commit: FoldCommit) -> Plan[Any, bool]:
        """Plan of :meth:`MemoryStore.compare_and_set_summary`."""
        ...

    def acquire_fold(
        self, session_id: str, incarnation: str, holder: str, seconds: float
    ) -> Plan[Any, bool]:
        """Plan of :meth:`MemoryStore.acquire_fold`."""
        ...

    def release_fold(self, session_id: str, holder: str, keep_seconds: float) -> Plan[Any, None]:
        """Plan of :meth:`MemoryStore.release_fold`."""
        ...

    def put_vectors(
        self, session_id: str, turn_ids: Sequence[int], vectors: np.ndarray, incarnation: str | None
    ) -> Plan[Any, bool]:
        """Plan of :meth:`MemoryStore.put_vectors`."""
        ...

    def get_vectors(
        self, session_id: str, start: int
    ) -> Plan[Any, tuple[list[int], np.ndarray | None]]:
        """Plan of :meth:`MemoryStore.get_vectors`."""
        ...

    def delete_session(self, session_id: str, incarnation: str | None) -> Plan[Any, ErasureReport]:
        """Plan of :meth:`MemoryStore.delete_session`."""
        ...

    def delete_user(self, user_id: str) -> Plan[Any, ErasureReport]:
        """Plan of :meth:`MemoryStore.delete_user`."""
        ...

    def purge_expired(self) -> Plan[Any, ErasureReport]:
        """Plan of :meth:`MemoryStore.purge_expired`."""
        ...


class MemoryStore(ABC):
    """Where sessions' turns, summaries, entities and vectors live.

    Every operation is defined here once, sync and async, over the backend's plans. Appends
    are atomic (ids without gaps or duplicates, even with several writers); a write that was
    not made raises :class:`~langchain_hybrid_memory.errors.StoreError`, never reports success.

    A backend implements :meth:`_read` and :meth:`_write` (run a plan in one read, or one
    write, with its sync client), their async twins :meth:`_aread` and :meth:`_awrite`, and
    :meth:`reencrypt` when it keeps anything at rest.
    """

    #: Short name used in error messages, e.g. ``"sqlite"``.
    name: str = "store"

    #: Seconds after its last write a session expires (``None``: never).
    ttl_seconds: float | None = None

    #: The backend's operations as plans.
    _plans: StorePlans

    # -- what a backend supplies ------------------------------------------------------------

    @abstractmethod
    def _read(
        self, make_plan: Callable[_P, Plan[Any, _R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        """Run the plan ``make_plan(*args)`` as one read."""

    @abstractmethod
    def _write(
        self, make_plan: Callable[_P, Plan[Any, _R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        """Run the plan ``make_plan(*args)`` as one atomic write."""

    @abstractmethod
    async def _aread(
        self, make_plan: Callable[_P, Plan[Any, _R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        """Async twin of :meth:`_read`."""

    @abstractmethod
    async def _awrite(
        self, make_plan: Callable[_P, Plan[Any, _R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        """Async twin of :meth:`_write`."""

    # -- turns -----------------------------------------------------------------------------

    def append_turns(
        self,
        session_id: str,
        drafts: Sequence[TurnDraft],
        *,
        user_id: str | None = None,
        mentions: Sequence[EntityMention] = (),
    ) -> Appended:
        """Store new turns at the end of a session, with the entity facts they state.

        Args:
            session_id: The session; created on first append (with a new incarnation).
            drafts: The messages to store, in order.
            user_id: The owner; a session without owner takes it, a session owned by someone
                else refuses the append.
            mentions: Entity facts said in these turns, merged into the session's entities in
                the same atomic write. Each mention's ``turn_id`` is the position of its turn
                in ``drafts``; the store replaces it with the turn's id.

        Returns:
            The stored turns and the session right after the append.

        Raises:
            SessionOwnershipError: The session belongs to another user; nothing stored.
            StoreError: Nothing was stored.
        """
        return self._write(self._plans.append_turns, session_id, drafts, user_id, mentions)

    async def aappend_turns(
        self,
        session_id: str,
        drafts: Sequence[TurnDraft],
        *,
        user_id: str | None = None,
        mentions: Sequence[EntityMention] = (),
    ) -> Appended:
        """Async twin of :meth:`append_turns`."""
        return await self._awrite(self._plans.append_turns, session_id, drafts, user_id, mentions)

    def head(self, session_id: str) -> SessionHead:
        """The session's incarnation, owner, turn count and summary, in one read."""
        return self._read(self._plans.head, session_id)

    async def ahead(self, session_id: str) -> SessionHead:
        """Async twin of :meth:`head`."""
        return await self._aread(self._plans.head, session_id)

    def count_turns(self, session_id: str) -> int:
        """How many turns the session has (which is also the next turn id).

        Like :meth:`session_user` and :meth:`list_sessions`, it reads no encrypted value, so it
        works with any key (or none).
        """
        return self._read(self._plans.count_turns, session_id)

    async def acount_turns(self, session_id: str) -> int:
        """Async twin of :meth:`count_turns`."""
        return await self._aread(self._plans.count_turns, session_id)

    def get_turns(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Turn]:
        """Turns with ``start <= id < stop`` (``stop=None``: to the end), in id order."""
        return self._read(self._plans.get_turns, session_id, start, stop)

    async def aget_turns(
        self, session_id: str, start: int = 0, stop: int | None = None
    ) -> list[Turn]:
        """Async twin of :meth:`get_turns`."""
        return await self._aread(self._plans.get_turns, session_id, start, stop)

    def get_turns_by_ids(self, session_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        """The turns with these ids that exist, in id order."""
        return self._read(self._plans.get_turns_by_ids, session_id, turn_ids)

    async def aget_turns_by_ids(self, session_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        """Async twin of :meth:`get_turns_by_ids`."""
        return await self._aread(self._plans.get_turns_by_ids, session_id, turn_ids)

    # -- sessions and users ----------------------------------------------------------------

    def session_user(self, session_id: str) -> str | None:
        """The user owning the session, or ``None``."""
        return self._read(self._plans.session_user, session_id)

    async def asession_user(self, session_id: str) -> str | None:
        """Async twin of :meth:`session_user`."""
        return await self._aread(self._plans.session_user, session_id)

    def list_sessions(self, user_id: str) -> list[str]:
        """The ids of the user's sessions, sorted."""
        return self._read(self._plans.list_sessions, user_id)

    async def alist_sessions(self, user_id: str) -> list[str]:
        """Async twin of :meth:`list_sessions`."""
        return await self._aread(self._plans.list_sessions, user_id)

    def list_all_sessions(
        self, *, after: str | None = None, limit: int = DEFAULT_PAGE
    ) -> list[SessionInfo]:
        """Every session, whoever owns it, in id order: one page of at most ``limit``.

        For a browser of the store (``hybrid-memory sessions``, the inspector): no turn is
        read but each listed session's last one (for its time). The next page starts after
        the last id of this one; an empty page is the end.

        Args:
            after: List only sessions whose id sorts after this one (``None``: from the first).
            limit: The most sessions to list (from 1 to 1000).

        Raises:
            InvalidInputError: ``limit`` is not a whole number from 1 to 1000, or ``after`` is
                not a string.
            DecryptionError: The store is encrypted and its key is not configured (the last
                turn's time is sealed with it).

        Example:
            >>> from langchain_hybrid_memory.stores import InMemoryStore
            >>> InMemoryStore().list_all_sessions(limit=10)
            []
        """
        _check_page(after, limit)
        return self._read(self._plans.list_all_sessions, after, limit)

    async def alist_all_sessions(
        self, *, after: str | None = None, limit: int = DEFAULT_PAGE
    ) -> list[SessionInfo]:
        """Async twin of :meth:`list_all_sessions`."""
        _check_page(after, limit)
        return await self._aread(self._plans.list_all_sessions, after, limit)

    # -- summary and entities --------------------------------------------------------------

    def get_summary(self, session_id: str) -> RunningSummary:
        """The session's rolling summary (an empty one at version 0 before the first fold)."""
        return self.head(session_id).summary

    async def aget_summary(self, session_id: str) -> RunningSummary:
        """Async twin of :meth:`get_summary`."""
        return (await self.ahead(session_id)).summary

    def compare_and_set_summary(
        self,
        session_id: str,
        expected_version: int,
        summary: RunningSummary,
        *,
        incarnation: str | None = None,
        mentions: Sequence[EntityMention] = (),
        holder: str | None = None,
    ) -> bool:
        """Replace the summary only if its stored version is ``expected_version``.

        Args:
            session_id: The session.
            expected_version: The version the new summary was folded from.
            summary: The new summary.
            incarnation: When given, write only into this incarnation of the session.
            mentions: Entity facts the folded batch states, merged in the same atomic write.
            holder: The fold lease this worker holds, released by the write.

        Returns:
            Whether the summary was written; ``False`` means another writer folded first, or
            the session is gone or another incarnation (nothing was written).
        """
        commit = FoldCommit(expected_version, summary, incarnation, mentions, holder)
        return self._write(self._plans.compare_and_set_summary, session_id, commit)

    async def acompare_and_set_summary(
        self,
        session_id: str,
        expected_version: int,
        summary: RunningSummary,
        *,
        incarnation: str | None = None,
        mentions: Sequence[EntityMention] = (),
        holder: str | None = None,
    ) -> bool:
        """Async twin of :meth:`compare_and_set_summary`."""
        commit = FoldCommit(expected_version, summary, incarnation, mentions, holder)
        return await self._awrite(self._plans.compare_and_set_summary, session_id, commit)

    def get_entities(self, session_id: str) -> dict[str, Entity]:
        """The session's entities, keyed by normalized name."""
        return self._read(self._plans.get_entities, session_id)

    async def aget_entities(self, session_id: str) -> dict[str, Entity]:
        """Async twin of :meth:`get_entities`."""
        return await self._aread(self._plans.get_entities, session_id)

    def get_user_entities(self, user_id: str) -> dict[str, dict[str, Entity]]:
        """The entities of each of the user's sessions: session id to entities by name.

        Every session of the user is a key (with no entities: an empty mapping). One read
        operation: the user's sessions, then their entities (two queries in SQL, three round
        trips on Redis, whatever the number of sessions).
        """
        return self._read(self._user_entities, user_id)

    async def aget_user_entities(self, user_id: str) -> dict[str, dict[str, Entity]]:
        """Async twin of :meth:`get_user_entities`."""
        return await self._aread(self._user_entities, user_id)

    def _user_entities(self, user_id: str) -> Plan[Any, dict[str, dict[str, Entity]]]:
        batched = getattr(self._plans, "get_user_entities", None)
        if batched is not None:  # the backend reads them all at once
            read: dict[str, dict[str, Entity]] = yield from batched(user_id)
            return read
        sessions = yield from self._plans.list_sessions(user_id)
        found: dict[str, dict[str, Entity]] = {}
        for session_id in sessions:
            found[session_id] = yield from self._plans.get_entities(session_id)
        return found

    def merge_entities(
        self,
        session_id: str,
        mentions: Sequence[EntityMention],
        *,
        incarnation: str | None = None,
    ) -> bool:
        """Merge entity facts into an existing session's entities, atomically (no lost update).

        See :func:`~langchain_hybrid_memory.entities.merge_mentions` for the merge rule.

        Returns:
            Whether the session exists (and is ``incarnation``, when given); ``False``: nothing
            was written.
        """
        return self._write(self._plans.merge_entities, session_id, mentions, incarnation)

    async def amerge_entities(
        self,
        session_id: str,
        mentions: Sequence[EntityMention],
        *,
        incarnation: str | None = None,
    ) -> bool:
        """Async twin of :meth:`merge_entities`."""
        return await self._awrite(self._plans.merge_entities, session_id, mentions, incarnation)

    # -- folding ---------------------------------------------------------------------------

    def acquire_fold(self, session_id: str, incarnation: str, holder: str, seconds: float) -> bool:
        """Take the session's fold lease for ``seconds``, unless another worker holds it.

        Args:
            session_id: The session about to be summarized.
            incarnation: The incarnation the batch was read from.
            holder: A token naming this attempt (released with it).
            seconds: How long the lease lasts unless released.

        Returns:
            Whether this worker may fold: the lease was free (or had expired) and the session
            is still ``incarnation``.
        """
        return self._write(self._plans.acquire_fold, session_id, incarnation, holder, seconds)

    async def aacquire_fold(
        self, session_id: str, incarnation: str, holder: str, seconds: float
    ) -> bool:
        """Async twin of :meth:`acquire_fold`."""
        return await self._awrite(
            self._plans.acquire_fold, session_id, incarnation, holder, seconds
        )

    def release_fold(self, session_id: str, holder: str, *, keep_seconds: float = 0.0) -> None:
        """Give up the fold lease ``holder`` holds (nothing if it holds none).

        Args:
            session_id: The session.
            holder: The token the lease was taken with.
            keep_seconds: Keep the lease this much longer instead (after a failed fold, so no
                worker retries before the back-off has passed).
        """
        self._write(self._plans.release_fold, session_id, holder, keep_seconds)

    async def arelease_fold(
        self, session_id: str, holder: str, *, keep_seconds: float = 0.0
    ) -> None:
        """Async twin of :meth:`release_fold`."""
        await self._awrite(self._plans.release_fold, session_id, holder, keep_seconds)

    # -- vectors ---------------------------------------------------------------------------

    def put_vectors(
        self,
        session_id: str,
        turn_ids: Sequence[int],
        vectors: np.ndarray,
        *,
        incarnation: str | None = None,
    ) -> bool:
        """Store one float32 vector per turn id (rows of ``vectors``); a turn keeps its first.

        Returns:
            Whether the session exists (and is ``incarnation``, when given); ``False``: nothing
            was written.
        """
        return self._write(self._plans.put_vectors, session_id, turn_ids, vectors, incarnation)

    async def aput_vectors(
        self,
        session_id: str,
        turn_ids: Sequence[int],
        vectors: np.ndarray,
        *,
        incarnation: str | None = None,
    ) -> bool:
        """Async twin of :meth:`put_vectors`."""
        return await self._awrite(
            self._plans.put_vectors, session_id, turn_ids, vectors, incarnation
        )

    def get_vectors(self, session_id: str, start: int = 0) -> tuple[list[int], np.ndarray | None]:
        """Vectors of turns with ``id >= start``: their ids and a float32 matrix (or ``None``)."""
        return self._read(self._plans.get_vectors, session_id, start)

    async def aget_vectors(
        self, session_id: str, start: int = 0
    ) -> tuple[list[int], np.ndarray | None]:
        """Async twin of :meth:`get_vectors`."""
        return await self._aread(self._plans.get_vectors, session_id, start)

    # -- erasure ---------------------------------------------------------------------------

    def delete_session(self, session_id: str, *, incarnation: str | None = None) -> ErasureReport:
        """Remove every trace of the session and report what was removed.

        Args:
            session_id: The session.
            incarnation: When given, remove the session only if it is still this incarnation
                (the one whose owner the caller checked), never a newer one.
        """
        return self._write(self._plans.delete_session, session_id, incarnation)

    async def adelete_session(
        self, session_id: str, *, incarnation: str | None = None
    ) -> ErasureReport:
        """Async twin of :meth:`delete_session`."""
        return await self._awrite(self._plans.delete_session, session_id, incarnation)

    def delete_user(self, user_id: str) -> ErasureReport:
        """Remove every session of the user and report what was removed."""
        return self._write(self._plans.delete_user, user_id)

    async def adelete_user(self, user_id: str) -> ErasureReport:
        """Async twin of :meth:`delete_user`."""
        return await self._awrite(self._plans.delete_user, user_id)

    def purge_expired(self) -> ErasureReport:
        """Remove every session whose TTL has passed and report what was removed.

        Stores whose server expires data itself (Redis) have nothing left to purge.
        """
        return self._write(self._plans.purge_expired)

    async def apurge_expired(self) -> ErasureReport:
        """Async twin of :meth:`purge_expired`."""
        return await self._awrite(self._plans.purge_expired)

    # -- key rotation and lifecycle --------------------------------------------------------

    def reencrypt(self) -> int:
        """Re-encrypt every stored value under the first encryption key; how many were rewritten.

        For key rotation: open the store with ``encryption_key=[new_key, old_key, ...]``, run
        this, then drop the old keys. Encrypted turns, summaries, entities and vectors move to
        the first key (values already under it are left alone, so a second run rewrites
        nothing); plain ones are encrypted (vectors only with ``encrypt_vectors``), which
        encrypts a store written without a key. Each value is replaced on its own, atomically,
        and only if it did not change since it was read, so the store stays in use meanwhile.

        A store that keeps nothing at rest (:class:`InMemoryStore`) has nothing to rewrite: 0.

        Raises:
            ConfigError: The store has no encryption key.
            DecryptionError: A value no configured key opens (it is left as it is).
        """
        return 0

    async def areencrypt(self) -> int:
        """Async twin of :meth:`reencrypt` (a maintenance job: it runs in a worker thread)."""
        return await asyncio.to_thread(self.reencrypt)

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing to close
        """Release connections; the store is unusable afterwards."""

    async def aclose(self) -> None:
        """Release every connection, the async clients' too; the store is unusable afterwards."""
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
