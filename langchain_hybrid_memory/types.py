"""Value objects shared by the engine, the stores and the adapters.

All of them are frozen: a value handed to a caller cannot change under it. The context a
prompt receives, :class:`~langchain_hybrid_memory.context.MemoryContext`, lives with its
rendering in :mod:`~langchain_hybrid_memory.context`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from langchain_core.messages import BaseMessage

__all__ = [
    "Appended",
    "Entity",
    "EntityFact",
    "EntityMention",
    "ErasureReport",
    "FactStatement",
    "FactValue",
    "RecalledTurn",
    "RunningSummary",
    "SessionHead",
    "SessionInfo",
    "Turn",
    "TurnDraft",
]


class TurnDraft(NamedTuple):
    """A message about to be stored: the store assigns its turn id."""

    message: BaseMessage
    text: str
    timestamp: datetime


@dataclass(frozen=True)
class Turn:
    """One stored message of a session.

    Attributes:
        session_id: The session the turn belongs to.
        id: Position of the turn in its session, from 0, without gaps.
        message: The LangChain message exactly as it was added.
        text: The searchable text of the message (its text parts; empty for a pure tool call).
        timestamp: When the message was said (timezone-aware, UTC by default).
    """

    session_id: str
    id: int
    message: BaseMessage
    text: str
    timestamp: datetime

    @property
    def role(self) -> str:
        """The message type: ``"human"``, ``"ai"``, ``"tool"`` or ``"system"``."""
        return self.message.type

    @property
    def speaker(self) -> str:
        """The message's ``name`` when it has one, else a label for its role."""
        return self.message.name or _ROLE_LABELS.get(self.message.type, self.message.type)


_ROLE_LABELS = {"human": "User", "ai": "Assistant", "tool": "Tool", "system": "System"}


@dataclass(frozen=True)
class FactStatement:
    """One saying about an entity's attribute: a value, or ``None`` for a retraction.

    Attributes:
        when: When it was said.
        value: The value said (``None``: the attribute no longer holds).
        session_id: The session that said it (``None`` in a session's own record).
        turn_id: The turn that said it, in that session (``None``: no turn).
    """

    when: datetime
    value: str | None
    session_id: str | None = None
    turn_id: int | None = None


@dataclass(frozen=True)
class FactValue:
    """A value an attribute held for a while: an earlier value of an :class:`EntityFact`.

    Attributes:
        value: The value.
        since: When it was first said.
        until: When it stopped holding: a different value was said, or it was retracted.
        said_at: When it was last said (saying it again refreshes it).
        session_id: The session that last said it (``None`` when unknown).
        turn_id: The turn that last said it, in that session.
    """

    value: str
    since: datetime
    until: datetime
    said_at: datetime
    session_id: str | None = None
    turn_id: int | None = None


@dataclass(frozen=True)
class EntityFact:
    """One attribute of an entity: its value, where and when it was said, and its history.

    Attributes:
        value: The latest value said (current unless ``ended_at`` is set).
        turn_id: The turn that last said it.
        timestamp: When it was last said (saying the same value again refreshes it).
        session_id: The session that last said it (``None`` when unknown).
        since: When this value was first said (``None``: as ``timestamp``).
        ended_at: When the value was retracted (no value holds since); ``None``: it holds.
        history: The earlier values, oldest first, each with when it held.

    Example:
        >>> from datetime import datetime
        >>> fact = EntityFact("Lisbon", 7, datetime(2026, 5, 2))
        >>> fact.current, fact.first_said
        (True, datetime.datetime(2026, 5, 2, 0, 0))
    """

    value: str
    turn_id: int | None
    timestamp: datetime
    session_id: str | None = None
    since: datetime | None = None
    ended_at: datetime | None = None
    history: tuple[FactValue, ...] = ()

    @property
    def current(self) -> bool:
        """Whether the value still holds (it was not retracted)."""
        return self.ended_at is None

    @property
    def first_said(self) -> datetime:
        """When this value was first said."""
        return self.since or self.timestamp


