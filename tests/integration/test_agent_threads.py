"""Agent threads on real servers: PostgresSaver, and two workers serving one thread.

``create_agent`` with ``HybridMemoryMiddleware``, LangGraph's ``PostgresSaver`` on the local
PostgreSQL (its tables in a schema of their own, dropped after), the memory on each persistent
store.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import psycopg
import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import PIIMiddleware
from langchain_core.messages import AIMessage
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg.rows import dict_row

from langchain_hybrid_memory import HybridMemory, HybridMemoryMiddleware
from tests.fakes import RecordingToolModel
from tests.integration.backends import POSTGRES_URL, Backend
from tests.unit.store_fixtures import cluster_port, open_backend  # noqa: F401 - fixture
from tests.unit.test_middleware import (
    check_the_thread_stays_bounded,
    replies,
    say,
    thread,
    weather,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres_saver() -> Iterator[PostgresSaver]:
    """A PostgresSaver whose tables live in a fresh schema, dropped afterwards."""
    schema = f"hm_threads_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        with psycopg.connect(
            POSTGRES_URL,
            autocommit=True,
            prepare_threshold=0,
            row_factory=dict_row,
            options=f"-c search_path={schema}",
        ) as connection:
            saver = PostgresSaver(connection)
            saver.setup()
            yield saver
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=("sqlite", "redis", "postgres"))
def backend(request, tmp_path) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path)


@pytest.fixture
def postgres_backend(request, tmp_path) -> Iterator[Backend]:
    yield from open_backend(request, "postgres", tmp_path)


def test_the_thread_stays_bounded_with_postgres_saver(postgres_saver, postgres_backend, embeddings):
    memory = HybridMemory(store=postgres_backend.open(), embeddings=embeddings, window_turns=6)
    try:
        check_the_thread_stays_bounded(memory, postgres_saver)
        assert (
            len(postgres_saver.get_tuple(thread()).checkpoint["channel_values"]["messages"]) <= 10
        )
        report = memory.forget_session("t1", checkpointer=postgres_saver)
        assert report.threads == ("t1",)
        assert postgres_saver.get_tuple(thread()) is None
    finally:
        memory.close()


def test_two_workers_serving_one_thread_store_each_message_once(
    backend, postgres_saver, embeddings
):
    """Runs of one thread alternate between two workers (each its own memory object on one
    store, its own agent, one checkpointer): every message is stored once, as the user saw it.
    """
    memories = [
        HybridMemory(store=backend.open(), embeddings=embeddings, window_turns=4) for _ in range(2)
    ]
    call = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Faro"}, "id": "w1"}])
    script = [AIMessage("Mail ana@example.com."), call, AIMessage("Sunny!")]
    model = RecordingToolModel(messages=replies(script))
    agents = [
        create_agent(
            model,
            tools=[weather],
            middleware=[
                HybridMemoryMiddleware(memory),
                PIIMiddleware("email", strategy="redact", apply_to_output=True),
            ],
            checkpointer=postgres_saver,
        )
        for memory in memories
    ]
    inputs = ["Who do I mail?", "Weather in Faro?"] + [f"Turn {i}." for i in range(6)]
    for i, text in enumerate(inputs):
        agents[i % 2].invoke(say(text), thread())

    for memory in memories:
        transcript = memory.transcript("t1")
        assert len(transcript) == len({m.id for m in transcript}) == 2 * 8 + 2
        assert [m.text for m in transcript if m.type == "human"] == inputs
        assert not any("ana@example.com" in m.text for m in transcript)
    for memory in memories:
        memory.close()
