"""Checking what callers pass in, before anything is written.

Every check raises an :class:`~langchain_hybrid_memory.errors.InvalidInputError` (or its
``TypeError`` subclass) naming the argument, so a bad call writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from langchain_core.messages import BaseMessage, message_to_dict

from langchain_hybrid_memory.errors import InvalidInputError, InvalidMessageTypeError
from langchain_hybrid_memory.types import TurnDraft

__all__ = [
    "check_count",
    "check_id",
    "check_optional_id",
    "check_query",
    "check_storable_text",
    "last_user_text",
    "message_text",
    "prepare_drafts",
]

MAX_ID_CHARS = 256


def check_id(value: object, name: str) -> str:
    """Return ``value`` if it is a usable id: a non-blank string of at most 256 characters.

    Any other character is allowed (``:``, ``*``, ``{``, quotes, new lines, any script) but NUL,
    which one store (PostgreSQL) cannot hold: an id that works must work with every store.

    Raises:
        InvalidInputError: Blank, too long, or not encodable as UTF-8.
        InvalidMessageTypeError: Not a string.

    Example:
        >>> check_id("session-1", "session_id")
        'session-1'
    """
    if not isinstance(value, str):
        msg = f"{name} must be a string, got {type(value).__name__}"
        raise InvalidMessageTypeError(msg)
    if not value.strip():
        msg = f"{name} must not be empty or blank"
        raise InvalidInputError(msg)
    if len(value) > MAX_ID_CHARS:
        msg = f"{name} must be at most {MAX_ID_CHARS} characters, got {len(value)}"
        raise InvalidInputError(msg)
    if "\x00" in value:
        msg = f"{name} must not contain NUL characters (PostgreSQL cannot store them)"
        raise InvalidInputError(msg)
    _require_utf8(value, name)
    return value


def check_count(value: object, name: str) -> int:
    """Return ``value`` if it is an integer >= 0 (not a bool).

    Raises:
        InvalidMessageTypeError: Not an integer.
        InvalidInputError: Negative.

    Example:
        >>> check_count(3, "count")
        3
    """
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name} must be an integer >= 0, got {type(value).__name__}"
        raise InvalidMessageTypeError(msg)
    if value < 0:
        msg = f"{name} must be an integer >= 0, got {value}"
        raise InvalidInputError(msg)
    return value


def check_storable_text(value: str, what: str) -> str:
    """Return ``value`` if every store can hold it as a name: no NUL, valid Unicode.

    For entity names and facts: an entity's name is also its lookup key, which PostgreSQL
    cannot hold with a NUL character.

    Raises:
        InvalidInputError: A NUL character or a lone surrogate.

    Example:
        >>> check_storable_text("Ana", "entity name")
        'Ana'
    """
    if "\x00" in value:
        msg = f"{what} must not contain NUL characters (PostgreSQL cannot store them)"
        raise InvalidInputError(msg)
    _require_utf8(value, what)
    return value


def check_optional_id(value: object, name: str) -> str | None:
    """Like :func:`check_id`, but ``None`` is allowed."""
    return None if value is None else check_id(value, name)


def check_query(query: object) -> str | None:
    """Return the query if it is ``None`` or a UTF-8 encodable string.

    Raises:
        InvalidMessageTypeError: Not a string.
        InvalidInputError: Not encodable as UTF-8 (lone surrogates).
    """
    if query is None:
        return None
    if isinstance(query, BaseMessage):
        query = message_text(query)
    if not isinstance(query, str):
        msg = f"query must be a string, a message or None, got {type(query).__name__}"
        raise InvalidMessageTypeError(msg)
    _require_utf8(query, "query")
    return query


def message_text(message: BaseMessage) -> str:
    """The searchable text of a message: its string content, or the text parts of its blocks.

    Raises:
        InvalidMessageTypeError: The content is neither a string nor a list of blocks.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> message_text(HumanMessage([{"type": "text", "text": "Look:"}, {"type": "image_url", "image_url": {"url": "x"}}]))
        'Look:'
    """
    content = message.content
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        msg = f"message content must be a string or a list of blocks, got {type(content).__name__}"
        raise InvalidMessageTypeError(msg)
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            text = block.get("text")
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)


def prepare_drafts(
    messages: object,
    timestamp: datetime | Sequence[datetime] | None,
    max_chars: int | None,
) -> list[TurnDraft]:
    """Check messages and their timestamps and turn them into drafts for the store.

    A message without text (a pure tool call, an image) is accepted: it is stored and kept in
    the transcript, but not embedded or searched. Every part of a message must be storable by
    every store (JSON, valid Unicode): its name, content blocks, tool calls and their arguments,
    ``additional_kwargs``.

    Args:
        messages: A sequence of LangChain messages.
        timestamp: When they were said: ``None`` for now, one datetime for all, or one per
            message. Naive datetimes are taken as UTC.
        max_chars: Longest text accepted (``None``: no limit).

    Raises:
        InvalidMessageTypeError: Not a sequence of messages, or a message with odd content.
        InvalidInputError: A text too long, a message no store can hold (not JSON, not valid
            Unicode, nested too deeply), or timestamps that do not match the messages or are
            out of range.
    """
    if isinstance(messages, (str, bytes, BaseMessage)) or not isinstance(messages, Sequence):
        msg = f"messages must be a sequence of LangChain messages, got {type(messages).__name__}"
        raise InvalidMessageTypeError(msg)
    times = _timestamps(timestamp, len(messages))
    drafts = []
    for position, message in enumerate(messages):
        if not isinstance(message, BaseMessage):
            msg = f"messages[{position}] is {type(message).__name__}, not a LangChain message"
            raise InvalidMessageTypeError(msg)
        text = message_text(message)
        if max_chars is not None and len(text) > max_chars:
            msg = (
                f"messages[{position}] has {len(text)} characters of text, more than "
                f"max_message_chars={max_chars}"
            )
            raise InvalidInputError(msg)
        _require_utf8(text, f"messages[{position}]")
        _require_storable(message, f"messages[{position}]")
        drafts.append(TurnDraft(message, text, times[position]))
    return drafts


def _require_storable(message: BaseMessage, name: str) -> None:
    """Refuse a message that a store could not write down (as the persistent stores do)."""
    try:
        json.dumps(message_to_dict(message), ensure_ascii=False).encode("utf-8")
    except RecursionError as exc:
        msg = f"{name} is nested too deeply to be stored"
        raise InvalidInputError(msg) from exc
    except UnicodeEncodeError as exc:
        msg = f"{name} holds text that is not valid Unicode (a lone surrogate)"
        raise InvalidInputError(msg) from exc
    except (TypeError, ValueError) as exc:
        msg = f"{name} holds a value that cannot be stored as JSON ({type(exc).__name__})"
        raise InvalidInputError(msg) from exc


def check_timestamp(timestamp: object) -> datetime:
    """One timestamp as stored: ``None`` for now, naive taken as UTC.

    Raises:
        InvalidMessageTypeError: Not a datetime.
        InvalidInputError: Out of range once converted to UTC.
    """
    if timestamp is not None and not isinstance(timestamp, datetime):
        _require_datetime(timestamp)
    return _timestamps(timestamp, 1)[0]


def _timestamps(timestamp: object, count: int) -> list[datetime]:
    if timestamp is None:
        return [datetime.now(UTC)] * count
    if isinstance(timestamp, datetime):
        return [_as_utc(timestamp)] * count
    if isinstance(timestamp, Sequence) and not isinstance(timestamp, (str, bytes)):
        if len(timestamp) != count:
            msg = f"got {len(timestamp)} timestamps for {count} messages"
            raise InvalidInputError(msg)
        return [_as_utc(_require_datetime(t)) for t in timestamp]
    msg = f"timestamp must be a datetime, a sequence of datetimes or None, got {type(timestamp).__name__}"
    raise InvalidMessageTypeError(msg)


def _require_datetime(value: object) -> datetime:
    if not isinstance(value, datetime):
        msg = f"timestamps must be datetimes, got {type(value).__name__}"
        raise InvalidMessageTypeError(msg)
    return value


def _as_utc(moment: datetime) -> datetime:
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        msg = f"timestamp {moment!r} is out of range once converted to UTC"
        raise InvalidInputError(msg) from exc


def _require_utf8(text: str, name: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        msg = f"{name} is not valid Unicode text (it holds a lone surrogate)"
        raise InvalidInputError(msg) from exc


def last_user_text(messages: Sequence[BaseMessage]) -> str | None:
    """The text of the last user message with text: what the user is asking now.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> last_user_text([HumanMessage("hi"), AIMessage("hello"), HumanMessage("where do I live?")])
        'where do I live?'
    """
    for message in reversed(messages):
        if message.type == "human" and message.text.strip():
            return message.text
    return None
