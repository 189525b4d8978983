from __future__ import annotations

from datetime import UTC, datetime

from langchain_core.language_models import FakeListLLM
from langchain_core.messages import HumanMessage

from langchain_hybrid_memory.entities import (
    MAX_TURN_IDS,
    LLMEntityExtractor,
    merge_mentions,
    rank_entities,
)
from langchain_hybrid_memory.types import EntityMention, Turn

EARLY = datetime(2026, 3, 1, tzinfo=UTC)
LATE = datetime(2026, 3, 9, tzinfo=UTC)


def test_a_newer_fact_replaces_an_older_one_and_keeps_its_provenance():
    merged = merge_mentions(
        {},
        [
            EntityMention("Ana", {"city": "Lisbon", "job": "analyst"}, 1, EARLY),
            EntityMention(" ana ", {"City": "Porto"}, 7, LATE),
        ],
    )
    ana = merged["ana"]
    assert ana.facts["city"].value == "Porto"
    assert (ana.facts["city"].turn_id, ana.facts["city"].timestamp) == (7, LATE)
    assert ana.facts["job"].value == "analyst"
    assert ana.turn_ids == (1, 7)


def test_an_older_statement_arriving_late_does_not_overwrite_a_newer_fact():
    current = merge_mentions({}, [EntityMention("Ana", {"city": "Porto"}, 7, LATE)])
    merged = merge_mentions(current, [EntityMention("Ana", {"city": "Lisbon"}, 1, EARLY)])
    assert merged["ana"].facts["city"].value == "Porto"


def test_mentions_are_bounded():
    mentions = [EntityMention("Bolt", {"kind": "dog"}, i, EARLY) for i in range(40)]
    assert len(merge_mentions({}, mentions)["bolt"].turn_ids) == MAX_TURN_IDS


def test_entities_named_in_the_focus_come_first():
    entities = merge_mentions(
        {},
        [
            EntityMention("Rui", {"role": "running coach"}, 50, LATE),
            EntityMention("Marta", {"birthday": "14 April"}, 3, EARLY),
        ],
    ).values()
    assert [e.name for e in rank_entities(entities, "What should I get Marta?")] == ["Marta", "Rui"]
    assert [e.name for e in rank_entities(entities, "hello")] == ["Rui", "Marta"]


async def test_the_llm_extractor_parses_json_sync_and_async():
    answer = '{"entities": [{"name": "Ana", "facts": {"allergy": "peanuts"}, "turn": 0}]}'
    turn = Turn("s", 0, HumanMessage("I'm allergic to peanuts"), "I'm allergic to peanuts", EARLY)
    extractor = LLMEntityExtractor(FakeListLLM(responses=[answer]))
    assert extractor.extract([turn])[0].facts == {"allergy": "peanuts"}
    assert (await extractor.aextract([turn]))[0].turn_id == 0


def test_a_malformed_turn_reference_falls_back_to_the_batch_not_to_an_error():
    from langchain_hybrid_memory.entities import mentions_from_payload

    turns = [Turn("s", i, HumanMessage("x"), "x", EARLY) for i in (4, 5)]
    payload = [
        {"name": "Ana", "facts": {"city": "Porto"}, "turn": [4]},
        {"name": "Rui", "facts": {"role": "coach"}, "turn": True},
        {"name": "Bolt", "facts": {"kind": "dog"}, "turn": 4},
    ]
    assert [(m.name, m.turn_id) for m in mentions_from_payload(payload, turns)] == [
        ("Ana", 5),
        ("Rui", 5),
        ("Bolt", 4),
    ]
