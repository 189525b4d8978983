"""Store operations written once, without I/O, and run by a sync or an async driver.

An operation is a generator (a *plan*): it yields the requests it needs (a SQL query, a Redis
command) and receives each answer back through ``send``; its return value is the operation's
result. :func:`run_plan` drives a plan with a blocking ``execute`` function and
:func:`arun_plan` with an awaitable one, so the sync and async methods of a store differ only in
the function that talks to the server. When ``execute`` fails, the exception is raised inside the
plan at its ``yield``: a plan may handle it (a best-effort step) or let it propagate.

Example:
    >>> def double_of_answer() -> Plan[str, int]:
    ...     answer = yield "what is six times seven?"
    ...     return 2 * answer
    >>> run_plan(double_of_answer(), lambda question: 42)
    84
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

__all__ = ["Plan", "arun_plan", "plan_name", "run_plan"]

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
