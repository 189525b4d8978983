"""The context handed to a model: :class:`MemoryContext`, and how it is written into messages.

This module is the one place that decides the memory's wording. The budget
(:mod:`~langchain_hybrid_memory.budget`) counts exactly what these functions render, so the
rendered context never exceeds the token budget.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import groupby
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage, SystemMessage, get_buffer_string

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import date, datetime

    from langchain_hybrid_memory.types import Entity, EntityFact, RecalledTurn, Turn

__all__ = [
    "ELLIPSIS",
    "PREAMBLE",
    "SECTION_HEADERS",
    "MemoryContext",
    "format_day",
    "memory_text",
    "one_line",
    "recall_text",
    "render_messages",
    "shorten",
]

ELLIPSIS = " …"
PREAMBLE = "Memory of this conversation (the latest turns follow as messages)."
_SUMMARY_HEADER = "Summary of earlier turns:"
_ENTITIES_HEADER = "Known facts:"
_RECALL_HEADER = "Earlier turns relevant now:"
#: The line that opens each section of the memory text.
SECTION_HEADERS = {
    "summary": _SUMMARY_HEADER,
    "entities": _ENTITIES_HEADER,
    "recall": _RECALL_HEADER,
}


def format_day(moment: datetime) -> str:
    """Write a date the way the context shows it.

    Example:
        >>> from datetime import datetime
        >>> format_day(datetime(2023, 5, 8, 13, 56))
        'Mon 8 May 2023'
    """
    return _day_text(moment.date())


@lru_cache(maxsize=1024)
def _day_text(day: date) -> str:
    """Memoized: a context writes the same few days many times while it is fitted."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def one_line(text: str) -> str:
    r"""Collapse every run of white space, line breaks included, into one space.

    Example:
        >>> one_line("I live\n in  Porto")
        'I live in Porto'
    """
    return " ".join(text.split())


