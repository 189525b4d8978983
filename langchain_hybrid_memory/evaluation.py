"""Evidence-recall evaluation on LoCoMo-format conversation files.

LoCoMo (Maharana et al., ACL 2024) is a set of long two-person conversations, each split into
dated sessions, with questions whose ``evidence`` names the turns (``dia_id`` such as ``"D3:7"``)
that answer them. This module feeds each conversation into a :class:`HybridMemory`, builds the
context for every question at several token budgets, and measures **evidence recall**: the
fraction of a question's evidence turns present in the context (recalled or in the window), the
metric LoCoMo's own code reports as ``recall_acc``.

Use it to see what the memory brings into a prompt of a given size, and to tune a
configuration on your own transcripts written in the same format. The file is read as it is,
with the known problems of the published data handled here:

* evidence strings holding several ids (``"D8:6; D9:17"``, ``"D9:1 D4:4 D4:6"``), a stray colon
  (``"D:11:26"``), leading zeros (``"D30:05"``) or no id at all (``"D"``);
* evidence ids that name no turn of the conversation (ignored when scoring) and questions left
  without any valid evidence (not scored);
* image turns, whose BLIP caption is appended to the text as ``" [shares image: <caption>]"``,
  as LoCoMo's evaluation does;
* ``session_<n>_date_time`` keys without a ``session_<n>`` (only existing sessions are read);
* dates written ``"1:56 pm on 8 May, 2023"``.

Speaker A's turns become ``HumanMessage``s and speaker B's ``AIMessage``s, each with the
speaker's name, stamped with their session's date, and one LoCoMo session is added per
``add_messages`` call. Every text is embedded once per run: the contexts at each budget are built
by memories sharing the store, embeddings and token counter of the memory fed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from langchain_hybrid_memory.baselines import BASELINES, SessionBaselines
from langchain_hybrid_memory.errors import InvalidInputError
from langchain_hybrid_memory.hybrid import HybridMemory

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable

    from langchain_hybrid_memory.context import MemoryContext

__all__ = [
    "CATEGORY_NAMES",
    "DEFAULT_BUDGETS",
    "DEFAULT_CATEGORIES",
    "FULL_HISTORY",
    "MEMORY",
    "METHODS",
    "BudgetScores",
    "CategoryScores",
    "EvaluationReport",
    "LocomoConversation",
    "LocomoQuestion",
    "LocomoSession",
    "LocomoTurn",
    "QuestionContexts",
    "QuestionPlan",
    "QuestionScore",
    "evaluate_locomo",
    "evaluation_memory",
    "load_locomo",
    "parse_evidence",
    "parse_locomo",
    "parse_locomo_date",
    "plan_questions",
    "question_contexts",
]


#: What LoCoMo's numeric categories mean (as its own evaluation code scores them).
CATEGORY_NAMES: Mapping[int, str] = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}
#: Context budgets, in tokens, the evaluation builds each question's context at by default.
DEFAULT_BUDGETS = (500, 1000, 2000)
#: Categories scored by default (5, adversarial, asks about things never said).
DEFAULT_CATEGORIES = (1, 2, 3, 4)
#: The method name of this project's context in scores and reports.
MEMORY = "hybrid memory"
#: The method name of the whole conversation, sent with no budget.
FULL_HISTORY = "full history"
#: Every method an evaluation can score: this project's context, the whole conversation, and
#: the budgeted baselines of :mod:`~langchain_hybrid_memory.baselines`.
METHODS = (MEMORY, FULL_HISTORY, *BASELINES)

#: Recent messages kept verbatim by the default evaluation memory: questions come after the
#: conversation, so the window only holds the end of the last session.
_WINDOW_TURNS = 4
_DATE_FORMATS = ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y")
_DIA_ID = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)", re.IGNORECASE)
_SESSION_KEY = re.compile(r"session_(\d+)")


# -- the data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocomoTurn:
    """One turn of a LoCoMo conversation; an image's caption is already part of ``text``."""

    dia_id: str
    speaker: str
    text: str


