from __future__ import annotations

import pytest

from langchain_hybrid_memory.embeddings import OnnxMiniLMEmbeddings


@pytest.fixture(scope="session")
def embeddings() -> OnnxMiniLMEmbeddings:
    """The default embeddings (all-MiniLM-L6-v2, int8, on ONNX Runtime), loaded once."""
    model = OnnxMiniLMEmbeddings()
    model.embed_query("warm up")
    return model
