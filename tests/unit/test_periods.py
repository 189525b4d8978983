"""A question's dates are read as the calendar periods they name, and nothing else is."""

from __future__ import annotations

from datetime import date

import pytest

from langchain_hybrid_memory._periods import periods_named

TODAY = date(2023, 10, 22)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What did she say on 7 July, 2023?", [(date(2023, 7, 7), date(2023, 7, 8))]),
        ("the painting shown on October 13, 2023", [(date(2023, 10, 13), date(2023, 10, 14))]),
        ("on the 3rd of March 2022", [(date(2022, 3, 3), date(2022, 3, 4))]),
        ("What setback came in October 2023?", [(date(2023, 10, 1), date(2023, 11, 1))]),
        ("a workout class started in December 2022", [(date(2022, 12, 1), date(2023, 1, 1))]),
        ("How many times at the beach in 2023?", [(date(2023, 1, 1), date(2024, 1, 1))]),
        ("Sept. 2021 was busy", [(date(2021, 9, 1), date(2021, 10, 1))]),
    ],
)
def test_dates_in_a_question_name_their_period(text, expected):
    assert periods_named(text, TODAY) == expected


def test_a_month_or_day_without_a_year_is_its_latest_occurrence_up_to_today():
    assert periods_named("camping in June", TODAY) == [(date(2023, 6, 1), date(2023, 7, 1))]
    assert periods_named("camping in November", TODAY) == [(date(2022, 11, 1), date(2022, 12, 1))]
    assert periods_named("on 22 October", TODAY) == [(date(2023, 10, 22), date(2023, 10, 23))]
    assert periods_named("on 23 October", TODAY) == [(date(2022, 10, 23), date(2022, 10, 24))]


def test_a_day_that_does_not_exist_names_its_month():
    assert periods_named("on 31 June 2023", TODAY) == [(date(2023, 6, 1), date(2023, 7, 1))]


def test_two_dates_name_two_periods():
    assert periods_named("between 8 May 2023 and June 2023", TODAY) == [
        (date(2023, 5, 8), date(2023, 5, 9)),
        (date(2023, 6, 1), date(2023, 7, 1)),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "May I ask what you cooked?",
        "you may go in may",
        "We met 12 people",
        "Call me at 2023 Main Street",
        "It costs 30 dollars, March on!",
    ],
)
def test_words_that_only_look_like_dates_name_no_period(text):
    assert periods_named(text, TODAY) == []
