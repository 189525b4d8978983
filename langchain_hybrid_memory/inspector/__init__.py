"""The memory inspector: a small local web app that shows what a memory store holds, and why.

``hybrid-memory serve`` runs it (install the ``inspector`` extra). Its pages list the users and
their sessions, a session's transcript page by page, the context that would be built for a
query typed in the page (every section with its tokens and scores, and what was left out and
why), the rolling summary with the turns it covers, entity facts with their history, a JSON
export, and, only when started with ``allow_erasure``, the erasure of a session or a user behind
a confirmation page that shows the :class:`~langchain_hybrid_memory.types.ErasureReport`.

It never shows an encryption key or the store's URL, and binds to loopback unless told.

Example:
    >>> from langchain_core.embeddings import DeterministicFakeEmbedding
    >>> from langchain_hybrid_memory import HybridMemory
    >>> from langchain_hybrid_memory.inspector import create_app
    >>> memory = HybridMemory(embeddings=DeterministicFakeEmbedding(size=8))
    >>> client = create_app(memory).test_client()
    >>> client.get("/").status_code
    200
    >>> client.post("/erase", data={"user": "ana"}).status_code  # read-only unless allowed
    403
"""

from __future__ import annotations

from langchain_hybrid_memory.inspector.app import create_app
from langchain_hybrid_memory.inspector.server import InspectorServer, check_host

__all__ = ["InspectorServer", "check_host", "create_app"]
