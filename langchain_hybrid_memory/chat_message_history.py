"""LangChain chat message history over the hybrid memory, and the LCEL wrapper built on it.

:class:`HybridChatMessageHistory` stores the full transcript but *reads* as the bounded context
(summary, entities, recalled turns and recent window), so a chain that replays "the history"
replays something that fits its budget.

:func:`with_hybrid_memory` wraps a runnable like ``RunnableWithMessageHistory`` does, but builds
the memory for the input of each call, so recall searches for what the user is asking now. The
stock ``RunnableWithMessageHistory`` cannot pass its input to the history; used with
:meth:`HybridMemory.history <langchain_hybrid_memory.HybridMemory.history>`, recall searches
for the latest stored user turn instead.

LangChain 1.x deprecates ``BaseChatMessageHistory`` and ``RunnableWithMessageHistory`` (removal
planned for 2.0); constructing the latter warns. These adapters are kept thin for chains built on
them; new agents should use :class:`~langchain_hybrid_memory.middleware.HybridMemoryMiddleware`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.runnables import ConfigurableFieldSpec, RunnableConfig
from langchain_core.runnables.config import merge_configs
from langchain_core.runnables.history import RunnableWithMessageHistory

from langchain_hybrid_memory._inputs import check_id, check_optional_id, last_user_text
from langchain_hybrid_memory.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.messages import BaseMessage
    from langchain_core.runnables import Runnable

    from langchain_hybrid_memory.context import MemoryContext
    from langchain_hybrid_memory.hybrid import HybridMemory

__all__ = ["HybridChatMessageHistory", "with_hybrid_memory"]


class HybridChatMessageHistory(BaseChatMessageHistory):
    """A chat message history bound to one session of a :class:`HybridMemory`.

    ``add_messages`` stores messages in the full transcript; ``messages`` returns the bounded
    context built for the current query (``MemoryContext.to_messages()``). The context is built
    once and reused until the next write or query change, so a chain that reads the history
    twice in one call sees the same messages.

    Args:
        memory: The engine.
        session_id: The conversation.
        user_id: The user the session belongs to.
        query: What recall searches for; ``None`` searches for the latest stored user turn.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_hybrid_memory import HybridMemory
        >>> history = HybridMemory(window_turns=2).history("s1")
        >>> history.add_messages([HumanMessage("I'm allergic to peanuts"), AIMessage("Noted.")])
        >>> history.add_messages([HumanMessage("Plan a trip"), AIMessage("Where to?")])
        >>> history.set_query("What snack suits me?")
        >>> "peanuts" in history.messages[0].text, len(history.transcript)
        (True, 4)
    """

    def __init__(
        self,
        memory: HybridMemory,
        session_id: str,
        *,
        user_id: str | None = None,
        query: str | None = None,
    ) -> None:
        self.memory = memory
        self.session_id = check_id(session_id, "session_id")
        self.user_id = check_optional_id(user_id, "user_id")
        self.query = query
        self._context: MemoryContext | None = None

    def set_query(self, query: str | None) -> None:
        """Search recall for ``query`` from now on (``None``: the latest stored user turn)."""
        self.query = query
        self._context = None

    @property
    def context(self) -> MemoryContext:
        """The context the history currently reads as (built on first access)."""
        if self._context is None:
            self._context = self.memory.build_context(
                self.session_id, self.query, user_id=self.user_id
            )
        return self._context

    async def acontext(self) -> MemoryContext:
        """Async twin of :attr:`context`."""
        if self._context is None:
            self._context = await self.memory.abuild_context(
                self.session_id, self.query, user_id=self.user_id
            )
        return self._context

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The bounded context as messages (summary/entities/recall system message, window)."""
        return self.context.to_messages()

    async def aget_messages(self) -> list[BaseMessage]:
        """Async twin of :attr:`messages`."""
        return (await self.acontext()).to_messages()

    @property
    def transcript(self) -> list[BaseMessage]:
        """Every stored message of the session, in order."""
        return self.memory.transcript(self.session_id, user_id=self.user_id)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store messages at the end of the session."""
        self.memory.add_messages(self.session_id, list(messages), user_id=self.user_id)
        self._context = None

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Async twin of :meth:`add_messages`."""
        await self.memory.aadd_messages(self.session_id, list(messages), user_id=self.user_id)
        self._context = None

    def clear(self) -> None:
        """Erase the session from the memory (turns, vectors, summary, entities)."""
        self.memory.forget_session(self.session_id, user_id=self.user_id)
        self._context = None

    async def aclear(self) -> None:
        """Async twin of :meth:`clear`."""
        await self.memory.aforget_session(self.session_id, user_id=self.user_id)
        self._context = None


