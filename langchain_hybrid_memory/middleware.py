"""Agent middleware: the hybrid memory inside ``langchain.agents.create_agent``.

Needs the ``agents`` extra. Before each model call the middleware stores the messages the agent
state gained since the last call (the user input, tool results), builds the context for the
current user input, and hands the model that context instead of the whole state: the memory text
joins the system message, the recent window replaces the message list. Nothing is written into
the graph state. After each model call it stores the model's reply. Storing is idempotent by
message id, so a replayed step or a checkpointed thread never stores a message twice.

The session is, in order: the ``session_id`` given to the middleware, the ``session_id`` of the
run's context (``context={"session_id": ...}`` or an attribute), or the run's ``thread_id``. The
user is the middleware's ``user_id`` or the context's ``user_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from langchain_core.messages import BaseMessage, SystemMessage

from langchain_hybrid_memory._inputs import last_user_text
from langchain_hybrid_memory.errors import InvalidInputError, MissingDependencyError

try:
    from langchain.agents.middleware import AgentMiddleware
    from langgraph.config import get_config
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError.for_extra("langchain", "agents") from exc

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from langchain.agents.middleware import ModelRequest, ModelResponse
    from langchain_core.messages import AnyMessage
    from langgraph.runtime import Runtime

    from langchain_hybrid_memory.context import MemoryContext
    from langchain_hybrid_memory.hybrid import HybridMemory
    from langchain_hybrid_memory.types import Turn

__all__ = ["HybridMemoryMiddleware", "unstored_messages"]

#: How many stored turns are compared with the state to find what is new.
_ID_LOOKBACK = 50


def unstored_messages(
    state_messages: Sequence[BaseMessage], stored: Sequence[Turn]
) -> list[BaseMessage]:
    """The messages at the end of ``state_messages`` that come after the last stored one.

    Messages are matched by id. A client that resends its history without ids is matched by
    content instead: the longest run of stored turns that the state's start repeats (same type,
    same text) is skipped. Otherwise (a run without a checkpointer, a new session) every message
    of the state is new.

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_hybrid_memory.types import Turn
        >>> a, b = HumanMessage("hi", id="1"), AIMessage("hello", id="2")
        >>> [m.id for m in unstored_messages([a, b], [Turn("s", 0, a, "hi", datetime(2026, 1, 1))])]
        ['2']
    """
    known = {turn.message.id: i for i, turn in enumerate(stored) if turn.message.id}
    for position in range(len(state_messages) - 1, -1, -1):
        matched = known.get(state_messages[position].id or "")
        if matched is not None:
            rest = list(state_messages[position + 1 :])
            return rest[_repeated(rest, stored[matched + 1 :]) :]
    return list(state_messages[_resent_prefix(state_messages, stored) :])


def _key(message: BaseMessage) -> tuple[str, str]:
    return message.type, message.text


def _repeated(messages: Sequence[BaseMessage], stored: Sequence[Turn]) -> int:
    """How many leading ``messages`` are copies (same type and text) of ``stored``, in order."""
    count = 0
    for message, turn in zip(messages, stored, strict=False):
        if _key(message) != _key(turn.message):
            break
        count += 1
    return count


def _resent_prefix(state_messages: Sequence[BaseMessage], stored: Sequence[Turn]) -> int:
    """How many leading state messages repeat the end of the stored turns, by type and text.

    The last state message is never counted: a resent history always ends with a new input.
    """
    stored_keys = [_key(turn.message) for turn in stored]
    state_keys = [_key(message) for message in state_messages]
    for length in range(min(len(stored_keys), len(state_keys) - 1), 0, -1):
        if stored_keys[-length:] == state_keys[:length]:
            return length
    return 0


class HybridMemoryMiddleware(AgentMiddleware):
    """Give a ``create_agent`` agent hybrid memory: bounded prompts that still remember.

    Args:
        memory: The engine.
        session_id: A fixed session; default: the context's ``session_id`` or the ``thread_id``.
        user_id: A fixed user; default: the context's ``user_id``.

    Example:
        >>> from langchain.agents import create_agent
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_hybrid_memory import HybridMemory
        >>> class Model(GenericFakeChatModel):
        ...     def bind_tools(self, tools, **kwargs):
        ...         return self
        >>> memory = HybridMemory()
        >>> agent = create_agent(Model(messages=iter([AIMessage("Hi Ana!")])), tools=[],
        ...                      middleware=[HybridMemoryMiddleware(memory)])
        >>> _ = agent.invoke({"messages": [HumanMessage("I'm Ana")]}, {"configurable": {"thread_id": "t1"}})
        >>> [m.text for m in memory.transcript("t1")]
        ["I'm Ana", 'Hi Ana!']
    """

    def __init__(
        self,
        memory: HybridMemory,
        *,
        session_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        super().__init__()
        self.memory = memory
        self.session_id = session_id
        self.user_id = user_id
        self.tools = []

    # -- who is speaking ----------------------------------------------------------------------

    def _session_and_user(self, runtime: Runtime[Any] | None) -> tuple[str, str | None]:
        context = getattr(runtime, "context", None) if runtime is not None else None
        session = self.session_id or _lookup(context, "session_id")
        if session is None:
            configurable = (get_config() or {}).get("configurable", {})
            session = configurable.get("thread_id")
        if session is None:
            msg = (
                "HybridMemoryMiddleware needs a session: pass session_id=, a context with "
                "session_id, or a thread_id in the run's config"
            )
            raise InvalidInputError(msg)
        return str(session), self.user_id or _lookup(context, "user_id")

    # -- storing ------------------------------------------------------------------------------

    def _store_new(self, state: dict[str, Any], runtime: Runtime[Any]) -> None:
        session, user = self._session_and_user(runtime)
        stored = self.memory.latest_turns(session, _ID_LOOKBACK, user_id=user)
        new = unstored_messages(state.get("messages", []), stored)
        if new:
            self.memory.add_messages(session, new, user_id=user)

    async def _astore_new(self, state: dict[str, Any], runtime: Runtime[Any]) -> None:
        session, user = self._session_and_user(runtime)
        stored = await self.memory.alatest_turns(session, _ID_LOOKBACK, user_id=user)
        new = unstored_messages(state.get("messages", []), stored)
        if new:
            await self.memory.aadd_messages(session, new, user_id=user)

    def before_model(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Store the messages the state gained since the last model call."""
        self._store_new(state, runtime)
        return None

    async def abefore_model(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Async twin of :meth:`before_model`."""
        await self._astore_new(state, runtime)
        return None

    def after_model(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Store the model's reply."""
        self._store_new(state, runtime)
        return None

    async def aafter_model(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Async twin of :meth:`after_model`."""
        await self._astore_new(state, runtime)
        return None

    # -- injecting ----------------------------------------------------------------------------

    def _with_context(
        self, request: ModelRequest[Any], context: MemoryContext
    ) -> ModelRequest[Any]:
        messages = context.to_messages()
        memory_text = ""
        if messages and isinstance(messages[0], SystemMessage):
            memory_text, messages = messages[0].text, messages[1:]
        system = request.system_message
        if memory_text:
            text = f"{system.text}\n\n{memory_text}" if system is not None else memory_text
            system = SystemMessage(text)
        return request.override(system_message=system, messages=cast("list[AnyMessage]", messages))

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Call the model with the memory built for the current user input."""
        session, user = self._session_and_user(request.runtime)
        context = self.memory.build_context(session, last_user_text(request.messages), user_id=user)
        return handler(self._with_context(request, context))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Async twin of :meth:`wrap_model_call`."""
        session, user = self._session_and_user(request.runtime)
        context = await self.memory.abuild_context(
            session, last_user_text(request.messages), user_id=user
        )
        return await handler(self._with_context(request, context))


def _lookup(context: object, key: str) -> str | None:
    if context is None:
        return None
    value = context.get(key) if isinstance(context, dict) else getattr(context, key, None)
    return None if value is None else str(value)
