"""The retriever follows LangChain's conventions and returns recalled turns as documents."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.errors import InvalidInputError
from tests.conversations import START, filler
from tests.fakes import RecordingChatModel, RetrieverRuns


def memory_with_fact(embeddings) -> HybridMemory:
    memory = HybridMemory(embeddings=embeddings)
    memory.add_messages(
        "s1",
        [HumanMessage("My sister Marta's birthday is on 14 April"), AIMessage("Noted!")],
        timestamp=START,
        user_id="ana",
    )
    memory.add_messages("s1", filler(30), user_id="ana")
    return memory


def test_documents_carry_the_turn_and_its_scores(embeddings):
    retriever = memory_with_fact(embeddings).as_retriever(session_id="s1", user_id="ana")
    documents = retriever.invoke("When is Marta's birthday?")
    assert len(documents) == 3
    top = documents[0]
    assert top.page_content == "My sister Marta's birthday is on 14 April"
    assert top.metadata["turn_id"] == 0
    assert top.metadata["role"] == "human"
    assert top.metadata["timestamp"] == START.isoformat()
    assert top.metadata["score"] >= documents[1].metadata["score"]
    assert top.metadata["dense_score"] is not None
    assert top.metadata["lexical_score"] > 0


async def test_k_is_set_at_construction_and_per_call_sync_and_async(embeddings):
    retriever = memory_with_fact(embeddings).as_retriever(session_id="s1", k=5)
    assert len(retriever.invoke("birthday")) == 5
    assert len(retriever.invoke("birthday", k=1)) == 1
    assert len(await retriever.ainvoke("birthday", k=2)) == 2


def test_the_retriever_composes_into_a_chain(embeddings):
    retriever = memory_with_fact(embeddings).as_retriever(session_id="s1", k=2)
    model = RecordingChatModel(responses=["On 14 April."])
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Earlier turns:\n{turns}"), ("human", "{question}")]
    )
    chain = (
        {
            "turns": retriever | (lambda docs: "\n".join(d.page_content for d in docs)),
            "question": RunnablePassthrough(),
        }
        | prompt
        | model
    )
    assert chain.invoke("When is my sister's birthday?").content == "On 14 April."
    assert "14 April" in model.prompts[-1]


def test_the_vector_store_habits_work(embeddings):
    memory = memory_with_fact(embeddings)
    retriever = memory.as_retriever(thread_id="s1", search_kwargs={"k": 2})
    documents = retriever.invoke("When is Marta's birthday?")
    assert len(documents) == 2
    assert "14 April" in documents[0].page_content
    with pytest.raises(InvalidInputError, match="search_kwargs"):
        memory.as_retriever(session_id="s1", search_kwargs={"score_threshold": 0.5})
    with pytest.raises(InvalidInputError, match="session_id"):
        memory.as_retriever()


def test_its_runs_are_named_like_the_middleware_recall_in_traces(embeddings):
    runs = RetrieverRuns()
    retriever = memory_with_fact(embeddings).as_retriever(session_id="s1")
    retriever.invoke("When is Marta's birthday?", config={"callbacks": [runs]})
    assert runs.started == [("hybrid_memory.recall", "When is Marta's birthday?")]
    assert "14 April" in runs.documents[0][0].page_content
