"""The persistence boundary: everything the engine keeps goes through a :class:`MemoryStore`.

A store keeps, per session: the turns (ids assigned by the store, from 0, without gaps), the
owning user, the rolling summary (updated with a compare-and-set), the entities, and one float32
vector per embedded turn. Methods are synchronous; each has an async twin that, by default, runs
the synchronous method in the event loop's executor. A backend with a native async client
overrides the twins.

Expiry: a store built with ``ttl_seconds`` lets a session expire that many seconds after its
last write (every write slides it); an expired session reads as unknown (empty values) and its
data is removed, by the server (Redis), on access, or by :meth:`MemoryStore.purge_expired`.
"""

from __future__ import annotations

import asyncio
import functools
import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np

from langchain_hybrid_memory.errors import ConfigError
from langchain_hybrid_memory.types import ErasureReport

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from langchain_hybrid_memory.types import Entity, RunningSummary, Turn, TurnDraft

__all__ = ["MemoryStore", "check_ttl", "check_vectors"]

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
        ValueError: ``vectors`` is not a matrix with one row per turn id.

    Example:
        >>> check_vectors([0, 1], np.eye(2)).dtype
        dtype('float32')
    """
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(turn_ids):
        msg = f"expected one vector per turn id ({len(turn_ids)}), got shape {matrix.shape}"
        raise ValueError(msg)
    return matrix


async def _in_executor(function: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(function, *args, **kwargs))


class MemoryStore(ABC):
    """Where sessions' turns, summaries, entities and vectors live.

    Implementations must make :meth:`append_turns` atomic (ids without gaps or duplicates, even
    with several writers) and must raise :class:`~langchain_hybrid_memory.errors.StoreError`
    rather than report success for data that was not written.
    """

    #: Short name used in error messages, e.g. ``"sqlite"``.
    name: str = "store"

    #: Seconds after its last write a session expires (``None``: never).
    ttl_seconds: float | None = None

    # -- turns -----------------------------------------------------------------------------

    @abstractmethod
    def append_turns(
        self, session_id: str, drafts: Sequence[TurnDraft], *, user_id: str | None = None
    ) -> list[Turn]:
        """Store new turns at the end of a session and return them with their ids.

        Args:
            session_id: The session; created on first append.
            drafts: The messages to store, in order.
            user_id: The owner; a session without owner takes it, a session owned by someone
                else refuses the append.

        Raises:
            SessionOwnershipError: The session belongs to another user.
            StoreError: Nothing was stored.
        """

    @abstractmethod
    def count_turns(self, session_id: str) -> int:
        """How many turns the session has (which is also the next turn id)."""

    @abstractmethod
    def get_turns(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Turn]:
        """Turns with ``start <= id < stop`` (``stop=None``: to the end), in id order."""

    @abstractmethod
    def get_turns_by_ids(self, session_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        """The turns with these ids that exist, in id order."""

    # -- sessions and users ----------------------------------------------------------------

    @abstractmethod
    def session_user(self, session_id: str) -> str | None:
        """The user owning the session, or ``None``."""

    @abstractmethod
    def list_sessions(self, user_id: str) -> list[str]:
        """The ids of the user's sessions, sorted."""

    # -- summary and entities --------------------------------------------------------------

    @abstractmethod
    def get_summary(self, session_id: str) -> RunningSummary:
        """The session's rolling summary (an empty one at version 0 before the first fold)."""

    @abstractmethod
    def compare_and_set_summary(
        self, session_id: str, expected_version: int, summary: RunningSummary
    ) -> bool:
        """Replace the summary only if its stored version is ``expected_version``.

        Returns:
            Whether the summary was written; ``False`` means another writer folded first.
        """

    @abstractmethod
    def get_entities(self, session_id: str) -> dict[str, Entity]:
        """The session's entities, keyed by normalized name."""

    @abstractmethod
    def put_entities(self, session_id: str, entities: Sequence[Entity]) -> None:
        """Insert or replace entities (matched by normalized name)."""

    # -- vectors ---------------------------------------------------------------------------

    @abstractmethod
    def put_vectors(self, session_id: str, turn_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store one float32 vector per turn id (rows of ``vectors``)."""

    @abstractmethod
    def get_vectors(self, session_id: str, start: int = 0) -> tuple[list[int], np.ndarray | None]:
        """Vectors of turns with ``id >= start``: their ids and a float32 matrix (or ``None``)."""

    # -- erasure ---------------------------------------------------------------------------

    @abstractmethod
    def delete_session(self, session_id: str) -> ErasureReport:
        """Remove every trace of the session and report what was removed."""

    def delete_user(self, user_id: str) -> ErasureReport:
        """Remove every session of the user and report what was removed."""
        report = ErasureReport()
        for session_id in self.list_sessions(user_id):
            report += self.delete_session(session_id)
        return report

    def purge_expired(self) -> ErasureReport:
        """Remove every session whose TTL has passed and report what was removed.

        Stores whose server expires data itself (Redis) have nothing left to purge.
        """
        return ErasureReport()

    def reencrypt(self) -> int:
        """Re-seal every stored value under the first encryption key; how many were rewritten.

        For key rotation: open the store with ``encryption_key=[new_key, old_key, ...]``, run
        this, then drop the old keys. Sealed turns, summaries, entities and vectors move to the
        first key (values already under it are left alone, so a second run rewrites nothing);
        plain ones are sealed (vectors only with ``encrypt_vectors``), which encrypts a store
        written without a key. Each value is replaced on its own, atomically, and only if it did
        not change since it was read, so the store stays in use meanwhile.

        A store that keeps nothing at rest (:class:`InMemoryStore`) has nothing to rewrite: 0.

        Raises:
            ConfigError: The store has no encryption key.
            DecryptionError: A value no configured key opens (it is left as it is).
        """
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing to close
        """Release connections; the store is unusable afterwards."""

    # -- async twins -----------------------------------------------------------------------

    async def aappend_turns(
        self, session_id: str, drafts: Sequence[TurnDraft], *, user_id: str | None = None
    ) -> list[Turn]:
        """Async twin of :meth:`append_turns`."""
        return await _in_executor(self.append_turns, session_id, drafts, user_id=user_id)

    async def acount_turns(self, session_id: str) -> int:
        """Async twin of :meth:`count_turns`."""
        return await _in_executor(self.count_turns, session_id)

    async def aget_turns(
        self, session_id: str, start: int = 0, stop: int | None = None
    ) -> list[Turn]:
        """Async twin of :meth:`get_turns`."""
        return await _in_executor(self.get_turns, session_id, start, stop)

    async def aget_turns_by_ids(self, session_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        """Async twin of :meth:`get_turns_by_ids`."""
        return await _in_executor(self.get_turns_by_ids, session_id, turn_ids)

    async def asession_user(self, session_id: str) -> str | None:
        """Async twin of :meth:`session_user`."""
        return await _in_executor(self.session_user, session_id)

    async def alist_sessions(self, user_id: str) -> list[str]:
        """Async twin of :meth:`list_sessions`."""
        return await _in_executor(self.list_sessions, user_id)

    async def aget_summary(self, session_id: str) -> RunningSummary:
        """Async twin of :meth:`get_summary`."""
        return await _in_executor(self.get_summary, session_id)

    async def acompare_and_set_summary(
        self, session_id: str, expected_version: int, summary: RunningSummary
    ) -> bool:
        """Async twin of :meth:`compare_and_set_summary`."""
        return await _in_executor(
            self.compare_and_set_summary, session_id, expected_version, summary
        )

    async def aget_entities(self, session_id: str) -> dict[str, Entity]:
        """Async twin of :meth:`get_entities`."""
        return await _in_executor(self.get_entities, session_id)

    async def aput_entities(self, session_id: str, entities: Sequence[Entity]) -> None:
        """Async twin of :meth:`put_entities`."""
        await _in_executor(self.put_entities, session_id, entities)

    async def aput_vectors(
        self, session_id: str, turn_ids: Sequence[int], vectors: np.ndarray
    ) -> None:
        """Async twin of :meth:`put_vectors`."""
        await _in_executor(self.put_vectors, session_id, turn_ids, vectors)

    async def aget_vectors(
        self, session_id: str, start: int = 0
    ) -> tuple[list[int], np.ndarray | None]:
        """Async twin of :meth:`get_vectors`."""
        return await _in_executor(self.get_vectors, session_id, start)

    async def adelete_session(self, session_id: str) -> ErasureReport:
        """Async twin of :meth:`delete_session`."""
        return await _in_executor(self.delete_session, session_id)

    async def adelete_user(self, user_id: str) -> ErasureReport:
        """Async twin of :meth:`delete_user`."""
        return await _in_executor(self.delete_user, user_id)

    async def apurge_expired(self) -> ErasureReport:
        """Async twin of :meth:`purge_expired`."""
        return await _in_executor(self.purge_expired)

    async def areencrypt(self) -> int:
        """Async twin of :meth:`reencrypt`."""
        return await _in_executor(self.reencrypt)

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        await _in_executor(self.close)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
