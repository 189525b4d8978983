"""HybridMemoryMiddleware inside create_agent, with a fake tool-calling model that records prompts."""

from __future__ import annotations

from itertools import count

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    ModelRequest,
    ModelResponse,
    PIIMiddleware,
    SummarizationMiddleware,
)
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from langchain_hybrid_memory import HybridMemory, HybridMemoryMiddleware
from langchain_hybrid_memory.errors import InvalidInputError, StoreError
from langchain_hybrid_memory.redaction import PIIRedactor
from tests.conversations import _TOPICS
from tests.fakes import RecordingChatModel, RecordingToolModel, RetrieverRuns

BUDGET = 500


@tool
def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"Sunny in {city}"


def replies(script: list[AIMessage] | None = None):
    """Scripted replies first (each a fresh copy, as a model's), then plain replies forever."""
    for message in script or []:
        yield message.model_copy(deep=True)
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
        middleware.after_agent({"messages": [*request.messages, reply]}, None)
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
    prompt = model.calls[-1]
    memory_text = prompt[1].text if isinstance(prompt[1], SystemMessage) else ""
    for earlier in prompt[2:]:
        assert earlier.text not in memory_text, "a recent turn is not recalled as well"


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


def check_the_thread_stays_bounded(memory: HybridMemory, saver) -> None:
    """A 16-turn thread on ``saver`` ends with the window and its last step in the state, and
    every message in the memory once (also run against PostgresSaver, in tests/integration).
    """
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
    transcript = memory.transcript("t1")
    assert len(transcript) == len({m.id for m in transcript}) == 2 * 15 + 4, "each stored once"
    state = agent.get_state(thread()).values["messages"]
    assert [m.id for m in state] == [m.id for m in result["messages"]]
    assert [m.id for m in transcript[-len(state) :]] == [m.id for m in state]


@pytest.mark.parametrize("saver_kind", ["memory", "sqlite"])
def test_the_thread_state_stays_bounded_and_the_memory_keeps_everything(
    memory, saver_kind, tmp_path
):
    if saver_kind == "sqlite":
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver

        connection = sqlite3.connect(tmp_path / "threads.db", check_same_thread=False)
        check_the_thread_stays_bounded(memory, SqliteSaver(connection))
        connection.close()
    else:
        check_the_thread_stays_bounded(memory, InMemorySaver())


def test_keep_full_thread_keeps_every_message_in_the_state(memory):
    model = RecordingToolModel(messages=replies())
    agent = agent_for(memory, model, checkpointer=InMemorySaver(), keep_full_thread=True)
    for i in range(10):
        result = agent.invoke(say(f"Turn {i}."), thread())
    assert len(result["messages"]) == 20
    assert len(model.calls[-1]) < 20, "the model still gets the bounded prompt"


def test_storing_adds_one_graph_step_per_run_and_none_per_model_call(memory):
    call = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Porto"}, "id": "c1"}])
    saver, bare = InMemorySaver(), InMemorySaver()
    agent = agent_for(memory, RecordingToolModel(messages=replies([call])), checkpointer=saver)
    plain = create_agent(
        RecordingToolModel(messages=replies([call])), tools=[weather], checkpointer=bare
    )
    for run in (agent, plain):
        run.invoke(say("Weather in Porto?"), thread())
        run.invoke(say("And tomorrow?"), thread())
    with_memory, without = len(list(saver.list(thread()))), len(list(bare.list(thread())))
    assert with_memory == without + 2, "after_agent, once per run, whatever the model calls"


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


@pytest.mark.parametrize("saver_kind", ["memory", "sqlite"])
def test_erasure_finds_the_threads_labelled_with_the_session_or_user(memory, saver_kind, tmp_path):
    """LangGraph labels each checkpoint with the run's ``configurable`` and ``metadata`` ids:
    an erasure finds a user's threads by them, whatever the threads are called."""
    if saver_kind == "sqlite":
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver

        saver = SqliteSaver(sqlite3.connect(tmp_path / "threads.db", check_same_thread=False))
    else:
        saver = InMemorySaver()
    agent = agent_for(memory, RecordingToolModel(messages=replies()), checkpointer=saver)
    ids = {"thread_id": "th-1", "session_id": "s-1", "user_id": "ana"}
    agent.invoke(say("My secret is 4711."), {"configurable": ids})
    agent.invoke(say("Hello."), {"configurable": {"thread_id": "th-2", "user_id": "ana"}})
    bob = {"configurable": {"thread_id": "th-3"}, "metadata": {"session_id": "s-3"}}
    agent.invoke(say("Hi."), bob, context={"session_id": "s-3", "user_id": "bob"})
    assert memory.store.session_user("s-1") == "ana", "the configurable ids name the memory's"
    assert memory.store.session_user("th-2") == "ana"

    report = memory.forget_session("s-1", checkpointer=saver)
    assert report.threads == ("th-1",), "found by its label; no thread is named s-1"
    assert saver.get_tuple(thread("th-1")) is None
    assert memory.transcript("s-1") == []

    report = memory.forget_session("s-3", checkpointer=saver)
    assert report.threads == ("th-3",), "the run's metadata labelled it"

    report = memory.forget_user("ana", checkpointer=saver)
    assert report.threads == ("th-2",)
    assert list(saver.list(None)) == []


