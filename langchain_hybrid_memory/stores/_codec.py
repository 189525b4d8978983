"""How persistent stores write values down: one serialization for SQLite, Redis and PostgreSQL.

Messages go through LangChain's ``messages_to_dict`` / ``messages_from_dict`` (never pickle),
times are ISO 8601 in UTC, turns, summaries and entities are JSON text, and vectors are the raw
bytes of float32 rows. A value that cannot be encoded or decoded raises
:class:`~langchain_hybrid_memory.errors.StoreError`.

A store writes and reads through its :class:`Codec`: these functions as they are without an
encryption key, their output sealed (:mod:`~langchain_hybrid_memory.stores.encryption`) with one.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.messages import messages_from_dict, messages_to_dict

from langchain_hybrid_memory.entities import merge_mentions
from langchain_hybrid_memory.errors import ConfigError, DecryptionError, StoreError
from langchain_hybrid_memory.stores.base import check_vectors
from langchain_hybrid_memory.stores.encryption import Sealer, is_sealed, no_key_error
from langchain_hybrid_memory.types import (
    Entity,
    EntityFact,
    FactStatement,
    FactValue,
    RunningSummary,
    Turn,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from langchain_hybrid_memory.stores.encryption import EncryptionKey
    from langchain_hybrid_memory.types import EntityMention, TurnDraft

__all__ = [
    "Codec",
    "FieldChange",
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


def _dump_fact(fact: EntityFact) -> dict[str, Any]:
    record: dict[str, Any] = {
        "value": fact.value,
        "turn_id": fact.turn_id,
        "timestamp": dump_time(fact.timestamp),
    }
    if fact.since is not None and fact.since != fact.timestamp:
        record["since"] = dump_time(fact.since)
    if fact.ended_at is not None:
        record["ended_at"] = dump_time(fact.ended_at)
    if fact.history:
        record["history"] = [
            {
                "value": earlier.value,
                "since": dump_time(earlier.since),
                "until": dump_time(earlier.until),
                "said_at": dump_time(earlier.said_at),
                "turn_id": earlier.turn_id,
            }
            for earlier in fact.history
        ]
    return record


def _load_fact(record: dict[str, Any]) -> EntityFact:
    since, ended = record.get("since"), record.get("ended_at")
    return EntityFact(
        value=record["value"],
        turn_id=record["turn_id"],
        timestamp=load_time(record["timestamp"]),
        since=None if since is None else load_time(since),
        ended_at=None if ended is None else load_time(ended),
        history=tuple(
            FactValue(
                value=earlier["value"],
                since=load_time(earlier["since"]),
                until=load_time(earlier["until"]),
                said_at=load_time(earlier["said_at"]),
                turn_id=earlier["turn_id"],
            )
            for earlier in record.get("history", [])
        ),
    )


def dump_entity(entity: Entity) -> str:
    """An entity, with the provenance and history of each fact, as JSON text.

    A record holds one session's entity: the session is where the record is, not in it.
    """
    record: dict[str, Any] = {
        "name": entity.name,
        "facts": {attribute: _dump_fact(fact) for attribute, fact in entity.facts.items()},
        "turn_ids": list(entity.turn_ids),
        "updated_at": dump_time(entity.updated_at),
    }
    if entity.ended:
        record["ended"] = {attribute: _dump_fact(fact) for attribute, fact in entity.ended.items()}
    if entity.said:
        record["said"] = {
            attribute: [[dump_time(s.when), s.value, s.turn_id] for s in statements]
            for attribute, statements in entity.said.items()
        }
    return _dumps(record, "entity")


def load_entity(data: str | bytes) -> Entity:
    """The inverse of :func:`dump_entity` (records written before facts had a history too)."""
    record = _loads(data, "entity")
    with _malformed("entity"):
        return Entity(
            name=record["name"],
            facts={name: _load_fact(fact) for name, fact in record["facts"].items()},
            turn_ids=tuple(record["turn_ids"]),
            updated_at=load_time(record["updated_at"]),
            ended={name: _load_fact(fact) for name, fact in record.get("ended", {}).items()},
            said={
                name: tuple(
                    FactStatement(load_time(when), value, None, turn) for when, value, turn in said
                )
                for name, said in record.get("said", {}).items()
            },
        )


@dataclass(frozen=True)
class FieldChange:
    """One field of a session's entities to write.

    Attributes:
        field: The field (an entity's normalized name, or its keyed digest).
        old: What the field holds now, as read (``None``: nothing).
        new: What to store there (``None``: remove the field).
    """

    field: str
    old: str | bytes | None
    new: str | None


def dump_vectors(turn_ids: Sequence[int], vectors: np.ndarray) -> list[bytes]:
    """One float32 byte string per row, checking there is one row per turn id.

    Raises:
        InvalidInputError: ``vectors`` is not a matrix with one row per turn id.

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


class Codec:
    """The stored form of one store's values: plain, or sealed under an encryption key.

    Without a key, values are written exactly as the module's ``dump_*`` functions make them.
    With one, turns (message payload and text), summaries and entities are sealed, vectors too
    with ``encrypt_vectors``, and an entity's lookup name is stored as a keyed digest. Reading
    accepts both forms: a plain value is read as it is (so a plain store can be encrypted by
    rotation), and a sealed value that no configured key opens raises
    :class:`~langchain_hybrid_memory.errors.DecryptionError`.

    Args:
        encryption_key: A Fernet key or a list of them (the first seals, all open); ``None``
            writes plain values.
        encrypt_vectors: Seal the embedding vectors too (they can be inverted to text).

    Raises:
        ConfigError: A key is not a Fernet key, or ``encrypt_vectors`` is set without a key.

    Example:
        >>> from datetime import datetime, timezone
        >>> from cryptography.fernet import Fernet
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_hybrid_memory.types import TurnDraft
        >>> codec = Codec(Fernet.generate_key())
        >>> moment = datetime(2024, 5, 1, tzinfo=timezone.utc)
        >>> record = codec.dump_turn(TurnDraft(HumanMessage("X123"), "X123", moment))
        >>> record.startswith("fernet:"), "X123" in record
        (True, False)
        >>> codec.load_turn("s1", 0, record).text
        'X123'
    """

    def __init__(
        self, encryption_key: EncryptionKey | None = None, *, encrypt_vectors: bool = False
    ) -> None:
        if not isinstance(encrypt_vectors, bool):
            msg = f"encrypt_vectors must be True or False, got {type(encrypt_vectors).__name__}"
            raise ConfigError(msg)
        if encrypt_vectors and encryption_key is None:
            msg = "encrypt_vectors=True needs an encryption_key"
            raise ConfigError(msg)
        self._sealer = None if encryption_key is None else Sealer(encryption_key)
        self.encrypt_vectors = encrypt_vectors

    @property
    def encrypted(self) -> bool:
        """Whether values are sealed when written."""
        return self._sealer is not None

    # -- writing ----------------------------------------------------------------------------

    def dump_turn(self, draft: TurnDraft) -> str:
        """:func:`dump_turn`, sealed when there is a key."""
        return self._seal_text(dump_turn(draft))

    def dump_summary(self, summary: RunningSummary) -> str:
        """:func:`dump_summary`, sealed when there is a key."""
        return self._seal_text(dump_summary(summary))

    def dump_entity(self, entity: Entity) -> str:
        """:func:`dump_entity`, sealed when there is a key."""
        return self._seal_text(dump_entity(entity))

    def dump_vectors(self, turn_ids: Sequence[int], vectors: np.ndarray) -> list[bytes]:
        """:func:`dump_vectors`, each row sealed when there is a key and ``encrypt_vectors``."""
        blobs = dump_vectors(turn_ids, vectors)
        if self._sealer is None or not self.encrypt_vectors:
            return blobs
        return [self._sealer.seal(blob) for blob in blobs]

    def dump_record(self, record: dict[str, Any], what: str) -> str:
        """Any JSON object as stored text, sealed when there is a key.

        Example:
            >>> Codec().load_record(Codec().dump_record({"a": 1}, "item"), "item")
            {'a': 1}
        """
        return self._seal_text(_dumps(record, what))

    def load_record(self, data: str | bytes, what: str) -> dict[str, Any]:
        """The JSON object :meth:`dump_record` stored, plain or sealed."""
        return _loads(self._open(data, what), what)

    def dump_blob(self, data: bytes) -> bytes:
        """Vector bytes as stored: sealed when there is a key and ``encrypt_vectors``."""
        if self._sealer is None or not self.encrypt_vectors:
            return data
        return self._sealer.seal(data)

    def load_blob(self, data: bytes, what: str) -> bytes:
        """The bytes :meth:`dump_blob` stored, plain or sealed."""
        return self._open_bytes(bytes(data), what)

    def entity_field(self, key: str) -> str:
        """What an entity with normalized name ``key`` is stored under: the name, or its digest."""
        return key if self._sealer is None else self._sealer.digests(key)[0]

    def load_entities(self, rows: Iterable[Sequence[str | bytes]]) -> dict[str, Entity]:
        """A session's entities from its stored ``(field, record)`` rows, by normalized name.

        When two fields hold the same entity (one written under an older key, not yet moved
        by :meth:`reencrypt_entity`), the one under the current field wins.
        """
        return {key: entity for key, (entity, _) in self._entity_rows(rows).items()}

    def entity_changes(
        self, rows: Iterable[Sequence[str | bytes]], mentions: Sequence[EntityMention]
    ) -> list[FieldChange]:
        """What merging ``mentions`` into the stored entities ``rows`` writes, field by field.

        Each changed entity is written under its current field; other fields holding the same
        entity (written under an older key) are removed. Only fields that exist are named, so
        no entity's name is ever sent to the server in plain text by an encrypted store.
        """
        stored = self._entity_rows(rows)
        changed = merge_mentions({key: found[0] for key, found in stored.items()}, mentions)
        changes: list[FieldChange] = []
        for key, entity in changed.items():
            fields = dict(stored[key][1]) if key in stored else {}
            target = self.entity_field(key)
            changes.append(FieldChange(target, fields.pop(target, None), self.dump_entity(entity)))
            changes += [FieldChange(name, old, None) for name, old in fields.items()]
        return changes

    def _entity_rows(
        self, rows: Iterable[Sequence[str | bytes]]
    ) -> dict[str, tuple[Entity, list[tuple[str, str | bytes]]]]:
        """Stored rows by entity: the entity to merge into, and every ``(field, record)``."""
        found: dict[str, tuple[Entity, list[tuple[str, str | bytes]]]] = {}
        for raw_field, record in rows:
            name = raw_field.decode("utf-8") if isinstance(raw_field, bytes) else raw_field
            entity = self.load_entity(record)
            if entity.key not in found:
                found[entity.key] = (entity, [])
            elif name == self.entity_field(entity.key):
                found[entity.key] = (entity, found[entity.key][1])
            found[entity.key][1].append((name, record))
        return found

    # -- reading ----------------------------------------------------------------------------

    def load_turn(self, session_id: str, turn_id: int, data: str | bytes) -> Turn:
        """:func:`load_turn` of a plain or sealed record."""
        return load_turn(session_id, turn_id, self._open(data, "turn"))

    def load_summary(self, data: str | bytes | None) -> RunningSummary:
        """:func:`load_summary` of a plain or sealed record (``None``: an empty summary)."""
        return load_summary(None if data is None else self._open(data, "summary"))

    def load_entity(self, data: str | bytes) -> Entity:
        """:func:`load_entity` of a plain or sealed record."""
        return load_entity(self._open(data, "entity"))

    def load_vectors(self, blobs: Sequence[bytes]) -> np.ndarray:
        """:func:`load_vectors` of plain or sealed rows."""
        return load_vectors([self._open_bytes(bytes(blob), "vector") for blob in blobs])

    # -- rotation ---------------------------------------------------------------------------

    def require_key(self) -> None:
        """Raise :class:`ConfigError` unless there is a key to re-encrypt with."""
        self._require_sealer()

    def reencrypt(self, data: str | bytes, what: str) -> str | None:
        """A stored turn, summary or entity sealed under the first key; ``None``: it already is.

        Raises:
            DecryptionError: It is sealed and no configured key opens it.
        """
        sealer = self._require_sealer()
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if not is_sealed(raw):
            return sealer.seal(raw).decode("ascii")
        rotated = sealer.reencrypt(raw, what)
        return None if rotated is None else rotated.decode("ascii")

    def reencrypt_entity(self, field: str | bytes, data: str | bytes) -> tuple[str, str] | None:
        """A stored entity's new field and value, or ``None`` when both are current already."""
        current = field.decode("utf-8") if isinstance(field, bytes) else field
        new_field = self.entity_field(self.load_entity(data).key)
        value = self.reencrypt(data, "entity")
        if value is None:
            if new_field == current:
                return None
            value = data.decode("ascii") if isinstance(data, bytes) else data
        return new_field, value

    def reencrypt_vector(self, blob: bytes) -> bytes | None:
        """A stored vector sealed under the first key, or ``None`` when nothing is to change.

        A sealed vector moves to the first key; a plain one is sealed only with
        ``encrypt_vectors`` (rotation never unseals anything).
        """
        sealer = self._require_sealer()
        blob = bytes(blob)
        if is_sealed(blob):
            return sealer.reencrypt(blob, "vector")
        return sealer.seal(blob) if self.encrypt_vectors else None

    # -- key check --------------------------------------------------------------------------

    def check_key(self, stored: str | bytes | None) -> bool:
        """Check this codec's key against a store's key check before writing into the store.

        A store that has been written with a key holds a *key check*: a known value sealed
        under that key. Writing with no key, or with keys none of which opens it, would leave
        values that the store's readers cannot open (or plain text in an encrypted store), so
        both raise before anything is written.

        Args:
            stored: The store's key check, ``None`` if it has none.

        Returns:
            Whether the store has no key check and this codec should write one
            (:meth:`new_key_check`): it has a key and the store has none yet.

        Raises:
            DecryptionError: The store is encrypted and this codec has no key, or none of its
                keys opens the key check.
        """
        if stored is None:
            return self._sealer is not None
        raw = stored.encode("utf-8") if isinstance(stored, str) else bytes(stored)
        if self._sealer is None:
            msg = (
                "this store is encrypted: pass its key (encryption_key=...) to write into it; "
                "nothing was written"
            )
            raise DecryptionError(msg)
        try:
            opened = self._sealer.open(raw, "key check") if is_sealed(raw) else None
        except DecryptionError as exc:
            msg = (
                "this store is encrypted under another key: none of the configured encryption "
                "key(s) opens its key check; pass the key it was written with (after a rotation, "
                "keep the old key in the list until reencrypt() has run); nothing was written"
            )
            raise DecryptionError(msg) from exc
        if opened != _KEY_CHECK:
            msg = "the store's key check is damaged: nothing was written"
            raise DecryptionError(msg)
        return False

    def new_key_check(self) -> str:
        """A new key check: the known value sealed under the first key.

        Raises:
            ConfigError: There is no key.
        """
        return self._require_sealer().seal(_KEY_CHECK).decode("ascii")

    def reencrypt_key_check(self, stored: str | bytes | None) -> str | None:
        """The key check re-encrypted under the first key; ``None``: it already is.

        A store without one (``stored`` is ``None``) gets a new one.

        Raises:
            DecryptionError: No configured key opens it.
        """
        if stored is None:
            return self.new_key_check()
        self.check_key(stored)
        return self.reencrypt(stored, "key check")

    def _require_sealer(self) -> Sealer:
        if self._sealer is None:
            msg = (
                "reencrypt() needs an encryption key: open the store with "
                "encryption_key=[new_key, *old_keys]"
            )
            raise ConfigError(msg)
        return self._sealer

    def _seal_text(self, text: str) -> str:
        if self._sealer is None:
            return text
        return self._sealer.seal(text.encode("utf-8")).decode("ascii")

    def _open(self, data: str | bytes, what: str) -> str | bytes:
        """The plain form of a stored value: itself if plain, opened if sealed."""
        if isinstance(data, str):
            return self._open_bytes(data.encode("utf-8"), what) if is_sealed(data) else data
        return self._open_bytes(bytes(data), what)

    def _open_bytes(self, data: bytes, what: str) -> bytes:
        if not is_sealed(data):
            return data
        if self._sealer is None:
            raise no_key_error(what)
        return self._sealer.open(data, what)

    def __repr__(self) -> str:
        return f"Codec(encrypted={self.encrypted}, encrypt_vectors={self.encrypt_vectors})"


#: What a key check seals.
_KEY_CHECK = b"langchain-hybrid-memory key check v1"


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
