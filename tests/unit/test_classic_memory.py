"""ConversationHybridMemory inside classic chains: ConversationChain and LLMChain."""

from __future__ import annotations

import warnings

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder, PromptTemplate

from langchain_hybrid_memory import ConversationHybridMemory, HybridMemory
from tests.conversations import filler
from tests.fakes import RecordingChatModel

BUDGET = 400


@pytest.fixture(autouse=True)
def _quiet_classic_deprecations():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@pytest.fixture
def memory(embeddings) -> HybridMemory:
    return HybridMemory(embeddings=embeddings, window_turns=6, token_budget=BUDGET)


def test_conversation_chain_recalls_an_old_fact_and_stores_each_turn_once(memory):
    from langchain_classic.chains import ConversationChain

    model = RecordingChatModel(responses=["Happy to help."])
    legacy = ConversationHybridMemory(memory=memory, session_id="s1")
    chain = ConversationChain(llm=model, memory=legacy)
    chain.invoke({"input": "I'm allergic to peanuts."})
    memory.add_messages("s1", filler(50))

    chain.invoke({"input": "Suggest a snack for me."})

    prompt = model.prompts[-1]
    assert "allergic to peanuts" in prompt
    history = legacy.load_memory_variables({"input": "Suggest a snack for me."})["history"]
    assert count_tokens_approximately([history]) <= BUDGET + 10
    transcript = [m.text for m in memory.transcript("s1")]
    assert len(transcript) == 54
    assert transcript[-2:] == ["Suggest a snack for me.", "Happy to help."]


async def test_llm_chain_with_messages_and_extra_variables_async(memory):
    from langchain_classic.chains import LLMChain

    model = RecordingChatModel(responses=["Sure."])
    legacy = ConversationHybridMemory(
        memory=memory,
        session_id="s1",
        return_messages=True,
        entities_key="facts",
        input_key="question",
    )
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Facts: {facts}"), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    chain = LLMChain(llm=model, prompt=prompt, memory=legacy)
    await memory.aadd_messages("s1", filler(2), entities={"Bolt": {"species": "dog"}})
    await memory.aadd_messages("s1", filler(40))
    await chain.ainvoke({"question": "Can Bolt come along?"})

    call = model.calls[-1]
    assert "- Bolt (since " in call[0].text
    assert "): species: dog" in call[0].text
    assert len(await memory.atranscript("s1")) == 44


def test_string_history_uses_the_configured_prefixes(memory):
    legacy = ConversationHybridMemory(
        memory=memory, session_id="s1", human_prefix="Ana", ai_prefix="Bot"
    )
    legacy.save_context({"input": "hello"}, {"response": "hi"})
    assert legacy.load_memory_variables({"input": "x"})["history"] == "Ana: hello\nBot: hi"
    legacy.clear()
    assert memory.transcript("s1") == []


def test_several_outputs_need_an_output_key(memory):
    legacy = ConversationHybridMemory(memory=memory, session_id="s1")
    with pytest.raises(ValueError, match="output_key"):
        legacy.save_context({"input": "hello"}, {"a": "1", "b": "2"})
    assert memory.transcript("s1") == []


def test_a_prompt_template_chain_gets_the_summary_separately(embeddings):
    from langchain_classic.chains import LLMChain

    memory = HybridMemory(embeddings=embeddings, window_turns=4, summary_batch=4)
    memory.add_messages("s1", filler(12))
    model = RecordingChatModel(responses=["ok"])
    legacy = ConversationHybridMemory(memory=memory, session_id="s1", summary_key="summary")
    prompt = PromptTemplate.from_template("Summary: {summary}\n{history}\nHuman: {input}\nAI:")
    LLMChain(llm=model, prompt=prompt, memory=legacy).invoke({"input": "coffee?"})
    summary = memory.summary("s1").text
    assert summary
    assert f"Summary: {summary}\n" in model.prompts[-1]
    assert model.prompts[-1].count(summary) == 1, "the summary is in the prompt once"


def test_entities_under_their_own_key_are_not_repeated_in_the_history(embeddings):
    memory = HybridMemory(embeddings=embeddings, window_turns=2)
    memory.add_messages(
        "s1", [HumanMessage("My dog is Bolt")], entities={"Bolt": {"kind": "border collie"}}
    )
    legacy = ConversationHybridMemory(memory=memory, session_id="s1", entities_key="facts")
    variables = legacy.load_memory_variables({"input": "Tell me about Bolt"})
    assert "border collie" in variables["facts"]
    assert "border collie" not in variables["history"]