@dataclass(frozen=True)
class LocomoSession:
    """One dated session of a conversation (``date`` is ``None`` when the file gives none)."""

    number: int
    date: datetime | None
    turns: tuple[LocomoTurn, ...]


@dataclass(frozen=True)
class LocomoQuestion:
    """A question with its category and normalized evidence ids (possibly naming no turn).

    ``answer`` is the gold answer as text (``None`` when the file gives none, as for most
    adversarial questions).
    """

    question: str
    category: int
    evidence: tuple[str, ...]
    answer: str | None = None


@dataclass(frozen=True)
class LocomoConversation:
    """One LoCoMo sample: two speakers, their sessions in order, and the questions."""

    sample_id: str
    speaker_a: str
    speaker_b: str
    sessions: tuple[LocomoSession, ...]
    questions: tuple[LocomoQuestion, ...]

    @property
    def dia_ids(self) -> frozenset[str]:
        """The ids of every turn of the conversation."""
        return frozenset(turn.dia_id for session in self.sessions for turn in session.turns)

    def valid_evidence(self, question: LocomoQuestion) -> tuple[str, ...]:
        """The question's evidence ids that name a turn of this conversation."""
        known = self.dia_ids
        return tuple(dia_id for dia_id in question.evidence if dia_id in known)

    def messages(self, session: LocomoSession) -> list[BaseMessage]:
        """A session's turns as the evaluation feeds them, each named after its speaker.

        Speaker A's turns are ``HumanMessage``s, speaker B's ``AIMessage``s.
        """
        return [
            HumanMessage(turn.text, name=turn.speaker)
            if turn.speaker == self.speaker_a
            else AIMessage(turn.text, name=turn.speaker)
            for turn in session.turns
        ]


def parse_evidence(evidence: object) -> tuple[str, ...]:
    """Normalize a question's evidence list into turn ids, in order, without duplicates.

    Strings holding several ids are split, stray separators and leading zeros are dropped, and
    strings naming no id are ignored.

    Example:
        >>> parse_evidence(["D8:6; D9:17", "D:11:26", "D30:05", "D", "D9:1 D4:4 D8:6"])
        ('D8:6', 'D9:17', 'D11:26', 'D30:5', 'D9:1', 'D4:4')
    """
    values = [evidence] if isinstance(evidence, str) else evidence
    if not isinstance(values, Sequence):
        return ()
    found: dict[str, None] = {}
    for value in values:
        if isinstance(value, str):
            for match in _DIA_ID.finditer(value):
                found[f"D{int(match[1])}:{int(match[2])}"] = None
    return tuple(found)


def parse_locomo_date(text: str) -> datetime:
    """Parse a LoCoMo session date such as ``"1:56 pm on 8 May, 2023"`` (ISO 8601 also works).

    Raises:
        InvalidInputError: The text is in neither format.

    Example:
        >>> parse_locomo_date("1:56 pm on 8 May, 2023")
        datetime.datetime(2023, 5, 8, 13, 56)
    """
    cleaned = " ".join(text.split())
    for date_format in _DATE_FORMATS:
        try:
            return datetime.strptime(cleaned, date_format)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(cleaned)
    except ValueError:
        msg = f"unrecognized session date {text!r}; expected e.g. '1:56 pm on 8 May, 2023'"
        raise InvalidInputError(msg) from None


