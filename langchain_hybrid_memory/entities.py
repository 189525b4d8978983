"""Entity memory: facts about people, places and things, merged with their provenance.

Facts come from two sources: the caller (``add_messages(..., entities={"Ana": {"city": "Porto"}})``,
the path for a bot that already runs NLU) and an LLM, either through the summarizer (one call per
batch returns the summary and the batch's entities) or through an :class:`EntityExtractor` of the
caller's own, such as :class:`LLMEntityExtractor`.

Merge rule: facts are keyed by entity name and attribute, both compared without case. Facts
keep their history (see :mod:`~langchain_hybrid_memory._timeline`): a newer different value
supersedes the older one, which becomes an earlier value with the time it stopped holding; the
same value said again refreshes it; a retraction (a value of ``None``) ends it. Statements are
put in the order they were said, whatever the order they arrive in.

Scope: a session's store record holds what that session said. With ``entity_scope="user"`` the
entities of a user are the merge of the records of all the user's sessions
(:func:`merge_sessions`), read when needed, so each session's writes stay atomic and erasing a
session removes exactly what it said.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from langchain_hybrid_memory._inputs import check_storable_text
from langchain_hybrid_memory._llm import ainvoke_text, format_turns, invoke_text, parse_json_object
from langchain_hybrid_memory._timeline import (
    MAX_STATEMENTS,
    Statement,
    bounded,
    fact_from,
    statements_of,
)
from langchain_hybrid_memory.errors import InvalidInputError, SummarizerError
from langchain_hybrid_memory.lexical import tokenize
from langchain_hybrid_memory.types import Entity, EntityMention, entity_key

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from datetime import datetime

    from langchain_core.runnables import Runnable

    from langchain_hybrid_memory.types import EntityFact, Turn

__all__ = [
    "EntityExtractor",
    "LLMEntityExtractor",
    "asks_about_the_past",
    "context_view",
    "fact_lines",
    "fact_records",
    "joined",
    "mentions_from_mapping",
    "mentions_from_payload",
    "merge_mentions",
    "merge_sessions",
    "rank_entities",
    "with_session",
]

#: How many mentioning turn ids an entity keeps (newest last).
MAX_TURN_IDS = 16
_MAX_NAME_CHARS = 200
_MAX_VALUE_CHARS = 500


@runtime_checkable
class EntityExtractor(Protocol):
    """Extracts entity facts from a batch of turns (the same batches the summary folds)."""

    def extract(self, turns: Sequence[Turn]) -> list[EntityMention]:
        """Return the facts the turns state."""
        ...

    async def aextract(self, turns: Sequence[Turn]) -> list[EntityMention]:
        """Async twin of :meth:`extract`."""
        ...


def mentions_from_mapping(
    entities: Mapping[str, Mapping[str, Any]], *, turn_id: int | None, timestamp: datetime
) -> list[EntityMention]:
    """Validate the caller's ``entities=`` argument and turn it into mentions.

    A value of ``None`` retracts the attribute: ``{"Ana": {"diet": None}}`` says Ana's diet no
    longer holds.

    Raises:
        InvalidInputError: Not a mapping of names to mappings of attributes, empty names, or a
            name, attribute or value no store can hold (a NUL character, a lone surrogate).

    Example:
        >>> from datetime import datetime
        >>> mentions_from_mapping({"Ana": {"city": "Porto"}}, turn_id=0, timestamp=datetime(2026, 3, 2))[0].facts
        {'city': 'Porto'}
    """
    if not isinstance(entities, Mapping):
        msg = f"entities must be a mapping of names to facts, got {type(entities).__name__}"
        raise InvalidInputError(msg)
    mentions = []
    for name, facts in entities.items():
        if not isinstance(name, str) or not name.strip():
            msg = f"entity names must be non-empty strings, got {name!r}"
            raise InvalidInputError(msg)
        if not isinstance(facts, Mapping):
            msg = f"facts of entity {name!r} must be a mapping, got {type(facts).__name__}"
            raise InvalidInputError(msg)
        clean = _clean_facts(facts)
        for text in [name, *clean, *(value for value in clean.values() if value is not None)]:
            check_storable_text(text, f"entity {name!r}" if text != name else "an entity name")
        mentions.append(EntityMention(_clean(name, _MAX_NAME_CHARS), clean, turn_id, timestamp))
    return mentions


def mentions_from_payload(payload: object, turns: Sequence[Turn]) -> list[EntityMention]:
    """Read the entities an LLM returned as JSON for a batch of turns.

    The expected shape is a list of ``{"name": ..., "facts": {...}, "turn": id}``. A fact whose
    value is ``null``, or an attribute listed under ``"removed"``, is retracted (it no longer
    holds); a changed fact is simply its new value. Malformed items are skipped. A ``turn``
    outside the batch is replaced by the batch's last turn.

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_hybrid_memory.types import Turn
        >>> turns = [Turn("s", 4, HumanMessage("I live in Porto"), "I live in Porto", datetime(2026, 3, 2))]
        >>> mentions_from_payload([{"name": "Ana", "facts": {"city": "Porto"}, "turn": 4}], turns)[0].turn_id
        4
        >>> mentions_from_payload([{"name": "Ana", "facts": {}, "removed": ["diet"]}], turns)[0].facts
        {'diet': None}
    """
    if not isinstance(payload, list) or not turns:
        return []
    by_id = {turn.id: turn for turn in turns}
    mentions = []
    for item in payload:
        if not isinstance(item, Mapping):
            continue
        name, facts = item.get("name"), item.get("facts", {})
        removed = item.get("removed", [])
        if not isinstance(name, str) or not name.strip() or not isinstance(facts, Mapping):
            continue
        if not isinstance(removed, list):
            removed = []
        said_in = item.get("turn")
        usable = isinstance(said_in, int) and not isinstance(said_in, bool)
        turn = by_id.get(said_in, turns[-1]) if usable else turns[-1]  # type: ignore[arg-type]
        try:
            said = _clean_facts({**{key: None for key in removed if isinstance(key, str)}, **facts})
        except InvalidInputError:
            continue  # an LLM's odd value: skip the item, keep the batch
        clean = {
            _storable(key): None if value is None or _is_null(value) else _storable(value)
            for key, value in said.items()
        }
        clean = {
            key: value
            for key, value in clean.items()
            if key.strip() and (value is None or value.strip())
        }
        name = _storable(_clean(name, _MAX_NAME_CHARS))
        if clean and name.strip():
            mentions.append(EntityMention(name, clean, turn.id, turn.timestamp))
    return mentions


def _is_null(value: str) -> bool:
    """A model writing JSON's null as a string: ``"null"``, ``"None"``."""
    return value.strip().casefold() in {"null", "none"}


