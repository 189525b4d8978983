"""The chat message history and the LCEL wrapper, inside real LangChain pipelines."""

from __future__ import annotations

import warnings

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from langchain_hybrid_memory import HybridMemory, with_hybrid_memory
from langchain_hybrid_memory.errors import InvalidInputError
from tests.conversations import filler
from tests.fakes import RecordingChatModel

BUDGET = 400
PROMPT = ChatPromptTemplate.from_messages(
    [("system", "You are helpful."), MessagesPlaceholder("history"), ("human", "{input}")]
)


def config(session: str = "s1", **extra: str) -> dict:
    return {"configurable": {"session_id": session, **extra}}


@pytest.fixture
def memory(embeddings) -> HybridMemory:
    return HybridMemory(embeddings=embeddings, window_turns=6, token_budget=BUDGET)


def chain_with(memory: HybridMemory, model: RecordingChatModel, **keys: str):
    with pytest.warns(DeprecationWarning, match="RunnableWithMessageHistory"):
        return with_hybrid_memory(PROMPT | model, memory, **keys)


def history_of(call) -> list:
    """The messages the model got between the system prompt and the user input."""
    return call[1:-1]


def test_the_wrapped_chain_recalls_an_old_fact_for_the_current_input(memory):
    model = RecordingChatModel(responses=["Sure."])
    chain = chain_with(memory, model, input_messages_key="input", history_messages_key="history")
    chain.invoke({"input": "Remember: I'm allergic to peanuts."}, config=config())
    memory.add_messages("s1", filler(60))

    chain.invoke({"input": "Can you suggest a snack for me?"}, config=config())

    last_call = model.calls[-1]
    assert "allergic to peanuts" in last_call[1].text
    assert count_tokens_approximately(history_of(last_call)) <= BUDGET
    transcript = [m.text for m in memory.transcript("s1")]
    assert len(transcript) == 64
    assert transcript[:2] == ["Remember: I'm allergic to peanuts.", "Sure."]
    assert transcript[-2:] == ["Can you suggest a snack for me?", "Sure."]


async def test_the_async_path_stores_each_turn_once_and_recalls(memory):
    model = RecordingChatModel(responses=["Sure."])
    chain = chain_with(memory, model, input_messages_key="input", history_messages_key="history")
    await chain.ainvoke({"input": "My cat is called Miso."}, config=config(user_id="ana"))
    await memory.aadd_messages("s1", filler(40), user_id="ana")
    await chain.ainvoke({"input": "What's my cat's name?"}, config=config(user_id="ana"))

    assert "Miso" in model.calls[-1][1].text
    transcript = await memory.atranscript("s1")
    assert len(transcript) == 44
    assert memory.store.session_user("s1") == "ana"


def test_streaming_stores_the_final_ai_message_once(memory):
    model = RecordingChatModel(responses=["Porto is lovely in spring."])
    chain = chain_with(memory, model, input_messages_key="input", history_messages_key="history")
    chunks = list(chain.stream({"input": "Tell me about Porto"}, config=config()))
    assert "".join(chunk.text for chunk in chunks) == "Porto is lovely in spring."
    assert [m.text for m in memory.transcript("s1")] == [
        "Tell me about Porto",
        "Porto is lovely in spring.",
    ]


async def test_async_streaming_stores_the_final_ai_message_once(memory):
    model = RecordingChatModel(responses=["Lisbon has seven hills."])
    chain = chain_with(memory, model, input_messages_key="input", history_messages_key="history")
    chunks = [chunk async for chunk in chain.astream({"input": "Lisbon?"}, config=config())]
    assert "".join(chunk.text for chunk in chunks) == "Lisbon has seven hills."
    assert len(memory.transcript("s1")) == 2


def test_batch_serves_several_sessions(memory):
    model = RecordingChatModel(responses=["ok"])
    chain = chain_with(memory, model, input_messages_key="input", history_messages_key="history")
    chain.batch(
        [{"input": "I'm in session a"}, {"input": "I'm in session b"}],
        config=[config("a"), config("b")],
    )
    assert [m.text for m in memory.transcript("a")] == ["I'm in session a", "ok"]
    assert [m.text for m in memory.transcript("b")] == ["I'm in session b", "ok"]


def test_a_chain_taking_a_list_of_messages_stores_each_turn_once(memory):
    model = RecordingChatModel(responses=["noted"])
    with pytest.warns(DeprecationWarning, match="RunnableWithMessageHistory"):
        chain = with_hybrid_memory(model, memory)
    memory.add_messages("s1", [HumanMessage("I'm allergic to peanuts"), AIMessage("ok")])
    memory.add_messages("s1", filler(30))
    chain.invoke([HumanMessage("What snack can I have?")], config=config())

    assert "allergic to peanuts" in model.calls[-1][0].text
    transcript = memory.transcript("s1")
    assert len(transcript) == 34
    assert [m.text for m in transcript[-2:]] == ["What snack can I have?", "noted"]


def test_the_stock_runnable_with_message_history_recalls_for_the_latest_stored_input(memory):
    model = RecordingChatModel(responses=["ok"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        chain = RunnableWithMessageHistory(
            PROMPT | model,
            memory.history,
            input_messages_key="input",
            history_messages_key="history",
        )
    memory.add_messages("s1", [HumanMessage("I'm allergic to peanuts"), AIMessage("ok")])
    memory.add_messages("s1", [*filler(30), HumanMessage("Which nuts should I avoid?")])
    chain.invoke({"input": "And for dessert?"}, config=config())

    assert "allergic to peanuts" in model.calls[-1][1].text
    assert len(memory.transcript("s1")) == 35


def test_the_history_reads_the_same_until_the_next_write(memory):
    history = memory.history("s1", query="peanuts")
    history.add_messages([HumanMessage("I'm allergic to peanuts"), AIMessage("ok")])
    first = history.messages
    memory.add_messages("s1", [HumanMessage("written by another worker meanwhile")])
    assert history.messages == first, "one call's read and write must see the same history"
    history.add_messages([HumanMessage("hello")])
    assert history.messages != first
    history.clear()
    assert history.transcript == []


def test_langgraphs_thread_id_names_the_session_and_user_id_stays_optional(memory):
    model = RecordingChatModel(responses=["Hi!", "Hello again!"])
    chain = chain_with(memory, model, input_messages_key="input", history_messages_key="history")
    chain.invoke({"input": "I'm Ana"}, {"configurable": {"thread_id": "t9"}})
    assert [m.text for m in memory.transcript("t9")] == ["I'm Ana", "Hi!"]
    bound = chain.with_config(configurable={"user_id": "ana"})
    bound.invoke({"input": "Still me"}, {"configurable": {"thread_id": "t10"}})
    assert memory.store.session_user("t10") == "ana", "a bound user_id is not reset"
    with pytest.raises(InvalidInputError, match="'user_id' is optional"):
        chain.invoke({"input": "who am I?"}, {"configurable": {}})
