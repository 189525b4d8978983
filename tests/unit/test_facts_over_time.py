"""Facts over time: supersede, refresh, retract, out-of-order statements, merge across sessions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from langchain_core.language_models import FakeListChatModel, FakeListLLM
from langchain_core.messages import HumanMessage

from langchain_hybrid_memory._timeline import MAX_HISTORY, Statement, fact_from, statements_of
from langchain_hybrid_memory.context import entity_line
from langchain_hybrid_memory.entities import (
    LLMEntityExtractor,
    asks_about_the_past,
    context_view,
    mentions_from_mapping,
    mentions_from_payload,
    merge_mentions,
    merge_sessions,
    with_session,
)
from langchain_hybrid_memory.errors import SummarizerError
from langchain_hybrid_memory.summary import LLMSummarizer
from langchain_hybrid_memory.types import EntityMention, Turn

JAN = datetime(2026, 1, 10, tzinfo=UTC)
FEB = datetime(2026, 2, 14, tzinfo=UTC)
MAR = datetime(2026, 3, 5, tzinfo=UTC)
APR = datetime(2026, 4, 1, tzinfo=UTC)


def said(*items: tuple[datetime, str | None]) -> list[Statement]:
    return [Statement(when, value, "s", i) for i, (when, value) in enumerate(items)]


def test_a_different_value_supersedes_and_the_old_one_becomes_history():
    fact = fact_from(said((JAN, "Porto"), (MAR, "Lisbon")))
    assert (fact.value, fact.first_said, fact.current) == ("Lisbon", MAR, True)
    [porto] = fact.history
    assert (porto.value, porto.since, porto.until) == ("Porto", JAN, MAR)


def test_the_same_value_said_again_refreshes_it_and_keeps_its_start():
    fact = fact_from(said((JAN, "vegetarian"), (MAR, "Vegetarian ")))
    assert fact.history == ()
    assert (fact.first_said, fact.timestamp) == (JAN, MAR)


def test_a_retraction_ends_the_fact_and_a_later_value_starts_a_new_one():
    ended = fact_from(said((JAN, "vegetarian"), (MAR, None)))
    assert (ended.value, ended.current, ended.ended_at) == ("vegetarian", False, MAR)
    again = fact_from(said((JAN, "vegetarian"), (FEB, None), (APR, "vegan")))
    assert (again.value, again.current) == ("vegan", True)
    assert [(h.value, h.since, h.until) for h in again.history] == [("vegetarian", JAN, FEB)]
    assert fact_from(said((JAN, None))) is None, "retracting what was never said is nothing"


def test_statements_arriving_out_of_order_make_the_same_history():
    items = [(JAN, "Porto"), (FEB, "Braga"), (MAR, "Lisbon"), (APR, None)]

    def shape(fact):
        periods = [(h.value, h.since, h.until) for h in fact.history]
        return fact.value, fact.first_said, fact.ended_at, periods

    expected = ("Lisbon", MAR, APR, [("Porto", JAN, FEB), ("Braga", FEB, MAR)])
    for order in ([0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0], [1, 0, 3, 2]):
        assert shape(fact_from(said(*(items[i] for i in order)))) == expected


def test_a_fact_turns_back_into_statements_that_make_it_again():
    fact = fact_from(said((JAN, "Porto"), (FEB, "porto"), (MAR, "Lisbon"), (APR, None)))
    assert fact_from(statements_of(fact)) == fact


def test_history_is_bounded():
    start = JAN
    items = [(start + timedelta(days=i), f"city {i}") for i in range(MAX_HISTORY + 5)]
    fact = fact_from(said(*items))
    assert len(fact.history) == MAX_HISTORY
    assert fact.history[-1].value == f"city {MAX_HISTORY + 3}"


def test_merge_mentions_keeps_history_and_retractions_per_attribute():
    merged = merge_mentions(
        {},
        [
            EntityMention("Ana", {"city": "Porto", "diet": "vegetarian"}, 1, JAN),
            EntityMention("ana", {"City": "Lisbon", "diet": None}, 7, MAR),
        ],
    )
    ana = merged["ana"]
    assert ana.facts["city"].value == "Lisbon"
    assert ana.facts["city"].history[0].value == "Porto"
    assert "diet" not in ana.facts
    assert ana.ended["diet"].ended_at == MAR


def test_a_session_retracts_what_another_session_said():
    first = merge_mentions({}, [EntityMention("Ana", {"diet": "vegetarian"}, 4, JAN)])
    second = merge_mentions({}, [EntityMention("Ana", {"diet": None}, 2, MAR)])
    assert second["ana"].ended["diet"].value == "", "the record keeps the bare retraction"
    assert "ana" not in with_session(second, "s2"), "alone it tells nothing, not even a name"

    ana = merge_sessions({"s1": first, "s2": second})["ana"]
    assert ana.facts == {}
    ended = ana.ended["diet"]
    assert (ended.value, ended.ended_at, ended.session_id) == ("vegetarian", MAR, "s1")
    # said again later, in a third session: current again, with the gap in its history
    third = merge_mentions({}, [EntityMention("Ana", {"diet": "vegetarian"}, 0, APR)])
    diet = merge_sessions({"s1": first, "s2": second, "s3": third})["ana"].facts["diet"]
    assert (diet.value, diet.first_said) == ("vegetarian", APR)
    assert [(h.value, h.since, h.until) for h in diet.history] == [("vegetarian", JAN, MAR)]


def test_sessions_merge_into_one_history_with_each_value_knowing_its_session():
    first = merge_mentions({}, [EntityMention("Ana", {"city": "Porto"}, 4, JAN)])
    second = merge_mentions({}, [EntityMention("Ana", {"city": "Lisbon"}, 2, MAR)])
    third = merge_mentions({}, [EntityMention("Ana", {"job": "nurse"}, 0, FEB)])
    ana = merge_sessions({"jan": first, "mar": second, "feb": third})["ana"]
    city = ana.facts["city"]
    assert (city.value, city.session_id, city.turn_id) == ("Lisbon", "mar", 2)
    assert [(h.value, h.session_id, h.turn_id) for h in city.history] == [("Porto", "jan", 4)]
    assert ana.facts["job"].session_id == "feb"


def test_the_caller_retracts_with_none():
    [mention] = mentions_from_mapping({"Ana": {"diet": None}}, turn_id=None, timestamp=JAN)
    assert mention.facts == {"diet": None}


TURNS = [
    Turn("s", 3, HumanMessage("I moved to Lisbon"), "I moved to Lisbon", MAR),
    Turn("s", 4, HumanMessage("I eat meat again"), "I eat meat again", APR),
]


@pytest.mark.parametrize(
    ("payload", "facts"),
    [
        ([{"name": "Ana", "facts": {"city": "Lisbon"}, "turn": 3}], {"city": "Lisbon"}),
        ([{"name": "Ana", "facts": {"diet": None}, "turn": 4}], {"diet": None}),
        ([{"name": "Ana", "removed": ["diet"], "turn": 4}], {"diet": None}),
        (
            [{"name": "Ana", "facts": {"city": "Lisbon"}, "removed": ["diet"]}],
            {"diet": None, "city": "Lisbon"},
        ),
        ([{"name": "Ana", "facts": {"diet": "null"}}], {"diet": None}),  # null as a string
        ([{"name": "Ana", "facts": {"diet": ""}}], None),  # an empty value is no statement
        ([{"name": "Ana", "facts": ["city"]}], None),
        ([{"name": "Ana", "facts": {}, "removed": "diet"}], None),
        ([{"name": 3, "facts": {"city": "Lisbon"}}], None),
        ("not a list", None),
    ],
)
def test_llm_payload_shapes(payload, facts):
    mentions = mentions_from_payload(payload, TURNS)
    if facts is None:
        assert mentions == []
    else:
        assert [dict(m.facts) for m in mentions] == [facts]


def test_the_extractor_and_the_summarizer_read_changes_and_retractions():
    answer = (
        '{"summary": "Ana moved.", "entities": ['
        '{"name": "Ana", "facts": {"city": "Lisbon", "diet": null}, "turn": 3}]}'
    )
    update = LLMSummarizer(FakeListChatModel(responses=[answer])).fold("", TURNS)
    assert update.mentions[0].facts == {"city": "Lisbon", "diet": None}
    assert "null" in LLMSummarizer(FakeListChatModel(responses=[answer])).prompt("", TURNS)

    extractor = LLMEntityExtractor(
        FakeListLLM(responses=['{"entities": [{"name": "Ana", "removed": ["city"]}]}'])
    )
    assert extractor.extract(TURNS)[0].facts == {"city": None}
    with pytest.raises(SummarizerError):
        LLMEntityExtractor(FakeListLLM(responses=["no json here"])).extract(TURNS)


def test_a_context_shows_the_past_only_when_asked_and_never_as_current():
    ana = merge_mentions(
        {},
        [
            EntityMention("Ana", {"city": "Porto", "diet": "vegetarian"}, 1, JAN),
            EntityMention("Ana", {"city": "Lisbon", "diet": None}, 7, MAR),
        ],
    )["ana"]
    [now] = context_view([ana], history=False)
    line = entity_line(now)
    assert line == "- Ana (since Thu 5 Mar 2026): city: Lisbon"
    assert "Porto" not in line
    assert "vegetarian" not in line

    [then] = context_view([ana], history=True)
    line = entity_line(then)
    assert (
        "city: Lisbon (since Thu 5 Mar 2026; before: Porto, Sat 10 Jan 2026 to Thu 5 Mar 2026)"
        in line
    )
    assert "diet: none now (was: vegetarian, Sat 10 Jan 2026 to Thu 5 Mar 2026)" in line


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("Where did I live before Lisbon?", True),
        ("What did I use to eat?", True),
        ("Since when am I vegetarian?", True),
        ("When did my job change?", True),
        ("Am I still in Porto?", True),
        ("Where do I live?", False),
        ("What is my dog called?", False),
    ],
)
def test_questions_about_the_past(text, asks):
    assert asks_about_the_past(text) is asks


def one_by_one(record: dict, items, *, name: str = "Ana") -> dict:
    """Merge statements one write at a time, as each add_messages or fold does."""
    for value, month in items:
        mention = EntityMention(name, {"diet": value}, month, datetime(2026, month, 1, tzinfo=UTC))
        record = {**record, **merge_mentions(record, [mention])}
    return record


def shape(fact):
    return (
        fact.value,
        fact.first_said.month,
        [(h.value, h.since.month, h.until.month) for h in fact.history],
    )


def test_the_later_of_two_retractions_in_one_session_still_ends_a_value_said_elsewhere():
    phone = one_by_one({}, [("vegetarian", 1), (None, 2), (None, 4)])
    laptop = one_by_one({}, [("vegetarian", 3)])
    ana = merge_sessions({"phone": phone, "laptop": laptop})["ana"]
    assert "diet" not in ana.facts
    assert ana.ended["diet"].ended_at.month == 4


def test_a_retraction_before_a_new_value_in_one_session_ends_another_sessions_value():
    s1 = one_by_one({}, [("vegetarian", 1)])
    s2 = one_by_one({}, [(None, 4), ("vegan", 5)])
    diet = merge_sessions({"s1": s1, "s2": s2})["ana"].facts["diet"]
    assert shape(diet) == ("vegan", 5, [("vegetarian", 1, 4)])


def test_sayings_between_a_values_first_and_last_are_kept():
    s1 = one_by_one({}, [("Porto", 1), ("Porto", 3), ("Porto", 5)])
    s2 = one_by_one({}, [("Lisbon", 2)])
    diet = merge_sessions({"s1": s1, "s2": s2})["ana"].facts["diet"]
    assert shape(diet) == ("Porto", 3, [("Porto", 1, 2), ("Lisbon", 2, 3)])


def test_records_merge_to_the_history_of_all_sayings_whatever_the_order_and_the_sessions():
    rng = random.Random(5)
    values = ["Porto", "porto", "Lisbon", "Faro", None]
    for _ in range(300):
        items = [
            (rng.choice(values), month) for month in rng.sample(range(1, 13), rng.randint(1, 9))
        ]
        sessions: dict[str, dict] = {}
        for value, month in rng.sample(items, len(items)):  # arrival order shuffled
            session = rng.choice(["a", "b", "c"])
            sessions[session] = one_by_one(sessions.get(session, {}), [(value, month)])
        merged = merge_sessions(sessions).get("ana")
        expected = fact_from(
            Statement(datetime(2026, month, 1, tzinfo=UTC), value) for value, month in items
        )
        if expected is None:
            assert merged is None or ("diet" not in merged.facts and "diet" not in merged.ended)
            continue
        got = merged.facts.get("diet") or merged.ended.get("diet")
        assert shape(got) == shape(expected), items
        assert got.current == expected.current