def load_locomo(path: str | os.PathLike[str]) -> list[LocomoConversation]:
    """Read a LoCoMo-format JSON file (a list of samples); see :func:`parse_locomo`.

    Raises:
        InvalidInputError: The file cannot be read, is not JSON, or is not in LoCoMo's format.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"cannot read a LoCoMo file from {str(path)!r}: {exc}"
        raise InvalidInputError(msg) from exc
    return parse_locomo(data)


def parse_locomo(data: object) -> list[LocomoConversation]:
    """Turn LoCoMo JSON data (a list of samples) into conversations.

    Raises:
        InvalidInputError: The data is not in LoCoMo's format; the message says where.

    Example:
        >>> sample = {"sample_id": "c1", "conversation": {"speaker_a": "Ana", "speaker_b": "Rui",
        ...     "session_1_date_time": "1:56 pm on 8 May, 2023",
        ...     "session_1": [{"speaker": "Ana", "dia_id": "D1:1", "text": "Look!",
        ...                    "blip_caption": "a photo of a cat"}],
        ...     "session_2_date_time": "9:00 am on 9 May, 2023"},
        ...     "qa": [{"question": "What did Ana show?", "category": 4, "evidence": ["D1:1; D:1:1"]}]}
        >>> conversation = parse_locomo([sample])[0]
        >>> conversation.sessions[0].turns[0].text, conversation.questions[0].evidence
        ('Look! [shares image: a photo of a cat]', ('D1:1',))
    """
    if not isinstance(data, list):
        msg = f"a LoCoMo file holds a list of samples, got {type(data).__name__}"
        raise InvalidInputError(msg)
    return [_parse_sample(sample, position) for position, sample in enumerate(data)]


def _parse_sample(sample: object, position: int) -> LocomoConversation:
    where = f"sample {position}"
    record = _mapping(sample, where)
    sample_id = str(record.get("sample_id", position))
    where = f"sample {sample_id!r}"
    conversation = _mapping(record.get("conversation"), f"{where}: 'conversation'")
    speaker_a = _string(conversation.get("speaker_a"), f"{where}: 'speaker_a'")
    speaker_b = _string(conversation.get("speaker_b"), f"{where}: 'speaker_b'")
    numbers = sorted(
        int(match[1])
        for key in conversation
        if (match := _SESSION_KEY.fullmatch(str(key))) is not None
    )
    sessions = tuple(
        _parse_session(conversation, number, f"{where}, session_{number}") for number in numbers
    )
    raw_questions = record.get("qa", [])
    if not isinstance(raw_questions, list):
        msg = f"{where}: 'qa' must be a list, got {type(raw_questions).__name__}"
        raise InvalidInputError(msg)
    questions = tuple(
        _parse_question(item, f"{where}, qa[{i}]") for i, item in enumerate(raw_questions)
    )
    return LocomoConversation(sample_id, speaker_a, speaker_b, sessions, questions)


def _parse_session(conversation: Mapping[str, Any], number: int, where: str) -> LocomoSession:
    raw_turns = conversation[f"session_{number}"]
    if not isinstance(raw_turns, list):
        msg = f"{where} must be a list of turns, got {type(raw_turns).__name__}"
        raise InvalidInputError(msg)
    raw_date = conversation.get(f"session_{number}_date_time")
    date = parse_locomo_date(raw_date) if isinstance(raw_date, str) and raw_date.strip() else None
    turns = tuple(_parse_turn(raw, f"{where}[{i}]") for i, raw in enumerate(raw_turns))
    return LocomoSession(number, date, turns)


def _parse_turn(raw: object, where: str) -> LocomoTurn:
    record = _mapping(raw, where)
    raw_id = _string(record.get("dia_id"), f"{where}: 'dia_id'")
    ids = parse_evidence(raw_id)
    dia_id = ids[0] if len(ids) == 1 else raw_id
    speaker = _string(record.get("speaker"), f"{where}: 'speaker'")
    text = record.get("text") or ""
    if not isinstance(text, str):
        msg = f"{where}: 'text' must be a string, got {type(text).__name__}"
        raise InvalidInputError(msg)
    caption = record.get("blip_caption")
    if isinstance(caption, str) and caption.strip():
        text = f"{text} [shares image: {caption.strip()}]".strip()
    return LocomoTurn(dia_id, speaker, text)


def _parse_question(raw: object, where: str) -> LocomoQuestion:
    record = _mapping(raw, where)
    question = _string(record.get("question"), f"{where}: 'question'")
    category = record.get("category")
    try:
        number = int(category)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        msg = f"{where}: 'category' must be an integer, got {category!r}"
        raise InvalidInputError(msg) from None
    answer = record.get("answer")
    return LocomoQuestion(
        question,
        number,
        parse_evidence(record.get("evidence", [])),
        None if answer is None or isinstance(answer, (dict, list)) else str(answer),
    )


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        msg = f"{where} must be a JSON object, got {type(value).__name__}"
        raise InvalidInputError(msg)
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        msg = f"{where} must be a non-empty string, got {value!r}"
        raise InvalidInputError(msg)
    return value


# -- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionScore:
    """How one question fared at one budget.

    Attributes:
        sample_id: The conversation.
        question: The question's position in the conversation's ``qa`` list.
        category: The question's LoCoMo category.
        budget: The token budget the context was built for.
        evidence: The question's evidence ids that name a turn.
        found: Those of ``evidence`` whose turn is in the context.
        tokens: The context's tokens.
        method: What built the context (one of :data:`METHODS`); for :data:`FULL_HISTORY`,
            ``budget`` is the context's own tokens.
    """

    sample_id: str
    question: int
    category: int
    budget: int
    evidence: tuple[str, ...]
    found: tuple[str, ...]
    tokens: int
    method: str = MEMORY

    @property
    def recall(self) -> float:
        """The fraction of the evidence turns present in the context."""
        return len(self.found) / len(self.evidence)


@dataclass(frozen=True)
class CategoryScores:
    """Mean evidence recall and context tokens of a group of questions at one budget."""

    questions: int
    recall: float
    tokens: float

    @classmethod
    def of(cls, scores: Sequence[QuestionScore]) -> CategoryScores:
        """Average ``scores`` (zeros for none)."""
        if not scores:
            return cls(0, 0.0, 0.0)
        return cls(
            len(scores), fmean(s.recall for s in scores), fmean(float(s.tokens) for s in scores)
        )


@dataclass(frozen=True)
class BudgetScores:
    """The figures of one budget: every scored question, and per category.

    Attributes:
        budget: The token budget.
        overall: The mean over every scored question (each question weighs the same).
        by_category: The mean per category, by category number.
    """

    budget: int
    overall: CategoryScores
    by_category: Mapping[int, CategoryScores]


@dataclass(frozen=True)
class EvaluationReport:
    """What :func:`evaluate_locomo` measured.

    Attributes:
        budgets: The memory's figures per budget, in the order the budgets were given.
        scores: Every question at every budget (and method), to look at what was missed.
        conversations: Conversations fed (those with at least one question to score).
        turns: Turns fed.
        questions: Questions scored (at each budget).
        skipped: Questions of the scored categories left out for lack of valid evidence.
        ingest_seconds: Time spent feeding the conversations (storing, embedding, summarizing).
        context_seconds: Time spent building and scoring contexts, every budget included.
        baselines: The figures of each budgeted baseline asked for, per budget, by name.
        full_history: The whole conversation's figures when asked for: its recall (1.0 unless
            evidence names a turn that is not stored) and mean tokens, under ``budget`` the
            largest conversation's tokens.
    """

    budgets: tuple[BudgetScores, ...]
    scores: tuple[QuestionScore, ...]
    conversations: int
    turns: int
    questions: int
    skipped: int
    ingest_seconds: float
    context_seconds: float
    baselines: Mapping[str, tuple[BudgetScores, ...]] = dataclasses.field(default_factory=dict)
    full_history: BudgetScores | None = None

    def at(self, budget: int) -> BudgetScores:
        """The figures of one budget.

        Raises:
            InvalidInputError: The budget was not evaluated.
        """
        for scores in self.budgets:
            if scores.budget == budget:
                return scores
        evaluated = [scores.budget for scores in self.budgets]
        msg = f"budget {budget!r} was not evaluated; the report has {evaluated}"
        raise InvalidInputError(msg)

    def rows(self) -> list[tuple[int, float, int, int]]:
        """One row per budget for a table: budget, mean recall (3 decimals), mean tokens, questions.

        Example:
            >>> EvaluationReport((BudgetScores(500, CategoryScores(4, 0.75, 480.4), {}),),
            ...                  (), 1, 10, 4, 0, 1.0, 1.0).rows()
            [(500, 0.75, 480, 4)]
        """
        return [
            (s.budget, round(s.overall.recall, 3), round(s.overall.tokens), s.overall.questions)
            for s in self.budgets
        ]

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain data (for JSON), without the per-question scores."""
        figures = {
            "conversations": self.conversations,
            "turns": self.turns,
            "questions": self.questions,
            "skipped": self.skipped,
            "ingest_seconds": round(self.ingest_seconds, 3),
            "context_seconds": round(self.context_seconds, 3),
            "budgets": [_budget_dict(scores) for scores in self.budgets],
        }
        if self.baselines:
            figures["baselines"] = {
                name: [_budget_dict(scores) for scores in budgets]
                for name, budgets in self.baselines.items()
            }
        if self.full_history is not None:
            figures["full_history"] = _budget_dict(self.full_history)
        return figures


