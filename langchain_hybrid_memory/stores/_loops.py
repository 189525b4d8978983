"""Async clients kept one per event loop, and closed with their loop.

A ``redis.asyncio`` client or a ``psycopg_pool.AsyncConnectionPool`` works only in the event loop
that first used it, and can only be closed from that loop. A store used from several loops
(each ``asyncio.run``, a thread with a loop of its own) therefore keeps one per loop:
:class:`PerLoop` creates it on the loop's first use, and closes it

* when the store's ``aclose()`` runs (the current loop's directly, a running loop's on that loop);
* when its loop shuts down: ``asyncio.run``, ``asyncio.Runner`` and pytest-asyncio call
  ``loop.shutdown_asyncgens()`` before closing a loop, which finalizes the async generator that
  :class:`PerLoop` parks in each loop to guard its client.

A loop whose runner never shuts its async generators down leaves its client to ``aclose()``
(or ``close()``), which closes it with the ``abandon`` callback, without its loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable

__all__ = ["PerLoop"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: How long ``aclose`` waits for another running loop to close its client.
_CLOSE_TIMEOUT_SECONDS = 10.0


@dataclass
class _Entry(Generic[_T]):
    resource: _T
    ready: asyncio.Future[None]
    guard: AsyncGenerator[None, None] | None = None
    closed: bool = False


class PerLoop(Generic[_T]):
    """One async resource per running event loop, closed when its loop shuts down.

    Args:
        create: Makes the resource for the running loop (called in that loop, under a lock:
            it must not block).
        start: Awaited once per resource in its loop before first use (e.g. opening a pool).
        close: Awaited in the resource's loop to close it.
        abandon: Closes a resource without its loop, whose loop closed without closing it.

    Example:
        >>> closed = []
        >>> async def close(name: str) -> None:
        ...     closed.append(name)
        >>> clients = PerLoop(lambda: "client", close=close)
        >>> asyncio.run(clients.get())
        'client'
        >>> closed  # closed when asyncio.run shut its loop down
        ['client']
    """

    def __init__(
        self,
        create: Callable[[], _T],
        *,
        close: Callable[[_T], Awaitable[None]],
        start: Callable[[_T], Awaitable[None]] | None = None,
        abandon: Callable[[_T], None] | None = None,
    ) -> None:
        self._create = create
        self._start = start
        self._close = close
        self._abandon = abandon
        self._entries: dict[asyncio.AbstractEventLoop, _Entry[_T]] = {}
        self._lock = threading.Lock()

    async def get(self) -> _T:
        """The running loop's resource, created (and started) on the loop's first call."""
        loop = asyncio.get_running_loop()
        first = False
        with self._lock:
            self._drop_closed_loops()
            entry = self._entries.get(loop)
            if entry is None:
                entry = self._entries[loop] = _Entry(self._create(), loop.create_future())
                first = True
        if first:
            guard = self._guarded(entry)
            entry.guard = guard
            try:
                await guard.__anext__()  # parked in this loop: finalized by its shutdown
            except BaseException as exc:
                with self._lock:
                    self._entries.pop(loop, None)
                entry.ready.set_exception(exc)
                entry.ready.exception()  # retrieved: no "never retrieved" warning
                raise
            entry.ready.set_result(None)
        await entry.ready
        return entry.resource

    async def _guarded(self, entry: _Entry[_T]) -> AsyncGenerator[None, None]:
        try:
            if self._start is not None:
                await self._start(entry.resource)
            yield
        finally:
            try:
                await self._close(entry.resource)
            except BaseException as exc:  # noqa: BLE001 - closing is best effort
                logger.info("closing an async store client failed: %s", type(exc).__name__)
                if self._abandon is not None:
                    self._abandon(entry.resource)
            entry.closed = True

    def _drop_closed_loops(self) -> None:
        """Forget the resources of closed loops, closing any their loop left open. Hold the lock."""
        for loop in [loop for loop in self._entries if loop.is_closed()]:
            entry = self._entries.pop(loop)
            if not entry.closed and self._abandon is not None:
                self._abandon(entry.resource)

    async def aclose(self) -> None:
        """Close every loop's resource: this loop's here, a running loop's on that loop."""
        here = asyncio.get_running_loop()
        with self._lock:
            self._drop_closed_loops()
            entries = list(self._entries.items())
            self._entries.clear()
        for loop, entry in entries:
            guard = entry.guard
            if guard is None or loop.is_closed():
                continue
            if loop is here:
                await guard.aclose()
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(guard.aclose(), loop)
                with contextlib.suppress(Exception):
                    await asyncio.wrap_future(future)

    def close_other_threads(self) -> None:
        """From synchronous code: close the resources of loops running in other threads.

        The resources of this thread's running loop (if any) and of stopped loops stay with
        their guards, which close them when those loops shut down.
        """
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        with self._lock:
            self._drop_closed_loops()
            elsewhere = [
                (loop, entry)
                for loop, entry in self._entries.items()
                if loop is not here and loop.is_running() and entry.guard is not None
            ]
            for loop, _ in elsewhere:
                del self._entries[loop]
        for loop, entry in elsewhere:
            assert entry.guard is not None
            future = asyncio.run_coroutine_threadsafe(entry.guard.aclose(), loop)
            with contextlib.suppress(Exception):
                future.result(timeout=_CLOSE_TIMEOUT_SECONDS)
