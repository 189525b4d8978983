"""HybridMemoryStore: a LangGraph ``BaseStore`` over this project's SQLite, Redis and PostgreSQL.

LangGraph's long-term memory is a store handed to ``create_agent(..., store=...)`` (or a
compiled graph) and read by tools through ``runtime.store``. :class:`HybridMemoryStore` is one,
with the operations and results of LangGraph's ``InMemoryStore``, kept in the same databases as
the conversation memory, and:

- **hybrid search**: ``search(prefix, query=...)`` scores each item by the cosine of its best
  indexed field to the query (as LangGraph's stores do) fused with BM25 over those fields;
- **TTL** in LangGraph's terms (``TTLConfig``, ``put(..., ttl=minutes)``, refresh on read, a
  sweeper);
- **encryption at rest** with the memory's ``encryption_key`` (values; vectors with
  ``encrypt_vectors``);
- **erasure**: :meth:`HybridMemoryStore.delete_namespace` removes a namespace and everything
  under it, :meth:`HybridMemoryStore.forget_user` every namespace naming a user, each with an
  :class:`~langchain_hybrid_memory.types.ErasureReport`.

Every object on one store URL sees the same items (nothing is kept in the process), so any
number of workers can share it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
    validate_op_namespace,
)

from langchain_hybrid_memory._inputs import _require_utf8
from langchain_hybrid_memory._plans import Call, arun_calls, cpu, light, run_calls, twin
from langchain_hybrid_memory._search import normalize_rows
from langchain_hybrid_memory.embeddings import DEFAULT_EMBEDDINGS, embeddings_named
from langchain_hybrid_memory.errors import (
    ConfigError,
    EmbeddingError,
    HybridMemoryError,
    InvalidInputError,
)
from langchain_hybrid_memory.lexical import LexicalIndex
from langchain_hybrid_memory.stores import MemoryStore, open_store
from langchain_hybrid_memory.stores._items import (
    NewItem,
    StoredItem,
    item_rows_for,
)
from langchain_hybrid_memory.stores._items import (
    newest_first as _newest_first,
)
from langchain_hybrid_memory.types import ErasureReport

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from langchain_core.embeddings import Embeddings
    from langgraph.store.base import Op, Result

    from langchain_hybrid_memory._plans import Plan
    from langchain_hybrid_memory.stores.encryption import EncryptionKey

__all__ = ["HybridMemoryStore"]

logger = logging.getLogger(__name__)

_DEFAULT_STORE = "sqlite:///:memory:"
_DEFAULT_SWEEP_MINUTES = 5.0
_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
_USER_LABEL = "{user_id}"
# a search opening more stored items than this does it in a worker thread (async twins)
_OPEN_IN_PLACE = 64
# a century: Redis takes the expiry in milliseconds, as an integer its scripts can print
_MAX_TTL_MINUTES = 100 * 366 * 24 * 60
# PostgreSQL refuses a B-tree index row over 2,704 bytes: the item's address must fit in one
_MAX_ADDRESS_BYTES = 2048

_Key = tuple[tuple[str, ...], str]


class HybridMemoryStore(BaseStore):
    """A LangGraph store over SQLite (default), Redis or PostgreSQL, with hybrid search.

    It behaves like LangGraph's ``InMemoryStore`` for ``put``, ``get``, ``delete``,
    ``search`` (namespace prefix, ``filter`` with ``$eq``/``$ne``/``$gt``/``$gte``/``$lt``/
    ``$lte``, ``limit``, ``offset``), ``list_namespaces`` (prefix/suffix with ``"*"``,
    ``max_depth``), ``batch`` and every async twin; differences: an overwritten item keeps its
    ``created_at`` (as LangGraph's database stores do), a search without ``query`` lists the
    newest ``updated_at`` first (ties by namespace and key), a search with ``query`` is hybrid
    (see :meth:`search`), a value must be a JSON object (``InMemoryStore`` keeps any Python
    object; a ``datetime`` is refused here), and a range filter (``$gt``, ...) on a missing or
    non-numeric field matches nothing (``InMemoryStore`` raises).

    Items live in tables (keys, on Redis) of their own beside the memory's sessions, so one
    store URL (or store object) serves ``HybridMemory`` and this store together, on the same
    connections and under the same encryption key.

    **Cost.** ``get`` touches one item, and ``put`` two reads and a write (it embeds its
    indexed fields once, and not again when the item is put again with the same texts). A search without ``query`` or
    ``filter`` (a listing) is paged by the database (Redis: opens only the page). A search
    with either reads every live item under the namespace prefix in one query (Redis: three
    round trips), vectors only with a ``query``, then opens and filters them here (values may
    be encrypted, so the database cannot read them; async twins do it in a worker thread),
    embeds the query once and scores the candidates in memory: its cost grows with the items
    under the prefix (there is no cap), not with the store, so search the narrowest prefix
    (``("memories", user_id)``). ``list_namespaces`` is one ``SELECT DISTINCT`` over the
    range of its ``prefix`` (up to a ``"*"``; Redis: reads each item's expiry there), and
    finding a user's namespaces for :meth:`forget_user` without ``user_namespaces`` is one
    over the whole store.

    **Limits.** Namespaces and keys are stored in clear, even with an encryption key (they
    address the items, and the database orders and ranges over them): keep secrets in
    values. An item's namespace and key take at most 2,048 bytes together (UTF-8), and text
    must be valid Unicode, with no NUL in a key, so that every store keeps it alike. On a
    Redis Cluster every item shares one hash slot (one node holds them all).

    Args:
        store: Where the items live: a SQLite, Redis or PostgreSQL store object, or its URL
            (``sqlite:///path.db``, ``redis://...``, ``postgresql://...``); default an
            in-process SQLite database (``sqlite:///:memory:``), gone with the process.
        index: LangGraph's ``IndexConfig``: ``embed`` (an ``Embeddings``, an embedding
            function, or a provider string; default the local all-MiniLM-L6-v2), ``dims``
            (default: what the model returns), ``fields`` (JSON paths to index; default the
            whole value, ``["$"]``). A ``put(..., index=[...])`` indexes other paths for that
            item, ``index=False`` none.
        ttl: LangGraph's ``TTLConfig``: ``default_ttl`` (minutes, for puts without ``ttl=``),
            ``refresh_on_read`` (default ``True``), ``sweep_interval_minutes`` (for
            :meth:`start_ttl_sweeper`). Expired items are never returned (``omit_expired`` is
            always on).
        encryption_key: With a store URL: a Fernet key (or a list, the first seals) to encrypt
            values at rest, as ``HybridMemory`` does. With a store object, give the key to the
            store.
        encrypt_vectors: With a key, encrypt the vectors too.
        dense_weight: Weight of the dense score in a search's hybrid score (BM25 gets the
            rest).
        user_namespaces: The namespaces :meth:`forget_user` erases, as templates with the
            label ``"{user_id}"`` standing for the user, e.g. ``[("memories", "{user_id}")]``
            (LangMem's convention); each is erased with the namespaces under it. Default: every
            namespace with the user id as one of its labels, which also erases the namespaces
            of a label that merely equals the id (a user called ``"memories"``): give templates
            when user ids are chosen by users.
        clock: Seconds since the epoch (default ``time.time``); every worker of one store
            should agree on it, as on a database clock.

    Raises:
        ConfigError: A bad setting, an in-process ``InMemoryStore`` (it shares nothing), or a
            key with a store object.
        StoreError: The store cannot be opened (the message never shows a password).

    Example:
        >>> store = HybridMemoryStore()
        >>> store.put(("memories", "ana"), "home", {"text": "Ana lives in Porto"})
        >>> store.put(("memories", "ana"), "food", {"text": "Ana is allergic to peanuts"})
        >>> store.get(("memories", "ana"), "home").value
        {'text': 'Ana lives in Porto'}
        >>> [item.key for item in store.search(("memories",), query="peanut allergy", limit=1)]
        ['food']
        >>> store.forget_user("ana").items
        2
    """

    supports_ttl: bool = True

    def __init__(
        self,
        store: MemoryStore | str | None = None,
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        encryption_key: EncryptionKey | None = None,
        encrypt_vectors: bool = False,
        dense_weight: float = 0.5,
        user_namespaces: Sequence[tuple[str, ...]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(dense_weight, bool) or not isinstance(dense_weight, (int, float)):
            msg = f"dense_weight must be a number between 0 and 1, got {dense_weight!r}"
            raise ConfigError(msg)
        if not 0.0 <= dense_weight <= 1.0:
            msg = f"dense_weight must be between 0 and 1, got {dense_weight!r}"
            raise ConfigError(msg)
        self.dense_weight = float(dense_weight)
        self.ttl_config = _checked_ttl(ttl)
        self.index_config, self.embeddings = _checked_index(index)
        self._fields = [
            (path, path if path == "$" else tokenize_path(path))
            for path in self.index_config.get("fields") or ["$"]
        ]
        self._dims: int | None = self.index_config.get("dims")
        self.user_namespaces = _checked_templates(user_namespaces)
        self._clock = clock or time.time
        self.store = open_store(
            _DEFAULT_STORE if store is None else store,
            encryption_key=encryption_key,
            encrypt_vectors=encrypt_vectors,
        )
        self._owns_store = not isinstance(store, MemoryStore)
        try:
            self._rows = item_rows_for(self.store)
        except BaseException:
            if self._owns_store:
                self.store.close()
            raise
        self._sweeper: threading.Thread | None = None
        self._stop_sweeping = threading.Event()

    # -- BaseStore --------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run operations in order; reads see the store before this batch's puts.

        As in LangGraph's ``InMemoryStore``, gets, searches and listings are answered first
        and the puts (the last one per item wins) applied after, in one write: one
        transaction on SQLite and PostgreSQL; on Redis each item is written atomically, the
        batch is not.

        Raises:
            InvalidNamespaceError: A namespace label is empty, not a string, or holds ``.``.
            InvalidInputError: A value is not a JSON object, or a filter operator is unknown.
            EmbeddingError: The embedding model failed; nothing was written.
            StoreError: The store failed.
        """
        return run_calls(self._batch(list(ops)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async twin of :meth:`batch`."""
        return await arun_calls(self._batch(list(ops)))

    def _io(self, plan: Plan[Any, Any], *, write: bool) -> Call:
        return Call(self._rows.run, self._rows.arun, (plan,), {"write": write})

    def _batch(self, ops: list[Op]) -> Plan[Call, list[Result]]:
        for op in ops:
            if not isinstance(op, (GetOp, SearchOp, ListNamespacesOp, PutOp)):
                msg = f"Unknown operation type: {type(op)}"
                raise InvalidInputError(msg)
            validate_op_namespace(op)
            _check_op(op)
        now = self._clock()
        results: list[Result] = [None] * len(ops)
        puts: dict[_Key, PutOp] = {}
        touched: list[_Key] = []
        for position, op in enumerate(ops):
            if isinstance(op, GetOp):
                found = yield self._io(self._rows.get(op.namespace, op.key, now), write=False)
                if found is not None:
                    results[position] = _item(found)
                    if op.refresh_ttl and found.ttl_minutes is not None:
                        touched.append((found.namespace, found.key))
            elif isinstance(op, SearchOp):
                hits = yield from self._search(op, now)
                results[position] = [hit for hit, _ in hits]
                if op.refresh_ttl:
                    touched += [(h.namespace, h.key) for h, ttl in hits if ttl is not None]
            elif isinstance(op, ListNamespacesOp):
                listing = self._rows.namespaces(now, _literal_prefix(op))
                names = yield self._io(listing, write=False)
                results[position] = _list_namespaces(names, op)
            else:
                puts[(op.namespace, op.key)] = op
        if touched:
            yield self._io(self._rows.touch(touched, now), write=True)
        if puts:
            vectors = yield from self._embed_puts(list(puts.values()), now)
            yield self._io(self._write_puts(list(puts.values()), vectors, now), write=True)
        return results

    # -- writing ----------------------------------------------------------------------------

    def _paths(self, op: PutOp) -> list[tuple[str, Any]]:
        if op.index is False or op.value is None:
            return []
        if op.index is None:
            return self._fields
        return [(path, tokenize_path(path)) for path in op.index]

    def _embed_puts(self, puts: Sequence[PutOp], now: float) -> Plan[Call, list[np.ndarray | None]]:
        """One matrix of vectors per put (``None``: not indexed).

        An item put again with the same indexed texts keeps its stored vectors (with an
        embedding API, no call is paid twice); the other texts are embedded in one call.
        """
        texts_of = [
            [text for _, path in self._paths(op) for text in get_text_at_path(op.value, path)]
            for op in puts
        ]
        vectors = yield from self._stored_vectors(puts, texts_of, now)
        texts = [
            text
            for found, own in zip(vectors, texts_of, strict=True)
            if found is None
            for text in own
        ]
        if not texts:
            return vectors
        try:
            embedded = yield twin(self.embeddings, "embed_documents", texts)
            matrix = np.asarray(embedded, dtype=np.float32)
        except Exception as exc:
            msg = f"the embedding model failed on {len(texts)} text(s); nothing was written: {exc}"
            raise EmbeddingError(msg) from exc
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            msg = f"the embedding model returned shape {matrix.shape} for {len(texts)} text(s)"
            raise EmbeddingError(msg)
        if self._dims is None:
            self._dims = int(matrix.shape[1])
        elif matrix.shape[1] != self._dims:
            msg = f"the embedding model returned {matrix.shape[1]} dims, the index has {self._dims}"
            raise EmbeddingError(msg)
        start = 0
        for position, own in enumerate(texts_of):
            if own and vectors[position] is None:
                vectors[position] = matrix[start : start + len(own)]
                start += len(own)
        return vectors

    def _stored_vectors(
        self, puts: Sequence[PutOp], texts_of: Sequence[Sequence[str]], now: float
    ) -> Plan[Call, list[np.ndarray | None]]:
        """The stored vectors of the puts whose indexed texts are those already stored."""
        found: list[np.ndarray | None] = [None] * len(puts)
        wanted = [position for position, own in enumerate(texts_of) if own]
        if not wanted or self._dims is None:  # unknown dims: stored vectors cannot be checked
            return found
        keys = [(puts[position].namespace, puts[position].key) for position in wanted]
        stored = yield self._io(self._rows.read(keys, now, vectors=True), write=False)
        try:
            opened = self._rows.opened(stored, vectors=True)
        except HybridMemoryError:  # sealed under another key, or damaged: the put decides
            return found
        rows = {(row.namespace, row.key): row for row in opened}
        for position in wanted:
            op = puts[position]
            row = rows.get((op.namespace, op.key))
            if (
                row is not None
                and row.vectors is not None
                and len(row.vectors) == len(texts_of[position]) * self._dims * 4
                and _indexed_texts(row) == texts_of[position]
            ):
                found[position] = np.frombuffer(row.vectors, dtype=np.float32).reshape(
                    -1, self._dims
                )
        return found

    def _write_puts(
        self, puts: Sequence[PutOp], vectors: Sequence[np.ndarray | None], now: float
    ) -> Plan[Any, None]:
        """Every put and delete of a batch, as one plan (one transaction in SQL)."""
        for op, matrix in zip(puts, vectors, strict=True):
            if op.value is None:
                yield from self._rows.delete(op.namespace, op.key)
                continue
            fields = [path for path, _ in self._paths(op)] if matrix is not None else None
            record = {"value": dict(op.value), "fields": fields}
            blob = None if matrix is None else np.ascontiguousarray(matrix).tobytes()
            ttl = None if op.ttl is None else float(op.ttl)
            new = NewItem(op.namespace, op.key, record, blob, ttl)
            yield from self._rows.put(new, now)

    # -- searching --------------------------------------------------------------------------

    def _search(
        self, op: SearchOp, now: float
    ) -> Plan[Call, list[tuple[SearchItem, float | None]]]:
        """The page of ``op``'s results, each with its item's TTL (to refresh it)."""
        if not op.query and not op.filter:  # a listing: the store cuts the page
            listing = self._rows.newest(op.namespace_prefix, now, op.limit, op.offset)
            page: list[Sequence[Any]] = yield self._io(listing, write=False)
            items = self._rows.opened(page, vectors=False)
            return [(_item(row, search=True), row.ttl_minutes) for row in items]
        scan = self._rows.scan(op.namespace_prefix, now, vectors=bool(op.query))
        stored: list[Sequence[Any]] = yield self._io(scan, write=False)
        # decrypting and filtering many items is CPU work: off the event loop (async)
        work = light if len(stored) <= _OPEN_IN_PLACE else cpu
        candidates: list[StoredItem] = yield work(self._candidates, stored, op)
        if not op.query:
            return [
                (_item(row, search=True), row.ttl_minutes)
                for row in candidates[op.offset : op.offset + op.limit]
            ]
        try:
            query_vector = yield twin(self.embeddings, "embed_query", op.query)
        except Exception as exc:
            msg = f"the embedding model failed on the search query: {exc}"
            raise EmbeddingError(msg) from exc
        scored = yield cpu(self._score, op.query, query_vector, candidates)
        ranked = [(score, row) for score, row in scored if score is not None]
        kept = ranked[op.offset : op.offset + op.limit]
        if len(kept) < op.limit:  # as InMemoryStore: unindexed items fill the page, unscored
            unindexed = [(None, row) for score, row in scored if score is None]
            kept += unindexed[: op.limit - len(kept)]
        return [(_item(row, search=True, score=score), row.ttl_minutes) for score, row in kept]

    def _candidates(self, stored: Sequence[Sequence[Any]], op: SearchOp) -> list[StoredItem]:
        """The stored items matching ``op``'s filter (newest first without a query)."""
        rows = self._rows.opened(stored, vectors=bool(op.query))
        candidates = [row for row in rows if _matches(row.record.get("value"), op.filter)]
        if not op.query:
            candidates.sort(key=lambda row: _newest_first(row.updated_at, row.namespace, row.key))
        return candidates

    def _score(
        self, query: str, query_vector: Sequence[float], rows: Sequence[StoredItem]
    ) -> list[tuple[float | None, StoredItem]]:
        """Rows with their hybrid score, best first; unindexed rows last with ``None``.

        The score is ``dense_weight * cosine + (1 - dense_weight) * bm25 / max(bm25)``: the
        cosine of the item's best indexed field to the query, and BM25 of the query over the
        text of the item's indexed fields, among the candidates. When no candidate shares a word
        with the query the score is the cosine alone.
        """
        query_unit = normalize_rows(np.asarray(query_vector, dtype=np.float32))[0]
        dense = np.full(len(rows), np.nan, dtype=np.float32)
        lexical = LexicalIndex()
        blocks: list[np.ndarray] = []  # each indexed item's vectors, scored in one product
        owners: list[int] = []
        mismatched = 0
        for position, row in enumerate(rows):
            fields = row.record.get("fields")
            if not fields or not row.vectors:
                continue
            matrix = np.frombuffer(row.vectors, dtype=np.float32)
            texts = _indexed_texts(row)
            if matrix.size != len(texts) * query_unit.size:  # one vector per text
                mismatched += 1
                continue
            blocks.append(matrix.reshape(-1, query_unit.size))
            owners.append(position)
            lexical.add(position, " ".join(texts))
        if mismatched:  # embedded by another model: unscored, as an unindexed item
            logger.warning(
                "%d item(s) have vectors of another dimension than the query's: unscored",
                mismatched,
            )
        if blocks:
            similarities = normalize_rows(np.concatenate(blocks)) @ query_unit
            starts = np.cumsum([0] + [len(block) for block in blocks[:-1]])
            dense[owners] = np.maximum.reduceat(similarities, starts)  # an item's best field
        scores = dense
        bm25 = lexical.row_scores(query) if owners else None
        if bm25 is not None and float(bm25.max()) > 0:
            words = np.zeros(len(rows), dtype=np.float32)
            words[[lexical.doc_id(row) for row in range(len(lexical))]] = bm25 / float(bm25.max())
            scores = self.dense_weight * dense + (1.0 - self.dense_weight) * words
        values: list[float] = scores.tolist()
        order = sorted(
            range(len(rows)),
            key=lambda p: (
                math.isnan(values[p]),
                0.0 if math.isnan(values[p]) else -values[p],
                rows[p].namespace,
                rows[p].key,
            ),
        )
        return [(None if math.isnan(values[p]) else values[p], rows[p]) for p in order]

    # -- TTL --------------------------------------------------------------------------------

    def sweep_ttl(self) -> int:
        """Delete every expired item now; how many were deleted.

        Expired items are never returned even before a sweep; a sweep reclaims their space.
        """
        count = run_calls(self._sweep())
        if count:
            logger.info("swept %d expired item(s) from the langgraph store", count)
        return count

    async def asweep_ttl(self) -> int:
        """Async twin of :meth:`sweep_ttl`."""
        return await arun_calls(self._sweep())

    def _sweep(self) -> Plan[Call, int]:
        count: int = yield self._io(self._rows.sweep(self._clock()), write=True)
        if count:
            self._rows.after_erasure()
        return count

    def start_ttl_sweeper(self, sweep_interval_minutes: float | None = None) -> None:
        """Sweep expired items every ``sweep_interval_minutes`` in a daemon thread.

        The interval defaults to the ``TTLConfig``'s ``sweep_interval_minutes``, else 5. One
        worker sweeping is enough; sweeping from several is harmless. A second call while the
        sweeper runs does nothing. Stop it with :meth:`stop_ttl_sweeper` (or :meth:`close`).
        """
        if self._sweeper is not None and self._sweeper.is_alive():
            return
        if sweep_interval_minutes is not None:
            _check_minutes("sweep_interval_minutes", sweep_interval_minutes)
        minutes = (
            sweep_interval_minutes
            or (self.ttl_config or {}).get("sweep_interval_minutes")
            or _DEFAULT_SWEEP_MINUTES
        )
        self._stop_sweeping.clear()
        self._sweeper = threading.Thread(
            target=self._sweep_every,
            args=(float(minutes) * 60.0,),
            name="hybrid-memory-ttl-sweeper",
            daemon=True,
        )
        self._sweeper.start()

    def _sweep_every(self, seconds: float) -> None:
        while not self._stop_sweeping.wait(seconds):
            try:
                self.sweep_ttl()
            except Exception:
                logger.exception("the langgraph store's TTL sweep failed; trying again later")

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper thread; whether it has stopped (``False``: ``timeout`` passed)."""
        if self._sweeper is None:
            return True
        self._stop_sweeping.set()
        self._sweeper.join(timeout)
        stopped = not self._sweeper.is_alive()
        if stopped:
            self._sweeper = None
        return stopped

    # -- erasure ----------------------------------------------------------------------------

    def delete_namespace(self, namespace_prefix: tuple[str, ...]) -> ErasureReport:
        """Delete every item of ``namespace_prefix`` and of the namespaces under it.

        Args:
            namespace_prefix: A namespace (at least one label): ``("memories", "ana")`` erases
                that namespace and ``("memories", "ana", ...)``.

        Returns:
            How many items were deleted, and from which namespaces (expired ones included).

        Raises:
            InvalidNamespaceError: An empty prefix (that would be the whole store) or a bad label.
        """
        return run_calls(self._delete_prefixes([self._checked_prefix(namespace_prefix)]))

    async def adelete_namespace(self, namespace_prefix: tuple[str, ...]) -> ErasureReport:
        """Async twin of :meth:`delete_namespace`."""
        return await arun_calls(self._delete_prefixes([self._checked_prefix(namespace_prefix)]))

    def forget_user(self, user_id: str) -> ErasureReport:
        """Delete the user's namespaces: those of ``user_namespaces``, else every one naming them.

        The convention: a user's items live in namespaces naming the user as a whole label,
        e.g. ``("memories", user_id)`` or ``(user_id, "preferences")``, as LangGraph's docs
        lay them out. A label that merely contains the id (``"ana-team"``) is not the user's.
        Without ``user_namespaces``, a label that equals the id is taken for the user wherever
        it stands: ``forget_user("memories")`` erases ``("memories", ...)`` of every user. A
        user id LangGraph cannot use as a label (holding ``.``) names no namespace.

        Returns:
            The items deleted and their namespaces.

        Raises:
            InvalidInputError: ``user_id`` is not a non-empty string.
        """
        return run_calls(self._forget(_checked_user(user_id)))

    async def aforget_user(self, user_id: str) -> ErasureReport:
        """Async twin of :meth:`forget_user`."""
        return await arun_calls(self._forget(_checked_user(user_id)))

    @staticmethod
    def _checked_prefix(prefix: tuple[str, ...]) -> tuple[str, ...]:
        if not isinstance(prefix, tuple) or not prefix:
            from langgraph.store.base import InvalidNamespaceError

            msg = "delete_namespace needs a namespace of at least one label"
            raise InvalidNamespaceError(msg)
        validate_op_namespace(GetOp(prefix, ""))
        _check_labels(prefix)
        return prefix

    def _forget(self, user_id: str) -> Plan[Call, ErasureReport]:
        if "." in user_id or "\x00" in user_id:  # not a label: no namespace can name the user
            return ErasureReport()
        if self.user_namespaces is not None:
            prefixes = sorted(
                {
                    tuple(user_id if label == _USER_LABEL else label for label in template)
                    for template in self.user_namespaces
                }
            )
        else:
            names = yield self._io(self._rows.namespaces(None), write=False)
            prefixes = sorted({ns[: ns.index(user_id) + 1] for ns in names if user_id in ns})
        return (yield from self._delete_prefixes(prefixes))

    def _delete_prefixes(self, prefixes: Sequence[tuple[str, ...]]) -> Plan[Call, ErasureReport]:
        report = ErasureReport()
        for prefix in prefixes:
            count, names = yield self._io(self._rows.delete_prefix(prefix), write=True)
            report += ErasureReport(items=count, namespaces=tuple(names))
        if report.items:
            self._rows.after_erasure()
        return report

    # -- key rotation -----------------------------------------------------------------------

    def reencrypt(self) -> int:
        """Re-encrypt every value of the store under the first key: the memory's and the items'.

        For key rotation, as the store's own ``reencrypt()`` (which does not know the items):
        open every worker with ``encryption_key=[new_key, old_key]``, run this once, then drop
        the old key. Each item is replaced only if unchanged since it was read, so the store
        stays in use; a second run rewrites nothing.

        Returns:
            How many values (memory values and items) were rewritten.

        Raises:
            ConfigError: The store has no encryption key.
            DecryptionError: A value no configured key opens (it is left as it is).
        """
        rewritten = self.store.reencrypt()
        after: Any = None
        while True:
            count, after = self._rows.run(self._rows.reencrypt_page(after), write=True)
            rewritten += count
            if after is None:
                return rewritten

    async def areencrypt(self) -> int:
        """Async twin of :meth:`reencrypt` (a maintenance job: it runs in a worker thread)."""
        return await asyncio.to_thread(self.reencrypt)

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the sweeper and close the store if this object opened it (from a URL)."""
        self.stop_ttl_sweeper(timeout=1.0)
        if self._owns_store:
            self.store.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close` (closes the store's async clients too)."""
        self.stop_ttl_sweeper(timeout=1.0)
        if self._owns_store:
            await self.store.aclose()

    def __enter__(self) -> HybridMemoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HybridMemoryStore({self.store!r})"


# -- checks and conversions ---------------------------------------------------------------------


def _checked_ttl(ttl: TTLConfig | None) -> TTLConfig:
    if ttl is None:
        return {}
    if not isinstance(ttl, Mapping):
        msg = f"ttl must be a TTLConfig dict, got {type(ttl).__name__}"
        raise ConfigError(msg)
    known = {"default_ttl", "refresh_on_read", "sweep_interval_minutes", "omit_expired"}
    unknown = sorted(set(ttl) - known)
    if unknown:
        msg = f"unknown TTLConfig key(s) {unknown}; known: {sorted(known)}"
        raise ConfigError(msg)
    for name in ("default_ttl", "sweep_interval_minutes"):
        value = ttl.get(name)
        if value is not None:
            _check_minutes(f"TTLConfig {name}", value)
    return TTLConfig(**ttl)


def _check_minutes(name: str, value: Any, error: type[Exception] = ConfigError) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value <= _MAX_TTL_MINUTES
    ):
        msg = (
            f"{name} must be a positive number of minutes, at most {_MAX_TTL_MINUTES} "
            f"(a century), got {value!r}"
        )
        raise error(msg)


def _checked_index(index: IndexConfig | None) -> tuple[IndexConfig, Embeddings]:
    config: dict[str, Any] = {} if index is None else dict(index)
    if not isinstance(index, (Mapping, type(None))):
        msg = f"index must be an IndexConfig dict, got {type(index).__name__}"
        raise ConfigError(msg)
    fields = config.get("fields")
    if fields is not None and (
        isinstance(fields, str) or not all(isinstance(f, str) and f for f in fields)
    ):
        msg = "index fields must be a list of JSON paths (strings), e.g. ['text', 'tags[*]']"
        raise ConfigError(msg)
    dims = config.get("dims")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims <= 0):
        msg = f"index dims must be a positive integer, got {dims!r}"
        raise ConfigError(msg)
    embed = config.get("embed")
    embeddings = embeddings_named(DEFAULT_EMBEDDINGS) if embed is None else ensure_embeddings(embed)
    return IndexConfig(**config), embeddings  # type: ignore[typeddict-item]


def _checked_templates(
    templates: Sequence[tuple[str, ...]] | None,
) -> tuple[tuple[str, ...], ...] | None:
    if templates is None:
        return None
    if isinstance(templates, (str, tuple)) or not all(
        isinstance(template, tuple) and _USER_LABEL in template for template in templates
    ):
        msg = (
            'user_namespaces must be a list of namespace tuples each holding "{user_id}", '
            f'e.g. [("memories", "{{user_id}}")], got {templates!r}'
        )
        raise ConfigError(msg)
    for template in templates:
        try:
            validate_op_namespace(GetOp(template, ""))
        except ValueError as exc:
            msg = f"user_namespaces: {exc}"
            raise ConfigError(msg) from None
    return tuple(templates)


def _checked_user(user_id: str) -> str:
    if not isinstance(user_id, str) or not user_id:
        msg = f"user_id must be a non-empty string, got {user_id!r}"
        raise InvalidInputError(msg)
    _require_utf8(user_id, "user_id")
    return user_id


def _check_op(op: Op) -> None:
    """Refuse what no store can keep alike, before anything is read or written.

    LangGraph has checked the namespace's labels (:func:`validate_op_namespace`); this checks
    the rest: text every database takes (UTF-8, no NUL in a key), an address PostgreSQL can
    index, JSON values, filters, and pages.
    """
    if isinstance(op, ListNamespacesOp):
        for condition in op.match_conditions or ():
            _check_labels(condition.path)
        _check_page(op.limit, op.offset)
    elif isinstance(op, SearchOp):
        _check_labels(op.namespace_prefix)
        if op.query is not None:
            if not isinstance(op.query, str):
                msg = f"query must be a string, got {type(op.query).__name__}"
                raise InvalidInputError(msg)
            _require_utf8(op.query, "the search query")
        _check_filter(op.filter)
        _check_page(op.limit, op.offset)
    else:
        _check_labels(op.namespace)
        _check_key(op.key)
        if isinstance(op, PutOp):
            _check_put(op)


def _check_labels(labels: Sequence[str]) -> None:
    for label in labels:
        _require_utf8(label, "a namespace label")


def _check_key(key: Any) -> None:
    if not isinstance(key, str):
        msg = f"an item key must be a string, got {type(key).__name__}"
        raise InvalidInputError(msg)
    _require_utf8(key, "an item key")
    if "\x00" in key:
        msg = "an item key cannot contain NUL ('\\x00'): PostgreSQL text cannot hold it"
        raise InvalidInputError(msg)


def _check_page(limit: Any, offset: Any) -> None:
    for name, number in (("limit", limit), ("offset", offset)):
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            msg = f"{name} must be a non-negative integer, got {number!r}"
            raise InvalidInputError(msg)


def _check_put(op: PutOp) -> None:
    address = len(".".join(op.namespace).encode()) + len(op.key.encode())
    if address > _MAX_ADDRESS_BYTES:
        msg = (
            f"an item's namespace and key take {address} bytes (UTF-8); at most "
            f"{_MAX_ADDRESS_BYTES} together, so that every store can index them"
        )
        raise InvalidInputError(msg)
    if op.value is not None:
        if not isinstance(op.value, Mapping) or not all(isinstance(k, str) for k in op.value):
            msg = "an item value must be a dict with string keys (a JSON object)"
            raise InvalidInputError(msg)
        try:
            json.dumps(dict(op.value), allow_nan=False, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            msg = f"an item value must be JSON-serializable UTF-8 text: {exc}"
            raise InvalidInputError(msg) from None
    if (
        op.index is not None
        and op.index is not False
        and (not isinstance(op.index, list) or not all(isinstance(path, str) for path in op.index))
    ):
        msg = "index must be False or a list of JSON paths (strings)"
        raise InvalidInputError(msg)
    if op.ttl is not None:
        _check_minutes("ttl", op.ttl, InvalidInputError)


def _check_filter(conditions: Any) -> None:
    if conditions is None:
        return
    if not isinstance(conditions, Mapping):
        msg = f"filter must be a dict, got {type(conditions).__name__}"
        raise InvalidInputError(msg)
    _check_conditions(conditions)


def _check_conditions(conditions: Mapping[Any, Any]) -> None:
    """Every dict in a filter is either all operators (``$gt``, ...) or all field names."""
    names = [name for name in conditions if isinstance(name, str) and name.startswith("$")]
    if names:
        unknown = [name for name in conditions if name not in _OPERATORS]
        if unknown:
            msg = (
                f"Unsupported operator: {unknown[0]} (a dict of operators holds only "
                f"{', '.join(_OPERATORS)})"
            )
            raise InvalidInputError(msg)
        return
    for expected in conditions.values():
        if isinstance(expected, Mapping):
            _check_conditions(expected)


def _matches(value: Any, conditions: Mapping[str, Any] | None) -> bool:
    """Whether an item's value meets every filter condition, as LangGraph's stores compare.

    Example:
        >>> _matches({"score": 5, "tag": "a"}, {"score": {"$gt": 4}, "tag": "a"})
        True
    """
    if not conditions:
        return True
    if not isinstance(value, Mapping):
        return False
    return all(_compare(value.get(name), expected) for name, expected in conditions.items())


def _compare(actual: Any, expected: Any) -> bool:
    if isinstance(expected, Mapping):
        if any(isinstance(k, str) and k.startswith("$") for k in expected):
            return all(_apply(actual, name, operand) for name, operand in expected.items())
        if not isinstance(actual, Mapping):
            return False
        return all(_compare(actual.get(k), v) for k, v in expected.items())
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(actual, (list, tuple))
            and len(actual) == len(expected)
            and all(_compare(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected)


def _apply(actual: Any, operator: str, operand: Any) -> bool:
    if operator == "$eq":
        return bool(actual == operand)
    if operator == "$ne":
        return bool(actual != operand)
    try:
        left, right = float(actual), float(operand)
    except (TypeError, ValueError):
        return False  # a missing or non-numeric field is outside every range
    if operator == "$gt":
        return left > right
    if operator == "$gte":
        return left >= right
    if operator == "$lt":
        return left < right
    return left <= right


def _indexed_texts(row: StoredItem) -> list[str]:
    """The texts a stored item's vectors were embedded from, in order."""
    value = row.record.get("value")
    return [
        text for path in row.record.get("fields") or () for text in get_text_at_path(value, path)
    ]


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _item(row: StoredItem, *, search: bool = False, score: float | None = None) -> Any:
    value = row.record.get("value")
    if search:
        return SearchItem(
            namespace=row.namespace,
            key=row.key,
            value=value,  # type: ignore[arg-type]
            created_at=_moment(row.created_at),
            updated_at=_moment(row.updated_at),
            score=score,
        )
    return Item(
        value=value,  # type: ignore[arg-type]
        key=row.key,
        namespace=row.namespace,
        created_at=_moment(row.created_at),
        updated_at=_moment(row.updated_at),
    )


def _namespace_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        window = namespace[: len(path)]
    elif condition.match_type == "suffix":
        window = namespace[len(namespace) - len(path) :]
    else:
        msg = f"Unsupported match type: {condition.match_type}"
        raise InvalidInputError(msg)
    return all(want in ("*", have) for want, have in zip(path, window, strict=True))


def _literal_prefix(op: ListNamespacesOp) -> tuple[str, ...]:
    """The labels every listed namespace starts with: a prefix condition's, up to a ``"*"``.

    Example:
        >>> _literal_prefix(ListNamespacesOp((MatchCondition("prefix", ("a", "b", "*", "c")),)))
        ('a', 'b')
    """
    for condition in op.match_conditions or ():
        if condition.match_type == "prefix":
            path = tuple(condition.path)
            return path[: path.index("*")] if "*" in path else path
    return ()


def _list_namespaces(
    names: Sequence[tuple[str, ...]], op: ListNamespacesOp
) -> list[tuple[str, ...]]:
    """LangGraph's namespace listing: match, truncate to ``max_depth``, sort, page."""
    kept = [
        ns
        for ns in names
        if all(_namespace_matches(condition, ns) for condition in op.match_conditions or ())
    ]
    if op.max_depth is not None:
        kept = sorted({ns[: op.max_depth] for ns in kept})
    else:
        kept = sorted(set(kept))
    return kept[op.offset : op.offset + op.limit]
