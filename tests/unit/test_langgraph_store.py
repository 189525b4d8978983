"""HybridMemoryStore on its default SQLite: an agent's long-term memory through runtime.store,
hybrid search, per-item indexing, bad input, the TTL sweeper and closing.

The same store on Redis and PostgreSQL, against LangGraph's InMemoryStore, is in
tests/integration/test_langgraph_store.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from langchain.agents import create_agent
from langchain.tools import ToolRuntime, tool
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import PutOp

from langchain_hybrid_memory import (
    ConfigError,
    EmbeddingError,
    HybridMemoryStore,
    InvalidInputError,
)
from langchain_hybrid_memory.stores import InMemoryStore, SQLiteStore
from tests.fakes import RecordingToolModel


@dataclasses.dataclass
class Context:
    user_id: str


@tool
def save_memory(text: str, runtime: ToolRuntime[Context]) -> str:
    """Remember something about the user for later conversations."""
    key = f"m{len(runtime.store.search(('memories', runtime.context.user_id), limit=100))}"
    runtime.store.put(("memories", runtime.context.user_id), key, {"text": text})
    return "saved"


@tool
def recall_memories(query: str, runtime: ToolRuntime[Context]) -> str:
    """Search what is remembered about the user."""
    found = runtime.store.search(("memories", runtime.context.user_id), query=query, limit=2)
    return "\n".join(f"{item.value['text']} (score {item.score:.2f})" for item in found)


def call(name: str, args: dict, call_id: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}])


def run_agent(url: str, embeddings, script: list[AIMessage], said: str, thread: str):
    """One agent turn of user ``ana``, with its own store object on ``url`` (a worker)."""
    model = RecordingToolModel(messages=iter(script))
    agent = create_agent(
        model,
        tools=[save_memory, recall_memories],
        store=HybridMemoryStore(url, index={"embed": embeddings}),
        checkpointer=InMemorySaver(),
        context_schema=Context,
    )
    agent.invoke(
        {"messages": [HumanMessage(said)]},
        {"configurable": {"thread_id": thread}},
        context=Context("ana"),
    )
    return model


def test_an_agents_tools_keep_long_term_memory_in_the_store_across_threads(tmp_path, embeddings):
    url = f"sqlite:///{tmp_path / 'agent.db'}"
    saving = [
        call("save_memory", {"text": "Ana is allergic to peanuts"}, "c1"),
        call("save_memory", {"text": "Ana's sister lives in Lyon"}, "c2"),
        AIMessage("Noted both."),
    ]
    run_agent(url, embeddings, saving, "I'm allergic to peanuts; my sister is in Lyon.", "t1")
    recalling = [call("recall_memories", {"query": "food allergy"}, "c3"), AIMessage("Peanuts.")]
    second = run_agent(url, embeddings, recalling, "What can't I eat?", "t2")

    result = next(m for m in second.calls[1] if m.type == "tool")
    assert result.text.splitlines()[0].startswith("Ana is allergic to peanuts (score ")
    store = HybridMemoryStore(url, index={"embed": embeddings})
    assert store.search(("memories", "bob")) == []
    assert store.forget_user("ana").items == 2


@pytest.fixture
def store(embeddings) -> HybridMemoryStore:
    return HybridMemoryStore(index={"embed": embeddings})


def test_search_ranks_an_exact_word_above_a_merely_similar_text(embeddings):
    # "Tuesday" is a word the dense model barely tells from other days; BM25 does
    docs = {
        "a": "The dentist appointment is on Monday morning",
        "b": "The dentist appointment is on Tuesday morning",
        "c": "The dentist appointment is on Thursday morning",
    }
    hybrid = HybridMemoryStore(index={"embed": embeddings})
    dense = HybridMemoryStore(index={"embed": embeddings}, dense_weight=1.0)
    for target in (hybrid, dense):
        for key, text in docs.items():
            target.put(("calendar",), key, {"text": text})

    ranked = hybrid.search(("calendar",), query="Tuesday")
    plain = dense.search(("calendar",), query="Tuesday")

    assert ranked[0].key == "b"
    assert ranked[0].score - ranked[1].score > plain[0].score - plain[1].score


def test_index_fields_choose_what_is_searched(store):
    store.put(("docs",), "a", {"title": "Boats", "body": "about trains"}, index=["title"])
    store.put(("docs",), "b", {"title": "Trains", "body": "about boats"}, index=["title"])
    store.put(("docs",), "c", {"title": "Boats and trains"}, index=False)

    found = store.search(("docs",), query="sailing boats")

    assert [item.key for item in found] == ["a", "b", "c"]
    assert found[2].score is None  # not indexed: returned last, unscored, as LangGraph does


def test_index_config_fields_apply_to_every_put(embeddings):
    store = HybridMemoryStore(index={"embed": embeddings, "fields": ["tags[*]"]})
    store.put(("docs",), "a", {"text": "weather", "tags": ["cooking", "pasta"]})
    store.put(("docs",), "b", {"text": "cooking", "tags": ["weather", "rain"]})

    assert store.search(("docs",), query="rainy weather")[0].key == "b"


@pytest.mark.parametrize(
    "value",
    [
        ["not", "a", "dict"],
        {1: "int key"},
        {"date": object()},
        {"n": float("nan")},
    ],
)
def test_a_value_that_is_not_a_json_object_is_refused_and_nothing_is_written(store, value):
    with pytest.raises(InvalidInputError):
        store.batch([PutOp(("docs",), "ok", {"text": "fine"}), PutOp(("docs",), "bad", value)])
    assert store.search(("docs",)) == []


def test_bad_filters_ttls_and_settings_are_refused(store, embeddings):
    with pytest.raises(InvalidInputError, match="Unsupported operator"):
        store.search(("docs",), filter={"n": {"$regex": "x"}})
    with pytest.raises(InvalidInputError):
        store.put(("docs",), "k", {"text": "x"}, ttl=-1)
    with pytest.raises(ConfigError):
        HybridMemoryStore(index={"embed": embeddings}, ttl={"default_ttl": 0})
    with pytest.raises(ConfigError):
        HybridMemoryStore(index={"embed": embeddings}, ttl={"default_tll": 5})
    with pytest.raises(ConfigError):
        HybridMemoryStore(index={"embed": embeddings, "fields": "text"})
    with pytest.raises(ConfigError):
        HybridMemoryStore(index={"embed": embeddings}, dense_weight=2)
    with pytest.raises(ConfigError, match="InMemoryStore"):
        HybridMemoryStore(InMemoryStore(), index={"embed": embeddings})
    with pytest.raises(InvalidInputError):
        store.forget_user("")


def test_an_embedding_failure_writes_nothing(store):
    def broken(texts: list[str]) -> list[list[float]]:
        raise RuntimeError("model down")

    failing = HybridMemoryStore(store.store, index={"embed": broken, "dims": 384})
    with pytest.raises(EmbeddingError, match="nothing was written"):
        failing.put(("docs",), "k", {"text": "lost?"})
    assert failing.get(("docs",), "k") is None
    failing.put(("docs",), "k", {"text": "not indexed"}, index=False)
    assert failing.get(("docs",), "k").value == {"text": "not indexed"}


def test_the_sweeper_deletes_expired_items_in_the_background(tmp_path, embeddings):
    clock = [1_900_000_000.0]
    path = tmp_path / "ttl.db"
    store = HybridMemoryStore(
        SQLiteStore(path),
        index={"embed": embeddings},
        ttl={"default_ttl": 1},
        clock=lambda: clock[0],
    )
    store.put(("t",), "old", {"text": "expires"})
    store.put(("t",), "kept", {"text": "stays"}, ttl=None)
    clock[0] += 120

    store.start_ttl_sweeper(sweep_interval_minutes=0.001)  # every 60 ms
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and store.store._read(_count_rows) != 1:
        time.sleep(0.05)
    assert store.stop_ttl_sweeper(timeout=5)

    assert store.store._read(_count_rows) == 1  # the row is gone from the file
    assert [item.key for item in store.search(("t",))] == ["kept"]


def _count_rows():
    from langchain_hybrid_memory.stores._sql import Query

    (count,) = yield Query("SELECT COUNT(*) FROM lg_items", (), "one")
    return count


def test_the_async_sweep_and_close(tmp_path, embeddings):
    clock = [1_900_000_000.0]
    store = HybridMemoryStore(
        f"sqlite:///{tmp_path / 'a.db'}", index={"embed": embeddings}, clock=lambda: clock[0]
    )

    async def scenario() -> int:
        await store.aput(("t",), "k", {"text": "brief"}, ttl=1)
        clock[0] += 61
        swept = await store.asweep_ttl()
        await store.aclose()
        return swept

    assert asyncio.run(scenario()) == 1


def test_langmems_memory_tools_work_over_the_store(tmp_path, embeddings):
    from langmem import create_manage_memory_tool, create_search_memory_tool

    url = f"sqlite:///{tmp_path / 'langmem.db'}"
    namespace = ("memories", "{user_id}")
    tools = [create_manage_memory_tool(namespace), create_search_memory_tool(namespace)]
    script = [
        call("manage_memory", {"content": "Ana is allergic to peanuts", "action": "create"}, "c1"),
        call("search_memory", {"query": "food allergy"}, "c2"),
        AIMessage("You are allergic to peanuts."),
    ]
    model = RecordingToolModel(messages=iter(script))
    agent = create_agent(
        model, tools=tools, store=HybridMemoryStore(url, index={"embed": embeddings})
    )
    agent.invoke(
        {"messages": [HumanMessage("Remember: I'm allergic to peanuts. What can't I eat?")]},
        {"configurable": {"user_id": "ana"}},
    )

    found = next(m for m in model.calls[2] if m.type == "tool" and m.name == "search_memory")
    assert "allergic to peanuts" in found.text
    assert '"score"' in found.text  # langmem shows the store's score
    other_worker = HybridMemoryStore(url, index={"embed": embeddings})
    (item,) = other_worker.search(("memories", "ana"))
    assert item.value == {"content": "Ana is allergic to peanuts"}
    assert other_worker.forget_user("ana").items == 1


def test_a_store_url_with_a_password_never_shows_it(embeddings):
    from langchain_hybrid_memory import StoreError

    with pytest.raises(StoreError) as failure:
        HybridMemoryStore("redis://:hunter2@127.0.0.1:1/0", index={"embed": embeddings})
    assert "hunter2" not in str(failure.value)
    with pytest.raises(StoreError) as failure:
        HybridMemoryStore("postgresql://bot:hunter2@127.0.0.1:1/db", index={"embed": embeddings})
    assert "hunter2" not in str(failure.value)
