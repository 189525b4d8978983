"""Memory tools for agents: search the past beyond what the memory injected, record a fact.

Needs the ``agents`` extra. :func:`memory_tools` returns two LangChain tools for
``create_agent(tools=...)``, next to :class:`~langchain_hybrid_memory.HybridMemoryMiddleware` or
without it:

- ``search_memory(query, k=5, whole_user=True)``: earlier turns of this conversation (and,
  with a user, of the user's other conversations), dated, with their scores, leaving out the
  recent turns the model already sees;
- ``remember_fact(entity, attribute, value)``: record or correct a fact about a person, place or
  thing (an empty value retracts it); the facts reach later contexts through entity memory.

The session and user are taken from the run as the middleware takes them: the tools'
``session_id=`` / ``user_id=``, else the run's context (``session_id``, ``user_id``), else the
``thread_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_hybrid_memory._runs import session_and_user
from langchain_hybrid_memory.context import format_day
from langchain_hybrid_memory.errors import HybridMemoryError, MissingDependencyError

try:
    from langchain.tools import ToolRuntime  # noqa: TC002 - tools read it at run time (injection)
    from langchain_core.tools import BaseTool, StructuredTool
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError.for_extra("langchain", "agents") from exc

if TYPE_CHECKING:
    from langchain_hybrid_memory.hybrid import HybridMemory
    from langchain_hybrid_memory.types import RecalledTurn

__all__ = ["memory_tools"]


def memory_tools(
    memory: HybridMemory, *, session_id: str | None = None, user_id: str | None = None
) -> list[BaseTool]:
    """The memory's tools for an agent: ``search_memory`` and ``remember_fact``.

    Args:
        memory: The engine.
        session_id: A fixed session; default: the run context's ``session_id``, the
            ``configurable`` one, or the ``thread_id``.
        user_id: A fixed user; default: the run context's ``user_id`` or the ``configurable``
            one.

    Example:
        >>> from langchain_hybrid_memory import HybridMemory
        >>> [tool.name for tool in memory_tools(HybridMemory())]
        ['search_memory', 'remember_fact']
    """

    def where(runtime: ToolRuntime[Any, Any]) -> tuple[str, str | None]:
        configurable = (runtime.config or {}).get("configurable", {})
        return session_and_user(
            session_id, user_id, runtime.context, configurable, who="the memory tools"
        )

    def search_memory(
        query: str, runtime: ToolRuntime[Any, Any], k: int = 5, whole_user: bool = True
    ) -> str:
        """Search what the user said long ago, in this conversation and the user's others.

        Returns dated lines with their scores, best first.
        """
        session, user = where(runtime)
        try:
            found = memory.recall(session, query, k=k, user_id=user, exclude_window=True)
            if whole_user and user is not None:
                found = _best(found + _elsewhere(memory, session, user, query, k), k)
        except HybridMemoryError as exc:
            return f"memory search failed: {exc}"
        return "\n".join(_line(item) for item in found) or "nothing found"

    def remember_fact(
        entity: str, attribute: str, value: str, runtime: ToolRuntime[Any, Any]
    ) -> str:
        """Record or correct a fact about a person, place or thing.

        For example entity="Ana", attribute="city", value="Lisbon"; an empty value says the
        fact no longer holds.
        """
        session, user = where(runtime)
        facts = {entity: {attribute: value.strip() or None}}
        try:
            memory.remember(session, facts, user_id=user)
        except HybridMemoryError as exc:
            return f"could not record the fact: {exc}"
        said = value.strip() or "no longer known"
        return f"recorded: {entity}'s {attribute} is {said}"

    return [
        StructuredTool.from_function(search_memory, name="search_memory"),
        StructuredTool.from_function(remember_fact, name="remember_fact"),
    ]


def _elsewhere(
    memory: HybridMemory, session: str, user: str, query: str, k: int
) -> list[RecalledTurn]:
    """The best turns of the user's other sessions."""
    found: list[RecalledTurn] = []
    for other in memory.store.list_sessions(user):
        if other != session:
            found += memory.recall(other, query, k=k, user_id=user)
    return found


def _best(found: list[RecalledTurn], k: int) -> list[RecalledTurn]:
    """The ``k`` best turns, each once (``recall_scope="user"`` finds other sessions too)."""
    unique = {(item.turn.session_id, item.turn.id): item for item in found}
    return sorted(unique.values(), key=lambda item: item.score, reverse=True)[:k]


def _line(item: RecalledTurn) -> str:
    turn = item.turn
    return (
        f"[{format_day(turn.timestamp)}, {turn.session_id}] {turn.speaker}: {turn.text} "
        f"(score {item.score:.2f})"
    )
