"""Lexical recall: a BM25 index that grows one turn at a time.

Why not a BM25 library: ``bm25s`` and ``rank_bm25`` index a fixed corpus, so adding one turn means
re-indexing the whole conversation, work that grows with its length on every turn. This index
appends a turn's postings in O(its length) and scores a query with numpy over the postings of the
query's terms. Stemming comes from PyStemmer (Snowball).
"""

from __future__ import annotations

import math
import re
import threading
from array import array
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import Stemmer

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["LexicalIndex", "tokenize"]

_WORD = re.compile(r"\w+")
_STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
        "d",
        "ll",
        "m",
        "re",
        "ve",
        "don",
        "didn",
        "doesn",
        "isn",
        "wasn",
        "aren",
        "weren",
        "won",
        "hasn",
        "haven",
        "hadn",
        "let",
        "lets",
        "ok",
        "okay",
        "oh",
        "yeah",
        "yes",
        "hi",
        "hey",
        "thanks",
        "thank",
    ]
)
_local = threading.local()


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return str(_stemmer().stemWord(word))


def tokenize(text: str) -> list[str]:
    """Split text into lower-case, stemmed terms without stop words.

    Example:
        >>> tokenize("I'm allergic to peanuts, and I live in Porto!")
        ['allerg', 'peanut', 'live', 'porto']
    """
    return [_stem(word) for word in _WORD.findall(text.casefold()) if word not in _STOPWORDS]


class LexicalIndex:
    """An append-only BM25 (Okapi) index over turn texts.

    Example:
        >>> index = LexicalIndex()
        >>> index.add(0, "I'm allergic to peanuts")
        >>> index.add(1, "I live in Porto")
        >>> [doc_id for doc_id, _ in index.top("who is allergic?", 5)]
        [0]
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._doc_ids = array("q")
        self._lengths = array("f")
        self._total_length = 0
        self._row_of: dict[int, int] = {}
        self._postings: dict[str, tuple[array[int], array[float]]] = {}

    def __len__(self) -> int:
        return len(self._doc_ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._row_of

    def add(self, doc_id: int, text: str) -> None:
        """Index ``text`` under ``doc_id`` (a turn id); a known id is ignored."""
        if doc_id in self._row_of:
            return
        terms = tokenize(text)
        row = len(self._doc_ids)
        self._row_of[doc_id] = row
        self._doc_ids.append(doc_id)
        self._lengths.append(float(len(terms)))
        self._total_length += len(terms)
        counts: dict[str, int] = {}
        for term in terms:
            counts[term] = counts.get(term, 0) + 1
        for term, count in counts.items():
            rows, freqs = self._postings.setdefault(term, (array("i"), array("f")))
            rows.append(row)
            freqs.append(float(count))

    def row_scores(self, query: str) -> np.ndarray | None:
        """BM25 score of every indexed turn (by row, in insertion order) for ``query``.

        Returns:
            The scores, or ``None`` when no query term occurs in the index.
        """
        n_docs = len(self._doc_ids)
        terms = [term for term in dict.fromkeys(tokenize(query)) if term in self._postings]
        if not terms or n_docs == 0:
            return None
        lengths = np.frombuffer(self._lengths, dtype=np.float32)
        average = max(self._total_length / n_docs, 1e-9)
        norm = self.k1 * (1.0 - self.b + self.b * lengths / average)
        scores = np.zeros(n_docs, dtype=np.float32)
        for term in terms:
            rows_buf, freqs_buf = self._postings[term]
            rows = np.frombuffer(rows_buf, dtype=np.int32)
            freqs = np.frombuffer(freqs_buf, dtype=np.float32)
            idf = math.log(1.0 + (n_docs - len(rows) + 0.5) / (len(rows) + 0.5))
            scores[rows] += idf * freqs * (self.k1 + 1.0) / (freqs + norm[rows])
        return scores

    def doc_id(self, row: int) -> int:
        """The turn id indexed at ``row``."""
        return self._doc_ids[row]

    def row(self, doc_id: int) -> int | None:
        """The row of turn ``doc_id``, or ``None`` when it is not indexed."""
        return self._row_of.get(doc_id)

    def rows(self, doc_ids: Sequence[int]) -> np.ndarray:
        """The row of each turn in ``doc_ids``, -1 where it is not indexed."""
        get = self._row_of.get
        return np.fromiter((get(doc_id, -1) for doc_id in doc_ids), np.int64, len(doc_ids))

    def top(self, query: str, n: int) -> list[tuple[int, float]]:
        """The ``n`` best turns for ``query`` with a positive score, best first."""
        scores = self.row_scores(query)
        if scores is None or n <= 0:
            return []
        rows = top_rows(scores, n)
        return [(self._doc_ids[row], float(scores[row])) for row in rows if scores[row] > 0]


def top_rows(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` largest scores, largest first (without sorting all of them).

    Example:
        >>> top_rows(np.array([0.1, 0.9, 0.5]), 2).tolist()
        [1, 2]
    """
    if n >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, n)[:n]
    return part[np.argsort(-scores[part], kind="stable")]
