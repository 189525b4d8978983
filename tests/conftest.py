from __future__ import annotations

import pytest

from langchain_hybrid_memory.embeddings import LocalMiniLMEmbeddings


@pytest.fixture(scope="session")
def embeddings() -> LocalMiniLMEmbeddings:
    """The real local all-MiniLM-L6-v2 model, loaded once for the whole run."""
    model = LocalMiniLMEmbeddings()
    model.embed_query("warm up")
    return model