async def test_async_erasure_reaches_the_checkpointer_and_a_failure_is_reported(memory):
    saver = InMemorySaver()
    agent = agent_for(memory, RecordingToolModel(messages=replies()), checkpointer=saver)
    await agent.ainvoke(say("hello"), thread("t1"))
    report = await memory.aforget_session("t1", checkpointer=saver)
    assert report.threads == ("t1",)
    assert saver.get_tuple(thread("t1")) is None
    await agent.ainvoke(say("hi"), {"configurable": {"thread_id": "t9", "user_id": "cy"}})
    report = await memory.aforget_user("cy", checkpointer=saver)
    assert report.threads == ("t9",), "found by its label"

    class Broken(InMemorySaver):
        def delete_thread(self, thread_id):
            raise ConnectionError("postgresql://user:hunter2@db/checkpoints is down")

    broken = Broken()
    agent = agent_for(memory, RecordingToolModel(messages=replies()), checkpointer=broken)
    await agent.ainvoke(say("hello again"), thread("t2"))
    with pytest.raises(StoreError, match="erased 1 session") as failure:
        memory.forget_session("t2", checkpointer=broken)
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


# -- the window is the graph state's (issue #13, remaining items) --------------------------------


def test_a_repaired_invalid_tool_call_reaches_the_model_with_its_synthetic_result(memory):
    broken = AIMessage(
        "",
        invalid_tool_calls=[
            {
                "name": "weather",
                "args": '{"city": "Por',
                "id": "bad1",
                "error": None,
                "type": "invalid_tool_call",
            }
        ],
    )
    model = RecordingToolModel(messages=replies([broken]))
    agent = agent_for(memory, model, checkpointer=InMemorySaver())
    agent.invoke(say("Weather in Porto?"), thread())
    agent.invoke(say("Try again please."), thread())

    prompt = model.calls[-1]
    position = next(i for i, m in enumerate(prompt) if getattr(m, "invalid_tool_calls", None))
    answer = prompt[position + 1]
    assert isinstance(answer, ToolMessage), "create_agent's repair is kept"
    assert answer.tool_call_id == "bad1"
    assert prompt[-1].text == "Try again please."
    stored = memory.transcript("t1")
    assert [m.type for m in stored] == ["human", "ai", "tool", "human", "ai"], "stored in place"
    assert stored[2].tool_call_id == "bad1"
    agent.invoke(say("Thanks."), thread())
    assert len(memory.transcript("t1")) == 7, "stored once"


class UpperCaseHistory(AgentMiddleware):
    """Another wrap_model_call middleware that edits the earlier messages it hands on."""

    def wrap_model_call(self, request, handler):
        *earlier, last = request.messages
        edited = [m.model_copy(update={"content": m.text.upper()}) for m in earlier]
        return handler(request.override(messages=[*edited, last]))


def test_edits_another_middleware_made_to_earlier_messages_reach_the_model(memory):
    model = RecordingToolModel(messages=replies())
    agent = create_agent(
        model,
        tools=[weather],
        middleware=[UpperCaseHistory(), HybridMemoryMiddleware(memory)],
        checkpointer=InMemorySaver(),
    )
    for text in ["I live in Porto.", "I have a dog.", "What do you know?"]:
        agent.invoke(say(text), thread())

    prompt = model.calls[-1]
    recent = [m for m in prompt if not isinstance(m, SystemMessage)]
    assert [m.text for m in recent] == [
        "I LIVE IN PORTO.",
        "REPLY 0.",
        "I HAVE A DOG.",
        "REPLY 1.",
        "What do you know?",
    ]
    assert memory.transcript("t1")[0].text == "I live in Porto.", "the memory keeps the state's"


