"""Erasure with several workers: what one worker erased never comes back through another.

"Multi-worker" here means two ``HybridMemory`` objects, each with its own store object, on one
store (SQLite file, Redis, Redis Cluster, PostgreSQL). Worker 1 keeps work for a session in its
process (window turns waiting for their vectors, caller entities waiting for a write) while
worker 2 erases the session and the session id is used again: worker 1's leftovers must never be
written into the new owner's session, and acknowledged work must never be lost.

Faults are injected at the server, so the tests do not depend on how the engine is built: the
entities table is renamed away and back (SQLite, PostgreSQL), or the session's entities hash is
replaced by a string so that writing it fails with ``WRONGTYPE`` (Redis).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import psycopg
import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.errors import InvalidInputError, SessionOwnershipError, StoreError
from langchain_hybrid_memory.types import TurnDraft
from tests.integration.backends import POSTGRES_URL
from tests.unit.store_fixtures import cluster_port, open_backend  # noqa: F401 - fixture

if TYPE_CHECKING:
    from collections.abc import Iterator

    from langchain_core.embeddings import Embeddings
    from langchain_core.messages import BaseMessage

    from langchain_hybrid_memory.stores import MemoryStore
    from tests.integration.backends import Backend

pytestmark = pytest.mark.integration

#: Every store shared by several workers.
WORKER_KINDS = ("sqlite", "redis", "redis-cluster", "postgres")
REDIS_KINDS = ("redis", "redis-cluster")

SESSION = "clinic:{visit}"  # braces and a colon: the id must survive every key scheme
WINDOW = 4

#: What the first owner said; erased by forget_user, never to be seen again.
ERASED_TEXTS = (
    "My oncologist confirmed the biopsy shows stage two melanoma",
    "I am sorry to hear that; how are you coping with the diagnosis?",
    "I start immunotherapy infusions at the hospital next Tuesday",
    "Would you like reminders for each infusion appointment?",
    "Yes, and remind me to take my antiviral pills twice a day",
    "Done: antiviral pills at 8am and 8pm, infusion reminders on Tuesdays.",
)
#: What the next owner of the same session id says.
NEW_TEXTS = (
    "Let's plan a weekend hiking trip in the Dolomites",
    "Great idea! Do you prefer long ridge walks or shorter lake hikes?",
    "Ridge walks, and I want to sleep in mountain huts",
    "I'll list huts along the Alta Via 1 with their opening dates.",
    "Also find a train from Munich to Bolzano on Friday evening",
    "There is a direct train leaving Munich at 18:40 on Fridays.",
)

ERASED_FACTS = {"Ana": {"diagnosis": "melanoma", "medication": "immunotherapy infusions"}}
ERASED_FACT_WORDS = ("melanoma", "immunotherapy")


def conversation(texts: tuple[str, ...]) -> list[BaseMessage]:
    return [HumanMessage(t) if i % 2 == 0 else AIMessage(t) for i, t in enumerate(texts)]


@pytest.fixture(params=WORKER_KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path)


def worker(backend: Backend, embeddings: Embeddings, **settings: Any) -> HybridMemory:
    """One worker: a HybridMemory with a store object of its own on the shared backend."""
    options: dict[str, Any] = {"window_turns": WINDOW, "token_budget": 2000, **settings}
    return HybridMemory(store=backend.open(), embeddings=embeddings, **options)


def unit_rows(vectors: Any) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def entity_texts(store: MemoryStore, session_id: str) -> str:
    """Every entity name, attribute and value stored for the session, as one string."""
    parts = []
    for entity in store.get_entities(session_id).values():
        parts.append(entity.name)
        for attribute, fact in [*entity.facts.items(), *entity.ended.items()]:
            parts += [attribute, fact.value, *(earlier.value for earlier in fact.history)]
    return " | ".join(parts)


@contextlib.contextmanager
def entities_unwritable(backend: Backend, session_id: str) -> Iterator[None]:
    """Make writing (and reading) the session's entities fail inside the server, then heal it.

    SQLite and PostgreSQL: the entities table is renamed away and back. Redis: the session's
    entities hash (``<prefix>:s:{<percent-encoded session>}:entities``, see the RedisStore
    docstring) is replaced by a string, so ``HSET``/``HVALS`` on it fail with ``WRONGTYPE``.
    """
    if backend.kind in REDIS_KINDS:
        key = f"{backend.namespace}:s:{{{quote(session_id, safe='')}}}:entities"
        client = backend.redis_client()
        try:
            client.delete(key)
            client.set(key, "not a hash")
            yield
        finally:
            if client.type(key) == b"string":
                client.delete(key)
            client.close()
    elif backend.kind == "postgres":
        table = f'"{backend.namespace}".entities'
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"ALTER TABLE {table} RENAME TO entities_away")
            try:
                yield
            finally:
                connection.execute(
                    f'ALTER TABLE "{backend.namespace}".entities_away RENAME TO entities'
                )
    else:
        with contextlib.closing(sqlite3.connect(backend.tmp_path / "memory.db")) as connection:
            connection.execute("ALTER TABLE entities RENAME TO entities_away")
            connection.commit()
            try:
                yield
            finally:
                connection.execute("ALTER TABLE entities_away RENAME TO entities")
                connection.commit()


# -- 1. vectors of erased turns ---------------------------------------------------------------

ERASURES = ("forget_user, then another user", "history.clear, then the same user")


@pytest.mark.parametrize(
    ("erasure", "trigger"),
    [(ERASURES[0], "flush"), (ERASURES[1], "close"), (ERASURES[0], "forget_user")],
)
def test_vectors_of_an_erased_session_never_reach_the_next_owner(
    backend, embeddings, erasure, trigger
):
    first = worker(backend, embeddings)
    second = worker(backend, embeddings)
    checker = backend.open()
    # The last WINDOW turns wait in worker 1 for their vectors (embedded with the next query
    # or at flush).
    first.add_messages(SESSION, conversation(ERASED_TEXTS), user_id="ana")

    if erasure == ERASURES[0]:
        second.forget_user("ana")
        owner = "bob"
    else:
        second.history(SESSION, user_id="ana").clear()
        owner = "ana"
    assert checker.count_turns(SESSION) == 0
    second.add_messages(SESSION, conversation(NEW_TEXTS), user_id=owner)

    if trigger == "flush":
        first.flush()
    elif trigger == "close":
        first.close()
    else:
        first.forget_user("someone-else")  # flushes worker 1 first

    erased = unit_rows(embeddings.embed_documents(list(ERASED_TEXTS)))
    new = unit_rows(embeddings.embed_documents(list(NEW_TEXTS)))
    ids, vectors = checker.get_vectors(SESSION)
    if vectors is not None:
        stored = unit_rows(vectors)
        closest_erased = (stored @ erased.T).max(axis=1)
        leaked = {i: round(float(c), 3) for i, c in zip(ids, closest_erased, strict=True)}
        assert max(leaked.values()) < 0.9, f"vectors of erased texts stored: {leaked}"
        own = {i: round(float(stored[row] @ new[i]), 3) for row, i in enumerate(ids)}
        assert min(own.values()) > 0.99, f"stored vectors that are not their turn's: {own}"

    second.flush()
    ids, vectors = checker.get_vectors(SESSION)
    assert ids == list(range(len(NEW_TEXTS))), "the new owner's vectors were not all stored"
    similarity = (unit_rows(vectors) * new).sum(axis=1)
    assert similarity.min() > 0.99, f"new owner's vectors: {np.round(similarity, 3)}"
    assert checker.session_user(SESSION) == owner


@pytest.mark.parametrize(
    ("backend", "races"), [("redis", 200), ("postgres", 100)], indirect=["backend"]
)
def test_vectors_the_background_embeds_never_reach_a_life_started_meanwhile(
    backend, embeddings, races
):
    """Worker 1's background thread embeds each new session while worker 2 erases it and
    starts it again: whenever the erasure lands, only the new life's vectors are stored."""
    first = worker(backend, embeddings)  # embeds in the background (the default)
    second = worker(backend, embeddings, embed_in_background=False)
    checker = backend.open()
    sessions = [f"{SESSION}:{n}" for n in range(races)]
    for n, session in enumerate(sessions):
        first.add_messages(session, conversation((f"{ERASED_TEXTS[0]} ({n})",)), user_id="ana")
        second.forget_session(session)
        second.add_messages(session, conversation((f"{NEW_TEXTS[0]} ({n})",)), user_id="bob")
    first.flush()
    second.flush()

    new = unit_rows(embeddings.embed_documents([f"{NEW_TEXTS[0]} ({n})" for n in range(races)]))
    for n, session in enumerate(sessions):
        ids, vectors = checker.get_vectors(session)
        assert ids == [0], f"race {n}: the new life's one vector, got turns {ids}"
        similarity = float(unit_rows(vectors)[0] @ new[n])
        assert similarity > 0.99, f"race {n}: turn 0 holds another text's vector ({similarity})"
    first.close()
    second.close()


