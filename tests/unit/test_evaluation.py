"""The LoCoMo evidence-recall evaluation: reading the file's quirks, and scoring contexts."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_hybrid_memory.errors import InvalidInputError
from langchain_hybrid_memory.evaluation import (
    CategoryScores,
    QuestionScore,
    evaluate_locomo,
    evaluation_memory,
    load_locomo,
    parse_evidence,
    parse_locomo,
    parse_locomo_date,
)

DEV_SPLIT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "locomo_dev.json"

FACT = "My sister Marta moved to Porto last spring, she loves it there."
FILLER = [
    "Shall we try the lentil soup recipe tonight?",
    "Sure, I can chop the onions and carrots.",
    "Do we still have cumin in the cupboard?",
    "I think so, top shelf next to the paprika.",
    "How long does the soup need to simmer?",
    "About forty minutes, stirring now and then.",
]


def turn(dia_id: str, speaker: str, text: str, **extra: object) -> dict[str, object]:
    return {"dia_id": dia_id, "speaker": speaker, "text": text, **extra}


def sample(qa: list[dict[str, object]], **conversation: object) -> dict[str, object]:
    """A two-session conversation: a fact early on, then 36 turns about cooking."""
    session_2 = [
        turn(f"D2:{i + 1}", "Ana" if i % 2 == 0 else "Rui", FILLER[i % len(FILLER)])
        for i in range(36)
    ]
    return {
        "sample_id": "mini",
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Rui",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [turn("D1:1", "Ana", FACT), turn("D1:2", "Rui", "Lovely city!")],
            "session_2_date_time": "7:10 pm on 20 May, 2023",
            "session_2": session_2,
            **conversation,
        },
        "qa": qa,
    }


# -- reading the file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["D8:6; D9:17"], ("D8:6", "D9:17")),
        (["D9:1 D4:4 D4:6"], ("D9:1", "D4:4", "D4:6")),
        (["D:11:26"], ("D11:26",)),
        (["D30:05"], ("D30:5",)),
        (["D"], ()),
        ([], ()),
        (["D3:7", "D3:07", "d3:7"], ("D3:7",)),
        ("D2:1", ("D2:1",)),
        ([None, 3, "D1:1"], ("D1:1",)),
    ],
)
def test_every_malformed_evidence_form_is_normalized(raw, expected):
    assert parse_evidence(raw) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:56 pm on 8 May, 2023", datetime(2023, 5, 8, 13, 56)),
        ("10:04 am on 19 December, 2023", datetime(2023, 12, 19, 10, 4)),
        ("12:09 am on 13 September, 2023", datetime(2023, 9, 13, 0, 9)),
        ("12:30 PM on 1 Jan, 2024", datetime(2024, 1, 1, 12, 30)),
        ("2023-05-08T13:56:00", datetime(2023, 5, 8, 13, 56)),
    ],
)
def test_session_dates_are_parsed(text, expected):
    assert parse_locomo_date(text) == expected


def test_an_unknown_date_format_is_refused_with_an_example():
    with pytest.raises(InvalidInputError, match="1:56 pm on 8 May, 2023"):
        parse_locomo_date("the eighth of May")


def test_image_turns_carry_their_caption_and_orphan_date_keys_are_ignored():
    data = sample([], session_7_date_time="9:00 am on 1 June, 2023")
    data["conversation"]["session_1"][1] = turn(  # type: ignore[index]
        "D1:2", "Rui", "Look at this!", blip_caption="a photo of a tiled street", img_url=["x"]
    )
    conversation = parse_locomo([data])[0]
    assert [s.number for s in conversation.sessions] == [1, 2]
    assert conversation.sessions[0].date == datetime(2023, 5, 8, 13, 56)
    assert conversation.sessions[0].turns[1].text == (
        "Look at this! [shares image: a photo of a tiled street]"
    )


def test_evidence_ids_that_name_no_turn_are_not_valid_evidence():
    conversation = parse_locomo([sample([{"question": "q", "category": 1, "evidence": []}])])[0]
    question = parse_locomo(
        [sample([{"question": "q", "category": 1, "evidence": ["D1:1; D10:19", "D"]}])]
    )[0].questions[0]
    assert question.evidence == ("D1:1", "D10:19")
    assert conversation.valid_evidence(question) == ("D1:1",)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"sample_id": "x"}, "list of samples"),
        ([{"sample_id": "x", "conversation": {"speaker_b": "Rui"}}], "'speaker_a'"),
        ([sample([], session_1="not a list")], "session_1"),
        ([sample([{"question": "q", "category": "multi", "evidence": []}])], "'category'"),
        ([sample([], session_1=[{"speaker": "Ana", "text": "hi"}])], "'dia_id'"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_place(data, where):
    with pytest.raises(InvalidInputError, match=where):
        parse_locomo(data)


def test_a_file_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("[{", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="cannot read a LoCoMo file"):
        load_locomo(path)


# -- scoring ----------------------------------------------------------------------------------

QUESTIONS = [
    # 0: evidence far outside the window, plus an id that names no turn
    {
        "question": "Where does Marta, Ana's sister, live?",
        "evidence": ["D1:1", "D77:1"],
        "category": 4,
    },
    # 1: evidence is the very last turn, always in the window
    {"question": "How long does the soup simmer?", "evidence": ["D2:36"], "category": 2},
    # 2: no evidence: not scored
    {"question": "Would Marta like Lisbon?", "evidence": [], "category": 3},
    # 3: adversarial: not scored by default
    {"question": "Where does Rui's sister live?", "evidence": ["D1:1"], "category": 5},
]


@pytest.fixture(scope="module")
def report(embeddings):
    conversations = parse_locomo([sample(QUESTIONS)])
    return evaluate_locomo(
        conversations,
        budgets=(400, 40),
        memory_factory=lambda: evaluation_memory(embeddings=embeddings),
    )


def scores_of(report, question):
    return {s.budget: s for s in report.scores if s.question == question}


def test_an_old_fact_recalled_into_the_context_scores_full_recall(report):
    at_400 = scores_of(report, 0)[400]
    assert at_400.evidence == ("D1:1",)  # D77:1 names no turn: ignored
    assert at_400.recall == 1.0


def test_recall_drops_when_the_budget_is_too_small_to_carry_the_fact(report):
    at_40 = scores_of(report, 0)[40]
    assert at_40.recall == 0.0
    assert at_40.tokens <= 40


def test_a_turn_in_the_window_counts_as_present(report):
    assert scores_of(report, 1)[40].recall == 1.0


def test_questions_without_evidence_and_other_categories_are_not_scored(report):
    assert {s.question for s in report.scores} == {0, 1}
    assert report.questions == 2
    assert report.skipped == 1


def test_figures_are_means_per_budget_and_category(report):
    at_40 = report.at(40)
    assert at_40.overall == CategoryScores(2, 0.5, at_40.overall.tokens)
    assert at_40.by_category[4].recall == 0.0
    assert at_40.by_category[2].recall == 1.0
    assert all(s.tokens <= s.budget for s in report.scores)
    assert report.conversations == 1
    assert report.turns == 38
    figures = report.as_dict()
    assert [b["budget"] for b in figures["budgets"]] == [400, 40]
    assert set(figures["budgets"][1]["by_category"]) == {"temporal", "single-hop"}


def test_partial_evidence_gives_partial_recall():
    score = QuestionScore("c", 0, 1, 500, evidence=("D1:1", "D2:2"), found=("D2:2",), tokens=10)
    assert score.recall == 0.5


def test_progress_reports_each_scored_question(embeddings):
    seen: list[tuple[int, int]] = []
    evaluate_locomo(
        parse_locomo([sample(QUESTIONS)]),
        budgets=(200,),
        memory_factory=lambda: evaluation_memory(embeddings=embeddings),
        limit_questions=1,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(0, 1), (1, 1)]


def test_bad_budgets_are_refused():
    with pytest.raises(InvalidInputError, match="budgets"):
        evaluate_locomo(parse_locomo([sample(QUESTIONS)]), budgets=(0,))


# -- the real development split ---------------------------------------------------------------


def test_the_first_dev_conversation_runs_end_to_end():
    if not DEV_SPLIT.exists():
        message = f"the LoCoMo dev split is missing: expected {DEV_SPLIT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    raw = json.loads(DEV_SPLIT.read_text(encoding="utf-8"))[0]
    turns = sum(len(v) for k, v in raw["conversation"].items() if k.split("_")[-1].isdigit())
    # Word-hash embeddings: this checks the file runs through, not MiniLM's quality (fast).
    report = evaluate_locomo(
        DEV_SPLIT,
        budgets=(500,),
        limit_conversations=1,
        limit_questions=8,
        memory_factory=lambda: evaluation_memory(embeddings=DeterministicFakeEmbedding(size=32)),
    )
    assert report.conversations == 1
    assert report.turns == turns
    assert report.questions == 8
    assert all(0.0 <= s.recall <= 1.0 and s.tokens <= 500 for s in report.scores)
    assert 0 < report.at(500).overall.tokens <= 500