class _HybridRunnableWithMemory(RunnableWithMessageHistory):
    """``RunnableWithMessageHistory`` that points recall at the input of each call."""

    def _query_of(self, value: Any) -> str | None:
        input_value = value[self.input_messages_key] if self.input_messages_key else value
        return last_user_text(self._get_input_messages(input_value))

    def _enter_history(self, value: Any, config: RunnableConfig) -> list[BaseMessage]:
        history = config["configurable"]["message_history"]
        history.set_query(self._query_of(value))
        return super()._enter_history(value, config)

    async def _aenter_history(self, value: Any, config: RunnableConfig) -> list[BaseMessage]:
        history = config["configurable"]["message_history"]
        history.set_query(self._query_of(value))
        return await super()._aenter_history(value, config)

    def _merge_configs(self, *configs: RunnableConfig | None) -> RunnableConfig:
        """Take ``thread_id`` (LangGraph's habit) for ``session_id``; ``user_id`` is optional.

        LangChain requires every factory key in ``configurable``: the merged configuration
        (this runnable's own first, the call's last) gets ``user_id=None`` when it has none.
        """
        merged = merge_configs(self.config, *configs)
        configurable = dict(merged.get("configurable") or {})
        if configurable.get("session_id") is None and configurable.get("thread_id") is not None:
            configurable["session_id"] = str(configurable["thread_id"])
        if configurable.get("session_id") is None:
            msg = (
                "with_hybrid_memory needs the session of each call: pass "
                "config={'configurable': {'session_id': ...}} (or LangGraph's 'thread_id'); "
                "'user_id' is optional"
            )
            raise InvalidInputError(msg)
        configurable.setdefault("user_id", None)
        merged["configurable"] = configurable
        return super()._merge_configs(merged)


def with_hybrid_memory(
    runnable: Runnable[Any, Any],
    memory: HybridMemory,
    *,
    input_messages_key: str | None = None,
    history_messages_key: str | None = None,
    output_messages_key: str | None = None,
) -> RunnableWithMessageHistory:
    """Give a runnable the hybrid memory, built for the input of each call.

    It behaves like ``RunnableWithMessageHistory`` (same keys, ``invoke``, ``ainvoke``,
    ``stream``, ``astream``, ``batch``), configured per call with
    ``{"configurable": {"session_id": ..., "user_id": ...}}`` (``user_id`` optional; LangGraph's
    ``thread_id`` is taken for the session when there is no ``session_id``). Before the
    runnable runs, the history is built with the call's latest user message as the recall
    query; afterwards the input and output messages are stored.

    Args:
        runnable: The chain or model to wrap.
        memory: The engine.
        input_messages_key: Key of the input messages when the input is a dict.
        history_messages_key: Key the history is injected under (e.g. a
            ``MessagesPlaceholder``).
        output_messages_key: Key of the output messages when the output is a dict.

    Returns:
        The wrapped runnable. LangChain warns on construction that ``RunnableWithMessageHistory``
        is deprecated; see the README.

    Example:
        >>> import warnings
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
        >>> from langchain_hybrid_memory import HybridMemory
        >>> prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{input}")])
        >>> memory = HybridMemory()
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     chain = with_hybrid_memory(prompt | FakeListChatModel(responses=["Hi Ana!"]), memory,
        ...                                input_messages_key="input", history_messages_key="history")
        >>> chain.invoke({"input": "I'm Ana"}, config={"configurable": {"session_id": "s1"}}).content
        'Hi Ana!'
        >>> [m.text for m in memory.transcript("s1")]
        ["I'm Ana", 'Hi Ana!']
    """

    def get_session_history(session_id: str, user_id: str | None = None) -> BaseChatMessageHistory:
        return memory.history(session_id, user_id=user_id)

    # mypy reads the pydantic fields of RunnableBinding, not RunnableWithMessageHistory.__init__.
    return _HybridRunnableWithMemory(  # type: ignore[call-arg]
        runnable=runnable,
        get_session_history=get_session_history,
        input_messages_key=input_messages_key,
        history_messages_key=history_messages_key,
        output_messages_key=output_messages_key,
        history_factory_config=[
            ConfigurableFieldSpec(
                id="session_id",
                annotation=str,
                name="Session ID",
                description="The conversation whose memory to use.",
                default="",
                is_shared=True,
            ),
            ConfigurableFieldSpec(
                id="user_id",
                annotation=str | None,
                name="User ID",
                description="The user the conversation belongs to (optional).",
                default=None,
                is_shared=True,
            ),
        ],
    )
