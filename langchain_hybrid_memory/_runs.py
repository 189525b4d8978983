"""The memory inside a LangGraph run: who is speaking, and recall as a traced retriever run.

The same rule for the middleware and the memory tools: a fixed ``session_id`` / ``user_id``
given to them, else the run context's ``session_id`` / ``user_id`` (a dict or an object with
those attributes), else the run config's ``configurable`` ``session_id`` / ``user_id``, else
the run's ``thread_id`` for the session. LangGraph copies ``configurable`` values into each
checkpoint's metadata, which is how an erasure finds a user's threads in a checkpointer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.runnables.config import (
    get_async_callback_manager_for_config,
    get_callback_manager_for_config,
)

from langchain_hybrid_memory.errors import InvalidInputError
from langchain_hybrid_memory.retriever import RECALL_RUN_NAME, recalled_document

if TYPE_CHECKING:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.runnables import RunnableConfig

    from langchain_hybrid_memory.context import MemoryContext
    from langchain_hybrid_memory.redaction import PIIRedactor

__all__ = ["RECALL_RUN_NAME", "RecallRun", "session_and_user"]


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
        configurable: The run's ``config["configurable"]``: its ``session_id`` / ``user_id``,
            and ``thread_id``.
        who: Names the surface in the error.

    Raises:
        InvalidInputError: No session anywhere.

    Example:
        >>> session_and_user(None, None, {"user_id": "ana"}, {"thread_id": "t1"}, who="x")
        ('t1', 'ana')
        >>> session_and_user(None, None, None, {"thread_id": "t1", "user_id": "bo"}, who="x")
        ('t1', 'bo')
    """
    session = session_id or _lookup(context, "session_id") or _lookup(configurable, "session_id")
    if session is None and configurable:
        thread = configurable.get("thread_id")
        session = None if thread is None else str(thread)
    if session is None:
        msg = (
            f"{who} needs a session: pass session_id=, a context with session_id, or a "
            "thread_id in the run's config"
        )
        raise InvalidInputError(msg)
    return session, user_id or _lookup(context, "user_id") or _lookup(configurable, "user_id")


def _lookup(context: object, key: str) -> str | None:
    if context is None:
        return None
    value = context.get(key) if isinstance(context, dict) else getattr(context, key, None)
    return None if value is None else str(value)


@dataclass(frozen=True)
class RecallRun:
    """Recall as a retriever run of the current LangChain run (``on_retriever_start`` / ``_end``).

    The run is named :data:`RECALL_RUN_NAME`; its input is the query and its output the
    recalled turns as documents. With a ``redactor``, both are redacted first, so a memory that
    keeps personal data out of its store keeps it out of traces too.

    Example:
        >>> recall = RecallRun("s1", None)
        >>> run = recall.start({}, "Where do I live?")
        >>> recall.ended(run, None)
    """

    session_id: str
    redactor: PIIRedactor | None

    def _shown(self, text: str) -> str:
        return text if self.redactor is None else self.redactor.redact(text)

    def _documents(self, context: MemoryContext | None) -> list[Document]:
        if context is None:
            return []
        return [recalled_document(item, self._shown(item.turn.text)) for item in context.recalled]

    def _start_args(self, query: str) -> dict[str, Any]:
        return {"serialized": None, "query": self._shown(query), "name": RECALL_RUN_NAME}

    def start(self, config: RunnableConfig, query: str) -> CallbackManagerForRetrieverRun:
        """Open the run under the run ``config`` belongs to."""
        manager = get_callback_manager_for_config(config)
        return manager.on_retriever_start(**self._start_args(query))

    def ended(self, run: CallbackManagerForRetrieverRun, context: MemoryContext | None) -> None:
        """Close the run with the context's recalled turns."""
        run.on_retriever_end(self._documents(context))

    def failed(self, run: CallbackManagerForRetrieverRun, error: BaseException) -> None:
        """Close the run with the error."""
        run.on_retriever_error(error)

    async def astart(
        self, config: RunnableConfig, query: str
    ) -> AsyncCallbackManagerForRetrieverRun:
        """Async twin of :meth:`start`."""
        manager = get_async_callback_manager_for_config(config)
        return await manager.on_retriever_start(**self._start_args(query))

    async def aended(
        self, run: AsyncCallbackManagerForRetrieverRun, context: MemoryContext | None
    ) -> None:
        """Async twin of :meth:`ended`."""
        await run.on_retriever_end(self._documents(context))

    async def afailed(self, run: AsyncCallbackManagerForRetrieverRun, error: BaseException) -> None:
        """Async twin of :meth:`failed`."""
        await run.on_retriever_error(error)
