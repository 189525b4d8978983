"""How persistent stores write values down: one serialization for SQLite, Redis and PostgreSQL.

Messages go through LangChain's ``messages_to_dict`` / ``messages_from_dict`` (never pickle),
times are ISO 8601 in UTC, turns, summaries and entities are JSON text, and vectors are the raw
bytes of float32 rows. A value that cannot be encoded or decoded raises
:class:`~langchain_hybrid_memory.errors.StoreError`.

Example:
    >>> from datetime import datetime, timezone
    >>> from langchain_core.messages import HumanMessage
    >>> from langchain_hybrid_memory.types import TurnDraft
    >>> record = dump_turn(TurnDraft(HumanMessage("hi"), "hi", datetime(2024, 5, 1, tzinfo=timezone.utc)))
    >>> turn = load_turn("s1", 0, record)
    >>> turn.message.content, turn.timestamp.isoformat()
    ('hi', '2024-05-01T00:00:00+00:00')
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.messages import messages_from_dict, messages_to_dict

from langchain_hybrid_memory.errors import StoreError
from langchain_hybrid_memory.stores.base import check_vectors
from langchain_hybrid_memory.types import Entity, EntityFact, RunningSummary, Turn

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from langchain_hybrid_memory.types import TurnDraft

__all__ = [
    "dump_entity",
    "dump_summary",
    "dump_time",
    "dump_turn",
    "dump_vectors",
    "load_entity",
    "load_summary",
    "load_time",
    "load_turn",
    "load_vectors",
]


def dump_time(moment: datetime) -> str:
    """ISO 8601 in UTC; a naive time is taken as UTC.

    Example:
        >>> from datetime import timedelta, timezone
        >>> dump_time(datetime(2024, 5, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))))
        '2024-05-01T00:00:00+00:00'
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def load_time(text: str) -> datetime:
    """The inverse of :func:`dump_time`."""
    return datetime.fromisoformat(text)


def dump_turn(draft: TurnDraft) -> str:
    """One turn as JSON text: the message (``messages_to_dict``), its text and its time."""
    record = {
        "message": messages_to_dict([draft.message])[0],
        "text": draft.text,
        "timestamp": dump_time(draft.timestamp),
    }
    return _dumps(record, "turn")


def load_turn(session_id: str, turn_id: int, data: str | bytes) -> Turn:
    """The inverse of :func:`dump_turn`, given the turn's session and id."""
    record = _loads(data, "turn")
    with _malformed("turn"):
        message = messages_from_dict([record["message"]])[0]
        return Turn(session_id, turn_id, message, record["text"], load_time(record["timestamp"]))


def dump_summary(summary: RunningSummary) -> str:
    """A rolling summary as JSON text."""
    record = {
        "text": summary.text,
        "through_turn": summary.through_turn,
        "version": summary.version,
        "updated_at": None if summary.updated_at is None else dump_time(summary.updated_at),
    }
    return _dumps(record, "summary")


def load_summary(data: str | bytes | None) -> RunningSummary:
    """The inverse of :func:`dump_summary`; ``None`` (never folded) gives an empty summary."""
    if data is None:
        return RunningSummary()
    record = _loads(data, "summary")
    with _malformed("summary"):
        updated = record["updated_at"]
        return RunningSummary(
            text=record["text"],
            through_turn=int(record["through_turn"]),
            version=int(record["version"]),
            updated_at=None if updated is None else load_time(updated),
        )


def dump_entity(entity: Entity) -> str:
    """An entity, with the provenance of each fact, as JSON text."""
    record = {
        "name": entity.name,
        "facts": {
            attribute: {
                "value": fact.value,
                "turn_id": fact.turn_id,
                "timestamp": dump_time(fact.timestamp),
            }
            for attribute, fact in entity.facts.items()
        },
        "turn_ids": list(entity.turn_ids),
        "updated_at": dump_time(entity.updated_at),
    }
    return _dumps(record, "entity")


def load_entity(data: str | bytes) -> Entity:
    """The inverse of :func:`dump_entity`."""
    record = _loads(data, "entity")
    with _malformed("entity"):
        facts = {
            attribute: EntityFact(fact["value"], fact["turn_id"], load_time(fact["timestamp"]))
            for attribute, fact in record["facts"].items()
        }
        return Entity(
            name=record["name"],
            facts=facts,
            turn_ids=tuple(record["turn_ids"]),
            updated_at=load_time(record["updated_at"]),
        )


def dump_vectors(turn_ids: Sequence[int], vectors: np.ndarray) -> list[bytes]:
    """One float32 byte string per row, checking there is one row per turn id.

    Raises:
        ValueError: ``vectors`` is not a matrix with one row per turn id.

    Example:
        >>> blobs = dump_vectors([0, 1], np.eye(2))
        >>> load_vectors(blobs).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    return [row.tobytes() for row in check_vectors(turn_ids, vectors)]


def load_vectors(blobs: Sequence[bytes]) -> np.ndarray:
    """The inverse of :func:`dump_vectors`: a writable float32 matrix, one row per blob."""
    with _malformed("vector"):
        return np.stack([np.frombuffer(blob, dtype=np.float32) for blob in blobs])


@contextmanager
def _malformed(what: str) -> Iterator[None]:
    """Turn a decoding failure into a :class:`StoreError` naming what was malformed."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        msg = f"a stored {what} is malformed: {type(exc).__name__}: {exc}"
        raise StoreError(msg) from exc


def _dumps(record: dict[str, Any], what: str) -> str:
    try:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        msg = f"cannot serialize a {what} as JSON: {exc}"
        raise StoreError(msg) from exc


def _loads(data: str | bytes, what: str) -> dict[str, Any]:
    try:
        record = json.loads(data)
    except (TypeError, ValueError) as exc:
        msg = f"a stored {what} is not valid JSON: {exc}"
        raise StoreError(msg) from exc
    if not isinstance(record, dict):
        msg = f"a stored {what} is not a JSON object"
        raise StoreError(msg)
    return record
