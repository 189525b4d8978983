"""A store in this process's memory: for tests, notebooks and single-process bots."""

from __future__ import annotations

import threading
import time
import uuid
from bisect import bisect_left
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np

from langchain_hybrid_memory._plans import run_plan
from langchain_hybrid_memory.entities import merge_mentions
from langchain_hybrid_memory.errors import SessionOwnershipError
from langchain_hybrid_memory.stores.base import MemoryStore, check_ttl, check_vectors
from langchain_hybrid_memory.types import (
    Appended,
    ErasureReport,
    RunningSummary,
    SessionHead,
    SessionInfo,
    Turn,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from langchain_hybrid_memory._plans import Plan
    from langchain_hybrid_memory.stores.base import FoldCommit
    from langchain_hybrid_memory.types import Entity, EntityMention, TurnDraft

__all__ = ["InMemoryStore"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass
class _Session:
    incarnation: str = field(default_factory=lambda: uuid.uuid4().hex)
    user_id: str | None = None
    turns: list[Turn] = field(default_factory=list)
    summary: RunningSummary = field(default_factory=RunningSummary)
    entities: dict[str, Entity] = field(default_factory=dict)
    vector_ids: list[int] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    expires_at: float | None = None  # time.monotonic() seconds
    fold_holder: str | None = None
    fold_until: float = 0.0  # time.monotonic() seconds

    def head(self) -> SessionHead:
        return SessionHead(self.incarnation, self.user_id, len(self.turns), self.summary)

    def report(self, session_id: str) -> ErasureReport:
        return ErasureReport(
            sessions=(session_id,),
            turns=len(self.turns),
            vectors=len(self.vector_ids),
            summaries=int(self.summary.version > 0),
            entities=len(self.entities),
        )


class _Sessions:
    """The store's data, as its plans see it (only ever touched under the store's lock)."""

    def __init__(self, ttl_seconds: float | None) -> None:
        self.ttl_seconds = ttl_seconds
        self.by_id: dict[str, _Session] = {}

    def live(self, session_id: str, incarnation: str | None = None) -> _Session | None:
        """The session unless it is unknown, expired (then dropped) or another incarnation."""
        session = self.by_id.get(session_id)
        if session is not None and _expired(session, time.monotonic()):
            del self.by_id[session_id]
            return None
        if session is not None and incarnation is not None and session.incarnation != incarnation:
            return None
        return session

    def touch(self, session: _Session) -> None:
        ttl = self.ttl_seconds
        session.expires_at = None if ttl is None else time.monotonic() + ttl

    def drop(self, session_ids: Sequence[str]) -> ErasureReport:
        report = ErasureReport()
        for session_id in session_ids:
            session = self.by_id.pop(session_id, None)
            if session is not None:
                report += session.report(session_id)
        return report


class _InMemoryPlans:
    """Every store operation as a plan whose one request is "the sessions, locked"."""

    def append_turns(
        self,
        session_id: str,
        drafts: Sequence[TurnDraft],
        user_id: str | None,
        mentions: Sequence[EntityMention],
    ) -> Plan[None, Appended]:
        sessions: _Sessions = yield None
        session = sessions.live(session_id) or _Session()
        if user_id is not None and session.user_id not in (None, user_id):
            msg = f"session {session_id!r} belongs to another user"
            raise SessionOwnershipError(msg)
        first = len(session.turns)
        turns = [
            Turn(session_id, first + i, _copy(draft.message), draft.text, draft.timestamp)
            for i, draft in enumerate(drafts)
        ]
        session.turns.extend(turns)
        if user_id is not None:
            session.user_id = user_id
        _merge(session, [replace(m, turn_id=first + (m.turn_id or 0)) for m in mentions])
        sessions.touch(session)
        sessions.by_id[session_id] = session
        return Appended(turns, session.head())

    def head(self, session_id: str) -> Plan[None, SessionHead]:
        sessions: _Sessions = yield None
        session = sessions.live(session_id)
        return SessionHead() if session is None else session.head()

    def count_turns(self, session_id: str) -> Plan[None, int]:
        sessions: _Sessions = yield None
        session = sessions.live(session_id)
        return len(session.turns) if session else 0

    def session_user(self, session_id: str) -> Plan[None, str | None]:
        sessions: _Sessions = yield None
        session = sessions.live(session_id)
        return session.user_id if session else None

    def get_turns(self, session_id: str, start: int, stop: int | None) -> Plan[None, list[Turn]]:
        sessions: _Sessions = yield None
        session = sessions.live(session_id)
        return session.turns[max(0, start) : stop] if session else []

    def get_turns_by_ids(self, session_id: str, turn_ids: Sequence[int]) -> Plan[None, list[Turn]]:
        sessions: _Sessions = yield None
        session = sessions.live(session_id)
        if session is None:
            return []
        count = len(session.turns)
        return [session.turns[i] for i in sorted(set(turn_ids)) if 0 <= i < count]

    def list_sessions(self, user_id: str) -> Plan[None, list[str]]:
        sessions: _Sessions = yield None
        owned = [s for s, session in sessions.by_id.items() if session.user_id == user_id]
        return sorted(s for s in owned if sessions.live(s) is not None)

    def list_all_sessions(self, after: str | None, limit: int) -> Plan[None, list[SessionInfo]]:
        sessions: _Sessions = yield None
        ids = sorted(s for s in sessions.by_id if after is None or s > after)
        page: list[SessionInfo] = []
        for session_id in ids:
            session = sessions.live(session_id)
            if session is not None:
                last = session.turns[-1].timestamp if session.turns else None
                page.append(SessionInfo(session_id, session.user_id, len(session.turns), last))
            if len(page) == limit:
                break
        return page

    def get_entities(self, session_id: str) -> Plan[None, dict[str, Entity]]:
        sessions: _Sessions = yield None
        session = sessions.live(session_id)
        return dict(session.entities) if session else {}

    def merge_entities(
        self, session_id: str, mentions: Sequence[EntityMention], incarnation: str | None
    ) -> Plan[None, bool]:
        sessions: _Sessions = yield None
        session = sessions.live(session_id, incarnation)
        if session is None:
            return False
        _merge(session, mentions)
        sessions.touch(session)
        return True

    def compare_and_set_summary(self, session_id: str, commit: FoldCommit) -> Plan[None, bool]:
        sessions: _Sessions = yield None
        session = sessions.live(session_id, commit.incarnation)
        if session is None:
            return False
        if commit.holder is not None and session.fold_holder == commit.holder:
            session.fold_holder, session.fold_until = None, 0.0
        if session.summary.version != commit.expected_version:
            return False
        session.summary = commit.summary
        _merge(session, commit.mentions)
        sessions.touch(session)
        return True

    def acquire_fold(
        self, session_id: str, incarnation: str, holder: str, seconds: float
    ) -> Plan[None, bool]:
        sessions: _Sessions = yield None
        session = sessions.live(session_id, incarnation)
        now = time.monotonic()
        if session is None or (session.fold_holder is not None and session.fold_until > now):
            return False
        session.fold_holder, session.fold_until = holder, now + seconds
        return True

    def release_fold(self, session_id: str, holder: str, keep_seconds: float) -> Plan[None, None]:
        sessions: _Sessions = yield None
        session = sessions.live(session_id)
        if session is None or session.fold_holder != holder:
            return
        if keep_seconds > 0:
            session.fold_until = time.monotonic() + keep_seconds
        else:
            session.fold_holder, session.fold_until = None, 0.0

    def put_vectors(
        self,
        session_id: str,
        turn_ids: Sequence[int],
        vectors: np.ndarray,
        incarnation: str | None,
    ) -> Plan[None, bool]:
        matrix = check_vectors(turn_ids, vectors)
        sessions: _Sessions = yield None
        session = sessions.live(session_id, incarnation)
        if session is None:
            return False
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
        sessions.touch(session)
        return True

    def get_vectors(
        self, session_id: str, start: int
    ) -> Plan[None, tuple[list[int], np.ndarray | None]]:
        sessions: _Sessions = yield None
        session = sessions.live(session_id)
        if session is None:
            return [], None
        first = bisect_left(session.vector_ids, start)
        ids = session.vector_ids[first:]
        if not ids:
            return [], None
        return list(ids), np.stack(session.vectors[first:])

    def delete_session(self, session_id: str, incarnation: str | None) -> Plan[None, ErasureReport]:
        sessions: _Sessions = yield None
        if sessions.live(session_id, incarnation) is None:
            return ErasureReport()
        return sessions.drop([session_id])

    def delete_user(self, user_id: str) -> Plan[None, ErasureReport]:
        sessions: _Sessions = yield None
        return sessions.drop(sorted(s for s, v in sessions.by_id.items() if v.user_id == user_id))

    def purge_expired(self) -> Plan[None, ErasureReport]:
        sessions: _Sessions = yield None
        now = time.monotonic()
        return sessions.drop(sorted(s for s, v in sessions.by_id.items() if _expired(v, now)))


class InMemoryStore(MemoryStore):
    """Keeps everything in dictionaries of this process; thread-safe, gone at exit.

    Not persistent: nothing is written anywhere, so there is nothing to encrypt at rest (the
    persistent stores take ``encryption_key``); :meth:`reencrypt` rewrites nothing. Messages are
    copied when stored, so changing a message object after storing it changes nothing stored.
    The turns it returns share the stored messages (a context reads tens of them, copying would
    cost more than the rest of its work): treat them as read-only.

    Args:
        ttl_seconds: A session expires this long after its last write (``None``: never); it is
            dropped when next accessed or by :meth:`purge_expired`.

    Example:
        >>> from datetime import datetime, timezone
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_hybrid_memory.types import TurnDraft
        >>> store = InMemoryStore()
        >>> appended = store.append_turns("s1", [TurnDraft(HumanMessage("hi"), "hi", datetime.now(timezone.utc))])
        >>> appended.turns[0].id, store.count_turns("s1")
        (0, 1)
    """

    name = "memory"

    def __init__(self, *, ttl_seconds: float | None = None) -> None:
        self.ttl_seconds = check_ttl(ttl_seconds)
        self._plans = _InMemoryPlans()
        self._sessions = _Sessions(self.ttl_seconds)
        self._lock = threading.RLock()

    def _read(
        self, make_plan: Callable[_P, Plan[Any, _R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        with self._lock:
            return run_plan(make_plan(*args, **kwargs), lambda _: self._sessions)

    _write = _read

    async def _aread(
        self, make_plan: Callable[_P, Plan[Any, _R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        return self._read(make_plan, *args, **kwargs)  # no I/O: nothing to wait for

    _awrite = _aread


def _merge(session: _Session, mentions: Sequence[EntityMention]) -> None:
    session.entities.update(merge_mentions(session.entities, mentions))


def _copy(message: Any) -> Any:
    """A deep copy: later changes to the caller's message never reach the store."""
    return message.model_copy(deep=True)


def _expired(session: _Session, now: float) -> bool:
    return session.expires_at is not None and session.expires_at <= now
