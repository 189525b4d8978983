"""Agent middleware: the hybrid memory inside ``langchain.agents.create_agent``.

Needs the ``agents`` extra. The middleware works inside the model call: it stores the messages
the thread gained since the last call (the user input, the previous replies as ``after_model``
hooks left them, tool results), builds the memory for the current user input, and hands the
model the app's system message untouched, the memory in its own system message, the recent
turns as the graph state holds them (completed from the memory when the state holds fewer) and
the current step whole. At the end of the run (``after_agent``) it stores the final reply as it
ends in the state, and at each model call it removes from the graph state what the memory holds
and the next call will not need. Storing is idempotent by message id, so a step retried or
replayed, or a thread forked from an older checkpoint, stores nothing twice.
``SummarizationMiddleware`` may run beside it: its summary message reaches the model, but is
neither stored nor taken for the user's input.

The session is, in order: the ``session_id`` given to the middleware, the ``session_id`` of the
run's context (``context={"session_id": ...}`` or an attribute), the ``session_id`` of the run
config's ``configurable``, or the run's ``thread_id``. The user is the middleware's
``user_id``, the context's, or the ``configurable`` one's.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_hybrid_memory._inputs import last_user_text, message_text
from langchain_hybrid_memory._runs import RecallRun, session_and_user
from langchain_hybrid_memory.errors import MissingDependencyError
from langchain_hybrid_memory.types import Turn
from langchain_hybrid_memory.window import RecentTurns, without_unanswered_calls

try:
    from langchain.agents.middleware import AgentMiddleware
    from langchain.agents.middleware.types import ExtendedModelResponse
    from langgraph.config import get_config
    from langgraph.types import Command, TracePolicy, omit_payload
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError.for_extra("langchain", "agents") from exc

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from langchain.agents.middleware import AgentState, ModelRequest, ModelResponse
    from langchain.agents.middleware.types import ModelCallResult
    from langchain_core.messages import AnyMessage
    from langchain_core.runnables import RunnableConfig
    from langgraph.runtime import Runtime

    from langchain_hybrid_memory.context import MemoryContext
    from langchain_hybrid_memory.hybrid import HybridMemory

__all__ = ["HybridMemoryMiddleware", "unstored_messages"]

#: How many stored turns, beyond the current step and the window, are compared with the state
#: to find what is new.
_ID_LOOKBACK = 50


def unstored_messages(
    state_messages: Sequence[BaseMessage], stored: Sequence[Turn]
) -> list[BaseMessage]:
    """The messages at the end of ``state_messages`` that come after the last stored one.

    Messages are matched by id. A client that resends its history without ids is matched by
    content instead: the longest run of stored turns that the state's start repeats (same type,
    same text) is skipped. Otherwise (a run without a checkpointer, a new session) every message
    of the state is new. A summary written by ``SummarizationMiddleware`` is never new: it
    stands for messages the thread had, not for something said; nor are the system messages
    the state starts with: they are the app's instructions, like its system prompt.

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_hybrid_memory.types import Turn
        >>> a, b = HumanMessage("hi", id="1"), AIMessage("hello", id="2")
        >>> [m.id for m in unstored_messages([a, b], [Turn("s", 0, a, "hi", datetime(2026, 1, 1))])]
        ['2']
    """
    said = [
        message
        for message in state_messages[instructions_end(state_messages) :]
        if not is_agent_summary(message)
    ]
    return said[_stored_length(said, stored) :]


def instructions_end(messages: Sequence[BaseMessage]) -> int:
    """How many system messages ``messages`` start with: the app's instructions.

    An app may open the thread with its system prompt as a message instead of
    ``system_prompt=``. The middleware sends them first, never stores or removes them.

    Example:
        >>> from langchain_core.messages import HumanMessage, SystemMessage
        >>> instructions_end([SystemMessage("Answer in French."), HumanMessage("hi")])
        1
    """
    count = 0
    while count < len(messages) and messages[count].type == "system":
        count += 1
    return count


def is_agent_summary(message: BaseMessage) -> bool:
    """Whether ``message`` is the summary ``SummarizationMiddleware`` puts in the thread.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> is_agent_summary(HumanMessage("hi"))
        False
    """
    return message.additional_kwargs.get("lc_source") == "summarization"


def _stored_length(messages: Sequence[BaseMessage], stored: Sequence[Turn]) -> int:
    """How many leading ``messages`` the stored turns hold already."""
    known = {turn.message.id: i for i, turn in enumerate(stored) if turn.message.id}
    for position in range(len(messages) - 1, -1, -1):
        matched = known.get(messages[position].id or "")
        if matched is not None:
            rest = messages[position + 1 :]
            return position + 1 + _repeated(rest, stored[matched + 1 :])
    return _resent_prefix(messages, stored)


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


def _looks_further_back(
    state_messages: Sequence[BaseMessage],
    new: Sequence[BaseMessage],
    stored: Sequence[Turn],
    lookback: int,
) -> bool:
    """Whether the whole session must be read to tell what is new.

    That is when the latest stored turns are not the whole session and match none of the
    state, although the state holds earlier messages with ids besides the current input: a
    thread forked or replayed from an older checkpoint. Never on the usual paths (the state
    continues the stored turns, or holds the new input alone), so the per-turn cost does not
    grow with the conversation. ``lookback``: how many latest turns were asked for.
    """
    if len(stored) < lookback or not stored or stored[0].id == 0:
        return False
    known = {turn.message.id for turn in stored if turn.message.id}
    if any(message.id in known for message in state_messages):
        return False
    earlier = new[: _step_start(new)]
    return any(message.id for message in earlier)


class HybridMemoryMiddleware(AgentMiddleware):
    """Give a ``create_agent`` agent hybrid memory: bounded prompts and a bounded thread.

    Everything happens inside the model call and at the end of the run, so storing adds one
    graph step per run (``after_agent``), none per model call. At each model call the messages
    the thread gained are stored; the model gets the app's system message untouched, the
    memory in a system message of its own after it, the recent turns as the graph state holds
    them (so create_agent's repairs and other middleware's edits reach it), starting on a user
    message, and the current step whole: the latest user input and the tool calls and results
    after it, never cut. The memory fits in what the step leaves of ``token_budget``; when the
    step alone exceeds it, the memory adds nothing and logs a warning. Replies are stored as
    they end in the state (after ``after_model`` hooks such as ``PIIMiddleware``), and the
    messages older than the window, all stored, are removed from the graph state
    (``RemoveMessage``), so the thread and its checkpoints stay small; the whole conversation
    stays readable with ``memory.transcript(session)``.

    Recall shows in traces as a retriever run named ``hybrid_memory.recall`` with the recalled
    turns as documents. When the memory redacts personal data, the run shows them redacted and
    the middleware's own hook spans record no payload (``trace_policy``).

    Args:
        memory: The engine.
        session_id: A fixed session; default: the context's ``session_id``, the
            ``configurable`` one, or the ``thread_id``.
        user_id: A fixed user; default: the context's ``user_id`` or the ``configurable`` one.
        keep_full_thread: Keep every message in the graph state (for apps that read the state's
            whole history); the model still gets the bounded prompt.
        trace_policy: LangGraph's ``TracePolicy`` for this middleware's hook spans. Default:
            omit their payloads when the memory has a redactor, else trace them as usual.

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
        trace_policy: TracePolicy | None = None,
    ) -> None:
        super().__init__()
        self.memory = memory
        self.session_id = session_id
        self.user_id = user_id
        self.keep_full_thread = keep_full_thread
        if trace_policy is None and memory.redactor is not None:
            trace_policy = TracePolicy(process_inputs=omit_payload, process_outputs=omit_payload)
        self.trace_policy = trace_policy
        self.tools = []

    # -- who is speaking ----------------------------------------------------------------------

    def _run(self, runtime: Runtime[Any] | None) -> tuple[str, str | None, RunnableConfig]:
        """The session, the user and the run's config."""
        context = getattr(runtime, "context", None) if runtime is not None else None
        try:
            config = get_config() or {}
        except RuntimeError:  # called outside a run (a test, a replay by hand)
            config = {}
        configurable = config.get("configurable", {})
        session, user = session_and_user(
            self.session_id, self.user_id, context, configurable, who="HybridMemoryMiddleware"
        )
        return session, user, config

    # -- storing ------------------------------------------------------------------------------

    def _lookback(self, messages: Sequence[BaseMessage]) -> int:
        """How many latest stored turns to compare with the state.

        A constant, plus the current step and the window before it, so every turn the model
        call uses is known by id however many tool steps the run took. The state beyond them
        is not counted: with ``keep_full_thread`` it grows with the conversation.
        """
        step = len(messages) - _step_start(messages)
        return _ID_LOOKBACK + step + self.memory.config.window_turns

    def _store(self, session: str, user: str | None, messages: Sequence[BaseMessage]) -> list[Turn]:
        """Store what ``messages`` (the thread) holds beyond the stored turns; all known turns."""
        lookback = self._lookback(messages)
        stored = self.memory.latest_turns(session, lookback, user_id=user)
        new = unstored_messages(messages, stored)
        if _looks_further_back(messages, new, stored, lookback):
            stored = self.memory.turns(session, user_id=user)
            new = unstored_messages(messages, stored)
        appended = self.memory.add_messages(session, new, user_id=user) if new else []
        return [*stored, *appended]

    async def _astore(
        self, session: str, user: str | None, messages: Sequence[BaseMessage]
    ) -> list[Turn]:
        """Async twin of :meth:`_store`."""
        lookback = self._lookback(messages)
        stored = await self.memory.alatest_turns(session, lookback, user_id=user)
        new = unstored_messages(messages, stored)
        if _looks_further_back(messages, new, stored, lookback):
            stored = await self.memory.aturns(session, user_id=user)
            new = unstored_messages(messages, stored)
        appended = await self.memory.aadd_messages(session, new, user_id=user) if new else []
        return [*stored, *appended]

    # -- one model call -----------------------------------------------------------------------

    def _prepared(self, request: ModelRequest[Any], session: str, known: Sequence[Turn]) -> _Step:
        """The current step and the recent turns before it, as the request holds them."""
        messages = request.messages
        lead = instructions_end(messages)
        first = max(lead, _step_start(messages))
        step: list[BaseMessage] = list(messages[first:])
        turn_of = {t.message.id: t for t in known if t.message.id}
        after = known[-1].id + 1 if known else 0
        said = [message for message in step if not is_agent_summary(message)]
        start = turn_of.get(said[0].id or "") if said else None
        before = start.id if start is not None else after - len(said)
        reserved = self.memory.token_counter(step) if step else 0
        recent = _recent_turns(
            session, messages[lead:first], known, max(0, before), self.memory.config.window_turns
        )
        # the step's user input, or, summarized away from the state, the latest stored one
        query = last_user_text(said) or last_user_text([t.message for t in known])
        return _Step(step, max(0, before), reserved, query or "", recent, messages[:lead])

    def _request_with(
        self, request: ModelRequest[Any], step: _Step, context: MemoryContext
    ) -> ModelRequest[Any]:
        """The model's messages: the memory, the recent turns from a user message on, the step."""
        window = list(context.window)  # starts on a user message (the rest went to recall)
        messages: list[BaseMessage] = list(step.instructions)  # the state's own, first
        rendered = context.to_messages()
        if rendered and isinstance(rendered[0], SystemMessage):
            messages.append(rendered[0])  # after the app's own system message, untouched
        # a run that ended in a tool error left calls without results: never sent
        messages += without_unanswered_calls([turn.message for turn in window])
        messages += step.messages
        return request.override(messages=cast("list[AnyMessage]", messages))

    def _after(
        self, request: ModelRequest[Any], response: ModelResponse[Any]
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        """The reply, with the removal of the thread's messages the memory holds beyond need."""
        for message in response.result:  # an id, so the next call knows it when it is stored
            if not message.id:
                message.id = f"hm-{uuid.uuid4()}"
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
        """Store what is new, call the model with the memory."""
        session, user, config = self._run(request.runtime)
        known = self._store(session, user, _thread_messages(request))
        step = self._prepared(request, session, known)
        recall = RecallRun(session, self.memory.redactor)
        run = recall.start(config, step.query)
        try:
            context = self.memory._build_step_context(session, step.query, user, **step.bounds())
        except BaseException as exc:
            recall.failed(run, exc)
            raise
        recall.ended(run, context)
        response = handler(self._request_with(request, step, context))
        return self._after(request, response)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelCallResult:
        """Async twin of :meth:`wrap_model_call`."""
        session, user, config = self._run(request.runtime)
        known = await self._astore(session, user, _thread_messages(request))
        step = self._prepared(request, session, known)
        recall = RecallRun(session, self.memory.redactor)
        run = await recall.astart(config, step.query)
        try:
            context = await self.memory._abuild_step_context(
                session, step.query, user, **step.bounds()
            )
        except BaseException as exc:
            await recall.afailed(run, exc)
            raise
        await recall.aended(run, context)
        response = await handler(self._request_with(request, step, context))
        return self._after(request, response)

    # -- the end of the run -------------------------------------------------------------------

    def after_agent(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Store the final reply as it ends in the state (after every ``after_model`` hook)."""
        session, user, _ = self._run(runtime)
        self._store(session, user, state["messages"])
        return None

    async def aafter_agent(
        self, state: AgentState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async twin of :meth:`after_agent`."""
        session, user, _ = self._run(runtime)
        await self._astore(session, user, state["messages"])
        return None


@dataclass(frozen=True)
class _Step:
    """The current step: its messages, its first turn's id, their tokens, its user input.

    And the turns before it, as the request holds them, and the system messages the state
    starts with (:func:`instructions_end`).
    """

    messages: Sequence[BaseMessage]
    before: int
    reserved: int
    query: str
    recent: RecentTurns
    instructions: Sequence[BaseMessage] = ()

    def bounds(self) -> dict[str, Any]:
        """Where the memory's context ends and the step begins, for ``_build_step_context``."""
        return {"before": self.before, "reserved": self.reserved, "recent": self.recent}


def _step_start(messages: Sequence[BaseMessage]) -> int:
    """Where the current step starts: the last user message (0 without one).

    A summary written by ``SummarizationMiddleware`` is no user message.
    """
    for position in range(len(messages) - 1, -1, -1):
        if messages[position].type == "human" and not is_agent_summary(messages[position]):
            return position
    return 0


def _recent_turns(
    session: str,
    held: Sequence[BaseMessage],
    known: Sequence[Turn],
    before: int,
    window_turns: int,
) -> RecentTurns:
    """The messages before the step, as turns.

    A stored message (by id; without a known id, the stored turn in its place if it has the
    same type and text, as a client resending its history sends it) is that turn with the
    request's message, which another middleware may have edited. Any other (a repaired tool
    call's result, a summary) is a turn of its own, with an id no stored turn has. After a
    ``SummarizationMiddleware`` summary, what it summarized is not brought back from the store.
    """
    summary = next((i for i in range(len(held) - 1, -1, -1) if is_agent_summary(held[i])), None)
    held = held[summary or 0 :][-window_turns:] if window_turns else []
    by_message = {turn.message.id: turn for turn in known if turn.message.id}
    by_place = {turn.id: turn for turn in known}
    now = datetime.now(UTC)
    turns: list[Turn] = []
    for position, message in enumerate(held):
        stored = by_message.get(message.id or "")
        if stored is None:
            in_place = by_place.get(before - len(held) + position)
            stored = in_place if in_place and _key(in_place.message) == _key(message) else None
        if stored is None:
            turns.append(Turn(session, position - len(held), message, message_text(message), now))
        else:
            turns.append(dataclasses.replace(stored, message=message, text=message_text(message)))
    if summary is not None:
        return RecentTurns(turns, None)
    ids = [turn.id for turn in turns if turn.id >= 0]
    return RecentTurns(turns, min(ids) if ids else max(0, before - len(turns)))


def _state_messages(request: ModelRequest[Any]) -> list[BaseMessage]:
    """The thread's messages as the graph state holds them (the request's, without a state)."""
    state = request.state or {}
    messages = state.get("messages") if isinstance(state, dict) else None
    return list(messages if messages is not None else request.messages)


def _thread_messages(request: ModelRequest[Any]) -> list[BaseMessage]:
    """The state's messages with the results ``create_agent`` made up for invalid tool calls.

    ``create_agent`` answers a tool call it could not parse with an error ``ToolMessage`` in the
    model's request, and writes it to the state after the call; the memory stores it in its
    place, after the call it answers. It gets an id, which the state keeps.
    """
    state = _state_messages(request)
    answered = {m.tool_call_id for m in state if isinstance(m, ToolMessage)}
    made_up: dict[str, list[ToolMessage]] = {}
    for sent in request.messages:
        if isinstance(sent, ToolMessage) and sent.tool_call_id not in answered:
            if not sent.id:
                sent.id = f"hm-{uuid.uuid4()}"
            made_up.setdefault(sent.tool_call_id, []).append(sent)
    if not made_up:
        return state
    messages: list[BaseMessage] = []
    for message in state:
        messages.append(message)
        if isinstance(message, AIMessage):
            for call in message.invalid_tool_calls:
                messages += made_up.pop(call.get("id") or "", [])
    return messages


def _removals(messages: Sequence[BaseMessage], window_turns: int) -> list[RemoveMessage]:
    """Removals of the state's messages older than the window before the current step.

    What is kept starts on a user message, so an AI message with tool calls never loses its
    tool results; only messages with ids (every message of a graph state has one) are removed,
    and never a ``SummarizationMiddleware`` summary nor the system messages the state starts
    with (the memory stores neither).
    """
    lead = instructions_end(messages)
    step = _step_start(messages)
    keep = max(lead, step - window_turns)
    while keep < step and messages[keep].type != "human":
        keep += 1
    return [
        RemoveMessage(id=message.id)
        for message in messages[lead:keep]
        if message.id and not is_agent_summary(message)
    ]
