"""Who is speaking in a LangGraph run: the session and user the agent surfaces work for.

The same rule for the middleware and the memory tools: a fixed ``session_id`` / ``user_id``
given to them, else the run context's ``session_id`` / ``user_id`` (a dict or an object with
those attributes), else the run's ``thread_id`` for the session.
"""

from __future__ import annotations

from typing import Any

from langchain_hybrid_memory.errors import InvalidInputError

__all__ = ["session_and_user"]


def session_and_user(
    session_id: str | None,
    user_id: str | None,
    context: object,
    configurable: dict[str, Any] | None,
    *,
    who: str,
) -> tuple[str, str | None]:
    """The session and user of a run.

    Args:
        session_id: A fixed session, if any.
        user_id: A fixed user, if any.
        context: The run's context (``runtime.context``).
        configurable: The run's ``config["configurable"]``, for ``thread_id``.
        who: Names the surface in the error.

    Raises:
        InvalidInputError: No session anywhere.

    Example:
        >>> session_and_user(None, None, {"user_id": "ana"}, {"thread_id": "t1"}, who="x")
        ('t1', 'ana')
    """
    session = session_id or _lookup(context, "session_id")
    if session is None and configurable:
        thread = configurable.get("thread_id")
        session = None if thread is None else str(thread)
    if session is None:
        msg = (
            f"{who} needs a session: pass session_id=, a context with session_id, or a "
            "thread_id in the run's config"
        )
        raise InvalidInputError(msg)
    return session, user_id or _lookup(context, "user_id")


def _lookup(context: object, key: str) -> str | None:
    if context is None:
        return None
    value = context.get(key) if isinstance(context, dict) else getattr(context, key, None)
    return None if value is None else str(value)