def _budget_dict(scores: BudgetScores) -> dict[str, Any]:
    return {
        "budget": scores.budget,
        "overall": dataclasses.asdict(scores.overall),
        "by_category": {
            CATEGORY_NAMES.get(category, str(category)): dataclasses.asdict(figures)
            for category, figures in scores.by_category.items()
        },
    }


# -- the evaluation ---------------------------------------------------------------------------


def evaluation_memory(**settings: Any) -> HybridMemory:
    """The memory :func:`evaluate_locomo` feeds by default.

    A :class:`HybridMemory` with the engine's defaults (so the token budget decides how many
    turns recall brings), the offline extractive summarizer (``llm=None``), the local
    embeddings, and a window of the last 4 messages (the questions come after the
    conversation). ``settings`` override any
    :class:`~langchain_hybrid_memory.HybridMemoryConfig` field.

    Example:
        >>> evaluation_memory(window_turns=6).config.window_turns
        6
    """
    defaults: dict[str, Any] = {"window_turns": _WINDOW_TURNS}
    return HybridMemory(**{**defaults, **settings})


def evaluate_locomo(
    source: str | os.PathLike[str] | Sequence[LocomoConversation],
    *,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    categories: Iterable[int] = DEFAULT_CATEGORIES,
    memory_factory: Callable[[], HybridMemory] | None = None,
    limit_conversations: int | None = None,
    limit_questions: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    baselines: Iterable[str] = (),
) -> EvaluationReport:
    """Measure evidence recall of the memory's context on a LoCoMo-format file.

    Each conversation is fed into a fresh session of the memory (one ``add_messages`` call per
    LoCoMo session, stamped with its date); then, for every question of ``categories`` with at
    least one valid evidence id, the context is built for the question at each budget and scored:
    the fraction of the evidence turns present in ``ctx.recalled`` or ``ctx.window``. The session
    is erased afterwards. ``baselines`` are scored in the same run, on the same stored turns
    and with the same budgets, counter and rendering (:mod:`~langchain_hybrid_memory.baselines`).

    Args:
        source: A LoCoMo-format JSON file, or conversations from :func:`parse_locomo`.
        budgets: Token budgets to build each context at.
        categories: LoCoMo categories to score.
        memory_factory: Builds the memory the conversations are fed into (called once); default
            :func:`evaluation_memory`. Its ``token_budget`` is replaced by each budget.
        limit_conversations: Evaluate only the first this many conversations.
        limit_questions: Score only the first this many eligible questions of each conversation.
        progress: Called with (questions scored, questions to score) as the run advances.
        baselines: Other methods to score (names of :data:`METHODS`): :data:`FULL_HISTORY`
            and the budgeted baselines, e.g. ``("recent turns", "bm25", "dense", "rrf")``.

    Returns:
        Mean recall and context tokens per budget, overall and per category, with every score;
        the baselines' figures in ``report.baselines`` and ``report.full_history``.

    Raises:
        InvalidInputError: The file is not in LoCoMo's format, or a budget, limit or method is
            invalid.

    Example:
        >>> day = "10:00 am on {} May, 2023"
        >>> turns = [{"speaker": "Ana", "dia_id": "D1:1", "text": "My sister Marta lives in Porto."},
        ...          {"speaker": "Rui", "dia_id": "D1:2", "text": "Nice city!"}]
        >>> chat = [{"speaker": "Ana" if i % 2 == 0 else "Rui", "dia_id": f"D2:{i + 1}",
        ...          "text": f"Shall we try recipe number {i} for dinner?"} for i in range(30)]
        >>> sample = {"sample_id": "mini", "conversation": {"speaker_a": "Ana", "speaker_b": "Rui",
        ...     "session_1": turns, "session_1_date_time": day.format(8),
        ...     "session_2": chat, "session_2_date_time": day.format(9)},
        ...     "qa": [{"question": "Where does Ana's sister live?", "answer": "Porto",
        ...             "evidence": ["D1:1"], "category": 4}]}
        >>> report = evaluate_locomo(parse_locomo([sample]), budgets=[300])
        >>> report.at(300).overall.recall, report.at(300).overall.tokens <= 300
        (1.0, True)
        >>> report = evaluate_locomo(parse_locomo([sample]), budgets=[300],
        ...                          baselines=["full history", "recent turns", "bm25"])
        >>> [scores[0].overall.recall for scores in report.baselines.values()]
        [0.0, 1.0]
        >>> report.full_history.overall.recall, report.full_history.overall.tokens > 300
        (1.0, True)
    """
    budget_list = _checked_budgets(budgets)
    method_list = _checked_methods((MEMORY, *baselines))
    plans = plan_questions(
        source,
        categories=categories,
        limit_conversations=limit_conversations,
        limit_questions=limit_questions,
    )
    total = sum(len(plan.questions) for plan in plans)
    memory = memory_factory() if memory_factory is not None else evaluation_memory()

    scores: list[QuestionScore] = []
    timings = {"ingest": 0.0}
    if progress is not None:
        progress(0, total)
    started = time.perf_counter()
    for done, item in enumerate(
        question_contexts(plans, memory, budgets=budget_list, methods=method_list, timings=timings),
        start=1,
    ):
        for (method, budget), context in item.contexts.items():
            scores.append(
                QuestionScore(
                    sample_id=item.sample_id,
                    question=item.position,
                    category=item.question.category,
                    budget=context.tokens if budget is None else budget,
                    evidence=item.evidence,
                    found=item.found(context),
                    tokens=context.tokens,
                    method=method,
                )
            )
        if progress is not None:
            progress(done, total)
    elapsed = time.perf_counter() - started

    fed = [plan for plan in plans if plan.questions]
    mine = [s for s in scores if s.method == MEMORY]
    whole = [s for s in scores if s.method == FULL_HISTORY]
    return EvaluationReport(
        budgets=tuple(_budget_scores(budget, mine) for budget in budget_list),
        scores=tuple(scores),
        conversations=len(fed),
        turns=sum(len(s.turns) for plan in fed for s in plan.conversation.sessions),
        questions=total,
        skipped=sum(plan.skipped for plan in plans),
        ingest_seconds=timings["ingest"],
        context_seconds=elapsed - timings["ingest"],
        baselines={
            method: tuple(
                _budget_scores(budget, [s for s in scores if s.method == method])
                for budget in budget_list
            )
            for method in method_list
            if method in BASELINES
        },
        full_history=(
            _budget_scores(max(s.budget for s in whole), whole, fixed=False) if whole else None
        ),
    )


