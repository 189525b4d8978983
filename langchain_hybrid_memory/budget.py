"""Fitting a context into the token budget.

Policy, in order:

1. **The latest exchange always fits**: the last user turn of the window and what followed it.
   When it alone exceeds the budget, its longest texts are cut until it fits.
2. **Shares of the rest**: the room left is shared by the sections (``BudgetShares``: recall 60%,
   older window turns 20%, summary 12%, entities 8% by default; recall-heavy because the turns
   that answer the question matter most, measured on LoCoMo). Each section takes items in its
   own priority order (recall and entities by rank, window turns newest first, the summary cut at
   a word boundary) until its share is used. Recall gets the largest share, so even a small budget
   carries the earlier turns that answer the question, not only the window. When the query is
   about earlier turns (none of the window's turns ranks among the best recall hits, see
   :func:`shares_for_query`), the ``recall_first_shares`` of the configuration are used instead:
   by default the older window turns' share goes to recall.
3. **Leftovers**: room a section leaves unused is offered to window, recall, entities and
   summary, in that order (the summary last: it can be cut to any length).
4. **Exact check**: item costs are estimated one by one; the rendered context is then counted with
   the token counter and trimmed until it fits: the summary is shortened first, then recalled
   turns (keeping the best one), entities, the summary whole, the last recalled turn, and older
   window turns are dropped. ``tokens <= budget`` holds for any counter.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from langchain_hybrid_memory.config import BudgetShares
from langchain_hybrid_memory.context import (
    PREAMBLE,
    SECTION_HEADERS,
    day_line,
    entity_line,
    format_day,
    memory_text,
    recall_line,
    render_messages,
    shorten,
)
from langchain_hybrid_memory.entities import joined
from langchain_hybrid_memory.window import latest_exchange_start, split_units

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from langchain_hybrid_memory.types import Entity, RecalledTurn, Turn

    TokenCounter = Callable[[Sequence[BaseMessage]], int]

__all__ = [
    "ContextCandidates",
    "FittedContext",
    "fit_context",
    "fit_window_and_recall",
    "forget_token_counts",
    "shares_for_query",
    "text_tokens",
]

#: A query is about the recent turns when one of them ranks among this many best recall hits.
RECENT_RANKS = 10


@dataclass(frozen=True)
class ContextCandidates:
    """Everything that could go into a context, each section in priority order."""

    summary: str
    entities: Sequence[Entity]
    recalled: Sequence[RecalledTurn]
    window: Sequence[Turn]


@dataclass(frozen=True)
class FittedContext:
    """The part of the candidates that fits, with the tokens each section adds."""

    summary: str
    entities: tuple[Entity, ...]
    recalled: tuple[RecalledTurn, ...]
    window: tuple[Turn, ...]
    section_tokens: dict[str, int]
    omitted: dict[str, int]
    tokens: int


def text_tokens(counter: TokenCounter, text: str) -> int:
    """Tokens ``text`` adds to a message, as ``counter`` counts.

    Counts are remembered per counter, keyed by the text's hash (the same turns are counted
    again for every context; no text is kept); :func:`forget_token_counts` drops them.

    Example:
        >>> from langchain_core.messages.utils import count_tokens_approximately
        >>> text_tokens(count_tokens_approximately, "I live in Porto")
        4
    """
    try:
        key = (counter, hash(text), len(text))
        hash(key)
    except TypeError:  # a counter that cannot be a key: counted each time
        return _text_tokens(counter, text)
    with _counts_lock:
        known = _counts.get(key)
        if known is not None:
            _counts.move_to_end(key)
            return known
    tokens = _text_tokens(counter, text)
    with _counts_lock:
        _counts[key] = tokens
        if len(_counts) > _COUNTS_KEPT:
            _counts.popitem(last=False)
    return tokens


def forget_token_counts() -> None:
    """Forget the remembered counts (after an erasure)."""
    with _counts_lock:
        _counts.clear()


def _text_tokens(counter: TokenCounter, text: str) -> int:
    return max(0, counter([HumanMessage(text)]) - counter([HumanMessage("")]))


#: How many token counts are remembered (a hash, a length and a count each).
_COUNTS_KEPT = 8192
_counts: OrderedDict[tuple[TokenCounter, int, int], int] = OrderedDict()
_counts_lock = threading.Lock()


def shares_for_query(
    shares: BudgetShares,
    recall_first: BudgetShares | None,
    window: Sequence[Turn],
    hits: Sequence[RecalledTurn],
    *,
    about_someone: bool = False,
) -> BudgetShares:
    """The shares for one context: ``recall_first`` when the query is about earlier turns.

    A query is about earlier turns when none of the window's turns ranks among the
    ``RECENT_RANKS`` best recall hits (``hits``: ranked, window turns included) and the best hit
    shares a word with the query (a positive lexical score), so a short follow-up such as "why?"
    keeps the usual shares.

    A query about earlier turns that is also ``about_someone`` (it names a speaker of the
    conversation, "what did Rui say about the trip?") gives the summary's share to recall too:
    the answer is in what that person said, which recall finds, while the summary tells the
    whole conversation. A request without a name ("a snack for my run?") keeps the summary,
    which carries standing facts that no search for the request finds.

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_hybrid_memory.types import RecalledTurn, Turn
        >>> def turn(i: int) -> Turn:
        ...     return Turn("s", i, HumanMessage("text"), "text", datetime(2026, 3, 2))
        >>> first = BudgetShares(recall=0.8, window=0.0, summary=0.12, entities=0.08)
        >>> shares_for_query(BudgetShares(), first, [turn(9)], [RecalledTurn(turn(2), 3.0, 0.6, 4.2)]) == first
        True
        >>> shares_for_query(BudgetShares(), first, [turn(9)], [RecalledTurn(turn(9), 3.0, 0.6, 4.2)]) == first
        False
        >>> shares_for_query(BudgetShares(), first, [turn(9)], [RecalledTurn(turn(2), 3.0, 0.6, 4.2)],
        ...                  about_someone=True).summary
        0.0
    """
    if recall_first is None or not hits or hits[0].lexical_score <= 0:
        return shares
    recent = {(turn.session_id, turn.id) for turn in window}
    if any((hit.turn.session_id, hit.turn.id) in recent for hit in hits[:RECENT_RANKS]):
        return shares
    if about_someone:
        return dataclasses.replace(
            recall_first, recall=recall_first.recall + recall_first.summary, summary=0.0
        )
    return recall_first


def fit_context(
    candidates: ContextCandidates,
    budget: int,
    counter: TokenCounter,
    shares: BudgetShares | None = None,
) -> FittedContext:
    """Choose what of ``candidates`` goes into a context of at most ``budget`` tokens.

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.messages.utils import count_tokens_approximately
        >>> from langchain_hybrid_memory.types import Turn
        >>> turns = [Turn("s", i, HumanMessage("word " * 50), "word " * 50, datetime(2026, 1, 1)) for i in range(10)]
        >>> fitted = fit_context(ContextCandidates("", [], [], turns), 300, count_tokens_approximately)
        >>> fitted.tokens <= 300, len(fitted.window) < 10
        (True, True)
    """
    shares = shares or BudgetShares()
    split = latest_exchange_start(candidates.window)
    latest = _fit_latest(list(candidates.window[split:]), budget, counter)
    older_units = split_units(candidates.window[:split])
    room = budget - counter([turn.message for turn in latest])

    sections = _Sections(candidates, older_units, counter)
    sections.fill(room, shares)
    fitted = sections.build(latest)
    while fitted.tokens > budget and sections.drop_one(fitted.tokens - budget):
        fitted = sections.build(latest)
    return fitted


def fit_window_and_recall(
    candidates: ContextCandidates,
    budget: int,
    counter: TokenCounter,
    shares: BudgetShares | None = None,
    *,
    recall_k: int | None = None,
    recall_max_chars: int | None = None,
    user_first: bool = False,
) -> FittedContext:
    """Fit a context whose recall hits may hold turns of the window too.

    With ``user_first`` the window starts on a user message (providers reject a conversation
    that opens with the assistant): the turns before the first user message that fits are
    left to recall, like any other turn the budget drops from the window.

    ``candidates.recalled`` are the best recall hits, window turns included (recall reads that
    many more). They are first offered without the window's turns; if the budget then leaves
    window turns out, those become recallable and the fit is repeated, so no turn falls between
    window and recall, and none is in both. Recalled texts are cut to ``recall_max_chars``, and
    at most ``recall_k`` turns are offered (``None``: as many as fit).

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.messages.utils import count_tokens_approximately
        >>> from langchain_hybrid_memory.types import RecalledTurn, Turn
        >>> turns = [Turn("s", i, HumanMessage(f"fact {i} " * 40), f"fact {i} " * 40, datetime(2026, 1, 1)) for i in range(6)]
        >>> hits = [RecalledTurn(turn, 1.0, 0.5, 1.0) for turn in turns]
        >>> fitted = fit_window_and_recall(ContextCandidates("", [], hits, turns), 300, count_tokens_approximately)
        >>> shown = {t.id for t in fitted.window}
        >>> any(r.turn.id in shown for r in fitted.recalled), fitted.omitted["window"] > 0
        (False, True)
    """
    limit = recall_max_chars
    recalled = [
        item
        if limit is None or len(item.turn.text) <= limit
        else dataclasses.replace(
            item, turn=dataclasses.replace(item.turn, text=shorten(item.turn.text, limit))
        )
        for item in candidates.recalled
    ]

    def fit(shown: Sequence[Turn]) -> FittedContext:
        keys = {(turn.session_id, turn.id) for turn in shown}
        offered = [r for r in recalled if (r.turn.session_id, r.turn.id) not in keys]
        return fit_context(
            dataclasses.replace(candidates, recalled=offered[:recall_k], window=shown),
            budget,
            counter,
            shares,
        )

    def kept(window: Sequence[Turn]) -> Sequence[Turn]:
        if not user_first:
            return window
        first = next((i for i, turn in enumerate(window) if turn.role == "human"), len(window))
        return window[first:]

    # The window only shrinks from one fit to the next, so this ends.
    shown: Sequence[Turn] = kept(candidates.window)
    fitted = fit(shown)
    while len(kept(fitted.window)) < len(shown):
        shown = kept(fitted.window)
        fitted = fit(shown)
    omitted = {**fitted.omitted, "window": len(candidates.window) - len(fitted.window)}
    return dataclasses.replace(fitted, omitted=omitted)


def _fit_latest(latest: list[Turn], budget: int, counter: TokenCounter) -> list[Turn]:
    """The latest exchange cut to fit: longest texts first, then whole units from the front."""
    turns = list(latest)
    while turns and counter([turn.message for turn in turns]) > budget:
        longest = max(range(len(turns)), key=lambda i: len(turns[i].text))
        if turns[longest].text:
            turns[longest] = _cut_to_fit(turns, longest, budget, counter)
        else:
            turns = turns[len(split_units(turns)[0]) :]
    return turns


def _cut_to_fit(turns: list[Turn], index: int, budget: int, counter: TokenCounter) -> Turn:
    """Turn ``index`` with its text cut to the longest prefix that lets ``turns`` fit (or empty)."""
    turn = turns[index]

    def with_text(chars: int) -> Turn:
        text = shorten(turn.text, chars) if chars > 0 else ""
        return dataclasses.replace(turn, message=_with_content(turn.message, text), text=text)

    def fits(chars: int) -> bool:
        trial = [with_text(chars) if i == index else t for i, t in enumerate(turns)]
        return counter([t.message for t in trial]) <= budget

    low, high = 0, len(turn.text) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return with_text(low)


def _with_content(message: BaseMessage, text: str) -> BaseMessage:
    update: dict[str, object] = {"content": text}
    if isinstance(message, AIMessage) and message.tool_calls:
        update["tool_calls"] = message.tool_calls
    return message.model_copy(update=update)


class _Sections:
    """Greedy selection state: how many items of each section are taken.

    Item costs are counted when the selection first looks at an item, so fitting costs the
    same whether a section offers ten candidates or a thousand.
    """

    def __init__(
        self, candidates: ContextCandidates, older_units: list[list[Turn]], counter: TokenCounter
    ) -> None:
        self.candidates = candidates
        self.counter = counter
        self.units_newest_first = older_units[::-1]
        self.count = {"window": 0, "recall": 0, "entities": 0}
        self.summary_chars = 0
        self.used = 0
        # The system message and its preamble are paid by the first memory item; a section's
        # header by its first item; a day line by the first recalled turn of that day.
        self.overhead = counter([SystemMessage(PREAMBLE)]) + 1
        self.headers = {
            name: self.text_cost(header) + 2 for name, header in SECTION_HEADERS.items()
        }
        units = self.units_newest_first
        recalled = candidates.recalled
        entities = candidates.entities
        self.costs = {
            "window": _LazyCosts(len(units), lambda i: counter([t.message for t in units[i]])),
            "recall": _LazyCosts(
                len(recalled), lambda i: self.text_cost(recall_line(recalled[i].turn)) + 1
            ),
            "entities": _LazyCosts(
                len(entities), lambda i: self.text_cost(entity_line(entities[i])) + 1
            ),
        }
        #: The day of each recalled candidate looked at so far, and where each day first shows.
        self._days: list[str] = []
        self._first_of_day: dict[str, int] = {}
        self._summary_tokens: int | None = None

    def text_cost(self, text: str) -> int:
        """Tokens ``text`` adds to a message (:func:`text_tokens`)."""
        return text_tokens(self.counter, text)

    def _day_cost(self, position: int) -> int:
        """The day line's cost when recalled candidate ``position`` is the first of its day."""
        while len(self._days) <= position:
            day = format_day(self.candidates.recalled[len(self._days)].turn.timestamp)
            self._first_of_day.setdefault(day, len(self._days))
            self._days.append(day)
        day = self._days[position]
        if self._first_of_day[day] != position:
            return 0
        return self.text_cost(day_line(day)) + 1

    def _memory_started(self) -> bool:
        return bool(self.count["recall"] or self.count["entities"] or self.summary_chars)

    def _opening_cost(self, section: str) -> int:
        """What taking the first item of a memory section costs beyond the item itself."""
        return (0 if self._memory_started() else self.overhead) + self.headers[section]

    def _take(self, section: str, allowance: int) -> int:
        """Take items of a list section while they fit in ``allowance``; return tokens used."""
        spent = 0
        costs = self.costs[section]
        while self.count[section] < len(costs):
            position = self.count[section]
            cost = costs[position]
            if section != "window" and position == 0:
                cost += self._opening_cost(section)
            if section == "recall":
                cost += self._day_cost(position)
            if spent + cost > allowance:
                break
            self.count[section] += 1
            spent += cost
        return spent

    def _take_summary(self, allowance: int) -> int:
        summary = self.candidates.summary
        if not summary or self.summary_chars >= len(summary):
            return 0
        overhead = 0 if self.summary_chars else self._opening_cost("summary")
        spent_before = self.text_cost(summary[: self.summary_chars])
        available = allowance + spent_before - overhead
        if self._summary_tokens is None:
            self._summary_tokens = self.text_cost(summary)
        if self._summary_tokens <= available:
            self.summary_chars = len(summary)
        else:
            chars = _longest_prefix(summary, available, self.text_cost)
            if chars <= self.summary_chars or available < 16:
                return 0
            self.summary_chars = chars
        return self.text_cost(self._summary()) - spent_before + overhead

    def _summary(self) -> str:
        return shorten(self.candidates.summary, self.summary_chars) if self.summary_chars else ""

    def fill(self, room: int, shares: BudgetShares) -> None:
        """Phase one by shares, phase two with what is left."""
        if room <= 0:
            return
        self.used += self._take("recall", int(room * shares.recall))
        self.used += self._take("window", int(room * shares.window))
        self.used += self._take_summary(int(room * shares.summary))
        self.used += self._take("entities", int(room * shares.entities))
        for section in ("window", "recall", "entities", "summary"):
            left = room - self.used
            if left <= 0:
                break
            if section == "summary":
                self.used += self._take_summary(left)
            else:
                self.used += self._take(section, left)

    def drop_one(self, excess: int) -> bool:
        """Give back about ``excess`` tokens, lowest priority first.

        Returns:
            ``False`` when nothing is left to drop.
        """
        if self.summary_chars > 64:
            target = self.text_cost(self._summary()) - max(excess, 4)
            chars = _longest_prefix(self.candidates.summary, target, self.text_cost)
            self.summary_chars = chars if 16 < chars < self.summary_chars else 0
        elif self.count["recall"] > 1:
            self.count["recall"] -= 1
        elif self.count["entities"]:
            self.count["entities"] -= 1
        elif self.summary_chars:
            self.summary_chars = 0
        elif self.count["recall"]:
            self.count["recall"] -= 1
        elif self.count["window"]:
            self.count["window"] -= 1
        else:
            return False
        return True

    def build(self, latest: list[Turn]) -> FittedContext:
        """Render the current selection and count it exactly."""
        units = self.units_newest_first[: self.count["window"]][::-1]
        window = tuple(turn for unit in units for turn in unit) + tuple(latest)
        recalled = tuple(self.candidates.recalled[: self.count["recall"]])
        # the entities section offers one fact per item: those that fit, one line per entity
        entities = joined(self.candidates.entities[: self.count["entities"]])
        summary = self._summary()
        messages = render_messages(summary, entities, recalled, window)
        total = self.counter(messages)
        section_tokens = {
            "summary": self.text_cost(memory_text(summary, [], [])),
            "entities": self.text_cost(memory_text("", entities, [])),
            "recall": self.text_cost(memory_text("", [], recalled)),
            "window": self.counter([turn.message for turn in window]),
        }
        omitted = {
            "summary": int(bool(self.candidates.summary) and summary != self.candidates.summary),
            "entities": len(self.candidates.entities) - self.count["entities"],
            "recall": len(self.candidates.recalled) - len(recalled),
            "window": len(self.candidates.window) - len(window),
        }
        return FittedContext(summary, entities, recalled, window, section_tokens, omitted, total)


class _LazyCosts:
    """The costs of a section's items, each counted the first time it is asked for."""

    def __init__(self, length: int, cost: Callable[[int], int]) -> None:
        self._length = length
        self._cost = cost
        self._known: list[int] = []

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, position: int) -> int:
        while len(self._known) <= position:
            self._known.append(self._cost(len(self._known)))
        return self._known[position]


def _longest_prefix(text: str, tokens: int, count: Callable[[str], int]) -> int:
    """Longest ``n`` such that ``count(shorten(text, n)) <= tokens`` (binary search)."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if count(shorten(text, middle)) <= tokens:
            low = middle
        else:
            high = middle - 1
    return low
