"""Answer accuracy with an LLM: fake chat models that read their prompts stand in for real ones."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable  # noqa: TC003 - pydantic resolves the field at run time
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, get_buffer_string

from langchain_hybrid_memory import answering
from langchain_hybrid_memory.answering import (
    estimate_cost,
    evaluate_answers,
    open_chat_model,
    parse_verdict,
)
from langchain_hybrid_memory.cli import EXIT_ABORTED, EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from langchain_hybrid_memory.errors import ChatModelError, ConfigError, MissingDependencyError
from langchain_hybrid_memory.evaluation import (
    FULL_HISTORY,
    MEMORY,
    evaluation_memory,
    parse_locomo,
    plan_questions,
)
from tests.fakes import RecordingChatModel
from tests.unit.test_evaluation import sample

if TYPE_CHECKING:
    from langchain_core.callbacks import CallbackManagerForLLMRun

QUESTIONS = [
    # the fact is in the first session: only recall (or the whole history) brings it
    {"question": "Where does Marta live?", "answer": "Porto", "evidence": ["D1:1"], "category": 4},
    # the last turn: every context holds it
    {
        "question": "How long does the soup simmer?",
        "answer": "forty minutes",
        "evidence": ["D2:36"],
        "category": 2,
    },
    # no gold answer: left out
    {"question": "Where does Rui live?", "evidence": ["D1:2"], "category": 4},
]
SECRET = "sk-proj-Zx81secretsecret"


class ReadingModel(RecordingChatModel):
    """A fake chat model whose reply is ``reader(messages)``: it reads its prompt."""

    reader: Callable[[list[BaseMessage]], str]

    def _call(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        super()._call(messages, stop, run_manager, **kwargs)
        return self.reader(messages)


def answer_from_memory(messages: list[BaseMessage]) -> str:
    """Answers with the fact when the memory (between instructions and question) carries it."""
    memory = get_buffer_string(messages[1:-1])
    if "Marta" in messages[-1].text:
        return "Porto" if "Porto" in memory else "I do not know"
    return "About forty minutes" if "forty minutes" in memory else "I do not know"


def judge_by_inclusion(messages: list[BaseMessage]) -> str:
    """CORRECT when the graded answer contains the gold answer, case aside."""
    text = messages[-1].text
    gold = re.search(r"Gold answer: (.*)", text)[1]  # type: ignore[index]
    answer = re.search(r"Answer to grade: (.*)", text)[1]  # type: ignore[index]
    return "CORRECT" if gold.lower() in answer.lower() else "WRONG"


@pytest.fixture
def models() -> dict[str, RecordingChatModel]:
    return {
        "fake:answer": ReadingModel(responses=["unused"], reader=answer_from_memory),
        "fake:judge": ReadingModel(responses=["unused"], reader=judge_by_inclusion),
    }


@pytest.fixture(scope="module")
def plans():
    return plan_questions(parse_locomo([sample(QUESTIONS)]))


def run(plans, models, embeddings, **kwargs):
    return evaluate_answers(
        plans,
        "fake:answer",
        judge_model="fake:judge",
        memory_factory=lambda: evaluation_memory(embeddings=embeddings),
        chat_model_factory=models.__getitem__,
        **kwargs,
    )


def test_answers_from_the_memory_find_the_old_fact_the_recent_turns_lost(plans, models, embeddings):
    report = run(plans, models, embeddings, budgets=[300])
    rows = {(row.method, row.budget): row for row in report.rows}
    assert list(rows) == [(MEMORY, 300), (FULL_HISTORY, None), ("recent turns", 300)]
    assert rows[(MEMORY, 300)].by_category[4].accuracy == 1.0
    assert rows[("recent turns", 300)].by_category[4].accuracy == 0.0
    assert rows[(FULL_HISTORY, None)].accuracy == 1.0
    assert all(row.by_category[2].accuracy == 1.0 for row in rows.values())
    assert rows[(FULL_HISTORY, None)].prompt_tokens > rows[(MEMORY, 300)].prompt_tokens
    assert report.skipped == 1  # no gold answer
    assert report.unjudged == 0
    assert len(report.records) == 2 * 3


def test_the_answer_prompt_carries_the_context_and_the_judge_gets_the_gold_answer(
    plans, models, embeddings
):
    run(plans, models, embeddings, budgets=[300], methods=[MEMORY])
    first = models["fake:answer"].calls[0]
    assert first[0].type == "system"
    assert "conversation between Ana and Rui" in first[0].text
    assert "My sister Marta moved to Porto" in get_buffer_string(first[1:-1])
    assert first[-1].text.startswith("Question: Where does Marta live?")
    assert "Gold answer: Porto\nAnswer to grade: Porto" in models["fake:judge"].prompts[0]


def test_the_judge_defaults_to_the_answer_model_and_an_unreadable_verdict_counts_wrong(
    plans, embeddings
):
    created: list[str] = []

    def factory(name: str) -> RecordingChatModel:
        created.append(name)
        return RecordingChatModel(responses=["Porto", "maybe?"])

    report = evaluate_answers(
        plans,
        "fake:both",
        budgets=[300],
        methods=[MEMORY],
        memory_factory=lambda: evaluation_memory(embeddings=embeddings),
        chat_model_factory=factory,
    )
    assert created == ["fake:both"]
    assert report.judge_model == "fake:both"
    assert report.unjudged == 2
    assert report.rows[0].accuracy == 0.0


def test_calls_in_flight_together_give_the_same_records_in_the_same_order(
    plans, models, embeddings
):
    one = run(plans, models, embeddings, budgets=[300, 600])
    many = run(plans, models, embeddings, budgets=[300, 600], max_concurrency=4)
    assert [(r.question, r.method, r.budget, r.answer, r.correct) for r in many.records] == [
        (r.question, r.method, r.budget, r.answer, r.correct) for r in one.records
    ]
    with pytest.raises(ConfigError, match="max_concurrency"):
        run(plans, models, embeddings, max_concurrency=0)


def test_reported_prompt_tokens_are_used_when_the_provider_gives_them(plans, embeddings):
    usage = {"input_tokens": 1234, "output_tokens": 3, "total_tokens": 1237}
    answers = GenericFakeChatModel(messages=iter([AIMessage("Porto", usage_metadata=usage)] * 2))
    judge = RecordingChatModel(responses=["CORRECT"])
    report = evaluate_answers(
        plans,
        "fake:answer",
        judge_model="fake:judge",
        budgets=[300],
        methods=[MEMORY],
        memory_factory=lambda: evaluation_memory(embeddings=embeddings),
        chat_model_factory={"fake:answer": answers, "fake:judge": judge}.__getitem__,
    )
    assert {(r.prompt_tokens, r.tokens_reported) for r in report.records} == {(1234, True)}
    assert all(r.latency_s >= 0 for r in report.records)


def test_the_estimate_counts_every_call_and_bounds_the_tokens_sent(plans, models, embeddings):
    estimate = estimate_cost(plans, budgets=[300, 600])
    assert estimate.questions == 2
    assert estimate.answer_calls == estimate.judge_calls == 2 * (2 + 2 + 1)
    report = run(plans, models, embeddings, budgets=[300, 600])
    assert len(report.records) == estimate.answer_calls
    assert sum(r.prompt_tokens for r in report.records) <= estimate.answer_tokens
    full = [r.prompt_tokens for r in report.records if r.method == FULL_HISTORY]
    assert estimate.answer_tokens - 2 * 2 * 600 - 2 * 2 * 300 >= sum(full) > 0
    assert estimate.price(1.0) == pytest.approx(estimate.tokens / 1e6)


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("CORRECT", True),
        ("correct.", True),
        ("**WRONG**", False),
        ("Incorrect", False),
        ("The answer is CORRECT", True),
        ("", None),
        ("I cannot say", None),
    ],
)
def test_verdicts_are_read_leniently(reply, verdict):
    assert parse_verdict(reply) is verdict


# -- models that cannot be had ------------------------------------------------------------------


#: Providers with the module and package of their LangChain integration.
PROVIDERS = [
    ("openai:gpt-4o-mini", "langchain_openai", "langchain-openai"),
    ("mistralai:mistral-small-latest", "langchain_mistralai", "langchain-mistralai"),
    ("groq:llama-3.1-8b-instant", "langchain_groq", "langchain-groq"),
]


def missing_provider(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A model of a provider whose LangChain package is not installed here, and the package.

    When every one tried is installed, the first is hidden from imports for the test.
    """
    import importlib.util

    for spec, module, package in PROVIDERS:
        if importlib.util.find_spec(module) is None:
            return spec, package
    spec, module, package = PROVIDERS[0]
    monkeypatch.setitem(sys.modules, module, None)  # `import` of it now fails
    return spec, package


