from __future__ import annotations

from datetime import UTC, datetime

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from langchain_hybrid_memory.types import Turn
from langchain_hybrid_memory.window import (
    full_batch_length,
    latest_exchange_start,
    split_units,
    window_start_index,
)

DAY = datetime(2026, 3, 2, tzinfo=UTC)
CALL = AIMessage(
    "", tool_calls=[{"name": "f", "args": {}, "id": "a"}, {"name": "g", "args": {}, "id": "b"}]
)


def turns(*messages) -> list[Turn]:
    return [Turn("s", i, m, m.text, DAY) for i, m in enumerate(messages)]


def test_the_window_reaches_back_to_the_tool_call_of_its_first_tool_result():
    tail = turns(
        HumanMessage("q"),
        CALL,
        ToolMessage("1", tool_call_id="a"),
        ToolMessage("2", tool_call_id="b"),
        AIMessage("done"),
    )
    assert window_start_index(tail, 2) == 1
    assert window_start_index(tail, 4) == 1
    assert window_start_index(tail, 5) == 0


def test_a_tool_call_and_its_results_form_one_unit():
    units = split_units(
        turns(
            HumanMessage("q"),
            CALL,
            ToolMessage("1", tool_call_id="a"),
            ToolMessage("2", tool_call_id="b"),
        )
    )
    assert [len(unit) for unit in units] == [1, 3]


def test_the_latest_exchange_starts_at_the_last_user_turn():
    window = turns(
        HumanMessage("a"),
        AIMessage("b"),
        HumanMessage("c"),
        CALL,
        ToolMessage("1", tool_call_id="a"),
    )
    assert latest_exchange_start(window) == 2
    assert (
        latest_exchange_start(turns(AIMessage("x"), CALL, ToolMessage("1", tool_call_id="a"))) == 1
    )
    assert latest_exchange_start([]) == 0


def test_a_batch_by_turn_count_waits_until_it_is_full():
    assert full_batch_length([0] * 19, max_turns=20, min_tokens=None) == 0
    assert full_batch_length([0] * 20, max_turns=20, min_tokens=None) == 20
    assert full_batch_length([0] * 45, max_turns=20, min_tokens=None) == 20
    assert full_batch_length([], max_turns=20, min_tokens=None) == 0


def test_a_batch_by_tokens_closes_at_the_first_turn_reaching_the_threshold():
    assert full_batch_length([400, 400, 100], max_turns=20, min_tokens=1000) == 0
    assert full_batch_length([400, 400, 200, 50], max_turns=20, min_tokens=1000) == 3
    # one long message is a batch of its own
    assert full_batch_length([5000, 10], max_turns=20, min_tokens=1000) == 1
    # many short messages still fold at max_turns
    assert full_batch_length([1] * 30, max_turns=20, min_tokens=1000) == 20
