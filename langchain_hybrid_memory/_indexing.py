"""The embedding pipeline: turns waiting for a vector, shared model calls, the vector cache.

Every text is embedded once, in calls shared with every other request of the process
(:mod:`~langchain_hybrid_memory._batching`). A turn still in the recent window is never
recalled, so nobody waits for its vector: stored turns wait in :class:`Indexer`'s queue, and a
background thread embeds them, many sessions per call, in the batcher's background lane, then
stores their vectors (``embed_in_background``). What a context needs now (the query, and turns
that left the window while still waiting) goes in the urgent lane. Without the background
thread the waiting turns are embedded in the same model call as the session's next query, or by
``flush()``. A text embedded as a query stays in the vector cache, so the user message it
becomes is stored without a second model call.

The queue is keyed by session *and incarnation*: what waits for a session that is erased, or
erased and written again, is never stored into the new one (the store refuses vectors for
another incarnation, and the queue drops them). It lives outside the per-session cache, so
evicting a session's state drops no waiting work; it is bounded all the same
(:data:`MAX_WAITING` texts): past that, the sessions that waited longest are embedded at once.
A process that ends before its waiting turns are embedded loses nothing: the turns are stored,
and whichever process loads the session next embeds them. At interpreter exit the background
threads are stopped (their current batch finished) before the interpreter kills daemon threads.

Lock: one lock guards the queue, the vector cache and the background thread's state; it is
never held across a model call or a store call.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING

import numpy as np

from langchain_hybrid_memory._batching import BACKGROUND_BATCH, IDLE_SECONDS, batcher_for
from langchain_hybrid_memory._plans import Call, run_calls, twin
from langchain_hybrid_memory._search import normalize_rows
from langchain_hybrid_memory.errors import EmbeddingError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Sequence
    from concurrent.futures import Future

    from langchain_core.embeddings import Embeddings

    from langchain_hybrid_memory._plans import Plan
    from langchain_hybrid_memory._sessions import SessionState
    from langchain_hybrid_memory.stores.base import MemoryStore
    from langchain_hybrid_memory.types import Turn

__all__ = ["Indexer"]

logger = logging.getLogger(__name__)

#: Most texts embedded in one model call.
BATCH = 64
#: Most texts waiting for a vector in a process; past it the oldest sessions' are embedded.
MAX_WAITING = 2048
#: Longest pause of the background thread after a failure (it doubles from half a second).
MAX_BACKOFF_SECONDS = 30.0
#: How long closing waits for the background thread to finish its batch.
STOP_SECONDS = 60.0


class Indexer:
    """Turns waiting for a vector, the model calls that embed them, and the vector cache.

    Args:
        store: Where vectors are stored.
        embeddings: The LangChain embeddings.
        symmetric: The model embeds a query like a document, so a query rides in the same
            model call as the waiting turns and its vector is reused for the stored message.
        cache_size: How many recent texts keep their vector in this process.
        redact: Applied to every text before the model sees it (``None``: nothing).
        background: Embed waiting turns in a background thread (see :meth:`start_background`).
    """

    def __init__(
        self,
        store: MemoryStore,
        embeddings: Embeddings,
        *,
        symmetric: bool,
        cache_size: int,
        redact: Callable[[str], str] | None = None,
        background: bool = False,
    ) -> None:
        self._store = store
        self.embeddings = embeddings
        self.batcher = batcher_for(embeddings, _embed_rows)
        self.batcher.reserve(cache_size)
        self.background = background
        #: set by start_background: the cached state of a session's incarnation, and what to
        #: call with the sessions whose vectors the store refused
        self._state_of: Callable[[str, str], SessionState | None] | None = None
        self._gone: Callable[[list[str]], None] | None = None
        self._drainer: threading.Thread | None = None
        self._stopping = threading.Event()
        self._faults = 0  # model or store faults so far (the background thread backs off)
        self._closed = False  # closed with its memory: the background thread stays stopped
        self._async_only = False  # the embeddings' sync methods raise NotImplementedError
        _with_background.add(self)
        self._symmetric = symmetric
        self._use_cache = cache_size > 0
        self._redact = redact
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # wakes the background thread
        #: session id -> (incarnation, {turn id: text}) of turns waiting for a vector, the
        #: session that waited longest first
        self._waiting: dict[str, tuple[str, dict[int, str]]] = {}
        self._count = 0  # texts in _waiting

    # -- the queue --------------------------------------------------------------------------

    def enqueue(self, session_id: str, incarnation: str, turns: Iterable[Turn]) -> None:
        """Queue turns of one incarnation of a session for embedding."""
        items = {turn.id: turn.text for turn in turns if turn.text.strip()}
        if not items:
            return
        with self._lock:
            queued = self._waiting.get(session_id)
            if queued is None or queued[0] != incarnation:  # another life: its work is void
                self._drop(session_id)
                queued = self._waiting[session_id] = (incarnation, {})
            before = len(queued[1])
            queued[1].update(items)
            self._count += len(queued[1]) - before

    def forget(self, session_ids: Collection[str]) -> None:
        """Drop what waits for erased sessions, and the vector cache (it may hold their texts)."""
        with self._lock:
            for session_id in session_ids:
                self._drop(session_id)
        self.batcher.clear_cache()

    def _drop(self, session_id: str) -> None:
        """Forget what waits for a session. Hold the lock."""
        queued = self._waiting.pop(session_id, None)
        if queued is not None:
            self._count -= len(queued[1])

    def _take(
        self, session_id: str, incarnation: str, before: int | None, limit: int | None
    ) -> list[tuple[int, str]]:
        """Waiting turns of the session: all, or those before ``before`` or with a cached vector."""
        with self._lock:
            queued = self._waiting.get(session_id)
            if queued is None or queued[0] != incarnation:
                return []
            items = sorted(queued[1].items())
            if before is not None:
                items = [
                    (turn_id, text)
                    for turn_id, text in items
                    if turn_id < before or self._cached(text) is not None
                ]
        return items if limit is None else items[:limit]

    def _done(self, session_id: str, incarnation: str, stored: dict[int, str]) -> None:
        with self._lock:
            queued = self._waiting.get(session_id)
            if queued is None or queued[0] != incarnation:
                return
            for turn_id, text in stored.items():
                if queued[1].get(turn_id) == text:
                    del queued[1][turn_id]
                    self._count -= 1
            if not queued[1]:
                del self._waiting[session_id]

    def _void(self, session_id: str, incarnation: str) -> None:
        """Drop what waits for an incarnation that is gone."""
        with self._lock:
            queued = self._waiting.get(session_id)
            if queued is not None and queued[0] == incarnation:
                self._drop(session_id)

    # -- embedding --------------------------------------------------------------------------

    def _embeddable(self, text: str) -> str:
        return self._redact(text) if self._redact is not None else text

    def _cached(self, text: str) -> np.ndarray | None:
        """The text's vector if the batcher's cache holds it (and this memory uses it)."""
        return self.batcher.cached(self._embeddable(text)) if self._use_cache else None

    def embed(self, texts: list[str], *, urgent: bool = True) -> Plan[Call, np.ndarray]:
        """Embed texts in shared model calls, reusing cached vectors; normalized rows.

        Args:
            texts: The texts.
            urgent: Someone waits for the vectors (the batcher's urgent lane).

        Raises:
            EmbeddingError: The model answered with something other than one finite vector
                per text (any other model failure is raised as it is).
        """
        keys = [self._embeddable(text) for text in texts]
        if not self._async_only:
            batcher, options = self.batcher, {"urgent": urgent, "use_cache": self._use_cache}
            try:
                vectors: np.ndarray = yield Call(batcher.embed, batcher.aembed, (keys,), options)
            except NotImplementedError:
                # embeddings with async methods only: the batcher's threads cannot call them,
                # so async callers await them directly, and no background thread embeds
                self._async_only, self.background = True, False
            else:
                return vectors
        return _checked((yield twin(self.embeddings, "embed_documents", keys)), keys)

    def prefetch(self, text: str | None) -> Future[np.ndarray] | None:
        """Start embedding a query now, so the model runs while the store is read.

        Returns the request, for :meth:`query_vector` to wait on (it holds the vector, which a
        small cache might have let go of by then). Only with the background on: without it the
        query rides in one call with the session's waiting turns instead.
        """
        if not self.background or self._async_only or not self._symmetric:
            return None
        if text is None or not text.strip():
            return None
        return self.batcher.submit([self._embeddable(text)], urgent=True, use_cache=self._use_cache)

    def query_vector(
        self,
        text: str,
        state: SessionState | None = None,
        prefetched: Future[np.ndarray] | None = None,
    ) -> Plan[Call, np.ndarray | None]:
        """The query's vector, from the cache when it rode with the waiting turns.

        Args:
            text: The query.
            state: The session searched: with a symmetric model it keeps the vector, for the
                user message the query becomes (see :meth:`add`).
            prefetched: The request :meth:`prefetch` made for the query, if any.

        Returns ``None`` when it cannot be embedded: recall then searches by words only.
        """
        if not text.strip():
            return None
        try:
            if self._symmetric:  # a document's vector: shared calls, and the cache
                vector: np.ndarray | None = None
                if prefetched is not None:
                    try:
                        vector = (yield Call(_waited, _awaited, (prefetched,)))[0]
                    except NotImplementedError:  # async-only embeddings: embed() finds out
                        vector = None
                if vector is None:
                    vector = (yield from self.embed([text]))[0]
                if state is not None:
                    state.remember_query(self._embeddable(text), vector)
                return vector
            key = self._embeddable(text)
            vector = _checked([(yield twin(self.embeddings, "embed_query", key))], [key])[0]
        except Exception as exc:  # noqa: BLE001 - recall falls back to lexical search
            logger.warning(
                "embedding the query failed, recalling by words only: %s", type(exc).__name__
            )
            return None
        return vector

    def add(self, state: SessionState, turns: Sequence[Turn]) -> Plan[Call, bool]:
        """Store the vectors of new turns embedded already (as queries); queue the others.

        The session's latest query, and the vector cache, hold the vectors embedded already.

        Returns:
            ``False`` when the store refused the vectors (the session is gone).
        """
        session, incarnation = state.session_id, state.incarnation
        known: dict[int, str] = {}
        vectors: list[np.ndarray] = []
        for turn in turns:
            if not turn.text.strip():
                continue
            vector = state.query_vector(self._embeddable(turn.text))
            if vector is None:
                vector = self._cached(turn.text)
            if vector is not None:
                known[turn.id] = turn.text
                vectors.append(vector)
        stored: bool | None = None
        if known:
            stored = yield from self._put(session, incarnation, known, np.stack(vectors), state)
            if stored is False:
                return False
        self.enqueue(session, incarnation, [t for t in turns if not stored or t.id not in known])
        return True

    def store_waiting(
        self,
        state: SessionState,
        *,
        before: int | None = None,
        query: str | None = None,
        limit: int | None = None,
    ) -> Plan[Call, bool]:
        """Embed a session's waiting turns, store their vectors and index them.

        Args:
            state: The session's state (its incarnation is the one the vectors are for).
            before: Embed only turns with a lower id, or whose vector is cached (the user
                message just embedded as a query); the others keep waiting.
            query: A query about to be searched: with a symmetric model it rides in the first
                model call (if any turn waits) and lands in the vector cache.
            limit: Most turns embedded by this call (``None``: all, in batches).

        A model or store fault is logged and the turns keep waiting; it is never raised, as
        the turns are stored already.

        Returns:
            ``False`` when the store refused the vectors: the session is gone, or is another
            incarnation now (what waited for it is dropped).
        """
        session, incarnation = state.session_id, state.incarnation
        items = self._take(session, incarnation, before, limit)
        extra = [query] if query and query.strip() and self._symmetric else []
        for start in range(0, len(items), BATCH):
            batch = dict(items[start : start + BATCH])
            vectors = yield from self._embedded([*batch.values(), *extra], urgent=True)
            if vectors is None:
                return True
            extra = []
            stored = yield from self._put(session, incarnation, batch, vectors[: len(batch)], state)
            if stored is not True:
                return stored is None
        return True

    def store_all_waiting(
        self,
        state_of: Callable[[str, str], SessionState | None],
        *,
        at_most: int | None = None,
        urgent: bool = False,
    ) -> Plan[Call, list[str]]:
        """Embed what waits in every session, many sessions per model call, and store it.

        Args:
            state_of: The cached state of a session's incarnation, if any (its index gets the
                vectors too).
            at_most: Embed only this many texts, of the sessions that waited longest.
            urgent: Use the batcher's urgent lane (a context waits for these vectors).

        A fault is logged and the turns keep waiting.

        Returns:
            The sessions whose vectors the store refused (gone, or another incarnation).
        """
        with self._lock:
            queue = list(
                itertools.islice(
                    (
                        (session, incarnation, turn_id, text)
                        for session, (incarnation, items) in self._waiting.items()
                        for turn_id, text in sorted(items.items())
                    ),
                    at_most,
                )
            )
        gone: list[str] = []
        for start in range(0, len(queue), BATCH):
            chunk = queue[start : start + BATCH]
            found = yield from self._embedded_each([text for *_, text in chunk], urgent=urgent)
            if not found:
                return gone
            rows: dict[tuple[str, str], list[int]] = {}
            for row, (session, incarnation, _, _) in enumerate(chunk):
                if row in found:
                    rows.setdefault((session, incarnation), []).append(row)
                else:  # a text the model refuses: its session goes to the back of the queue
                    self._set_aside(session)
            for (session, incarnation), picked in rows.items():
                if session not in gone:
                    batch = {chunk[r][2]: chunk[r][3] for r in picked}
                    vectors = np.stack([found[r] for r in picked])
                    state = state_of(session, incarnation)
                    stored = yield from self._put(session, incarnation, batch, vectors, state)
                    if stored is False:
                        gone.append(session)
        return gone

    def _embedded_each(
        self, texts: list[str], *, urgent: bool
    ) -> Plan[Call, dict[int, np.ndarray]]:
        """The vectors of ``texts`` by position; when the call fails, of each text alone.

        One text the model refuses (too long for it, say) must not keep the texts embedded
        with it waiting forever: they are tried one by one, and only the refused ones are left
        out (nothing, when the model refuses them all: it is down, and the caller backs off).
        """
        vectors = yield from self._embedded(texts, urgent=urgent)
        if vectors is not None:
            return dict(enumerate(vectors))
        found: dict[int, np.ndarray] = {}
        if len(texts) == 1:
            return found
        for position, text in enumerate(texts):
            try:
                found[position] = (yield from self.embed([text], urgent=urgent))[0]
            except Exception:  # noqa: BLE001 - the failure was logged for the batch
                continue
        return found

    def _set_aside(self, session_id: str) -> None:
        """Move a session's waiting turns to the back of the queue."""
        with self._lock:
            queued = self._waiting.pop(session_id, None)
            if queued is not None:
                self._waiting[session_id] = queued

    def relieve(self, state_of: Callable[[str, str], SessionState | None]) -> Plan[Call, list[str]]:
        """Keep the queue within :data:`MAX_WAITING`: embed the longest-waiting sessions' texts.

        Returns:
            The sessions whose vectors the store refused (see :meth:`store_all_waiting`).
        """
        with self._lock:
            excess = self._count - MAX_WAITING
        if excess <= 0:
            return []
        return (yield from self.store_all_waiting(state_of, at_most=excess + BATCH))

    # -- in the background --------------------------------------------------------------------

    def start_background(
        self,
        state_of: Callable[[str, str], SessionState | None],
        gone: Callable[[list[str]], None],
    ) -> None:
        """Let :meth:`nudge` embed waiting turns in a background thread.

        Args:
            state_of: The cached state of a session's incarnation, if any.
            gone: Called with the sessions whose vectors the store refused (erased).
        """
        self._state_of, self._gone = state_of, gone

    def nudge(self) -> None:
        """Have the background thread embed what waits (started if it is not running)."""
        state_of, gone = self._state_of, self._gone
        if not self.background or state_of is None or gone is None:
            return
        with self._lock:
            if (
                not self._waiting
                or self._closed
                or self._stopping.is_set()
                or _exiting.is_set()
                or _forking.is_set()
            ):
                return
            if self._drainer is not None:
                self._work.notify()
                return
            self._drainer = threading.Thread(
                target=self._drain, args=(state_of, gone), name="hybrid-embed-waiting", daemon=True
            )
            self._drainer.start()

    def stop_background(self, *, final: bool = False) -> None:
        """Stop the background thread (what it has not embedded keeps waiting).

        Args:
            final: Its memory is closing: no background thread starts again.
        """
        with self._lock:
            self._closed = self._closed or final
            self._stopping.set()
            self._work.notify_all()
            drainer = self._drainer
        if drainer is not None and drainer is not threading.current_thread():
            drainer.join(STOP_SECONDS)
            if drainer.is_alive():
                logger.warning("the background embedding thread did not stop in time")
        self._stopping.clear()

    def _drain(
        self,
        state_of: Callable[[str, str], SessionState | None],
        gone: Callable[[list[str]], None],
    ) -> None:
        """The background thread: embed and store what waits; end after a while without."""
        pause = 0.0
        try:
            while True:
                with self._lock:
                    if not self._waiting and not self._stopping.is_set():
                        self._work.wait(IDLE_SECONDS)
                    if not self._waiting or self._stopping.is_set() or not self.background:
                        self._drainer = None  # under the lock: a nudge now starts a new one
                        return
                    faults = self._faults
                try:
                    gone(run_calls(self.store_all_waiting(state_of, at_most=BACKGROUND_BATCH)))
                except Exception as exc:  # noqa: BLE001 - the turns keep waiting
                    logger.warning("embedding in the background failed: %s", type(exc).__name__)
                    faults = -1
                with self._lock:
                    failed = self._faults != faults
                # a model or store fault leaves the turns waiting: try again later, not at once
                pause = min(MAX_BACKOFF_SECONDS, max(0.5, 2 * pause)) if failed else 0.0
                if pause:
                    self._stopping.wait(pause)
        finally:
            with self._lock:
                if self._drainer is threading.current_thread():
                    self._drainer = None

    def _fault(self) -> None:
        with self._lock:
            self._faults += 1

    def _embedded(self, texts: list[str], *, urgent: bool) -> Plan[Call, np.ndarray | None]:
        """:meth:`embed`, or ``None`` when the model fails (logged: the turns keep waiting)."""
        try:
            return (yield from self.embed(texts, urgent=urgent))
        except Exception as exc:  # noqa: BLE001 - the turns keep waiting
            logger.warning("embedding waiting turns failed, will retry: %s", type(exc).__name__)
            self._fault()
            return None

    def _put(
        self,
        session_id: str,
        incarnation: str,
        batch: dict[int, str],
        vectors: np.ndarray,
        state: SessionState | None,
    ) -> Plan[Call, bool | None]:
        """Store the vectors of some waiting turns of one session, and index them.

        Returns:
            ``True`` when stored; ``False`` when the store refused them, the session being gone
            or another incarnation (what waited for it is dropped); ``None`` when storing
            failed (logged: the turns keep waiting).
        """
        ids = list(batch)
        try:
            if state is not None:
                state.check_dimension(vectors.shape[1])
            kept = yield twin(
                self._store, "put_vectors", session_id, ids, vectors, incarnation=incarnation
            )
        except Exception as exc:  # noqa: BLE001 - the turns keep waiting
            logger.warning(
                "storing %d vector(s) of a session failed, will retry: %s",
                len(ids),
                type(exc).__name__,
            )
            self._fault()
            return None
        if not kept:
            self._void(session_id, incarnation)
            return False
        if state is not None:
            state.add_vectors(ids, vectors)
        self._done(session_id, incarnation, batch)
        return True


