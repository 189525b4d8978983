"""Baselines at the same budgets: what each one chooses, and that they are measured like the memory."""

from __future__ import annotations

from datetime import datetime

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.baselines import BASELINES, SessionBaselines
from langchain_hybrid_memory.context import format_day
from langchain_hybrid_memory.errors import InvalidInputError
from langchain_hybrid_memory.evaluation import (
    FULL_HISTORY,
    MEMORY,
    evaluate_locomo,
    evaluation_memory,
    parse_locomo,
)
from tests.fakes import CountingEmbeddings
from tests.unit.test_evaluation import FACT, FILLER, sample

FIRST_DAY, LATER = datetime(2023, 5, 8, 13, 56), datetime(2023, 5, 20, 19, 10)


def feed(memory: HybridMemory, session: str = "s") -> None:
    memory.add_messages(
        session,
        [HumanMessage(FACT, name="Ana"), AIMessage("Lovely city!", name="Rui")],
        timestamp=FIRST_DAY,
    )
    memory.add_messages(
        session,
        [
            HumanMessage(text, name="Ana") if i % 2 == 0 else AIMessage(text, name="Rui")
            for i, text in enumerate(FILLER[i % len(FILLER)] for i in range(36))
        ],
        timestamp=LATER,
    )
    memory.flush()


@pytest.fixture(scope="module")
def counted(embeddings):
    return CountingEmbeddings(embeddings)


@pytest.fixture(scope="module")
def baselines(counted):
    memory = HybridMemory(embeddings=counted)
    feed(memory)
    return SessionBaselines.of(memory, "s")


@pytest.mark.parametrize("method", BASELINES)
@pytest.mark.parametrize("budget", [60, 300])
def test_every_baseline_fits_the_budget_as_the_memory_counts_it(baselines, method, budget):
    context = baselines.context(method, "Where does Marta live?", budget)
    assert 0 < context.tokens <= budget
    assert context.tokens == baselines.token_counter(context.to_messages())
    assert context.token_budget == budget


def test_baseline_turns_are_written_as_the_memory_writes_recalled_turns(baselines):
    text = baselines.context("rrf", "Where does Marta live?", 300).to_text()
    assert f"\n{format_day(FIRST_DAY)}:\n- Ana: {FACT}" in text
    assert f"\n{format_day(LATER)}:\n- " in text  # turns of another day under their own line
    assert text.index(format_day(FIRST_DAY)) < text.index(format_day(LATER))  # time order


def test_the_most_recent_turns_are_the_latest_that_fit(baselines):
    context = baselines.context("recent turns", "Where does Marta live?", 150)
    ids = sorted(r.turn.id for r in context.recalled)
    assert ids == list(range(ids[0], 38))
    assert 3 < len(ids) < 36
    assert context.omitted["recall"] == 38 - len(ids)


def test_bm25_offers_only_turns_that_share_a_term_with_the_question(baselines):
    assert [r.turn.id for r in baselines.ranking("bm25", "Where does Marta live?")] == [0]
    assert baselines.ranking("bm25", "In which town does her sibling reside?") == []


def test_dense_finds_a_paraphrase_that_shares_no_word(baselines):
    ranked = baselines.ranking("dense", "In which town does her sibling reside?")
    assert ranked[0].turn.id == 0
    assert len(ranked) == 38  # every turn is ranked
    assert all(r.dense_score is not None for r in ranked)


def test_rrf_puts_first_what_both_rankings_put_high(baselines):
    bm25 = [r.turn.id for r in baselines.ranking("bm25", "onions and carrots")]
    dense = [r.turn.id for r in baselines.ranking("dense", "onions and carrots")]
    fused = [r.turn.id for r in baselines.ranking("rrf", "onions and carrots")]
    assert fused[0] in bm25[:3]
    assert fused[0] in dense[:3]
    assert set(fused) == set(dense) | set(bm25)