@dataclass(frozen=True)
class QuestionContexts:
    """The contexts built for one question, by method and budget (see :func:`question_contexts`).

    Attributes:
        sample_id: The conversation.
        position: The question's position in the conversation's ``qa`` list.
        question: The question.
        evidence: Its evidence ids that name a turn.
        contexts: Each context by (method, budget); the full history's budget is ``None``.
        dia_ids: The LoCoMo ``dia_id`` of each stored turn id of the conversation.
    """

    sample_id: str
    position: int
    question: LocomoQuestion
    evidence: tuple[str, ...]
    contexts: Mapping[tuple[str, int | None], MemoryContext]
    dia_ids: Mapping[int, str]

    def found(self, context: MemoryContext) -> tuple[str, ...]:
        """The evidence ids whose turn is in ``context``, recalled or in the window."""
        present = {self.dia_ids[t.id] for t in context.window if t.id in self.dia_ids}
        present.update(
            self.dia_ids[r.turn.id] for r in context.recalled if r.turn.id in self.dia_ids
        )
        return tuple(e for e in self.evidence if e in present)


def plan_questions(
    source: str | os.PathLike[str] | Sequence[LocomoConversation],
    *,
    categories: Iterable[int] = DEFAULT_CATEGORIES,
    limit_conversations: int | None = None,
    limit_questions: int | None = None,
) -> list[QuestionPlan]:
    """The questions of each conversation an evaluation asks.

    Those of ``categories`` with evidence naming a turn, at most ``limit_questions`` per
    conversation.

    Raises:
        InvalidInputError: The file is not in LoCoMo's format, or a limit is invalid.
    """
    conversations = list(load_locomo(source) if isinstance(source, (str, os.PathLike)) else source)
    conversations = conversations[: _checked_limit(limit_conversations, "limit_conversations")]
    question_limit = _checked_limit(limit_questions, "limit_questions")
    wanted = frozenset(categories)
    return [QuestionPlan.of(c, wanted, question_limit) for c in conversations]