# -- 2. caller entities of an erased user -----------------------------------------------------


def test_entities_waiting_in_a_worker_never_reach_the_next_owner_of_an_erased_session(
    backend, embeddings
):
    first = worker(backend, embeddings)
    second = worker(backend, embeddings)
    checker = backend.open()

    # Refused as a whole (StoreError) or stored: either way nothing may be left waiting.
    with entities_unwritable(backend, SESSION), contextlib.suppress(StoreError):
        first.add_messages(
            SESSION,
            [HumanMessage("I was diagnosed with melanoma"), AIMessage("I'm sorry.")],
            user_id="ana",
            entities=ERASED_FACTS,
        )

    second.forget_user("ana")
    assert checker.count_turns(SESSION) == 0
    second.add_messages(
        SESSION,
        [HumanMessage("I'm Bob and I collect vinyl records"), AIMessage("Nice!")],
        user_id="bob",
        entities={"Bob": {"hobby": "vinyl records"}},
    )
    # Worker 1 serves the new owner next: any work it kept for the erased session must be gone.
    first.add_messages(SESSION, [HumanMessage("Any jazz records to recommend?")], user_id="bob")
    first.build_context(SESSION, "What do you know about my health?", user_id="bob")
    first.close()
    second.flush()

    stored = entity_texts(checker, SESSION)
    assert not any(word in stored for word in ERASED_FACT_WORDS), stored
    assert "vinyl records" in stored
    context = second.build_context(SESSION, "What do you know about my health?", user_id="bob")
    shown = " ".join(
        f"{e.name} {' '.join(f'{k} {f.value}' for k, f in e.facts.items())}"
        for e in context.entities
    )
    assert not any(word in shown for word in ERASED_FACT_WORDS), shown
    assert not any(word in context.to_text() for word in ERASED_FACT_WORDS)