def _clean_facts(facts: Mapping[Any, Any]) -> dict[str, str | None]:
    """Facts as short single-line strings (``None``: retracted); empty names and values dropped.

    Raises:
        InvalidInputError: A name or value that cannot be written as text.
    """
    clean: dict[str, str | None] = {}
    try:
        for key, value in facts.items():
            name = _clean(str(key), _MAX_NAME_CHARS)
            if not name:
                continue
            if value is None:
                clean[name] = None
                continue
            text = _clean(str(value), _MAX_VALUE_CHARS)
            if text:
                clean[name] = text
    except Exception as exc:  # anything a value's __str__ may raise
        msg = f"entity facts must be names and values that read as text ({type(exc).__name__})"
        raise InvalidInputError(msg) from exc
    return clean


def _clean(text: str, max_chars: int) -> str:
    return " ".join(text.split())[:max_chars]


def _storable(text: str) -> str:
    """An LLM's text without what no store can hold (NUL characters, lone surrogates)."""
    return text.replace("\x00", "").encode("utf-8", "ignore").decode("utf-8")


def merge_mentions(
    existing: Mapping[str, Entity], mentions: Iterable[EntityMention]
) -> dict[str, Entity]:
    """Merge mentions into known entities (one session's record).

    Every saying is kept (the latest :data:`~langchain_hybrid_memory._timeline.MAX_STATEMENTS`
    per attribute), and the facts are computed from them; a retraction of what this session
    never said is kept too (as an ended fact with an empty value), for the user's other
    sessions.

    Returns:
        The entities that changed, keyed by :func:`~langchain_hybrid_memory.types.entity_key`.

    Example:
        >>> from datetime import datetime
        >>> old = EntityMention("Ana", {"city": "Lisbon"}, 1, datetime(2026, 3, 1))
        >>> new = EntityMention("ana", {"City": "Porto"}, 9, datetime(2026, 3, 5))
        >>> merged = merge_mentions({}, [old, new])
        >>> fact = merged["ana"].facts["city"]
        >>> fact.value, fact.history[0].value, merged["ana"].turn_ids
        ('Porto', 'Lisbon', (1, 9))
    """
    changed: dict[str, Entity] = {}
    for mention in mentions:
        key = entity_key(mention.name)
        if not key:
            continue
        current = changed.get(key) or existing.get(key)
        if current is None:
            current = Entity(mention.name, {}, (), mention.timestamp)
        said = _statements(current)
        for attribute, value in mention.facts.items():
            name = _spelled(said, attribute)
            said.setdefault(name, []).append(
                Statement(mention.timestamp, value, None, mention.turn_id)
            )
        turn_ids = current.turn_ids
        if mention.turn_id is not None and mention.turn_id not in turn_ids:
            turn_ids = tuple(sorted((*turn_ids, mention.turn_id)))[-MAX_TURN_IDS:]
        changed[key] = _entity_from(
            current.name,
            said,
            keep_retractions=True,
            limit=MAX_STATEMENTS,
            turn_ids=turn_ids,
            updated_at=max(current.updated_at, mention.timestamp),
        )
    return changed