def question_contexts(
    plans: Sequence[QuestionPlan],
    memory: HybridMemory,
    *,
    budgets: Sequence[int],
    methods: Sequence[str] = (MEMORY,),
    timings: dict[str, float] | None = None,
) -> Generator[QuestionContexts, None, None]:
    """Feed each planned conversation into ``memory`` and build each question's contexts.

    A conversation is fed into a fresh session (one ``add_messages`` call per LoCoMo session,
    stamped with its date) and erased once its questions are done (or the iteration stops).
    :data:`MEMORY` contexts are built by memories sharing ``memory``'s store, embeddings and
    counter with ``token_budget`` set to each budget; the baselines read the same stored turns
    and vectors (:class:`~langchain_hybrid_memory.baselines.SessionBaselines`); every query is
    embedded once for all of them.

    Args:
        plans: From :func:`plan_questions`.
        memory: The memory to feed.
        budgets: Token budgets (the full history has none).
        methods: Names from :data:`METHODS`.
        timings: When given, ``timings["ingest"]`` is increased by the seconds spent feeding.

    Yields:
        One :class:`QuestionContexts` per planned question, in order.
    """
    checked = _checked_methods(methods)
    budget_list = _checked_budgets(budgets)
    for plan in plans:
        if not plan.questions:
            continue
        session_id = f"locomo-{plan.conversation.sample_id}-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        try:
            dia_of_turn = _feed(memory, session_id, plan.conversation)
            if timings is not None:
                timings["ingest"] = timings.get("ingest", 0.0) + time.perf_counter() - started
            queries = _QueryCache(memory.embeddings)
            views = _views(memory, budget_list, queries) if MEMORY in checked else {}
            baselines = (
                SessionBaselines.of(memory, session_id, embeddings=queries)
                if set(checked) - {MEMORY}
                else None
            )
            full = baselines.full_history() if baselines and FULL_HISTORY in checked else None
            for position, question, evidence in plan.questions:
                contexts: dict[tuple[str, int | None], MemoryContext] = {}
                for budget in budget_list:
                    if budget in views:
                        contexts[(MEMORY, budget)] = views[budget].build_context(
                            session_id, question.question
                        )
                    for method in checked:
                        if method in BASELINES and baselines is not None:
                            contexts[(method, budget)] = baselines.context(
                                method, question.question, budget
                            )
                if full is not None:
                    contexts[(FULL_HISTORY, None)] = dataclasses.replace(
                        full, query=question.question
                    )
                yield QuestionContexts(
                    plan.conversation.sample_id,
                    position,
                    question,
                    evidence,
                    contexts,
                    dia_of_turn,
                )
        finally:
            memory.forget_session(session_id)


