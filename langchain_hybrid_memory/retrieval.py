"""Recall: find earlier turns for the current input by dense and lexical search, fused.

Each session has a :class:`SessionIndex`: a FAISS inner-product index over normalized turn
embeddings (ids are turn ids) next to a :class:`~langchain_hybrid_memory.lexical.LexicalIndex`.
A query takes the best candidates of each, scores every candidate on both, and fuses the
z-normalized scores with a weight (dense 0.7 by default): lexical search finds names, numbers and
rare words that a small embedding model blurs, the embedding finds paraphrases.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import faiss
import numpy as np

from langchain_hybrid_memory.errors import EmbeddingError
from langchain_hybrid_memory.lexical import LexicalIndex, top_rows

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

__all__ = ["RecallHit", "SessionIndex", "normalize_rows"]


@dataclass(frozen=True)
class RecallHit:
    """A turn id found by recall, with its fused, dense and lexical scores."""

    turn_id: int
    score: float
    dense_score: float | None
    lexical_score: float


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit length (zero rows stay zero).

    Example:
        >>> normalize_rows(np.array([[3.0, 4.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929]]
    """
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        matrix = matrix.reshape(1, -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


class SessionIndex:
    """The dense and lexical search indexes of one session, kept in step.

    Texts are indexed lexically as soon as they are stored; vectors may arrive later (after an
    embedding failure), so a turn can be findable by words before it is findable by meaning.

    Example:
        >>> index = SessionIndex()
        >>> index.add_texts([0, 1], ["I'm allergic to peanuts", "I live in Porto"])
        >>> index.add_vectors([0, 1], np.array([[1.0, 0.0], [0.0, 1.0]]))
        >>> [hit.turn_id for hit in index.search("peanuts?", np.array([0.9, 0.1]), k=1)]
        [0]
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        #: Held while the session's summary is folded, so one thread folds it at a time.
        self.fold_lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything indexed (the lock stays): the session is loaded again from scratch."""
        self.lexical = LexicalIndex()
        self._dense: faiss.IndexIDMap2 | None = None
        self._vector_ids: set[int] = set()
        #: Highest turn id this index has seen (texts), -1 for none.
        self.indexed_through = -1
        #: Texts of turns still waiting for an embedding (after a failure), by turn id.
        self.pending: dict[int, str] = {}
        #: Identifies the last indexed turn, to notice a session erased and written anew.
        self.fingerprint: tuple[str, int] | None = None

    @property
    def dimension(self) -> int | None:
        """The embedding dimension, once a vector was added."""
        return None if self._dense is None else int(self._dense.d)

    def has_vector(self, turn_id: int) -> bool:
        """Whether turn ``turn_id`` has an embedding in the index."""
        return turn_id in self._vector_ids

    def vector(self, turn_id: int) -> np.ndarray | None:
        """The stored (normalized) embedding of a turn, or ``None`` when it has none."""
        if self._dense is None or turn_id not in self._vector_ids:
            return None
        return np.asarray(self._dense.reconstruct(int(turn_id)), dtype=np.float32)

    def add_texts(self, turn_ids: Sequence[int], texts: Sequence[str]) -> None:
        """Index texts lexically (empty texts are skipped, ids still count as seen)."""
        for turn_id, text in zip(turn_ids, texts, strict=True):
            if text.strip():
                self.lexical.add(turn_id, text)
            self.indexed_through = max(self.indexed_through, turn_id)

    def add_vectors(self, turn_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add embeddings (normalized here) under their turn ids; known ids are skipped."""
        matrix = normalize_rows(vectors)
        if self._dense is not None and matrix.shape[1] != self._dense.d:
            msg = (
                f"embeddings of dimension {matrix.shape[1]} do not match the session's "
                f"{self._dense.d}: use the model the session was embedded with, or forget it"
            )
            raise EmbeddingError(msg)
        keep = [i for i, turn_id in enumerate(turn_ids) if turn_id not in self._vector_ids]
        if not keep:
            return
        if self._dense is None:
            self._dense = faiss.IndexIDMap2(faiss.IndexFlatIP(matrix.shape[1]))
        ids = np.asarray([turn_ids[i] for i in keep], dtype=np.int64)
        self._dense.add_with_ids(matrix[keep], ids)
        self._vector_ids.update(int(i) for i in ids)

    def search(
        self,
        query: str,
        query_vector: np.ndarray | None,
        *,
        k: int,
        candidates: int = 50,
        dense_weight: float = 0.7,
        exclude: Collection[int] = (),
    ) -> list[RecallHit]:
        """The ``k`` best turns for the query, excluding ``exclude`` (the window).

        Args:
            query: The query text, for the lexical search.
            query_vector: The query embedding, or ``None`` to search lexically only.
            k: How many turns to return at most.
            candidates: How many candidates each search proposes before fusion.
            dense_weight: Weight of the dense score in the fused score.
            exclude: Turn ids never to return.

        Returns:
            Hits ordered by fused score, best first.
        """
        if k <= 0:
            return []
        lexical_scores = self.lexical.row_scores(query)
        dense = self._dense_candidates(query_vector, candidates + len(exclude))
        pool = set(dense)
        if lexical_scores is not None:
            for row in top_rows(lexical_scores, candidates + len(exclude)):
                if lexical_scores[row] > 0:
                    pool.add(self.lexical.doc_id(int(row)))
        pool.difference_update(exclude)
        if not pool:
            return []
        ids = sorted(pool)
        dense_values = self._dense_scores(ids, dense, query_vector)
        lexical_values = np.zeros(len(ids), dtype=np.float32)
        if lexical_scores is not None:
            for i, turn_id in enumerate(ids):
                row = self.lexical.row(turn_id)
                if row is not None:
                    lexical_values[i] = lexical_scores[row]
        fused = _fuse(dense_values, lexical_values, dense_weight)
        order = np.argsort(-fused, kind="stable")[:k]
        return [
            RecallHit(
                turn_id=ids[i],
                score=float(fused[i]),
                dense_score=None if np.isnan(dense_values[i]) else float(dense_values[i]),
                lexical_score=float(lexical_values[i]),
            )
            for i in order
        ]

    def _dense_candidates(self, query_vector: np.ndarray | None, n: int) -> dict[int, float]:
        if query_vector is None or self._dense is None or self._dense.ntotal == 0:
            return {}
        query = normalize_rows(query_vector)
        if query.shape[1] != self._dense.d:
            return {}
        scores, ids = self._dense.search(query, min(n, self._dense.ntotal))
        return {int(i): float(s) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0}

    def _dense_scores(
        self, ids: list[int], known: dict[int, float], query_vector: np.ndarray | None
    ) -> np.ndarray:
        """Dense score of each id (NaN where the turn has no vector or there is no query)."""
        values = np.full(len(ids), np.nan, dtype=np.float32)
        if query_vector is None or self._dense is None:
            return values
        missing = [i for i, turn_id in enumerate(ids) if turn_id not in known]
        for i, turn_id in enumerate(ids):
            if turn_id in known:
                values[i] = known[turn_id]
        with_vectors = [i for i in missing if ids[i] in self._vector_ids]
        if with_vectors:
            query = normalize_rows(query_vector)
            if query.shape[1] == self._dense.d:
                keys = np.asarray([ids[i] for i in with_vectors], dtype=np.int64)
                rows = self._dense.reconstruct_batch(keys)
                values[with_vectors] = rows @ query[0]
        return values


def _zscore(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    if std < 1e-9:
        return np.zeros_like(values)
    return (values - float(values.mean())) / std


def _fuse(dense: np.ndarray, lexical: np.ndarray, dense_weight: float) -> np.ndarray:
    """Weighted sum of z-normalized scores; a side with no signal drops out of the sum."""
    has_dense = not bool(np.isnan(dense).all())
    has_lexical = bool((lexical > 0).any())
    if has_dense:
        floor = float(np.nanmin(dense))
        dense = np.where(np.isnan(dense), floor, dense)
    if has_dense and has_lexical:
        return dense_weight * _zscore(dense) + (1.0 - dense_weight) * _zscore(lexical)
    if has_dense:
        return _zscore(dense)
    return _zscore(lexical)