#: Every indexer alive, for stopping their background threads at exit.
_with_background: weakref.WeakSet[Indexer] = weakref.WeakSet()
#: Set at interpreter exit: no background thread starts any more.
_exiting = threading.Event()


def _stop_all() -> None:
    """At interpreter exit: stop every background thread (before the batchers close)."""
    _exiting.set()
    for indexer in list(_with_background):
        indexer.stop_background()


def _stop_for_fork() -> None:
    """Before a fork: stop the background threads, each after its batch.

    So none holds a lock of a store, a session or the model when the child is made.
    """
    _forking.set()
    for indexer in list(_with_background):
        indexer.stop_background()


def _carry_on() -> None:
    """After a fork, in the parent: the background threads start again where work waits."""
    _forking.clear()
    for indexer in list(_with_background):
        indexer.nudge()


def _reset_in_child() -> None:
    """In a forked child: no background thread runs yet, and no lock is held."""
    _forking.clear()
    for indexer in list(_with_background):
        indexer._lock = threading.Lock()
        indexer._work = threading.Condition(indexer._lock)
        indexer._drainer = None
        indexer._stopping = threading.Event()
    for indexer in list(_with_background):
        indexer.nudge()


#: Set while a fork is under way: no background thread starts.
_forking = threading.Event()
atexit.register(_stop_all)
if hasattr(os, "register_at_fork"):  # registered after the batchers': runs before theirs
    os.register_at_fork(
        before=_stop_for_fork, after_in_parent=_carry_on, after_in_child=_reset_in_child
    )


def _waited(future: Future[np.ndarray]) -> np.ndarray:
    """A batcher request's answer, waited for."""
    return future.result()


async def _awaited(future: Future[np.ndarray]) -> np.ndarray:
    """A batcher request's answer, awaited."""
    return await asyncio.wrap_future(future)


def _embed_rows(embeddings: Embeddings, texts: list[str]) -> np.ndarray:
    """One model call for ``texts``: normalized float32 rows (the batcher's function)."""
    array = getattr(embeddings, "embed_array", None)  # the packaged ONNX model's fast path
    return _checked(array(texts) if array else embeddings.embed_documents(texts), texts)


def _checked(vectors: object, texts: list[str]) -> np.ndarray:
    """The model's answer as normalized float32 rows, one per text.

    Raises:
        EmbeddingError: Not one finite vector per text.
    """
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        msg = "the embeddings returned something that is not a list of vectors"
        raise EmbeddingError(msg) from exc
    if matrix.ndim != 2 or matrix.shape[0] != len(texts) or not np.isfinite(matrix).all():
        msg = f"the embeddings returned shape {matrix.shape} for {len(texts)} text(s)"
        raise EmbeddingError(msg)
    return normalize_rows(matrix)
