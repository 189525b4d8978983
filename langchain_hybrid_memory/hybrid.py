"""HybridMemory: the engine that combines window, summary, entities and recall.

It orchestrates and owns no algorithm: the window lives in ``window.py``, summaries in
``summary.py``, entities in ``entities.py``, recall in ``retrieval.py``, the budget in
``budget.py``, persistence in ``stores/``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np
from langchain_core.messages import message_to_dict
from langchain_core.messages.utils import count_tokens_approximately

from langchain_hybrid_memory.budget import (
    ContextCandidates,
    FittedContext,
    fit_context,
    shares_for_query,
    text_tokens,
)
from langchain_hybrid_memory.config import HybridMemoryConfig
from langchain_hybrid_memory.entities import (
    EntityExtractor,
    mentions_from_mapping,
    merge_mentions,
    rank_entities,
)
from langchain_hybrid_memory.errors import (
    ConfigError,
    EmbeddingError,
    InvalidInputError,
    SessionOwnershipError,
)
from langchain_hybrid_memory._inputs import (
    check_id,
    check_optional_id,
    check_query,
    prepare_drafts,
)
from langchain_hybrid_memory.redaction import PIIRedactor
from langchain_hybrid_memory.context import shorten
from langchain_hybrid_memory._search import SessionIndex, normalize_rows
from langchain_hybrid_memory.stores import open_store
from langchain_hybrid_memory.summary import ExtractiveSummarizer, LLMSummarizer, Summarizer
from langchain_hybrid_memory.types import (
    EntityMention,
    ErasureReport,
    MemoryContext,
    RecalledTurn,
    RunningSummary,
    TurnDraft,
)
from langchain_hybrid_memory.window import full_batch_length, window_start_index

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from langchain_core.embeddings import Embeddings
    from langchain_core.messages import BaseMessage
    from langchain_core.runnables import Runnable

    from langchain_hybrid_memory.chat_message_history import HybridChatMessageHistory
    from langchain_hybrid_memory.retriever import HybridMemoryRetriever
    from langchain_hybrid_memory.stores.base import MemoryStore
    from langchain_hybrid_memory.stores.encryption import EncryptionKey
    from langchain_hybrid_memory.summary import SummaryUpdate
    from langchain_hybrid_memory.types import Turn

__all__ = ["HybridMemory"]

logger = logging.getLogger(__name__)

#: Turns read beyond the window, so a tool call just before it is usually found in one read.
_WINDOW_SLACK = 8
#: Most texts embedded per call when catching up after embedding failures.
_MAX_CATCH_UP_EMBEDDINGS = 64
#: Turns recall returns when ``config.recall_k`` is ``None`` and :meth:`HybridMemory.recall`
#: is not given ``k``.
DEFAULT_RECALL_K = 8
#: Recalled turns are read from the store in batches of this many, best first.
_RECALL_BATCH = 16
#: Characters per token assumed when reading recalled turns until they would fill the whole
#: budget (a usual figure for English; the budget then decides exactly what fits).
_CHARS_PER_TOKEN = 4
#: Characters a recalled turn's line adds to its text (bullet, speaker, day lines).
_LINE_CHARS = 16


@dataclass(frozen=True)
class _FoldJob:
    """One batch of evicted turns to fold into the summary."""

    session_id: str
    summary: RunningSummary
    turns: list[Turn]


@dataclass
class _RetryState:
    failures: int = 0
    not_before: float = 0.0


class HybridMemory:
    """Conversation memory that stays small and still remembers.

    One instance serves every session of a process. Each turn is stored first, then embedded
    once and indexed for recall; turns that leave the recent window are folded into a rolling
    summary a batch at a time. :meth:`build_context` assembles summary, entities, recalled turns
    and the recent window within the token budget.

    Args:
        store: A :class:`~langchain_hybrid_memory.stores.MemoryStore` or a store URL
            (``"memory://"``); default: in this process's memory.
        llm: Any LangChain runnable taking a prompt string (chat model, LLM, LCEL chain) used to
            summarize and extract entities; ``None`` uses the offline extractive summarizer.
        embeddings: Any LangChain ``Embeddings``; ``None`` uses the local all-MiniLM-L6-v2.
        config: Settings; keyword ``settings`` override single fields.
        token_counter: Counts tokens of a list of messages; default
            ``langchain_core.messages.utils.count_tokens_approximately``.
        summarizer: A custom :class:`~langchain_hybrid_memory.summary.Summarizer` (replaces the
            one built from ``llm``).
        entity_extractor: A custom
            :class:`~langchain_hybrid_memory.entities.EntityExtractor`, called on each summary
            batch; when given, the LLM summarizer no longer extracts entities itself.
        redact_pii: Redact e-mail addresses, phone numbers, credit cards, IP addresses and IBANs
            before turns are stored, embedded or summarized (needs the ``agents`` extra).
        redactor: A custom :class:`~langchain_hybrid_memory.redaction.PIIRedactor` (its
            ``redact_on`` chooses where it applies); implies ``redact_pii``.
        encryption_key: A Fernet key, or a list of keys (the first encrypts, all decrypt, for
            rotation), to encrypt turns, summaries and entities at rest in a store opened from
            a URL (a store object takes its own ``encryption_key``).
        encrypt_vectors: Encrypt the stored embeddings too (they can be inverted to text).
        **settings: Any :class:`~langchain_hybrid_memory.HybridMemoryConfig` field.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> memory = HybridMemory(window_turns=2, token_budget=500)
        >>> _ = memory.add_messages("s1", [HumanMessage("I'm allergic to peanuts"), AIMessage("Noted.")])
        >>> _ = memory.add_messages("s1", [HumanMessage("Plan a trip to Valencia"), AIMessage("Sure!")])
        >>> context = memory.build_context("s1", "Which snack can I eat?")
        >>> "peanuts" in context.to_text(), context.tokens <= 500
        (True, True)
    """

    def __init__(
        self,
        store: MemoryStore | str | None = None,
        *,
        llm: Runnable[Any, Any] | None = None,
        embeddings: Embeddings | None = None,
        config: HybridMemoryConfig | None = None,
        token_counter: Callable[[Sequence[BaseMessage]], int] | None = None,
        summarizer: Summarizer | None = None,
        entity_extractor: EntityExtractor | None = None,
        redact_pii: bool = False,
        redactor: PIIRedactor | None = None,
        encryption_key: EncryptionKey | None = None,
        encrypt_vectors: bool = False,
        **settings: Any,
    ) -> None:
        self.config = HybridMemoryConfig.from_settings(config, settings)
        if redactor is None and redact_pii:
            redactor = PIIRedactor()
        self.redactor = redactor
        self.store = open_store(
            store,
            ttl_seconds=self.config.ttl_seconds,
            encryption_key=encryption_key,
            encrypt_vectors=encrypt_vectors,
        )
        if (
            self.config.ttl_seconds is not None
            and self.store.ttl_seconds != self.config.ttl_seconds
        ):
            msg = (
                f"ttl_seconds={self.config.ttl_seconds} does not match the store object's "
                f"ttl_seconds={self.store.ttl_seconds}; set it on the store"
            )
            raise ConfigError(msg)
        if self.config.faiss_threads is not None:
            faiss.omp_set_num_threads(self.config.faiss_threads)
        self.llm = llm
        if embeddings is None:
            from langchain_hybrid_memory.embeddings import LocalMiniLMEmbeddings

            embeddings = LocalMiniLMEmbeddings()
        self.embeddings = embeddings
        self.token_counter = token_counter or count_tokens_approximately
        self.entity_extractor = entity_extractor
        self.summarizer = summarizer or self._default_summarizer()
        self._indexes: OrderedDict[str, SessionIndex] = OrderedDict()
        self._indexes_lock = threading.Lock()
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._vectors_lock = threading.Lock()
        self._retry: dict[str, _RetryState] = {}
        self._background: ThreadPoolExecutor | None = None
        self._pending_folds: set[Future[None]] = set()

    def _default_summarizer(self) -> Summarizer:
        if self.llm is not None:
            return LLMSummarizer(
                self.llm,
                max_tokens=self.config.summary_max_tokens,
                extract_entities=self.config.extract_entities and self.entity_extractor is None,
            )
        return ExtractiveSummarizer(
            max_tokens=self.config.summary_max_tokens,
            count_text=partial(text_tokens, self.token_counter),
        )

    def __repr__(self) -> str:
        return f"HybridMemory(store={self.store!r}, config={self.config!r})"

    # -- writing ----------------------------------------------------------------------------

    def add_message(
        self,
        session_id: str,
        message: BaseMessage,
        *,
        user_id: str | None = None,
        timestamp: datetime | None = None,
        entities: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Turn:
        """Store one message; see :meth:`add_messages`."""
        return self.add_messages(
            session_id, [message], user_id=user_id, timestamp=timestamp, entities=entities
        )[0]

    def add_messages(
        self,
        session_id: str,
        messages: Sequence[BaseMessage],
        *,
        user_id: str | None = None,
        timestamp: datetime | Sequence[datetime] | None = None,
        entities: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list[Turn]:
        """Store messages at the end of a session, index them, and fold what left the window.

        The messages are written to the store before any model work, so a failing embedding
        model or summarizer never loses them: embedding is retried on the next call, a failed
        summary batch after a back-off.

        Args:
            session_id: The conversation.
            messages: LangChain messages, oldest first.
            user_id: The user the session belongs to (a session has at most one).
            timestamp: When the messages were said: ``None`` for now, one datetime for all of
                them, or one per message (for importing old transcripts). Naive means UTC.
            entities: Facts from the caller's own NLU, e.g. ``{"Ana": {"allergy": "peanuts"}}``,
                attributed to the last user message of the call.

        Returns:
            The stored turns with their ids.

        Raises:
            InvalidInputError: A bad id, message, timestamp or entities argument; nothing stored.
            SessionOwnershipError: The session belongs to another user; nothing stored.
            StoreError: The store failed; the turns were not acknowledged.
        """
        job = self._prepare_add(session_id, messages, user_id, timestamp, entities)
        if job is None:
            return []
        turns, window_start = self._write(job)
        if self.config.background:
            self._fold_in_background(job.session_id)
        else:
            self._fold_session(job.session_id, window_start)
        return turns

    async def aadd_message(
        self,
        session_id: str,
        message: BaseMessage,
        *,
        user_id: str | None = None,
        timestamp: datetime | None = None,
        entities: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Turn:
        """Async twin of :meth:`add_message`."""
        turns = await self.aadd_messages(
            session_id, [message], user_id=user_id, timestamp=timestamp, entities=entities
        )
        return turns[0]

    async def aadd_messages(
        self,
        session_id: str,
        messages: Sequence[BaseMessage],
        *,
        user_id: str | None = None,
        timestamp: datetime | Sequence[datetime] | None = None,
        entities: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list[Turn]:
        """Async twin of :meth:`add_messages`.

        Store, embedding and index work run in the default executor; the summarizer is awaited
        with ``ainvoke``.
        """
        job = self._prepare_add(session_id, messages, user_id, timestamp, entities)
        if job is None:
            return []
        turns, window_start = await asyncio.to_thread(self._write, job)
        if self.config.background:
            self._fold_in_background(job.session_id)
        else:
            await self._afold_session(job.session_id, window_start)
        return turns

    def _prepare_add(
        self,
        session_id: object,
        messages: object,
        user_id: object,
        timestamp: datetime | Sequence[datetime] | None,
        entities: Mapping[str, Mapping[str, Any]] | None,
    ) -> _AddJob | None:
        """Check every argument before anything is written."""
        session = check_id(session_id, "session_id")
        user = check_optional_id(user_id, "user_id")
        drafts = prepare_drafts(messages, timestamp, self.config.max_message_chars)
        mentions: list[EntityMention] = []
        if entities is not None:
            when = drafts[-1].timestamp if drafts else datetime.now(UTC)
            mentions = mentions_from_mapping(entities, turn_id=None, timestamp=when)
        if self.redactor is not None and self.redactor.applies_to("persist"):
            redact = self.redactor.redact
            drafts = [
                TurnDraft(self.redactor.redact_message(d.message), redact(d.text), d.timestamp)
                for d in drafts
            ]
            mentions = [
                replace(
                    m, name=redact(m.name), facts={redact(k): redact(v) for k, v in m.facts.items()}
                )
                for m in mentions
            ]
        if not drafts:
            return None
        return _AddJob(session, user, drafts, mentions)

    def _write(self, job: _AddJob) -> tuple[list[Turn], int | None]:
        """Store, index and embed the job's turns; return them and the window's first id."""
        index = self._index_for(job.session_id)
        with index.lock:
            turns = self.store.append_turns(job.session_id, job.drafts, user_id=job.user_id)
            # The turns are stored and acknowledged from here on: a failure below is logged and
            # made up for later (indexing on the next call, folding on the next trigger), never
            # raised, so a caller never stores the same turns twice by retrying.
            if job.mentions:
                anchor = next((t for t in reversed(turns) if t.role == "human"), turns[-1])
                index.pending_mentions.extend(replace(m, turn_id=anchor.id) for m in job.mentions)
            try:
                self._merge_pending_mentions(job.session_id, index)
                count = self._catch_up(job.session_id, index)
                window = self._read_window(job.session_id, count)
                # Turns in the window are never recalled: their embedding waits for the next
                # query, which embeds them in the same model call (see _embed_pending).
                self._embed_pending(
                    job.session_id, index, limit=None, before=window[0].id if window else count
                )
            except Exception as exc:  # noqa: BLE001 - see above
                logger.warning(
                    "turns stored, but indexing them failed (retried later): %s",
                    type(exc).__name__,
                )
                return turns, None
        return turns, window[0].id if window else count

    # -- reading ----------------------------------------------------------------------------

    def build_context(
        self, session_id: str, query: str | None = None, *, user_id: str | None = None
    ) -> MemoryContext:
        """Assemble the memory for the next model call, within ``config.token_budget``.

        Args:
            session_id: The conversation.
            query: The current input, which recall searches for; ``None`` searches for the
                latest user turn of the window (reusing its stored embedding).
            user_id: When given, the session must belong to this user (or to nobody yet).

        Returns:
            The frozen context: sections, per-section tokens, recall scores, total tokens.

        Raises:
            InvalidInputError: A bad id or query.
            SessionOwnershipError: The session belongs to another user.
            StoreError: The store failed.
        """
        session, text, user = self._check_read(session_id, query, user_id)
        # Recall over-fetches by the window's size instead of excluding the window: turns the
        # budget drops from the window may then come back as recalled turns (see _assemble).
        # Without recall_k, it reads ranked turns until they would fill the whole budget (at
        # most recall_candidates), and the budget decides how many make it in.
        by_budget = self.config.recall_k is None
        search_text, window, recalled = self._search(
            session,
            text,
            user,
            k=self.config.recall_candidates if by_budget else self._recall_limit(),
            exclude_window=False,
            overfetch_window=True,
            fill_chars=_CHARS_PER_TOKEN * self.config.token_budget if by_budget else None,
        )
        return self._assemble(session, search_text, window, recalled)

    def _recall_limit(self) -> int:
        """How many turns recall returns unless told otherwise."""
        return DEFAULT_RECALL_K if self.config.recall_k is None else self.config.recall_k

    async def abuild_context(
        self, session_id: str, query: str | None = None, *, user_id: str | None = None
    ) -> MemoryContext:
        """Async twin of :meth:`build_context` (runs in the default executor)."""
        self._check_read(session_id, query, user_id)
        return await asyncio.to_thread(self.build_context, session_id, query, user_id=user_id)

    def recall(
        self,
        session_id: str,
        query: str,
        *,
        k: int | None = None,
        user_id: str | None = None,
        exclude_window: bool = False,
    ) -> list[RecalledTurn]:
        """The earlier turns that best match ``query``, best first, with their scores.

        This is the recall step of :meth:`build_context` on its own, for callers composing
        their own prompts (see :meth:`as_retriever`). Turn texts are returned whole.

        Args:
            session_id: The conversation.
            query: What to search for.
            k: How many turns at most (default ``config.recall_k``, or 8 when it is ``None``).
            user_id: When given, the session must belong to this user (or to nobody yet).
            exclude_window: Leave out the turns of the recent window.

        Raises:
            InvalidInputError: A bad id, query or ``k``.
            SessionOwnershipError: The session belongs to another user.
        """
        session, text, user = self._check_read(session_id, query, user_id)
        limit = self._recall_limit() if k is None else k
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            msg = f"k must be an integer >= 0, got {k!r}"
            raise InvalidInputError(msg)
        return self._search(session, text or "", user, k=limit, exclude_window=exclude_window)[2]

    async def arecall(
        self,
        session_id: str,
        query: str,
        *,
        k: int | None = None,
        user_id: str | None = None,
        exclude_window: bool = False,
    ) -> list[RecalledTurn]:
        """Async twin of :meth:`recall` (runs in the default executor)."""
        self._check_read(session_id, query, user_id)
        return await asyncio.to_thread(
            partial(
                self.recall, session_id, query, k=k, user_id=user_id, exclude_window=exclude_window
            )
        )

    def _search(
        self,
        session: str,
        text: str | None,
        user: str | None,
        *,
        k: int,
        exclude_window: bool,
        overfetch_window: bool = False,
        fill_chars: int | None = None,
    ) -> tuple[str, list[Turn], list[RecalledTurn]]:
        """Catch up the session's index and recall for ``text`` (``None``: the latest user turn).

        With ``fill_chars``, each session's ranked turns are read only until their texts (cut
        to ``recall_max_chars``) hold that many characters; ``k`` bounds them still.

        Returns:
            The text searched for, the recent window, and the recalled turns.
        """
        owner = self._check_owner(session, user)
        index = self._index_for(session)
        with index.lock:
            count = self._catch_up(session, index)
            self._embed_pending(session, index, query=text)
            window = self._read_window(session, count)
            vector = None
            if text is None:
                latest = _latest_user_turn(window)
                text = latest.text if latest else ""
                vector = index.vector(latest.id) if latest else None
            if vector is None:
                vector = self._query_vector(text)
            exclude = {turn.id for turn in window} if exclude_window else set()
            if overfetch_window:
                k += len(window)
            recalled = self._recall_in(
                session, index, text, vector, k=k, exclude=exclude, fill_chars=fill_chars
            )
        if self.config.recall_scope == "user" and owner is not None:
            for other in self.store.list_sessions(owner):
                if other != session:
                    other_index = self._index_for(other)
                    with other_index.lock:
                        self._catch_up(other, other_index)
                        # its last window may still wait for a vector (once per session)
                        self._embed_pending(other, other_index)
                        recalled += self._recall_in(
                            other,
                            other_index,
                            text,
                            vector,
                            k=k,
                            exclude=set(),
                            fill_chars=fill_chars,
                        )
            recalled.sort(key=lambda item: item.score, reverse=True)
            recalled = recalled[:k]
        return text, window, recalled

    def _recall_in(
        self,
        session: str,
        index: SessionIndex,
        text: str,
        vector: np.ndarray | None,
        *,
        k: int,
        exclude: set[int],
        fill_chars: int | None = None,
    ) -> list[RecalledTurn]:
        """Recall from one session's index (caller holds ``index.lock``).

        Turns are read best first; with ``fill_chars``, reading stops once the turns read hold
        that many characters (each text counted up to ``recall_max_chars``).
        """
        hits = index.search(
            text,
            vector,
            k=k,
            candidates=self.config.recall_candidates,
            dense_weight=self.config.dense_weight,
            exclude=exclude,
        )
        if fill_chars is None:
            turns = self.store.get_turns_by_ids(session, [h.turn_id for h in hits])
        else:
            turns, chars, read = [], 0, 0
            while read < len(hits) and chars < fill_chars:
                batch = hits[read : read + _RECALL_BATCH]
                found = self.store.get_turns_by_ids(session, [h.turn_id for h in batch])
                turns += found
                limit = self.config.recall_max_chars
                chars += sum(min(len(t.text), limit) + _LINE_CHARS for t in found)
                read += len(batch)
            hits = hits[:read]
        by_id = {t.id: t for t in turns}
        return [
            RecalledTurn(by_id[h.turn_id], h.score, h.dense_score, h.lexical_score)
            for h in hits
            if h.turn_id in by_id
        ]

    def _check_read(
        self, session_id: object, query: object, user_id: object
    ) -> tuple[str, str | None, str | None]:
        return (
            check_id(session_id, "session_id"),
            check_query(query),
            check_optional_id(user_id, "user_id"),
        )

    def _check_owner(self, session_id: str, user_id: str | None) -> str | None:
        """Refuse a session owned by someone else; return the session's user (or ``user_id``)."""
        owner = self.store.session_user(session_id)
        if user_id is not None and owner is not None and owner != user_id:
            msg = f"session {session_id!r} belongs to another user"
            raise SessionOwnershipError(msg)
        return owner or user_id

    def _assemble(
        self, session_id: str, query: str, window: list[Turn], found: list[RecalledTurn]
    ) -> MemoryContext:
        """Fit the sections into the budget.

        ``found`` holds the best recall hits including window turns. They are first offered
        without the window's turns; if the budget then leaves window turns out, those become
        recallable and the fit is repeated, so no turn falls between window and recall.
        """
        limit = self.config.recall_max_chars
        recalled = [
            item
            if len(item.turn.text) <= limit
            else replace(item, turn=replace(item.turn, text=shorten(item.turn.text, limit)))
            for item in found
        ]
        shares = shares_for_query(
            self.config.budget_shares, self.config.recall_first_shares, window, found
        )
        focus = " ".join([query, *(turn.text for turn in window)])
        entities = rank_entities(self.store.get_entities(session_id).values(), focus)
        summary = self.store.get_summary(session_id).text

        def fit(shown: Sequence[Turn]) -> FittedContext:
            keys = {(turn.session_id, turn.id) for turn in shown}
            offered = [r for r in recalled if (r.turn.session_id, r.turn.id) not in keys]
            return fit_context(
                ContextCandidates(summary, entities, offered[: self.config.recall_k], shown),
                self.config.token_budget,
                self.token_counter,
                shares,
            )

        # The window only shrinks from one fit to the next, so this ends, and no turn is ever
        # both in the window and recalled, nor dropped from one without being offered to the other.
        shown: Sequence[Turn] = window
        fitted = fit(shown)
        while len(fitted.window) < len(shown):
            shown = fitted.window
            fitted = fit(shown)
        return MemoryContext(
            session_id=session_id,
            query=query,
            summary=fitted.summary,
            entities=fitted.entities,
            recalled=fitted.recalled,
            window=fitted.window,
            section_tokens=fitted.section_tokens,
            omitted={**fitted.omitted, "window": len(window) - len(fitted.window)},
            tokens=fitted.tokens,
            token_budget=self.config.token_budget,
        )

    def _owned(self, session_id: object, user_id: object = None) -> str:
        """Check the ids and, when ``user_id`` is given, that the session is that user's."""
        session = check_id(session_id, "session_id")
        self._check_owner(session, check_optional_id(user_id, "user_id"))
        return session

    def transcript(self, session_id: str, *, user_id: str | None = None) -> list[BaseMessage]:
        """Every stored message of the session, in order, exactly as it was added.

        With ``user_id``, the session must belong to that user (or to nobody); so for
        :meth:`turns`, :meth:`latest_turns`, :meth:`summary`, :meth:`export_session` and
        :meth:`forget_session`.
        """
        return [turn.message for turn in self.turns(session_id, user_id=user_id)]

    async def atranscript(
        self, session_id: str, *, user_id: str | None = None
    ) -> list[BaseMessage]:
        """Async twin of :meth:`transcript`."""
        return [turn.message for turn in await self.aturns(session_id, user_id=user_id)]

    def latest_turns(
        self, session_id: str, count: int, *, user_id: str | None = None
    ) -> list[Turn]:
        """The last ``count`` stored turns of the session, oldest first (reads only those)."""
        session = self._owned(session_id, user_id)
        total = self.store.count_turns(session)
        return self.store.get_turns(session, max(0, total - max(0, count)), total)

    async def alatest_turns(
        self, session_id: str, count: int, *, user_id: str | None = None
    ) -> list[Turn]:
        """Async twin of :meth:`latest_turns`."""
        return await asyncio.to_thread(
            partial(self.latest_turns, session_id, count, user_id=user_id)
        )

    def turns(self, session_id: str, *, user_id: str | None = None) -> list[Turn]:
        """Every stored turn of the session (message, text, id and time), in order."""
        return self.store.get_turns(self._owned(session_id, user_id))

    async def aturns(self, session_id: str, *, user_id: str | None = None) -> list[Turn]:
        """Async twin of :meth:`turns`."""
        session = await asyncio.to_thread(self._owned, session_id, user_id)
        return await self.store.aget_turns(session)

    def summary(self, session_id: str, *, user_id: str | None = None) -> RunningSummary:
        """The session's rolling summary as stored."""
        return self.store.get_summary(self._owned(session_id, user_id))

    async def asummary(self, session_id: str, *, user_id: str | None = None) -> RunningSummary:
        """Async twin of :meth:`summary`."""
        session = await asyncio.to_thread(self._owned, session_id, user_id)
        return await self.store.aget_summary(session)

    def export_session(
        self, session_id: str, *, anonymize: bool = False, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every turn of the session as JSON-ready records, e.g. for analytics.

        Each record has ``session_id``, ``turn_id``, ``role``, ``speaker``, ``timestamp``
        (ISO 8601), ``text`` and ``message`` (LangChain's ``message_to_dict`` form).

        Args:
            session_id: The conversation.
            anonymize: Redact personal data in texts and messages (with this memory's redactor,
                or the default detectors) and replace speaker names by role labels.
            user_id: When given, the session must belong to this user (or to nobody).

        Example:
            >>> from langchain_core.messages import HumanMessage
            >>> memory = HybridMemory()
            >>> _ = memory.add_messages("s1", [HumanMessage("Mail me: ana@example.com", name="Ana")])
            >>> record = memory.export_session("s1", anonymize=True)[0]
            >>> record["speaker"], record["text"]
            ('User', 'Mail me: [REDACTED_EMAIL]')
        """
        redactor = (self.redactor or PIIRedactor()) if anonymize else None
        records = []
        for stored in self.turns(session_id, user_id=user_id):
            turn = stored
            if redactor is not None:
                message = redactor.redact_message(stored.message).model_copy(update={"name": None})
                turn = replace(stored, message=message, text=redactor.redact(stored.text))
            records.append(
                {
                    "session_id": turn.session_id,
                    "turn_id": turn.id,
                    "role": turn.role,
                    "speaker": turn.speaker,
                    "timestamp": turn.timestamp.isoformat(),
                    "text": turn.text,
                    "message": message_to_dict(turn.message),
                }
            )
        return records

    async def aexport_session(
        self, session_id: str, *, anonymize: bool = False, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Async twin of :meth:`export_session`."""
        return await asyncio.to_thread(
            partial(self.export_session, session_id, anonymize=anonymize, user_id=user_id)
        )

    # -- LangChain surfaces -----------------------------------------------------------------

    def history(
        self, session_id: str, *, user_id: str | None = None, query: str | None = None
    ) -> HybridChatMessageHistory:
        """A LangChain chat message history bound to one session.

        See :class:`~langchain_hybrid_memory.HybridChatMessageHistory`.
        """
        from langchain_hybrid_memory.chat_message_history import HybridChatMessageHistory

        return HybridChatMessageHistory(self, session_id, user_id=user_id, query=query)

    def as_retriever(
        self,
        *,
        session_id: str,
        user_id: str | None = None,
        k: int = 3,
        exclude_window: bool = False,
    ) -> HybridMemoryRetriever:
        """A LangChain retriever returning recalled turns of a session as documents."""
        from langchain_hybrid_memory.retriever import HybridMemoryRetriever

        return HybridMemoryRetriever(
            memory=self,
            session_id=check_id(session_id, "session_id"),
            user_id=check_optional_id(user_id, "user_id"),
            k=k,
            exclude_window=exclude_window,
        )

    # -- erasure ----------------------------------------------------------------------------

    def forget_session(self, session_id: str, *, user_id: str | None = None) -> ErasureReport:
        """Erase the session: turns, vectors, summary, entities, and this process's caches."""
        session = self._owned(session_id, user_id)
        self.flush()
        report = self.store.delete_session(session)
        self._drop_caches([session])
        return report

    async def aforget_session(
        self, session_id: str, *, user_id: str | None = None
    ) -> ErasureReport:
        """Async twin of :meth:`forget_session`."""
        session = await asyncio.to_thread(self._owned, session_id, user_id)
        await self.aflush()
        report = await self.store.adelete_session(session)
        self._drop_caches([session])
        return report

    def forget_user(self, user_id: str) -> ErasureReport:
        """Erase every session of the user, with everything derived from them."""
        user = check_id(user_id, "user_id")
        self.flush()
        report = self.store.delete_user(user)
        self._drop_caches(report.sessions)
        return report

    async def aforget_user(self, user_id: str) -> ErasureReport:
        """Async twin of :meth:`forget_user`."""
        user = check_id(user_id, "user_id")
        await self.aflush()
        report = await self.store.adelete_user(user)
        self._drop_caches(report.sessions)
        return report

    def _drop_caches(self, session_ids: Sequence[str]) -> None:
        with self._indexes_lock:
            for session_id in session_ids:
                self._indexes.pop(session_id, None)
                self._retry.pop(session_id, None)
        with self._vectors_lock:
            # The cache is keyed by text, not by session: clear it so no erased text lingers.
            self._vectors.clear()

    # -- lifecycle --------------------------------------------------------------------------

    def flush(self) -> None:
        """Wait until summaries folding in the background are done; embed waiting turns.

        Turns still in the recent window are embedded with the next query; ``flush`` (and
        :meth:`close`) embeds them now, many sessions per model call, so another process finds
        their vectors stored.
        """
        while self._pending_folds:
            for future in list(self._pending_folds):
                future.result()
        self._embed_all_waiting()

    async def aflush(self) -> None:
        """Async twin of :meth:`flush`."""
        while self._pending_folds:
            await asyncio.gather(*(asyncio.wrap_future(f) for f in list(self._pending_folds)))
        await asyncio.to_thread(self.flush)

    def close(self) -> None:
        """Wait for background work, then close the store."""
        self.flush()
        if self._background is not None:
            self._background.shutdown(wait=True)
            self._background = None
        self.store.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        await self.aflush()
        await asyncio.to_thread(self.close)

    def __enter__(self) -> HybridMemory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- indexes ----------------------------------------------------------------------------

    def _index_for(self, session_id: str) -> SessionIndex:
        """The session's index from the bounded cache (created empty; filled by catch-up)."""
        with self._indexes_lock:
            index = self._indexes.get(session_id)
            if index is None:
                index = self._indexes[session_id] = SessionIndex()
            self._indexes.move_to_end(session_id)
            while len(self._indexes) > self.config.index_cache_size:
                self._indexes.popitem(last=False)
            return index

    def _catch_up(self, session_id: str, index: SessionIndex) -> int:
        """Index turns stored since the index last looked (by this or another process).

        The first call for a session in a process loads it whole, from stored vectors, without
        embedding anything again. Caller holds ``index.lock``.

        Returns:
            The session's turn count.
        """
        count = self.store.count_turns(session_id)
        if index.indexed_through >= 0 and not self._same_session(session_id, index, count):
            logger.info("a session was erased or expired and written anew; reloading its index")
            index.reset()
        start = index.indexed_through + 1
        if start >= count:
            return count
        try:
            turns = self.store.get_turns(session_id, start)
            index.add_texts(
                [t.id for t in turns],
                [t.text for t in turns],
                speakers=[t.message.name for t in turns],
                timestamps=[t.timestamp for t in turns],
            )
            ids, vectors = self.store.get_vectors(session_id, start)
            if vectors is not None and len(ids):
                index.add_vectors(ids, vectors)
        except BaseException:
            index.reset()  # half-loaded: start over on the next call
            raise
        for turn in turns:
            if turn.text.strip() and not index.has_vector(turn.id):
                index.pending[turn.id] = turn.text
        if turns:
            index.fingerprint = _fingerprint(turns[-1])
        return max(count, index.indexed_through + 1)

    def _same_session(self, session_id: str, index: SessionIndex, count: int) -> bool:
        """Whether the stored session is still the one the index holds (one small read)."""
        if count <= index.indexed_through:
            return False
        last = self.store.get_turns(session_id, index.indexed_through, index.indexed_through + 1)
        return bool(last) and _fingerprint(last[0]) == index.fingerprint

    def _embed_pending(
        self,
        session_id: str,
        index: SessionIndex,
        *,
        limit: int | None = _MAX_CATCH_UP_EMBEDDINGS,
        before: int | None = None,
        query: str | None = None,
    ) -> None:
        """Embed turns waiting for a vector, in batches, at most ``limit`` (``None``: all).

        Args:
            session_id: The session.
            index: Its index.
            limit: Most turns embedded by this call.
            before: Embed only turns with a lower id, or whose vector is cached (the user
                message whose query was just embedded); the rest wait for a later call.
            query: A query about to be embedded: with symmetric embeddings it rides in the
                first batch (one model call instead of two) and lands in the vector cache.

        On failure they keep waiting (logged, not raised). Caller holds ``index.lock``.
        """
        done = 0
        extra = [query] if query and query.strip() and self.config.symmetric_embeddings else []
        while index.pending and (limit is None or done < limit):
            size = (
                _MAX_CATCH_UP_EMBEDDINGS if limit is None else min(_MAX_CATCH_UP_EMBEDDINGS, limit)
            )
            ids = [
                turn_id
                for turn_id in sorted(index.pending)
                if before is None or turn_id < before or self._is_cached(index.pending[turn_id])
            ][:size]
            if not ids:
                return
            try:
                vectors = self._embed_texts([index.pending[i] for i in ids] + extra)
                extra = []
                self._store_vectors(session_id, index, ids, vectors[: len(ids)])
            except Exception as exc:  # noqa: BLE001 - a model or store fault must not lose the turn
                logger.warning(
                    "embedding %d turn(s) of a session failed, will retry: %s",
                    len(ids),
                    type(exc).__name__,
                )
                return
            done += len(ids)

    def _store_vectors(
        self, session_id: str, index: SessionIndex, ids: list[int], vectors: np.ndarray
    ) -> None:
        """Store and index the vectors of waiting turns. Caller holds ``index.lock``.

        Raises:
            EmbeddingError: The vectors' dimension is not the session's.
            StoreError: The store failed; the turns keep waiting.
        """
        if index.dimension is not None and vectors.shape[1] != index.dimension:
            msg = (
                f"the embeddings return dimension {vectors.shape[1]}, the session was "
                f"embedded with {index.dimension}"
            )
            raise EmbeddingError(msg)
        self.store.put_vectors(session_id, ids, vectors)
        index.add_vectors(ids, vectors)
        for turn_id in ids:
            index.pending.pop(turn_id, None)

    def _embed_all_waiting(self) -> None:
        """Embed the turns waiting in every loaded session, many sessions per model call.

        A fault is logged and the turns keep waiting (a later call embeds them).
        """
        with self._indexes_lock:
            waiting = [(sid, index) for sid, index in self._indexes.items() if index.pending]
        queue: list[tuple[str, SessionIndex, int, str]] = []
        for session_id, index in waiting:
            with index.lock:
                queue += [(session_id, index, i, text) for i, text in sorted(index.pending.items())]
        for start in range(0, len(queue), _MAX_CATCH_UP_EMBEDDINGS):
            chunk = queue[start : start + _MAX_CATCH_UP_EMBEDDINGS]
            try:
                vectors = self._embed_texts([text for *_, text in chunk])
            except Exception as exc:  # noqa: BLE001 - the turns keep waiting
                logger.warning("embedding waiting turns failed, will retry: %s", type(exc).__name__)
                return
            rows: dict[str, list[int]] = {}  # chunk rows by session
            for row, (session_id, *_) in enumerate(chunk):
                rows.setdefault(session_id, []).append(row)
            for session_id, picked in rows.items():
                index = chunk[picked[0]][1]
                with index.lock:  # a query may have embedded some meanwhile, or erased them
                    keep = [r for r in picked if index.pending.get(chunk[r][2]) == chunk[r][3]]
                    if not keep:
                        continue
                    try:
                        self._store_vectors(
                            session_id, index, [chunk[r][2] for r in keep], vectors[keep]
                        )
                    except Exception as exc:  # noqa: BLE001 - the turns keep waiting
                        logger.warning(
                            "storing %d vector(s) of a session failed, will retry: %s",
                            len(keep),
                            type(exc).__name__,
                        )

    def _embeddable(self, text: str) -> str:
        """The text as the embedding model may see it (redacted when configured)."""
        if self.redactor is not None and self.redactor.applies_to("embed"):
            return self.redactor.redact(text)
        return text

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        """Embed texts in one batch, reusing cached vectors (the query of the previous call)."""
        texts = [self._embeddable(text) for text in texts]
        cached = self._cached_vectors(texts)
        missing = [t for t, v in zip(texts, cached, strict=True) if v is None]
        if missing:
            fresh = self._checked(self.embeddings.embed_documents(missing), len(missing))
            found = dict(zip(missing, fresh, strict=True))
            self._remember_vectors(found)
            cached = [v if v is not None else found[t] for t, v in zip(texts, cached, strict=True)]
        return np.stack([np.asarray(v) for v in cached])

    def _query_vector(self, text: str) -> np.ndarray | None:
        """The query embedding (cached: the next stored user turn reuses it); ``None`` on failure."""
        if not text.strip():
            return None
        text = self._embeddable(text)
        symmetric = self.config.symmetric_embeddings
        cached = self._cached_vectors([text])[0] if symmetric else None
        if cached is not None:
            return cached
        try:
            vector: np.ndarray = self._checked([self.embeddings.embed_query(text)], 1)[0]
        except Exception as exc:  # noqa: BLE001 - recall falls back to lexical search
            logger.warning(
                "embedding the query failed, recalling by words only: %s", type(exc).__name__
            )
            return None
        if symmetric:
            self._remember_vectors({text: vector})
        return vector

    @staticmethod
    def _checked(vectors: object, expected: int) -> np.ndarray:
        try:
            matrix = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            msg = "the embeddings returned something that is not a list of vectors"
            raise EmbeddingError(msg) from exc
        if matrix.ndim != 2 or matrix.shape[0] != expected or not np.isfinite(matrix).all():
            msg = f"the embeddings returned shape {matrix.shape} for {expected} text(s)"
            raise EmbeddingError(msg)
        return normalize_rows(matrix)

    def _is_cached(self, text: str) -> bool:
        """Whether ``text`` has a vector in the cache (storing it costs no model call)."""
        key = self._embeddable(text)
        with self._vectors_lock:
            return key in self._vectors

    def _cached_vectors(self, texts: list[str]) -> list[np.ndarray | None]:
        with self._vectors_lock:
            found = [self._vectors.get(text) for text in texts]
            for text, vector in zip(texts, found, strict=True):
                if vector is not None:
                    self._vectors.move_to_end(text)
            return found

    def _remember_vectors(self, vectors: Mapping[str, np.ndarray]) -> None:
        size = self.config.embedding_cache_size
        if size == 0:
            return
        with self._vectors_lock:
            for text, vector in vectors.items():
                self._vectors[text] = vector
                self._vectors.move_to_end(text)
            while len(self._vectors) > size:
                self._vectors.popitem(last=False)

    def _read_window(self, session_id: str, count: int) -> list[Turn]:
        """The recent window, read from the tail of the session (never the whole session)."""
        span = self.config.window_turns + _WINDOW_SLACK
        while True:
            start = max(0, count - span)
            tail = self.store.get_turns(session_id, start, count)
            first = window_start_index(tail, self.config.window_turns)
            if first > 0 or start == 0 or not tail or tail[0].role != "tool":
                return tail[first:]
            span *= 2

    # -- summary and entities ---------------------------------------------------------------

    def _merge_pending_mentions(self, session_id: str, index: SessionIndex) -> None:
        """Merge the caller's entity facts waiting on the index (kept there until merged)."""
        if index.pending_mentions:
            self._merge_entities(session_id, index.pending_mentions)
            index.pending_mentions.clear()

    def _merge_entities(self, session_id: str, mentions: Sequence[EntityMention]) -> None:
        changed = merge_mentions(self.store.get_entities(session_id), mentions)
        if changed:
            self.store.put_entities(session_id, list(changed.values()))

    def _next_fold(self, session_id: str, window_start: int | None) -> _FoldJob | None:
        """The next full batch waiting for the summarizer, unless a retry back-off is running."""
        state = self._retry.get(session_id)
        if state is not None and time.monotonic() < state.not_before:
            return None
        if window_start is None:
            window = self._read_window(session_id, self.store.count_turns(session_id))
            window_start = window[0].id if window else 0
        summary = self.store.get_summary(session_id)
        first = summary.through_turn + 1
        stop = min(window_start, first + self.config.summary_batch)
        if stop <= first:
            return None
        counts = self._evicted_token_counts(session_id, first, stop)
        size = full_batch_length(
            counts, self.config.summary_batch, self.config.summary_batch_tokens
        )
        if size == 0:
            return None
        turns = self.store.get_turns(session_id, first, first + size)
        if self.redactor is not None and self.redactor.applies_to("summarize"):
            turns = [replace(t, text=self.redactor.redact(t.text)) for t in turns]
        return _FoldJob(session_id, summary, turns)

    def _evicted_token_counts(self, session_id: str, first: int, stop: int) -> list[int]:
        """Tokens of the evicted turns ``first..stop-1`` waiting for the summarizer.

        Counts are kept with the session's index, so each add reads only the turns that left
        the window since the last call (never the whole backlog again). Called under the
        session's fold lock.
        """
        if self.config.summary_batch_tokens is None:
            return [0] * (stop - first)
        known = self._index_for(session_id).evicted_tokens
        for turn_id in [turn_id for turn_id in known if turn_id < first]:
            del known[turn_id]  # summarized meanwhile (here or by another writer)
        unread = first + len(known)
        if unread < stop:
            for turn in self.store.get_turns(session_id, unread, stop):
                known[turn.id] = text_tokens(self.token_counter, turn.text)
        return [known[turn_id] for turn_id in range(first, stop) if turn_id in known]

    def _commit_fold(
        self, job: _FoldJob, update: SummaryUpdate, extracted: Sequence[EntityMention]
    ) -> bool:
        """Write the folded summary (compare-and-set) and the batch's entities."""
        new = RunningSummary(
            text=update.summary,
            through_turn=job.turns[-1].id,
            version=job.summary.version + 1,
            updated_at=datetime.now(UTC),
        )
        if not self.store.compare_and_set_summary(job.session_id, job.summary.version, new):
            logger.info("another writer folded this batch first; keeping its summary")
            return False
        mentions = [*update.mentions, *extracted]
        if mentions:
            with self._index_for(job.session_id).lock:  # not racing add_messages(entities=...)
                self._merge_entities(job.session_id, mentions)
        self._retry.pop(job.session_id, None)
        return True

    def _fold_failed(self, session_id: str, exc: BaseException) -> None:
        state = self._retry.setdefault(session_id, _RetryState())
        delay = min(
            self.config.summary_retry_seconds * 2**state.failures,
            self.config.summary_retry_max_seconds,
        )
        state.failures += 1
        state.not_before = time.monotonic() + delay
        logger.warning(
            "summarizing a batch failed (attempt %d), turns kept, retry in %.0fs: %s",
            state.failures,
            delay,
            type(exc).__name__,
        )

    def _fold_lock(self, session_id: str) -> threading.Lock:
        """The session's folding lock; it lives with the session's cached index."""
        return self._index_for(session_id).fold_lock

    def _fold_session(self, session_id: str, window_start: int | None = None) -> None:
        """Fold every full batch that left the window, one summarizer call per batch.

        Any fault (summarizer, extractor or store) leaves the batch pending, is logged, and
        backs off; it is never raised, because the turns were already stored.
        """
        lock = self._fold_lock(session_id)
        if not lock.acquire(blocking=False):
            return  # another thread is folding this session
        try:
            while (job := self._next_fold(session_id, window_start)) is not None:
                update = self.summarizer.fold(job.summary.text, job.turns)
                extracted = (
                    self.entity_extractor.extract(job.turns) if self.entity_extractor else []
                )
                if not self._commit_fold(job, update, extracted):
                    return
        except Exception as exc:  # noqa: BLE001 - the batch stays pending
            self._fold_failed(session_id, exc)
        finally:
            lock.release()

    async def _afold_session(self, session_id: str, window_start: int | None = None) -> None:
        """Async twin of :meth:`_fold_session`."""
        lock = self._fold_lock(session_id)
        if not lock.acquire(blocking=False):
            return
        try:
            while (
                job := await asyncio.to_thread(self._next_fold, session_id, window_start)
            ) is not None:
                update = await self.summarizer.afold(job.summary.text, job.turns)
                extracted = (
                    await self.entity_extractor.aextract(job.turns) if self.entity_extractor else []
                )
                if not await asyncio.to_thread(self._commit_fold, job, update, extracted):
                    return
        except Exception as exc:  # noqa: BLE001 - the batch stays pending
            self._fold_failed(session_id, exc)
        finally:
            lock.release()

    def _fold_in_background(self, session_id: str) -> None:
        if self._background is None:
            self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hybrid-fold")
        future = self._background.submit(self._fold_session, session_id)
        self._pending_folds.add(future)
        future.add_done_callback(self._pending_folds.discard)


@dataclass(frozen=True)
class _AddJob:
    """Checked arguments of one add_messages call."""

    session_id: str
    user_id: str | None
    drafts: list[TurnDraft]
    mentions: list[EntityMention]


def _fingerprint(turn: Turn) -> tuple[str, int]:
    return turn.timestamp.isoformat(), hash(turn.text)


def _latest_user_turn(window: Sequence[Turn]) -> Turn | None:
    for turn in reversed(window):
        if turn.role == "human" and turn.text.strip():
            return turn
    return None
