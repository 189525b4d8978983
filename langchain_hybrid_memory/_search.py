"""The search index of one session: earlier turns found by dense and lexical search, fused.

A :class:`SearchIndex` is a FAISS inner-product index over normalized turn embeddings (ids are
turn ids) next to a :class:`~langchain_hybrid_memory.lexical.LexicalIndex`. It is a cache of
the store's turns and vectors, rebuilt from them by a process that meets the session (see
:mod:`~langchain_hybrid_memory._sessions`); the recall step that uses it is
:mod:`~langchain_hybrid_memory._recall`.
A query takes the best candidates of each (and their adjacent turns), scores every candidate on
both, and fuses the z-normalized scores with a weight (dense 0.5 by default): lexical search finds
names, numbers and rare words that a small embedding model blurs, the embedding finds paraphrases.

A turn rarely answers a question alone, so the fused score also looks around it:

* the dense side adds the similarity of the query to the turn *in context* (the normalized sum of
  the vectors of the turn and its two neighbours), which costs no extra embedding;
* a share of the mean fused score of the adjacent turns;
* the best fused score of the turn's *episode* (a run of turns without a long silence, e.g. one
  sitting of a chat): a conversation about the topic lifts all its turns;
* a boost for turns said by a speaker the query names (``message.name``), whose name is also
  indexed with each of their turns for the lexical search;
* a boost for turns said in a period of the calendar the query names ("in May 2023", "on 7
  July"), or in the week after it (people tell what happened "last week").

A speaker's name says little about meaning: people rarely say their own name, so a query
vector pointing toward "Ana" finds the turns that *address* Ana, not what Ana said. Before the
dense search, the direction of each speaker name the query names is projected out of the query
vector (one embedding per speaker name, kept with the index); the name still counts through
the lexical search and the speaker boost.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, cast

import faiss
import numpy as np

from langchain_hybrid_memory._periods import periods_named
from langchain_hybrid_memory.errors import EmbeddingError
from langchain_hybrid_memory.lexical import LexicalIndex, top_rows

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from datetime import datetime

__all__ = ["RecallHit", "SearchIndex", "normalize_rows"]

#: Silence after which the next turn starts a new episode.
EPISODE_GAP = timedelta(minutes=30)
#: Weight of the query's similarity to a turn in context (turn + neighbours), on the dense side.
_CONTEXT_WEIGHT = 1.0
#: Share of the adjacent turns' mean fused score added to a turn's.
_NEIGHBOUR_WEIGHT = 0.4
#: Share of the best fused score of the turn's episode added to a turn's.
_EPISODE_WEIGHT = 0.5
#: Added (in standard deviations) to turns by a speaker the query names.
_SPEAKER_BOOST = 1.5
#: Added (in standard deviations) to turns said in a period the query names: a named period
#: should outweigh most of what ranks a turn outside it (2 to 3 measured alike; the smallest kept).
_PERIOD_BOOST = 2.0
#: How long after a period named in a query its turns still get the boost: what happened in a
#: period is often told in the days after it ("last week I ...").
PERIOD_SLACK = timedelta(days=7)


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


@dataclass(frozen=True)
class WordScores:
    """A query's BM25 scores, computed ahead of the search (while the query is embedded).

    The search uses them only if the index has not grown since: else it scores again.
    """

    query: str
    documents: int
    scores: np.ndarray | None


class SearchIndex:
    """The dense and lexical search indexes of one session, kept in step.

    Texts are indexed lexically as soon as they are stored; vectors may arrive later (a turn
    in the recent window is embedded with the next query, or after an embedding failure), so a
    turn can be findable by words before it is findable by meaning. Not thread-safe: its owner
    (:class:`~langchain_hybrid_memory._sessions.SessionState`) serializes access.

    Example:
        >>> index = SearchIndex()
        >>> index.add_texts([0, 1], ["I'm allergic to peanuts", "I live in Porto"])
        >>> index.add_vectors([0, 1], np.array([[1.0, 0.0], [0.0, 1.0]]))
        >>> [hit.turn_id for hit in index.search("peanuts?", np.array([0.9, 0.1]), k=1)]
        [0]
    """

    def __init__(self) -> None:
        self.lexical = LexicalIndex()
        self._dense: faiss.IndexIDMap2 | None = None
        #: Row of each turn's vector in the flat index, by turn id (-1: none); grown as needed.
        self._row_of = np.full(0, -1, dtype=np.int64)
        #: By turn id t: the dot product of the vectors of t and t + 1 (``_next``), and of
        #: t - 1 and t + 1 (``_across``), kept as vectors arrive (valid where both exist), so
        #: a turn's context score needs no vector of its neighbours at query time.
        self._next = np.zeros(0, dtype=np.float32)
        self._across = np.zeros(0, dtype=np.float32)
        #: By turn id: its vector's squared length (1, or 0 for an all-zero embedding).
        self._own = np.zeros(0, dtype=np.float32)
        #: Highest turn id this index has seen (texts), -1 for none.
        self.indexed_through = -1
        #: Speaker name (``message.name``) of each turn that has one.
        self._speakers: dict[int, str] = {}
        #: The speaker names by their case-folded form, with a pattern finding them in a query.
        self._names: dict[str, re.Pattern[str]] = {}
        #: Episode number of each turn; the current episode and when its last turn was said.
        self._episodes: dict[int, int] = {}
        self._episode = -1
        self._last_time: datetime | None = None
        #: The day of each turn with a timestamp (proleptic ordinal, in the timestamp's zone).
        self._days: dict[int, int] = {}
        #: The speaker names as first written, and each one's (normalized) embedding once known.
        self._spelling: dict[str, str] = {}
        self._name_vectors: dict[str, np.ndarray] = {}

    @property
    def dimension(self) -> int | None:
        """The embedding dimension, once a vector was added."""
        return None if self._dense is None else int(self._dense.d)

    def has_vector(self, turn_id: int) -> bool:
        """Whether turn ``turn_id`` has an embedding in the index."""
        return 0 <= turn_id < len(self._row_of) and self._row_of[turn_id] >= 0

    def vector(self, turn_id: int) -> np.ndarray | None:
        """The stored (normalized) embedding of a turn, or ``None`` when it has none."""
        if not self.has_vector(turn_id):
            return None
        vector: np.ndarray = self._stored()[self._row_of[turn_id]].copy()
        return vector

    def _rows(self, turn_ids: np.ndarray) -> np.ndarray:
        """The flat-index row of each turn id (-1 where it has no vector, or is no turn)."""
        inside = (turn_ids >= 0) & (turn_ids < len(self._row_of))
        rows = np.full(len(turn_ids), -1, dtype=np.int64)
        rows[inside] = self._row_of[turn_ids[inside]]
        return rows

    def _stored(self) -> np.ndarray:
        """The stored vectors, one row each, as a view of the flat index's own memory.

        Valid until the next :meth:`add_vectors` (which may move that memory): never keep it.
        FAISS's ``reconstruct_batch`` looks each id up one by one; this is one NumPy gather.
        """
        assert self._dense is not None
        flat = cast("faiss.IndexFlat", faiss.downcast_index(self._dense.index))
        count, dimension = int(flat.ntotal), int(flat.d)
        stored: np.ndarray = faiss.rev_swig_ptr(flat.get_xb(), count * dimension)
        return stored.reshape(count, dimension)

    def add_texts(
        self,
        turn_ids: Sequence[int],
        texts: Sequence[str],
        *,
        speakers: Sequence[str | None] | None = None,
        timestamps: Sequence[datetime] | None = None,
    ) -> None:
        """Index texts lexically (empty texts are skipped, ids still count as seen).

        Args:
            turn_ids: The turns' ids, in the order they were said.
            texts: Their texts.
            speakers: Their speakers' names (``None`` for none), indexed with the text.
            timestamps: When they were said, to split the session into episodes.
        """
        names = speakers if speakers is not None else [None] * len(turn_ids)
        for position, (turn_id, text, name) in enumerate(zip(turn_ids, texts, names, strict=True)):
            if timestamps is not None:
                self._place_in_episode(turn_id, timestamps[position])
            if name:
                self._speakers[turn_id] = name
                key = name.casefold()
                if key not in self._names:
                    self._spelling[key] = name
                    self._names[key] = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", re.IGNORECASE)
            if text.strip():
                self.lexical.add(turn_id, f"{name} {text}" if name else text)
            self.indexed_through = max(self.indexed_through, turn_id)

    def _place_in_episode(self, turn_id: int, moment: datetime) -> None:
        if self._last_time is None or moment - self._last_time > EPISODE_GAP:
            self._episode += 1
        self._episodes[turn_id] = self._episode
        self._days[turn_id] = moment.toordinal()
        self._last_time = moment

    def add_vectors(self, turn_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add embeddings (normalized here) under their turn ids; known ids are skipped."""
        matrix = normalize_rows(vectors)
        if self._dense is not None and matrix.shape[1] != self._dense.d:
            msg = (
                f"embeddings of dimension {matrix.shape[1]} do not match the session's "
                f"{self._dense.d}: use the model the session was embedded with, or forget it"
            )
            raise EmbeddingError(msg)
        keep: list[int] = []
        seen: set[int] = set()
        for i, turn_id in enumerate(turn_ids):
            if not self.has_vector(turn_id) and turn_id not in seen:
                keep.append(i)
                seen.add(turn_id)
        if not keep:
            return
        if self._dense is None:
            self._dense = faiss.IndexIDMap2(faiss.IndexFlatIP(matrix.shape[1]))
        ids = np.asarray([turn_ids[i] for i in keep], dtype=np.int64)
        first_row = int(self._dense.ntotal)
        self._dense.add_with_ids(matrix[keep], ids)
        needed = int(ids.max()) + 2
        if needed > len(self._row_of):  # grow by doubling: amortized O(1) per turn
            size = max(needed, 2 * len(self._row_of), 64)
            self._row_of = _grown(self._row_of, size, -1)
            self._next = _grown(self._next, size, 0.0)
            self._across = _grown(self._across, size, 0.0)
            self._own = _grown(self._own, size, 0.0)
        self._row_of[ids] = np.arange(first_row, first_row + len(ids), dtype=np.int64)
        self._pair_dots(ids)

    def _pair_dots(self, new: np.ndarray) -> None:
        """Update the neighbour dot products that the vectors of turns ``new`` complete."""
        stored = self._stored()
        rows = self._rows(new)
        self._own[new] = np.einsum("ij,ij->i", stored[rows], stored[rows], dtype=np.float32)
        # the pairs (a, b) a new vector is part of, and where each dot product goes
        for first, second, target, at in (
            (new - 1, new, self._next, new - 1),
            (new, new + 1, self._next, new),
            (new - 2, new, self._across, new - 1),
            (new, new + 2, self._across, new + 1),
        ):
            a, b = self._rows(first), self._rows(second)
            both = (a >= 0) & (b >= 0)
            if both.any():
                target[at[both]] = np.einsum(
                    "ij,ij->i", stored[a[both]], stored[b[both]], dtype=np.float32
                )

    def search(
        self,
        query: str,
        query_vector: np.ndarray | None,
        *,
        k: int,
        candidates: int = 50,
        dense_weight: float = 0.5,
        exclude: Collection[int] = (),
        words: WordScores | None = None,
    ) -> list[RecallHit]:
        """The ``k`` best turns for the query, excluding ``exclude`` (the window).

        Args:
            query: The query text, for the lexical search.
            query_vector: The query embedding, or ``None`` to search lexically only.
            k: How many turns to return at most.
            candidates: How many candidates each search proposes before fusion.
            dense_weight: Weight of the dense score in the fused score.
            exclude: Turn ids never to return.
            words: The query's lexical scores from :meth:`score_words`, if computed already.

        Returns:
            Hits ordered by fused score, best first.
        """
        if k <= 0:
            return []
        named = self._named(query)
        if query_vector is not None and named:
            query_vector = self._without_names(query_vector, named)
        fresh = words is not None and (words.query, words.documents) == (query, len(self.lexical))
        lexical_scores = words.scores if fresh and words else self.lexical.row_scores(query)
        dense = self._dense_candidates(query_vector, candidates + len(exclude))
        pool = set(dense)
        if lexical_scores is not None:
            for row in top_rows(lexical_scores, candidates + len(exclude)):
                if lexical_scores[row] > 0:
                    pool.add(self.lexical.doc_id(int(row)))
        for turn_id in list(pool):  # a neighbour of a candidate often answers with it
            pool.update(n for n in (turn_id - 1, turn_id + 1) if 0 <= n <= self.indexed_through)
        pool.difference_update(exclude)
        if not pool:
            return []
        ids = sorted(pool)
        dense_values = self._dense_scores(ids, dense, query_vector)
        cosines = dense_values  # reported as each hit's dense score
        if query_vector is not None:
            dense_values = dense_values + _CONTEXT_WEIGHT * self._context_scores(ids, query_vector)
        lexical_values = np.zeros(len(ids), dtype=np.float32)
        if lexical_scores is not None:
            rows = self.lexical.rows(ids)
            found = rows >= 0
            lexical_values[found] = lexical_scores[rows[found]]
        fused = self._around(ids, _fuse(dense_values, lexical_values, dense_weight), named)
        fused += _PERIOD_BOOST * self._in_periods(ids, query)
        order = np.argsort(-fused, kind="stable")[:k]
        # plain floats in one go: per-element NumPy scalars cost more than the rest of a hit
        scores, denses = fused[order].tolist(), cosines[order].tolist()
        lexicals = lexical_values[order].tolist()
        return [
            RecallHit(
                turn_id=ids[i],
                score=score,
                dense_score=None if math.isnan(dense) else dense,  # NaN: no vector
                lexical_score=lexical,
            )
            for i, score, dense, lexical in zip(
                order.tolist(), scores, denses, lexicals, strict=True
            )
        ]

    def speakers_named(self, query: str) -> list[str]:
        """The speaker names (``message.name``) ``query`` names, as the turns wrote them.

        Example:
            >>> index = SearchIndex()
            >>> index.add_texts([0, 1], ["Hi!", "Hello"], speakers=["Ana", "Rui"])
            >>> index.speakers_named("What did ana say?")
            ['Ana']
        """
        return [self._spelling[key] for key in sorted(self._named(query))]

    def names_to_embed(self, query: str) -> list[str]:
        """The speaker names ``query`` names whose embedding the index lacks (see the module)."""
        return [
            self._spelling[key]
            for key in sorted(self._named(query))
            if key not in self._name_vectors
        ]

    def add_name_vectors(self, names: Sequence[str], vectors: np.ndarray) -> None:
        """Keep the embeddings of speaker names, projected out of the queries that name them."""
        for name, vector in zip(names, normalize_rows(vectors), strict=True):
            self._name_vectors[name.casefold()] = vector

    def _named(self, query: str) -> set[str]:
        """The case-folded speaker names ``query`` names."""
        return {key for key, pattern in self._names.items() if pattern.search(query)}

    def _without_names(self, query_vector: np.ndarray, named: set[str]) -> np.ndarray:
        """The query vector with the direction of each named speaker's name projected out."""
        query: np.ndarray = normalize_rows(query_vector)[0]
        for key in sorted(named):
            name = self._name_vectors.get(key)
            if name is not None and name.shape == query.shape:
                query = query - float(query @ name) * name
        return query

    def _in_periods(self, ids: list[int], query: str) -> np.ndarray:
        """1 for each turn said in a period ``query`` names (or the week after it), else 0.

        Nothing is favoured when the query names no period, or every candidate is in one.
        """
        values = np.zeros(len(ids))
        if self._last_time is None:
            return values
        periods = periods_named(query, self._last_time.date())
        if not periods:
            return values
        days = np.asarray([self._days.get(t, -1) for t in ids], dtype=np.int64)
        slack = PERIOD_SLACK.days
        for first, after in periods:
            values[(days >= first.toordinal()) & (days < after.toordinal() + slack)] = 1.0
        return np.zeros(len(ids)) if values.all() else values

    def score_words(self, query: str) -> WordScores:
        """The query's lexical scores, for a :meth:`search` that comes later."""
        return WordScores(query, len(self.lexical), self.lexical.row_scores(query))

    def _around(self, ids: list[int], base: np.ndarray, named: set[str]) -> np.ndarray:
        """Add to each turn's fused score what its neighbours, episode and speaker say.

        ``named``: the case-folded speaker names the query names.
        """
        keys = np.asarray(ids, dtype=np.int64)
        fused = base.astype(np.float64)
        total = np.zeros(len(ids))
        count = np.zeros(len(ids))
        for offset in (-1, 1):
            rows = _positions(keys, keys + offset)
            found = rows >= 0
            total[found] += base[rows[found]]
            count[found] += 1
        fused += _NEIGHBOUR_WEIGHT * np.divide(
            total, count, out=np.zeros(len(ids)), where=count > 0
        )
        episodes = np.asarray([self._episodes.get(t, -1) for t in ids], dtype=np.int64)
        _, group = np.unique(episodes, return_inverse=True)
        best = np.full(int(group.max()) + 1, -np.inf)
        np.maximum.at(best, group, base)
        fused += _EPISODE_WEIGHT * best[group]
        if named and len(named) < len(self._names):
            by_named = [(self._speakers.get(t) or "").casefold() in named for t in ids]
            fused += _SPEAKER_BOOST * np.asarray(by_named, dtype=np.float64)
        return fused

    def _context_scores(self, ids: list[int], query_vector: np.ndarray) -> np.ndarray:
        """Cosine of the query with the sum of each turn's vector and its neighbours' (NaN: none)."""
        values = np.full(len(ids), np.nan, dtype=np.float32)
        query = normalize_rows(query_vector)
        if self._dense is None or query.shape[1] != self._dense.d:
            return values
        keys = np.asarray(ids, dtype=np.int64)
        before, own, after = self._rows(keys - 1), self._rows(keys), self._rows(keys + 1)
        has = own >= 0
        if not has.any():
            return values
        # The sum's dot product with the query is the sum of the rows' own (one product per
        # row involved); its length comes from the rows' and the neighbours' stored dot
        # products, so no neighbour's vector is gathered twice.
        involved = np.unique(np.concatenate([before, own, after]))
        toward_query = self._stored()[np.maximum(involved, 0)] @ query[0]
        toward_query[involved < 0] = 0.0
        toward = sum(toward_query[np.searchsorted(involved, rows)] for rows in (before, own, after))
        b, a = before >= 0, after >= 0
        last = len(self._next) - 1  # keys with a vector (the ones scored) are inside
        at, previous = np.clip(keys, 0, last), np.clip(keys - 1, 0, last)
        following = np.clip(keys + 1, 0, last)
        squared = self._own[at] + b * self._own[previous] + a * self._own[following]
        squared += 2.0 * (b * self._next[previous] + a * self._next[at])
        squared += 2.0 * (b & a) * self._across[at]
        norms = np.sqrt(np.maximum(squared, 0.0))
        values[has] = toward[has] / np.maximum(norms[has], 1e-9)
        return values

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
        if missing:
            rows = self._rows(np.asarray([ids[i] for i in missing], dtype=np.int64))
            with_vectors = [i for i, row in zip(missing, rows.tolist(), strict=True) if row >= 0]
            query = normalize_rows(query_vector)
            if with_vectors and query.shape[1] == self._dense.d:
                values[with_vectors] = self._stored()[rows[rows >= 0]] @ query[0]
        return values


def _grown(values: np.ndarray, size: int, fill: float) -> np.ndarray:
    """``values`` extended to ``size`` entries with ``fill``."""
    grown = np.full(size, fill, dtype=values.dtype)
    grown[: len(values)] = values
    return grown


def _positions(sorted_keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index of each ``wanted`` value in ``sorted_keys`` (ascending, unique), -1 where absent.

    Example:
        >>> _positions(np.array([2, 5, 9]), np.array([5, 3, 9])).tolist()
        [1, -1, 2]
    """
    rows = np.searchsorted(sorted_keys, wanted)
    rows = np.minimum(rows, len(sorted_keys) - 1)
    return np.where(sorted_keys[rows] == wanted, rows, -1)


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