# -- 3. a user's first append racing their erasure (Redis) ------------------------------------


def draft(text: str) -> TurnDraft:
    return TurnDraft(HumanMessage(text), text, datetime.now(UTC))


@pytest.mark.parametrize(
    ("backend", "races"), [("redis", 300), ("redis-cluster", 200)], indirect=["backend"]
)
def test_a_session_created_while_its_user_is_erased_stays_listed_and_erasable(backend, races):
    writer, eraser, checker = backend.open(), backend.open(), backend.open()
    unlisted: list[str] = []
    survivors: list[str] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for n in range(races):
            user, session = f"user-{n}", f"session-{n}"
            start = threading.Barrier(2)

            def append(user: str = user, session: str = session, start: Any = start) -> None:
                start.wait(timeout=30)
                writer.append_turns(session, [draft("hello")], user_id=user)

            def erase(user: str = user, start: Any = start) -> None:
                start.wait(timeout=30)
                eraser.delete_user(user)

            for future in [pool.submit(append), pool.submit(erase)]:
                future.result(timeout=60)

            if checker.session_user(session) == user and session not in checker.list_sessions(user):
                unlisted.append(session)
            checker.delete_user(user)  # a later erasure must find it
            if checker.count_turns(session) != 0:
                survivors.append(session)
    assert not unlisted, f"{len(unlisted)}/{races} owned sessions missing from the index"
    assert not survivors, f"{len(survivors)}/{races} sessions survived forget_user"


