"""HybridMemory: the engine that combines window, summary, entities and recall.

It checks arguments, orders the steps and documents the public methods; it owns no algorithm.
Each step is written once, as a plan (:mod:`langchain_hybrid_memory._plans`), which the sync
methods run with blocking calls and their async twins on the event loop, with the stores' async
clients; CPU-bound work (embedding, FAISS, the budget) runs in a worker thread there. Where each
concept lives: per-session state in :mod:`~langchain_hybrid_memory._sessions`, embedding in
:mod:`~langchain_hybrid_memory._indexing`, summary folding in
:mod:`~langchain_hybrid_memory._folding`, recall in :mod:`~langchain_hybrid_memory._recall`,
the budget in :mod:`~langchain_hybrid_memory.budget`, persistence in
:mod:`~langchain_hybrid_memory.stores` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import faiss
from langchain_core.messages import message_to_dict
from langchain_core.messages.utils import count_tokens_approximately

from langchain_hybrid_memory._folding import Folder
from langchain_hybrid_memory._indexing import Indexer
from langchain_hybrid_memory._inputs import (
    check_count,
    check_id,
    check_optional_id,
    check_query,
    check_timestamp,
    prepare_drafts,
)
from langchain_hybrid_memory._plans import (
    Call,
    arun_calls,
    cpu,
    light,
    run_calls,
    twin,
    while_waiting,
)
from langchain_hybrid_memory._recall import CATCH_UP, Recall
from langchain_hybrid_memory._sessions import WINDOW_SLACK, Sessions, read_window
from langchain_hybrid_memory.budget import (
    ContextCandidates,
    fit_window_and_recall,
    forget_token_counts,
    shares_for_query,
    text_tokens,
)
from langchain_hybrid_memory.config import HybridMemoryConfig
from langchain_hybrid_memory.context import MemoryContext
from langchain_hybrid_memory.entities import (
    EntityExtractor,
    asks_about_the_past,
    context_view,
    fact_lines,
    fact_records,
    mentions_from_mapping,
    merge_sessions,
    rank_entities,
    with_session,
)
from langchain_hybrid_memory.errors import (
    ConfigError,
    InvalidInputError,
    SessionOwnershipError,
    StoreError,
)
from langchain_hybrid_memory.redaction import PIIRedactor
from langchain_hybrid_memory.stores import open_store
from langchain_hybrid_memory.summary import ExtractiveSummarizer, LLMSummarizer, Summarizer
from langchain_hybrid_memory.types import ErasureReport, TurnDraft

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from concurrent.futures import Future

    import numpy as np
    from langchain_core.embeddings import Embeddings
    from langchain_core.messages import BaseMessage
    from langchain_core.runnables import Runnable
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from langchain_hybrid_memory._plans import Plan
    from langchain_hybrid_memory._search import WordScores
    from langchain_hybrid_memory._sessions import SessionState
    from langchain_hybrid_memory.chat_message_history import HybridChatMessageHistory
    from langchain_hybrid_memory.langgraph_store import HybridMemoryStore
    from langchain_hybrid_memory.redaction import RedactionPoint
    from langchain_hybrid_memory.retriever import HybridMemoryRetriever
    from langchain_hybrid_memory.stores.base import MemoryStore
    from langchain_hybrid_memory.stores.encryption import EncryptionKey
    from langchain_hybrid_memory.types import (
        Appended,
        Entity,
        EntityMention,
        RecalledTurn,
        RunningSummary,
        SessionHead,
        Turn,
    )
    from langchain_hybrid_memory.window import RecentTurns

__all__ = ["HybridMemory"]

logger = logging.getLogger(__name__)

#: Contexts with fewer candidate turns are fitted in place by async callers (see ``light``).
LIGHT_FIT_CANDIDATES = 40

#: Turns recall returns when ``config.recall_k`` is ``None`` and :meth:`HybridMemory.recall`
#: is not given ``k``.
DEFAULT_RECALL_K = 8
#: Characters per token assumed when reading recalled turns until they would fill the whole
#: budget (a usual figure for English; the budget then decides exactly what fits).
_CHARS_PER_TOKEN = 4
#: Times a reading step (or an erasure) starts over when the session it read was erased and
#: written again meanwhile.
_READ_ATTEMPTS = 3

_T = TypeVar("_T")


@dataclass(frozen=True)
class _AddJob:
    """Checked arguments of one add_messages call."""

    session_id: str
    user_id: str | None
    drafts: list[TurnDraft]
    mentions: list[EntityMention]


@dataclass(frozen=True)
class _Read:
    """A session as a reading step found it."""

    head: SessionHead
    owner: str | None
    state: SessionState


class HybridMemory:
    """Conversation memory that stays small and still remembers.

    One instance serves every session of a process, and any number of instances (threads,
    processes, machines) may share one store. Each turn is stored first, then embedded once and
    indexed for recall; turns that leave the recent window are folded into a rolling summary a
    batch at a time. :meth:`build_context` assembles summary, entities, recalled turns and the
    recent window within the token budget.

    Args:
        store: A :class:`~langchain_hybrid_memory.stores.MemoryStore` or a store URL
            (``"memory://"``); default: in this process's memory.
        llm: Any LangChain runnable taking a prompt string (chat model, LLM, LCEL chain) used to
            summarize and extract entities; ``None`` uses the offline extractive summarizer.
        embeddings: Any LangChain ``Embeddings``, or the name of a packaged one (see
            :data:`~langchain_hybrid_memory.embeddings.EMBEDDINGS`); ``None`` uses
            ``"minilm-onnx-int8"``: the local all-MiniLM-L6-v2 on ONNX Runtime.
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
        embeddings: Embeddings | str | None = None,
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
        if embeddings is None or isinstance(embeddings, str):
            from langchain_hybrid_memory.embeddings import DEFAULT_EMBEDDINGS, embeddings_named

            embeddings = embeddings_named(embeddings or DEFAULT_EMBEDDINGS)
        self.embeddings = embeddings
        self.token_counter = token_counter or count_tokens_approximately
        self.entity_extractor = entity_extractor
        self.summarizer = summarizer or self._default_summarizer()
        count_text = partial(text_tokens, self.token_counter)
        config = self.config
        self._indexer = Indexer(
            self.store,
            embeddings,
            symmetric=config.symmetric_embeddings,
            cache_size=config.embedding_cache_size,
            redact=self._redaction("embed"),
            background=config.embed_in_background,
        )
        self._sessions = Sessions(
            self.store,
            capacity=config.index_cache_size,
            keep_roles=config.window_turns + 2 * WINDOW_SLACK,
            count_text=None if config.summary_batch_tokens is None else count_text,
            count_ahead=config.summary_batch,
            window_turns=config.window_turns,
            unembedded=self._indexer.enqueue,
            recalls=config.recalls if config.exclude_tool_results else None,
        )
        self._folder = Folder(
            self.store,
            self._sessions,
            self.summarizer,
            entity_extractor,
            config,
            count_text=count_text,
            redact=self._redaction("summarize"),
        )
        self._recall = Recall(self.store, self._sessions, self._indexer, config)
        self._indexer.start_background(self._sessions.cached, self._sessions.forget)

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

    def _redaction(self, point: RedactionPoint) -> Callable[[str], str] | None:
        """The redaction to apply at ``point``, if the memory redacts there."""
        redactor = self.redactor
        return redactor.redact if redactor is not None and redactor.applies_to(point) else None

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

        The messages, and the caller's entity facts, are written to the store in one atomic
        write before any model work, so a failing embedding model or summarizer never loses
        them: embedding is retried on the next call, a failed summary batch after a back-off.

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
            InvalidInputError: A bad id, message, timestamp or entities argument (also:
                entities with no message to attribute them to); nothing stored.
            SessionOwnershipError: The session belongs to another user; nothing stored.
            StoreError: The store failed; nothing was stored (neither turns nor entities).
        """
        job = self._prepare_add(session_id, messages, user_id, timestamp, entities)
        return [] if job is None else run_calls(self._add(job))

    async def aadd_messages(
        self,
        session_id: str,
        messages: Sequence[BaseMessage],
        *,
        user_id: str | None = None,
        timestamp: datetime | Sequence[datetime] | None = None,
        entities: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list[Turn]:
        """Async twin of :meth:`add_messages`."""
        job = self._prepare_add(session_id, messages, user_id, timestamp, entities)
        return [] if job is None else await arun_calls(self._add(job))

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
            if mentions and not drafts:
                msg = "entities need at least one message to be attributed to; nothing stored"
                raise InvalidInputError(msg)
        if self.redactor is not None and self.redactor.applies_to("persist"):
            redact = self.redactor.redact
            drafts = [
                TurnDraft(self.redactor.redact_message(d.message), redact(d.text), d.timestamp)
                for d in drafts
            ]
            mentions = self._redacted(mentions)
        if not drafts:
            return None
        # the caller's facts belong to the last user message of the call
        anchor = next(
            (i for i in range(len(drafts) - 1, -1, -1) if drafts[i].message.type == "human"),
            len(drafts) - 1,
        )
        said_at = drafts[anchor].timestamp
        mentions = [dataclasses.replace(m, turn_id=anchor, timestamp=said_at) for m in mentions]
        return _AddJob(session, user, drafts, mentions)

    def _redacted(self, mentions: Sequence[EntityMention]) -> list[EntityMention]:
        """Mentions as they may be stored: through the redactor when it applies to storage."""
        if self.redactor is None or not self.redactor.applies_to("persist"):
            return list(mentions)
        redact = self.redactor.redact
        return [
            dataclasses.replace(
                m,
                name=redact(m.name),
                facts={redact(k): None if v is None else redact(v) for k, v in m.facts.items()},
            )
            for m in mentions
        ]

    def remember(
        self,
        session_id: str,
        entities: Mapping[str, Mapping[str, Any]],
        *,
        user_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Record entity facts in a session without a message (an agent's tool, an import).

        The facts merge as the caller's ``entities=`` do (``None`` retracts), said at
        ``timestamp`` (default: now) and at no turn.

        Raises:
            InvalidInputError: Bad ids or facts, or a session with no message yet.
            SessionOwnershipError: The session belongs to another user.
        """
        run_calls(self._remember(session_id, entities, user_id, timestamp))

    async def aremember(
        self,
        session_id: str,
        entities: Mapping[str, Mapping[str, Any]],
        *,
        user_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Async twin of :meth:`remember`."""
        await arun_calls(self._remember(session_id, entities, user_id, timestamp))

    def _remember(
        self,
        session_id: object,
        entities: Mapping[str, Mapping[str, Any]],
        user_id: object,
        timestamp: datetime | None,
    ) -> Plan[Call, None]:
        when = check_timestamp(timestamp)
        mentions = self._redacted(mentions_from_mapping(entities, turn_id=None, timestamp=when))
        session, head = yield from self._owned(session_id, user_id)
        merged = head.exists and (
            yield twin(
                self.store, "merge_entities", session, mentions, incarnation=head.incarnation
            )
        )
        if not merged:
            msg = f"session {session!r} has no message yet: facts are recorded in a session"
            raise InvalidInputError(msg)

    def _add(self, job: _AddJob) -> Plan[Call, list[Turn]]:
        """Store, then index and embed, then fold."""
        appended: Appended = yield twin(
            self.store,
            "append_turns",
            job.session_id,
            job.drafts,
            user_id=job.user_id,
            mentions=job.mentions,
        )
        # Acknowledged from here on: a failure below is logged and made up for later (indexing
        # on the next call, folding on the next trigger), never raised, so a caller never
        # stores the same turns twice by retrying.
        state: SessionState | None = None
        window_start: int | None = None
        try:
            state, window_start = yield from self._index(job.session_id, appended)
        except Exception as exc:  # noqa: BLE001 - see above
            logger.warning(
                "turns stored, but indexing them failed (retried later): %s", type(exc).__name__
            )
        if self.config.background:
            self._folder.submit(job.session_id)
        else:
            yield from self._folder.fold(job.session_id, appended.head, state, window_start)
        return appended.turns

    def _index(self, session_id: str, appended: Appended) -> Plan[Call, tuple[SessionState, int]]:
        """Index appended turns; embed those that left the window. Returns the window's start."""
        head = appended.head
        state = self._sessions.state(session_id, head.incarnation or "")
        added = state.add_turns(appended.turns, count_from=head.summary.through_turn + 1)
        if added is None:  # others wrote since this process last looked: read what it lacks
            state = yield from self._sessions.loaded(head, session_id)
        elif not self._indexer.background:
            self._indexer.enqueue(session_id, state.incarnation, added)
        elif not (yield from self._indexer.add(state, added)):  # the queries' vectors, at once
            self._sessions.forget([session_id])  # erased meanwhile
        window_start = yield from self._sessions.window_start(session_id, head.turn_count, state)
        # Window turns are never recalled: their vectors wait for the background thread, or
        # for the next query, which embeds them in the same model call.
        if not self._indexer.background and not (
            yield from self._indexer.store_waiting(state, before=window_start)
        ):
            self._sessions.forget([session_id])  # erased meanwhile
        yield from self._relieve()
        return state, window_start

    def _relieve(self) -> Plan[Call, None]:
        """Keep the turns waiting for a vector within their bound; wake the background thread."""
        self._sessions.forget((yield from self._indexer.relieve(self._sessions.cached)))
        self._indexer.nudge()

    # -- reading ----------------------------------------------------------------------------

    def _read(self, session_id: str, user_id: str | None) -> Plan[Call, _Read]:
        """The session's head (its owner checked) and its state, brought up to date."""
        head: SessionHead = yield twin(self.store, "head", session_id)
        owner = _check_owner(session_id, head, user_id)
        state = yield from self._sessions.loaded(head, session_id)
        yield from self._relieve()
        return _Read(head, owner, state)

    def _searched(
        self,
        read: _Read,
        window: Sequence[Turn],
        text: str | None,
        prefetched: Future[np.ndarray] | None = None,
    ) -> Plan[Call, tuple[str, np.ndarray | None]]:
        """Embed what the session waits for, with the query; the query's text and vector.

        In the background's stead, everything that waits; else only what recall searches (what
        left the window). ``text=None`` searches for the latest user turn of ``window``, with
        its stored vector. ``prefetched``: the query's request, made before the reads.
        """
        state = read.state
        before = None
        if self._indexer.background:
            before = window[0].id if window else read.head.turn_count
        riding = None if prefetched is not None else text  # else it rides with waiting turns
        waiting = self._indexer.store_waiting(state, before=before, query=riding, limit=CATCH_UP)
        if not (yield from waiting):
            self._sessions.forget([state.session_id])  # erased meanwhile
        vector = None
        if text is None:
            latest = _latest_user_turn(window)
            text = latest.text if latest else ""
            vector = state.vector(latest.id) if latest else None
        if vector is None:
            vector = yield from self._indexer.query_vector(text, state, prefetched)
        return text, vector

    def _found(
        self,
        read: _Read,
        session_id: str,
        text: str,
        vector: np.ndarray | None,
        *,
        k: int,
        exclude: set[int],
        fill_chars: int | None = None,
        words: WordScores | None = None,
    ) -> Plan[Call, list[RecalledTurn]]:
        """Recall from the session and, with ``recall_scope="user"``, the user's others."""
        found = yield from self._recall.find(
            read.state, text, vector, k=k, exclude=exclude, fill_chars=fill_chars, words=words
        )
        if self.config.recall_scope == "user" and read.owner is not None:
            found += yield from self._recall.find_elsewhere(
                read.owner, session_id, text, vector, k=k, fill_chars=fill_chars
            )
            found.sort(key=lambda item: item.score, reverse=True)
            found = found[:k]
        return found

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
        args = self._check_read(session_id, query, user_id)
        return run_calls(self._consistent(args[0], lambda: self._context(*args)))

    async def abuild_context(
        self, session_id: str, query: str | None = None, *, user_id: str | None = None
    ) -> MemoryContext:
        """Async twin of :meth:`build_context`."""
        args = self._check_read(session_id, query, user_id)
        return await arun_calls(self._consistent(args[0], lambda: self._context(*args)))

    def _context(
        self,
        session_id: str,
        query: str | None,
        user_id: str | None,
        *,
        before: int | None = None,
        budget: int | None = None,
        reserved: int = 0,
        recent: RecentTurns | None = None,
    ) -> Plan[Call, tuple[MemoryContext, str | None]]:
        """The context plan.

        ``before``: only turns before this id (the caller sends the rest itself, ``reserved``
        tokens of it); ``budget``: the budget for the context alone; ``recent``: the window's
        latest turns as the caller holds them (an agent's state), completed from the store.
        """
        config = self.config
        budget = config.token_budget if budget is None else budget
        prefetched = self._indexer.prefetch(query)  # the model embeds it during the reads
        read = yield from self._read(session_id, user_id)
        count = read.head.turn_count
        until = count if before is None else max(0, min(before, count))
        if recent is None:
            window = yield from read_window(self.store, session_id, until, config.window_turns)
        else:
            window = yield from self._completed_window(session_id, recent, count)
        # while the query's vector is on its way: what needs no vector
        entities = yield from self._entities_of(session_id, read.owner)
        words = (yield while_waiting(read.state.score_words, query)) if query else None
        text, vector = yield from self._searched(read, window, query, prefetched)
        # Recall over-fetches by the window's size instead of excluding the window: turns the
        # budget drops from the window may then come back as recalled turns. Without recall_k,
        # it reads ranked turns until they would fill the whole budget (at most
        # recall_candidates), and the budget decides how many make it in.
        by_budget = config.recall_k is None
        found = yield from self._found(
            read,
            session_id,
            text,
            vector,
            k=(config.recall_candidates if by_budget else self._recall_limit()) + len(window),
            exclude=set(range(until, count)),
            fill_chars=_CHARS_PER_TOKEN * budget if by_budget else None,
            words=words,
        )
        focus = " ".join([text, *(turn.text for turn in window)])
        shown = context_view(entities.values(), history=asks_about_the_past(text))
        shares = shares_for_query(
            config.budget_shares,
            config.recall_first_shares,
            window,
            found,
            about_someone=bool(read.state.speakers_named(text)),
        )
        small = len(found) + len(window) < LIGHT_FIT_CANDIDATES
        fitted = yield (light if small else cpu)(
            fit_window_and_recall,
            ContextCandidates(
                read.head.summary.text,
                fact_lines(rank_entities(shown, focus), focus),
                found,
                window,
            ),
            budget,
            self.token_counter,
            shares,
            recall_k=config.recall_k,
            recall_max_chars=config.recall_max_chars,
            user_first=before is not None,  # an agent step: the model gets the window as is
        )
        context = MemoryContext(
            session_id=session_id,
            query=text,
            summary=fitted.summary,
            entities=fitted.entities,
            recalled=fitted.recalled,
            window=fitted.window,
            section_tokens=fitted.section_tokens,
            omitted=fitted.omitted,
            tokens=fitted.tokens,
            token_budget=budget,
            reserved_tokens=reserved,
        )
        return context, read.head.incarnation

    def _completed_window(
        self, session_id: str, recent: RecentTurns, count: int
    ) -> Plan[Call, list[Turn]]:
        """The caller's recent turns, after the stored turns they leave room for."""
        missing = self.config.window_turns - len(recent.turns)
        if recent.stored_before is None or missing <= 0:
            return list(recent.turns[-self.config.window_turns :])
        until = max(0, min(recent.stored_before, count))
        older = yield from read_window(self.store, session_id, until, missing)
        return [*older, *recent.turns]

    def _build_step_context(
        self, session_id: str, query: str | None, user_id: str | None, **bounds: Any
    ) -> MemoryContext:
        """The memory for an agent step (see :meth:`_step_context`); for the middleware."""
        return run_calls(self._step_context(session_id, query, user_id, **bounds))

    async def _abuild_step_context(
        self, session_id: str, query: str | None, user_id: str | None, **bounds: Any
    ) -> MemoryContext:
        """Async twin of :meth:`_build_step_context`."""
        return await arun_calls(self._step_context(session_id, query, user_id, **bounds))

    def _step_context(
        self,
        session_id: str,
        query: str | None,
        user_id: str | None,
        *,
        before: int,
        reserved: int,
        recent: RecentTurns | None = None,
    ) -> Plan[Call, MemoryContext]:
        """The memory for an agent step whose own messages reach the model whole, beside it.

        The step's turns (from ``before`` on) hold ``reserved`` tokens; the context fits in what
        they leave of the budget. When they leave nothing, the memory adds nothing and says so.
        ``recent``: the turns before the step as the agent's state holds them.
        """
        args = self._check_read(session_id, query, user_id)
        room = self.config.token_budget - reserved
        if room <= 0:
            logger.warning(
                "the current step alone holds %d tokens, over the memory's token_budget of %d: "
                "the memory adds nothing to this model call",
                reserved,
                self.config.token_budget,
            )
            empty = MemoryContext(args[0], args[1] or "", "", (), (), ())
            return dataclasses.replace(
                empty, token_budget=0, reserved_tokens=reserved, crowded_out=True
            )
        step = partial(
            self._context, *args, before=before, budget=room, reserved=reserved, recent=recent
        )
        return (yield from self._consistent(args[0], step))

    def _entities_of(self, session_id: str, owner: str | None) -> Plan[Call, dict[str, Entity]]:
        """The entities a session sees: its user's (``entity_scope="user"``), else its own."""
        if self.config.entity_scope == "user" and owner is not None:
            per_session = yield twin(self.store, "get_user_entities", owner)
            if session_id not in per_session:  # not the user's yet (no owner): its own too
                own = yield twin(self.store, "get_entities", session_id)
                per_session = {**per_session, session_id: own}
            return merge_sessions(per_session)
        return with_session((yield twin(self.store, "get_entities", session_id)), session_id)

    def entities(
        self, session_id: str | None = None, *, user_id: str | None = None
    ) -> dict[str, Entity]:
        """What the memory knows about people, places and things, with each fact's history.

        The facts a context of the session (or of the user) sees: with ``entity_scope="user"``
        the facts said in any session of the user, else the session's own.

        Args:
            session_id: The session whose context's facts to return.
            user_id: The user whose facts to return; with ``session_id``, the session must
                belong to this user (or to nobody).

        Returns:
            Entities by normalized name. ``Entity.facts`` holds the current facts, each with
            its earlier values (``EntityFact.history``); ``Entity.ended`` the facts that no
            longer hold.

        Raises:
            InvalidInputError: Bad ids, or neither id given.
            SessionOwnershipError: The session belongs to another user.

        Example:
            >>> from langchain_core.messages import HumanMessage
            >>> memory = HybridMemory(embeddings=None)
            >>> _ = memory.add_message("s1", HumanMessage("I live in Porto"), user_id="ana",
            ...                        entities={"Ana": {"city": "Porto"}})
            >>> _ = memory.add_message("s2", HumanMessage("I moved to Lisbon"), user_id="ana",
            ...                        entities={"Ana": {"city": "Lisbon"}})
            >>> city = memory.entities(user_id="ana")["ana"].facts["city"]
            >>> city.value, city.session_id, [earlier.value for earlier in city.history]
            ('Lisbon', 's2', ['Porto'])
        """
        return run_calls(self._entities_plan(session_id, user_id))

    async def aentities(
        self, session_id: str | None = None, *, user_id: str | None = None
    ) -> dict[str, Entity]:
        """Async twin of :meth:`entities`."""
        return await arun_calls(self._entities_plan(session_id, user_id))

    def export_facts(
        self,
        session_id: str | None = None,
        *,
        user_id: str | None = None,
        anonymize: bool = False,
    ) -> list[dict[str, Any]]:
        """The facts :meth:`entities` returns, every value over time, as JSON-ready records.

        See :func:`~langchain_hybrid_memory.entities.fact_records` for the fields. With
        ``anonymize`` entity names are left out and values redacted (this memory's redactor, or
        the default detectors).
        """
        known = self.entities(session_id, user_id=user_id)
        return fact_records(known, redact=self._fact_redactor(known) if anonymize else None)

    async def aexport_facts(
        self,
        session_id: str | None = None,
        *,
        user_id: str | None = None,
        anonymize: bool = False,
    ) -> list[dict[str, Any]]:
        """Async twin of :meth:`export_facts`."""
        known = await self.aentities(session_id, user_id=user_id)
        return fact_records(known, redact=self._fact_redactor(known) if anonymize else None)

    def _fact_redactor(self, known: Mapping[str, Entity]) -> Callable[[str], str]:
        """Redacts fact values: personal data, the entities' names and the names facts state."""
        names = [entity.name for entity in known.values()]
        for entity in known.values():
            for attribute, fact in [*entity.facts.items(), *entity.ended.items()]:
                if "name" in attribute.casefold():  # "full name", "nickname", ...
                    names += [fact.value, *(old.value for old in fact.history)]
        return (self.redactor or PIIRedactor()).anonymizer(names).redact

    def _entities_plan(self, session_id: object, user_id: object) -> Plan[Call, dict[str, Entity]]:
        user = check_optional_id(user_id, "user_id")
        if session_id is None:
            if user is None:
                msg = "entities() needs a session_id or a user_id"
                raise InvalidInputError(msg)
            if self.config.entity_scope == "user":
                return merge_sessions((yield twin(self.store, "get_user_entities", user)))
            msg = "with entity_scope='session' facts belong to sessions: pass a session_id"
            raise InvalidInputError(msg)
        session, head = yield from self._owned(session_id, user)
        # the owner a context of the session sees (as _check_owner gives it to _context)
        return (yield from self._entities_of(session, head.user_id or user))

    def _consistent(
        self, session_id: str, step: Callable[[], Plan[Call, tuple[_T, str | None]]]
    ) -> Plan[Call, _T]:
        """Run a reading step until the session stayed one incarnation throughout.

        A step checks the session's owner on its first read (the head) and reads the rest by
        session id, so an erasure, and a new session of the same id (maybe another user's), may
        come in between. The head is read again at the end: the same incarnation means no
        erasure happened meanwhile (a new life of the session gets a new random token), so
        every read saw that one life; otherwise the step starts over, owner check included.

        Args:
            session_id: The session the step reads.
            step: Makes the step: a plan returning its result and the incarnation it started
                from (``None``: no session).

        Raises:
            StoreError: The session was erased and written again during every attempt.
        """
        for _ in range(_READ_ATTEMPTS):
            result, incarnation = yield from step()
            after: SessionHead = yield twin(self.store, "head", session_id)
            if after.incarnation == incarnation:
                return result
        msg = f"session {session_id!r} kept being erased and written again while being read"
        raise StoreError(msg)

    def _recall_limit(self) -> int:
        """How many turns recall returns unless told otherwise."""
        return DEFAULT_RECALL_K if self.config.recall_k is None else self.config.recall_k

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
        step = partial(self._recalled, session_id, query, k, user_id, exclude_window)
        return run_calls(self._consistent(check_id(session_id, "session_id"), step))

    async def arecall(
        self,
        session_id: str,
        query: str,
        *,
        k: int | None = None,
        user_id: str | None = None,
        exclude_window: bool = False,
    ) -> list[RecalledTurn]:
        """Async twin of :meth:`recall`."""
        step = partial(self._recalled, session_id, query, k, user_id, exclude_window)
        return await arun_calls(self._consistent(check_id(session_id, "session_id"), step))

    def _recalled(
        self, session_id: str, query: str, k: int | None, user_id: str | None, exclude: bool
    ) -> Plan[Call, tuple[list[RecalledTurn], str | None]]:
        session, text, user = self._check_read(session_id, query, user_id)
        limit = self._recall_limit() if k is None else check_count(k, "k")
        read = yield from self._read(session, user)
        window: list[Turn] = []
        if exclude:
            count = read.head.turn_count
            window = yield from read_window(self.store, session, count, self.config.window_turns)
        text, vector = yield from self._searched(read, window, text or "")
        found = yield from self._found(
            read, session, text, vector, k=limit, exclude={turn.id for turn in window}
        )
        return found, read.head.incarnation

    def _check_read(
        self, session_id: object, query: object, user_id: object
    ) -> tuple[str, str | None, str | None]:
        return (
            check_id(session_id, "session_id"),
            check_query(query),
            check_optional_id(user_id, "user_id"),
        )

    def _owned(self, session_id: object, user_id: object) -> Plan[Call, tuple[str, SessionHead]]:
        """Check the ids and, when ``user_id`` is given, that the session is that user's."""
        session = check_id(session_id, "session_id")
        user = check_optional_id(user_id, "user_id")
        head: SessionHead = yield twin(self.store, "head", session)
        _check_owner(session, head, user)
        return session, head

    def transcript(self, session_id: str, *, user_id: str | None = None) -> list[BaseMessage]:
        """Every stored message of the session, in order, exactly as it was added.

        With ``user_id``, the session must belong to that user (or to nobody); so for
        :meth:`turns`, :meth:`latest_turns`, :meth:`summary`, :meth:`export_session` and
        :meth:`forget_session`. Treat the messages as read-only: the in-memory store hands out
        the objects it keeps.
        """
        return [turn.message for turn in self.turns(session_id, user_id=user_id)]

    async def atranscript(
        self, session_id: str, *, user_id: str | None = None
    ) -> list[BaseMessage]:
        """Async twin of :meth:`transcript`."""
        return [turn.message for turn in await self.aturns(session_id, user_id=user_id)]

    def turns(self, session_id: str, *, user_id: str | None = None) -> list[Turn]:
        """Every stored turn of the session (message, text, id and time), in order."""
        return run_calls(self._latest(session_id, None, user_id))

    async def aturns(self, session_id: str, *, user_id: str | None = None) -> list[Turn]:
        """Async twin of :meth:`turns`."""
        return await arun_calls(self._latest(session_id, None, user_id))

    def latest_turns(
        self, session_id: str, count: int, *, user_id: str | None = None
    ) -> list[Turn]:
        """The last ``count`` stored turns of the session, oldest first (reads only those).

        Raises:
            InvalidInputError: ``count`` is not an integer >= 0, or a bad id.
        """
        return run_calls(self._latest(session_id, check_count(count, "count"), user_id))

    async def alatest_turns(
        self, session_id: str, count: int, *, user_id: str | None = None
    ) -> list[Turn]:
        """Async twin of :meth:`latest_turns`."""
        return await arun_calls(self._latest(session_id, check_count(count, "count"), user_id))

    def _latest(
        self, session_id: str, count: int | None, user_id: str | None
    ) -> Plan[Call, list[Turn]]:
        """The last ``count`` turns (``None``: all of them)."""
        session = check_id(session_id, "session_id")
        return (yield from self._consistent(session, lambda: self._tail(session, count, user_id)))

    def _tail(
        self, session_id: str, count: int | None, user_id: str | None
    ) -> Plan[Call, tuple[list[Turn], str | None]]:
        session, head = yield from self._owned(session_id, user_id)
        total = head.turn_count
        start = 0 if count is None else max(0, total - count)
        turns: list[Turn] = yield twin(self.store, "get_turns", session, start, total)
        return turns, head.incarnation

    def summary(self, session_id: str, *, user_id: str | None = None) -> RunningSummary:
        """The session's rolling summary as stored."""
        return run_calls(self._owned(session_id, user_id))[1].summary

    async def asummary(self, session_id: str, *, user_id: str | None = None) -> RunningSummary:
        """Async twin of :meth:`summary`."""
        return (await arun_calls(self._owned(session_id, user_id)))[1].summary

    def export_session(
        self, session_id: str, *, anonymize: bool = False, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every turn of the session as JSON-ready records, e.g. for analytics.

        Each record has ``session_id``, ``turn_id``, ``role``, ``speaker``, ``timestamp``
        (ISO 8601), ``text`` and ``message`` (LangChain's ``message_to_dict`` form).

        Args:
            session_id: The conversation.
            anonymize: Redact personal data in texts and messages (with this memory's redactor,
                or the default detectors), names too (the speakers', the known entities', and
                any introduced with "I'm ..."/"my name is ...") and street addresses, and
                replace speaker names by role labels.
            user_id: When given, the session must belong to this user (or to nobody).

        Example:
            >>> from langchain_core.messages import HumanMessage
            >>> memory = HybridMemory()
            >>> _ = memory.add_messages("s1", [HumanMessage("Mail me: ana@example.com", name="Ana")])
            >>> record = memory.export_session("s1", anonymize=True)[0]
            >>> record["speaker"], record["text"]
            ('User', 'Mail me: [REDACTED_EMAIL]')
        """
        turns = self.turns(session_id, user_id=user_id)
        known = self.entities(session_id, user_id=user_id) if anonymize and turns else {}
        names = [entity.name for entity in known.values()]
        return self._records(turns, anonymize, names)

    async def aexport_session(
        self, session_id: str, *, anonymize: bool = False, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Async twin of :meth:`export_session`."""
        turns = await self.aturns(session_id, user_id=user_id)
        known = (
            list(await self.aentities(session_id, user_id=user_id)) if anonymize and turns else []
        )
        return await asyncio.to_thread(self._records, turns, anonymize, known)

    def _records(
        self, turns: Sequence[Turn], anonymize: bool, entity_names: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        redactor = None
        if anonymize:
            names = [*(t.message.name for t in turns if t.message.name), *entity_names]
            redactor = (self.redactor or PIIRedactor()).anonymizer(names)
        records = []
        for stored in turns:
            turn = stored
            if redactor is not None:
                message = redactor.redact_message(stored.message).model_copy(update={"name": None})
                turn = dataclasses.replace(
                    stored, message=message, text=redactor.redact(stored.text)
                )
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
        session_id: str | None = None,
        user_id: str | None = None,
        k: int = 3,
        exclude_window: bool = False,
        thread_id: str | None = None,
        search_kwargs: Mapping[str, Any] | None = None,
    ) -> HybridMemoryRetriever:
        """A LangChain retriever returning recalled turns of a session as documents.

        Args:
            session_id: The session to search (``thread_id``, LangGraph's name, works too).
            user_id: When given, the session must belong to this user.
            k: How many turns to return.
            exclude_window: Leave out the turns of the recent window.
            thread_id: The session, by LangGraph's name for it.
            search_kwargs: The vector-store habit: ``{"k": 2}`` (``k`` and ``exclude_window``).

        Raises:
            InvalidInputError: No session, or a ``search_kwargs`` key this retriever lacks.
        """
        from langchain_hybrid_memory.retriever import HybridMemoryRetriever

        options: dict[str, Any] = {"k": k, "exclude_window": exclude_window}
        unknown = sorted(set(search_kwargs or {}) - set(options))
        if unknown:
            msg = f"search_kwargs takes k and exclude_window, not {', '.join(map(repr, unknown))}"
            raise InvalidInputError(msg)
        options |= dict(search_kwargs or {})
        session = session_id if session_id is not None else thread_id
        if session is None:
            msg = "as_retriever needs the session to search: session_id= (or thread_id=)"
            raise InvalidInputError(msg)
        return HybridMemoryRetriever(
            memory=self,
            session_id=check_id(session, "session_id"),
            user_id=check_optional_id(user_id, "user_id"),
            k=options["k"],
            exclude_window=options["exclude_window"],
        )

    # -- erasure ----------------------------------------------------------------------------

    def forget_session(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
    ) -> ErasureReport:
        """Erase the session: turns, vectors, summary, entities, and this process's caches.

        Work other processes still hold for the session (vectors waiting to be stored, a fold
        in progress) is refused by the store when they try to write it: the session they
        computed it from is gone, even if a session of the same id is written again.

        Args:
            session_id: The session.
            user_id: When given, the session must belong to this user (or to nobody).
            checkpointer: A LangGraph checkpointer whose threads of the session are deleted
                too: the thread of the same id (the middleware's session is by default the
                run's ``thread_id``), and the threads whose checkpoints LangGraph labelled with
                this ``session_id`` (from the runs' ``configurable`` or ``metadata``). The
                report's ``threads`` names them.

        Raises:
            StoreError: The store failed, or the checkpointer failed after the memory was
                erased (the message says which).
        """
        erasure = self._forget_session(session_id, user_id)
        labels = {"session_id": session_id}
        return run_calls(self._forgotten(erasure, checkpointer, (session_id,), labels))

    async def aforget_session(
        self,
        session_id: str,
        *,
        user_id: str | None = None,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
    ) -> ErasureReport:
        """Async twin of :meth:`forget_session`."""
        erasure = self._forget_session(session_id, user_id)
        labels = {"session_id": session_id}
        return await arun_calls(self._forgotten(erasure, checkpointer, (session_id,), labels))

    def _forget_session(self, session_id: str, user_id: str | None) -> Plan[Call, ErasureReport]:
        for _ in range(_READ_ATTEMPTS):
            session, head = yield from self._owned(session_id, user_id)
            if user_id is None:
                report: ErasureReport = yield twin(self.store, "delete_session", session)
            elif not head.exists:
                return ErasureReport()  # nothing of this user's to erase (yet)
            else:
                # erase the life of the session whose owner was checked, never a new one that
                # another user's first append may create between the check and the erasure
                report = yield twin(
                    self.store, "delete_session", session, incarnation=head.incarnation
                )
            if report.sessions or user_id is None:
                self._drop([session])
                return report
        msg = f"session {session_id!r} kept being erased and written again while being erased"
        raise StoreError(msg)

    def forget_user(
        self,
        user_id: str,
        *,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        store: HybridMemoryStore | None = None,
    ) -> ErasureReport:
        """Erase every session of the user, with everything derived from them.

        As with :meth:`forget_session`, what other processes still hold for those sessions is
        refused by the store when they try to write it; with ``checkpointer``, the threads of
        the erased sessions' ids are deleted from it too, and the threads whose checkpoints
        LangGraph labelled with this ``user_id`` (from the runs' ``configurable`` or
        ``metadata``; a user given only in the run context leaves no label); with ``store`` (a
        LangGraph :class:`~langchain_hybrid_memory.HybridMemoryStore`), the user's namespaces
        (its ``user_namespaces``, else every namespace naming the user: ``("memories",
        user_id)``, ...) are deleted from it last (the report's ``items`` and ``namespaces``).

        Raises:
            ConfigError: ``store`` is not a ``HybridMemoryStore`` (nothing was erased).
        """
        erasure = self._forgotten(
            self._forget_user(user_id), checkpointer, labels={"user_id": user_id}
        )
        return run_calls(self._with_items(erasure, user_id, store))

    async def aforget_user(
        self,
        user_id: str,
        *,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        store: HybridMemoryStore | None = None,
    ) -> ErasureReport:
        """Async twin of :meth:`forget_user`."""
        erasure = self._forgotten(
            self._forget_user(user_id), checkpointer, labels={"user_id": user_id}
        )
        return await arun_calls(self._with_items(erasure, user_id, store))

    def _with_items(
        self, erasure: Plan[Call, ErasureReport], user_id: str, store: HybridMemoryStore | None
    ) -> Plan[Call, ErasureReport]:
        """Run an erasure of the user, then delete the user's namespaces from ``store``."""
        if store is not None and not callable(getattr(store, "aforget_user", None)):
            erasure.close()
            msg = (
                f"store must be a HybridMemoryStore (it finds the user's namespaces), "
                f"got {type(store).__name__}"
            )
            raise ConfigError(msg)
        report = yield from erasure
        if store is None:
            return report
        items: ErasureReport = yield twin(store, "forget_user", user_id)
        return report + items

    def _forgotten(
        self,
        erasure: Plan[Call, ErasureReport],
        checkpointer: BaseCheckpointSaver[Any] | None,
        requested: tuple[str, ...] = (),
        labels: dict[str, str] | None = None,
    ) -> Plan[Call, ErasureReport]:
        """Run an erasure, then delete the erased (or requested) sessions' threads.

        The threads are deleted from ``checkpointer`` (when given) after the memory's erasure:
        those named like the sessions, and those whose checkpoint metadata holds ``labels``;
        the report names the threads the checkpointer held.
        """
        report = yield from erasure
        if checkpointer is None:
            return report
        try:
            threads: list[str] = yield Call(
                _found_threads,
                _afound_threads,
                (checkpointer, report.sessions or requested, labels),
            )
        except Exception as exc:  # reported as a HybridMemoryError
            msg = (
                f"the memory erased {len(report.sessions)} session(s), but finding their "
                f"threads in the checkpointer failed ({type(exc).__name__})"
            )
            raise StoreError(msg) from exc
        deleted: list[str] = []
        for thread in threads:
            delete = partial(_adelete_thread, checkpointer)
            try:
                yield Call(checkpointer.delete_thread, delete, (thread,))
            except Exception as exc:  # reported as a HybridMemoryError
                msg = (
                    f"the memory erased {len(report.sessions)} session(s), but deleting thread "
                    f"{thread!r} from the checkpointer failed ({type(exc).__name__}); "
                    f"deleted: {deleted}"
                )
                raise StoreError(msg) from exc
            deleted.append(thread)
        return dataclasses.replace(report, threads=tuple(deleted))

    def _forget_user(self, user_id: str) -> Plan[Call, ErasureReport]:
        user = check_id(user_id, "user_id")
        report: ErasureReport = yield twin(self.store, "delete_user", user)
        self._drop(report.sessions)
        return report

    def _drop(self, session_ids: Sequence[str]) -> None:
        """Forget what this process keeps of erased sessions (the caches of texts included)."""
        self._sessions.forget(session_ids)
        self._indexer.forget(session_ids)
        self._folder.forget(session_ids)
        forget_token_counts()

    # -- lifecycle --------------------------------------------------------------------------

    def flush(self) -> None:
        """Wait until summaries folding in the background are done; embed waiting turns.

        Turns still in the recent window are embedded in the background (or with the next
        query); ``flush`` (and :meth:`close`) embeds what still waits now, many sessions per
        model call, so another process finds their vectors stored. Vectors of a session
        erased meanwhile are never stored.
        """
        self._folder.wait()
        waiting = self._indexer.store_all_waiting(self._sessions.cached, urgent=True)
        self._sessions.forget(run_calls(waiting))

    async def aflush(self) -> None:
        """Async twin of :meth:`flush`."""
        while running := self._folder.running():
            await asyncio.gather(*(asyncio.wrap_future(future) for future in running))
        waiting = self._indexer.store_all_waiting(self._sessions.cached, urgent=True)
        gone = await arun_calls(waiting)
        self._sessions.forget(gone)

    def close(self) -> None:
        """Wait for background work, embed what waits, then close the store."""
        self.flush()
        self._indexer.stop_background(final=True)
        self._folder.shutdown()
        self.store.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`: also closes the store's async clients of every loop."""
        await self.aflush()
        await asyncio.to_thread(partial(self._indexer.stop_background, final=True))
        await asyncio.to_thread(self._folder.shutdown)
        await self.store.aclose()

    def __enter__(self) -> HybridMemory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> HybridMemory:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _found_threads(
    checkpointer: BaseCheckpointSaver[Any], named: Sequence[str], labels: dict[str, str] | None
) -> list[str]:
    """The threads ``checkpointer`` holds, each once, in the order found.

    First those among ``named``, then those whose checkpoint metadata holds ``labels``.
    """
    found: dict[str, None] = {}
    for thread in named:
        if checkpointer.get_tuple({"configurable": {"thread_id": thread}}) is not None:
            found[thread] = None
    for checkpoint in checkpointer.list(None, filter=labels) if labels else ():
        labelled = checkpoint.config.get("configurable", {}).get("thread_id")
        if labelled is not None:
            found[str(labelled)] = None
    return list(found)


async def _afound_threads(
    checkpointer: BaseCheckpointSaver[Any], named: Sequence[str], labels: dict[str, str] | None
) -> list[str]:
    """Async twin of :func:`_found_threads` (the sync one in a worker thread if need be)."""
    found: dict[str, None] = {}
    try:
        for thread in named:
            if await checkpointer.aget_tuple({"configurable": {"thread_id": thread}}):
                found[thread] = None
        if labels:
            async for checkpoint in checkpointer.alist(None, filter=labels):
                labelled = checkpoint.config.get("configurable", {}).get("thread_id")
                if labelled is not None:
                    found[str(labelled)] = None
    except NotImplementedError:  # a sync-only checkpointer
        return await asyncio.to_thread(_found_threads, checkpointer, named, labels)
    return list(found)


async def _adelete_thread(checkpointer: BaseCheckpointSaver[Any], thread: str) -> None:
    """``adelete_thread``, or the sync one in a worker thread for a sync-only checkpointer."""
    try:
        await checkpointer.adelete_thread(thread)
    except NotImplementedError:
        await asyncio.to_thread(checkpointer.delete_thread, thread)


def _check_owner(session_id: str, head: SessionHead, user_id: str | None) -> str | None:
    """Refuse a session owned by someone else; return the session's user (or ``user_id``)."""
    if user_id is not None and head.user_id is not None and head.user_id != user_id:
        msg = f"session {session_id!r} belongs to another user"
        raise SessionOwnershipError(msg)
    return head.user_id or user_id


def _latest_user_turn(window: Sequence[Turn]) -> Turn | None:
    for turn in reversed(window):
        if turn.role == "human" and turn.text.strip():
            return turn
    return None
