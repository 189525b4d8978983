"""HybridMemoryMiddleware inside create_agent, with a fake tool-calling model that records prompts."""

from __future__ import annotations

from itertools import count

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from langchain_hybrid_memory import HybridMemory, HybridMemoryMiddleware
from langchain_hybrid_memory.errors import InvalidInputError
from tests.conversations import _TOPICS
from tests.fakes import RecordingToolModel

BUDGET = 500


@tool
def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"Sunny in {city}"


def replies(script: list[AIMessage] | None = None):
    """Scripted replies first, then fresh plain replies forever."""
    yield from script or []
    for i in count():
        yield AIMessage(f"Reply {i}.")


def agent_for(memory: HybridMemory, model: RecordingToolModel, *, checkpointer=None, **kwargs):
    return create_agent(
        model,
        tools=[weather],
        system_prompt="You are a helpful assistant.",
        middleware=[HybridMemoryMiddleware(memory, **kwargs)],
        checkpointer=checkpointer,
    )


def thread(thread_id: str = "t1") -> dict:
    return {"configurable": {"thread_id": thread_id}}


def say(text: str) -> dict:
    return {"messages": [HumanMessage(text)]}


@pytest.fixture
def memory(embeddings) -> HybridMemory:
    return HybridMemory(embeddings=embeddings, window_turns=6, token_budget=BUDGET)


@pytest.mark.parametrize("checkpointer", [None, InMemorySaver()], ids=["stateless", "checkpointer"])
def test_an_agent_remembers_a_fact_from_far_outside_its_window(memory, checkpointer):
    model = RecordingToolModel(messages=replies())
    agent = agent_for(memory, model, checkpointer=checkpointer)
    agent.invoke(say("Please remember that I'm allergic to peanuts."), thread())
    for question, _ in _TOPICS * 2:
        agent.invoke(say(question), thread())

    agent.invoke(say("Suggest a snack for my hike."), thread())

    last_call = model.calls[-1]
    assert isinstance(last_call[0], SystemMessage)
    assert last_call[0].text.startswith("You are a helpful assistant.")
    assert "allergic to peanuts" in last_call[0].text
    memory_part = [SystemMessage(last_call[0].text.split("\n\n", 1)[1]), *last_call[1:]]
    assert count_tokens_approximately(memory_part) <= BUDGET
    transcript = memory.transcript("t1")
    assert len(transcript) == 2 * (2 + 2 * len(_TOPICS))
    assert len({m.id for m in transcript}) == len(transcript), "no message stored twice"
    assert transcript[-2].text == "Suggest a snack for my hike."


@pytest.mark.parametrize("checkpointer", [None, InMemorySaver()], ids=["stateless", "checkpointer"])
async def test_tool_calls_and_results_are_stored_once_and_kept_together(memory, checkpointer):
    call = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Porto"}, "id": "c1"}])
    model = RecordingToolModel(messages=replies([call, AIMessage("It's sunny in Porto.")]))
    agent = agent_for(memory, model, checkpointer=checkpointer)

    result = await agent.ainvoke(say("Weather in Porto?"), thread())

    assert result["messages"][-1].text == "It's sunny in Porto."
    transcript = await memory.atranscript("t1")
    assert [type(m).__name__ for m in transcript] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    second_call = model.calls[1]
    position = next(i for i, m in enumerate(second_call) if isinstance(m, ToolMessage))
    assert second_call[position - 1].tool_calls[0]["id"] == "c1"


def test_the_context_is_not_written_into_the_graph_state(memory):
    model = RecordingToolModel(messages=replies())
    agent = agent_for(memory, model, checkpointer=InMemorySaver())
    agent.invoke(say("I live in Porto."), thread())
    result = agent.invoke(say("Where do I live?"), thread())
    assert not any(isinstance(m, SystemMessage) for m in result["messages"])
    assert [m.text for m in result["messages"]] == [
        "I live in Porto.",
        "Reply 0.",
        "Where do I live?",
        "Reply 1.",
    ]


def test_a_replayed_state_stores_nothing_twice(memory):
    middleware = HybridMemoryMiddleware(memory, session_id="s1")
    state = {"messages": [HumanMessage("hi", id="h1"), AIMessage("hello", id="a1")]}
    middleware.after_model(state, None)
    middleware.after_model(state, None)
    assert [m.id for m in memory.transcript("s1")] == ["h1", "a1"]


def test_session_and_user_come_from_the_run_context(memory):
    model = RecordingToolModel(messages=replies())
    agent = agent_for(memory, model)
    agent.invoke(say("hello"), context={"session_id": "ctx-session", "user_id": "ana"})
    assert len(memory.transcript("ctx-session")) == 2
    assert memory.store.session_user("ctx-session") == "ana"


def test_without_any_session_the_error_says_how_to_give_one(memory):
    model = RecordingToolModel(messages=replies())
    with pytest.raises(InvalidInputError, match="thread_id"):
        agent_for(memory, model).invoke(say("hello"))


def test_a_client_resending_its_history_without_ids_stores_each_turn_once(memory):
    model = RecordingToolModel(messages=replies())
    agent = agent_for(memory, model)
    history: list = []
    for text in ["I live in Porto.", "I have a dog.", "Where do I live?"]:
        history.append(HumanMessage(text))
        result = agent.invoke({"messages": list(history)}, thread())
        history.append(AIMessage(result["messages"][-1].text))  # the client keeps plain copies
    assert [m.text for m in memory.transcript("t1")] == [
        "I live in Porto.",
        "Reply 0.",
        "I have a dog.",
        "Reply 1.",
        "Where do I live?",
        "Reply 2.",
    ]
