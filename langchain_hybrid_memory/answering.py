"""Answer accuracy with an LLM: answer LoCoMo questions from a context, and judge the answers.

Evidence recall (:mod:`~langchain_hybrid_memory.evaluation`) says whether the turns that
answer a question reached the context; this module asks a chat model to answer from it and a
judge model to grade each answer against the gold answer, for this project's context, the full
history and the most recent turns at the same budget (any method of
:data:`~langchain_hybrid_memory.evaluation.METHODS`). It reports accuracy, prompt tokens and
answer latency per method and category.

Models are named ``"provider:model"`` and created by LangChain's ``init_chat_model``
(:func:`open_chat_model`, from the ``eval`` extra); the provider's LangChain package and API
key must be there. Every
call costs money: :func:`estimate_cost` says how many tokens will be sent before any is, and
the ``hybrid-memory eval FILE --answer-model ...`` command asks before it starts.

Example (offline, with LangChain's fake chat models in place of real ones):
    >>> from langchain_core.embeddings import DeterministicFakeEmbedding
    >>> from langchain_core.language_models import FakeListChatModel
    >>> from langchain_hybrid_memory.evaluation import evaluation_memory, parse_locomo, plan_questions
    >>> sample = {"sample_id": "mini", "conversation": {"speaker_a": "Ana", "speaker_b": "Rui",
    ...     "session_1": [{"speaker": "Ana", "dia_id": "D1:1", "text": "I keep bees in Porto."}],
    ...     "session_1_date_time": "10:00 am on 8 May, 2023"},
    ...     "qa": [{"question": "Where are Ana's bees?", "answer": "Porto", "evidence": ["D1:1"],
    ...             "category": 4}]}
    >>> plans = plan_questions(parse_locomo([sample]))
    >>> models = {"fake:answer": FakeListChatModel(responses=["Porto"]),
    ...           "fake:judge": FakeListChatModel(responses=["CORRECT"])}
    >>> report = evaluate_answers(plans, "fake:answer", judge_model="fake:judge", budgets=[300],
    ...     memory_factory=lambda: evaluation_memory(embeddings=DeterministicFakeEmbedding(size=16)),
    ...     chat_model_factory=models.__getitem__)
    >>> [(row.method, row.accuracy) for row in report.rows]
    [('hybrid memory', 1.0), ('full history', 1.0), ('recent turns', 1.0)]
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from statistics import fmean
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from pydantic import SecretStr

from langchain_hybrid_memory.context import render_messages
from langchain_hybrid_memory.errors import ChatModelError, ConfigError, MissingDependencyError
from langchain_hybrid_memory.evaluation import (
    CATEGORY_NAMES,
    FULL_HISTORY,
    MEMORY,
    evaluation_memory,
    question_contexts,
)
from langchain_hybrid_memory.types import RecalledTurn, Turn

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from langchain_core.language_models import BaseChatModel

    from langchain_hybrid_memory.context import MemoryContext
    from langchain_hybrid_memory.evaluation import LocomoConversation, QuestionPlan
    from langchain_hybrid_memory.hybrid import HybridMemory

__all__ = [
    "ANSWER_PROMPT",
    "DEFAULT_ANSWER_METHODS",
    "JUDGE_PROMPT",
    "AnswerRecord",
    "AnswerReport",
    "CostEstimate",
    "MethodAccuracy",
    "estimate_cost",
    "evaluate_answers",
    "open_chat_model",
    "parse_verdict",
]

#: The methods answered from by default: this project's context, the whole conversation, and
#: the most recent turns that fit the same budget.
DEFAULT_ANSWER_METHODS = (MEMORY, FULL_HISTORY, "recent turns")

#: The answer model's prompt: the context as messages (``MemoryContext.to_messages()``), then
#: the question.
ANSWER_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You are answering questions about a long conversation between {speaker_a} and "
            "{speaker_b}, from what you remember of it: the memory and messages below ("
            "{speaker_a}'s turns as the user's, {speaker_b}'s as the assistant's). Answer with "
            "a short phrase, a few words, from that memory only; give dates as dates. If the "
            "memory does not say, give your best guess.",
        ),
        MessagesPlaceholder("memory"),
        ("human", "Question: {question}\nShort answer:"),
    ]
)

#: The judge's prompt: one word back, CORRECT or WRONG.
JUDGE_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You grade answers to questions about a conversation against the gold answer. "
            "Reply with one word: CORRECT or WRONG.",
        ),
        (
            "human",
            "Question: {question}\nGold answer: {gold}\nAnswer to grade: {answer}\n\n"
            "CORRECT when the answer means the same as the gold answer or contains it (other "
            "words, a date written another way or more detail are fine); WRONG when it "
            "differs, misses it or says it does not know. One word:",
        ),
    ]
)

#: Tokens an answer is assumed to add to the judge's prompt, for the estimate.
_ANSWER_ALLOWANCE = 32
#: Where a provider usually looks for its key, for the error message.
_KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google_genai": "GOOGLE_API_KEY",
    "mistralai": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "cohere": "COHERE_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "together": "TOGETHER_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY",
}


# -- models -----------------------------------------------------------------------------------


def open_chat_model(spec: str) -> BaseChatModel:
    """Create the chat model ``spec`` (``"provider:model"``) with ``init_chat_model``.

    Nothing is sent: the model is only configured. A model whose API key field is empty
    is refused here, before any work, rather than on its first call.

    Raises:
        MissingDependencyError: The provider's LangChain package is not installed (named).
        ConfigError: ``spec`` names no provider LangChain knows.
        ChatModelError: The model has no API key, or the provider refused to create it (the
            variable to set is named; the provider's message is not repeated).
    """
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:
        raise MissingDependencyError.for_extra("langchain", "eval") from exc
    try:
        model = init_chat_model(spec)
    except ImportError as exc:
        msg = f"the chat model {spec!r} cannot be created: {exc}"
        raise MissingDependencyError(msg) from exc
    except ValueError as exc:
        if "provider" in str(exc):
            first = str(exc).strip().splitlines()[0]
            msg = f"{first} Name the model as PROVIDER:MODEL, e.g. 'openai:gpt-4o-mini'."
            raise ConfigError(msg) from exc
        raise _model_error(spec, "could not be created", exc) from None
    except Exception as exc:  # noqa: BLE001 - any failure is a ChatModelError, unchained
        raise _model_error(spec, "could not be created", exc) from None
    for name in type(model).model_fields:
        if name.endswith("api_key") and not _secret_text(getattr(model, name, None)):
            raise _model_error(spec, "has no API key", None)
    return model


def _secret_text(value: object) -> str:
    """The text of a key field (a ``SecretStr``, a string or ``None``), to test it is set."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value if isinstance(value, str) else ""


def _model_error(spec: str, what: str, exc: BaseException | None) -> ChatModelError:
    """An error naming the model and the failure's type, never the provider's message.

    Raised ``from None``: the provider's exception may quote the key, and a chained cause would
    print it in any traceback.
    """
    provider = spec.split(":", 1)[0] if ":" in spec else ""
    variable = _KEY_VARIABLES.get(provider)
    hint = f"is {variable} set and valid?" if variable else "is its API key set and valid?"
    if exc is None:
        return ChatModelError(f"the chat model {spec!r} {what}; {hint}")
    status = getattr(exc, "status_code", None)
    kind = type(exc).__name__ + (f", HTTP {status}" if status else "")
    return ChatModelError(f"the chat model {spec!r} {what} ({kind}); {hint}")


# -- the estimate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CostEstimate:
    """What an answer evaluation will send, counted before anything is.

    Attributes:
        questions: Questions to answer.
        answer_calls: Calls to the answer model (questions x methods x budgets).
        answer_tokens: Prompt tokens to the answer model, at most (a budgeted context counted
            at its budget, the full history at its size).
        judge_calls: Calls to the judge model.
        judge_tokens: Prompt tokens to the judge, about (answers counted at 32 tokens).
    """

    questions: int
    answer_calls: int
    answer_tokens: int
    judge_calls: int
    judge_tokens: int

    @property
    def tokens(self) -> int:
        """Every prompt token, answer and judge models together."""
        return self.answer_tokens + self.judge_tokens

    def price(self, usd_per_million: float) -> float:
        """The prompt tokens' price at ``usd_per_million`` dollars per million tokens.

        Example:
            >>> CostEstimate(10, 30, 900_000, 30, 100_000).price(0.15)
            0.15
        """
        return self.tokens * usd_per_million / 1_000_000


def estimate_cost(
    plans: Sequence[QuestionPlan],
    *,
    budgets: Sequence[int],
    methods: Sequence[str] = DEFAULT_ANSWER_METHODS,
    token_counter: Callable[[Sequence[BaseMessage]], int] = count_tokens_approximately,
) -> CostEstimate:
    """Count the prompt tokens :func:`evaluate_answers` will send, without sending or embedding.

    Example:
        >>> from langchain_hybrid_memory.evaluation import parse_locomo, plan_questions
        >>> sample = {"sample_id": "s", "conversation": {"speaker_a": "Ana", "speaker_b": "Rui",
        ...     "session_1": [{"speaker": "Ana", "dia_id": "D1:1", "text": "I keep bees."}]},
        ...     "qa": [{"question": "What does Ana keep?", "answer": "bees", "evidence": ["D1:1"],
        ...             "category": 4}]}
        >>> estimate = estimate_cost(plan_questions(parse_locomo([sample])), budgets=[500, 1000])
        >>> estimate.answer_calls, estimate.judge_calls
        (5, 5)
    """
    answer_calls = answer_tokens = judge_tokens = questions = 0
    for plan in plans:
        if not plan.questions:
            continue
        history = _history_tokens(plan.conversation, token_counter)
        for _, question, _ in plan.questions:
            if question.answer is None:
                continue
            questions += 1
            asked = _answer_messages(plan.conversation, question.question, [])
            overhead = token_counter(asked)
            judged = token_counter(_judge_messages(question.question, question.answer, ""))
            for method in methods:
                sizes = [history] if method == FULL_HISTORY else list(budgets)
                for size in sizes:
                    answer_calls += 1
                    answer_tokens += overhead + size
                    judge_tokens += judged + _ANSWER_ALLOWANCE
    return CostEstimate(questions, answer_calls, answer_tokens, answer_calls, judge_tokens)


def _history_tokens(
    conversation: LocomoConversation, counter: Callable[[Sequence[BaseMessage]], int]
) -> int:
    """The full history's tokens, rendered as the evaluation renders it (nothing stored)."""
    recalled: list[RecalledTurn] = []
    for session in conversation.sessions:
        when = session.date or datetime.now()
        for turn, message in zip(session.turns, conversation.messages(session), strict=True):
            stored = Turn("estimate", len(recalled), message, turn.text, when)
            recalled.append(RecalledTurn(stored, 0.0, None, 0.0))
    return counter(render_messages("", [], recalled, []))


# -- the evaluation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerRecord:
    """One answer and its grade.

    Attributes:
        sample_id: The conversation.
        question: The question's position in the conversation's ``qa`` list.
        category: Its LoCoMo category.
        method: What built the context (a name of :data:`~langchain_hybrid_memory.evaluation.METHODS`).
        budget: The context's budget (``None`` for the full history).
        answer: The answer model's text.
        correct: The judge's verdict (``None`` when its reply was neither CORRECT nor WRONG).
        prompt_tokens: The answer prompt's tokens, as the provider reported them when it did.
        tokens_reported: Whether ``prompt_tokens`` came from the provider (else counted here).
        latency_s: Seconds the answer call took.
        context_tokens: The context's own tokens (``MemoryContext.tokens``).
    """

    sample_id: str
    question: int
    category: int
    method: str
    budget: int | None
    answer: str
    correct: bool | None
    prompt_tokens: int
    tokens_reported: bool
    latency_s: float
    context_tokens: int


@dataclass(frozen=True)
class MethodAccuracy:
    """The figures of one method at one budget, overall or for one category.

    Attributes:
        method: The method.
        budget: Its budget (``None`` for the full history).
        questions: Questions answered.
        accuracy: The share judged correct (an unreadable verdict counts as wrong).
        prompt_tokens: Mean prompt tokens per answer.
        latency_p50_s: Median seconds per answer call.
        by_category: The same figures per category.
    """

    method: str
    budget: int | None
    questions: int
    accuracy: float
    prompt_tokens: float
    latency_p50_s: float
    by_category: Mapping[int, MethodAccuracy] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(
        cls, method: str, budget: int | None, records: Sequence[AnswerRecord], *, split: bool = True
    ) -> MethodAccuracy:
        """The figures of ``records`` (and per category when ``split``)."""
        categories = sorted({r.category for r in records}) if split else []
        return cls(
            method,
            budget,
            len(records),
            fmean(r.correct is True for r in records) if records else 0.0,
            fmean(r.prompt_tokens for r in records) if records else 0.0,
            statistics.median(r.latency_s for r in records) if records else 0.0,
            {
                c: cls.of(method, budget, [r for r in records if r.category == c], split=False)
                for c in categories
            },
        )


@dataclass(frozen=True)
class AnswerReport:
    """What :func:`evaluate_answers` measured.

    Attributes:
        rows: One row per method and budget, in the order asked.
        records: Every answer with its grade.
        unjudged: Verdicts that were neither CORRECT nor WRONG (counted as wrong).
        skipped: Questions left out for want of a gold answer.
        answer_model: The answer model's name.
        judge_model: The judge model's name.
    """

    rows: tuple[MethodAccuracy, ...]
    records: tuple[AnswerRecord, ...]
    unjudged: int
    skipped: int
    answer_model: str
    judge_model: str

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain data (for JSON), categories by name, without the records."""

        def row(figures: MethodAccuracy) -> dict[str, Any]:
            data = dataclasses.asdict(figures)
            data["by_category"] = {
                CATEGORY_NAMES.get(c, str(c)): row(f) for c, f in figures.by_category.items()
            }
            return data

        return {
            "answer_model": self.answer_model,
            "judge_model": self.judge_model,
            "unjudged": self.unjudged,
            "skipped": self.skipped,
            "rows": [row(figures) for figures in self.rows],
        }


def evaluate_answers(
    plans: Sequence[QuestionPlan],
    answer_model: str,
    *,
    judge_model: str | None = None,
    budgets: Sequence[int] = (1000,),
    methods: Sequence[str] = DEFAULT_ANSWER_METHODS,
    memory_factory: Callable[[], HybridMemory] | None = None,
    chat_model_factory: Callable[[str], BaseChatModel] | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_concurrency: int = 1,
) -> AnswerReport:
    """Answer each planned question from each method's context, and judge every answer.

    The conversations are fed into the memory as for evidence recall
    (:func:`~langchain_hybrid_memory.evaluation.question_contexts`); each context goes to the
    answer model as messages (:data:`ANSWER_PROMPT`), and the judge grades the reply against
    the gold answer (:data:`JUDGE_PROMPT`). Questions without a gold answer are left out.

    Args:
        plans: From :func:`~langchain_hybrid_memory.evaluation.plan_questions`.
        answer_model: ``"provider:model"`` of the model that answers.
        judge_model: ``"provider:model"`` of the judge; default the answer model.
        budgets: Token budgets of the budgeted methods.
        methods: Names of :data:`~langchain_hybrid_memory.evaluation.METHODS`.
        memory_factory: Builds the memory fed; default
            :func:`~langchain_hybrid_memory.evaluation.evaluation_memory`.
        chat_model_factory: Creates a chat model from its name; default :func:`open_chat_model`.
        progress: Called with (answers judged, answers to judge) as the run advances.
        max_concurrency: Questions' answer-and-judge calls in flight at once (threads); the
            records keep the questions' order. A call's latency is its own, not its wait.

    Raises:
        MissingDependencyError, ConfigError, ChatModelError: A model cannot be created or a call
            failed (see :func:`open_chat_model`); nothing the provider said is repeated.
    """
    workers = _checked_concurrency(max_concurrency)
    create = chat_model_factory or open_chat_model
    judge_name = judge_model or answer_model
    answerer = create(answer_model)
    judge = answerer if judge_name == answer_model else create(judge_name)
    estimate = estimate_cost(plans, budgets=budgets, methods=methods)
    memory = memory_factory() if memory_factory is not None else evaluation_memory()

    records: list[AnswerRecord] = []
    skipped = 0
    by_sample = {plan.conversation.sample_id: plan.conversation for plan in plans}
    pending: deque[Future[AnswerRecord]] = deque()

    def collect(keep: int) -> None:
        """Wait, oldest first, until at most ``keep`` calls are in flight."""
        while len(pending) > keep:
            records.append(pending.popleft().result())
            if progress is not None:
                progress(len(records), estimate.answer_calls)

    def answer_and_judge(job: _Job) -> AnswerRecord:
        started = time.perf_counter()
        reply = _call(answerer, answer_model, job.messages)
        latency = time.perf_counter() - started
        answer = reply.text.strip()
        verdict = _call(judge, judge_name, _judge_messages(job.question, job.gold, answer))
        usage = reply.usage_metadata
        return dataclasses.replace(
            job.record,
            answer=answer,
            correct=parse_verdict(verdict.text),
            prompt_tokens=usage["input_tokens"] if usage else job.record.prompt_tokens,
            tokens_reported=bool(usage),
            latency_s=latency,
        )

    if progress is not None:
        progress(0, estimate.answer_calls)
    items = question_contexts(plans, memory, budgets=budgets, methods=methods)
    with ThreadPoolExecutor(max_workers=workers) as pool, closing(items):
        try:
            for item in items:
                gold = item.question.answer
                if gold is None:
                    skipped += 1
                    continue
                conversation = by_sample[item.sample_id]
                for (method, budget), context in item.contexts.items():
                    messages = _answer_messages(conversation, item.question.question, context)
                    record = AnswerRecord(
                        sample_id=item.sample_id,
                        question=item.position,
                        category=item.question.category,
                        method=method,
                        budget=budget,
                        answer="",
                        correct=None,
                        prompt_tokens=memory.token_counter(messages),
                        tokens_reported=False,
                        latency_s=0.0,
                        context_tokens=context.tokens,
                    )
                    job = _Job(record, messages, item.question.question, gold)
                    pending.append(pool.submit(answer_and_judge, job))
                    collect(2 * workers)
            collect(0)
        finally:  # a failed call: the calls not started yet are not sent
            for future in pending:
                future.cancel()
    unjudged = sum(record.correct is None for record in records)
    order = {method: position for position, method in enumerate(methods)}
    keys = sorted(
        dict.fromkeys((r.method, r.budget) for r in records),
        key=lambda key: (order.get(key[0], len(order)), key[1] or 0),
    )
    rows = tuple(
        MethodAccuracy.of(m, b, [r for r in records if (r.method, r.budget) == (m, b)])
        for m, b in keys
    )
    return AnswerReport(rows, tuple(records), unjudged, skipped, answer_model, judge_name)


@dataclass(frozen=True)
class _Job:
    """One answer to ask for and judge: its record so far and its prompts' parts."""

    record: AnswerRecord
    messages: list[BaseMessage]
    question: str
    gold: str


def _checked_concurrency(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"max_concurrency must be an integer >= 1, got {value!r}"
        raise ConfigError(msg)
    return value


def parse_verdict(text: str) -> bool | None:
    """Read a judge's reply: ``True`` for CORRECT, ``False`` for WRONG, ``None`` for neither.

    Example:
        >>> parse_verdict("CORRECT"), parse_verdict("Wrong."), parse_verdict("INCORRECT")
        (True, False, False)
        >>> parse_verdict("I cannot tell") is None
        True
    """
    words = [word.strip(".,:;!*\"'").upper() for word in text.split()]
    for word in words:
        if word in ("WRONG", "INCORRECT"):
            return False
        if word == "CORRECT":
            return True
    return None


def _answer_messages(
    conversation: LocomoConversation, question: str, context: MemoryContext | list[BaseMessage]
) -> list[BaseMessage]:
    memory = context if isinstance(context, list) else context.to_messages()
    return ANSWER_PROMPT.format_messages(
        speaker_a=conversation.speaker_a,
        speaker_b=conversation.speaker_b,
        memory=memory,
        question=question,
    )


def _judge_messages(question: str, gold: str, answer: str) -> list[BaseMessage]:
    return JUDGE_PROMPT.format_messages(question=question, gold=gold, answer=answer)


def _call(model: BaseChatModel, spec: str, messages: list[BaseMessage]) -> AIMessage:
    try:
        reply = model.invoke(messages)
    except Exception as exc:  # noqa: BLE001 - any failure is a ChatModelError, unchained
        raise _model_error(spec, "failed on a call", exc) from None
    if not isinstance(reply, AIMessage):
        msg = f"the chat model {spec!r} returned {type(reply).__name__}, not an AIMessage"
        raise ChatModelError(msg)
    return reply
