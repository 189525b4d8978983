"""The recall step: earlier turns that match the current input, read back from the store.

The search itself runs on a session's :class:`~langchain_hybrid_memory._search.SearchIndex`
(dense + lexical, fused); this step reads the hits' turns from the store, best first, and with
``recall_scope="user"`` searches the user's other sessions too (never another user's). Not to
be confused with :mod:`~langchain_hybrid_memory.retriever`, the LangChain retriever built on
:meth:`HybridMemory.recall <langchain_hybrid_memory.HybridMemory.recall>`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from langchain_hybrid_memory._plans import cpu, light, twin
from langchain_hybrid_memory.types import RecalledTurn

if TYPE_CHECKING:
    from collections.abc import Collection

    import numpy as np

    from langchain_hybrid_memory._indexing import Indexer
    from langchain_hybrid_memory._plans import Call, Plan
    from langchain_hybrid_memory._search import WordScores
    from langchain_hybrid_memory._sessions import Sessions, SessionState
    from langchain_hybrid_memory.config import HybridMemoryConfig
    from langchain_hybrid_memory.stores.base import MemoryStore
    from langchain_hybrid_memory.types import Turn

logger = logging.getLogger(__name__)

#: Sessions shorter than this are searched in place by async callers (see ``light``).
LIGHT_SEARCH_TURNS = 200

__all__ = ["Recall"]

#: Recalled turns are read from the store in batches of this many, best first.
_READ_BATCH = 16
#: Characters a recalled turn's line adds to its text (bullet, speaker, day lines).
_LINE_CHARS = 16
#: How many of a session's turns waiting for a vector one search embeds at most.
CATCH_UP = 64


class Recall:
    """Finds earlier turns for a query in a session, or in every session of its user.

    Args:
        store: Where the turns are read.
        sessions: The per-session states (search indexes).
        indexer: Embeds what the user's other sessions still wait for.
        config: The engine's settings.
    """

    def __init__(
        self,
        store: MemoryStore,
        sessions: Sessions,
        indexer: Indexer,
        config: HybridMemoryConfig,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._indexer = indexer
        self._config = config

    def find(
        self,
        state: SessionState,
        text: str,
        vector: np.ndarray | None,
        *,
        k: int,
        exclude: Collection[int] = (),
        fill_chars: int | None = None,
        words: WordScores | None = None,
    ) -> Plan[Call, list[RecalledTurn]]:
        """The ``k`` best turns of one session for ``text``, best first, read from the store.

        With ``fill_chars``, turns are read best first only until their texts (each counted up
        to ``recall_max_chars``) hold that many characters; ``k`` bounds them still. ``words``:
        the text's lexical scores, computed while its vector was on its way.
        """
        config = self._config
        if vector is not None:
            yield from self._embed_names(state, text)
        # a short session's search is cheaper on the event loop than a hop to a thread
        run = light if state.next_turn < LIGHT_SEARCH_TURNS else cpu
        hits = yield run(
            state.search,
            text,
            vector,
            k=k,
            candidates=config.recall_candidates,
            dense_weight=config.dense_weight,
            exclude=exclude,
            words=words,
        )
        session_id = state.session_id
        turns: list[Turn] = []
        if fill_chars is None:
            turns = yield twin(
                self._store, "get_turns_by_ids", session_id, [h.turn_id for h in hits]
            )
        else:
            chars, read = 0, 0
            while read < len(hits) and chars < fill_chars:
                batch = hits[read : read + _READ_BATCH]
                found = yield twin(
                    self._store, "get_turns_by_ids", session_id, [h.turn_id for h in batch]
                )
                turns += found
                limit = config.recall_max_chars
                chars += sum(min(len(t.text), limit) + _LINE_CHARS for t in found)
                read += len(batch)
            hits = hits[:read]
        by_id = {t.id: t for t in turns}
        return [
            RecalledTurn(by_id[h.turn_id], h.score, h.dense_score, h.lexical_score)
            for h in hits
            if h.turn_id in by_id
        ]

    def _embed_names(self, state: SessionState, text: str) -> Plan[Call, None]:
        """Embed the speaker names ``text`` names that the session's index has no vector for.

        Once per name for each session a process loads (its index keeps them): the search projects them out of the
        query vector. When the model fails the search goes on with the query as it is.
        """
        names = state.names_to_embed(text)
        if not names:
            return
        try:
            vectors = yield from self._indexer.embed(names)
        except Exception as exc:  # noqa: BLE001 - recall works without them
            logger.warning("embedding speaker names failed: %s", type(exc).__name__)
            return
        state.add_name_vectors(names, vectors)

    def find_elsewhere(
        self,
        user_id: str,
        session_id: str,
        text: str,
        vector: np.ndarray | None,
        *,
        k: int,
        fill_chars: int | None = None,
    ) -> Plan[Call, list[RecalledTurn]]:
        """The best turns of every other session of ``user_id`` (``recall_scope="user"``)."""
        found: list[RecalledTurn] = []
        for other in (yield twin(self._store, "list_sessions", user_id)):
            if other == session_id:
                continue
            head = yield twin(self._store, "head", other)
            if not head.exists or head.user_id != user_id:
                continue  # erased or taken over since it was listed
            state = yield from self._sessions.loaded(head, other)
            # its last window may still wait for a vector (embedded once, here)
            if not (yield from self._indexer.store_waiting(state, limit=CATCH_UP)):
                self._sessions.forget([other])  # erased meanwhile
                continue
            hits = yield from self.find(state, text, vector, k=k, fill_chars=fill_chars)
            after = yield twin(self._store, "head", other)
            if after.incarnation == head.incarnation:  # not erased (nor taken over) meanwhile
                found += hits
        return found
