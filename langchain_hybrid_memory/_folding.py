"""Fold scheduling: which turns fold into the summary next, one LLM call per batch across workers.

Turns that left the recent window wait for the summarizer until a batch is full
(:func:`~langchain_hybrid_memory.window.full_batch_length`). A worker that finds a full batch
folds it in three steps:

1. it takes the session's *fold lease* in the store (``acquire_fold``); a worker that finds the
   lease held, here or in another process, moves on: the holder folds that batch;
2. holding the lease it reads the summary again (another worker may have folded meanwhile),
   reads the batch and calls the summarizer (and the entity extractor) once;
3. it writes the summary with a compare-and-set that also merges the batch's entities and
   releases the lease, all in one atomic write, refused if the session was erased meanwhile.

A fold that fails keeps the lease for the back-off delay (``summary_retry_seconds``, doubled
after each failure up to ``summary_retry_max_seconds``), so no worker calls the LLM again
before it has passed; the turns stay stored and the batch stays pending. The lease expires by
itself (``summary_lease_seconds``), so a worker that dies mid-fold blocks nobody for long.

Locks: the back-off states and the background executor each have a lock of their own; no lock
is held across a store or LLM call (the lease, in the store, is what serializes folds).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from langchain_hybrid_memory._plans import run_calls, twin
from langchain_hybrid_memory.summary import SummaryUpdate
from langchain_hybrid_memory.types import RunningSummary
from langchain_hybrid_memory.window import full_batch_length

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from langchain_hybrid_memory._plans import Call, Plan
    from langchain_hybrid_memory._sessions import Sessions, SessionState
    from langchain_hybrid_memory.config import HybridMemoryConfig
    from langchain_hybrid_memory.entities import EntityExtractor
    from langchain_hybrid_memory.stores.base import MemoryStore
    from langchain_hybrid_memory.summary import Summarizer
    from langchain_hybrid_memory.types import EntityMention, SessionHead, Turn

__all__ = ["Folder"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Batch:
    """The next turns to fold into a session's summary."""

    summary: RunningSummary
    turns: list[Turn]


@dataclass
class _BackOff:
    failures: int = 0
    not_before: float = 0.0


