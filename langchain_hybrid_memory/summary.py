"""The rolling summary: older turns folded into one text, a batch at a time.

Two summarizers share one protocol:

* :class:`LLMSummarizer` works with any LangChain runnable (chat model, completion LLM, LCEL
  chain; string or message output). By default its one call per batch also returns the batch's
  entities, so the LLM is never called once per turn.
* :class:`ExtractiveSummarizer` needs no LLM: it keeps the most informative sentences of the
  previous summary and the new turns within a length bound.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from langchain_hybrid_memory._llm import ainvoke_text, format_turns, invoke_text, parse_json_object
from langchain_hybrid_memory.context import format_day, one_line, shorten
from langchain_hybrid_memory.entities import mentions_from_payload
from langchain_hybrid_memory.errors import SummarizerError
from langchain_hybrid_memory.lexical import tokenize

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from langchain_core.runnables import Runnable

    from langchain_hybrid_memory.types import EntityMention, Turn

__all__ = [
    "ExtractiveSummarizer",
    "LLMSummarizer",
    "Summarizer",
    "SummaryUpdate",
    "approximate_text_tokens",
]


def approximate_text_tokens(text: str) -> int:
    """Approximate tokens of a text: one per four characters, as LangChain's approximate counter.

    Example:
        >>> approximate_text_tokens("I live in Porto")
        4
    """
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class SummaryUpdate:
    """What folding a batch produced: the new summary and the entities the batch stated."""

    summary: str
    mentions: list[EntityMention] = field(default_factory=list)


@runtime_checkable
class Summarizer(Protocol):
    """Folds a batch of turns into the previous summary."""

    def fold(self, previous: str, turns: Sequence[Turn]) -> SummaryUpdate:
        """Return the summary of ``previous`` plus ``turns``."""
        ...

    async def afold(self, previous: str, turns: Sequence[Turn]) -> SummaryUpdate:
        """Async twin of :meth:`fold`."""
        ...


#: The summarizer's LLM call, as traces name it.
SUMMARIZE_RUN = "hybrid_memory.summarize"

_SUMMARY_PROMPT = """You keep the memory of a long conversation. Rewrite the running summary so \
it also covers the new turns. Keep names, dates, numbers, preferences, plans and facts about \
people; drop small talk. Write at most about {max_words} words.

Running summary so far:
{previous}

