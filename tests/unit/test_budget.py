"""The token budget holds for any input, and the latest exchange always makes it in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately

from langchain_hybrid_memory import BudgetShares
from langchain_hybrid_memory.budget import ContextCandidates, fit_context, shares_for_query
from langchain_hybrid_memory.context import render_messages
from langchain_hybrid_memory.types import Entity, EntityFact, RecalledTurn, Turn

DAY = datetime(2026, 3, 2, tzinfo=UTC)
texts = st.text(max_size=400) | st.text(alphabet="abc ", min_size=500, max_size=6000)


def word_counter(messages) -> int:
    """A counter of another shape: one token per word, two per message."""
    return sum(len(str(m.content).split()) + 2 for m in messages)


@st.composite
def windows(draw) -> list[Turn]:
    turns = []
    for i in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(["human", "ai", "tool_call"]))
        text = draw(texts)
        if kind == "human":
            turns.append(HumanMessage(text))
        elif kind == "ai":
            turns.append(AIMessage(text))
        else:
            call_id = f"c{i}"
            turns.append(AIMessage(text, tool_calls=[{"name": "f", "args": {}, "id": call_id}]))
            turns.append(ToolMessage(draw(texts), tool_call_id=call_id))
    return [
        Turn("s", i, m, str(m.content), DAY + timedelta(minutes=i)) for i, m in enumerate(turns)
    ]


@st.composite
def candidates(draw) -> ContextCandidates:
    window = draw(windows())
    recalled = [
        RecalledTurn(Turn("s", 100 + i, HumanMessage(t), t, DAY), 1.0 - i / 10, 0.5, 1.0)
        for i, t in enumerate(draw(st.lists(texts, max_size=8)))
    ]
    entities = [
        Entity(name, {"fact": EntityFact(value, 0, DAY)}, (0,), DAY)
        for name, value in draw(
            st.lists(st.tuples(st.text(min_size=1, max_size=30), texts), max_size=5)
        )
    ]
    return ContextCandidates(draw(texts), entities, recalled, window)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    candidates(),
    st.integers(0, 3000),
    st.sampled_from([count_tokens_approximately, word_counter]),
    st.sampled_from([BudgetShares(), BudgetShares(recall=1.0, window=0, summary=0, entities=0)]),
)
def test_the_context_never_exceeds_the_budget(candidates, budget, counter, shares):
    fitted = fit_context(candidates, budget, counter, shares)
    rendered = render_messages(fitted.summary, fitted.entities, fitted.recalled, fitted.window)
    assert fitted.tokens == counter(rendered)
    assert fitted.tokens <= budget


@settings(max_examples=200, deadline=None)
@given(candidates(), st.integers(0, 3000))
def test_the_latest_exchange_is_kept_whole_whenever_it_fits(candidates, budget):
    window = list(candidates.window)
    last_user = max((i for i, t in enumerate(window) if t.role == "human"), default=None)
    if last_user is None:
        return
    latest = [t.message for t in window[last_user:]]
    fitted = fit_context(candidates, budget, count_tokens_approximately)
    if count_tokens_approximately(latest) <= budget:
        assert [t.message for t in fitted.window[-len(latest) :]] == latest


@settings(max_examples=200, deadline=None)
@given(candidates(), st.integers(0, 3000))
def test_tool_results_never_lose_their_call(candidates, budget):
    fitted = fit_context(candidates, budget, count_tokens_approximately)
    messages = render_messages(fitted.summary, fitted.entities, fitted.recalled, fitted.window)
    for position, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            before = messages[position - 1] if position else None
            assert isinstance(before, AIMessage)
            assert before.tool_calls[0]["id"] == message.tool_call_id


def _turn(i: int, text: str) -> Turn:
    message = HumanMessage(text) if i % 2 == 0 else AIMessage(text)
    return Turn("s", i, message, text, DAY)


def test_a_small_budget_still_carries_recalled_turns_not_only_the_window():
    window = [
        _turn(i, f"chatting about the weather and gardening, part {i} " * 3) for i in range(10)
    ]
    answer = RecalledTurn(
        Turn("s", 0, HumanMessage("I'm allergic to peanuts"), "I'm allergic to peanuts", DAY),
        2.0,
        0.7,
        3.1,
    )
    fitted = fit_context(
        ContextCandidates("", [], [answer], window), 300, count_tokens_approximately
    )
    assert fitted.recalled == (answer,)
    assert fitted.window[-1] == window[-1]
    assert fitted.tokens <= 300


def test_a_latest_exchange_too_long_for_the_budget_is_cut_to_fit():
    huge = _turn(0, "word " * 10_000)
    fitted = fit_context(ContextCandidates("", [], [], [huge]), 200, count_tokens_approximately)
    assert fitted.tokens <= 200
    assert fitted.window[0].text.startswith("word word")
    assert fitted.window[0].text.endswith("…")


def test_unused_room_goes_to_the_other_sections():
    window = [_turn(i, f"turn number {i} about a topic") for i in range(20)]
    fitted = fit_context(ContextCandidates("", [], [], window), 2000, count_tokens_approximately)
    assert fitted.window == tuple(window), "with no recall or summary, the whole window fits"
    assert fitted.omitted["window"] == 0


def test_fitting_costs_the_same_whether_recall_offers_fifty_candidates_or_a_thousand():
    def fit_counting(offered: int) -> tuple[int, int]:
        calls = 0

        def counter(messages) -> int:
            nonlocal calls
            calls += 1
            return count_tokens_approximately(messages)

        recalled = [
            RecalledTurn(_turn(i, f"fact number {i} about the garden"), 1.0 - i / 2000, 0.5, 1.0)
            for i in range(offered)
        ]
        window = [_turn(5000, "what do you remember?")]
        fitted = fit_context(ContextCandidates("summary " * 40, [], recalled, window), 400, counter)
        return len(fitted.recalled), calls

    taken_50, calls_50 = fit_counting(50)
    taken_1000, calls_1000 = fit_counting(1000)
    assert 0 < taken_50 == taken_1000 < 50
    assert calls_1000 == calls_50


def _hit(turn: Turn, lexical: float = 2.0) -> RecalledTurn:
    return RecalledTurn(turn, 1.0, 0.5, lexical)


RECALL_FIRST = BudgetShares(recall=0.8, window=0.0, summary=0.12, entities=0.08)


def test_a_query_about_earlier_turns_takes_the_recall_first_shares():
    window = [_turn(40 + i, "chat about the weather") for i in range(6)]
    hits = [_hit(_turn(i, "the garden grows basil")) for i in range(12)] + [_hit(window[0])]
    assert shares_for_query(BudgetShares(), RECALL_FIRST, window, hits) == RECALL_FIRST


def test_a_query_the_recent_turns_answer_keeps_the_usual_shares():
    window = [_turn(40 + i, "chat about the weather") for i in range(6)]
    hits = [_hit(_turn(i, "the garden grows basil")) for i in range(3)]
    hits.insert(2, _hit(window[3]))
    assert shares_for_query(BudgetShares(), RECALL_FIRST, window, hits) == BudgetShares()


def test_a_query_sharing_no_word_with_earlier_turns_keeps_the_usual_shares():
    window = [_turn(40 + i, "chat about the weather") for i in range(6)]
    hits = [_hit(_turn(i, "the garden grows basil"), lexical=0.0) for i in range(5)]
    assert shares_for_query(BudgetShares(), RECALL_FIRST, window, hits) == BudgetShares()
    assert shares_for_query(BudgetShares(), None, window, [_hit(hits[0].turn)]) == BudgetShares()


def test_a_question_about_someone_gives_the_summarys_room_to_recall_too():
    window = [_turn(40 + i, "chat about the weather") for i in range(6)]
    hits = [_hit(_turn(i, "Rui grows basil")) for i in range(12)]
    shares = shares_for_query(BudgetShares(), RECALL_FIRST, window, hits, about_someone=True)
    assert shares.summary == 0.0
    assert shares.recall == pytest.approx(RECALL_FIRST.recall + RECALL_FIRST.summary)
    assert (shares.window, shares.entities) == (RECALL_FIRST.window, RECALL_FIRST.entities)
    recent = [*hits[:3], _hit(window[2])]  # about the recent chat: the usual shares still
    assert shares_for_query(BudgetShares(), RECALL_FIRST, window, recent, about_someone=True) == (
        BudgetShares()
    )