@dataclass(frozen=True)
class QuestionPlan:
    """The questions of one conversation an evaluation asks, with their valid evidence.

    Attributes:
        conversation: The conversation.
        questions: (position in ``qa``, question, valid evidence ids) of each question asked.
        skipped: Questions of the asked categories left out for lack of valid evidence.
    """

    conversation: LocomoConversation
    questions: list[tuple[int, LocomoQuestion, tuple[str, ...]]]
    skipped: int

    @classmethod
    def of(
        cls, conversation: LocomoConversation, categories: frozenset[int], limit: int | None
    ) -> QuestionPlan:
        """The questions of ``conversation`` in ``categories``, at most ``limit``."""
        eligible = []
        skipped = 0
        for position, question in enumerate(conversation.questions):
            if question.category not in categories:
                continue
            evidence = conversation.valid_evidence(question)
            if evidence:
                eligible.append((position, question, evidence))
            else:
                skipped += 1
        return cls(conversation, eligible[:limit], skipped)


def _feed(
    memory: HybridMemory, session_id: str, conversation: LocomoConversation
) -> dict[int, str]:
    """Add every session of the conversation; return the dia_id of each turn id."""
    dia_of_turn: dict[int, str] = {}
    for session in conversation.sessions:
        if not session.turns:
            continue
        messages = conversation.messages(session)
        stored = memory.add_messages(session_id, messages, timestamp=session.date)
        for turn, source in zip(stored, session.turns, strict=True):
            dia_of_turn[turn.id] = source.dia_id
    memory.flush()
    return dia_of_turn


