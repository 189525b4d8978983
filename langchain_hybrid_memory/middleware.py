"""Agent middleware: the hybrid memory inside ``langchain.agents.create_agent``.

Needs the ``agents`` extra. The middleware works inside the model call only: it stores the
messages the thread gained since the last call (the user input, tool results), builds the
memory for the current user input, hands the model the app's system message untouched, the
memory in its own system message, the recent turns and the current step whole, stores the
model's reply, and removes from the graph state what the memory holds and the next call will
not need. Storing is idempotent by message id (among the session's latest stored messages), so
a step retried or replayed with the same messages stores nothing twice. The memory keeps one log
per session: a thread forked from an older checkpoint is not followed, and
``SummarizationMiddleware`` must not run beside it (its summary would be taken for user input).

The session is, in order: the ``session_id`` given to the middleware, the ``session_id`` of the
run's context (``context={"session_id": ...}`` or an attribute), or the run's ``thread_id``. The
user is the middleware's ``user_id`` or the context's ``user_id``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from langchain_core.messages import BaseMessage, RemoveMessage, SystemMessage

from langchain_hybrid_memory._inputs import last_user_text
from langchain_hybrid_memory._runs import session_and_user
from langchain_hybrid_memory.errors import MissingDependencyError

try:
    from langchain.agents.middleware import AgentMiddleware
    from langchain.agents.middleware.types import ExtendedModelResponse
    from langgraph.config import get_config
    from langgraph.types import Command
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError.for_extra("langchain", "agents") from exc

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from langchain.agents.middleware import ModelRequest, ModelResponse
    from langchain.agents.middleware.types import ModelCallResult
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
    """Give a ``create_agent`` agent hybrid memory: bounded prompts and a bounded thread.

    Everything happens inside the model call (no graph step of its own, so no extra
    checkpoint): the messages the thread gained since the last call are stored; the model gets
    the app's system message untouched, the memory in a system message of its own after it, the
    recent turns (starting on a user message), and the current step whole: the latest user
    input and the tool calls and results after it, never cut. The memory fits in what the step
    leaves of ``token_budget``; when the step alone exceeds it, the memory adds nothing and logs
    a warning. The model's reply is stored, and the messages older than the window, all stored,
    are removed from the graph state (``RemoveMessage``), so the thread and its checkpoints stay
    small; the whole conversation stays readable with ``memory.transcript(session)``.

    Args:
        memory: The engine.
        session_id: A fixed session; default: the context's ``session_id`` or the ``thread_id``.
        user_id: A fixed user; default: the context's ``user_id``.
        keep_full_thread: Keep every message in the graph state (for apps that read the state's
            whole history); the model still gets the bounded prompt.

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
        keep_full_thread: bool = False,
    ) -> None:
        super().__init__()
        self.memory = memory
        self.session_id = session_id
        self.user_id = user_id
        self.keep_full_thread = keep_full_thread
        self.tools = []

    # -- who is speaking ----------------------------------------------------------------------

    def _session_and_user(self, runtime: Runtime[Any] | None) -> tuple[str, str | None]:
        context = getattr(runtime, "context", None) if runtime is not None else None
        try:
            configurable = (get_config() or {}).get("configurable", {})
        except RuntimeError:  # called outside a run (a test, a replay by hand)
            configurable = {}
        return session_and_user(
            self.session_id, self.user_id, context, configurable, who="HybridMemoryMiddleware"
        )

    # -- one model call -----------------------------------------------------------------------

    def _prepared(
        self, request: ModelRequest[Any], stored: Sequence[Turn], appended: Sequence[Turn]
    ) -> _Step:
        """Where the current step starts, in the request and in the session's turns."""
        messages = request.messages
        first = _step_start(messages)
        step: list[BaseMessage] = list(messages[first:])
        turn_of = {t.message.id: t.id for t in [*stored, *appended] if t.message.id}
        after = (appended or stored)[-1].id + 1 if (appended or stored) else 0
        before = turn_of.get(step[0].id or "", after - len(step)) if step else after
        reserved = self.memory.token_counter(step) if step else 0
        return _Step(step, max(0, before), reserved, last_user_text(step) or "")

    def _request_with(
        self, request: ModelRequest[Any], step: _Step, context: MemoryContext
    ) -> ModelRequest[Any]:
        """The model's messages: the memory, the recent turns from a user message on, the step."""
        window = list(context.window)  # starts on a user message (the rest went to recall)
        messages: list[BaseMessage] = []
        rendered = context.to_messages()
        if rendered and isinstance(rendered[0], SystemMessage):
            messages.append(rendered[0])  # after the app's own system message, untouched
        messages += [turn.message for turn in window]
        messages += step.messages
        return request.override(messages=cast("list[AnyMessage]", messages))

    def _after(
        self, request: ModelRequest[Any], response: ModelResponse[Any]
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        """The reply, with the removal of the thread's messages the memory holds beyond need."""
        removals = (
            []
            if self.keep_full_thread
            else _removals(_state_messages(request), self.memory.config.window_turns)
        )
        if not removals:
            return response
        return ExtendedModelResponse(
            model_response=response, command=Command(update={"messages": removals})
        )

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelCallResult:
        """Store what is new, call the model with the memory, store its reply."""
        session, user = self._session_and_user(request.runtime)
        stored = self.memory.latest_turns(session, _ID_LOOKBACK, user_id=user)
        new = unstored_messages(_state_messages(request), stored)
        appended = self.memory.add_messages(session, new, user_id=user) if new else []
        step = self._prepared(request, stored, appended)
        context = self.memory._build_step_context(
            session, step.query, user, before=step.before, reserved=step.reserved
        )
        response = handler(self._request_with(request, step, context))
        reply = _unseen(response.result, [*stored, *appended])
        if reply:
            self.memory.add_messages(session, reply, user_id=user)
        return self._after(request, response)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelCallResult:
        """Async twin of :meth:`wrap_model_call`."""
        session, user = self._session_and_user(request.runtime)
        stored = await self.memory.alatest_turns(session, _ID_LOOKBACK, user_id=user)
        new = unstored_messages(_state_messages(request), stored)
        appended = await self.memory.aadd_messages(session, new, user_id=user) if new else []
        step = self._prepared(request, stored, appended)
        context = await self.memory._abuild_step_context(
            session, step.query, user, before=step.before, reserved=step.reserved
        )
        response = await handler(self._request_with(request, step, context))
        reply = _unseen(response.result, [*stored, *appended])
        if reply:
            await self.memory.aadd_messages(session, reply, user_id=user)
        return self._after(request, response)


@dataclass(frozen=True)
class _Step:
    """The current step: its messages, its first turn's id, their tokens, its user input."""

    messages: Sequence[BaseMessage]
    before: int
    reserved: int
    query: str


def _step_start(messages: Sequence[BaseMessage]) -> int:
    """Where the current step starts: the last user message (0 without one)."""
    for position in range(len(messages) - 1, -1, -1):
        if messages[position].type == "human":
            return position
    return 0


def _state_messages(request: ModelRequest[Any]) -> list[BaseMessage]:
    """The thread's messages as the graph state holds them (the request's, without a state)."""
    state = request.state or {}
    messages = state.get("messages") if isinstance(state, dict) else None
    return list(messages if messages is not None else request.messages)


def _removals(messages: Sequence[BaseMessage], window_turns: int) -> list[RemoveMessage]:
    """Removals of the state's messages older than the window before the current step.

    What is kept starts on a user message, so an AI message with tool calls never loses its
    tool results; only messages with ids (every message of a graph state has one) are removed.
    """
    step = _step_start(messages)
    keep = max(0, step - window_turns)
    while keep < step and messages[keep].type != "human":
        keep += 1
    return [RemoveMessage(id=message.id) for message in messages[:keep] if message.id]


def _unseen(messages: Sequence[BaseMessage], stored: Sequence[Turn]) -> list[BaseMessage]:
    """The model's messages not stored yet (a replayed call's reply is).

    Each is given an id if it has none: the state keeps the same message object, so the next
    call recognises it as stored.
    """
    known = {turn.message.id for turn in stored if turn.message.id}
    for message in messages:
        if not message.id:
            message.id = f"hm-{uuid.uuid4()}"
    return [message for message in messages if message.id not in known]