def test_the_full_history_holds_every_turn_whole_and_costs_what_it_holds(baselines):
    context = baselines.full_history()
    assert [r.turn.id for r in context.recalled] == list(range(38))
    assert context.tokens == baselines.token_counter(context.to_messages())
    assert context.tokens > baselines.context("recent turns", "x", 300).tokens


def test_baselines_use_the_stored_vectors_and_embed_only_the_query(counted):
    memory = HybridMemory(embeddings=counted)
    feed(memory, "t")
    documents, queries = counted.documents, counted.queries
    baselines = SessionBaselines.of(memory, "t")
    for method in BASELINES:
        baselines.context(method, "Where does Marta live?", 200)
    assert counted.documents == documents
    assert counted.queries == queries + 2  # dense and rrf: no cache passed here


def test_a_second_worker_on_the_store_builds_the_same_baselines(embeddings, tmp_path):
    store = f"sqlite:///{tmp_path / 'memory.db'}"
    writer = HybridMemory(store=store, embeddings=embeddings)
    feed(writer)
    reader = HybridMemory(store=store, embeddings=embeddings)
    mine, theirs = SessionBaselines.of(writer, "s"), SessionBaselines.of(reader, "s")
    for method in BASELINES:
        ours = mine.context(method, "Where does Marta live?", 200)
        other = theirs.context(method, "Where does Marta live?", 200)
        assert ours.to_text() == other.to_text()
    writer.close()
    reader.close()


def test_an_unknown_baseline_or_a_bad_budget_is_refused(baselines):
    with pytest.raises(InvalidInputError, match="unknown baseline 'bm42'"):
        baselines.context("bm42", "q", 100)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="budget"):
        baselines.context("bm25", "q", 0)


# -- in the evaluation ----------------------------------------------------------------------------


QUESTIONS = [
    {"question": "Where does Marta live?", "answer": "Porto", "evidence": ["D1:1"], "category": 4},
    {
        "question": "How long does the soup simmer?",
        "answer": 40,
        "evidence": ["D2:36"],
        "category": 2,
    },
]


def test_the_evaluation_scores_every_baseline_in_the_same_run(counted):
    conversations = parse_locomo([sample(QUESTIONS)])
    assert conversations[0].questions[1].answer == "40"
    queries = counted.queries
    report = evaluate_locomo(
        conversations,
        budgets=(60, 300),
        memory_factory=lambda: evaluation_memory(embeddings=counted),
        baselines=[FULL_HISTORY, *BASELINES],
    )
    # each question embedded once for every method and budget (and once more while stored)
    assert counted.queries - queries <= 2 * 2
    assert list(report.baselines) == list(BASELINES)
    recent = {b.budget: b for b in report.baselines["recent turns"]}
    assert recent[300].by_category[4].recall == 0.0  # the fact is long gone from the tail
    assert recent[300].by_category[2].recall == 1.0  # the last turn is there
    bm25 = {b.budget: b for b in report.baselines["bm25"]}
    assert bm25[300].by_category[4].recall == 1.0  # "Marta" names the fact
    assert bm25[300].by_category[2].recall == 0.0  # "About forty minutes" shares no term
    assert report.full_history is not None
    assert report.full_history.overall.recall == 1.0
    assert report.full_history.overall.tokens > 300
    methods = {s.method for s in report.scores}
    assert methods == {MEMORY, FULL_HISTORY, *BASELINES}
    assert all(s.tokens <= s.budget for s in report.scores)
    figures = report.as_dict()
    assert set(figures["baselines"]) == set(BASELINES)
    assert figures["full_history"]["overall"]["recall"] == 1.0
    assert report.at(300).overall.questions == 2  # the memory's own figures, as before


def test_an_unknown_method_is_refused_before_any_work(embeddings):
    with pytest.raises(InvalidInputError, match="unknown method"):
        evaluate_locomo(parse_locomo([sample(QUESTIONS)]), baselines=["everything"])