New turns:
{turns}
"""
_SUMMARY_ONLY_ANSWER = "Answer with the new summary only."
_SUMMARY_AND_ENTITIES_ANSWER = """Also list the facts the new turns state about people, places, \
organisations and things. Answer with JSON only, in this shape:
{"summary": "<new summary>", "entities": [{"name": "<entity>", "facts": {"<attribute>": "<value>"}, "turn": <turn number>}]}
When a fact changed, give its new value; when the turns say a fact no longer holds, give it as \
null (for example {"diet": null})."""


class LLMSummarizer:
    """Rolling summarizer over any LangChain runnable.

    Args:
        llm: A chat model, a completion LLM or an LCEL chain taking a string.
        max_tokens: The summary length to ask for.
        extract_entities: Also ask for the batch's entities in the same call (JSON answer).

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_hybrid_memory.types import Turn
        >>> llm = FakeListChatModel(responses=["Ana lives in Porto."])
        >>> turn = Turn("s", 0, HumanMessage("I live in Porto", name="Ana"), "I live in Porto", datetime(2026, 3, 2))
        >>> LLMSummarizer(llm, extract_entities=False).fold("", [turn]).summary
        'Ana lives in Porto.'
    """

    def __init__(
        self, llm: Runnable[Any, Any], *, max_tokens: int = 300, extract_entities: bool = True
    ) -> None:
        self.llm = llm
        self.max_tokens = max_tokens
        self.extract_entities = extract_entities

    def prompt(self, previous: str, turns: Sequence[Turn]) -> str:
        """The prompt sent to fold ``turns`` into ``previous``."""
        body = _SUMMARY_PROMPT.format(
            max_words=max(20, self.max_tokens * 3 // 4),
            previous=previous or "(empty)",
            turns=format_turns(turns),
        )
        answer = _SUMMARY_AND_ENTITIES_ANSWER if self.extract_entities else _SUMMARY_ONLY_ANSWER
        return body + "\n" + answer

    def fold(self, previous: str, turns: Sequence[Turn]) -> SummaryUpdate:
        """Fold ``turns`` into ``previous`` with one LLM call.

        Raises:
            SummarizerError: The LLM failed or returned an empty summary.
        """
        return self._parse(
            invoke_text(self.llm, self.prompt(previous, turns), SUMMARIZE_RUN), turns
        )

    async def afold(self, previous: str, turns: Sequence[Turn]) -> SummaryUpdate:
        """Async twin of :meth:`fold`."""
        return self._parse(
            await ainvoke_text(self.llm, self.prompt(previous, turns), SUMMARIZE_RUN), turns
        )

    def _parse(self, text: str, turns: Sequence[Turn]) -> SummaryUpdate:
        payload = parse_json_object(text) if self.extract_entities else None
        if payload is not None and isinstance(payload.get("summary"), str):
            summary = payload["summary"].strip()
            mentions = mentions_from_payload(payload.get("entities"), turns)
        else:
            summary, mentions = text.strip(), []
        if not summary:
            msg = "the summarizer returned an empty summary"
            raise SummarizerError(msg)
        return SummaryUpdate(summary, mentions)


#: Fragments with fewer content words ("Sure thing!", "(take 2)") carry too little to keep.
_MIN_SENTENCE_WORDS = 2
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


class ExtractiveSummarizer:
    """Offline summarizer: keeps the most informative sentences within a token bound.

    Candidates are the previous summary's lines and the new turns' sentences (each prefixed with
    its day and speaker). A sentence scores by the rarity of its terms in the candidate pool, per
    term so that long sentences do not win by length alone; user sentences count more than
    assistant ones and questions less than statements. Near-duplicates are skipped, and the kept
    lines stay in time order.

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_hybrid_memory.types import Turn
        >>> day = datetime(2026, 3, 2)
        >>> turns = [Turn("s", 0, HumanMessage("I'm allergic to peanuts.", name="Ana"), "I'm allergic to peanuts.", day),
        ...          Turn("s", 1, AIMessage("Ok."), "Ok.", day)]
        >>> print(ExtractiveSummarizer(max_tokens=40).fold("", turns).summary)
        Mon 2 Mar 2026, Ana: I'm allergic to peanuts.
    """

    def __init__(
        self, *, max_tokens: int = 300, count_text: Callable[[str], int] = approximate_text_tokens
    ) -> None:
        self.max_tokens = max_tokens
        self.count_text = count_text

    def fold(self, previous: str, turns: Sequence[Turn]) -> SummaryUpdate:
        """Fold ``turns`` into ``previous`` without any model."""
        candidates = [(line, 1.0) for line in previous.splitlines() if line.strip()]
        for turn in turns:
            weight = 1.0 if turn.role == "human" else 0.6
            prefix = f"{format_day(turn.timestamp)}, {turn.speaker}: "
            for raw in _SENTENCE_END.split(turn.text):
                sentence = shorten(one_line(raw), 400)
                if sum(term.isalpha() for term in tokenize(sentence)) >= _MIN_SENTENCE_WORDS:
                    factor = 0.5 if sentence.endswith("?") else 1.0
                    candidates.append((prefix + sentence, weight * factor))
        return SummaryUpdate(self._select(candidates))

    async def afold(self, previous: str, turns: Sequence[Turn]) -> SummaryUpdate:
        """Async twin of :meth:`fold` (no I/O: it runs inline)."""
        return self.fold(previous, turns)

    def _select(self, candidates: list[tuple[str, float]]) -> str:
        terms = [set(tokenize(line.split(": ", 1)[-1])) for line, _ in candidates]
        frequency: dict[str, int] = {}
        for line_terms in terms:
            for term in line_terms:
                frequency[term] = frequency.get(term, 0) + 1
        pool = len(candidates)

        def score(index: int) -> float:
            line_terms = terms[index]
            if not line_terms:
                return 0.0
            rarity = sum(math.log(1 + pool / frequency[t]) for t in line_terms)
            return candidates[index][1] * rarity / math.sqrt(len(line_terms))

        order = sorted(range(pool), key=score, reverse=True)
        kept: list[int] = []
        used = 0
        for index in order:
            if any(_overlap(terms[index], terms[other]) > 0.7 for other in kept):
                continue
            cost = self.count_text(candidates[index][0]) + 1
            if used + cost > self.max_tokens:
                continue
            kept.append(index)
            used += cost
        return "\n".join(candidates[i][0] for i in sorted(kept))


def _overlap(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))