def merge_sessions(per_session: Mapping[str, Mapping[str, Entity]]) -> dict[str, Entity]:
    """One view of entities recorded by several sessions (a user's): every fact's history merged.

    The sayings of all the records are put in time order, each knowing its session, and the
    facts computed from them: the same view whatever order the records were written in. An
    entity left with nothing but retractions of what no record says is left out.

    Args:
        per_session: Session id to that session's entities by normalized name.

    Returns:
        The entities by normalized name; each fact knows the session that last said it.

    Example:
        >>> from datetime import datetime
        >>> first = merge_mentions({}, [EntityMention("Ana", {"city": "Porto"}, 2, datetime(2026, 1, 5))])
        >>> later = merge_mentions({}, [EntityMention("Ana", {"city": "Lisbon"}, 0, datetime(2026, 3, 9))])
        >>> fact = merge_sessions({"jan": first, "mar": later})["ana"].facts["city"]
        >>> fact.value, fact.session_id, fact.history[0].session_id
        ('Lisbon', 'mar', 'jan')
    """
    by_key: dict[str, list[tuple[str, Entity]]] = {}
    for session_id, entities in per_session.items():
        for key, entity in entities.items():
            by_key.setdefault(key, []).append((session_id, entity))
    merged: dict[str, Entity] = {}
    for key, records in by_key.items():
        if len(records) == 1 and records[0][1].said:  # one record: its facts are computed
            alone = _in_session(records[0][1], records[0][0])
            if alone is not None:
                merged[key] = alone
            continue
        records.sort(key=lambda pair: pair[1].updated_at)
        said: dict[str, list[Statement]] = {}
        for session_id, entity in records:
            for attribute, statements in _statements(entity, session_id).items():
                said.setdefault(_spelled(said, attribute), []).extend(statements)
        latest = records[-1][1]
        entity = _entity_from(
            latest.name,
            said,
            keep_retractions=False,
            limit=None,
            turn_ids=latest.turn_ids,
            updated_at=latest.updated_at,
        )
        if entity.facts or entity.ended or not said:  # no said at all: known by name only
            merged[key] = entity
    return merged


def with_session(entities: Mapping[str, Entity], session_id: str) -> dict[str, Entity]:
    """One session's entities as its context sees them, each fact knowing its session."""
    return merge_sessions({session_id: entities})


