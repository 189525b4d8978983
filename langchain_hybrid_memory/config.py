"""Settings of a :class:`~langchain_hybrid_memory.HybridMemory`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from langchain_hybrid_memory.errors import ConfigError

if TYPE_CHECKING:
    from langchain_hybrid_memory.types import Turn

__all__ = ["BudgetShares", "HybridMemoryConfig"]


@dataclass(frozen=True, kw_only=True)
class BudgetShares:
    """How the room left after the latest exchange is shared between the sections.

    Each section first takes items, in its own order of priority, until it has used its share of
    the remaining room; whatever a section leaves unused is then offered to the sections in the
    order window, recall, entities, summary. Shares are fractions and must sum to at most 1.

    Example:
        >>> BudgetShares(recall=0.5, window=0.3, summary=0.1, entities=0.1).recall
        0.5
    """

    recall: float = 0.60
    window: float = 0.20
    summary: float = 0.12
    entities: float = 0.08

    def __post_init__(self) -> None:
        values = dataclasses.astuple(self)
        for field_name, value in zip(
            ("recall", "window", "summary", "entities"), values, strict=True
        ):
            _require_number(f"budget share {field_name}", value)
        if any(value < 0 for value in values) or sum(values) > 1.0 + 1e-9:
            msg = f"budget shares must be >= 0 and sum to at most 1, got {self}"
            raise ConfigError(msg)


@dataclass(frozen=True, kw_only=True)
class HybridMemoryConfig:
    """Settings of the hybrid memory engine.

    Attributes:
        window_turns: How many of the latest turns (a turn is one message) the context carries
            verbatim. An AI message with tool calls is never cut from its tool results, so the
            window can hold a few more turns than this.
        summary_batch: Most turns that left the window folded into the rolling summary in one
            summarizer call (and the batch size when ``summary_batch_tokens`` is ``None``).
        summary_batch_tokens: The summarizer is called once the turns that left the window and
            are not summarized yet hold this many tokens (or ``summary_batch`` turns, whichever
            comes first). Each turn is sent to the summarizer once, with the previous summary, so
            a call's prompt stays near this size plus ``summary_max_tokens`` however long the
            messages are. ``None`` batches by ``summary_batch`` turns only.
        summary_max_tokens: Length bound of the rolling summary (asked of the LLM, enforced by the
            offline extractive summarizer).
        recall_k: How many earlier turns a context recalls at most. ``None`` (the default) lets
            the token budget decide: ``build_context`` reads ranked turns until they would fill
            the budget (at most ``recall_candidates``), so a large budget carries more of them.
            Also the default ``k`` of :meth:`~langchain_hybrid_memory.HybridMemory.recall`
            (8 when ``None``).
        recall_candidates: How many candidates the dense and the lexical search each propose
            before fusion; also bounds how many turns a context can recall.
        dense_weight: Weight of the dense (embedding) score in the fused recall score; the lexical
            (BM25) score gets ``1 - dense_weight``.
        recall_max_chars: Longest text a recalled turn contributes to the context; longer turns
            are cut with an ellipsis.
        token_budget: The context never exceeds this many tokens (as counted by the token counter).
        budget_shares: How the sections share the budget (see :class:`BudgetShares`).
        recall_first_shares: The shares used instead of ``budget_shares`` when the input is about
            earlier turns: none of the recent window's turns ranks among the best recall hits
            for it, and the best hit shares a word with it. By default the older window turns'
            share goes to recall: such a context carries more of the turns that match and less
            of the recent chat. The latest exchange is always kept, room recall leaves unused
            still goes to the window first, and the summary keeps its share (it carries standing
            facts that no search finds, such as an allergy when the user asks for a snack),
            unless the input also names a speaker of the conversation (``message.name``):
            then what that person said is the answer, and the summary's share goes to recall.
            ``None`` always uses ``budget_shares``.
        extract_entities: Whether the LLM summarizer also extracts entities from each batch.
        background: Fold summaries in a background thread; ``flush()`` waits for them.
        embed_in_background: Embed stored messages in a background thread, many sessions per
            model call, so storing a reply never waits for the model and the next context
            waits only for its query (and for messages that left the recent window still
            unembedded). ``False`` embeds them with the session's next query instead (one call
            per turn, none in between). Either way ``flush()`` embeds what still waits.
        max_message_chars: Messages whose text is longer are refused with an
            :class:`~langchain_hybrid_memory.errors.InvalidInputError`; ``None`` accepts any size.
        index_cache_size: How many sessions keep their search indexes loaded in this process.
        embedding_cache_size: How many recent texts keep their embedding in this process, so the
            user input embedded as a query is not embedded again when it is stored.
        summary_retry_seconds: First wait after a failed summarizer call; doubled after each
            further failure, up to ``summary_retry_max_seconds``.
        summary_retry_max_seconds: Longest wait between summarizer retries.
        summary_lease_seconds: How long a worker may take to fold one batch. A worker folding a
            session holds the session's fold lease in the store, so no other worker (thread or
            process) sends the same batch to the LLM; a lease not released by then (the worker
            died, or the LLM is slower than this) lets another worker fold the batch.
        recall_scope: ``"session"`` recalls from the current session only; ``"user"`` also from
            the other sessions of the session's user (never another user's). Each of the user's
            sessions is searched, so a query costs one search per session of the user.
        entity_scope: ``"user"`` (default): the entity facts said in any session of a user are
            that user's, and every session of the user sees them (merged from the records of
            the user's sessions when a context is built; a session without a user keeps its
            own). ``"session"``: each session sees only the facts it stated itself.
        exclude_tool_results: Keep tool results out of recall and the summary (they still
            reach the model in the recent window): ``True`` for every tool, or the names of
            the tools whose results to keep out (e.g. a noisy web search).
        ttl_seconds: Sessions expire this long after their last write (all their data
            together); ``None`` keeps them. Applies to a store opened from a URL (or the
            default store); a store object keeps its own ``ttl_seconds``.
        symmetric_embeddings: The embedding model embeds a query and a document alike (true of
            the default all-MiniLM-L6-v2). Then a query's vector is reused for the stored user
            message, and a query is embedded in the same shared model calls as messages.
            Set ``False`` for models that embed queries differently (e.g. with
            an instruction prefix): queries then go to ``embed_query`` alone.
        faiss_threads: OpenMP threads FAISS may use. One query at a time searches fastest on
            one thread (several threads cost milliseconds of spin-up per search), so the
            default is 1. FAISS's setting is process-wide; ``None`` leaves it alone.

    Example:
        >>> HybridMemoryConfig(window_turns=6, token_budget=800).window_turns
        6
    """

    window_turns: int = 10
    summary_batch: int = 40
    summary_batch_tokens: int | None = 1000
    summary_max_tokens: int = 300
    recall_k: int | None = None
    recall_candidates: int = 75
    dense_weight: float = 0.5
    recall_max_chars: int = 600
    token_budget: int = 2000
    budget_shares: BudgetShares = field(default_factory=BudgetShares)
    recall_first_shares: BudgetShares | None = field(
        default_factory=lambda: BudgetShares(recall=0.8, window=0.0, summary=0.12, entities=0.08)
    )
    extract_entities: bool = True
    background: bool = False
    embed_in_background: bool = True
    max_message_chars: int | None = 100_000
    index_cache_size: int = 128
    embedding_cache_size: int = 64
    summary_retry_seconds: float = 5.0
    summary_retry_max_seconds: float = 300.0
    summary_lease_seconds: float = 300.0
    recall_scope: Literal["session", "user"] = "session"
    entity_scope: Literal["session", "user"] = "user"
    exclude_tool_results: bool | frozenset[str] = False
    ttl_seconds: float | None = None
    symmetric_embeddings: bool = True
    faiss_threads: int | None = 1

    def __post_init__(self) -> None:
        _require_number("dense_weight", self.dense_weight)
        _require_number("summary_retry_seconds", self.summary_retry_seconds)
        _require_number("summary_retry_max_seconds", self.summary_retry_max_seconds)
        _require_number("summary_lease_seconds", self.summary_lease_seconds)
        if not 0 < self.summary_lease_seconds < math.inf:
            msg = (
                f"summary_lease_seconds must be > 0 and finite, got {self.summary_lease_seconds!r}"
            )
            raise ConfigError(msg)
        if self.ttl_seconds is not None:
            _require_number("ttl_seconds", self.ttl_seconds)
            if self.ttl_seconds <= 0:
                msg = f"ttl_seconds must be > 0 or None, got {self.ttl_seconds!r}"
                raise ConfigError(msg)
        if self.faiss_threads is not None:
            _require_int("faiss_threads", self.faiss_threads, minimum=1)
        if self.summary_batch_tokens is not None:
            _require_int("summary_batch_tokens", self.summary_batch_tokens, minimum=1)
        positive = {
            "window_turns": self.window_turns,
            "summary_batch": self.summary_batch,
            "summary_max_tokens": self.summary_max_tokens,
            "recall_candidates": self.recall_candidates,
            "recall_max_chars": self.recall_max_chars,
            "index_cache_size": self.index_cache_size,
        }
        for name, value in positive.items():
            _require_int(name, value, minimum=1)
        if self.recall_k is not None:
            _require_int("recall_k", self.recall_k, minimum=0)
        _require_int("token_budget", self.token_budget, minimum=0)
        _require_int("embedding_cache_size", self.embedding_cache_size, minimum=0)
        if self.max_message_chars is not None:
            _require_int("max_message_chars", self.max_message_chars, minimum=1)
        if not 0.0 <= self.dense_weight <= 1.0:
            msg = f"dense_weight must be between 0 and 1, got {self.dense_weight!r}"
            raise ConfigError(msg)
        retry = (self.summary_retry_seconds, self.summary_retry_max_seconds)
        if any(delay < 0 or not math.isfinite(delay) for delay in retry):
            msg = "summary retry delays must be >= 0 and finite"
            raise ConfigError(msg)
        if not isinstance(self.budget_shares, BudgetShares):
            msg = f"budget_shares must be a BudgetShares, got {type(self.budget_shares).__name__}"
            raise ConfigError(msg)
        if self.recall_first_shares is not None and not isinstance(
            self.recall_first_shares, BudgetShares
        ):
            msg = (
                "recall_first_shares must be a BudgetShares or None, got "
                f"{type(self.recall_first_shares).__name__}"
            )
            raise ConfigError(msg)
        if self.recall_scope not in ("session", "user"):
            msg = f"recall_scope must be 'session' or 'user', got {self.recall_scope!r}"
            raise ConfigError(msg)
        if not isinstance(self.exclude_tool_results, bool):
            object.__setattr__(self, "exclude_tool_results", _tool_names(self.exclude_tool_results))
        if self.entity_scope not in ("session", "user"):
            msg = f"entity_scope must be 'session' or 'user', got {self.entity_scope!r}"
            raise ConfigError(msg)

    def recalls(self, turn: Turn) -> bool:
        """Whether recall and the summary take ``turn`` in (tool results may be kept out)."""
        excluded = self.exclude_tool_results
        if turn.role != "tool" or excluded is False:
            return True
        return excluded is not True and turn.message.name not in excluded

    @classmethod
    def from_settings(
        cls, config: HybridMemoryConfig | None, settings: dict[str, Any]
    ) -> HybridMemoryConfig:
        """Combine an optional config object with keyword settings (the keywords win).

        Raises:
            ConfigError: An unknown setting name or an invalid value.

        Example:
            >>> HybridMemoryConfig.from_settings(None, {"recall_k": 3}).recall_k
            3
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            msg = f"unknown setting(s) {unknown}; known settings: {sorted(known)}"
            raise ConfigError(msg)
        base = config if config is not None else cls()
        if not isinstance(base, HybridMemoryConfig):
            msg = f"config must be a HybridMemoryConfig, got {type(base).__name__}"
            raise ConfigError(msg)
        return dataclasses.replace(base, **settings) if settings else base


def _require_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        msg = f"{name} must be a number, got {value!r}"
        raise ConfigError(msg)


def _require_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise ConfigError(msg)


def _tool_names(value: object) -> frozenset[str]:
    """``exclude_tool_results`` as a set of tool names (one name may be given alone).

    Raises:
        ConfigError: Not a collection of strings.
    """
    names: list[object] = [value] if isinstance(value, str) else []
    if not names:
        try:
            names = list(value)  # type: ignore[call-overload]
        except TypeError:
            names = [value]
    if not all(isinstance(name, str) for name in names):
        msg = "exclude_tool_results must be True, False or a collection of tool names"
        raise ConfigError(msg)
    return frozenset(cast("list[str]", names))
