"""HybridMemoryStore against LangGraph's own InMemoryStore, on SQLite, Redis and PostgreSQL.

The same operation sequence runs on LangGraph's ``InMemoryStore`` (the reference) and on a
``HybridMemoryStore`` over each persistent store; the results must be the same, ordering aside
where LangGraph leaves it open (a search without a query). With ``dense_weight=1`` the hybrid
score is the dense one LangGraph computes, so even ranked searches must agree, order included.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from cryptography.fernet import Fernet
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from langchain_hybrid_memory import ConfigError, DecryptionError, HybridMemoryStore
from langchain_hybrid_memory.stores.encryption import is_sealed
from tests.integration.backends import POSTGRES_URL, Backend
from tests.unit.store_fixtures import cluster_port, open_backend  # noqa: F401 - fixture

if TYPE_CHECKING:
    from collections.abc import Iterator

    from langchain_core.embeddings import Embeddings
    from langgraph.store.base import BaseStore

pytestmark = pytest.mark.integration

KINDS = ("sqlite", "redis", "redis-cluster", "postgres")
SECRET = "Ana's passport number is X-4471-Q"


@pytest.fixture(params=KINDS)
def backend(request, tmp_path) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path)


def _store(
    backend: Backend, embeddings: Embeddings, store: Any = None, **options: Any
) -> HybridMemoryStore:
    options.setdefault("index", {"embed": embeddings, "dims": 384})
    return HybridMemoryStore(store or backend.open(), **options)


def _shape(result: Any) -> Any:
    """A result without what may differ: timestamps, and scores (only whether there is one)."""
    if result is None:
        return None
    if isinstance(result, list):
        return [_shape(entry) for entry in result]
    if isinstance(result, tuple):
        return result
    shaped = (result.namespace, result.key, result.value)
    if hasattr(result, "score"):
        return (*shaped, result.score is not None)
    return shaped


def _unordered(result: list[Any]) -> list[Any]:
    return sorted(_shape(result), key=repr)


DOCS = {
    (("docs", "ana"), "a"): {"text": "Ana lives in Porto", "n": 1, "tag": "home"},
    (("docs", "ana"), "b"): {
        "text": "Ana is allergic to peanuts",
        "n": 5,
        "tag": "food",
        "meta": {"lang": "en"},
    },
    (("docs", "bob"), "c"): {"text": "Bob plays the cello in an orchestra", "n": 3, "tag": "x"},
    (("docs", "bob", "old"), "d"): {"text": "Bob used to live in Rome", "n": 7, "tag": "x"},
    (("other",), "e"): {"text": "notes about the weather in spring", "n": 2, "tag": "x"},
}


def _script(store: BaseStore) -> list[Any]:
    """Every public operation, in an order that exercises overwrite, delete and re-put."""
    out: list[Any] = []
    for (namespace, key), value in DOCS.items():
        if key == "c":
            store.put(namespace, key, value, index=["text"])
        elif key == "d":
            store.put(namespace, key, value, index=False)
        else:
            store.put(namespace, key, value)
    out.append(_shape(store.get(("docs", "ana"), "a")))
    out.append(_shape(store.get(("docs", "ana"), "missing")))
    store.put(("docs", "ana"), "a", {"text": "Ana moved to Lisbon", "n": 4, "tag": "home"})
    out.append(_shape(store.get(("docs", "ana"), "a")))
    store.delete(("docs", "bob"), "c")
    out.append(_shape(store.get(("docs", "bob"), "c")))
    store.put(("docs", "bob"), "c", DOCS[(("docs", "bob"), "c")], index=["text"])

    # searches without a query: LangGraph leaves the order open, compare as sets
    out.append(_unordered(store.search(("docs",), limit=100)))
    out.append(_unordered(store.search((), limit=100)))
    out.append(_unordered(store.search(("docs", "ana"))))
    out.append(_unordered(store.search(("docs", "bob"))))  # and the namespaces under it
    out.append(_unordered(store.search(("nope",))))
    out.append(_unordered(store.search(("doc",))))  # a prefix is whole labels, not characters
    for condition in (
        {"n": {"$gt": 3}},
        {"n": {"$gte": 4}},
        {"n": {"$lt": 3}},
        {"n": {"$lte": 3}},
        {"n": {"$ne": 4}},
        {"n": {"$eq": 5}},
        {"tag": "x"},
        {"tag": "x", "n": {"$gt": 2, "$lt": 7}},
        {"meta": {"lang": "en"}},
        {"tag": "nothing"},
    ):
        out.append(_unordered(store.search(("docs",), filter=condition, limit=100)))
    out.append(len(store.search((), limit=2)))
    pages = [store.search((), limit=2, offset=offset) for offset in (0, 2, 4)]
    out.append(sorted(repr(_shape(item)) for page in pages for item in page))

    # ranked searches: the same order as LangGraph's dense search (dense_weight=1)
    out.append(_shape(store.search(("docs",), query="who has a food allergy?", limit=10)))
    out.append(_shape(store.search(("docs",), query="music instrument", limit=2)))
    out.append(_shape(store.search(("docs",), query="music instrument", limit=2, offset=1)))
    out.append(_shape(store.search(("docs",), query="where does someone live", filter={"n": 4})))
    out.append(_shape(store.search((), query="weather", limit=1)))

    # namespaces
    out.append(store.list_namespaces())
    out.append(store.list_namespaces(prefix=("docs",)))
    out.append(store.list_namespaces(prefix=("docs", "*")))
    out.append(store.list_namespaces(suffix=("old",)))
    out.append(store.list_namespaces(suffix=("*", "old")))
    out.append(store.list_namespaces(prefix=("docs",), suffix=("bob",)))
    out.append(store.list_namespaces(max_depth=1))
    out.append(store.list_namespaces(prefix=("docs",), max_depth=2))
    out.append(store.list_namespaces(limit=2, offset=1))

    # a batch: reads see the store as it was before the batch's puts; the last put wins
    out.append(
        _shape(
            store.batch(
                [
                    PutOp(("docs", "ana"), "f", {"text": "first", "n": 0}),
                    GetOp(("docs", "ana"), "f"),
                    PutOp(("docs", "ana"), "f", {"text": "second", "n": 0}),
                    ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("docs", "ana")),)),
                    SearchOp(("docs", "ana"), filter={"n": 5}),
                    PutOp(("docs", "bob", "old"), "d", None),
                ]
            )
        )
    )
    out.append(_shape(store.get(("docs", "ana"), "f")))
    out.append(_shape(store.get(("docs", "bob", "old"), "d")))
    # InMemoryStore still lists a namespace emptied by a delete; the database stores do not
    out.append([ns for ns in store.list_namespaces() if store.search(ns)])
    # last: InMemoryStore lists a namespace once a get looked into it, even when empty
    out.append(_shape(store.get(("docs",), "a")))  # a namespace's items are not its parent's
    return out


def test_it_answers_every_operation_as_langgraphs_in_memory_store(backend, embeddings):
    reference = InMemoryStore(index={"embed": embeddings, "dims": 384})
    store = _store(backend, embeddings, dense_weight=1.0)

    assert _script(store) == _script(reference)
    assert ("docs", "bob", "old") not in store.list_namespaces()  # emptied: gone, as in SQL


@pytest.mark.parametrize(
    "bad",
    [
        lambda s: s.put(("langgraph", "x"), "k", {}),
        lambda s: s.put(("a.b",), "k", {}),
        lambda s: s.put((), "k", {}),
        lambda s: s.put(("a", ""), "k", {}),
        lambda s: s.get(("a.b",), "k"),
        lambda s: s.search(("a.b",)),
        lambda s: s.list_namespaces(prefix=("a.b",)),
    ],
)
def test_a_bad_namespace_is_refused_as_langgraph_refuses_it(bad, tmp_path, embeddings):
    reference = InMemoryStore()
    store = HybridMemoryStore(f"sqlite:///{tmp_path / 'items.db'}", index={"embed": embeddings})
    with pytest.raises(InvalidNamespaceError):
        bad(reference)
    with pytest.raises(InvalidNamespaceError):
        bad(store)
    assert store.search(()) == []


def test_ops_given_to_batch_are_validated_too(tmp_path, embeddings):
    # LangGraph asks stores keeping namespaces as dotted text to check ops given to batch
    store = HybridMemoryStore(f"sqlite:///{tmp_path / 'items.db'}", index={"embed": embeddings})
    store.put(("x", "y"), "k", {"text": "one"})
    with pytest.raises(InvalidNamespaceError):
        store.batch([GetOp(("x.y",), "k")])
    with pytest.raises(InvalidNamespaceError):
        store.batch([PutOp(("x.y",), "k", {"text": "two"})])
    assert [item.key for item in store.search(())] == ["k"]


def test_two_workers_on_one_store_see_each_others_writes(backend, embeddings):
    first, second = _store(backend, embeddings), _store(backend, embeddings)

    first.put(("memories", "ana"), "home", {"text": "Ana lives in Porto"})
    second.put(("memories", "ana"), "food", {"text": "Ana is allergic to peanuts"})

    assert second.get(("memories", "ana"), "home").value == {"text": "Ana lives in Porto"}
    found = first.search(("memories",), query="peanut allergy", limit=1)
    assert [item.key for item in found] == ["food"]
    assert found[0].score is not None
    assert first.list_namespaces() == second.list_namespaces() == [("memories", "ana")]
    created = first.get(("memories", "ana"), "home").created_at
    second.put(("memories", "ana"), "home", {"text": "Ana moved to Lisbon"})
    updated = first.get(("memories", "ana"), "home")
    assert updated.value == {"text": "Ana moved to Lisbon"}
    assert updated.created_at == created < updated.updated_at
    assert [i.key for i in first.search(("memories",), query="Lisbon", limit=1)] == ["home"]
    second.delete(("memories", "ana"), "food")
    assert first.get(("memories", "ana"), "food") is None


def test_async_twins_give_what_the_sync_methods_give(backend, embeddings):
    store = _store(backend, embeddings)

    async def scenario() -> list[Any]:
        await store.aput(("notes", "ana"), "a", {"text": "Ana sings in a choir", "n": 1})
        await store.aput(("notes", "ana"), "b", {"text": "Ana collects stamps", "n": 2})
        await store.aput(("notes", "bob"), "c", {"text": "Bob builds boats", "n": 3})
        await store.adelete(("notes", "bob"), "c")
        got = await store.aget(("notes", "ana"), "a")
        ranked = await store.asearch(("notes",), query="singing", limit=1)
        filtered = await store.asearch(("notes",), filter={"n": {"$gte": 2}})
        names = await store.alist_namespaces(prefix=("notes",))
        batch = await store.abatch([GetOp(("notes", "ana"), "b"), SearchOp(("notes", "bob"))])
        report = await store.aforget_user("ana")
        return [got, ranked, filtered, names, batch, report, await store.asearch(())]

    got, ranked, filtered, names, batch, report, left = asyncio.run(scenario())

    assert got.value == {"text": "Ana sings in a choir", "n": 1}
    assert [item.key for item in ranked] == ["a"]
    assert [item.key for item in filtered] == ["b"]
    assert names == [("notes", "ana")]
    assert batch[0].key == "b"
    assert batch[1] == []
    assert (report.items, report.namespaces) == (2, (("notes", "ana"),))
    assert left == []
    assert store.get(("notes", "ana"), "b") is None  # the sync view agrees


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def test_items_expire_after_their_ttl_unless_read(backend, embeddings):
    clock = Clock()
    store = _store(backend, embeddings, ttl={"default_ttl": 10}, clock=clock)
    other = _store(backend, embeddings, ttl={"refresh_on_read": False}, clock=clock)

    store.put(("t",), "default", {"text": "ten minutes"})
    store.put(("t",), "short", {"text": "two minutes"}, ttl=2)
    store.put(("t",), "forever", {"text": "no ttl"}, ttl=None)
    store.put(("t",), "read", {"text": "kept alive by reads"}, ttl=2)

    clock.now += 90
    assert store.get(("t",), "read") is not None  # refreshes its TTL: 2 minutes from now
    clock.now += 60  # 2.5 minutes after the puts
    assert store.get(("t",), "short") is None
    assert other.get(("t",), "short") is None  # expired for every worker
    assert other.get(("t",), "read") is not None  # this one does not refresh on read
    assert {i.key for i in store.search(("t",), limit=10)} == {"default", "forever", "read"}
    clock.now += 120
    assert store.get(("t",), "read", refresh_ttl=False) is None
    assert {i.key for i in store.search(("t",), query="minutes")} == {"default", "forever"}
    clock.now += 10 * 60
    assert [i.key for i in store.search(("t",))] == ["forever"]
    assert store.list_namespaces() == [("t",)]

    assert store.sweep_ttl() == 3
    assert other.sweep_ttl() == 0
    store.put(("t",), "short", {"text": "again"}, ttl=1)  # a new item: created now
    assert store.get(("t",), "short").created_at.timestamp() == pytest.approx(clock.now)


def _raw_items(backend: Backend) -> list[tuple[bytes, bytes | None]]:
    """The stored record and vectors of every item, as the database holds them."""
    if "redis" in backend.kind:
        client = backend.redis_client()
        try:
            return [
                (client.hget(key, "r"), client.hget(key, "x") or None)
                for key in client.scan_iter(match=f"{backend.namespace}:lg:*")
                if client.type(key) == b"hash"
            ]
        finally:
            client.close()
    query = "SELECT record, vectors FROM {}lg_items"
    if backend.kind == "postgres":
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            rows = connection.execute(query.format(f'"{backend.namespace}".')).fetchall()
    else:
        with contextlib.closing(sqlite3.connect(backend.tmp_path / "memory.db")) as connection:
            rows = connection.execute(query.format("")).fetchall()
    return [
        (record.encode() if isinstance(record, str) else bytes(record), _bytes(vectors))
        for record, vectors in rows
    ]


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


@pytest.fixture(params=KINDS)
def sealed(request, tmp_path) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path, keys=Fernet.generate_key())


def test_values_and_vectors_are_encrypted_at_rest_with_the_stores_key(sealed, embeddings):
    store = _store(sealed, embeddings)
    store.put(("memories", "ana"), "doc", {"text": SECRET})
    plain = HybridMemoryStore(sealed.open(keys=None), index={"embed": embeddings})

    ((record, vectors),) = _raw_items(sealed)
    assert is_sealed(record)
    assert b"X-4471-Q" not in record
    assert vectors is not None
    assert is_sealed(vectors)
    assert store.get(("memories", "ana"), "doc").value == {"text": SECRET}
    assert [i.key for i in store.search(("memories",), query="passport")] == ["doc"]
    wrong = HybridMemoryStore(sealed.open(keys=Fernet.generate_key()), index={"embed": embeddings})
    with pytest.raises(DecryptionError):
        wrong.put(("memories", "ana"), "other", {"text": "refused"})
    with pytest.raises(DecryptionError):
        wrong.get(("memories", "ana"), "doc")
    with pytest.raises(DecryptionError):
        plain.put(("memories", "ana"), "plain", {"text": "would be stored in clear"})
    assert [i.key for i in store.search(())] == ["doc"]


def test_forget_user_erases_every_namespace_naming_the_user(backend, embeddings):
    store = _store(backend, embeddings)
    other_worker = _store(backend, embeddings)
    store.put(("memories", "ana"), "a", {"text": "Ana lives in Porto"})
    store.put(("memories", "ana", "work"), "b", {"text": "Ana is a nurse"})
    store.put(("ana", "preferences"), "c", {"text": "dark mode"})
    store.put(("memories", "anabel"), "d", {"text": "Anabel is someone else"})
    store.put(("memories", "bob"), "e", {"text": "Bob lives in Rome"})

    assert any(b"Porto" in record for record, _ in _raw_items(backend))  # plain: no key
    report = other_worker.forget_user("ana")

    assert report.items == 3
    assert report.namespaces == (
        ("ana", "preferences"),
        ("memories", "ana"),
        ("memories", "ana", "work"),
    )
    assert store.list_namespaces() == [("memories", "anabel"), ("memories", "bob")]
    assert store.search(("memories", "ana")) == []
    assert all(b"Porto" not in record for record, _ in _raw_items(backend))
    assert len(_raw_items(backend)) == 2
    assert other_worker.forget_user("ana").items == 0

    removed = store.delete_namespace(("memories",))
    assert (removed.items, removed.namespaces) == (2, (("memories", "anabel"), ("memories", "bob")))
    assert store.list_namespaces() == []


def test_forget_user_of_the_memory_reaches_the_langgraph_store_on_the_same_database(
    backend, embeddings
):
    from langchain_core.messages import AIMessage, HumanMessage

    from langchain_hybrid_memory import HybridMemory

    shared = backend.open()  # one database for the conversation memory and the store
    memory = HybridMemory(store=shared, embeddings=embeddings)
    store = HybridMemoryStore(shared, index={"embed": embeddings})
    memory.add_messages("s1", [HumanMessage("I live in Porto"), AIMessage("Noted")], user_id="ana")
    memory.add_messages("s2", [HumanMessage("I live in Rome")], user_id="bob")
    store.put(("memories", "ana"), "home", {"text": "Ana lives in Porto"})
    store.put(("memories", "bob"), "home", {"text": "Bob lives in Rome"})

    report = memory.forget_user("ana", store=store)

    assert (report.sessions, report.turns) == (("s1",), 2)
    assert (report.items, report.namespaces) == (1, (("memories", "ana"),))
    assert memory.transcript("s1") == []
    assert store.list_namespaces() == [("memories", "bob")]
    again = asyncio.run(memory.aforget_user("ana", store=store))
    assert (again.sessions, again.items) == ((), 0)
    with pytest.raises(ConfigError):
        memory.forget_user("bob", store=InMemoryStore())
    assert store.get(("memories", "bob"), "home") is not None  # refused before erasing
    assert len(memory.transcript("s2")) == 1


def test_key_rotation_reencrypts_the_items_with_the_memory(sealed, embeddings):
    old_key, new_key = sealed.keys, Fernet.generate_key()
    store = _store(sealed, embeddings)
    store.put(("memories", "ana"), "a", {"text": "Ana lives in Porto"})
    store.put(("memories", "bob"), "b", {"text": "Bob lives in Rome"}, index=False)

    rotating = _store(sealed, embeddings, store=sealed.open(keys=[new_key, old_key]))
    assert rotating.reencrypt() == 2
    assert rotating.reencrypt() == 0

    rotated = HybridMemoryStore(sealed.open(keys=new_key), index={"embed": embeddings})
    assert rotated.get(("memories", "ana"), "a").value == {"text": "Ana lives in Porto"}
    assert [i.key for i in rotated.search(("memories",), query="Porto", limit=1)] == ["a"]
    rotated.put(("memories", "ana"), "c", {"text": "written under the new key"})
    with pytest.raises(DecryptionError):
        HybridMemoryStore(sealed.open(keys=old_key), index={"embed": embeddings}).get(
            ("memories", "ana"), "a"
        )


def test_concurrent_writers_on_two_objects_lose_nothing(backend, embeddings):
    from concurrent.futures import ThreadPoolExecutor

    workers = [_store(backend, embeddings), _store(backend, embeddings)]

    def write(worker: int) -> None:
        store = workers[worker]
        for i in range(15):
            store.put(("shared",), f"w{worker}-{i}", {"n": i}, index=False)
            store.put(("shared",), "last", {"by": worker, "n": i}, index=False)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(write, [0, 1]))

    for store in workers:
        found = store.search(("shared",), limit=100)
        assert len(found) == 31
        assert store.get(("shared",), "last").value["n"] == 14