def _views(
    memory: HybridMemory, budgets: Sequence[int], embeddings: Embeddings
) -> dict[int, HybridMemory]:
    """One memory per budget over the fed memory's store, sharing one query-embedding cache."""
    return {
        budget: HybridMemory(
            memory.store,
            llm=memory.llm,
            embeddings=embeddings,
            config=dataclasses.replace(memory.config, token_budget=budget),
            token_counter=memory.token_counter,
            summarizer=memory.summarizer,
            entity_extractor=memory.entity_extractor,
        )
        for budget in budgets
    }


class _QueryCache(Embeddings):
    """Embeddings that embed each query once for all budgets (documents are passed through)."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.queries: dict[str, list[float]] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        vector = self.queries.get(text)
        if vector is None:
            vector = self.queries[text] = self.inner.embed_query(text)
        return vector


def _budget_scores(
    budget: int, scores: Sequence[QuestionScore], *, fixed: bool = True
) -> BudgetScores:
    """The figures of ``scores`` at ``budget`` (all of ``scores`` when not ``fixed``)."""
    mine = [s for s in scores if s.budget == budget] if fixed else list(scores)
    categories = sorted({s.category for s in mine})
    return BudgetScores(
        budget=budget,
        overall=CategoryScores.of(mine),
        by_category={
            c: CategoryScores.of([s for s in mine if s.category == c]) for c in categories
        },
    )


def _checked_methods(methods: Iterable[str]) -> list[str]:
    values = list(dict.fromkeys(methods))
    unknown = [m for m in values if m not in METHODS]
    if unknown:
        msg = f"unknown method(s) {unknown!r}; expected some of {', '.join(METHODS)}"
        raise InvalidInputError(msg)
    return values


def _checked_budgets(budgets: Sequence[int]) -> list[int]:
    values = list(budgets)
    if not values or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in values):
        msg = f"budgets must be positive integers, got {budgets!r}"
        raise InvalidInputError(msg)
    return list(dict.fromkeys(values))


def _checked_limit(limit: int | None, name: str) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        msg = f"{name} must be None or an integer >= 0, got {limit!r}"
        raise InvalidInputError(msg)
    return limit
