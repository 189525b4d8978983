"""What this process keeps of each session: a cache of the store, never the truth.

A :class:`SessionState` holds, for one *incarnation* of a session (see
:class:`~langchain_hybrid_memory.types.SessionHead`), what is costly to read again: the search
index over its turns, the roles of its latest turns (where the recent window starts), and the
token counts of turns waiting for the summarizer. All of it is derived from turns, which never
change once stored, so it stays true as long as the incarnation does; a session erased (here
or by another worker) and written again is a new incarnation, and its state starts afresh.

:class:`Sessions` is the bounded cache of states (``index_cache_size``). Evicting a state loses
nothing: unfinished work lives elsewhere (turns waiting for a vector in
:class:`~langchain_hybrid_memory._indexing.Indexer`, the fold lease in the store), and a later
step rebuilds the state from the store's turns and vectors, without embedding anything again.

Locks: each state's lock guards its index and caches, held only inside its methods, never
across a step's I/O; the cache's lock guards the map of states.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from langchain_hybrid_memory._plans import cpu, twin
from langchain_hybrid_memory._search import SearchIndex
from langchain_hybrid_memory.errors import EmbeddingError
from langchain_hybrid_memory.window import window_start_index

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    import numpy as np

    from langchain_hybrid_memory._plans import Call, Plan
    from langchain_hybrid_memory._search import RecallHit, WordScores
    from langchain_hybrid_memory.stores.base import MemoryStore
    from langchain_hybrid_memory.types import SessionHead, Turn

__all__ = ["SessionState", "Sessions", "read_window"]

#: Turns read beyond the window, so a tool call just before it is usually found in one read.
WINDOW_SLACK = 8
#: A load of more turns than this is read and decoded in a worker thread (async).
BULK_READ = 256


@dataclass(frozen=True)
class _Role:
    """The role of one turn: all that finding the window's start needs."""

    role: str


