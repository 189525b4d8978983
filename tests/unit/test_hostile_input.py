"""Hostile input gets an InvalidInputError and writes nothing, on every store.

The error contract: every failure is a ``HybridMemoryError`` and bad input is an
``InvalidInputError`` raised before anything is written, never a raw ``UnicodeEncodeError``,
``RecursionError``, ``OverflowError`` or ``TypeError``. The in-process store refuses what the
persistent stores cannot hold (so code tested on it works on them) and keeps its own copy of
each message. Also here: what an encrypted store sends to the server, and the bytes an erasure
leaves in SQLite's files.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
import redis
from cryptography.fernet import Fernet
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.errors import InvalidInputError
from langchain_hybrid_memory.stores import InMemoryStore, RedisStore
from tests.integration.backends import REDIS_URL
from tests.unit.store_fixtures import open_backend

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from langchain_core.messages import BaseMessage

    from tests.integration.backends import Backend

SESSION = "hostile"
#: The in-process store and SQLite need no server; Redis and PostgreSQL are cheap to add.
HOSTILE_KINDS = [
    "memory",
    "sqlite",
    pytest.param("redis", marks=pytest.mark.integration),
    pytest.param("postgres", marks=pytest.mark.integration),
]


@pytest.fixture(params=HOSTILE_KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path)


@pytest.fixture
def memory(backend, embeddings) -> Iterator[HybridMemory]:
    memory = HybridMemory(store=backend.open(), embeddings=embeddings, window_turns=4)
    yield memory
    memory.close()


def assert_refused_and_nothing_written(memory: HybridMemory, call: Callable[[], Any]) -> None:
    with pytest.raises(InvalidInputError):
        call()
    assert memory.transcript(SESSION) == []
    assert memory.latest_turns(SESSION, 10) == []


def nested_block(depth: int) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": "deep"}
    for _ in range(depth):
        block = {"type": "data", "inner": block}
    return block


# -- lone surrogates anywhere in a message ----------------------------------------------------

SURROGATE = "\ud800"
SURROGATE_MESSAGES: dict[str, Callable[[], list[BaseMessage]]] = {
    "name": lambda: [HumanMessage("hi", name=f"Ana{SURROGATE}")],
    "id": lambda: [HumanMessage("hi", id=f"m-{SURROGATE}")],
    "additional_kwargs value": lambda: [
        HumanMessage("hi", additional_kwargs={"note": f"x{SURROGATE}"})
    ],
    "additional_kwargs key": lambda: [HumanMessage("hi", additional_kwargs={f"n{SURROGATE}": 1})],
    "response_metadata": lambda: [AIMessage("hi", response_metadata={"model": f"m{SURROGATE}"})],
    "image block url": lambda: [
        HumanMessage(
            [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": f"https://x/{SURROGATE}"}},
            ]
        )
    ],
    "non-text block": lambda: [HumanMessage([{"type": "data", "value": SURROGATE}])],
    "tool-call arguments": lambda: [
        AIMessage("", tool_calls=[{"name": "search", "args": {"q": SURROGATE}, "id": "c1"}])
    ],
    "tool-call name": lambda: [
        AIMessage("", tool_calls=[{"name": f"search{SURROGATE}", "args": {}, "id": "c1"}])
    ],
    "tool message artifact": lambda: [
        ToolMessage("done", tool_call_id="c1", artifact={"raw": SURROGATE})
    ],
    "second message of a call": lambda: [
        HumanMessage("fine"),
        AIMessage("hi", additional_kwargs={"note": SURROGATE}),
    ],
}


@pytest.mark.parametrize("where", list(SURROGATE_MESSAGES))
def test_a_lone_surrogate_anywhere_in_a_message_is_refused_and_nothing_written(memory, where):
    messages = SURROGATE_MESSAGES[where]()

    assert_refused_and_nothing_written(
        memory, lambda: memory.add_messages(SESSION, messages, user_id="ana")
    )


# -- deeply nested content --------------------------------------------------------------------

NESTED_MESSAGES: dict[str, Callable[[], list[BaseMessage]]] = {
    "content block": lambda: [HumanMessage([nested_block(5000)])],
    "additional_kwargs": lambda: [HumanMessage("hi", additional_kwargs=nested_block(5000))],
    "tool-call arguments": lambda: [
        AIMessage("", tool_calls=[{"name": "f", "args": nested_block(5000), "id": "c1"}])
    ],
}


@pytest.mark.parametrize("where", list(NESTED_MESSAGES))
def test_deeply_nested_message_content_is_refused_and_nothing_written(memory, where):
    messages = NESTED_MESSAGES[where]()

    assert_refused_and_nothing_written(
        memory, lambda: memory.add_messages(SESSION, messages, user_id="ana")
    )


# -- timestamps, counts, entities without messages --------------------------------------------

EXTREME_TIMESTAMPS = {
    "max with a negative offset": datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),
    "min with a positive offset": datetime.min.replace(tzinfo=timezone(timedelta(hours=5))),
}


@pytest.mark.parametrize("when", list(EXTREME_TIMESTAMPS))
def test_a_timestamp_out_of_utc_range_is_refused_and_nothing_written(memory, when):
    timestamp = EXTREME_TIMESTAMPS[when]

    assert_refused_and_nothing_written(
        memory, lambda: memory.add_messages(SESSION, [HumanMessage("hi")], timestamp=timestamp)
    )
    assert_refused_and_nothing_written(
        memory,
        lambda: memory.add_messages(
            SESSION,
            [HumanMessage("hi"), AIMessage("hello")],
            timestamp=[datetime(2024, 5, 1, tzinfo=UTC), timestamp],
        ),
    )


def test_latest_turns_refuses_a_count_that_is_not_a_number(memory):
    memory.add_messages(SESSION, [HumanMessage("hi"), AIMessage("hello")])

    with pytest.raises(InvalidInputError):
        memory.latest_turns(SESSION, "x")  # type: ignore[arg-type]


def test_entities_without_messages_are_refused_not_dropped(memory):
    with pytest.raises(InvalidInputError):
        memory.add_messages(SESSION, [], user_id="ana", entities={"Ana": {"city": "Porto"}})

    assert memory.transcript(SESSION) == []
    memory.flush()
    context = memory.build_context(SESSION, "Where does Ana live?")
    assert context.entities == ()


# -- the in-process store keeps its own copy --------------------------------------------------


def test_the_in_memory_store_keeps_a_copy_so_mutating_a_message_later_changes_nothing(
    embeddings,
):
    memory = HybridMemory(store=InMemoryStore(), embeddings=embeddings)
    said = HumanMessage(
        [{"type": "text", "text": "I live in Porto"}],
        name="Ana",
        additional_kwargs={"mood": "happy"},
    )
    answer = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Porto"}, "id": "c1"}])
    memory.add_messages(SESSION, [said, answer])
    before = [message.model_dump() for message in memory.transcript(SESSION)]

    said.content.append({"type": "text", "text": " and I hate Porto"})  # type: ignore[union-attr]
    said.content[0]["text"] = "I live in Lisbon"  # type: ignore[index]
    said.name = "Eve"
    said.additional_kwargs["mood"] = "angry"
    answer.tool_calls[0]["args"]["city"] = "Lisbon"

    assert [message.model_dump() for message in memory.transcript(SESSION)] == before
    assert memory.latest_turns(SESSION, 2)[0].text == "I live in Porto"


# -- an encrypted store never sends an entity name in plaintext -------------------------------


class Monitor:
    """Every command the Redis server runs, collected by MONITOR on its own connection."""

    def __init__(self) -> None:
        self.client = redis.Redis.from_url(REDIS_URL)
        tag = uuid.uuid4().hex
        self.start_word, self.stop_word = f"hm-monitor-start-{tag}", f"hm-monitor-stop-{tag}"
        self.commands: list[str] = []
        self.live = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        with self.client.monitor() as monitor:
            for event in monitor.listen():
                command = str(event.get("command", ""))
                if self.stop_word in command:
                    return
                if self.start_word in command:
                    self.live.set()
                elif self.live.is_set():
                    self.commands.append(command)

    def _echo(self, word: str) -> None:
        with contextlib.closing(redis.Redis.from_url(REDIS_URL)) as client:
            client.echo(word)

    def __enter__(self) -> Monitor:
        self.thread.start()
        while not self.live.wait(timeout=0.05):  # MONITOR may start after the first echo
            assert self.thread.is_alive()
            self._echo(self.start_word)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._echo(self.stop_word)
        self.thread.join(timeout=30)
        self.client.close()


@pytest.mark.integration
def test_an_encrypted_redis_store_never_sends_an_entity_name_in_plaintext(embeddings):
    prefix = f"hmtest_{uuid.uuid4().hex[:12]}"
    key = Fernet.generate_key()
    store = RedisStore(REDIS_URL, prefix=prefix, encryption_key=key, encrypt_vectors=True)
    memory = HybridMemory(store=store, embeddings=embeddings, window_turns=2)
    secrets = ("zanzibar quokka", "rottnest island")
    try:
        with Monitor() as monitor:
            memory.add_messages(
                SESSION,
                [HumanMessage("I saw an unusual animal today"), AIMessage("Tell me more!")],
                user_id="ana",
                entities={"Zanzibar Quokka": {"habitat": "Rottnest Island"}},
            )
            memory.add_messages(
                SESSION,
                [HumanMessage("It was very friendly")],
                user_id="ana",
                entities={"zanzibar  QUOKKA": {"mood": "friendly"}},
            )
            memory.flush()
            memory.build_context(SESSION, "What animal did I see?", user_id="ana")
            stored = [entity.name for entity in store.get_entities(SESSION).values()]
            memory.forget_user("ana")
        assert any(prefix in command for command in monitor.commands), "MONITOR saw nothing"
        assert len(stored) == 1, stored
        assert "quokka" in stored[0].casefold()
        sent = [c for c in monitor.commands if any(s in c.casefold() for s in secrets)]
        assert not sent, f"plaintext sent to the server in {len(sent)} command(s): {sent[:3]}"
    finally:
        memory.close()
        with contextlib.closing(redis.Redis.from_url(REDIS_URL)) as client:
            for leftover in list(client.scan_iter(match=f"{prefix}:*")):
                client.delete(leftover)


# -- erased bytes in SQLite's files -----------------------------------------------------------


def test_forget_user_leaves_no_erased_text_in_the_sqlite_files_while_the_store_is_open(
    tmp_path, embeddings
):
    path = tmp_path / "memory.db"
    memory = HybridMemory(store=f"sqlite:///{path}", embeddings=embeddings, window_turns=2)
    marker = "Xylophone7Marmalade"
    fact = "Quasar5Turnip"
    for i in range(6):
        memory.add_messages(
            f"{SESSION}-{i % 2}",
            [HumanMessage(f"My code word {i} is {marker}{i}"), AIMessage("Noted.")],
            user_id="ana",
            entities={"Ana": {"code": f"{fact}{i}"}},
        )
    memory.add_messages("kept", [HumanMessage("Bob's unrelated note")], user_id="bob")
    memory.flush()
    memory.build_context(f"{SESSION}-0", "what is my code word?", user_id="ana")

    memory.forget_user("ana")

    files = {
        name: (tmp_path / name).read_bytes()
        for name in ("memory.db", "memory.db-wal", "memory.db-shm")
        if (tmp_path / name).exists()
    }
    found = {
        name: [word for word in (marker, fact) if word.encode() in data]
        for name, data in files.items()
    }
    assert not any(found.values()), f"erased text still readable in the files: {found}"
    memory.close()