class Folder:
    """Folds what left the recent window into the rolling summary, a batch per LLM call.

    Args:
        store: The store (it holds the summaries and the fold leases).
        sessions: The per-session states (where the window starts).
        summarizer: Folds a batch into the previous summary.
        extractor: Extracts a batch's entities with a call of its own (``None``: the
            summarizer's answer carries them, or nobody extracts them).
        config: The engine's settings.
        count_text: Counts a text's tokens (for batches by tokens).
        redact: Applied to the turns' texts the summarizer sees (``None``: nothing).
    """

    def __init__(
        self,
        store: MemoryStore,
        sessions: Sessions,
        summarizer: Summarizer,
        extractor: EntityExtractor | None,
        config: HybridMemoryConfig,
        *,
        count_text: Callable[[str], int],
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self.summarizer = summarizer
        self.extractor = extractor
        self._config = config
        self._count_text = count_text
        self._redact = redact
        self._back_off: dict[str, _BackOff] = {}
        self._back_off_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._running: set[Future[None]] = set()

    # -- folding ----------------------------------------------------------------------------

    def fold(
        self,
        session_id: str,
        head: SessionHead | None = None,
        state: SessionState | None = None,
        window_start: int | None = None,
    ) -> Plan[Call, None]:
        """Fold every full batch that left the window, one summarizer call per batch.

        Any fault (summarizer, extractor or store) leaves the batch pending, is logged, and
        backs off; it is never raised, because the turns are stored already.

        Args:
            session_id: The session.
            head: The session as just read (read here when ``None``).
            state: The session's cached state, whose token counts and roles spare reads.
            window_start: The id of the window's first turn, when known.
        """
        if self._backing_off(session_id):
            return
        holder = ""
        try:
            if head is None:
                head = yield twin(self._store, "head", session_id)
            while True:
                batch = yield from self._next_batch(session_id, head, state, window_start)
                if batch is None:
                    return
                incarnation = head.incarnation or ""
                holder = uuid.uuid4().hex
                leased = yield twin(
                    self._store,
                    "acquire_fold",
                    session_id,
                    incarnation,
                    holder,
                    self._config.summary_lease_seconds,
                )
                if not leased:
                    return  # another worker folds this session now (or it is gone)
                fresh = yield twin(self._store, "head", session_id)
                if fresh.incarnation != head.incarnation:
                    return  # erased meanwhile; the lease went with it
                if fresh.summary.version != head.summary.version:
                    batch = yield from self._next_batch(session_id, fresh, state, window_start)
                    if batch is None:
                        yield twin(self._store, "release_fold", session_id, holder)
                        return
                head = fresh
                summary = yield from self._fold_batch(session_id, incarnation, holder, batch)
                holder = ""
                if summary is None:
                    return  # another writer folded first, or the session is gone
                self._succeeded(session_id)
                head = replace(head, summary=summary)
        except Exception as exc:  # noqa: BLE001 - the batch stays pending
            delay = self._failed(session_id, exc)
            if holder:
                yield from self._release_after_failure(session_id, holder, delay)

    def _fold_batch(
        self, session_id: str, incarnation: str, holder: str, batch: _Batch
    ) -> Plan[Call, RunningSummary | None]:
        """One summarizer call (and extractor call), then the summary's compare-and-set.

        Turns the settings keep out (tool results) are not sent; a batch of nothing else is
        folded without a call.
        """
        shown = [turn for turn in batch.turns if self._config.recalls(turn)]
        update = SummaryUpdate(batch.summary.text)
        extracted: list[EntityMention] = []
        if shown:
            update = yield twin(self.summarizer, "fold", batch.summary.text, shown)
            if self.extractor is not None:
                extracted = yield twin(self.extractor, "extract", shown)
        new = RunningSummary(
            text=update.summary,
            through_turn=batch.turns[-1].id,
            version=batch.summary.version + 1,
            updated_at=datetime.now(UTC),
        )
        written = yield twin(
            self._store,
            "compare_and_set_summary",
            session_id,
            batch.summary.version,
            new,
            incarnation=incarnation,
            mentions=[*update.mentions, *extracted],
            holder=holder,
        )
        if not written:
            logger.info("another writer folded this batch first, or the session is gone")
            return None
        return new

    def _release_after_failure(
        self, session_id: str, holder: str, delay: float
    ) -> Plan[Call, None]:
        try:
            yield twin(self._store, "release_fold", session_id, holder, keep_seconds=delay)
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself
            logger.warning("releasing a fold lease failed: %s", type(exc).__name__)

    def _next_batch(
        self,
        session_id: str,
        head: SessionHead,
        state: SessionState | None,
        window_start: int | None,
    ) -> Plan[Call, _Batch | None]:
        """The next full batch waiting for the summarizer, or ``None``."""
        config = self._config
        if window_start is None:
            window_start = yield from self._sessions.window_start(
                session_id, head.turn_count, state
            )
        first = head.summary.through_turn + 1
        stop = min(window_start, first + config.summary_batch)
        if stop <= first:
            return None
        turns: list[Turn] | None = None
        if config.summary_batch_tokens is None:
            counts = [0] * (stop - first)
        else:
            known = None if state is None else state.token_counts(first, stop)
            if known is None:
                turns = yield twin(self._store, "get_turns", session_id, first, stop)
                known = [self._count_text(turn.text) for turn in turns]
            counts = known
        size = full_batch_length(counts, config.summary_batch, config.summary_batch_tokens)
        if size == 0:
            return None
        if turns is None:
            turns = yield twin(self._store, "get_turns", session_id, first, first + size)
        turns = turns[:size]
        if self._redact is not None:
            turns = [replace(t, text=self._redact(t.text)) for t in turns]
        return _Batch(head.summary, turns)

    # -- back-off ---------------------------------------------------------------------------

    def _backing_off(self, session_id: str) -> bool:
        with self._back_off_lock:
            state = self._back_off.get(session_id)
            return state is not None and time.monotonic() < state.not_before

    def _failed(self, session_id: str, exc: BaseException) -> float:
        config = self._config
        with self._back_off_lock:
            state = self._back_off.setdefault(session_id, _BackOff())
            delay = min(
                config.summary_retry_seconds * 2**state.failures, config.summary_retry_max_seconds
            )
            state.failures += 1
            state.not_before = time.monotonic() + delay
            failures = state.failures
        logger.warning(
            "summarizing a batch failed (attempt %d), turns kept, retry in %.0fs: %s",
            failures,
            delay,
            type(exc).__name__,
        )
        return float(delay)

    def _succeeded(self, session_id: str) -> None:
        with self._back_off_lock:
            self._back_off.pop(session_id, None)

    def forget(self, session_ids: Collection[str]) -> None:
        """Drop the back-off states of erased sessions."""
        with self._back_off_lock:
            for session_id in session_ids:
                self._back_off.pop(session_id, None)

    # -- in the background ------------------------------------------------------------------

    def submit(self, session_id: str) -> None:
        """Fold the session in the background thread (``background=True``)."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hybrid-fold")
            future = self._executor.submit(run_calls, self.fold(session_id))
            self._running.add(future)
        future.add_done_callback(self._finished)

    def _finished(self, future: Future[None]) -> None:
        with self._executor_lock:
            self._running.discard(future)

    def running(self) -> list[Future[None]]:
        """The background folds not finished yet."""
        with self._executor_lock:
            return list(self._running)

    def wait(self) -> None:
        """Wait until every background fold is done."""
        while running := self.running():
            for future in running:
                future.result()

    def shutdown(self) -> None:
        """Wait for the background folds, then stop the background thread."""
        self.wait()
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
