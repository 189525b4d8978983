"""A user's facts: they follow the user across sessions, workers and stores, and change over time.

"Two workers" are two ``HybridMemory`` objects, each with its own store object, on one store.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.errors import InvalidInputError, SessionOwnershipError
from tests.conversations import filler
from tests.integration.backends import KINDS
from tests.unit.store_fixtures import cluster_port, open_backend  # noqa: F401 - fixture

if TYPE_CHECKING:
    from collections.abc import Iterator

    from langchain_core.embeddings import Embeddings

    from tests.integration.backends import Backend

pytestmark = pytest.mark.integration

WORKER_KINDS = ("sqlite", "redis", "redis-cluster", "postgres")
MARCH = datetime(2026, 3, 2, 10, tzinfo=UTC)
WEEK = timedelta(days=7)


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path)


@pytest.fixture(params=WORKER_KINDS)
def shared(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path)


def worker(backend: Backend, embeddings: Embeddings, **settings: Any) -> HybridMemory:
    options: dict[str, Any] = {"window_turns": 4, "token_budget": 500, **settings}
    return HybridMemory(store=backend.open(), embeddings=embeddings, **options)


def say(memory: HybridMemory, session: str, user: str, text: str, when: datetime, **facts: Any):
    memory.add_messages(
        session,
        [HumanMessage(text), AIMessage("Noted.")],
        user_id=user,
        timestamp=[when, when + timedelta(seconds=5)],
        entities=facts or None,
    )


def entity_lines(context) -> str:
    return context.to_messages()[0].text if context.entities else ""


def test_a_fact_from_a_first_session_reaches_a_new_session_weeks_later(backend, embeddings):
    memory = worker(backend, embeddings)
    say(
        memory,
        "ana-1",
        "ana",
        "My dog Bolt is a border collie",
        MARCH,
        Bolt={"kind": "border collie"},
    )
    memory.add_messages("ana-1", filler(30), user_id="ana")  # the fact is long gone by now
    say(memory, "bob-1", "bob", "I live in Faro", MARCH, Bob={"city": "Faro"})

    later = MARCH + 5 * WEEK
    say(memory, "ana-2", "ana", "Hello again", later)
    context = memory.build_context("ana-2", "What breed is my dog?", user_id="ana")
    assert [e.name for e in context.entities] == ["Bolt"], "another user's facts never come"
    assert "- Bolt (since Mon 2 Mar 2026): kind: border collie" in entity_lines(context)
    assert context.tokens <= 500

    other = memory.build_context("bob-2", "What breed is my dog?", user_id="bob")
    assert "collie" not in " ".join(m.text for m in other.to_messages())
    assert "Faro" in entity_lines(other)

    # the user's facts, with the session and turn that said them
    fact = memory.entities(user_id="ana")["bolt"].facts["kind"]
    assert (fact.value, fact.session_id, fact.turn_id) == ("border collie", "ana-1", 0)
    assert memory.entities("ana-2")["bolt"].facts["kind"].value == "border collie"
    with pytest.raises(SessionOwnershipError):
        memory.entities("ana-2", user_id="bob")


def test_changed_and_retracted_facts_show_as_current_and_earlier_with_dates(backend, embeddings):
    memory = worker(backend, embeddings)
    say(
        memory,
        "s1",
        "ana",
        "I live in Porto and I'm vegetarian",
        MARCH,
        Ana={"city": "Porto", "diet": "vegetarian"},
    )
    say(memory, "s2", "ana", "I moved to Lisbon", MARCH + 3 * WEEK, Ana={"city": "Lisbon"})
    say(memory, "s3", "ana", "I eat fish again", MARCH + 6 * WEEK, Ana={"diet": None})

    now = memory.build_context("s3", "Any restaurant ideas near my home?", user_id="ana")
    text = entity_lines(now)
    assert "- Ana (since Mon 23 Mar 2026): city: Lisbon" in text
    assert "Porto" not in text, "no old value as current"
    assert "vegetarian" not in text, "no ended value as current"

    past = memory.build_context("s3", "Where did I live before Lisbon?", user_id="ana")
    text = entity_lines(past)
    assert (
        "city: Lisbon (since Mon 23 Mar 2026; before: Porto, Mon 2 Mar 2026 to Mon 23 Mar 2026)"
        in text
    )
    assert "diet: none now (was: vegetarian, Mon 2 Mar 2026 to Mon 13 Apr 2026)" in text

    ana = memory.entities(user_id="ana")["ana"]
    city = ana.facts["city"]
    assert (city.value, city.first_said, city.session_id) == ("Lisbon", MARCH + 3 * WEEK, "s2")
    assert [(h.value, h.since, h.until, h.session_id) for h in city.history] == [
        ("Porto", MARCH, MARCH + 3 * WEEK, "s1")
    ]
    assert "diet" not in ana.facts
    assert ana.ended["diet"].ended_at == MARCH + 6 * WEEK


def test_session_scope_keeps_facts_in_their_session(backend, embeddings):
    memory = worker(backend, embeddings, entity_scope="session")
    say(memory, "s1", "ana", "I live in Porto", MARCH, Ana={"city": "Porto"})
    say(memory, "s2", "ana", "Hello", MARCH + WEEK)
    assert memory.build_context("s2", "Where do I live?", user_id="ana").entities == ()
    assert memory.entities("s1")["ana"].facts["city"].value == "Porto"
    with pytest.raises(InvalidInputError):
        memory.entities(user_id="ana")


def test_a_session_without_a_user_keeps_its_own_facts(backend, embeddings):
    memory = worker(backend, embeddings)
    memory.add_messages(
        "anon", [HumanMessage("I live in Braga")], entities={"Me": {"city": "Braga"}}
    )
    assert memory.entities("anon")["me"].facts["city"].value == "Braga"
    say(memory, "s1", "ana", "Hello", MARCH)
    assert memory.entities(user_id="ana") == {}
    with pytest.raises(InvalidInputError):
        memory.entities()


def test_erasure_removes_what_a_session_said_and_forget_user_everything(backend, embeddings):
    memory = worker(backend, embeddings)
    say(memory, "s1", "ana", "I live in Porto", MARCH, Ana={"city": "Porto"})
    say(
        memory,
        "s2",
        "ana",
        "I moved to Lisbon",
        MARCH + WEEK,
        Ana={"city": "Lisbon", "job": "nurse"},
    )

    memory.forget_session("s2", user_id="ana")
    ana = memory.entities(user_id="ana")["ana"]
    assert ana.facts["city"].value == "Porto"
    assert ana.facts["city"].history == (), "s2's statements are gone"
    assert "job" not in ana.facts

    memory.forget_user("ana")
    assert memory.entities(user_id="ana") == {}
    say(memory, "s3", "ana", "Hi", MARCH + 2 * WEEK)
    assert memory.build_context("s3", "Where do I live?", user_id="ana").entities == ()


async def test_async_twin(backend, embeddings):
    memory = worker(backend, embeddings)
    await memory.aadd_messages(
        "s1", [HumanMessage("I live in Porto")], user_id="ana", entities={"Ana": {"city": "Porto"}}
    )
    facts = await memory.aentities(user_id="ana")
    assert facts["ana"].facts["city"].value == "Porto"
    context = await memory.abuild_context("s2", "Where do I live?", user_id="ana")
    assert [e.name for e in context.entities] == ["Ana"]


def test_two_workers_updating_one_users_facts_from_several_sessions_lose_nothing(
    shared, embeddings
):
    """Each worker writes facts in its own sessions of one user, at once; every fact lands."""
    workers = [worker(shared, embeddings), worker(shared, embeddings)]
    rounds = 25
    errors: list[BaseException] = []

    def write(index: int) -> None:
        memory = workers[index]
        try:
            for i in range(rounds):
                when = MARCH + timedelta(minutes=i, seconds=index)
                session = f"w{index}-s{i % 3}"
                say(
                    memory,
                    session,
                    "ana",
                    f"fact {i}",
                    when,
                    Ana={f"w{index} fact {i}": f"v{i}", "city": f"city {index}-{i}"},
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    for memory in workers:  # both see the same facts, whichever wrote them
        ana = memory.entities(user_id="ana")["ana"]
        expected = {f"w{w} fact {i}" for w in range(2) for i in range(rounds)}
        assert expected <= set(ana.facts)
        city = ana.facts["city"]
        assert city.value == f"city 1-{rounds - 1}", "the latest statement is current"
        assert len(city.history) == 8, "earlier values kept, bounded"


@pytest.fixture(params=WORKER_KINDS)
def sealed(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path, encrypt_vectors=True)


def test_facts_and_their_history_are_encrypted_at_rest(sealed, embeddings):
    memory = HybridMemory(store=sealed.open(), embeddings=embeddings, window_turns=4)
    say(memory, "s1", "ana", "I live in Matosinhos", MARCH, Ana={"hometown": "Matosinhos"})
    say(memory, "s2", "ana", "I moved to Ericeira", MARCH + WEEK, Ana={"hometown": "Ericeira"})
    fact = memory.entities(user_id="ana")["ana"].facts["hometown"]
    assert (fact.value, fact.history[0].value) == ("Ericeira", "Matosinhos")
    raw = sealed.raw_values()
    for secret in (b"Matosinhos", b"Ericeira", b"hometown"):
        assert not [value for value in raw if secret in value], secret


def test_a_sessions_facts_expire_with_it(backend, embeddings):
    # margins as in the store contract: checks 0.5 s after s1 expires and 1.5 s before s2 does
    store = backend.open(ttl_seconds=4)
    memory = HybridMemory(store=store, embeddings=embeddings, window_turns=4)
    say(memory, "s1", "ana", "I live in Porto", MARCH, Ana={"city": "Porto"})
    time.sleep(2.0)
    say(memory, "s2", "ana", "I moved to Lisbon", MARCH + WEEK, Ana={"city": "Lisbon"})
    city = memory.entities(user_id="ana")["ana"].facts["city"]
    assert [h.value for h in city.history] == ["Porto"]

    time.sleep(2.5)
    city = memory.entities(user_id="ana")["ana"].facts["city"]
    assert (city.value, city.history) == ("Lisbon", ()), "what s1 said expired with it"


def test_an_erasure_by_one_worker_reaches_the_facts_another_worker_sees(shared, embeddings):
    """Worker 1 writes and reads a user's facts; worker 2 erases: worker 1 never shows them."""
    first, second = worker(shared, embeddings), worker(shared, embeddings)
    say(first, "s1", "ana", "I live in Porto", MARCH, Ana={"city": "Porto"})
    say(
        first,
        "s2",
        "ana",
        "I moved to Lisbon",
        MARCH + WEEK,
        Ana={"city": "Lisbon", "job": "nurse"},
    )
    assert first.entities(user_id="ana")["ana"].facts["city"].value == "Lisbon"

    second.forget_session("s2", user_id="ana")
    ana = first.entities(user_id="ana")["ana"]
    assert ana.facts["city"].value == "Porto", "what s2 said is gone for every worker"
    assert "job" not in ana.facts
    with pytest.raises(SessionOwnershipError):
        second.entities("s1", user_id="bob")

    second.forget_user("ana")
    assert first.entities(user_id="ana") == {}
    context = first.build_context("s3", "Where do I live?", user_id="ana")
    assert context.entities == ()