class SessionState:
    """This process's cache of one incarnation of a session.

    Args:
        session_id: The session.
        incarnation: The incarnation the cache holds.
        keep_roles: How many of the latest turns' roles to keep (for the window's start).
        count_text: Counts a text's tokens, for summarizer batches; ``None`` counts none.
    """

    def __init__(
        self,
        session_id: str,
        incarnation: str,
        *,
        keep_roles: int,
        count_text: Callable[[str], int] | None,
        recalls: Callable[[Turn], bool] | None = None,
    ) -> None:
        self.session_id = session_id
        self.incarnation = incarnation
        #: which turns recall (and the summary) take in; the others are indexed without text
        self._recalls = recalls
        self._lock = threading.Lock()
        self._index = SearchIndex()
        self._roles: deque[str] = deque(maxlen=keep_roles)
        self._count_text = count_text
        self._tokens: dict[int, int] = {}
        self._query: tuple[str, np.ndarray] | None = None

    @property
    def next_turn(self) -> int:
        """The id of the first turn not in the cache yet (all before it are)."""
        with self._lock:
            return self._index.indexed_through + 1

    def add_turns(
        self, turns: Sequence[Turn], *, count_from: int = 0, count_until: int | None = None
    ) -> list[Turn] | None:
        """Index turns the store holds, in id order.

        Turns already in the cache are skipped; turns that would leave a gap after the cached
        ones are not added (``None`` is returned: the caller loads the gap from the store).

        Args:
            turns: Turns in id order.
            count_from: Count the tokens of turns from this id on (the older ones are
                summarized already)...
            count_until: ... up to this id (``None``: all); a fold that needs more counts
                reads them.

        Returns:
            The added turns, or ``None`` when they do not follow the cached ones.
        """
        with self._lock:
            fresh = [turn for turn in turns if turn.id > self._index.indexed_through]
            if fresh and fresh[0].id != self._index.indexed_through + 1:
                return None
            taken = [self._recalls is None or self._recalls(turn) for turn in fresh]
            self._index.add_texts(
                [t.id for t in fresh],
                [t.text if take else "" for t, take in zip(fresh, taken, strict=True)],
                speakers=[t.message.name for t in fresh],
                timestamps=[t.timestamp for t in fresh],
            )
            self._roles.extend(turn.role for turn in fresh)
            if self._count_text is not None:
                for turn, take in zip(fresh, taken, strict=True):
                    if count_from <= turn.id and (count_until is None or turn.id < count_until):
                        self._tokens[turn.id] = self._count_text(turn.text) if take else 0
            return [turn for turn, take in zip(fresh, taken, strict=True) if take]

    def add_vectors(self, turn_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Index stored vectors (known turns are skipped).

        Raises:
            EmbeddingError: The vectors' dimension is not the session's.
        """
        with self._lock:
            self._index.add_vectors(turn_ids, vectors)

    def check_dimension(self, dimension: int) -> None:
        """Refuse vectors of another dimension than the session's, before they are stored.

        Raises:
            EmbeddingError: The session was embedded with another dimension.
        """
        with self._lock:
            known = self._index.dimension
        if known is not None and known != dimension:
            msg = (
                f"the embeddings return dimension {dimension}, the session was embedded with "
                f"{known}: use the model the session was embedded with, or forget it"
            )
            raise EmbeddingError(msg)

    def has_vector(self, turn_id: int) -> bool:
        """Whether a turn's vector is in the cache."""
        with self._lock:
            return self._index.has_vector(turn_id)

    def remember_query(self, key: str, vector: np.ndarray) -> None:
        """Keep the latest query's vector: the user message it becomes is stored with it."""
        with self._lock:
            self._query = (key, vector)

    def query_vector(self, key: str) -> np.ndarray | None:
        """The vector of the latest query if it was ``key``."""
        with self._lock:
            query = self._query
        return query[1] if query is not None and query[0] == key else None

    def vector(self, turn_id: int) -> np.ndarray | None:
        """A turn's (normalized) vector, or ``None`` when it has none yet."""
        with self._lock:
            return self._index.vector(turn_id)

    def search(
        self,
        query: str,
        query_vector: np.ndarray | None,
        *,
        k: int,
        candidates: int,
        dense_weight: float,
        exclude: Collection[int],
        words: WordScores | None = None,
    ) -> list[RecallHit]:
        """The best turns for a query (see :meth:`SearchIndex.search`)."""
        with self._lock:
            return self._index.search(
                query,
                query_vector,
                k=k,
                candidates=candidates,
                dense_weight=dense_weight,
                exclude=exclude,
                words=words,
            )

    def speakers_named(self, query: str) -> list[str]:
        """The speaker names a query names (see :meth:`SearchIndex.speakers_named`)."""
        with self._lock:
            return self._index.speakers_named(query)

    def names_to_embed(self, query: str) -> list[str]:
        """Names the query names still without an embedding (see :mod:`._search`)."""
        with self._lock:
            return self._index.names_to_embed(query)

    def add_name_vectors(self, names: Sequence[str], vectors: np.ndarray) -> None:
        """Keep the embeddings of speaker names (see :meth:`SearchIndex.add_name_vectors`)."""
        with self._lock:
            self._index.add_name_vectors(names, vectors)

    def score_words(self, query: str) -> WordScores:
        """The query's lexical scores ahead of its search (see :meth:`SearchIndex.score_words`)."""
        with self._lock:
            return self._index.score_words(query)

    def window_start(self, count: int, window_turns: int) -> int | None:
        """Id of the window's first turn when the session has ``count`` turns.

        Returns ``None`` when the cache cannot tell: it is behind ``count``, or its roles do not
        reach back far enough.
        """
        with self._lock:
            if self._index.indexed_through + 1 != count:
                return None
            roles = [_Role(role) for role in self._roles]
        first = count - len(roles)
        start = window_start_index(roles, window_turns)
        if start == 0 and first > 0 and roles and roles[0].role == "tool":
            return None  # the window reaches past the cached roles
        return first + start

    def token_counts(self, first: int, stop: int) -> list[int] | None:
        """Tokens of turns ``first..stop-1`` (``None`` when one is unknown); forgets older ones."""
        with self._lock:
            for turn_id in [turn_id for turn_id in self._tokens if turn_id < first]:
                del self._tokens[turn_id]  # summarized meanwhile (here or by another worker)
            counts = [self._tokens.get(turn_id) for turn_id in range(first, stop)]
        if any(count is None for count in counts):
            return None
        return [count for count in counts if count is not None]


class Sessions:
    """The bounded cache of :class:`SessionState` objects, and the steps that fill them.

    Args:
        store: The store the states cache.
        capacity: How many sessions keep their state (``index_cache_size``).
        keep_roles: How many of the latest turns' roles a state keeps.
        count_text: Counts a text's tokens for summarizer batches (``None``: by turns only).
        count_ahead: How many turns after the summary a session loaded from the store counts
            (``summary_batch``: the most the next fold looks at).
        window_turns: The recent window's length (``window_turns`` of the configuration).
        unembedded: Receives the turns a load finds without a vector (to embed them).
    """

    def __init__(
        self,
        store: MemoryStore,
        *,
        capacity: int,
        keep_roles: int,
        count_text: Callable[[str], int] | None,
        count_ahead: int,
        window_turns: int,
        unembedded: Callable[[str, str, list[Turn]], None],
        recalls: Callable[[Turn], bool] | None = None,
    ) -> None:
        self._store = store
        self._recalls = recalls
        self._count_ahead = count_ahead
        self._window_turns = window_turns
        self._unembedded = unembedded
        self._capacity = capacity
        self._keep_roles = keep_roles
        self._count_text = count_text
        self._states: OrderedDict[str, SessionState] = OrderedDict()
        self._lock = threading.Lock()

    def state(self, session_id: str, incarnation: str) -> SessionState:
        """The session's state for ``incarnation`` (a new, empty one for another incarnation)."""
        with self._lock:
            state = self._states.get(session_id)
            if state is None or state.incarnation != incarnation:
                state = SessionState(
                    session_id,
                    incarnation,
                    keep_roles=self._keep_roles,
                    count_text=self._count_text,
                    recalls=self._recalls,
                )
                self._states[session_id] = state
            self._states.move_to_end(session_id)
            while len(self._states) > self._capacity:
                self._states.popitem(last=False)
            return state

    def cached(self, session_id: str, incarnation: str) -> SessionState | None:
        """The session's state if this process holds it for ``incarnation`` (never created)."""
        with self._lock:
            state = self._states.get(session_id)
        return state if state is not None and state.incarnation == incarnation else None

    def forget(self, session_ids: Collection[str]) -> None:
        """Drop the states of erased sessions."""
        with self._lock:
            for session_id in session_ids:
                self._states.pop(session_id, None)

    def loaded(self, head: SessionHead, session_id: str) -> Plan[Call, SessionState]:
        """The session's state, brought up to ``head``: turns and vectors it lacks are read.

        A session new to this process is loaded whole from its stored turns and vectors,
        without calling the embedding model; a large load is read and decoded in a worker
        thread (async), as decoding is CPU work. Turns found without a vector go to
        ``unembedded``.
        """
        state = self.state(session_id, head.incarnation or "")
        start = state.next_turn
        if start >= head.turn_count:
            return state
        if head.turn_count - start > BULK_READ:
            turns = yield cpu(self._store.get_turns, session_id, start)
            ids, vectors = yield cpu(self._store.get_vectors, session_id, start)
        else:
            turns = yield twin(self._store, "get_turns", session_id, start)
            ids, vectors = yield twin(self._store, "get_vectors", session_id, start)
        count_from = head.summary.through_turn + 1
        added = yield cpu(
            state.add_turns,
            turns,
            count_from=count_from,
            count_until=count_from + self._count_ahead,
        )
        if vectors is not None and len(ids):
            yield cpu(state.add_vectors, ids, vectors)
        missing = [t for t in added or [] if t.text.strip() and not state.has_vector(t.id)]
        self._unembedded(session_id, state.incarnation, missing)
        return state

    def window_start(
        self, session_id: str, count: int, state: SessionState | None = None
    ) -> Plan[Call, int]:
        """The id of the recent window's first turn, from the state's roles or the store."""
        start = None if state is None else state.window_start(count, self._window_turns)
        if start is None:
            window = yield from read_window(self._store, session_id, count, self._window_turns)
            start = window[0].id if window else count
        return start


def read_window(
    store: MemoryStore, session_id: str, count: int, window_turns: int
) -> Plan[Call, list[Turn]]:
    """The recent window, read from the tail of the session (never the whole session)."""
    span = window_turns + WINDOW_SLACK
    while True:
        start = max(0, count - span)
        tail: list[Turn] = yield twin(store, "get_turns", session_id, start, count)
        first = window_start_index(tail, window_turns)
        if first > 0 or start == 0 or not tail or tail[0].role != "tool":
            return tail[first:]
        span *= 2