def shorten(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, marking the cut with an ellipsis.

    The cut falls at a space when one is near the end.

    Example:
        >>> shorten("I live in Porto near the market", 20)
        'I live in Porto …'
    """
    if len(text) <= max_chars:
        return text
    if max_chars <= len(ELLIPSIS):
        return text[:max_chars]
    cut = text[: max_chars - len(ELLIPSIS)]
    space = cut.rfind(" ")
    if space > len(cut) // 2:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def entity_line(entity: Entity) -> str:
    """One line for an entity: its name and its facts, with the day each value began.

    The day most of its current facts began heads the line (``- Ana (since ...):``); a fact
    that began another day carries its own. Earlier values, and values that no longer hold,
    appear only when the entity carries them (see
    :func:`~langchain_hybrid_memory.entities.context_view`), always marked as past.

    Example:
        >>> from datetime import datetime
        >>> from langchain_hybrid_memory.types import Entity, EntityFact, FactValue
        >>> when, later = datetime(2026, 3, 2), datetime(2026, 4, 7)
        >>> facts = {"allergy": EntityFact("peanuts", 0, when), "city": EntityFact("Faro", 9, later)}
        >>> entity_line(Entity("Ana", facts, (0, 9), later))
        '- Ana (since Mon 2 Mar 2026): allergy: peanuts; city: Faro (since Tue 7 Apr 2026)'
        >>> porto = FactValue("Porto", datetime(2026, 1, 10), when, datetime(2026, 1, 10))
        >>> moved = EntityFact("Lisbon", 9, when, history=(porto,))
        >>> entity_line(Entity("Ana", {"city": moved}, (9,), when))
        '- Ana: city: Lisbon (since Mon 2 Mar 2026; before: Porto, Sat 10 Jan 2026 to Mon 2 Mar 2026)'
    """
    plain = [fact for fact in entity.facts.values() if not fact.history]
    days = Counter(format_day(fact.first_said) for fact in plain)
    head = min(days, key=lambda day: (-days[day], day)) if days else None
    parts = [_fact_text(name, fact, head) for name, fact in entity.facts.items()]
    parts += [_fact_text(name, fact, head) for name, fact in entity.ended.items()]
    name = f"{entity.name} (since {head})" if head else entity.name
    return f"- {name}: {'; '.join(parts)}" if parts else f"- {entity.name}"


def _fact_text(name: str, fact: EntityFact, head: str | None) -> str:
    earlier = [
        f"{past.value}, {format_day(past.since)} to {format_day(past.until)}"
        for past in reversed(fact.history)
    ]
    if fact.current:
        began = format_day(fact.first_said)
        if not earlier and began == head:
            return f"{name}: {fact.value}"
        notes = [f"since {began}"]
        if earlier:
            notes.append("before: " + "; ".join(earlier))
        return f"{name}: {fact.value} ({'; '.join(notes)})"
    ended = fact.ended_at or fact.timestamp
    was = [f"{fact.value}, {format_day(fact.first_said)} to {format_day(ended)}", *earlier]
    return f"{name}: none now (was: {'; '.join(was)})"


def day_line(day: str) -> str:
    """The line opening one day's recalled turns."""
    return f"{day}:"


def recall_line(turn: Turn) -> str:
    """One recalled turn as a line of the memory text."""
    return f"- {turn.speaker}: {one_line(turn.text)}"


def recall_text(recalled: Sequence[RecalledTurn]) -> str:
    """The recalled turns in time order, grouped under one date line per day.

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_hybrid_memory.types import RecalledTurn, Turn
        >>> turn = Turn("s", 0, HumanMessage("I live in Porto"), "I live in Porto", datetime(2026, 3, 2))
        >>> print(recall_text([RecalledTurn(turn, 1.0, 0.8, 2.1)]))
        Mon 2 Mar 2026:
        - User: I live in Porto
    """
    ordered = sorted((r.turn for r in recalled), key=lambda turn: (turn.timestamp, turn.id))
    blocks = []
    for day, turns in groupby(ordered, key=lambda turn: format_day(turn.timestamp)):
        lines = [recall_line(turn) for turn in turns]
        blocks.append("\n".join([day_line(day), *lines]))
    return "\n".join(blocks)


def memory_text(summary: str, entities: Sequence[Entity], recalled: Sequence[RecalledTurn]) -> str:
    """The system text carrying the summary, the entities and the recalled turns.

    Returns:
        The text, or ``""`` when all three sections are empty.
    """
    parts = []
    if summary:
        parts.append(f"{_SUMMARY_HEADER}\n{summary}")
    if entities:
        parts.append("\n".join([_ENTITIES_HEADER, *(entity_line(e) for e in entities)]))
    if recalled:
        parts.append(f"{_RECALL_HEADER}\n{recall_text(recalled)}")
    if not parts:
        return ""
    return "\n\n".join([PREAMBLE, *parts])


def render_messages(
    summary: str,
    entities: Sequence[Entity],
    recalled: Sequence[RecalledTurn],
    window: Sequence[Turn],
) -> list[BaseMessage]:
    """Render a context: the memory as one system message (if any), then the recent turns."""
    text = memory_text(summary, entities, recalled)
    head: list[BaseMessage] = [SystemMessage(text)] if text else []
    return head + [turn.message for turn in window]


@dataclass(frozen=True)
class MemoryContext:
    """The memory assembled for one model call, within the token budget.

    It holds every section with what it cost, so a user can see why each line is there.

    Attributes:
        session_id: The session the context was built for.
        query: The text recall searched for (the current input, or the latest user turn).
        summary: The rolling summary as included (possibly shortened to fit).
        entities: The entities included, most relevant first.
        recalled: The earlier turns included, best score first.
        window: The recent turns included, oldest first.
        section_tokens: Tokens each section adds (``summary``, ``entities``, ``recall``,
            ``window``), as counted by the token counter.
        omitted: How many items of each section did not fit the budget.
        tokens: Tokens of :meth:`to_messages` as counted by the token counter.
        token_budget: The budget the context was fitted into; ``tokens <= token_budget``.
        reserved_tokens: Tokens of the caller's own messages that go to the model beside this
            context (an agent's current step), taken off the budget before it was fitted.
        crowded_out: Those messages alone held the whole budget: the memory added nothing.
    """

    session_id: str
    query: str
    summary: str
    entities: tuple[Entity, ...]
    recalled: tuple[RecalledTurn, ...]
    window: tuple[Turn, ...]
    section_tokens: Mapping[str, int] = field(default_factory=dict)
    omitted: Mapping[str, int] = field(default_factory=dict)
    tokens: int = 0
    token_budget: int = 0
    reserved_tokens: int = 0
    crowded_out: bool = False

    def to_messages(self) -> list[BaseMessage]:
        """Render the context as messages.

        One system message with the summary, entities and recalled turns (when there are any),
        then the recent turns.
        """
        return render_messages(self.summary, self.entities, self.recalled, self.window)

    def to_text(self) -> str:
        """Render the context as one string (``Role: text`` lines, as LangChain's buffer)."""
        return get_buffer_string(self.to_messages())

    def to_record(self) -> dict[str, Any]:
        """The context as JSON-ready data: every section whole, with its scores and tokens.

        What ``hybrid-memory inspect --json`` writes and the inspector shows.

        Example:
            >>> MemoryContext("s1", "hi", "", (), (), ()).to_record()["recalled"]
            []
        """
        return {
            "session_id": self.session_id,
            "query": self.query,
            "tokens": self.tokens,
            "token_budget": self.token_budget,
            "section_tokens": dict(self.section_tokens),
            "omitted": dict(self.omitted),
            "summary": self.summary,
            "entities": [entity_line(entity)[2:] for entity in self.entities],
            "recalled": [
                {
                    "session_id": item.turn.session_id,
                    "turn_id": item.turn.id,
                    "timestamp": item.turn.timestamp.isoformat(),
                    "speaker": item.turn.speaker,
                    "text": item.turn.text,
                    "score": item.score,
                    "dense_score": item.dense_score,
                    "lexical_score": item.lexical_score,
                }
                for item in self.recalled
            ],
            "window": [
                {"turn_id": turn.id, "role": turn.role, "speaker": turn.speaker, "text": turn.text}
                for turn in self.window
            ],
        }
