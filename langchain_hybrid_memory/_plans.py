"""Operations written once, without I/O, and run by a sync or an async driver.

An operation is a generator (a *plan*): it yields the requests it needs (a SQL query, a Redis
command, a call to the store or the embedding model) and receives each answer back through
``send``; its return value is the operation's result. :func:`run_plan` drives a plan with a
blocking ``execute`` function and :func:`arun_plan` with an awaitable one, so the sync and async
twins of an operation differ only in the function that does the I/O. When ``execute`` fails, the
exception is raised inside the plan at its ``yield``: a plan may handle it (a best-effort step)
or let it propagate.

Two layers use plans: each store writes its operations as plans of its own requests (queries,
commands), and the engine writes its steps as plans of :class:`Call` requests, which
:func:`run_calls` and :func:`arun_calls` answer.

Example:
    >>> def double_of_answer() -> Plan[str, int]:
    ...     answer = yield "what is six times seven?"
    ...     return 2 * answer
    >>> run_plan(double_of_answer(), lambda question: 42)
    84
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "Call",
    "Plan",
    "arun_calls",
    "arun_plan",
    "cpu",
    "light",
    "plan_name",
    "run_calls",
    "run_plan",
    "twin",
    "while_waiting",
]

_Request = TypeVar("_Request")
_Result = TypeVar("_Result")

#: A plan yielding requests of type ``_Request`` and returning a ``_Result``.
Plan = Generator[_Request, Any, _Result]


def run_plan(plan: Plan[_Request, _Result], execute: Callable[[_Request], Any]) -> _Result:
    """Run ``plan``, answering each request with ``execute(request)``."""
    try:
        request = next(plan)
        while True:
            try:
                answer = execute(request)
            except Exception as exc:  # noqa: BLE001 - handed to the plan, which may re-raise
                request = plan.throw(exc)
            else:
                request = plan.send(answer)
    except StopIteration as done:
        result: _Result = done.value
        return result
    finally:
        plan.close()


async def arun_plan(
    plan: Plan[_Request, _Result], execute: Callable[[_Request], Awaitable[Any]]
) -> _Result:
    """Run ``plan``, answering each request with ``await execute(request)``."""
    try:
        request = next(plan)
        while True:
            try:
                answer = await execute(request)
            except Exception as exc:  # noqa: BLE001 - handed to the plan, which may re-raise
                request = plan.throw(exc)
            else:
                request = plan.send(answer)
    except StopIteration as done:
        result: _Result = done.value
        return result
    finally:
        plan.close()


def plan_name(plan: Plan[Any, Any]) -> str:
    """The operation a plan performs (its generator's name), for error messages."""
    return str(getattr(plan, "__name__", "operation"))


@dataclass(frozen=True)
class Call:
    """One request of an engine step: a function with an async twin, or CPU-bound work.

    The sync driver calls ``function``; the async driver awaits ``async_function``, or, when
    there is none (work for the CPU, such as embedding on a local model or a FAISS search),
    runs ``function`` in a worker thread so the event loop stays free.

    Attributes:
        function: What the sync driver calls.
        async_function: Its async twin, or ``None`` for CPU-bound work.
        args: The positional arguments of both.
        kwargs: The keyword arguments of both.

    Example:
        >>> def plan() -> Plan[Call, int]:
        ...     return (yield cpu(len, "four"))
        >>> run_calls(plan()), asyncio.run(arun_calls(plan()))
        (4, 4)
    """

    function: Callable[..., Any]
    async_function: Callable[..., Awaitable[Any]] | None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def twin(owner: object, name: str, *args: Any, **kwargs: Any) -> Call:
    """A call of ``owner.name(...)``, whose async driver awaits ``owner.aname(...)``.

    For objects that follow LangChain's naming of async twins: stores, summarizers, embeddings.
    """
    return Call(getattr(owner, name), getattr(owner, f"a{name}"), args, kwargs)


def cpu(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Call:
    """A call of CPU-bound work, which the async driver runs in a worker thread."""
    return Call(function, None, args, kwargs)


def light(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Call:
    """CPU work too small to be worth a worker thread: the async driver runs it on the loop.

    A hop to a worker thread and back costs the event loop tens of microseconds; work below
    that (a search of a short session, fitting a few candidates) is cheaper done in place.

    Example:
        >>> import threading
        >>> def plan() -> Plan[Call, bool]:
        ...     return (yield light(lambda: threading.current_thread() is threading.main_thread()))
        >>> asyncio.run(arun_calls(plan()))
        True
    """
    return Call(function, functools.partial(_in_place, function), args, kwargs)


async def _in_place(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


def while_waiting(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Call:
    """CPU work worth doing only while a sync caller waits for something else.

    The sync driver calls it (its thread is idle while the model works in another); the async
    driver answers ``None`` without running it: a hop to a worker thread would cost the event
    loop more than the work saves, and the step does it later where it needs it.
    """
    return Call(function, _nothing, args, kwargs)


async def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


def run_calls(plan: Plan[Call, _Result]) -> _Result:
    """Run an engine step, calling each :class:`Call` in this thread."""
    return run_plan(plan, lambda call: call.function(*call.args, **call.kwargs))


async def arun_calls(plan: Plan[Call, _Result]) -> _Result:
    """Run an engine step on the event loop: I/O awaited, CPU-bound work in a worker thread."""

    def execute(call: Call) -> Awaitable[Any]:
        if call.async_function is None:
            return asyncio.to_thread(call.function, *call.args, **call.kwargs)
        return call.async_function(*call.args, **call.kwargs)

    return await arun_plan(plan, execute)