def _in_session(entity: Entity, session_id: str) -> Entity | None:
    """One session's record as its context sees it, each fact knowing its session.

    The record's facts were computed when it was written (keeping bare retractions, for the
    user's other sessions): those are dropped, and so is an entity left with nothing else.
    """

    def fill(fact: EntityFact) -> EntityFact:
        history = tuple(replace(h, session_id=h.session_id or session_id) for h in fact.history)
        return replace(fact, session_id=fact.session_id or session_id, history=history)

    facts = {name: fill(fact) for name, fact in entity.facts.items()}
    ended = {name: fill(fact) for name, fact in entity.ended.items() if fact.value}
    if not facts and not ended:
        return None
    said = {
        name: tuple(replace(s, session_id=s.session_id or session_id) for s in statements)
        for name, statements in entity.said.items()
    }
    return replace(entity, facts=facts, ended=ended, said=said)


def _statements(entity: Entity, session_id: str | None = None) -> dict[str, list[Statement]]:
    """Every saying an entity record holds, per attribute, each given ``session_id`` if none.

    A record written before sayings were kept gives its facts' summary instead.
    """
    said: dict[str, list[Statement]] = {}
    for attribute, statements in entity.said.items():
        said.setdefault(_spelled(said, attribute), []).extend(
            s if s.session_id or session_id is None else replace(s, session_id=session_id)
            for s in statements
        )
    for attribute, fact in [*entity.ended.items(), *entity.facts.items()]:
        name = _spelled(said, attribute)
        if name not in said:
            said[name] = statements_of(fact, session_id)
    return said


def _spelled(said: Mapping[str, object], attribute: str) -> str:
    """The attribute's name as first spelled in ``said`` (names match without case)."""
    key = entity_key(attribute)
    return next((name for name in said if entity_key(name) == key), attribute)


def _entity_from(
    name: str,
    said: Mapping[str, Sequence[Statement]],
    *,
    keep_retractions: bool,
    limit: int | None,
    turn_ids: tuple[int, ...],
    updated_at: datetime,
) -> Entity:
    """An entity whose facts are computed from its sayings (the latest ``limit`` kept)."""
    kept = {attribute: tuple(bounded(statements, limit)) for attribute, statements in said.items()}
    facts: dict[str, EntityFact] = {}
    ended: dict[str, EntityFact] = {}
    for attribute, statements in kept.items():
        made = fact_from(statements, keep_retraction=keep_retractions)
        if made is not None:
            (facts if made.current else ended)[attribute] = made
    return Entity(name, facts, turn_ids, updated_at, ended=ended, said=kept)


def rank_entities(entities: Iterable[Entity], focus: str) -> list[Entity]:
    """Order entities for a context: those the focus text names or touches first, then by recency.

    ``focus`` is the query and the recent window. An entity scores by how many of its name's terms
    occur in the focus (twice) plus how many terms of its facts do.

    Example:
        >>> from datetime import datetime
        >>> from langchain_hybrid_memory.types import EntityFact
        >>> bolt = Entity("Bolt", {"kind": EntityFact("border collie", 3, datetime(2026, 3, 2))}, (3,), datetime(2026, 3, 2))
        >>> rui = Entity("Rui", {"role": EntityFact("running coach", 50, datetime(2026, 3, 9))}, (50,), datetime(2026, 3, 9))
        >>> [e.name for e in rank_entities([rui, bolt], "Can Bolt come to the beach?")]
        ['Bolt', 'Rui']
    """
    focus_terms = set(tokenize(focus))

    def score(entity: Entity) -> int:
        name_hits = len(focus_terms.intersection(tokenize(entity.name)))
        facts = [*entity.facts.items(), *entity.ended.items()]
        fact_text = " ".join(
            f"{k} {f.value} {' '.join(h.value for h in f.history)}" for k, f in facts
        )
        return 2 * name_hits + len(focus_terms.intersection(tokenize(fact_text)))

    scored = [(score(entity), entity) for entity in entities]
    scored.sort(key=lambda pair: (pair[0], pair[1].updated_at), reverse=True)
    return [entity for _, entity in scored]


def fact_records(
    entities: Mapping[str, Entity], *, redact: Callable[[str], str] | None = None
) -> list[dict[str, Any]]:
    """Every value every fact held, as JSON-ready records (an export of what is known).

    Each record: ``entity``, ``attribute``, ``value``, ``current`` (it holds now), ``since``,
    ``until`` (``None`` while it holds; times in ISO 8601), ``session_id`` and ``turn_id`` of
    its last saying. With ``redact`` the export is anonymized: entity names are left out
    (``"entity 1"``, ``"entity 2"``, ...) and values go through ``redact``.

    Example:
        >>> from datetime import datetime
        >>> known = merge_mentions({}, [EntityMention("Ana", {"city": "Porto"}, 0, datetime(2026, 1, 5))])
        >>> [(r["entity"], r["value"], r["current"]) for r in fact_records(known, redact=str.upper)]
        [('entity 1', 'PORTO', True)]
    """
    records: list[dict[str, Any]] = []
    for number, entity in enumerate(entities.values(), start=1):
        name = f"entity {number}" if redact is not None else entity.name
        for attribute, fact in [*entity.facts.items(), *entity.ended.items()]:
            periods: list[tuple[str, datetime, datetime | None, str | None, int | None]] = [
                (h.value, h.since, h.until, h.session_id, h.turn_id) for h in fact.history
            ]
            periods.append(
                (fact.value, fact.first_said, fact.ended_at, fact.session_id, fact.turn_id)
            )
            for index, (value, since, until, session_id, turn_id) in enumerate(periods):
                records.append(
                    {
                        "entity": name,
                        "attribute": attribute,
                        "value": redact(value) if redact is not None else value,
                        "current": index == len(periods) - 1 and until is None,
                        "since": since.isoformat(),
                        "until": None if until is None else until.isoformat(),
                        "session_id": session_id,
                        "turn_id": turn_id,
                    }
                )
    return records


def fact_lines(entities: Iterable[Entity], focus: str) -> list[Entity]:
    """Entities split into one entity per fact, for a budget that takes facts one by one.

    Entities keep their order; within one, the facts whose attribute or values the focus text
    (the query and the recent window) mentions come first, then the most recently said. An
    entity without facts stays whole. :func:`joined` puts the fragments that fit together again.

    Example:
        >>> from datetime import datetime
        >>> ana = merge_mentions({}, [EntityMention("Ana", {"city": "Faro", "pet": "a cat"}, 0, datetime(2026, 1, 5))])
        >>> [list(part.facts) for part in fact_lines(ana.values(), "Is my pet OK?")]
        [['pet'], ['city']]
    """
    focus_terms = set(tokenize(focus))
    lines: list[Entity] = []
    for entity in entities:
        facts = [(name, fact, False) for name, fact in entity.facts.items()]
        facts += [(name, fact, True) for name, fact in entity.ended.items()]
        if not facts:
            lines.append(entity)
            continue

        def relevance(item: tuple[str, EntityFact, bool]) -> tuple[int, float]:
            name, fact, _ = item
            words = " ".join([name, fact.value, *(h.value for h in fact.history)])
            return len(focus_terms.intersection(tokenize(words))), fact.timestamp.timestamp()

        for name, fact, ended in sorted(facts, key=relevance, reverse=True):
            lines.append(
                replace(
                    entity,
                    facts={} if ended else {name: fact},
                    ended={name: fact} if ended else {},
                    said={},
                )
            )
    return lines


def joined(lines: Sequence[Entity]) -> tuple[Entity, ...]:
    """The fragments of :func:`fact_lines` put back together, one entity each, in order.

    Example:
        >>> from datetime import datetime
        >>> ana = merge_mentions({}, [EntityMention("Ana", {"city": "Faro", "pet": "a cat"}, 0, datetime(2026, 1, 5))])
        >>> [sorted(e.facts) for e in joined(fact_lines(ana.values(), ""))]
        [['city', 'pet']]
    """
    together: dict[str, Entity] = {}
    for line in lines:
        known = together.get(line.key)
        together[line.key] = (
            line
            if known is None
            else replace(
                known,
                facts={**known.facts, **line.facts},
                ended={**known.ended, **line.ended},
            )
        )
    return tuple(together.values())


_ABOUT_THE_PAST = re.compile(
    r"\b(before|use[d]?\s+to|previous(ly)?|formerly|former|earlier|originally|since\s+when|"
    r"when\s+did|chang(e|ed|es|ing)|still|any\s*more|no\s+longer|past|until|moved|"
    r"switched|stopped|quit)\b",
    re.IGNORECASE,
)


def asks_about_the_past(text: str) -> bool:
    """Whether an input asks about earlier values or a change ("before", "used to", "still").

    Example:
        >>> asks_about_the_past("Where did I live before Lisbon?"), asks_about_the_past("Where do I live?")
        (True, False)
    """
    return _ABOUT_THE_PAST.search(text) is not None


def context_view(entities: Iterable[Entity], *, history: bool) -> list[Entity]:
    """The entities as a context shows them: current facts, and the past only when asked.

    Without ``history`` each fact keeps its current value alone, and facts that no longer hold
    are left out (an entity left with no fact too); with it, earlier values and ended facts
    come along, marked as past when rendered. An old value is never shown as current.
    """
    shown = []
    for entity in entities:
        if history:
            shown.append(entity)
            continue
        facts = {name: replace(fact, history=()) for name, fact in entity.facts.items()}
        if facts or not entity.ended:
            shown.append(replace(entity, facts=facts, ended={}))
    return shown


#: The extractor's LLM call, as traces name it.
EXTRACT_RUN = "hybrid_memory.extract_entities"

_EXTRACT_PROMPT = """Extract facts about people, places, organisations and things from the \
conversation turns below. Answer with JSON only, in this shape:
{{"entities": [{{"name": "<entity name>", "facts": {{"<attribute>": "<value>"}}, "turn": <turn number>}}]}}
Use short attribute names (for example "allergy", "city", "birthday", "pet"). Include only facts the \
turns state; use "I"/"me" statements for the speaker named in the turn. When a fact changed, give \
its new value; when the turns say a fact no longer holds, give it as null (for example \
{{"diet": null}}).

Turns:
{turns}
"""


class LLMEntityExtractor:
    """Extracts entity facts from a batch of turns with any LangChain runnable answering JSON.

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.language_models import FakeListLLM
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_hybrid_memory.types import Turn
        >>> llm = FakeListLLM(responses=['{"entities": [{"name": "Ana", "facts": {"city": "Porto"}, "turn": 0}]}'])
        >>> turn = Turn("s", 0, HumanMessage("I live in Porto", name="Ana"), "I live in Porto", datetime(2026, 3, 2))
        >>> LLMEntityExtractor(llm).extract([turn])[0].facts
        {'city': 'Porto'}
    """

    def __init__(self, llm: Runnable[Any, Any]) -> None:
        self.llm = llm

    def prompt(self, turns: Sequence[Turn]) -> str:
        """The prompt sent for a batch of turns."""
        return _EXTRACT_PROMPT.format(turns=format_turns(turns))

    def extract(self, turns: Sequence[Turn]) -> list[EntityMention]:
        """Extract the batch's facts.

        Raises:
            SummarizerError: The LLM failed or answered without a JSON object.
        """
        return self._parse(invoke_text(self.llm, self.prompt(turns), EXTRACT_RUN), turns)

    async def aextract(self, turns: Sequence[Turn]) -> list[EntityMention]:
        """Async twin of :meth:`extract`."""
        answer = await ainvoke_text(self.llm, self.prompt(turns), EXTRACT_RUN)
        return self._parse(answer, turns)

    @staticmethod
    def _parse(text: str, turns: Sequence[Turn]) -> list[EntityMention]:
        payload = parse_json_object(text)
        if payload is None:
            msg = "the entity extractor answered without a JSON object"
            raise SummarizerError(msg)
        return mentions_from_payload(payload.get("entities"), turns)
