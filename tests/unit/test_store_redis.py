"""Redis store behaviour beyond the shared contract: the user index under races and refusals,
and the async client across event loops. A real Redis server (and PostgreSQL for the loop
check), required (never skipped)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import redis
from langchain_core.messages import HumanMessage

from langchain_hybrid_memory._plans import run_plan
from langchain_hybrid_memory.errors import SessionOwnershipError, StoreError
from langchain_hybrid_memory.stores import RedisStore
from langchain_hybrid_memory.types import TurnDraft
from tests.integration.backends import REDIS_URL, Backend
from tests.unit.store_fixtures import open_backend

if TYPE_CHECKING:
    from collections.abc import Iterator

DRAFT = TurnDraft(HumanMessage("hi"), "hi", datetime(2024, 5, 1, tzinfo=UTC))


@pytest.fixture
def backend(request, tmp_path) -> Iterator[Backend]:
    yield from open_backend(request, "redis", tmp_path)


@pytest.fixture
def client(backend) -> Iterator[redis.Redis]:
    client = backend.redis_client()
    yield client
    client.close()


def everything_under(client: redis.Redis, prefix: str) -> list[bytes]:
    """Every key name under the prefix and every element of every key."""
    found: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*"):
        found.append(key)
        kind = client.type(key).decode()
        if kind == "set":
            found.extend(client.smembers(key))
        elif kind == "hash":
            for name, value in client.hgetall(key).items():
                found.extend((name, value))
        elif kind == "list":
            found.extend(client.lrange(key, 0, -1))
        elif kind == "string":
            found.append(client.get(key))
    return found


# -- the user index ---------------------------------------------------------------------------


def test_a_refused_append_leaves_the_session_out_of_the_refused_users_index(backend, client):
    store = backend.open()
    store.append_turns("sA", [DRAFT], user_id="alice")
    store.put_vectors("sA", [0], np.ones((1, 4)))

    with pytest.raises(SessionOwnershipError):
        store.append_turns("sA", [DRAFT], user_id="mallory")

    assert client.smembers(store._plans.user_key("mallory")) == set()
    assert store.list_sessions("mallory") == []
    store.delete_user("alice")  # forget_user: nothing mentioning alice's sessions is left
    assert not [value for value in everything_under(client, backend.namespace) if b"sA" in value]


def test_list_sessions_during_a_first_append_keeps_the_new_session(backend):
    store = backend.open()
    other = backend.open()
    plan = store._plans.append_turns("sB", [DRAFT], "bob", [])
    request = next(plan)
    while not (hasattr(request, "name") and request.name == "append"):
        request = plan.send(store._execute(request))  # up to the index entry, before the script

    assert other.list_sessions("bob") == []  # the session does not exist yet
    appended = _finish(plan, request, store._execute)

    assert [turn.id for turn in appended.turns] == [0]
    assert store.session_user("sB") == "bob"
    assert other.list_sessions("bob") == ["sB"]


def _finish(plan: Any, request: Any, execute: Any) -> Any:
    """Run a plan stopped at ``request`` to its end; its result."""
    while True:
        try:
            request = plan.send(execute(request))
        except StopIteration as done:
            return done.value


def test_list_sessions_drops_entries_of_sessions_another_user_owns(backend, client):
    store = backend.open()
    store.append_turns("sA", [DRAFT], user_id="alice")
    client.sadd(store._plans.user_key("bob"), "sA")

    assert store.list_sessions("bob") == []

    assert client.smembers(store._plans.user_key("bob")) == set()
    assert store.list_sessions("alice") == ["sA"]


# -- async clients and event loops ------------------------------------------------------------


def append_in_new_loops(store: Any, rounds: int = 3) -> list[list[int]]:
    async def one() -> list[int]:
        appended = await asyncio.wait_for(store.aappend_turns("s1", [DRAFT], user_id="u"), 15)
        return [turn.id for turn in appended.turns]

    return [asyncio.run(one()) for _ in range(rounds)]


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_async_methods_work_in_each_new_event_loop(request, tmp_path, kind):
    for backend in open_backend(request, kind, tmp_path):
        store = backend.open()

        assert append_in_new_loops(store) == [[0], [1], [2]]

        assert store.count_turns("s1") == 3


def test_a_passed_async_client_serves_its_loop_and_later_loops_use_the_sync_client(backend):
    aclient = redis.asyncio.Redis.from_url(REDIS_URL)
    sync = backend.redis_client()
    store = RedisStore(sync, prefix=backend.namespace, async_client=aclient)

    assert append_in_new_loops(store) == [[0], [1], [2]]

    assert store.count_turns("s1") == 3
    sync.close()


def test_a_runtime_error_of_the_async_client_becomes_a_store_error(backend, monkeypatch):
    store = backend.open()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Event loop is closed")

    async def count() -> int:
        scripted = await store._scripted()
        monkeypatch.setattr(scripted.client, "execute_command", broken)
        return await store.acount_turns("s1")

    with pytest.raises(StoreError, match="Event loop is closed") as failure:
        asyncio.run(count())
    assert isinstance(failure.value.__cause__, RuntimeError)
    assert run_plan(store._plans.count_turns("s1"), store._execute) == 0
