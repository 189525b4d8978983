"""``await memory.aclose()`` leaves no connection open, whichever event loops used the memory.

Connections are counted on the server: PostgreSQL's ``pg_stat_activity`` and Redis's
``CLIENT LIST``. The store URL names its connections (``application_name`` /
``client_name``), so only this test's connections are counted, whatever else uses the servers.
The memory is opened from a URL, so it owns its store.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import TYPE_CHECKING

import psycopg
import pytest
import redis
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory import HybridMemory
from tests.integration.backends import POSTGRES_URL, REDIS_URL

if TYPE_CHECKING:
    from collections.abc import Iterator

    from langchain_core.embeddings import Embeddings

pytestmark = pytest.mark.integration

#: Longest wait for the server to notice closed connections (not a timing assertion: the test
#: passes as soon as the count is back, and fails only if it never comes back).
_SETTLE_SECONDS = 5.0
_DEFAULT_SCHEMA = "hybrid_memory"  # where PostgresStore(url) keeps its tables


def _with_query(url: str, parameter: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{parameter}"


class Server:
    """One server kind: a URL naming its connections ``tag``, and a way to count them."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.tag = f"hmtest_{uuid.uuid4().hex[:12]}"

    @property
    def url(self) -> str:
        if self.kind == "postgres":
            return _with_query(POSTGRES_URL, f"application_name={self.tag}")
        return _with_query(REDIS_URL, f"client_name={self.tag}")

    def connections(self) -> int:
        if self.kind == "postgres":
            with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
                row = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'test' "
                    "AND pid <> pg_backend_pid() AND application_name = %s",
                    (self.tag,),
                ).fetchone()
            return int(row[0]) if row else 0
        client = redis.Redis.from_url(REDIS_URL)
        try:
            return sum(1 for entry in client.client_list() if entry.get("name") == self.tag)
        finally:
            client.close()

    def settled(self, expected: int) -> int:
        """The connection count once it equals ``expected`` (or the last count seen)."""
        deadline = time.monotonic() + _SETTLE_SECONDS
        count = self.connections()
        while count != expected and time.monotonic() < deadline:
            time.sleep(0.1)
            count = self.connections()
        return count


def _schema_exists() -> bool:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        row = connection.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
            (_DEFAULT_SCHEMA,),
        ).fetchone()
    return row is not None


@pytest.fixture(params=["postgres", "redis"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The server; the default PostgreSQL schema is dropped afterwards if this test made it."""
    made_schema = request.param == "postgres" and not _schema_exists()
    yield Server(request.param)
    if made_schema:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{_DEFAULT_SCHEMA}" CASCADE')


async def use_every_async_twin(memory: HybridMemory, session: str, user: str) -> None:
    """The async surface a web app uses; erases what it wrote at the end."""
    await memory.aadd_messages(
        session,
        [HumanMessage("I'm Ana and I live in Porto"), AIMessage("Hi Ana!")],
        user_id=user,
        entities={"Ana": {"city": "Porto"}},
    )
    await memory.aadd_messages(session, [HumanMessage("Plan a trip to Valencia")], user_id=user)
    await memory.abuild_context(session, "Where do I live?", user_id=user)
    await memory.atranscript(session, user_id=user)
    await memory.aturns(session, user_id=user)
    await memory.asummary(session, user_id=user)
    await memory.aflush()
    await memory.aforget_session(session, user_id=user)
    await memory.aadd_messages(session, [HumanMessage("Hello again")], user_id=user)
    await memory.aforget_user(user)


def open_memory(server: Server, embeddings: Embeddings) -> HybridMemory:
    return HybridMemory(store=server.url, embeddings=embeddings, window_turns=2)


def test_aclose_closes_every_connection_the_async_twins_opened(server, embeddings):
    before = server.connections()
    memory = open_memory(server, embeddings)
    session, user = f"s-{server.tag}", f"u-{server.tag}"

    async def main() -> None:
        await use_every_async_twin(memory, session, user)
        await memory.aclose()

    asyncio.run(main())

    assert server.settled(before) == before, "connections left open after await aclose()"


def test_aclose_closes_the_connections_of_earlier_event_loops_too(server, embeddings):
    before = server.connections()
    memory = open_memory(server, embeddings)
    session, user = f"s-{server.tag}", f"u-{server.tag}"

    asyncio.run(use_every_async_twin(memory, session, user))
    asyncio.run(use_every_async_twin(memory, f"{session}-2", user))  # a second loop's clients

    async def main() -> None:
        await use_every_async_twin(memory, f"{session}-3", user)
        await memory.aclose()

    asyncio.run(main())

    assert server.settled(before) == before, "connections of finished event loops left open"


def test_aclose_in_a_new_event_loop_after_async_use_leaves_no_connection(server, embeddings):
    before = server.connections()
    memory = open_memory(server, embeddings)
    session, user = f"s-{server.tag}", f"u-{server.tag}"

    asyncio.run(use_every_async_twin(memory, session, user))
    asyncio.run(memory.aclose())

    assert server.settled(before) == before, "connections of a finished event loop left open"


def test_aclose_closes_the_connections_of_a_loop_closed_without_shutting_them_down(
    server, embeddings
):
    """A thread that runs the async twins on a loop of its own and closes it bluntly
    (``run_until_complete`` then ``close``, no ``shutdown_asyncgens``) leaves clients nothing
    could close from their loop: ``aclose`` closes them without it."""
    before = server.connections()
    memory = open_memory(server, embeddings)
    session, user = f"s-{server.tag}", f"u-{server.tag}"

    def blunt_loop() -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(use_every_async_twin(memory, session, user))
        finally:
            loop.close()

    thread = threading.Thread(target=blunt_loop)
    thread.start()
    thread.join()
    asyncio.run(memory.aclose())

    assert server.settled(before) == before, "connections of a bluntly closed loop left open"
