"""HybridMemoryStore at its edges: odd labels and keys, bad input, many workers racing, erasure.

Each test is an attack found in review (#13 item 2): a user or operator doing something unusual
that must either work as LangGraph's ``InMemoryStore`` does or fail with a clear error, on every
store, and many workers that must never lose or resurrect an item.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
from langchain_core.embeddings import Embeddings
from langgraph.store.base import PutOp
from langgraph.store.memory import InMemoryStore

from langchain_hybrid_memory import ConfigError, HybridMemoryStore, InvalidInputError
from tests.integration.backends import PERSISTENT_KINDS, Backend
from tests.unit.store_fixtures import cluster_port, open_backend  # noqa: F401 - fixture

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


pytestmark = pytest.mark.integration

KINDS = ("sqlite", "redis", "redis-cluster", "postgres")
T0 = 1_900_000_000.0


@pytest.fixture(params=KINDS)
def backend(request, tmp_path) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path)


def _store(backend: Backend, embeddings: Embeddings, **options: Any) -> HybridMemoryStore:
    options.setdefault("index", {"embed": embeddings, "dims": 384})
    return HybridMemoryStore(backend.open(), **options)


# -- odd labels and keys ---------------------------------------------------------------------

ODD_LABELS = [
    "a/b",  # '/' bounds the prefix range of '.'-joined namespaces
    "a%b",  # SQL LIKE wildcards
    "a_b",
    "*",  # Redis glob characters
    "a?",
    "[x]",
    "{tag}",  # a Redis Cluster hash tag
    "a:b",
    "it's",
    'say "hi"',
    "a\\b",
    "ünïcødé 😀",
    " ",
    "x" * 1000,
]


def test_odd_labels_and_keys_are_kept_apart_as_langgraphs_in_memory_store_keeps_them(
    backend, embeddings
):
    store, reference = _store(backend, embeddings), InMemoryStore()
    keys = ["", "%", "_", "*", "?", "[a-z]", "a.b", "ünï 😀"]
    for target in (store, reference):
        for label in ODD_LABELS:
            target.put(("n", label), "k", {"label": label}, index=False)
            target.put(("n", label, "deeper"), "k", {"label": label}, index=False)
        target.put(("n", "a"), "k", {"label": "a"}, index=False)  # a prefix of several labels
        for key in keys:
            target.put(("keys",), key, {"key": key}, index=False)

    for target in (store, reference):
        assert len(target.search(("n",), limit=1000)) == 2 * len(ODD_LABELS) + 1
        assert [i.value for i in target.search(("n", "a"))] == [{"label": "a"}]
        assert [i.value for i in target.search(("n", "*"), limit=10)] == [{"label": "*"}] * 2
        assert target.list_namespaces(prefix=("n", "a%b")) == [("n", "a%b"), ("n", "a%b", "deeper")]
        assert {i.key for i in target.search(("keys",), limit=100)} == set(keys)
    assert store.list_namespaces(limit=1000) == reference.list_namespaces(limit=1000)
    for label in ODD_LABELS:
        assert store.get(("n", label), "k").value == {"label": label}
    for key in keys:
        assert store.get(("keys",), key).value == {"key": key}
    assert store.delete_namespace(("n", "a")).items == 1  # not "a%b", "a_b", "a/b", "a?", ...
    assert len(store.search(("n",), limit=1000)) == 2 * len(ODD_LABELS)


@pytest.mark.parametrize(
    "bad",
    [
        lambda s: s.put(("n", "\ud800"), "k", {"v": 1}),  # a lone surrogate: no UTF-8 for it
        lambda s: s.put(("n",), "\udfff", {"v": 1}),
        lambda s: s.put(("n",), "k", {"v": "\ud800"}),
        lambda s: s.get(("n",), "\ud800"),
        lambda s: s.search(("\ud800",)),
        lambda s: s.search(("n",), query="a\ud800"),
        lambda s: s.search(("n",), query=42),
        lambda s: s.delete_namespace(("n", "\ud800")),
        lambda s: s.forget_user("\ud800"),
        lambda s: s.put(("n",), "k\x00", {"v": 1}),  # PostgreSQL text cannot hold NUL
        lambda s: s.put(("n",), "k" * 3000, {"v": 1}),  # PostgreSQL's index row limit
        lambda s: s.put(("n", "x" * 1500), "k" * 1500, {"v": 1}),
        lambda s: s.search(("n",), limit=-1),
        lambda s: s.search(("n",), offset=-1),
        lambda s: s.search(("n",), limit="10"),
        lambda s: s.list_namespaces(limit=-1),
        lambda s: s.put(("n",), "k", {"v": 1}, ttl=1e13),  # Redis cannot expire it
        lambda s: s.put(("n",), "k", {"v": 1}, ttl=float("inf")),
        lambda s: s.search(("n",), filter={"v": {"$gt": 0, "w": 1}}),  # an operator dict
        lambda s: s.search(("n",), filter={"meta": {"v": {"$regex": "x"}}}),  # nested
    ],
)
def test_input_no_store_can_keep_is_refused_alike_on_every_store(backend, embeddings, bad):
    store = _store(backend, embeddings)
    store.put(("n",), "kept", {"v": 1}, index=False)

    with pytest.raises(InvalidInputError):
        bad(store)

    assert [item.key for item in store.search((), limit=10)] == ["kept"]


def test_a_value_needing_no_index_may_hold_any_json(backend, embeddings):
    store = _store(backend, embeddings)
    value = {"nul": "a\x00b", "nested": {"list": [1, 2.5, None, True]}, "emoji": "😀", "": 0}
    store.put(("n",), "k", value, index=False)
    assert store.get(("n",), "k").value == value


def test_equal_scores_page_the_same_way_every_time(backend, embeddings):
    store = _store(backend, embeddings)
    for n in range(12):  # the same text: every score ties
        store.put(("same",), f"k{n:02d}", {"text": "identical text"})

    pages = [store.search(("same",), query="identical", limit=4, offset=o) for o in (0, 4, 8)]

    assert [item.key for page in pages for item in page] == [f"k{n:02d}" for n in range(12)]


def test_an_async_search_of_many_items_opens_them_off_the_event_loop(backend, embeddings):
    store = _store(backend, embeddings)
    store.batch([PutOp(("many",), f"k{n}", {"n": n}, index=False) for n in range(100)])
    threads: list[threading.Thread] = []
    opened = store._rows.opened

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return opened(*args, **kwargs)

    store._rows.opened = recording  # type: ignore[method-assign]

    async def scenario() -> tuple[list[Any], threading.Thread]:
        found = await store.asearch(("many",), filter={"n": {"$gte": 90}}, limit=100)
        return found, threading.current_thread()

    found, loop_thread = asyncio.run(scenario())

    assert sorted(item.value["n"] for item in found) == list(range(90, 100))
    assert threads
    assert loop_thread not in threads


def test_a_listing_pages_newest_first_then_by_namespace_and_key_on_every_store(backend, embeddings):
    clock = [T0]
    store = _store(backend, embeddings, clock=lambda: clock[0])
    store.batch(  # one batch: one updated_at, so the ties decide
        [PutOp(ns, key, {"v": 1}, index=False) for ns in [("a", "b"), ("a-x",)] for key in "yx"]
    )
    clock[0] += 1
    store.put(("a", "b"), "newest", {"v": 2}, index=False)

    pages = [[(i.namespace, i.key) for i in store.search((), limit=2, offset=o)] for o in (0, 2, 4)]

    assert pages == [
        [(("a", "b"), "newest"), (("a-x",), "x")],  # "a-x" < "a.b" as stored
        [(("a-x",), "y"), (("a", "b"), "x")],
        [(("a", "b"), "y")],
    ]
    assert [i.key for i in store.search(("a",), limit=1, offset=1)] == ["x"]


def test_putting_an_unchanged_value_again_does_not_embed_it_again(backend, embeddings):
    class Counting(Embeddings):
        texts: ClassVar[list[str]] = []

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            self.texts.extend(texts)
            return embeddings.embed_documents(texts)

        def embed_query(self, text: str) -> list[float]:
            return embeddings.embed_query(text)

    index = {"embed": Counting(), "dims": 384, "fields": ["text"]}
    store, other_worker = (
        _store(backend, embeddings, index=index),
        _store(backend, embeddings, index=index),
    )
    store.put(("m",), "a", {"text": "Ana lives in Porto", "n": 1})
    store.put(("m",), "b", {"text": "Bob plays the cello", "n": 1})

    other_worker.put(("m",), "a", {"text": "Ana lives in Porto", "n": 1})  # unchanged
    other_worker.put(("m",), "b", {"text": "Bob plays the cello", "n": 2})  # text unchanged
    other_worker.put(("m",), "b", {"text": "Bob plays the viola", "n": 2})  # text changed
    other_worker.put(("m",), "a", {"text": "Ana lives in Porto", "n": 1}, index=["n"])

    assert Counting.texts == [
        "Ana lives in Porto",
        "Bob plays the cello",
        "Bob plays the viola",
        "1",
    ]
    store.put(("m",), "a", {"text": "Ana lives in Porto", "n": 1})
    assert [i.key for i in store.search(("m",), query="Where does Ana live?", limit=1)] == ["a"]


def test_an_item_may_live_a_century_and_be_refreshed(backend, embeddings):
    store = _store(backend, embeddings, ttl={"default_ttl": 100 * 366 * 24 * 60})
    store.put(("n",), "k", {"text": "kept for a long time"})

    assert store.get(("n",), "k").value == {"text": "kept for a long time"}  # refreshes it
    assert [item.key for item in store.search(("n",), query="long time")] == ["k"]
    with pytest.raises(ConfigError):
        _store(backend, embeddings, ttl={"default_ttl": 1e13})
    with pytest.raises(ConfigError):
        store.start_ttl_sweeper(sweep_interval_minutes=-1)


# -- many workers ----------------------------------------------------------------------------


def test_two_sweepers_never_delete_an_item_put_again_since_it_expired(backend, embeddings):
    old = _store(backend, embeddings, clock=lambda: T0)
    new = _store(backend, embeddings, clock=lambda: T0 + 600)
    sweepers = [_store(backend, embeddings, clock=lambda: T0 + 600) for _ in range(2)]
    keys = [f"k{n}" for n in range(10)]
    start = threading.Barrier(3)

    def sweep(sweeper: HybridMemoryStore) -> int:
        start.wait()
        return sweeper.sweep_ttl()

    def put_again() -> int:
        start.wait()
        for key in keys:
            new.put(("t",), key, {"v": "fresh"}, index=False)
        return 0

    lost = swept = 0
    with ThreadPoolExecutor(3) as pool:
        for _ in range(40):
            for key in keys:
                old.put(("t",), key, {"v": "expired"}, ttl=1, index=False)
            futures = [pool.submit(sweep, s) for s in sweepers] + [pool.submit(put_again)]
            swept += sum(future.result() for future in futures)
            lost += sum(new.get(("t",), key) is None for key in keys)

    assert lost == 0
    assert swept <= 40 * len(keys)  # each expired version is swept once at most


RACE_ROUNDS = 200


def race_on_one_store(kind: str, tmp_path: Path, namespace: str, worker: int, barrier: Any) -> None:
    """Run in a spawned process: put, refresh and delete the same keys as the other worker."""
    from langchain_hybrid_memory import HybridMemoryStore

    store = HybridMemoryStore(
        Backend(kind, tmp_path, namespace=namespace).open(),
        index={"embed": lambda texts: [[1.0] for _ in texts], "dims": 1},  # nothing is indexed
    )
    barrier.wait(timeout=120)
    for i in range(RACE_ROUNDS):
        store.put(("race", "gone"), "shared", {"by": worker, "i": i}, ttl=5, index=False)
        store.get(("race", "gone"), "shared")  # refreshes the TTL, maybe after a delete
        store.delete(("race", "gone"), "shared")
        store.put(("race", "kept"), f"w{worker}-{i}", {"i": i}, index=False)
        if i % 2:
            store.delete(("race", "kept"), f"w{worker}-{i}")
        store.search(("race", "gone"))  # refreshes too
    store.delete(("race", "gone"), "shared")
    store.store.close()


@pytest.mark.parametrize("kind", PERSISTENT_KINDS)
def test_two_processes_racing_on_the_same_keys_lose_and_resurrect_nothing(kind, tmp_path):
    backend = Backend(kind, tmp_path)
    workers: list[Any] = []
    try:
        store = HybridMemoryStore(backend.open(), index={"embed": lambda t: [[1.0]], "dims": 1})
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(2)
        workers = [
            context.Process(
                target=race_on_one_store, args=(kind, tmp_path, backend.namespace, n, barrier)
            )
            for n in range(2)
        ]
        for process in workers:
            process.start()
        for process in workers:
            process.join(timeout=300)
        assert [process.exitcode for process in workers] == [0, 0]

        assert store.get(("race", "gone"), "shared") is None
        assert store.search(("race", "gone")) == []
        assert store.list_namespaces() == [("race", "kept")]
        kept = {item.key for item in store.search(("race",), limit=10_000)}
        assert kept == {f"w{w}-{i}" for w in range(2) for i in range(0, RACE_ROUNDS, 2)}
    finally:
        for process in workers:
            if process.is_alive():
                process.kill()
        backend.cleanup()


# -- erasure ---------------------------------------------------------------------------------


def _people(store: HybridMemoryStore) -> None:
    store.put(("memories", "ana"), "a", {"text": "Ana lives in Porto"}, index=False)
    store.put(("memories", "bob"), "b", {"text": "Bob lives in Rome"}, index=False)
    store.put(("memories", "an"), "c", {"text": "An is a prefix of Ana"}, index=False)
    store.put(("memories", "memories"), "d", {"text": "a user called memories"}, index=False)
    store.put(("ana", "settings"), "e", {"text": "dark mode"}, index=False)


def test_forget_user_without_templates_takes_a_label_equal_to_the_id_for_the_user(
    backend, embeddings
):
    store = _store(backend, embeddings)
    _people(store)

    assert store.forget_user("an").namespaces == (("memories", "an"),)  # not "ana"
    assert store.forget_user("ana.smith").items == 0  # no label can hold "."
    # the documented limit: every namespace under a label "memories" goes, Bob's too
    assert store.forget_user("memories").namespaces == (
        ("memories", "ana"),
        ("memories", "bob"),
        ("memories", "memories"),
    )
    assert store.list_namespaces() == [("ana", "settings")]


def test_forget_user_with_templates_erases_only_the_users_namespaces(backend, embeddings):
    templates = [("memories", "{user_id}"), ("{user_id}", "settings")]
    store = _store(backend, embeddings, user_namespaces=templates)
    _people(store)

    report = store.forget_user("memories")
    assert (report.items, report.namespaces) == (1, (("memories", "memories"),))
    report = store.forget_user("ana")
    assert (report.items, report.namespaces) == (2, (("ana", "settings"), ("memories", "ana")))
    assert store.list_namespaces() == [("memories", "an"), ("memories", "bob")]


@pytest.mark.parametrize(
    "templates",
    [("memories", "{user_id}"), [("memories", "user")], [("a.b", "{user_id}")], ["memories"]],
)
def test_user_namespace_templates_must_name_the_user(templates, embeddings):
    with pytest.raises(ConfigError):
        HybridMemoryStore(index={"embed": embeddings}, user_namespaces=templates)


def test_delete_namespace_refuses_the_empty_prefix_and_erases_nothing(backend, embeddings):
    from langgraph.store.base import InvalidNamespaceError

    store = _store(backend, embeddings)
    _people(store)
    with pytest.raises(InvalidNamespaceError):
        store.delete_namespace(())
    assert len(store.search((), limit=100)) == 5


def test_an_encrypted_sqlite_file_holds_no_value_and_no_erased_user(tmp_path, embeddings):
    from cryptography.fernet import Fernet

    from tests.unit.store_fixtures import SealedBackend

    backend = SealedBackend("sqlite", tmp_path, keys=Fernet.generate_key())
    try:
        store = _store(backend, embeddings)
        store.put(("memories", "user-7731"), "passport", {"text": "passport X-4471-Q"})
        store.put(("memories", "user-7731"), "passport", {"text": "passport X-9902-Z"})
        store.put(("memories", "user-5150"), "pet", {"text": "a cat called Zebedee"})

        raw = backend.sqlite_file_bytes()
        assert b"X-4471-Q" not in raw
        assert b"X-9902-Z" not in raw
        assert b"Zebedee" not in raw
        assert b"user-7731" in raw  # namespaces are stored in clear (documented)

        store.forget_user("user-7731")

        assert b"user-7731" not in backend.sqlite_file_bytes()
    finally:
        backend.cleanup()


def test_an_item_with_many_indexed_texts_scores_its_best_one_as_langgraph_does(embeddings):
    index = {"embed": embeddings, "dims": 384, "fields": ["tags[*]"]}
    store, reference = HybridMemoryStore(index=index, dense_weight=1.0), InMemoryStore(index=index)
    items = {
        "a": ["cooking", "pasta", "tomato sauce"],
        "b": ["weather", "rain", "umbrella", "storm"],
        "c": ["cello"],
        "d": [],  # nothing to index: unscored
    }
    for target in (store, reference):
        for key, tags in items.items():
            target.put(("docs",), key, {"tags": tags})

    for query in ("stormy weather", "italian food", "music"):
        ours = store.search(("docs",), query=query)
        theirs = reference.search(("docs",), query=query)
        assert [i.key for i in ours] == [i.key for i in theirs]
        assert [i.score for i in ours] == pytest.approx([i.score for i in theirs], abs=1e-5)


def test_items_embedded_by_another_model_are_listed_unscored_with_one_warning(
    embeddings, caplog, tmp_path
):
    url = f"sqlite:///{tmp_path / 'two-models.db'}"
    # 768 dimensions: a multiple of the query's 384, still not two vectors of one text
    other_model = HybridMemoryStore(
        url, index={"embed": lambda texts: [[1.0] * 768 for _ in texts]}
    )
    ours = HybridMemoryStore(url, index={"embed": embeddings})
    for n in range(5):
        other_model.put(("docs",), f"old{n}", {"text": f"written with another model {n}"})
    ours.put(("docs",), "new", {"text": "Ana lives in Porto"})

    with caplog.at_level("WARNING", logger="langchain_hybrid_memory.langgraph_store"):
        found = ours.search(("docs",), query="where does Ana live?")

    assert [(item.key, item.score is None) for item in found][:2] == [
        ("new", False),
        ("old0", True),
    ]
    assert len(found) == 6
    assert [r.getMessage() for r in caplog.records] == [
        "5 item(s) have vectors of another dimension than the query's: unscored"
    ]
