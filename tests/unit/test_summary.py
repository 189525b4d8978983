"""Summarizers work over any runnable, and offline without one."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from langchain_core.language_models import FakeListLLM
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnableLambda

from langchain_hybrid_memory._llm import format_turns
from langchain_hybrid_memory.errors import SummarizerError
from langchain_hybrid_memory.summary import ExtractiveSummarizer, LLMSummarizer
from langchain_hybrid_memory.types import Turn
from tests.fakes import RecordingChatModel

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def turns(*texts: str) -> list[Turn]:
    return [
        Turn("s", i, HumanMessage(t, name="Ana") if i % 2 == 0 else AIMessage(t), t, DAY)
        for i, t in enumerate(texts)
    ]


BATCH = turns("I'm allergic to peanuts.", "Noted.", "I live in Porto near the market.", "Nice!")


@pytest.mark.parametrize(
    "llm",
    [
        FakeListLLM(responses=["Ana is allergic to peanuts and lives in Porto."]),
        RecordingChatModel(responses=["Ana is allergic to peanuts and lives in Porto."]),
        RecordingChatModel(responses=["Ana is allergic to peanuts and lives in Porto."])
        | StrOutputParser(),
    ],
    ids=["completion-llm", "chat-model", "lcel-chain"],
)
def test_any_runnable_can_summarize(llm):
    update = LLMSummarizer(llm, extract_entities=False).fold("", BATCH)
    assert update.summary == "Ana is allergic to peanuts and lives in Porto."


def test_the_prompt_carries_the_previous_summary_and_every_new_turn():
    llm = RecordingChatModel(responses=["new summary"])
    LLMSummarizer(llm, extract_entities=False).fold("Ana likes tea.", BATCH)
    prompt = llm.prompts[0]
    assert "Ana likes tea." in prompt
    for turn in BATCH:
        assert f"[{turn.id}] Mon 2 Mar 2026, {turn.speaker}: {turn.text}" in prompt


def test_summary_and_entities_come_back_from_one_json_answer():
    answer = {
        "summary": "Ana is allergic to peanuts.",
        "entities": [
            {"name": "Ana", "facts": {"allergy": "peanuts"}, "turn": 0},
            {"name": "Porto", "facts": {"kind": "city"}, "turn": 99},
            {"name": "", "facts": {"x": "y"}},
            "not an entity",
        ],
    }
    llm = FakeListLLM(responses=[f"Here you go:\n```json\n{json.dumps(answer)}\n```"])
    update = LLMSummarizer(llm).fold("", BATCH)
    assert update.summary == "Ana is allergic to peanuts."
    assert [(m.name, m.turn_id) for m in update.mentions] == [("Ana", 0), ("Porto", 3)]


def test_a_plain_text_answer_is_taken_as_the_summary():
    update = LLMSummarizer(FakeListLLM(responses=["Just prose."])).fold("", BATCH)
    assert update.summary == "Just prose."
    assert update.mentions == []


@pytest.mark.parametrize(
    "llm",
    [
        FakeListLLM(responses=["   "]),
        RunnableLambda(lambda _: {"not": "text"}),
        RunnableLambda(lambda _: 1 / 0),
    ],
    ids=["empty", "not-text", "raises"],
)
def test_a_useless_or_failing_llm_is_a_summarizer_error(llm):
    with pytest.raises(SummarizerError):
        LLMSummarizer(llm).fold("", BATCH)


async def test_the_async_fold_awaits_the_runnable():
    llm = RecordingChatModel(responses=["async summary"])
    update = await LLMSummarizer(llm, extract_entities=False).afold("", BATCH)
    assert update.summary == "async summary"


def test_the_extractive_summary_stays_within_its_bound_and_keeps_informative_sentences():
    chatter = [f"ok sure number {i}." for i in range(40)]
    batch = turns("I'm allergic to peanuts and shellfish.", *chatter)
    summarizer = ExtractiveSummarizer(max_tokens=60)
    summary = summarizer.fold("", batch).summary
    assert "allergic to peanuts" in summary
    assert summarizer.count_text(summary) <= 60


def test_the_extractive_summary_rolls_over_the_previous_one():
    summarizer = ExtractiveSummarizer(max_tokens=80)
    first = summarizer.fold("", BATCH).summary
    second = summarizer.fold(first, turns("My brother Tiago moved to Lisbon in January.")).summary
    assert "peanuts" in second
    assert "Tiago" in second


def test_turns_in_a_prompt_are_one_line_each_and_long_ones_cut():
    text = format_turns(turns("line one\nline two", "x" * 5000))
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("line one line two")
    assert len(lines[1]) < 2100


def test_the_summarizer_and_extractor_calls_are_named_in_traces():
    from datetime import UTC, datetime

    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.language_models import FakeListChatModel
    from langchain_core.messages import HumanMessage

    from langchain_hybrid_memory.entities import LLMEntityExtractor
    from langchain_hybrid_memory.summary import LLMSummarizer
    from langchain_hybrid_memory.types import Turn

    class Names(BaseCallbackHandler):
        def __init__(self) -> None:
            self.names: list[str] = []

        def on_chat_model_start(self, serialized, messages, **kwargs):
            self.names.append(kwargs.get("name"))

    names = Names()
    answer = '{"summary": "Ana lives in Porto.", "entities": []}'
    llm = FakeListChatModel(responses=[answer, answer]).with_config(callbacks=[names])
    turn = Turn(
        "s", 0, HumanMessage("I live in Porto"), "I live in Porto", datetime(2026, 1, 1, tzinfo=UTC)
    )
    LLMSummarizer(llm).fold("", [turn])
    LLMEntityExtractor(llm).extract([turn])
    assert names.names == ["hybrid_memory.summarize", "hybrid_memory.extract_entities"]
