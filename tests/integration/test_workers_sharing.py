"""Two workers sharing one store: nothing lost, ownership held, across processes' objects.

"Two workers" are two ``HybridMemory`` objects, each with its own store object, on one
persistent store (SQLite file, Redis, Redis Cluster, PostgreSQL): what a second process of the
same application would see.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory import HybridMemory, SessionOwnershipError
from tests.unit.store_fixtures import cluster_port, open_backend  # noqa: F401 - fixture

if TYPE_CHECKING:
    from collections.abc import Iterator

    from langchain_core.embeddings import Embeddings

    from tests.integration.backends import Backend

pytestmark = pytest.mark.integration

WORKER_KINDS = ("sqlite", "redis", "redis-cluster", "postgres")
ROUNDS = 12


@pytest.fixture(params=WORKER_KINDS)
def backend(request, tmp_path) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path)


def workers(backend: Backend, embeddings: Embeddings, count: int = 2) -> list[HybridMemory]:
    return [
        HybridMemory(store=backend.open(), embeddings=embeddings, window_turns=4)
        for _ in range(count)
    ]


def test_two_workers_writing_one_session_lose_no_turn_fact_or_vector(backend, embeddings):
    first, second = workers(backend, embeddings)
    failures: list[BaseException] = []

    def chat(memory: HybridMemory, name: str) -> None:
        try:
            for i in range(ROUNDS):
                memory.build_context("shared", f"what did {name} say about topic {i}?")
                memory.add_messages(
                    "shared",
                    [HumanMessage(f"{name} note {i}: bring item {i}"), AIMessage(f"ok {name} {i}")],
                    user_id="team",
                    entities={"Team": {f"{name} item {i}": f"item {i}"}},
                )
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    threads = [
        threading.Thread(target=chat, args=(first, "ana")),
        threading.Thread(target=chat, args=(second, "bob")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first.close()
    second.close()

    assert failures == []
    reader = HybridMemory(store=backend.open(), embeddings=embeddings)
    texts = [turn.text for turn in reader.turns("shared")]
    assert sorted(texts) == sorted(
        [f"{n} note {i}: bring item {i}" for n in ("ana", "bob") for i in range(ROUNDS)]
        + [f"ok {n} {i}" for n in ("ana", "bob") for i in range(ROUNDS)]
    )
    facts = reader.store.get_entities("shared")["team"].facts
    assert sorted(facts) == sorted(f"{n} item {i}" for n in ("ana", "bob") for i in range(ROUNDS))
    ids, _ = reader.store.get_vectors("shared")
    assert ids == list(range(len(texts))), "every turn has its vector, once"
    reader.close()


def test_a_session_another_worker_gave_to_a_user_is_refused_to_everyone_else(backend, embeddings):
    first, second = workers(backend, embeddings)
    first.add_messages("private", [HumanMessage("I'm Ana")], user_id="ana")

    with pytest.raises(SessionOwnershipError):
        second.add_messages("private", [HumanMessage("I'm Bob")], user_id="bob")
    with pytest.raises(SessionOwnershipError):
        second.build_context("private", "who is this?", user_id="bob")
    with pytest.raises(SessionOwnershipError):
        second.forget_session("private", user_id="bob")

    assert [m.text for m in second.transcript("private", user_id="ana")] == ["I'm Ana"]
    assert second.store.list_sessions("bob") == []
    first.close()
    second.close()