# -- 4. acknowledged caller entities ----------------------------------------------------------

PEANUTS = {"Ana": {"allergy": "peanuts"}}


def assert_acknowledged_entity_is_kept(checker: MemoryStore, raised: bool, turns: int) -> None:
    if raised:
        assert turns == 0, "add_messages raised, but its turns were stored (a retry duplicates)"
        return
    names = {entity.name: entity for entity in checker.get_entities(SESSION).values()}
    assert "Ana" in names, f"acknowledged caller entity lost; stored: {sorted(names)}"
    assert names["Ana"].facts["allergy"].value == "peanuts"


def add_with_failing_entity_write(
    backend: Backend, memory: HybridMemory, checker: MemoryStore
) -> tuple[bool, int]:
    """Add turns with caller entities while the entity write fails; (raised, turns stored)."""
    with entities_unwritable(backend, SESSION):
        try:
            memory.add_messages(
                SESSION,
                [HumanMessage("I'm allergic to peanuts"), AIMessage("Noted.")],
                user_id="ana",
                entities=PEANUTS,
            )
        except StoreError:
            raised = True
        else:
            raised = False
    return raised, checker.count_turns(SESSION)


def test_acknowledged_caller_entities_survive_a_failed_write_and_cache_eviction(
    backend, embeddings
):
    memory = worker(backend, embeddings, index_cache_size=1)
    checker = backend.open()

    raised, turns = add_with_failing_entity_write(backend, memory, checker)
    # Another session takes the only cache slot; then the usual traffic goes on.
    memory.add_messages("other-session", [HumanMessage("What's the weather?")], user_id="ana")
    memory.build_context("other-session", "weather", user_id="ana")
    memory.add_messages(SESSION, [HumanMessage("Suggest a snack")], user_id="ana")
    memory.build_context(SESSION, "Suggest a snack", user_id="ana")
    memory.flush()
    memory.close()

    assert_acknowledged_entity_is_kept(checker, raised, turns)


def test_acknowledged_caller_entities_survive_a_failed_write_and_a_new_worker(backend, embeddings):
    memory = worker(backend, embeddings)
    checker = backend.open()

    raised, turns = add_with_failing_entity_write(backend, memory, checker)
    memory.close()
    successor = worker(backend, embeddings)
    successor.add_messages(SESSION, [HumanMessage("Suggest a snack")], user_id="ana")
    successor.build_context(SESSION, "Suggest a snack", user_id="ana")
    successor.close()

    assert_acknowledged_entity_is_kept(checker, raised, turns)


UNSTORABLE = [
    pytest.param("postgres", {"Ana\x00": {"city": "Porto"}}, id="postgres-NUL-in-name"),
    *[
        pytest.param(kind, {"Ana\ud800": {"city": "Porto"}}, id=f"{kind}-surrogate-in-name")
        for kind in WORKER_KINDS
    ],
    pytest.param("sqlite", {"Ana": {"city": "Porto\ud800"}}, id="sqlite-surrogate-in-value"),
    pytest.param("redis", {"Ana": {"\udfffcity": "Porto"}}, id="redis-surrogate-in-attribute"),
]


@pytest.mark.parametrize(("backend", "entities"), UNSTORABLE, indirect=["backend"])
def test_an_entity_the_store_cannot_hold_is_refused_and_never_blocks_later_entities(
    backend, embeddings, entities
):
    memory = worker(backend, embeddings)
    checker = backend.open()
    try:
        memory.add_messages(SESSION, [HumanMessage("I'm Ana")], user_id="ana", entities=entities)
    except InvalidInputError:
        refused = True
        turns_after_refusal = checker.count_turns(SESSION)
    else:
        refused = False
        turns_after_refusal = 0

    memory.add_messages(
        SESSION,
        [HumanMessage("I moved to Lisbon"), AIMessage("Noted.")],
        user_id="ana",
        entities={"Bob": {"city": "Lisbon"}},
    )
    memory.add_messages(SESSION, [HumanMessage("Where do I live?")], user_id="ana")
    memory.close()

    names = {entity.name: entity for entity in checker.get_entities(SESSION).values()}
    assert "Bob" in names, f"a later caller entity was blocked; stored: {sorted(names)}"
    assert names["Bob"].facts["city"].value == "Lisbon"
    assert refused, "an entity the store cannot hold was accepted (it can never be written)"
    assert turns_after_refusal == 0, "refused, but the turns were stored"