@dataclass(frozen=True)
class Entity:
    """What the memory knows about one person, place or thing.

    Attributes:
        name: The entity's display name (matching ignores case and surrounding space).
        facts: Attribute name to its current value, with provenance and earlier values.
        turn_ids: The latest turns that mentioned the entity (bounded, newest last; turn ids
            of one session, the one that last mentioned it).
        updated_at: When a fact about it was last said.
        ended: Attributes that no longer have a value (their last value was retracted), with
            that value and its history; never shown as current.
        said: What was said about each attribute, in time order (the latest 32 sayings per
            attribute and session): ``facts`` and ``ended`` are computed from it, and records
            of several sessions merge by it exactly, whatever order they arrive in.
    """

    name: str
    facts: Mapping[str, EntityFact]
    turn_ids: tuple[int, ...]
    updated_at: datetime
    ended: Mapping[str, EntityFact] = field(default_factory=dict)
    said: Mapping[str, tuple[FactStatement, ...]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The normalized name the entity is stored under."""
        return entity_key(self.name)


def entity_key(name: str) -> str:
    """Normalize an entity name for matching: case-folded, spaces collapsed.

    Example:
        >>> entity_key("  Ana   Ribeiro ")
        'ana ribeiro'
    """
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class EntityMention:
    """Facts about an entity said in one turn, before they are merged into memory.

    A fact whose value is ``None`` retracts the attribute (it no longer holds).
    """

    name: str
    facts: Mapping[str, str | None]
    turn_id: int | None
    timestamp: datetime


@dataclass(frozen=True)
class RunningSummary:
    """The rolling summary of a session's older turns.

    Attributes:
        text: The summary itself.
        through_turn: The id of the last turn folded into it (-1 when nothing is folded yet).
        version: Incremented by every fold; stores update it with a compare-and-set.
        updated_at: When the last fold happened (``None`` before the first).
    """

    text: str = ""
    through_turn: int = -1
    version: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True)
class RecalledTurn:
    """An earlier turn found by recall, with the scores that ranked it.

    Attributes:
        turn: The recalled turn.
        score: The fused score the turns were ranked by (higher is better).
        dense_score: Cosine similarity of the turn to the query (``None`` when no query
            embedding was available); when the query names a speaker of the conversation,
            to the query without the direction of that name (the dense search uses it so).
        lexical_score: BM25 score of the turn for the query.
    """

    turn: Turn
    score: float
    dense_score: float | None
    lexical_score: float


@dataclass(frozen=True)
class ErasureReport:
    """What an erasure removed, so a right-to-erasure request can be answered with numbers.

    Example:
        >>> (ErasureReport(sessions=("a",), turns=2) + ErasureReport(sessions=("b",), turns=3)).turns
        5
    """

    sessions: tuple[str, ...] = ()
    turns: int = 0
    vectors: int = 0
    summaries: int = 0
    entities: int = 0
    #: LangGraph checkpointer threads deleted with the sessions (``checkpointer=``).
    threads: tuple[str, ...] = ()
    #: Items deleted from a :class:`~langchain_hybrid_memory.HybridMemoryStore` (LangGraph store).
    items: int = 0
    #: The LangGraph store namespaces those items were in, sorted.
    namespaces: tuple[tuple[str, ...], ...] = ()

    def __add__(self, other: ErasureReport) -> ErasureReport:
        return ErasureReport(
            sessions=self.sessions + other.sessions,
            turns=self.turns + other.turns,
            vectors=self.vectors + other.vectors,
            summaries=self.summaries + other.summaries,
            entities=self.entities + other.entities,
            threads=self.threads + other.threads,
            items=self.items + other.items,
            namespaces=tuple(sorted({*self.namespaces, *other.namespaces})),
        )


@dataclass(frozen=True)
class SessionHead:
    """What an engine step reads of a session first, in one round trip to the store.

    Attributes:
        incarnation: Identifies this life of the session. A session that is erased (or
            expires) and is written again is a new incarnation: work computed from the old one
            (vectors, summaries, entities) is refused by the store. ``None``: the session does
            not exist; ``""``: it was created by a version of this library that kept none.
        user_id: The session's owner, or ``None``.
        turn_count: How many turns it holds (also the next turn id).
        summary: Its rolling summary.
    """

    incarnation: str | None = None
    user_id: str | None = None
    turn_count: int = 0
    summary: RunningSummary = RunningSummary()

    @property
    def exists(self) -> bool:
        """Whether the session exists in the store."""
        return self.incarnation is not None


@dataclass(frozen=True)
class Appended:
    """What :meth:`~langchain_hybrid_memory.stores.MemoryStore.append_turns` stored.

    Attributes:
        turns: The new turns, with their ids.
        head: The session right after the append.
    """

    turns: list[Turn]
    head: SessionHead


@dataclass(frozen=True)
class SessionInfo:
    """A session as a list of every session shows it (no turn is read but its last).

    Attributes:
        session_id: The session.
        user_id: Its owner, or ``None``.
        turn_count: How many turns it holds.
        last_activity: When its latest turn was said (``None``: it holds no turn).
    """

    session_id: str
    user_id: str | None
    turn_count: int
    last_activity: datetime | None = None
