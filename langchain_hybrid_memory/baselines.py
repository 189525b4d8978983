"""Baseline contexts: what simpler memories would send, rendered and budgeted like this one's.

An evaluation compares the memory's context with what other ways of choosing turns put in a
prompt of the same size. Each baseline ranks the session's stored turns its own way; the turns
then go through this project's budget (:func:`~langchain_hybrid_memory.budget.fit_window_and_recall`,
the same token counter, texts cut to ``recall_max_chars`` as recall cuts them) and are written as
this project writes recalled turns: in time order, one line per turn (``- Speaker: text``) under
one line per day. So only the choice of turns differs between the methods.

Methods (:data:`BASELINES`):

* ``"recent turns"``: the latest turns that fit (the full history truncated to the budget, what
  a token-buffer memory or ``trim_messages(strategy="last")`` keeps);
* ``"bm25"``: turns ranked by BM25 alone (this project's index: Snowball stems, no stop words);
* ``"dense"``: turns ranked by cosine similarity alone, with the memory's own embeddings and
  the vectors it stored;
* ``"rrf"``: reciprocal-rank fusion of the two rankings (``1 / (60 + rank)`` summed, Cormack
  et al., SIGIR 2009);

and :meth:`SessionBaselines.full_history`: every turn, with no budget (what replaying the whole
conversation costs).

Example:
    >>> from datetime import datetime
    >>> from langchain_core.embeddings import DeterministicFakeEmbedding
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> from langchain_hybrid_memory import HybridMemory
    >>> memory = HybridMemory(embeddings=DeterministicFakeEmbedding(size=16))
    >>> _ = memory.add_messages("s", [HumanMessage("I keep bees in Porto", name="Ana"),
    ...     AIMessage("How many hives?", name="Rui")], timestamp=datetime(2023, 5, 8))
    >>> _ = memory.add_messages("s", [HumanMessage(f"Recipe {i} needs rice", name="Ana")
    ...     for i in range(40)], timestamp=datetime(2023, 6, 1))
    >>> baselines = SessionBaselines.of(memory, "s")
    >>> context = baselines.context("bm25", "Where are the bees?", 60)
    >>> print(context.to_text())
    System: Memory of this conversation (the latest turns follow as messages).
    <BLANKLINE>
    Earlier turns relevant now:
    Mon 8 May 2023:
    - Ana: I keep bees in Porto
    >>> baselines.full_history().tokens > 60
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from langchain_hybrid_memory._search import normalize_rows
from langchain_hybrid_memory.budget import ContextCandidates, fit_window_and_recall
from langchain_hybrid_memory.config import BudgetShares
from langchain_hybrid_memory.context import MemoryContext, render_messages
from langchain_hybrid_memory.errors import InvalidInputError
from langchain_hybrid_memory.lexical import LexicalIndex
from langchain_hybrid_memory.types import RecalledTurn

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from langchain_core.embeddings import Embeddings
    from langchain_core.messages import BaseMessage

    from langchain_hybrid_memory.hybrid import HybridMemory
    from langchain_hybrid_memory.types import Turn

__all__ = ["BASELINES", "RRF_K", "Baseline", "SessionBaselines", "reciprocal_rank_fusion"]

#: A baseline's name.
Baseline = Literal["recent turns", "bm25", "dense", "rrf"]
#: Every baseline, in the order tables show them.
BASELINES: tuple[Baseline, ...] = get_args(Baseline)
#: The constant of reciprocal-rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009).
RRF_K = 60
#: Every token of a baseline's context goes to its turns.
_ALL_TO_RECALL = BudgetShares(recall=1.0, window=0.0, summary=0.0, entities=0.0)


@dataclass(frozen=True)
class SessionBaselines:
    """The baselines of one stored session: its turns, their vectors and a BM25 index.

    Build it once per session with :meth:`of` (it reads the turns and vectors the memory
    stored: nothing is embedded again but the queries), then ask for contexts.

    Attributes:
        session_id: The session.
        turns: Every turn of the session, oldest first.
        vectors: One unit-length row per turn (``None`` when the session has no vectors).
        lexical: BM25 over the turns' texts.
        embeddings: Embeds the queries (the memory's own embeddings).
        token_counter: Counts a context's tokens (the memory's own counter).
        recall_max_chars: Longest text a turn contributes, as in the memory's recall.
    """

    session_id: str
    turns: tuple[Turn, ...]
    vectors: np.ndarray | None
    lexical: LexicalIndex
    embeddings: Embeddings
    token_counter: Callable[[Sequence[BaseMessage]], int]
    recall_max_chars: int | None

    @classmethod
    def of(
        cls, memory: HybridMemory, session_id: str, *, embeddings: Embeddings | None = None
    ) -> SessionBaselines:
        """Read a session's turns and stored vectors from ``memory``.

        Args:
            memory: The memory the session was fed into (flushed, so every turn has a vector).
            session_id: The session.
            embeddings: Embeds queries; default ``memory.embeddings`` (pass a caching wrapper
                to embed each query once for several contexts).
        """
        turns = tuple(memory.turns(session_id))
        ids, matrix = memory.store.get_vectors(session_id)
        vectors = None
        if matrix is not None and len(ids):
            rows = {turn_id: row for row, turn_id in enumerate(ids)}
            dimension = matrix.shape[1]
            ordered = np.zeros((len(turns), dimension), dtype=np.float32)
            for position, turn in enumerate(turns):
                row = rows.get(turn.id)
                if row is not None:
                    ordered[position] = matrix[row]
            vectors = normalize_rows(ordered)
        lexical = LexicalIndex()
        for turn in turns:
            lexical.add(turn.id, turn.text)
        return cls(
            session_id=session_id,
            turns=turns,
            vectors=vectors,
            lexical=lexical,
            embeddings=embeddings or memory.embeddings,
            token_counter=memory.token_counter,
            recall_max_chars=memory.config.recall_max_chars,
        )

    def full_history(self, query: str = "") -> MemoryContext:
        """Every turn of the session, whole, with no budget: ``tokens`` is what it costs."""
        recalled = tuple(RecalledTurn(turn, 0.0, None, 0.0) for turn in self.turns)
        tokens = self.token_counter(render_messages("", [], recalled, []))
        return MemoryContext(
            session_id=self.session_id,
            query=query,
            summary="",
            entities=(),
            recalled=recalled,
            window=(),
            section_tokens={"recall": tokens},
            omitted={},
            tokens=tokens,
            token_budget=tokens,
        )

    def context(self, method: Baseline, query: str, budget: int) -> MemoryContext:
        """The context ``method`` builds for ``query`` within ``budget`` tokens.

        Raises:
            InvalidInputError: An unknown method or a budget below 1.
        """
        if method not in BASELINES:
            msg = f"unknown baseline {method!r}; expected one of {', '.join(BASELINES)}"
            raise InvalidInputError(msg)
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            msg = f"budget must be an integer >= 1, got {budget!r}"
            raise InvalidInputError(msg)
        ranked = self.ranking(method, query)
        fitted = fit_window_and_recall(
            ContextCandidates("", [], ranked, []),
            budget,
            self.token_counter,
            _ALL_TO_RECALL,
            recall_max_chars=self.recall_max_chars,
        )
        return MemoryContext(
            session_id=self.session_id,
            query=query,
            summary="",
            entities=(),
            recalled=fitted.recalled,
            window=(),
            section_tokens=fitted.section_tokens,
            omitted=fitted.omitted,
            tokens=fitted.tokens,
            token_budget=budget,
        )

    def ranking(self, method: Baseline, query: str) -> list[RecalledTurn]:
        """The session's turns as ``method`` ranks them for ``query``, best first."""
        if method == "recent turns":
            return [RecalledTurn(turn, 0.0, None, 0.0) for turn in reversed(self.turns)]
        dense = self._dense_scores(query) if method in ("dense", "rrf") else None
        lexical = self.lexical.row_scores(query) if method in ("bm25", "rrf") else None
        dense_order = [] if dense is None else list(np.argsort(-dense, kind="stable"))
        lexical_order = (
            []
            if lexical is None
            else [int(row) for row in np.argsort(-lexical, kind="stable") if lexical[row] > 0]
        )
        if method == "dense":
            order, scores = dense_order, dense
        elif method == "bm25":
            order, scores = lexical_order, lexical
        else:
            fused = reciprocal_rank_fusion([dense_order, lexical_order])
            order = sorted(fused, key=lambda row: -fused[row])
            scores = np.zeros(len(self.turns), dtype=np.float32)
            scores[list(fused)] = list(fused.values())
        return [
            RecalledTurn(
                self.turns[row],
                float(scores[row]) if scores is not None else 0.0,
                None if dense is None else float(dense[row]),
                0.0 if lexical is None else float(lexical[row]),
            )
            for row in order
        ]

    def _dense_scores(self, query: str) -> np.ndarray | None:
        if self.vectors is None:
            return None
        query_vector = normalize_rows(np.asarray(self.embeddings.embed_query(query)))[0]
        return np.asarray(self.vectors @ query_vector)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = RRF_K
) -> Mapping[int, float]:
    """Fuse rankings (items best first) by summing ``1 / (k + rank)``, ranks from 1.

    Example:
        >>> fused = reciprocal_rank_fusion([[3, 1, 2], [1, 4]])
        >>> sorted(fused, key=lambda item: -fused[item])
        [1, 3, 4, 2]
    """
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused
