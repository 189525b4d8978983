"""Entity memory: facts about people, places and things, merged with their provenance.

Facts come from two sources: the caller (``add_messages(..., entities={"Ana": {"city": "Porto"}})``,
the path for a bot that already runs NLU) and an LLM, either through the summarizer (one call per
batch returns the summary and the batch's entities) or through an :class:`EntityExtractor` of the
caller's own, such as :class:`LLMEntityExtractor`.

Merge rule: facts are keyed by entity name and attribute, both compared without case; a newer
statement replaces an older one for the same attribute; every mention is remembered with its turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from langchain_hybrid_memory._inputs import check_storable_text
from langchain_hybrid_memory._llm import ainvoke_text, format_turns, invoke_text, parse_json_object
from langchain_hybrid_memory.errors import InvalidInputError, SummarizerError
from langchain_hybrid_memory.lexical import tokenize
from langchain_hybrid_memory.types import Entity, EntityFact, EntityMention, entity_key

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from langchain_core.runnables import Runnable

    from langchain_hybrid_memory.types import Turn

__all__ = [
    "EntityExtractor",
    "LLMEntityExtractor",
    "mentions_from_mapping",
    "mentions_from_payload",
    "merge_mentions",
    "rank_entities",
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
        for text in [name, *clean, *clean.values()]:
            check_storable_text(text, f"entity {name!r}" if text != name else "an entity name")
        mentions.append(EntityMention(_clean(name, _MAX_NAME_CHARS), clean, turn_id, timestamp))
    return mentions


def mentions_from_payload(payload: object, turns: Sequence[Turn]) -> list[EntityMention]:
    """Read the entities an LLM returned as JSON for a batch of turns.

    The expected shape is a list of ``{"name": ..., "facts": {...}, "turn": id}``; malformed items
    are skipped. A ``turn`` outside the batch is replaced by the batch's last turn.

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_hybrid_memory.types import Turn
        >>> turns = [Turn("s", 4, HumanMessage("I live in Porto"), "I live in Porto", datetime(2026, 3, 2))]
        >>> mentions_from_payload([{"name": "Ana", "facts": {"city": "Porto"}, "turn": 4}], turns)[0].turn_id
        4
    """
    if not isinstance(payload, list) or not turns:
        return []
    by_id = {turn.id: turn for turn in turns}
    mentions = []
    for item in payload:
        if not isinstance(item, Mapping):
            continue
        name, facts = item.get("name"), item.get("facts")
        if not isinstance(name, str) or not name.strip() or not isinstance(facts, Mapping):
            continue
        said_in = item.get("turn")
        usable = isinstance(said_in, int) and not isinstance(said_in, bool)
        turn = by_id.get(said_in, turns[-1]) if usable else turns[-1]  # type: ignore[arg-type]
        try:
            said = _clean_facts(facts)
        except InvalidInputError:
            continue  # an LLM's odd value: skip the item, keep the batch
        clean = {_storable(key): _storable(value) for key, value in said.items()}
        clean = {key: value for key, value in clean.items() if key.strip() and value.strip()}
        name = _storable(_clean(name, _MAX_NAME_CHARS))
        if clean and name.strip():
            mentions.append(EntityMention(name, clean, turn.id, turn.timestamp))
    return mentions


def _clean_facts(facts: Mapping[Any, Any]) -> dict[str, str]:
    """Facts as short single-line strings; empty names and values are dropped.

    Raises:
        InvalidInputError: A name or value that cannot be written as text.
    """
    clean: dict[str, str] = {}
    try:
        for key, value in facts.items():
            if value is None:
                continue
            name, text = _clean(str(key), _MAX_NAME_CHARS), _clean(str(value), _MAX_VALUE_CHARS)
            if name and text:
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
    """Merge mentions into known entities.

    Returns:
        The entities that changed, keyed by :func:`~langchain_hybrid_memory.types.entity_key`.

    Example:
        >>> from datetime import datetime
        >>> old = EntityMention("Ana", {"city": "Lisbon"}, 1, datetime(2026, 3, 1))
        >>> new = EntityMention("ana", {"City": "Porto"}, 9, datetime(2026, 3, 5))
        >>> merged = merge_mentions({}, [old, new])
        >>> merged["ana"].facts["city"].value, merged["ana"].turn_ids
        ('Porto', (1, 9))
    """
    changed: dict[str, Entity] = {}
    for mention in mentions:
        key = entity_key(mention.name)
        if not key:
            continue
        current = changed.get(key) or existing.get(key)
        if current is None:
            current = Entity(mention.name, {}, (), mention.timestamp)
        facts = dict(current.facts)
        fact_keys = {entity_key(name): name for name in facts}
        for attribute, value in mention.facts.items():
            name = fact_keys.get(entity_key(attribute), attribute)
            previous = facts.get(name)
            if previous is None or previous.timestamp <= mention.timestamp:
                facts[name] = EntityFact(value, mention.turn_id, mention.timestamp)
        turn_ids = current.turn_ids
        if mention.turn_id is not None and mention.turn_id not in turn_ids:
            turn_ids = tuple(sorted((*turn_ids, mention.turn_id)))[-MAX_TURN_IDS:]
        changed[key] = replace(
            current,
            facts=facts,
            turn_ids=turn_ids,
            updated_at=max(current.updated_at, mention.timestamp),
        )
    return changed


def rank_entities(entities: Iterable[Entity], focus: str) -> list[Entity]:
    """Order entities for a context: those the focus text names or touches first, then by recency.

    ``focus`` is the query and the recent window. An entity scores by how many of its name's terms
    occur in the focus (twice) plus how many terms of its facts do.

    Example:
        >>> from datetime import datetime
        >>> bolt = Entity("Bolt", {"kind": EntityFact("border collie", 3, datetime(2026, 3, 2))}, (3,), datetime(2026, 3, 2))
        >>> rui = Entity("Rui", {"role": EntityFact("running coach", 50, datetime(2026, 3, 9))}, (50,), datetime(2026, 3, 9))
        >>> [e.name for e in rank_entities([rui, bolt], "Can Bolt come to the beach?")]
        ['Bolt', 'Rui']
    """
    focus_terms = set(tokenize(focus))

    def score(entity: Entity) -> int:
        name_hits = len(focus_terms.intersection(tokenize(entity.name)))
        fact_text = " ".join(f"{k} {f.value}" for k, f in entity.facts.items())
        return 2 * name_hits + len(focus_terms.intersection(tokenize(fact_text)))

    scored = [(score(entity), entity) for entity in entities]
    scored.sort(key=lambda pair: (pair[0], pair[1].updated_at), reverse=True)
    return [entity for _, entity in scored]


_EXTRACT_PROMPT = """Extract facts about people, places, organisations and things from the \
conversation turns below. Answer with JSON only, in this shape:
{{"entities": [{{"name": "<entity name>", "facts": {{"<attribute>": "<value>"}}, "turn": <turn number>}}]}}
Use short attribute names (for example "allergy", "city", "birthday", "pet"). Include only facts the \
turns state; use "I"/"me" statements for the speaker named in the turn.

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
        return self._parse(invoke_text(self.llm, self.prompt(turns)), turns)

    async def aextract(self, turns: Sequence[Turn]) -> list[EntityMention]:
        """Async twin of :meth:`extract`."""
        return self._parse(await ainvoke_text(self.llm, self.prompt(turns)), turns)

    @staticmethod
    def _parse(text: str, turns: Sequence[Turn]) -> list[EntityMention]:
        payload = parse_json_object(text)
        if payload is None:
            msg = "the entity extractor answered without a JSON object"
            raise SummarizerError(msg)
        return mentions_from_payload(payload.get("entities"), turns)
