"""The recent window: which turns stay verbatim, which left it and wait to be summarized.

Pure functions over turns ordered by id. An AI message carrying tool calls and the tool messages
answering it form one unit that is never cut apart: neither by the window boundary nor by the
budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from langchain_core.messages import AIMessage

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_hybrid_memory.types import Turn

__all__ = [
    "HasRole",
    "RecentTurns",
    "full_batch_length",
    "latest_exchange_start",
    "split_units",
    "window_start_index",
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
