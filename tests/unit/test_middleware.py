"""HybridMemoryMiddleware inside create_agent, with a fake tool-calling model that records prompts."""

from __future__ import annotations

from itertools import count

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from langchain_hybrid_memory import HybridMemory, HybridMemoryMiddleware
from langchain_hybrid_memory.errors import InvalidInputError, StoreError
from tests.conversations import _TOPICS
from tests.fakes import RecordingChatModel, RecordingToolModel

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
    assert last_call[0].text == "You are a helpful assistant.", "the app's system message, as is"
    assert isinstance(last_call[1], SystemMessage)
    assert "allergic to peanuts" in last_call[1].text, "the memory, in a message of its own"
    assert count_tokens_approximately(last_call[1:]) <= BUDGET
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


def request_for(model, messages, system="Be brief."):
    return ModelRequest(
        model=model,
        messages=list(messages),
        system_message=SystemMessage(system),
        state={"messages": list(messages)},
    )


def test_a_replayed_model_call_stores_nothing_twice(memory):
    middleware = HybridMemoryMiddleware(memory, session_id="s1")
    reply = AIMessage("hello", id="a1")
    request = request_for(RecordingToolModel(messages=replies()), [HumanMessage("hi", id="h1")])
    for _ in range(2):  # the same step run again (a retry, a replay from a checkpoint)
        middleware.wrap_model_call(request, lambda _request: ModelResponse(result=[reply]))
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


# -- what a user of create_agent hit (issue #13) ------------------------------------------------


def test_a_long_user_message_and_a_large_tool_result_reach_the_model_whole(memory):
    question = "Here is my whole report. " + "Quarterly numbers went up. " * 400 + "Summarize it?"
    call = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Porto"}, "id": "c1"}])
    model = RecordingToolModel(messages=replies([AIMessage("Noted."), call, AIMessage("Done.")]))
    agent = agent_for(memory, model, checkpointer=InMemorySaver())
    agent.invoke(say("I live in Porto."), thread())
    agent.invoke(say(question), thread())

    for prompt in model.calls[1:]:
        assert any(m.text == question for m in prompt), "the current input is never cut"
    tool_step = model.calls[2]
    assert [type(m).__name__ for m in tool_step[-3:]] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
    ]
    assert tool_step[-1].text == "Sunny in Porto"


def test_a_step_over_the_budget_gets_no_memory_and_says_so(memory, caplog):
    huge = "word " * (4 * BUDGET)
    model = RecordingToolModel(messages=replies())
    agent = agent_for(memory, model)
    agent.invoke(say("I live in Porto."), thread())
    with caplog.at_level("WARNING"):
        agent.invoke(say(huge), thread())
    last = model.calls[-1]
    assert [type(m).__name__ for m in last] == ["SystemMessage", "HumanMessage"]
    assert last[-1].text == huge
    assert "adds nothing" in caplog.text
    context = memory._build_step_context("t1", huge, None, before=2, reserved=3 * BUDGET)
    assert context.crowded_out
    assert context.tokens == 0


def test_the_recent_turns_start_on_a_user_message(memory):
    model = RecordingToolModel(messages=replies())
    agent = agent_for(memory, model, checkpointer=InMemorySaver())
    for i in range(12):
        agent.invoke(say(f"Message number {i} about the garden."), thread())
    for prompt in model.calls[1:]:
        after_memory = [m for m in prompt[1:] if not isinstance(m, SystemMessage)]
        assert isinstance(after_memory[0], HumanMessage)


def test_the_thread_state_stays_bounded_and_the_memory_keeps_everything(memory):
    saver = InMemorySaver()
    call = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Faro"}, "id": "w1"}])
    script = [AIMessage(f"Reply {i}.") for i in range(15)] + [call, AIMessage("Sunny!")]
    model = RecordingToolModel(messages=replies(script))
    agent = agent_for(memory, model, checkpointer=saver)
    for i in range(16):
        result = agent.invoke(say(f"Turn {i}: tell me about my plans."), thread())
        assert len(result["messages"]) <= 6 + 4, "the window plus the current step"
        assert isinstance(result["messages"][0], HumanMessage)
    kinds = [type(m).__name__ for m in result["messages"]]
    assert kinds[-4:] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert len(memory.transcript("t1")) == 2 * 15 + 4, "every message stored, once"
    state = agent.get_state(thread()).values["messages"]
    assert [m.id for m in state] == [m.id for m in result["messages"]]


def test_keep_full_thread_keeps_every_message_in_the_state(memory):
    model = RecordingToolModel(messages=replies())
    agent = agent_for(memory, model, checkpointer=InMemorySaver(), keep_full_thread=True)
    for i in range(10):
        result = agent.invoke(say(f"Turn {i}."), thread())
    assert len(result["messages"]) == 20
    assert len(model.calls[-1]) < 20, "the model still gets the bounded prompt"


