"""Periods of the calendar a text names: "on 7 July, 2023", "in May 2023", "in June", "in 2022".

Recall uses them to favour turns said in the period a question names (see
:mod:`~langchain_hybrid_memory._search`). Only absolute dates in English are read, in the few
shapes people write them; relative ones ("last week") would need to know when the speaker
meant them and are left to the embedding. A month without a year means its latest occurrence
up to ``today`` (the day of the conversation's latest turn), a day without a year likewise.

Why not a date library: ``dateparser.search.search_dates`` finds dates in free text but costs
milliseconds per query and reads "May" in "may I" as a month; ``dateutil``'s fuzzy parser
returns one date per text without saying where it was. These five patterns are all recall needs.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

__all__ = ["periods_named"]

# English names, whatever the locale (``calendar.month_name`` follows it).
_MONTH_NAMES = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, start=1)}
_MONTHS.update({name[:3]: number for name, number in list(_MONTHS.items())})
_MONTHS["sept"] = 9
# Month names are matched capitalized only, so "may" the verb is not a month.
_MONTH = r"(?P<month>{})\.?".format(
    "|".join(sorted((name.capitalize() for name in _MONTHS), key=len, reverse=True))
)
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
#: Most specific first: a span matched by one pattern is not read again by a later one.
_PATTERNS = (
    re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR})?\b"),
    re.compile(rf"\b{_MONTH}\s+{_DAY}\b(?:,?\s+{_YEAR}\b)?"),
    re.compile(rf"\b{_MONTH},?\s+(?:of\s+)?{_YEAR}\b"),
    re.compile(rf"\b(?:[Ii]n|[Dd]uring|[Ss]ince|[Ee]arly|[Ll]ate|[Mm]id-?|[Oo]f)\s*{_MONTH}\b"),
    re.compile(rf"\b(?:[Ii]n|[Dd]uring)\s+{_YEAR}\b"),
)


def periods_named(text: str, today: date) -> list[tuple[date, date]]:
    """The periods ``text`` names, each as (first day, day after the last).

    Args:
        text: The text, e.g. a question.
        today: The day a month or day named without a year is taken up to.

    Example:
        >>> periods_named("What did Ana do on 7 July, 2023?", date(2024, 1, 1))
        [(datetime.date(2023, 7, 7), datetime.date(2023, 7, 8))]
        >>> periods_named("Where did we go in June? May I ask?", date(2023, 5, 20))
        [(datetime.date(2022, 6, 1), datetime.date(2022, 7, 1))]
    """
    found: list[tuple[date, date]] = []
    taken: list[tuple[int, int]] = []
    for pattern in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < last and first < end for first, last in taken):
                continue
            period = _period(match.groupdict(), today)
            if period is not None:
                taken.append((start, end))
                found.append(period)
    return found


def _period(parts: dict[str, str | None], today: date) -> tuple[date, date] | None:
    """The period of one match, or ``None`` when it names no real day (31 June)."""
    month = _MONTHS.get((parts.get("month") or "").casefold())
    day_text, year_text = parts.get("day"), parts.get("year")
    day = int(day_text) if day_text else None
    year = int(year_text) if year_text else None
    try:
        if month is None:  # a year alone
            return (date(year, 1, 1), date(year + 1, 1, 1)) if year is not None else None
        if year is None:  # its latest occurrence up to today
            year = today.year
            if (month, day or 1) > (today.month, today.day):
                year -= 1
        if day is None:
            return date(year, month, 1), date(year + month // 12, month % 12 + 1, 1)
        first = date(year, month, day)
    except ValueError:
        return None
    return first, first + timedelta(days=1)
