"""Facts over time: what was said about one attribute, as its current value and its history.

Everything said about an attribute is a :class:`Statement`: a value (or ``None``, a
retraction) said at some time, in some session and turn. Put in time order, statements make
*runs* of the same value; the last run is the attribute's current value (or, when it is a
retraction, the attribute has none), the runs before it are its earlier values, each holding
until the next run began. An :class:`~langchain_hybrid_memory.types.EntityFact` is that
summary, and it can be turned back into statements (the first and last saying of each run),
so facts from different sessions, or said out of order (a summarizer reads a batch of turns
after newer ones were stored), merge into the same history whatever the order they arrive in.

Values are compared without case or extra space: "porto" restates "Porto".

Example:
    >>> from datetime import datetime
    >>> said = [
    ...     Statement(datetime(2026, 1, 5), "Porto", "s1", 3),
    ...     Statement(datetime(2026, 3, 9), "Lisbon", "s2", 8),
    ...     Statement(datetime(2026, 2, 1), "porto", "s1", 40),
    ... ]
    >>> fact = fact_from(said)
    >>> fact.value, fact.first_said.month, [(h.value, h.until.month) for h in fact.history]
    ('Lisbon', 3, [('porto', 3)])
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from langchain_hybrid_memory.types import EntityFact, FactStatement, FactValue

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

__all__ = [
    "MAX_HISTORY",
    "MAX_STATEMENTS",
    "Statement",
    "bounded",
    "fact_from",
    "same_value",
    "statements_of",
]

#: Earlier values shown per attribute (the oldest are dropped first).
MAX_HISTORY = 8
#: Sayings kept per attribute in one session's record (the oldest are dropped first); a value
#: said again more often than this keeps its later sayings only.
MAX_STATEMENTS = 32

Statement = FactStatement


def same_value(a: str | None, b: str | None) -> bool:
    """Whether two values are the same fact (case and spacing aside; ``None`` only as ``None``).

    Example:
        >>> same_value("Porto ", "porto"), same_value("Porto", None)
        (True, False)
    """
    if a is None or b is None:
        return a is b
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


@dataclass
class _Run:
    """Consecutive statements of the same value."""

    first: Statement
    last: Statement


def _runs(statements: Iterable[Statement]) -> list[_Run]:
    """Statements in time order (ties: later input wins), grouped into runs of one value."""
    ordered = sorted(enumerate(statements), key=lambda pair: (pair[1].when, pair[0]))
    runs: list[_Run] = []
    for _, statement in ordered:
        if runs and same_value(runs[-1].last.value, statement.value):
            runs[-1].last = statement
        elif runs or statement.value is not None:  # a retraction of nothing is dropped
            runs.append(_Run(statement, statement))
    return runs


def fact_from(
    statements: Iterable[Statement], *, keep_retraction: bool = False
) -> EntityFact | None:
    """The fact the statements make: latest value, when it began, whether retracted, history.

    Args:
        statements: What was said about the attribute, in any order.
        keep_retraction: When nothing but retractions was said, return the latest one as a
            fact with an empty value, ended when it was said (one session's record of a
            retraction of what another session said: merged with that session's, it ends it).

    Returns:
        ``None`` when nothing but retractions was said (and they are not kept).

    Example:
        >>> from datetime import datetime
        >>> fact = fact_from([
        ...     Statement(datetime(2026, 1, 5), "vegetarian"),
        ...     Statement(datetime(2026, 4, 1), None),
        ... ])
        >>> fact.value, fact.current, fact.ended_at.month
        ('vegetarian', False, 4)
    """
    statements = list(statements)
    runs = _runs(statements)
    if not runs:
        retractions = [s for s in statements if s.value is None]
        if not keep_retraction or not retractions:
            return None
        latest_retraction = max(retractions, key=lambda s: s.when)
        return EntityFact(
            value="",
            turn_id=latest_retraction.turn_id,
            timestamp=latest_retraction.when,
            session_id=latest_retraction.session_id,
            ended_at=latest_retraction.when,
        )
    ended_at = None
    if runs[-1].last.value is None:  # retracted: the run before it is the last value
        ended_at = runs.pop().first.when
    latest = runs[-1]
    history: list[FactValue] = []
    for run, following in pairwise(runs):
        if run.last.value is None:
            continue  # a gap between a retraction and the next value
        history.append(
            FactValue(
                value=run.last.value,
                since=run.first.when,
                until=following.first.when,
                said_at=run.last.when,
                session_id=run.last.session_id,
                turn_id=run.last.turn_id,
            )
        )
    value = latest.last.value
    assert value is not None  # runs of retractions are only ever last or between values
    return EntityFact(
        value=value,
        turn_id=latest.last.turn_id,
        timestamp=latest.last.when,
        session_id=latest.last.session_id,
        since=None if latest.first.when == latest.last.when else latest.first.when,
        ended_at=ended_at,
        history=tuple(history[-MAX_HISTORY:]),
    )


def bounded(statements: Iterable[Statement], limit: int | None = MAX_STATEMENTS) -> list[Statement]:
    """Statements in time order (ties keep their order), the latest ``limit`` of them."""
    ordered = [s for _, s in sorted(enumerate(statements), key=lambda p: (p[1].when, p[0]))]
    return ordered if limit is None else ordered[-limit:]


def statements_of(fact: EntityFact, session_id: str | None = None) -> list[Statement]:
    """The statements a fact stands for: each value's first and last saying, retractions.

    Only for records written before each saying was kept: a summary loses the sayings in
    between, so statements merged from it may date a value's start later than it was.

    Args:
        fact: The fact.
        session_id: Fills in the session of statements that do not know theirs (the facts
            of one session's record).

    Example:
        >>> from datetime import datetime
        >>> fact = fact_from([Statement(datetime(2026, 1, 5), "Porto"), Statement(datetime(2026, 3, 9), "Lisbon")])
        >>> [(s.when.month, s.value) for s in statements_of(fact)]
        [(1, 'Porto'), (3, 'Lisbon')]
    """
    if fact.value == "":  # a retraction alone (see fact_from's keep_retraction)
        return [Statement(fact.timestamp, None, fact.session_id or session_id, fact.turn_id)]
    said: list[Statement] = []
    periods: Sequence[tuple[str, datetime, datetime, datetime | None, str | None, int | None]] = [
        *((h.value, h.since, h.said_at, h.until, h.session_id, h.turn_id) for h in fact.history),
        (
            fact.value,
            fact.first_said,
            fact.timestamp,
            fact.ended_at,
            fact.session_id,
            fact.turn_id,
        ),
    ]
    for index, (value, since, said_at, until, own_session, turn) in enumerate(periods):
        session = own_session or session_id
        said.append(Statement(since, value, session, turn))
        if said_at != since:
            said.append(Statement(said_at, value, session, turn))
        following = periods[index + 1][1] if index + 1 < len(periods) else None
        if until is not None and until != following:  # retracted before the next value
            said.append(Statement(until, None, session, turn))
    return said