def test_storing_adds_no_graph_step(memory):
    model = RecordingToolModel(messages=replies())
    saver = InMemorySaver()
    agent = agent_for(memory, model, checkpointer=saver)
    agent.invoke(say("hello"), thread())
    steps = list(saver.list(thread()))
    plain = create_agent(
        RecordingToolModel(messages=replies()),
        tools=[weather],
        checkpointer=(bare := InMemorySaver()),
    )
    plain.invoke(say("hello"), thread())
    assert len(steps) == len(list(bare.list(thread()))), "as many checkpoints as without memory"


@tool
def web_search(query: str) -> str:
    """Search the web."""
    return "SPAMWORD cookie banner, SPAMWORD ads, SPAMWORD newsletter signup"


def test_tool_results_can_be_kept_out_of_recall_and_the_summary(embeddings):
    summaries = RecordingChatModel(responses=['{"summary": "Small talk.", "entities": []}'] * 50)
    memory = HybridMemory(
        embeddings=embeddings,
        llm=summaries,
        window_turns=4,
        summary_batch=4,
        summary_batch_tokens=None,
        token_budget=BUDGET,
        exclude_tool_results={"web_search"},
    )
    call = AIMessage("", tool_calls=[{"name": "web_search", "args": {"query": "x"}, "id": "s1"}])
    model = RecordingToolModel(messages=replies([call, AIMessage("Found it.")]))
    agent = create_agent(
        model, tools=[web_search], middleware=[HybridMemoryMiddleware(memory)], checkpointer=None
    )
    agent.invoke(say("Search the web for me."), thread())
    assert any("SPAMWORD" in m.text for m in model.calls[1]), "the current step sees the result"
    for question, _ in _TOPICS:
        agent.invoke(say(question), thread())
    memory.flush()

    assert any(m.type == "tool" for m in memory.transcript("t1")), "still stored"
    recalled = memory.recall("t1", "SPAMWORD cookie banner", k=5)
    assert all(item.turn.role != "tool" for item in recalled)
    assert summaries.prompts, "the summary was folded"
    assert not any("SPAMWORD" in prompt for prompt in summaries.prompts)


@pytest.mark.parametrize("saver_kind", ["memory", "sqlite"])
def test_erasure_reaches_the_checkpointer(memory, saver_kind, tmp_path):
    if saver_kind == "sqlite":
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver

        saver = SqliteSaver(sqlite3.connect(tmp_path / "threads.db", check_same_thread=False))
    else:
        saver = InMemorySaver()
    model = RecordingToolModel(messages=replies())
    agent = agent_for(memory, model, checkpointer=saver)
    for thread_id in ("t1", "t2", "other"):
        user = "bob" if thread_id == "other" else "ana"
        agent.invoke(say("My secret is 4711."), thread(thread_id), context={"user_id": user})
    assert saver.get_tuple(thread("t1")) is not None

    report = memory.forget_session("t1", checkpointer=saver)
    assert report.threads == ("t1",)
    assert saver.get_tuple(thread("t1")) is None
    assert memory.transcript("t1") == []

    report = memory.forget_user("ana", checkpointer=saver)
    assert report.threads == ("t2",)
    assert saver.get_tuple(thread("t2")) is None
    assert saver.get_tuple(thread("other")) is not None, "another user's thread stays"


async def test_async_erasure_reaches_the_checkpointer_and_a_failure_is_reported(memory):
    saver = InMemorySaver()
    agent = agent_for(memory, RecordingToolModel(messages=replies()), checkpointer=saver)
    await agent.ainvoke(say("hello"), thread("t1"))
    report = await memory.aforget_session("t1", checkpointer=saver)
    assert report.threads == ("t1",)
    assert saver.get_tuple(thread("t1")) is None

    class Broken(InMemorySaver):
        def delete_thread(self, thread_id):
            raise ConnectionError("postgresql://user:hunter2@db/checkpoints is down")

    await agent.ainvoke(say("hello again"), thread("t2"))
    with pytest.raises(StoreError, match="erased 1 session") as failure:
        memory.forget_session("t2", checkpointer=Broken())
    assert "hunter2" not in str(failure.value)
    assert memory.transcript("t2") == [], "the memory was erased before the checkpointer failed"


def test_a_long_tool_exchange_just_before_still_reaches_the_model(embeddings):
    """Its turns before the window's first user message go to recall, never nowhere."""
    memory = HybridMemory(embeddings=embeddings, window_turns=4, token_budget=2000)
    porto = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Porto"}, "id": "a"}])
    lima = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Lima"}, "id": "b"}])
    done = AIMessage("Porto and Lima are sunny; the code is XK-42.")
    model = RecordingToolModel(messages=replies([porto, lima, done]))
    agent = agent_for(memory, model, checkpointer=InMemorySaver())
    agent.invoke(say("Check Porto then Lima."), thread())
    agent.invoke(say("What was the code you just told me?"), thread())

    prompt = model.calls[-1]
    assert any("XK-42" in m.text for m in prompt)
    after_memory = [m for m in prompt[1:] if not isinstance(m, SystemMessage)]
    assert isinstance(after_memory[0], HumanMessage)