def test_a_missing_provider_package_is_named(monkeypatch):
    spec, package = missing_provider(monkeypatch)
    with pytest.raises(MissingDependencyError, match=package):
        open_chat_model(spec)


def test_without_langchain_the_extra_to_install_is_named(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "langchain.chat_models", None)
    with pytest.raises(MissingDependencyError, match=r"langchain-hybrid-memory\[eval\]"):
        open_chat_model("openai:gpt-4o-mini")


def test_an_unknown_provider_is_a_config_error_with_the_expected_form():
    with pytest.raises(ConfigError, match="PROVIDER:MODEL"):
        open_chat_model("nosuchprovider:model-x")


def test_a_model_that_cannot_be_created_names_the_key_variable_not_the_secret(monkeypatch):
    def refuse(spec: str, **kwargs: Any) -> None:
        msg = f"Incorrect API key provided: {SECRET}"
        raise RuntimeError(msg)

    monkeypatch.setattr("langchain.chat_models.init_chat_model", refuse)
    with pytest.raises(ChatModelError) as caught:
        open_chat_model("openai:gpt-4o-mini")
    assert SECRET not in str(caught.value)
    assert caught.value.__cause__ is None, "not chained: a traceback would print the secret"
    assert "OPENAI_API_KEY" in str(caught.value)


