"""Bad input gets a clear error, of the library's tree and of the matching builtin, and writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.errors import (
    HybridMemoryError,
    InvalidInputError,
    InvalidMessageTypeError,
)


@pytest.fixture
def memory(embeddings) -> HybridMemory:
    memory = HybridMemory(embeddings=embeddings)
    memory.add_messages("s1", [HumanMessage("hello"), AIMessage("hi")])
    return memory


@pytest.mark.parametrize(
    ("session_id", "error"),
    [
        ("", InvalidInputError),
        ("   \n", InvalidInputError),
        ("x" * 300, InvalidInputError),
        ("a\x00b", InvalidInputError),
        (None, InvalidMessageTypeError),
        (42, InvalidMessageTypeError),
    ],
)
def test_unusable_session_ids_are_refused(memory, session_id, error):
    with pytest.raises(error) as caught:
        memory.add_messages(session_id, [HumanMessage("hi")])
    assert isinstance(caught.value, HybridMemoryError)
    with pytest.raises(error):
        memory.build_context(session_id, "hi")


@pytest.mark.parametrize(
    "messages",
    [
        None,
        "hello",
        HumanMessage("not in a list"),
        [HumanMessage("fine"), "not a message"],
        [HumanMessage("fine"), None],
        [{"role": "user", "content": "a dict"}],
    ],
)
def test_anything_but_a_list_of_messages_is_a_type_error_and_nothing_is_written(memory, messages):
    with pytest.raises(TypeError) as caught:
        memory.add_messages("s1", messages)
    assert isinstance(caught.value, HybridMemoryError)
    assert len(memory.transcript("s1")) == 2


def test_a_message_over_the_size_limit_is_refused_whole(memory):
    huge = "x" * 5_000_000
    with pytest.raises(ValueError, match="max_message_chars"):
        memory.add_messages("s1", [HumanMessage("fine"), HumanMessage(huge)])
    assert len(memory.transcript("s1")) == 2


def test_text_with_a_lone_surrogate_is_refused(memory):
    with pytest.raises(InvalidInputError, match="Unicode"):
        memory.add_messages("s1", [HumanMessage("broken \ud800 text")])
    assert len(memory.transcript("s1")) == 2


def test_timestamps_must_match_the_messages(memory):
    with pytest.raises(InvalidInputError, match="2 timestamps for 1 messages"):
        memory.add_messages("s1", [HumanMessage("hi")], timestamp=[datetime.now(UTC)] * 2)
    with pytest.raises(InvalidMessageTypeError):
        memory.add_messages("s1", [HumanMessage("hi")], timestamp="yesterday")  # type: ignore[arg-type]
    assert len(memory.transcript("s1")) == 2


@pytest.mark.parametrize("entities", [["Ana"], {"": {"a": "b"}}, {"Ana": "peanuts"}])
def test_malformed_entities_are_refused_before_anything_is_stored(memory, entities):
    with pytest.raises(InvalidInputError):
        memory.add_messages("s1", [HumanMessage("hi")], entities=entities)
    assert len(memory.transcript("s1")) == 2


def test_a_query_must_be_text(memory):
    with pytest.raises(InvalidMessageTypeError):
        memory.build_context("s1", 42)  # type: ignore[arg-type]


def test_an_empty_list_of_messages_is_a_no_op(memory):
    assert memory.add_messages("s1", []) == []
    assert len(memory.transcript("s1")) == 2


def test_an_unknown_store_url_is_a_store_error():
    from langchain_hybrid_memory.errors import StoreError

    with pytest.raises(StoreError, match="ftp") as caught:
        HybridMemory("ftp://user:secret@host/db", embeddings=None)
    assert "secret" not in str(caught.value)


def _deep(levels: int) -> dict[str, object]:
    nested: dict[str, object] = {}
    for _ in range(levels):
        nested = {"x": nested}
    return nested


class _Unprintable:
    def __str__(self) -> str:
        msg = "no text for this"
        raise RuntimeError(msg)


@pytest.mark.parametrize(
    "facts",
    [{"age": 10**5000}, {"nested": _deep(3000)}, {"odd": _Unprintable()}, {_Unprintable(): "x"}],
    ids=["huge int", "deep dict", "value without text", "name without text"],
)
def test_entity_facts_that_do_not_read_as_text_are_refused(memory, facts):
    with pytest.raises(InvalidInputError):
        memory.add_messages("s2", [HumanMessage("hi")], entities={"Ana": facts})
    assert memory.transcript("s2") == []


@pytest.mark.parametrize("value", [3, ["web_search", 4], object()])
def test_exclude_tool_results_takes_a_flag_or_tool_names(value):
    from langchain_hybrid_memory.config import HybridMemoryConfig
    from langchain_hybrid_memory.errors import ConfigError

    with pytest.raises(ConfigError, match="exclude_tool_results"):
        HybridMemoryConfig(exclude_tool_results=value)
    assert HybridMemoryConfig(exclude_tool_results="web").exclude_tool_results == {"web"}
