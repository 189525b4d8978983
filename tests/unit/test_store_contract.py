"""One contract, every store: what the engine relies on from InMemory, SQLite, Redis (single and
cluster) and PostgreSQL alike. Redis and PostgreSQL are real servers, required (never skipped)."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_hybrid_memory._inputs import message_text
from langchain_hybrid_memory.errors import SessionOwnershipError, StoreError
from langchain_hybrid_memory.types import (
    Entity,
    EntityFact,
    EntityMention,
    ErasureReport,
    FactValue,
    RunningSummary,
    SessionHead,
    TurnDraft,
    entity_key,
)
from tests.integration.backends import KINDS
from tests.unit.store_fixtures import SQLITE_ENCRYPTED, cluster_port, open_backend  # noqa: F401 - fixture

if TYPE_CHECKING:
    from langchain_hybrid_memory.stores import MemoryStore

T0 = datetime(2024, 5, 1, 9, 30, 15, 123456, tzinfo=UTC)
SECOND = timedelta(seconds=1)
REDIS_KINDS = ("redis", "redis-cluster")
SQL_KINDS = ("sqlite", "postgres")

ANA = Entity("Ana", {"city": EntityFact("Porto", 0, T0)}, (0,), T0)
BOB = Entity("Bob", {}, (), T0)
ANA_SAID = EntityMention("Ana", {"city": "Porto"}, 0, T0)  # what merges into ANA
BOB_SAID = EntityMention("Bob", {}, None, T0)
SUMMARY = RunningSummary("Ana lives in Porto.", through_turn=1, version=1, updated_at=T0)


def without_said(entities: dict) -> dict:
    """Entities without their sayings (the expected values here give the facts only)."""
    return {key: dataclasses.replace(entity, said={}) for key, entity in entities.items()}


def drafts(*items: str | BaseMessage, start: datetime = T0) -> list[TurnDraft]:
    messages = [HumanMessage(item) if isinstance(item, str) else item for item in items]
    return [
        TurnDraft(message, message_text(message), start + i * SECOND)
        for i, message in enumerate(messages)
    ]


def varied_messages() -> list[BaseMessage]:
    return [
        SystemMessage("You are helpful."),
        HumanMessage("I'm Ana, I live in Porto 🌊", name="Ana", id="m-1"),
        AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Porto"}, "id": "call-1"}]),
        ToolMessage("sunny, 24°C", tool_call_id="call-1"),
        HumanMessage(
            [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ]
        ),
        AIMessage('Nice.\nA \x00 byte and a "quote"', response_metadata={"model": "fake"}),
    ]


def fill(store: MemoryStore, session_id: str, user_id: str | None, turns: int = 3) -> None:
    """A session with turns, two vectors, one entity and a folded summary."""
    store.append_turns(
        session_id, drafts(*[f"{session_id} turn {i}" for i in range(turns)]), user_id=user_id
    )
    store.put_vectors(session_id, [0, 1], np.ones((2, 8), dtype=np.float32))
    assert store.merge_entities(session_id, [ANA_SAID])
    assert store.compare_and_set_summary(session_id, 0, SUMMARY)


def assert_unknown(store: MemoryStore, session_id: str, user_id: str | None = None) -> None:
    assert store.count_turns(session_id) == 0
    assert store.get_turns(session_id) == []
    assert store.get_turns_by_ids(session_id, [0, 1]) == []
    assert store.session_user(session_id) is None
    assert store.get_summary(session_id) == RunningSummary()
    assert store.get_entities(session_id) == {}
    assert store.get_vectors(session_id) == ([], None)
    if user_id is not None:
        assert session_id not in store.list_sessions(user_id)


# The whole contract also holds for an encrypted store (SQLite, vectors encrypted too).
CONTRACT_KINDS = (*KINDS, SQLITE_ENCRYPTED)


@pytest.fixture(params=CONTRACT_KINDS)
def backend(request, tmp_path):
    yield from open_backend(request, request.param, tmp_path)


@pytest.fixture(params=[kind for kind in CONTRACT_KINDS if kind != "memory"])
def persistent_backend(request, tmp_path):
    yield from open_backend(request, request.param, tmp_path)


@pytest.fixture
def store(backend) -> MemoryStore:
    return backend.open()


# -- turns ------------------------------------------------------------------------------------


def test_turns_come_back_exactly_as_appended_with_contiguous_ids(store):
    messages = varied_messages()

    first = store.append_turns("s1", drafts(*messages[:3])).turns
    second = store.append_turns("s1", drafts(*messages[3:], start=T0 + 3 * SECOND)).turns

    assert [turn.id for turn in first + second] == list(range(6))
    stored = store.get_turns("s1")
    assert stored == first + second
    assert [turn.message for turn in stored] == messages
    assert [turn.text for turn in stored] == [message_text(m) for m in messages]
    assert [turn.timestamp for turn in stored] == [T0 + i * SECOND for i in range(6)]
    assert store.count_turns("s1") == 6


def test_turn_ranges_and_id_lookups_follow_turn_ids(store):
    store.append_turns("s1", drafts(*[f"turn {i}" for i in range(10)]))

    def ids(turns):
        return [turn.id for turn in turns]

    assert ids(store.get_turns("s1", 3, 6)) == [3, 4, 5]
    assert ids(store.get_turns("s1", 8)) == [8, 9]
    assert ids(store.get_turns("s1", -3, 2)) == [0, 1]
    assert store.get_turns("s1", 5, 5) == []
    assert store.get_turns("s1", 6, 2) == []
    assert store.get_turns("s1", 20) == []
    found = store.get_turns_by_ids("s1", [7, 2, 2, 99, -1])
    assert ids(found) == [2, 7]
    assert [turn.text for turn in found] == ["turn 2", "turn 7"]


def test_an_unknown_session_reads_as_empty_and_ignores_side_writes(store):
    assert_unknown(store, "nobody", user_id="ana")
    assert store.list_sessions("ana") == []
    assert store.delete_session("nobody") == ErasureReport()
    assert store.delete_user("ana") == ErasureReport()
    assert not store.compare_and_set_summary("nobody", 0, SUMMARY)
    assert not store.merge_entities("nobody", [ANA_SAID])
    assert not store.put_vectors("nobody", [0], np.ones((1, 4), dtype=np.float32))
    assert not store.acquire_fold("nobody", "", "me", 60)
    store.release_fold("nobody", "me")
    assert store.head("nobody") == SessionHead()
    assert_unknown(store, "nobody")


def test_several_threads_appending_to_one_store_get_distinct_contiguous_ids(store):
    def writer(name: str) -> None:
        for i in range(25):
            store.append_turns("shared", drafts(f"{name} {i}"))

    threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    turns = store.get_turns("shared")
    assert [turn.id for turn in turns] == list(range(100))
    assert len({turn.text for turn in turns}) == 100


# -- owners -----------------------------------------------------------------------------------


def test_a_session_belongs_to_the_first_user_who_writes_to_it(store):
    store.append_turns("s1", drafts("hello"))
    assert store.session_user("s1") is None
    store.append_turns("s1", drafts("I'm Ana"), user_id="ana")
    store.append_turns("s1", drafts("no user given"))

    with pytest.raises(SessionOwnershipError):
        store.append_turns("s1", drafts("I'm Bob"), user_id="bob")

    assert store.session_user("s1") == "ana"
    assert [turn.text for turn in store.get_turns("s1")] == ["hello", "I'm Ana", "no user given"]
    store.append_turns("s2", drafts("again"), user_id="ana")
    assert store.list_sessions("ana") == ["s1", "s2"]
    assert store.list_sessions("bob") == []


# -- summary and entities ---------------------------------------------------------------------


def test_the_summary_changes_only_through_a_matching_compare_and_set(store):
    store.append_turns("s1", drafts("a", "b"))
    assert store.get_summary("s1") == RunningSummary()

    assert store.compare_and_set_summary("s1", 0, SUMMARY)
    assert not store.compare_and_set_summary("s1", 0, RunningSummary("stale", 1, 1, T0))
    newer = RunningSummary("Ana moved to Lisbon.", through_turn=5, version=2, updated_at=T0)
    assert not store.compare_and_set_summary("s1", 2, newer)
    assert store.get_summary("s1") == SUMMARY

    assert store.compare_and_set_summary("s1", 1, newer)
    assert store.get_summary("s1") == newer


def test_of_concurrent_folds_of_one_batch_exactly_one_wins(store):
    store.append_turns("s1", drafts("a", "b"))
    results: dict[int, bool] = {}

    def fold(worker: int) -> None:
        summary = RunningSummary(f"fold by {worker}", through_turn=1, version=1, updated_at=T0)
        results[worker] = store.compare_and_set_summary("s1", 0, summary)

    threads = [threading.Thread(target=fold, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [worker for worker, won in results.items() if won]
    assert len(winners) == 1
    assert store.get_summary("s1").text == f"fold by {winners[0]}"


def test_entities_merge_by_normalized_name_and_newer_facts_win(store):
    store.append_turns("s1", drafts("a"))
    assert store.merge_entities("s1", [ANA_SAID, BOB_SAID])
    assert without_said(store.get_entities("s1")) == {"ana": ANA, "bob": BOB}

    later = T0 + 60 * SECOND
    assert store.merge_entities(
        "s1", [EntityMention(" ANA ", {"city": "Lisbon", "job": "nurse"}, 3, later)]
    )
    assert store.merge_entities("s1", [EntityMention("ana", {"city": "Faro"}, 1, T0 + SECOND)])

    # Faro was said at T0 + 1s, after Porto and before Lisbon: both are earlier values now
    porto = FactValue("Porto", T0, T0 + SECOND, T0, turn_id=0)
    faro = FactValue("Faro", T0 + SECOND, later, T0 + SECOND, turn_id=1)
    moved = Entity(
        "Ana",
        {
            "city": EntityFact("Lisbon", 3, later, history=(porto, faro)),
            "job": EntityFact("nurse", 3, later),
        },
        (0, 1, 3),
        later,
    )
    assert without_said(store.get_entities("s1")) == {"ana": moved, "bob": BOB}

    # a retraction ends the fact, which keeps its history, and is never current again
    assert store.merge_entities("s1", [EntityMention("Ana", {"job": None}, 4, later + SECOND)])
    ana = store.get_entities("s1")["ana"]
    assert "job" not in ana.facts
    assert ana.ended["job"] == EntityFact("nurse", 3, later, ended_at=later + SECOND)


def test_a_users_entities_come_back_per_session_in_one_read(store):
    store.append_turns("a1", drafts("hi"), user_id="ana")
    assert store.merge_entities("a1", [ANA_SAID])
    store.append_turns("a2", drafts("hello"), user_id="ana")  # no entities yet
    store.append_turns("b1", drafts("hey"), user_id="bob")
    assert store.merge_entities("b1", [BOB_SAID])

    found = store.get_user_entities("ana")
    assert sorted(found) == ["a1", "a2"]
    assert without_said(found["a1"]) == {"ana": ANA}
    assert found["a2"] == {}
    assert store.get_user_entities("nobody") == {}


async def test_a_users_entities_async(store):
    await store.aappend_turns("a1", drafts("hi"), user_id="ana")
    assert await store.amerge_entities("a1", [ANA_SAID])
    assert without_said((await store.aget_user_entities("ana"))["a1"]) == {"ana": ANA}


def test_entity_merges_from_many_threads_lose_no_fact(store):
    store.append_turns("s1", drafts("a"))

    def writer(n: int) -> None:
        for i in range(5):
            mention = EntityMention("Ana", {f"fact {n}-{i}": f"value {n}-{i}"}, 0, T0)
            assert store.merge_entities("s1", [mention])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    facts = store.get_entities("s1")["ana"].facts
    assert sorted(facts) == sorted(f"fact {n}-{i}" for n in range(6) for i in range(5))


def test_appended_entities_are_written_with_their_turns_and_name_them(store):
    store.append_turns("s1", drafts("hello", "hi"))
    said = EntityMention("Ana", {"city": "Porto"}, 1, T0)  # the second of the new turns

    appended = store.append_turns("s1", drafts("x", "I live in Porto"), mentions=[said])

    assert [turn.id for turn in appended.turns] == [2, 3]
    assert store.get_entities("s1")["ana"].facts["city"] == EntityFact("Porto", 3, T0)
    assert store.get_entities("s1")["ana"].turn_ids == (3,)


# -- incarnations and the fold lease --------------------------------------------------------


def test_the_head_tells_incarnation_owner_count_and_summary(store):
    appended = store.append_turns("s1", drafts("a", "b"), user_id="ana")
    head = store.head("s1")

    assert head == appended.head
    assert head.exists
    assert head.incarnation
    assert (head.user_id, head.turn_count, head.summary) == ("ana", 2, RunningSummary())
    assert store.compare_and_set_summary("s1", 0, SUMMARY, incarnation=head.incarnation)
    assert store.head("s1").summary == SUMMARY
    assert store.append_turns("s1", drafts("c")).head.incarnation == head.incarnation


def test_work_computed_from_an_erased_session_never_reaches_its_next_incarnation(store):
    old = store.append_turns("s1", drafts("erased text"), user_id="ana").head.incarnation
    store.delete_user("ana")
    new = store.append_turns("s1", drafts("new owner's text"), user_id="bob").head.incarnation
    assert new != old

    vector = np.ones((1, 4), dtype=np.float32)
    assert not store.put_vectors("s1", [0], vector, incarnation=old)
    assert not store.merge_entities("s1", [ANA_SAID], incarnation=old)
    assert not store.compare_and_set_summary("s1", 0, SUMMARY, incarnation=old)
    assert not store.acquire_fold("s1", old, "worker-1", 60)
    assert store.get_vectors("s1") == ([], None)
    assert store.get_entities("s1") == {}
    assert store.get_summary("s1") == RunningSummary()

    assert store.put_vectors("s1", [0], vector, incarnation=new)
    assert store.merge_entities("s1", [ANA_SAID], incarnation=new)
    assert store.compare_and_set_summary("s1", 0, SUMMARY, incarnation=new)
    assert store.get_vectors("s1")[0] == [0]


def test_one_worker_at_a_time_holds_the_fold_lease(store):
    incarnation = store.append_turns("s1", drafts("a")).head.incarnation
    assert store.acquire_fold("s1", incarnation, "worker-1", 60)
    assert not store.acquire_fold("s1", incarnation, "worker-2", 60)
    store.release_fold("s1", "worker-2")  # not its lease: nothing happens
    assert not store.acquire_fold("s1", incarnation, "worker-2", 60)

    store.release_fold("s1", "worker-1")
    assert store.acquire_fold("s1", incarnation, "worker-2", 60)
    # the summary's write releases the lease of the worker that folded
    assert store.compare_and_set_summary(
        "s1", 0, SUMMARY, incarnation=incarnation, holder="worker-2"
    )
    assert store.acquire_fold("s1", incarnation, "worker-3", 60)


def test_a_fold_lease_expires_and_a_failed_fold_keeps_it_for_its_back_off(store):
    incarnation = store.append_turns("s1", drafts("a")).head.incarnation
    assert store.acquire_fold("s1", incarnation, "worker-1", 0.3)
    store.release_fold("s1", "worker-1", keep_seconds=2.0)  # failed: back off
    time.sleep(0.6)  # the lease alone would have expired by now; the back-off has not
    assert not store.acquire_fold("s1", incarnation, "worker-2", 60)
    time.sleep(1.6)
    assert store.acquire_fold("s1", incarnation, "worker-2", 0.3)  # the back-off has passed
    time.sleep(0.6)
    assert store.acquire_fold("s1", incarnation, "worker-3", 60)  # worker-2's lease expired


def test_of_many_threads_one_takes_the_fold_lease(store):
    incarnation = store.append_turns("s1", drafts("a")).head.incarnation
    won: list[str] = []

    def take(name: str) -> None:
        if store.acquire_fold("s1", incarnation, name, 60):
            won.append(name)

    threads = [threading.Thread(target=take, args=(f"w{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1


# -- vectors ----------------------------------------------------------------------------------


def test_vectors_come_back_as_the_exact_float32_bytes(store):
    store.append_turns("s1", drafts("a", "b", "c", "d"))
    rng = np.random.default_rng(7)
    matrix = rng.standard_normal((3, 384)).astype(np.float32)
    matrix[0, :4] = [-0.0, 1e-45, 3.4e38, np.float32(1 / 3)]

    store.put_vectors("s1", [0, 1, 3], matrix)

    ids, vectors = store.get_vectors("s1")
    assert ids == [0, 1, 3]
    assert vectors.dtype == np.float32
    assert vectors.tobytes() == matrix.tobytes()
    ids, vectors = store.get_vectors("s1", 1)
    assert ids == [1, 3]
    assert vectors.tobytes() == matrix[1:].tobytes()
    assert store.get_vectors("s1", 4) == ([], None)


def test_a_turn_keeps_its_first_vector_and_late_vectors_fill_gaps(store):
    store.append_turns("s1", drafts("a", "b", "c"))
    first = np.full((2, 4), 0.5, dtype=np.float32)
    store.put_vectors("s1", [0, 2], first)

    store.put_vectors("s1", [0, 1], np.full((2, 4), 9.0, dtype=np.float32))

    ids, vectors = store.get_vectors("s1")
    assert ids == [0, 1, 2]
    assert vectors.tolist() == [[0.5] * 4, [9.0] * 4, [0.5] * 4]
    with pytest.raises(ValueError, match="one vector per turn id"):
        store.put_vectors("s1", [0, 1], np.ones((3, 4), dtype=np.float32))


# -- erasure ----------------------------------------------------------------------------------


def test_deleting_a_session_reports_what_it_held_and_leaves_nothing(backend, store):
    fill(store, "s1", "ana", turns=3)
    fill(store, "s2", "ana", turns=2)

    report = store.delete_session("s1")

    assert report == ErasureReport(("s1",), turns=3, vectors=2, summaries=1, entities=1)
    assert_unknown(store, "s1", user_id="ana")
    assert store.list_sessions("ana") == ["s2"]
    assert store.count_turns("s2") == 2
    assert store.delete_session("s1") == ErasureReport()
    store.delete_session("s2")
    if backend.kind != "memory":
        assert backend.traces() == []


def test_deleting_a_user_erases_every_session_and_link_of_theirs_only(backend, store):
    fill(store, "a1", "ana", turns=3)
    fill(store, "a2", "ana", turns=2)
    fill(store, "b1", "bob", turns=1)
    store.append_turns("anon", drafts("nobody's"))

    report = store.delete_user("ana")

    assert report == ErasureReport(("a1", "a2"), turns=5, vectors=4, summaries=2, entities=2)
    assert store.list_sessions("ana") == []
    assert_unknown(store, "a1")
    assert_unknown(store, "a2")
    assert store.list_sessions("bob") == ["b1"]
    assert store.count_turns("anon") == 1
    assert store.delete_user("ana") == ErasureReport()
    store.delete_user("bob")
    store.delete_session("anon")
    if backend.kind != "memory":
        assert backend.traces() == []


# -- ids --------------------------------------------------------------------------------------

ODD_IDS = [
    "a:b",
    "a:*",
    "*",
    "{a}",
    "a}",
    "{",
    "%2A",
    "o'brien",
    "x'; DROP TABLE turns; --",
    "line\nbreak",
    "tab\tand space",
    "ünïcødé 会话 🌊",
    "a",
]


def test_ids_with_separators_quotes_newlines_and_unicode_stay_isolated(backend, store):
    for n, session_id in enumerate(ODD_IDS):
        user_id = f"user {session_id}"
        store.append_turns(
            session_id,
            drafts(*[f"{session_id!r} turn {i}" for i in range(n % 3 + 1)]),
            user_id=user_id,
        )
        store.merge_entities(session_id, [EntityMention(f"E {session_id}", {}, None, T0)])

    for n, session_id in enumerate(ODD_IDS):
        texts = [turn.text for turn in store.get_turns(session_id)]
        assert texts == [f"{session_id!r} turn {i}" for i in range(n % 3 + 1)]
        assert store.session_user(session_id) == f"user {session_id}"
        assert store.list_sessions(f"user {session_id}") == [session_id]
        assert list(store.get_entities(session_id)) == [entity_key(f"E {session_id}")]

    assert store.delete_user("user *").sessions == ("*",)
    assert store.delete_session("a").sessions == ("a",)
    for n, session_id in enumerate(ODD_IDS):
        expected = 0 if session_id in ("*", "a") else n % 3 + 1
        assert store.count_turns(session_id) == expected
    if backend.kind in REDIS_KINDS:
        assert all(key.startswith(f"{backend.namespace}:") for key in backend.traces())


# -- expiry -----------------------------------------------------------------------------------


def test_sessions_expire_ttl_after_their_last_write(backend):
    # margins for a loaded machine: "kept" is written again 2 s before it would expire, and the
    # checks come 0.5 s after the others expire (a pause only adds to that) and 1.5 s before
    # "kept" does
    store = backend.open(ttl_seconds=4)
    for session_id in ("old", "idle", "kept"):
        fill(store, session_id, f"u-{session_id}")
    if backend.kind in REDIS_KINDS:
        client = backend.redis_client()
        keys = backend.traces()
        assert len(keys) == 3 * 5  # four keys per session and one per user
        assert all(client.pttl(key) > 0 for key in keys)
        client.close()

    time.sleep(2.0)
    store.append_turns("kept", drafts("still here"))  # slides the TTL of "kept"
    time.sleep(2.5)

    assert_unknown(store, "old", user_id="u-old")  # purged on access by SQL stores
    report = store.purge_expired()
    if backend.kind in REDIS_KINDS:
        assert report == ErasureReport()  # the server expired the keys itself
    else:
        assert report == ErasureReport(("idle",), turns=3, vectors=2, summaries=1, entities=1)
    assert_unknown(store, "idle", user_id="u-idle")
    assert store.count_turns("kept") == 4
    assert store.list_sessions("u-kept") == ["kept"]
    if backend.kind != "memory":
        assert backend.traces()
        assert all("kept" in trace for trace in backend.traces())


def test_a_store_without_ttl_keeps_sessions(backend):
    store = backend.open()
    fill(store, "s1", "ana")
    if backend.kind in REDIS_KINDS:
        client = backend.redis_client()
        assert all(client.pttl(key) == -1 for key in backend.traces())
        client.close()
    assert store.purge_expired() == ErasureReport()
    assert store.count_turns("s1") == 3


# -- persistence and faults -------------------------------------------------------------------


def test_a_new_store_object_reads_what_another_one_wrote(persistent_backend):
    writer = persistent_backend.open()
    fill(writer, "s1", "ana")
    writer.close()

    reader = persistent_backend.open()

    assert [turn.text for turn in reader.get_turns("s1")] == [f"s1 turn {i}" for i in range(3)]
    assert reader.session_user("s1") == "ana"
    assert reader.get_summary("s1") == SUMMARY
    assert without_said(reader.get_entities("s1")) == {"ana": ANA}
    assert reader.get_vectors("s1")[0] == [0, 1]


def test_a_write_the_server_refuses_raises_store_error_and_is_not_kept(persistent_backend):
    store = persistent_backend.open()
    store.append_turns("s1", drafts("kept"))
    persistent_backend.break_turn_storage("s1")

    with pytest.raises(StoreError) as failure:
        store.append_turns("s1", drafts("lost"))

    assert failure.value.__cause__ is not None
    assert store.name in str(failure.value)
    if persistent_backend.kind in SQL_KINDS:
        assert store.count_turns("s1") == 1


# -- async ------------------------------------------------------------------------------------


async def test_async_twins_do_what_the_sync_methods_do(store):
    appended = await store.aappend_turns("s1", drafts("a", "b", "c"), user_id="ana")
    turns = appended.turns
    incarnation = appended.head.incarnation

    assert [turn.id for turn in turns] == [0, 1, 2]
    assert store.get_turns("s1") == turns
    assert await store.acount_turns("s1") == 3
    assert await store.aget_turns("s1", 1) == turns[1:]
    assert await store.aget_turns_by_ids("s1", [2, 0]) == [turns[0], turns[2]]
    assert await store.asession_user("s1") == "ana"
    assert await store.alist_sessions("ana") == ["s1"]
    assert await store.acompare_and_set_summary("s1", 0, SUMMARY)
    assert await store.aget_summary("s1") == SUMMARY
    assert await store.ahead("s1") == store.head("s1")
    assert await store.amerge_entities("s1", [ANA_SAID], incarnation=incarnation)
    assert without_said(await store.aget_entities("s1")) == {"ana": ANA}
    assert await store.aacquire_fold("s1", incarnation, "me", 60)
    await store.arelease_fold("s1", "me")
    assert await store.aput_vectors("s1", [1], np.ones((1, 4), dtype=np.float32))
    ids, vectors = await store.aget_vectors("s1")
    assert (ids, vectors.tolist()) == ([1], [[1.0] * 4])
    assert await store.apurge_expired() == ErasureReport()
    assert await store.adelete_session("nobody") == ErasureReport()
    report = await store.adelete_user("ana")
    assert report == ErasureReport(("s1",), turns=3, vectors=1, summaries=1, entities=1)
    assert store.count_turns("s1") == 0
    await store.aclose()
