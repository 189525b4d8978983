"""The memory tools inside create_agent, with the middleware, a fake tool-calling model."""

from __future__ import annotations

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from langchain_hybrid_memory import HybridMemory, HybridMemoryMiddleware
from langchain_hybrid_memory.tools import memory_tools
from tests.conversations import START, filler
from tests.fakes import RecordingToolModel


def call(name: str, args: dict, call_id: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}])


def test_an_agent_searches_its_memory_and_records_a_fact(embeddings):
    memory = HybridMemory(embeddings=embeddings, window_turns=4, token_budget=400)
    memory.add_messages(
        "old",
        [HumanMessage("My locker code at the gym is 2718"), AIMessage("Saved.")],
        user_id="ana",
        timestamp=START,
    )
    memory.add_messages("old", filler(20), user_id="ana")
    script = [
        call("search_memory", {"query": "gym locker code"}, "c1"),
        call("remember_fact", {"entity": "Ana", "attribute": "gym", "value": "FitLab"}, "c2"),
        AIMessage("Your code is 2718, and I noted FitLab."),
    ]
    model = RecordingToolModel(messages=iter(script))
    agent = create_agent(
        model,
        tools=memory_tools(memory),
        middleware=[HybridMemoryMiddleware(memory)],
        checkpointer=InMemorySaver(),
    )
    run = {"configurable": {"thread_id": "new"}}
    agent.invoke(
        {"messages": [HumanMessage("What is my locker code? I go to FitLab now.")]},
        run,
        context={"user_id": "ana"},
    )

    found = next(m for m in model.calls[1] if m.type == "tool")
    assert "2718" in found.text, "the search reached the user's other conversation"
    assert "old" in found.text, "each line names its conversation"
    assert "score" in found.text
    gym = memory.entities(user_id="ana")["ana"].facts["gym"]
    assert (gym.value, gym.session_id) == ("FitLab", "new")

    retract = iter(
        [
            call("remember_fact", {"entity": "Ana", "attribute": "gym", "value": ""}, "c3"),
            AIMessage("Done."),
        ]
    )
    model2 = RecordingToolModel(messages=retract)
    agent2 = create_agent(
        model2,
        tools=memory_tools(memory, user_id="ana"),
        middleware=[HybridMemoryMiddleware(memory, user_id="ana")],
    )
    agent2.invoke({"messages": [HumanMessage("I quit the gym.")]}, run)
    assert "gym" not in memory.entities(user_id="ana")["ana"].facts
