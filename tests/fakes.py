"""Fakes for the tests: LangChain fake models that record their prompts, embeddings that fail."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import BaseMessage, get_buffer_string
from pydantic import Field

if TYPE_CHECKING:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.documents import Document
    from langchain_core.outputs import ChatResult


class RecordingChatModel(FakeListChatModel):
    """FakeListChatModel that keeps every prompt it receives, as text."""

    prompts: list[str] = Field(default_factory=list)
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    fail_times: int = 0

    def _call(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        self.prompts.append(get_buffer_string(messages))
        self.calls.append(list(messages))
        if self.fail_times > 0:
            self.fail_times -= 1
            msg = "the summarizer service is down"
            raise RuntimeError(msg)
        return super()._call(messages, stop, run_manager, **kwargs)


class CountingEmbeddings(Embeddings):
    """Wraps real embeddings, counting texts embedded, optionally failing the next N calls
    (``fail_times``) or every call with one of the texts in ``fail_on``.
    """

    def __init__(self, inner: Embeddings, *, fail_times: int = 0) -> None:
        self.inner = inner
        self.fail_times = fail_times
        self.fail_on: set[str] = set()
        self.documents = 0
        self.queries = 0
        self.calls = 0

    def _maybe_fail(self, texts: list[str]) -> None:
        if self.fail_times > 0 or self.fail_on.intersection(texts):
            self.fail_times = max(0, self.fail_times - 1)
            msg = "embedding model unavailable"
            raise RuntimeError(msg)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self._maybe_fail(texts)
        self.documents += len(texts)
        self.calls += 1
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self._maybe_fail([text])
        self.queries += 1
        self.calls += 1
        return self.inner.embed_query(text)


class RecordingToolModel(GenericFakeChatModel):
    """A chat model for create_agent: answers with scripted AI messages (tool calls included),
    accepts bind_tools, and keeps every message list it was called with.
    """

    calls: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> RecordingToolModel:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(list(messages))
        return super()._generate(messages, stop, run_manager, **kwargs)


class RetrieverRuns(BaseCallbackHandler):
    """A callback handler that records the retriever runs a run reports: names, queries, documents."""

    def __init__(self) -> None:
        self.started: list[tuple[str | None, str]] = []
        self.documents: list[list[Document]] = []

    def on_retriever_start(self, serialized: Any, query: str, **kwargs: Any) -> None:
        self.started.append((kwargs.get("name"), query))

    def on_retriever_end(self, documents: Any, **kwargs: Any) -> None:
        self.documents.append(list(documents))
