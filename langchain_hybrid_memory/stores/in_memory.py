"""A store in this process's memory: for tests, notebooks and single-process bots."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from langchain_hybrid_memory.errors import SessionOwnershipError
from langchain_hybrid_memory.stores.base import MemoryStore, check_ttl, check_vectors
from langchain_hybrid_memory.types import ErasureReport, RunningSummary, Turn

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_hybrid_memory.types import Entity, TurnDraft

__all__ = ["InMemoryStore"]


@dataclass
class _Session:
    user_id: str | None = None
    turns: list[Turn] = field(default_factory=list)
    summary: RunningSummary = field(default_factory=RunningSummary)
    entities: dict[str, Entity] = field(default_factory=dict)
    vector_ids: list[int] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    expires_at: float | None = None  # time.monotonic() seconds

    def report(self, session_id: str) -> ErasureReport:
        return ErasureReport(
            sessions=(session_id,),
            turns=len(self.turns),
            vectors=len(self.vector_ids),
            summaries=int(self.summary.version > 0),
            entities=len(self.entities),
        )


class InMemoryStore(MemoryStore):
    """Keeps everything in dictionaries of this process; thread-safe, gone at exit.

    Not persistent: nothing is written anywhere, so there is nothing to encrypt at rest (the
    persistent stores take ``encryption_key``); :meth:`reencrypt` rewrites nothing.

    Args:
        ttl_seconds: A session expires this long after its last write (``None``: never); it is
            dropped when next accessed or by :meth:`purge_expired`.

    Example:
        >>> from datetime import datetime, timezone
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_hybrid_memory.types import TurnDraft
        >>> store = InMemoryStore()
        >>> turns = store.append_turns("s1", [TurnDraft(HumanMessage("hi"), "hi", datetime.now(timezone.utc))])
        >>> turns[0].id, store.count_turns("s1")
        (0, 1)
    """

    name = "memory"

    def __init__(self, *, ttl_seconds: float | None = None) -> None:
        self.ttl_seconds = check_ttl(ttl_seconds)
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.RLock()

    def _live(self, session_id: str) -> _Session | None:
        """The session unless it is unknown or expired (an expired one is dropped). Hold the lock."""
        session = self._sessions.get(session_id)
        if session is not None and _expired(session, time.monotonic()):
            del self._sessions[session_id]
            return None
        return session

    def _touch(self, session: _Session) -> None:
        ttl = self.ttl_seconds
        session.expires_at = None if ttl is None else time.monotonic() + ttl

    def append_turns(
        self, session_id: str, drafts: Sequence[TurnDraft], *, user_id: str | None = None
    ) -> list[Turn]:
        """Store new turns at the end of a session (see :class:`MemoryStore`)."""
        with self._lock:
            session = self._live(session_id) or _Session()
            if user_id is not None and session.user_id not in (None, user_id):
                msg = f"session {session_id!r} belongs to another user"
                raise SessionOwnershipError(msg)
            first = len(session.turns)
            turns = [
                Turn(session_id, first + i, draft.message, draft.text, draft.timestamp)
                for i, draft in enumerate(drafts)
            ]
            session.turns.extend(turns)
            if user_id is not None:
                session.user_id = user_id
            self._touch(session)
            self._sessions[session_id] = session
            return turns

    def count_turns(self, session_id: str) -> int:
        """How many turns the session has."""
        with self._lock:
            session = self._live(session_id)
            return len(session.turns) if session else 0

    def get_turns(self, session_id: str, start: int = 0, stop: int | None = None) -> list[Turn]:
        """Turns with ``start <= id < stop``."""
        with self._lock:
            session = self._live(session_id)
            return session.turns[max(0, start) : stop] if session else []

    def get_turns_by_ids(self, session_id: str, turn_ids: Sequence[int]) -> list[Turn]:
        """The existing turns with these ids, in id order."""
        with self._lock:
            session = self._live(session_id)
            if session is None:
                return []
            count = len(session.turns)
            return [session.turns[i] for i in sorted(set(turn_ids)) if 0 <= i < count]

    def session_user(self, session_id: str) -> str | None:
        """The session's owner."""
        with self._lock:
            session = self._live(session_id)
            return session.user_id if session else None

    def list_sessions(self, user_id: str) -> list[str]:
        """The user's session ids, sorted."""
        with self._lock:
            owned = [s for s, session in self._sessions.items() if session.user_id == user_id]
            return sorted(s for s in owned if self._live(s) is not None)

    def get_summary(self, session_id: str) -> RunningSummary:
        """The session's rolling summary."""
        with self._lock:
            session = self._live(session_id)
            return session.summary if session else RunningSummary()

    def compare_and_set_summary(
        self, session_id: str, expected_version: int, summary: RunningSummary
    ) -> bool:
        """Replace the summary if its version is still ``expected_version``."""
        with self._lock:
            session = self._live(session_id)
            if session is None or session.summary.version != expected_version:
                return False
            session.summary = summary
            self._touch(session)
            return True

    def get_entities(self, session_id: str) -> dict[str, Entity]:
        """The session's entities by normalized name."""
        with self._lock:
            session = self._live(session_id)
            return dict(session.entities) if session else {}

    def put_entities(self, session_id: str, entities: Sequence[Entity]) -> None:
        """Insert or replace entities."""
        with self._lock:
            session = self._live(session_id)
            if session is not None:
                session.entities.update((entity.key, entity) for entity in entities)
                self._touch(session)

    def put_vectors(self, session_id: str, turn_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store one float32 vector per turn id."""
        matrix = check_vectors(turn_ids, vectors)
        with self._lock:
            session = self._live(session_id)
            if session is None:
                return
            ids = session.vector_ids
            for turn_id, row in zip(turn_ids, matrix, strict=True):
                if not ids or turn_id > ids[-1]:  # the usual case: newer than every stored one
                    ids.append(turn_id)
                    session.vectors.append(row.copy())
                    continue
                position = bisect_left(ids, turn_id)
                if ids[position] != turn_id:
                    ids.insert(position, turn_id)
                    session.vectors.insert(position, row.copy())
            self._touch(session)

    def get_vectors(self, session_id: str, start: int = 0) -> tuple[list[int], np.ndarray | None]:
        """Vectors of turns with ``id >= start``."""
        with self._lock:
            session = self._live(session_id)
            if session is None:
                return [], None
            first = bisect_left(session.vector_ids, start)
            ids = session.vector_ids[first:]
            if not ids:
                return [], None
            return list(ids), np.stack(session.vectors[first:])

    def delete_session(self, session_id: str) -> ErasureReport:
        """Remove the session and report what it held."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        return ErasureReport() if session is None else session.report(session_id)

    def purge_expired(self) -> ErasureReport:
        """Drop every expired session and report what it held."""
        now = time.monotonic()
        with self._lock:
            expired = sorted(s for s, session in self._sessions.items() if _expired(session, now))
            gone = [(s, self._sessions.pop(s)) for s in expired]
        report = ErasureReport()
        for session_id, session in gone:
            report += session.report(session_id)
        return report


def _expired(session: _Session, now: float) -> bool:
    return session.expires_at is not None and session.expires_at <= now