# -- found by adversarial testing: reads and erasures racing a takeover of the session --------

U2_TEXTS = ("u2 private: my PIN is 4242", "Noted, your PIN is safe.")


def take_over(erasing: HybridMemory) -> None:
    """Another worker erases the first user and hands the session's id to a second user."""
    erasing.forget_user("u1")
    erasing.add_messages(
        SESSION, conversation(U2_TEXTS), user_id="u2", entities={"Bob": {"pin": "4242"}}
    )


def once_before(store: MemoryStore, method: str, action: Any) -> None:
    """Run ``action`` right before the store's first call of ``method`` (then call it)."""
    real = getattr(store, method)
    done: list[bool] = []

    def patched(*args: Any, **kwargs: Any) -> Any:
        if not done:
            done.append(True)
            action()
        return real(*args, **kwargs)

    setattr(store, method, patched)


@pytest.mark.parametrize("read", ["build_context", "recall", "transcript", "latest_turns"])
def test_a_read_never_returns_what_a_new_owner_wrote_during_it(backend, embeddings, read):
    """A user's read that a takeover of the session interrupts (after its owner check, before
    its other reads) returns the first user's data or refuses: never the new owner's."""
    reader, other = worker(backend, embeddings), worker(backend, embeddings)
    other.add_messages(SESSION, conversation(ERASED_TEXTS), user_id="u1")
    once_before(reader.store, "get_turns", lambda: take_over(other))
    calls = {
        "build_context": lambda: reader.build_context(SESSION, "my PIN?", user_id="u1").to_text(),
        "recall": lambda: str(reader.recall(SESSION, "my PIN?", user_id="u1")),
        "transcript": lambda: str(reader.transcript(SESSION, user_id="u1")),
        "latest_turns": lambda: str(reader.latest_turns(SESSION, 10, user_id="u1")),
    }
    try:
        seen = calls[read]()
    except SessionOwnershipError:
        seen = ""
    assert "4242" not in seen
    reader.close()
    other.close()


def test_an_erasure_never_reaches_the_session_another_user_created_meanwhile(backend, embeddings):
    eraser, other = worker(backend, embeddings), worker(backend, embeddings)
    other.add_messages(SESSION, conversation(ERASED_TEXTS), user_id="u1")
    once_before(eraser.store, "delete_session", lambda: take_over(other))

    with contextlib.suppress(SessionOwnershipError):
        eraser.forget_session(SESSION, user_id="u1")

    assert [m.text for m in other.transcript(SESSION, user_id="u2")] == list(U2_TEXTS)
    eraser.close()
    other.close()


def test_user_scope_recall_never_returns_another_users_session_taken_over_during_it(
    backend, embeddings
):
    reader = worker(backend, embeddings, recall_scope="user")
    other = worker(backend, embeddings)
    other.add_messages("first", conversation(ERASED_TEXTS), user_id="u1")
    other.add_messages("second", conversation(NEW_TEXTS), user_id="u1")
    real = reader.store.get_turns_by_ids

    def takeover_then_read(session_id: str, turn_ids: Any) -> Any:
        if session_id == "second" and other.store.session_user("second") == "u1":
            other.forget_session("second", user_id="u1")
            other.add_messages("second", conversation(U2_TEXTS), user_id="u2")
        return real(session_id, turn_ids)

    reader.store.get_turns_by_ids = takeover_then_read  # type: ignore[method-assign]
    found = reader.recall("first", "my PIN is 4242", k=20, user_id="u1")

    assert not [item for item in found if "4242" in item.turn.text]
    reader.close()
    other.close()
