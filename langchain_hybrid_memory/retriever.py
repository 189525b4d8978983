"""A LangChain retriever over the hybrid memory's recall, for users who compose their own chains."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

if TYPE_CHECKING:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )

    from langchain_hybrid_memory.types import RecalledTurn

__all__ = ["RECALL_RUN_NAME", "HybridMemoryRetriever", "recalled_document"]

#: The name recall's retriever runs have in traces (this retriever's, and the middleware's).
RECALL_RUN_NAME = "hybrid_memory.recall"


class HybridMemoryRetriever(BaseRetriever):
    """Returns the turns of one session that best match a query, as ``Document`` objects.

    Each document's ``page_content`` is the turn's text; its metadata holds ``session_id``,
    ``turn_id``, ``role``, ``speaker``, ``timestamp`` (ISO 8601), ``score``, ``dense_score`` and
    ``lexical_score``. The number of results is ``k`` (set at construction, or per call:
    ``retriever.invoke(query, k=1)``). Its runs are named ``hybrid_memory.recall`` in traces.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_hybrid_memory import HybridMemory
        >>> memory = HybridMemory()
        >>> _ = memory.add_messages("s1", [HumanMessage("I live in Porto"), AIMessage("Nice city!")])
        >>> retriever = memory.as_retriever(session_id="s1", k=1)
        >>> [d.page_content for d in retriever.invoke("Where do I live?")]
        ['I live in Porto']
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Any
    """The :class:`~langchain_hybrid_memory.HybridMemory` to search."""
    name: str | None = RECALL_RUN_NAME
    session_id: str
    user_id: str | None = None
    k: int = 3
    exclude_window: bool = False

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        found = self.memory.recall(self.session_id, query, **self._options(k))
        return [recalled_document(item) for item in found]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        found = await self.memory.arecall(self.session_id, query, **self._options(k))
        return [recalled_document(item) for item in found]

    def _options(self, k: int | None) -> dict[str, Any]:
        return {
            "k": self.k if k is None else k,
            "user_id": self.user_id,
            "exclude_window": self.exclude_window,
        }


def recalled_document(item: RecalledTurn, text: str | None = None) -> Document:
    """A recalled turn as a ``Document``: its text (or ``text``) and its metadata."""
    turn = item.turn
    return Document(
        page_content=turn.text if text is None else text,
        metadata={
            "session_id": turn.session_id,
            "turn_id": turn.id,
            "role": turn.role,
            "speaker": turn.speaker,
            "timestamp": turn.timestamp.isoformat(),
            "score": item.score,
            "dense_score": item.dense_score,
            "lexical_score": item.lexical_score,
        },
    )
