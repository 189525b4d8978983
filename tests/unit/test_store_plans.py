"""Store operations written once as plans run the same under the sync and the async driver."""

from __future__ import annotations

import pytest

from langchain_hybrid_memory._plans import arun_plan, run_plan


def refresh_then_read():
    """A plan with a best-effort step: its failure is logged by the plan, not raised."""
    notes = []
    try:
        yield "refresh"
    except ConnectionError:
        notes.append("refresh failed")
    value = yield "read"
    return value, notes


def server(request):
    if request == "refresh":
        msg = "server went away"
        raise ConnectionError(msg)
    return 42


async def aserver(request):
    return server(request)


def test_a_failed_step_is_raised_inside_the_plan_which_may_carry_on():
    assert run_plan(refresh_then_read(), server) == (42, ["refresh failed"])


async def test_the_async_driver_runs_the_same_plan_the_same_way():
    assert await arun_plan(refresh_then_read(), aserver) == (42, ["refresh failed"])


def test_a_failure_the_plan_does_not_handle_reaches_the_caller():
    def read_only():
        value = yield "refresh"
        return value

    with pytest.raises(ConnectionError, match="server went away"):
        run_plan(read_only(), server)
