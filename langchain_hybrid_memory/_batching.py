"""Model calls shared by every request of a process: texts to embed are gathered into batches.

A chat server embeds a little for each of many conversations: a query, a reply. Called one by
one, the model is called once per text from many threads or tasks at once, which costs more
than one call for all of them (and, for a remote model, one request each). An
:class:`EmbeddingBatcher` gathers the texts of every request of a process, sync or async, into
one model call:

- No request waits for company: when the model is idle, a request's texts are embedded at once.
  Requests that arrive while a call runs are gathered into the next one, so batches grow with
  the load by themselves and a request waits at most one call longer than alone.
- Two lanes, each with its own thread: *urgent* texts (a query someone waits for) never queue
  behind *background* ones (vectors of turns just stored), which go in smaller calls.
- A text is embedded once: a request for a text already waiting or being embedded joins it (an
  urgent request moves a waiting text to the urgent lane), and the latest vectors are kept in a
  small cache (a query's vector serves again when the message it becomes is stored). A vector
  enters the cache before its requests are answered, so no request can miss both.
- A failing call fails only the requests with a text in it, with the model's exception.

Threads start with the first request of their lane and end after a moment without work, so an
idle process keeps none. At interpreter exit every batcher is closed: its threads finish their
call and end (a daemon thread killed inside the model's native code can abort the process), and
a request after that is embedded in the caller's thread. After ``fork`` a child's batchers start
afresh (no threads, nothing waiting).

Locks: one lock per batcher guards its lanes and the texts in flight; it is never held across a
model call.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import threading
import time
import weakref
from collections import OrderedDict
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING

import numpy as np

from langchain_hybrid_memory.errors import EmbeddingError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from langchain_core.embeddings import Embeddings

__all__ = ["EmbeddingBatcher", "batcher_for"]

#: Most texts in one urgent call.
URGENT_BATCH = 64
#: Most texts in one background call: small enough that an urgent text the background is
#: already embedding is not kept waiting long.
BACKGROUND_BATCH = 16
#: Seconds a lane's thread waits for work before it ends.
IDLE_SECONDS = 2.0


class _Text:
    """One text on its way through the model, and the requests waiting for it."""

    __slots__ = ("cacheable", "generation", "requests", "text", "urgent")

    def __init__(self, text: str, *, urgent: bool, generation: int) -> None:
        self.text = text
        self.urgent = urgent
        self.requests: list[_Request] = []
        #: its vector may enter the cache: no requester opted out, no erasure since it came
        self.cacheable = True
        self.generation = generation


class _Request:
    """The texts of one caller; its future is resolved once all of them are embedded."""

    __slots__ = ("future", "remaining", "rows", "size", "vectors")

    def __init__(self, texts: Sequence[str]) -> None:
        self.future: Future[np.ndarray] = Future()
        self.size = self.remaining = len(texts)
        #: text -> its rows in the answer (a text may be asked for twice in one request)
        self.rows: dict[str, list[int]] = {}
        for row, text in enumerate(texts):
            self.rows.setdefault(text, []).append(row)
        self.vectors: np.ndarray | None = None

    def fill(self, text: str, vector: np.ndarray) -> bool:
        """Record a text's vector (hold the batcher's lock); whether the request is complete.

        Both lanes may answer texts of one request: the lock makes their fills one at a time.
        """
        rows = self.rows[text]
        if self.vectors is None:
            self.vectors = np.empty((self.size, vector.shape[0]), dtype=np.float32)
        self.vectors[rows] = vector
        self.remaining -= len(rows)
        return self.remaining == 0


def _settle(
    future: Future[np.ndarray],
    *,
    result: np.ndarray | None = None,
    error: BaseException | None = None,
) -> None:
    """Resolve a future unless its caller gave up on it (a cancelled async caller)."""
    with contextlib.suppress(InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]


class EmbeddingBatcher:
    """Gathers the texts of concurrent requests into shared calls of one embedding function.

    Args:
        embed: Embeds a list of texts into one row per text (called from the lanes' threads).
        name: Names the lanes' threads.
        cache_size: How many of the latest vectors to keep (see :meth:`reserve`).

    Attributes:
        calls: Model calls made so far.
        texts: Texts embedded so far (``texts / calls``: the mean batch).

    Example:
        >>> calls = []
        >>> def embed(texts):
        ...     calls.append(list(texts))
        ...     return np.ones((len(texts), 2), dtype=np.float32)
        >>> batcher = EmbeddingBatcher(embed)
        >>> batcher.embed(["hello", "world", "hello"], urgent=True).shape
        (3, 2)
        >>> calls
        [['hello', 'world']]
    """

    def __init__(
        self,
        embed: Callable[[list[str]], np.ndarray],
        *,
        name: str = "embed",
        cache_size: int = 0,
    ) -> None:
        self._embed = embed
        self._name = name
        self._cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = {True: threading.Condition(self._lock), False: threading.Condition(self._lock)}
        #: per lane (urgent or not): texts waiting for a call, oldest first
        self._waiting: dict[bool, OrderedDict[str, _Text]] = {
            True: OrderedDict(),
            False: OrderedDict(),
        }
        #: texts in a running call
        self._running: dict[str, _Text] = {}
        self._threads: dict[bool, threading.Thread | None] = {True: None, False: None}
        self._closed = False
        self._paused = False  # a fork is under way: no call starts
        self._idle = threading.Condition(self._lock)  # notified when a call ends
        #: bumped by clear_cache: texts that came before it never enter the cache
        self._generation = 0
        _every.add(self)
        self.calls = 0
        self.texts = 0

    # -- the cache ----------------------------------------------------------------------------

    def reserve(self, cache_size: int) -> None:
        """Keep at least ``cache_size`` vectors (the largest size any user asked for)."""
        with self._lock:
            self._cache_size = max(self._cache_size, cache_size)

    def cached(self, text: str) -> np.ndarray | None:
        """The text's vector if it is in the cache."""
        with self._lock:
            return self._cache.get(text)

    def clear_cache(self) -> None:
        """Forget every cached vector (their texts may be of an erased session).

        Texts waiting or being embedded now will not enter the cache either.
        """
        with self._lock:
            self._cache.clear()
            self._generation += 1

    # -- requests ---------------------------------------------------------------------------

    def waiting(self) -> int:
        """How many texts wait for a call (not counting those in a running call)."""
        with self._lock:
            return len(self._waiting[True]) + len(self._waiting[False])

    def submit(
        self, texts: Sequence[str], *, urgent: bool, use_cache: bool = True
    ) -> Future[np.ndarray]:
        """Ask for the vectors of ``texts``; the future gets one row per text, in order.

        Args:
            texts: The texts.
            urgent: Someone waits for them: the urgent lane.
            use_cache: Answer from the cache what it holds, and let these texts' vectors
                enter it (``False``: neither).
        """
        request = _Request(texts)
        if not texts:
            request.future.set_result(np.zeros((0, 0), dtype=np.float32))
            return request.future
        complete = False
        with self._lock:
            for text in request.rows:
                vector = self._cache.get(text) if use_cache else None
                if vector is not None:
                    self._cache.move_to_end(text)
                    complete = request.fill(text, vector)
                    continue
                item = self._running.get(text)
                if item is None:
                    item = self._waiting[True].get(text) or self._waiting[False].get(text)
                    if item is None:
                        item = _Text(text, urgent=urgent, generation=self._generation)
                        self._waiting[urgent][text] = item
                    elif urgent and not item.urgent:  # someone waits for it now: move it up
                        del self._waiting[False][text]
                        item.urgent = True
                        self._waiting[True][text] = item
                item.requests.append(request)
                item.cacheable = item.cacheable and use_cache
            closed = self._closed
            if not closed:
                for lane in (True, False):
                    if self._waiting[lane]:
                        self._start(lane)
        if complete:  # all from the cache
            _settle(request.future, result=request.vectors)
        if closed:  # no lane threads any more: embed here
            self._run_here()
        return request.future

    def embed(self, texts: Sequence[str], *, urgent: bool, use_cache: bool = True) -> np.ndarray:
        """Embed ``texts`` in the shared calls and wait: one row per text, in order."""
        return self.submit(texts, urgent=urgent, use_cache=use_cache).result()

    async def aembed(
        self, texts: Sequence[str], *, urgent: bool, use_cache: bool = True
    ) -> np.ndarray:
        """Async twin of :meth:`embed`: the event loop stays free while the model runs."""
        future = self.submit(texts, urgent=urgent, use_cache=use_cache)
        if future.done():  # all cached
            return future.result()
        return await asyncio.wrap_future(future)

    # -- the lanes --------------------------------------------------------------------------

    def _start(self, urgent: bool) -> None:
        """Wake the lane's thread, starting one if it has none. Hold the lock.

        Raises:
            RuntimeError: No thread could be started (the texts' requests fail with it).
        """
        if self._threads[urgent] is not None:
            self._wake[urgent].notify()
            return
        lane = "urgent" if urgent else "background"
        thread = threading.Thread(
            target=self._serve, args=(urgent,), name=f"{self._name}-{lane}", daemon=True
        )
        try:
            thread.start()
        except RuntimeError as exc:  # e.g. "can't start new thread": nobody would answer
            failed = list(self._waiting[urgent].values())
            self._waiting[urgent].clear()
            for item in failed:
                for request in item.requests:
                    _settle(request.future, error=exc)
            return
        self._threads[urgent] = thread

    def _serve(self, urgent: bool) -> None:
        """A lane's thread: embed what waits, in calls of at most the lane's batch size."""
        try:
            while True:
                with self._lock:
                    if not self._waiting[urgent] and not self._closed:
                        self._wake[urgent].wait(IDLE_SECONDS)
                    batch = [] if self._paused else self._next_batch(urgent)
                    if not batch:
                        return
                self._call(batch)
        finally:
            with self._lock:
                if self._threads[urgent] is threading.current_thread():
                    self._threads[urgent] = None

    def _next_batch(self, urgent: bool) -> list[_Text]:
        """Take the lane's next call's texts, marked running. Hold the lock."""
        waiting = self._waiting[urgent]
        batch: list[_Text] = []
        while waiting and len(batch) < (URGENT_BATCH if urgent else BACKGROUND_BATCH):
            batch.append(waiting.popitem(last=False)[1])
        for item in batch:
            self._running[item.text] = item
        return batch

    def _run_here(self) -> None:
        """Embed everything waiting in the calling thread (once the batcher is closed)."""
        while True:
            with self._lock:
                batch = self._next_batch(True) or self._next_batch(False)
            if not batch:
                return
            self._call(batch)

    def _quiesce(self, timeout: float = 30.0) -> None:
        """Before a fork: let running calls end, and start none.

        The model's own locks must not be held by a thread the child will not have.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._paused = True
            while self._running and time.monotonic() < deadline:
                self._idle.wait(0.1)

    def _resume(self) -> None:
        """After a fork, in the parent: carry on with what waits."""
        with self._lock:
            self._paused = False
            for lane in (True, False):
                if self._waiting[lane] and not self._closed:
                    self._start(lane)

    def _reset(self) -> None:
        """Forget threads, locks and texts in flight (in a forked child, which has none)."""
        self._paused = False
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = {True: threading.Condition(self._lock), False: threading.Condition(self._lock)}
        self._waiting = {True: OrderedDict(), False: OrderedDict()}
        self._running = {}
        self._threads = {True: None, False: None}

    def close(self, timeout: float = 30.0) -> None:
        """Let the lanes' threads finish what waits and end; later requests run in the caller."""
        with self._lock:
            self._closed = True
            for wake in self._wake.values():
                wake.notify_all()
            threads = [thread for thread in self._threads.values() if thread is not None]
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _call(self, batch: list[_Text]) -> None:
        """One model call for ``batch``; answer every request waiting for one of its texts."""
        vectors: np.ndarray | None = None
        error: BaseException | None = None
        try:
            vectors = self._embed([item.text for item in batch])
        except Exception as exc:  # noqa: BLE001 - handed to the callers, the lane lives on
            error = exc
        except BaseException as exc:  # noqa: BLE001 - a model raising one must not end a lane
            error = EmbeddingError(f"the embeddings raised {type(exc).__name__}")
        done: list[_Request] = []
        failed: list[_Request] = []
        with self._lock:
            self._idle.notify_all()
            for row, item in enumerate(batch):
                del self._running[item.text]
                if vectors is None:
                    failed += item.requests
                    continue
                if self._cache_size and item.cacheable and item.generation == self._generation:
                    self._cache[item.text] = vectors[row]
                    self._cache.move_to_end(item.text)
                for request in item.requests:
                    if not request.future.done() and request.fill(item.text, vectors[row]):
                        done.append(request)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            self.calls += 1
            self.texts += len(batch)
        for request in done:
            _settle(request.future, result=request.vectors)
        for request in failed:
            _settle(request.future, error=error)


_batchers: dict[int, EmbeddingBatcher] = {}
_batchers_lock = threading.Lock()
#: Every batcher alive, for closing them all at exit.
_every: weakref.WeakSet[EmbeddingBatcher] = weakref.WeakSet()


def batcher_for(
    embeddings: Embeddings, embed: Callable[[Embeddings, list[str]], np.ndarray]
) -> EmbeddingBatcher:
    """The process's batcher for an embeddings object, shared by every memory using it.

    Args:
        embeddings: The embeddings: the key, referred to weakly (the batcher goes with it).
            One that cannot be referred to weakly gets a batcher of its own at each call.
        embed: How the batcher calls them (a function of the embeddings and the texts).
    """
    name = f"hybrid-embed-{type(embeddings).__name__}"
    try:
        ref = weakref.ref(embeddings)
    except TypeError:
        return EmbeddingBatcher(functools.partial(embed, embeddings), name=name)

    def call(texts: list[str]) -> np.ndarray:
        target = ref()
        if target is None:  # pragma: no cover - a memory keeps its embeddings alive
            msg = "the embeddings were garbage-collected while texts waited for them"
            raise EmbeddingError(msg)
        return embed(target, texts)

    key = id(embeddings)
    with _batchers_lock:
        batcher = _batchers.get(key)
        if batcher is None:
            batcher = _batchers[key] = EmbeddingBatcher(call, name=name)
            weakref.finalize(embeddings, _batchers.pop, key, None)
        return batcher


def _before_fork() -> None:
    for batcher in list(_every):
        batcher._quiesce()


def _after_fork_in_parent() -> None:
    for batcher in list(_every):
        batcher._resume()


def _after_fork_in_child() -> None:
    """In a forked child: the parent's lane threads and their locks are not this process's."""
    global _batchers_lock  # noqa: PLW0603 - a fresh lock: the parent's may be held
    _batchers_lock = threading.Lock()
    for batcher in list(_every):
        batcher._reset()


def _close_all() -> None:
    """At interpreter exit: end every lane thread before the interpreter kills daemons."""
    for batcher in list(_every):
        batcher.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
# Runs after _indexing's handler (registered later), which stops the threads feeding these.
atexit.register(_close_all)