def test_without_a_checkpointer_the_recent_turns_come_from_the_memory(memory):
    model = RecordingToolModel(messages=replies())
    agent = agent_for(memory, model)
    agent.invoke(say("I live in Porto."), thread())
    agent.invoke(say("Where do I live?"), thread())
    recent = [m.text for m in model.calls[-1] if not isinstance(m, SystemMessage)]
    assert recent == ["I live in Porto.", "Reply 0.", "Where do I live?"]


@pytest.mark.parametrize("keep_full_thread", [False, True], ids=["bounded", "full"])
def test_the_window_from_the_state_fits_the_budget_starts_on_a_user_message_keeps_tool_pairs(
    embeddings, keep_full_thread
):
    memory = HybridMemory(embeddings=embeddings, window_turns=8, token_budget=300)
    script: list[AIMessage] = []
    for i in range(12):
        call = {"name": "weather", "args": {"city": f"City {i}"}, "id": f"c{i}"}
        script += [AIMessage("", tool_calls=[call]), AIMessage(f"Done {i}.")] if i % 3 == 0 else []
        script += [] if i % 3 == 0 else [AIMessage(f"Reply {i}.")]
    model = RecordingToolModel(messages=replies(script))
    agent = agent_for(
        memory, model, checkpointer=InMemorySaver(), keep_full_thread=keep_full_thread
    )
    for i in range(12):
        agent.invoke(say(f"Message {i}: " + "the garden needs water and care. " * 6), thread())
    for prompt in model.calls[1:]:
        assert count_tokens_approximately(prompt[1:]) <= 300
        after_memory = [m for m in prompt[1:] if not isinstance(m, SystemMessage)]
        assert isinstance(after_memory[0], HumanMessage)
        called = {c["id"] for m in prompt for c in getattr(m, "tool_calls", [])}
        answered = {m.tool_call_id for m in prompt if isinstance(m, ToolMessage)}
        assert called == answered


# -- the reply is stored as it ends in the state ---------------------------------------------------


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("checkpointed", [False, True], ids=["stateless", "checkpointer"])
async def test_the_memory_stores_the_reply_after_pii_middleware_redacted_it(
    memory, checkpointed, run_async
):
    model = RecordingToolModel(
        messages=replies([AIMessage("Write to ana@example.com."), AIMessage("Done.")])
    )
    agent = create_agent(
        model,
        tools=[weather],
        middleware=[
            HybridMemoryMiddleware(memory),
            PIIMiddleware("email", strategy="redact", apply_to_output=True),
        ],
        checkpointer=InMemorySaver() if checkpointed else None,
    )
    invoke = agent.ainvoke if run_async else agent.invoke

    async def ask(text: str) -> dict:
        result = invoke(say(text), thread())
        return (await result) if run_async else result

    result = await ask("Where do I send the form?")
    shown = result["messages"][-1].text
    assert "ana@example.com" not in shown
    assert memory.transcript("t1")[-1].text == shown, "stored at the end of the run"

    await ask("Thanks.")
    texts = [m.text for m in memory.transcript("t1")]
    assert texts == ["Where do I send the form?", shown, "Thanks.", "Done."]
    assert not any("ana@example.com" in m.text for prompt in model.calls for m in prompt)


# -- beside SummarizationMiddleware ---------------------------------------------------------------


def test_beside_summarization_middleware_its_summary_is_not_user_input_and_calls_keep_results(
    memory,
):
    summarizer = RecordingChatModel(responses=["The user talked about the weather."] * 50)

    def call(city: str, call_id: str) -> AIMessage:
        return AIMessage(
            "", tool_calls=[{"name": "weather", "args": {"city": city}, "id": call_id}]
        )

    script = [AIMessage("Reply A."), AIMessage("Reply B."), call("Faro", "w1"), call("Lima", "w2")]
    script += [
        AIMessage("Both sunny."),
        AIMessage("Reply C."),
        call("Porto", "w3"),
        AIMessage("Ok."),
    ]
    model = RecordingToolModel(messages=replies(script))
    agent = create_agent(
        model,
        tools=[weather],
        middleware=[
            SummarizationMiddleware(summarizer, trigger=("messages", 5), keep=("messages", 2)),
            HybridMemoryMiddleware(memory),
        ],
        checkpointer=InMemorySaver(),
    )
    inputs = ["My garden plans.", "More plans.", "Weather in Faro and Lima?", "Nice."]
    inputs += ["Porto too?", "Thanks."]
    runs = RetrieverRuns()
    for text in inputs:
        agent.invoke(say(text), {**thread(), "callbacks": [runs]})

    assert summarizer.prompts, "SummarizationMiddleware did summarize"
    transcript = memory.transcript("t1")
    assert not any("talked about the weather" in m.text for m in transcript), "never stored"
    assert [m.text for m in transcript if m.type == "human"] == inputs
    assert len(transcript) == len({m.id for m in transcript}) == 6 + 6 + 3 + 3
    assert {query for _, query in runs.started} <= set(inputs), "recall searched user input"
    for prompt in model.calls:
        called = {c["id"] for m in prompt for c in getattr(m, "tool_calls", [])}
        answered = {m.tool_call_id for m in prompt if isinstance(m, ToolMessage)}
        assert called == answered, "no tool call without its result, no result without its call"


