"""The recent window: which turns stay verbatim, which left it and wait to be summarized.

Pure functions over turns ordered by id. An AI message carrying tool calls and the tool messages
answering it form one unit that is never cut apart: neither by the window boundary nor by the
budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from langchain_core.messages import AIMessage, ToolMessage

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.messages import BaseMessage

    from langchain_hybrid_memory.types import Turn

__all__ = [
    "HasRole",
    "RecentTurns",
    "full_batch_length",
    "latest_exchange_start",
    "split_units",
    "window_start_index",
    "without_unanswered_calls",
]


class RecentTurns(NamedTuple):
    """The latest turns of a window as the caller holds them, e.g. an agent's graph state.

    They may differ from the stored turns (another middleware edited them, the agent repaired
    a tool call) and are used as they are; the window takes stored turns only for the room
    they leave, from before ``stored_before`` (``None``: none, the caller's turns stand for
    everything earlier).
    """

    turns: Sequence[Turn]
    stored_before: int | None


class HasRole(Protocol):
    """Anything with a message role (``"human"``, ``"ai"``, ``"tool"``, ...), such as a turn."""

    @property
    def role(self) -> str:
        """The role."""
        ...


def window_start_index(tail: Sequence[HasRole], window_turns: int) -> int:
    """Index in ``tail`` of the first turn of the recent window.

    ``tail`` is the end of a session in id order. The window holds the last ``window_turns``
    turns, extended backwards when it would otherwise start with tool results whose tool call
    is older.

    Returns:
        The index; 0 with a leading tool message means ``tail`` was too short to find the call.

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
        >>> from langchain_hybrid_memory.types import Turn
        >>> call = AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "c1"}])
        >>> msgs = [HumanMessage("hi"), call, ToolMessage("42", tool_call_id="c1"), AIMessage("42")]
        >>> tail = [Turn("s", i, m, m.text, datetime(2026, 1, 1)) for i, m in enumerate(msgs)]
        >>> window_start_index(tail, 2)
        1
    """
    start = max(0, len(tail) - window_turns)
    while start > 0 and tail[start].role == "tool":
        start -= 1
    return start


def split_units(turns: Sequence[Turn]) -> list[list[Turn]]:
    """Group turns into units that are kept or dropped whole.

    An AI message with tool calls and the tool messages right after it are one unit; every other
    turn is a unit of its own.
    """
    units: list[list[Turn]] = []
    for turn in turns:
        if turn.role == "tool" and units and _ends_tool_unit(units[-1]):
            units[-1].append(turn)
        else:
            units.append([turn])
    return units


def without_unanswered_calls(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """``messages`` without the tool calls no tool message among them answers.

    A run that ended while its tools ran (a tool raised) leaves an AI message whose calls have
    no result; providers reject such a conversation. Such a message loses those calls (and
    their content blocks); without text or other calls left, it is left out.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> call = AIMessage("Checking.", tool_calls=[{"name": "f", "args": {}, "id": "c1"}])
        >>> [(m.type, m.text) for m in without_unanswered_calls([HumanMessage("hi"), call])]
        [('human', 'hi'), ('ai', 'Checking.')]
        >>> without_unanswered_calls([call])[0].tool_calls
        []
    """
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    kept: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, AIMessage):
            calls = [*message.tool_calls, *message.invalid_tool_calls]
            unanswered = {call.get("id") for call in calls} - answered
            if unanswered:
                trimmed = _without_calls(message, unanswered)
                if trimmed.text.strip() or trimmed.tool_calls:
                    kept.append(trimmed)
                continue
        kept.append(message)
    return kept


def _without_calls(message: AIMessage, ids: set[str | None]) -> AIMessage:
    content = message.content
    if isinstance(content, list):
        content = [
            block
            for block in content
            if not (isinstance(block, dict) and block.get("id") in ids and "text" not in block)
        ]
    return message.model_copy(
        update={
            "content": content,
            "tool_calls": [c for c in message.tool_calls if c.get("id") not in ids],
            "invalid_tool_calls": [c for c in message.invalid_tool_calls if c.get("id") not in ids],
        }
    )


def _ends_tool_unit(unit: list[Turn]) -> bool:
    head = unit[0].message
    return isinstance(head, AIMessage) and bool(head.tool_calls)


def latest_exchange_start(window: Sequence[Turn]) -> int:
    """Index of the latest exchange in the window: the last user turn and what followed it.

    Without a user turn in the window, the latest exchange is its last unit.

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_hybrid_memory.types import Turn
        >>> msgs = [HumanMessage("a"), AIMessage("b"), HumanMessage("c"), AIMessage("d")]
        >>> latest_exchange_start([Turn("s", i, m, m.text, datetime(2026, 1, 1)) for i, m in enumerate(msgs)])
        2
    """
    for index in range(len(window) - 1, -1, -1):
        if window[index].role == "human":
            return index
    units = split_units(window)
    return len(window) - len(units[-1]) if units else 0


def full_batch_length(token_counts: Sequence[int], max_turns: int, min_tokens: int | None) -> int:
    """How many of the oldest evicted turns make the next summarizer batch; 0 while it waits.

    A batch is full once its turns hold ``min_tokens`` tokens, or at ``max_turns`` turns
    (the only rule when ``min_tokens`` is ``None``). Each turn goes to the summarizer once:
    the next batch starts after this one.

    Args:
        token_counts: Tokens of each turn that left the window and is not summarized yet,
            oldest first.
        max_turns: Most turns in one batch.
        min_tokens: Tokens that make a batch full before ``max_turns``; ``None`` counts turns.

    Example:
        >>> full_batch_length([300, 500, 400, 100], max_turns=20, min_tokens=1000)
        3
        >>> full_batch_length([300, 500], max_turns=20, min_tokens=1000)
        0
        >>> full_batch_length([0] * 25, max_turns=20, min_tokens=None)
        20
    """
    total = 0
    for length, tokens in enumerate(token_counts[:max_turns], start=1):
        total += tokens
        if min_tokens is not None and total >= min_tokens:
            return length
    return max_turns if len(token_counts) >= max_turns else 0