def test_a_model_without_its_api_key_is_refused_before_any_call(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ChatModelError, match="has no API key; is ANTHROPIC_API_KEY set"):
        open_chat_model("anthropic:claude-haiku-4-5")
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    model = open_chat_model("anthropic:claude-haiku-4-5")  # configured, nothing sent
    assert SECRET not in repr(model)


def test_a_failing_call_is_a_chat_model_error_without_the_providers_message(plans, embeddings):
    class RefusedError(Exception):
        status_code = 401

    class Failing(RecordingChatModel):
        def _call(self, *args: Any, **kwargs: Any) -> str:
            msg = f"Incorrect API key provided: {SECRET}"
            raise RefusedError(msg)

    with pytest.raises(ChatModelError, match="HTTP 401") as caught:
        evaluate_answers(
            plans,
            "anthropic:claude-haiku-4-5",
            budgets=[300],
            memory_factory=lambda: evaluation_memory(embeddings=embeddings),
            chat_model_factory=lambda name: Failing(responses=["x"]),
        )
    assert SECRET not in str(caught.value)
    assert caught.value.__cause__ is None, "not chained: a traceback would print the secret"
    assert "ANTHROPIC_API_KEY" in str(caught.value)


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def locomo_file(tmp_path):
    path = tmp_path / "mini.json"
    path.write_text(json.dumps([sample(QUESTIONS)]), encoding="utf-8")
    return str(path)


@pytest.fixture
def fake_models(monkeypatch, models, embeddings):
    """The CLI's models and embeddings, replaced through the answering module's seams."""
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    monkeypatch.setattr(answering, "open_chat_model", models.__getitem__)
    monkeypatch.setattr(
        answering, "evaluation_memory", lambda **settings: evaluation_memory(embeddings=embeddings)
    )
    return models


def test_eval_with_an_answer_model_estimates_asks_and_prints_accuracy(
    locomo_file, fake_models, capsys
):
    code = main(
        [
            "eval",
            locomo_file,
            "--answer-model",
            "fake:answer",
            "--judge-model",
            "fake:judge",
            "--budgets",
            "300",
            "--price-per-mtok",
            "0.15",
            "--yes",
        ]
    )
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert "answer model fake:answer: 6 calls, at most" in out
    assert "judge model fake:judge: 6 calls" in out
    assert "$" in out
    assert re.search(r"hybrid memory\s*│\s*300\s*│\s*1\.000", out)
    assert re.search(r"recent turns\s*│\s*300\s*│\s*0\.500", out)
    assert "1 questions without a gold answer left out" in " ".join(out.split())
    assert len(fake_models["fake:answer"].calls) == 6


def test_eval_sends_nothing_without_a_yes(locomo_file, fake_models, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code = main(["eval", locomo_file, "--answer-model", "fake:answer", "--budgets", "300"])
    assert code == EXIT_ABORTED
    assert "nothing sent" in capsys.readouterr().out
    assert fake_models["fake:answer"].calls == []


def test_eval_answers_as_json(locomo_file, fake_models, capsys):
    args = ["eval", locomo_file, "--answer-model", "fake:answer", "--judge-model", "fake:judge"]
    assert main([*args, "--budgets", "300", "--yes", "--json"]) == EXIT_OK
    out = capsys.readouterr().out
    figures = json.loads(out[out.index("{") :])
    assert [row["method"] for row in figures["rows"]] == [MEMORY, FULL_HISTORY, "recent turns"]
    assert figures["rows"][0]["by_category"]["single-hop"]["accuracy"] == 1.0


def test_eval_names_a_missing_provider_package_before_anything_else(
    locomo_file, capsys, monkeypatch
):
    spec, package = missing_provider(monkeypatch)
    code = main(["eval", locomo_file, "--answer-model", spec, "--yes"])
    captured = capsys.readouterr()
    assert code == EXIT_ERROR
    assert package in captured.err
    assert "questions" not in captured.out  # nothing estimated, nothing fed


def test_answer_options_without_an_answer_model_are_a_usage_error(locomo_file, capsys):
    assert main(["eval", locomo_file, "--judge-model", "fake:judge"]) == EXIT_USAGE
    assert "--answer-model" in capsys.readouterr().err