# -- replays and forks --------------------------------------------------------------------------


def test_a_fork_from_an_older_checkpoint_stores_only_its_new_messages(embeddings, monkeypatch):
    memory = HybridMemory(embeddings=embeddings, window_turns=4, token_budget=BUDGET)
    saver = InMemorySaver()
    agent = agent_for(memory, RecordingToolModel(messages=replies()), checkpointer=saver)
    whole_reads = []
    read_all = memory.turns
    monkeypatch.setattr(memory, "turns", lambda *a, **k: whole_reads.append(a) or read_all(*a, **k))
    for i in range(30):  # 60 stored messages: more than the middleware compares (55 here)
        agent.invoke(say(f"Turn {i}."), thread())
    assert whole_reads == [], "a thread that goes on never reads the whole session"
    history = list(agent.get_state_history(thread()))
    old = next(
        s for s in history if s.values["messages"] and s.values["messages"][-1].text == "Reply 1."
    )
    before = len(memory.transcript("t1"))

    whole_reads.clear()
    agent.invoke(say("Let's go another way."), old.config)
    assert len(whole_reads) == 1, "the fork's first call reads the session once"

    transcript = memory.transcript("t1")
    assert [m.text for m in transcript[before:]] == ["Let's go another way.", "Reply 30."]
    assert len({m.id for m in transcript}) == len(transcript)


# -- traces ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
async def test_recall_shows_in_traces_as_a_retriever_run(memory, run_async):
    model = RecordingToolModel(messages=replies())
    agent = agent_for(memory, model, checkpointer=InMemorySaver())
    agent.invoke(say("Please remember that I'm allergic to peanuts."), thread())
    for question, _ in _TOPICS:
        agent.invoke(say(question), thread())
    runs = RetrieverRuns()
    config = {**thread(), "callbacks": [runs]}
    if run_async:
        await agent.ainvoke(say("Suggest a snack for my hike."), config)
    else:
        agent.invoke(say("Suggest a snack for my hike."), config)

    assert runs.started == [("hybrid_memory.recall", "Suggest a snack for my hike.")]
    [documents] = runs.documents
    assert any("allergic to peanuts" in d.page_content for d in documents)
    assert all(d.metadata["session_id"] == "t1" for d in documents)


def test_a_memory_that_redacts_keeps_raw_text_out_of_traces(embeddings):
    redactor = PIIRedactor(redact_on=("embed",))  # the store keeps the raw text
    memory = HybridMemory(embeddings=embeddings, window_turns=2, redactor=redactor)
    model = RecordingToolModel(messages=replies())
    middleware = HybridMemoryMiddleware(memory)
    agent = create_agent(model, tools=[], middleware=[middleware], checkpointer=InMemorySaver())
    agent.invoke(say("My email is ana@example.com, write to me there."), thread())
    for i in range(4):
        agent.invoke(say(f"Small talk {i}."), thread())
    runs = RetrieverRuns()
    agent.invoke(say("What is my email ana@example.com about?"), {**thread(), "callbacks": [runs]})

    assert "ana@example.com" in memory.transcript("t1")[0].text
    [(_, query)] = runs.started
    assert "ana@example.com" not in query
    [documents] = runs.documents
    assert documents, "the recalled turn is traced"
    assert not any("ana@example.com" in d.page_content for d in documents)
    assert middleware.trace_policy is not None
    assert middleware.trace_policy.process_inputs({"request": "raw"}) == {}
    assert HybridMemoryMiddleware(HybridMemory(embeddings=embeddings)).trace_policy is None
