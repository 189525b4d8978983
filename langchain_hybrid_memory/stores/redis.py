"""Redis: memory shared by many workers, with server-side expiry; runs on Redis Cluster too.

This module is the store's shell: the clients, how a plan's requests are sent, and URLs. What
each operation does is in :mod:`~langchain_hybrid_memory.stores._redis_plans` (with the key
scheme), the scripts it runs in :mod:`~langchain_hybrid_memory.stores._redis_lua`.

The async twins use one ``redis.asyncio`` client per running event loop (a client only works in
the loop that first used it), closed when the store's ``aclose()`` runs or the loop shuts down.

Only plain lists, hashes, sets and strings are used: any Redis 6+ works, no module needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from langchain_hybrid_memory._plans import arun_plan, plan_name, run_plan
from langchain_hybrid_memory.errors import ConfigError, MissingDependencyError, StoreError
from langchain_hybrid_memory.stores._codec import Codec
from langchain_hybrid_memory.stores._loops import PerLoop
from langchain_hybrid_memory.stores._redis_lua import SCRIPTS
from langchain_hybrid_memory.stores._redis_plans import (
    REENCRYPT_PAGE,
    Batch,
    Pause,
    RedisPlans,
    Request,
    Scan,
    Script,
)
from langchain_hybrid_memory.stores._secrets import connection_error
from langchain_hybrid_memory.stores.base import MemoryStore, check_ttl

try:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster
    from redis.exceptions import RedisClusterException, RedisError
except ImportError as exc:  # pragma: no cover - exercised by the import test
    raise MissingDependencyError.for_extra("redis", "redis") from exc

if TYPE_CHECKING:
    from collections.abc import Callable

    from langchain_hybrid_memory._plans import Plan
    from langchain_hybrid_memory.stores.encryption import EncryptionKey

__all__ = ["RedisStore"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

_SyncClient = redis.Redis | redis.cluster.RedisCluster
_AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
_ERRORS = (RedisError, RedisClusterException, OSError)


@dataclass(frozen=True)
class _Scripted:
    """An async client with the store's scripts registered on it."""

    client: _AsyncClient
    scripts: dict[str, Any]

    @classmethod
    def of(cls, client: _AsyncClient) -> _Scripted:
        return cls(client, {name: client.register_script(src) for name, src in SCRIPTS.items()})

    def abandon(self) -> None:
        """Close the client's connections without its event loop, which closed without it.

        redis-py closes a connection only from its loop; when that loop is gone, the sockets
        are shut down instead (the server closes its end at once; the file descriptors follow
        with the objects). This reaches into redis-py's pools: there is no public way.
        """
        client = self.client
        connections: list[Any]
        if isinstance(client, redis.asyncio.cluster.RedisCluster):
            connections = [
                c for node in client.get_nodes() for c in getattr(node, "_connections", ())
            ]
        else:
            pool = client.connection_pool
            connections = [
                *getattr(pool, "_available_connections", ()),
                *getattr(pool, "_in_use_connections", ()),
            ]
        for connection in connections:
            writer = getattr(connection, "_writer", None)
            sock = None if writer is None else writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    async def execute(self, request: Request) -> Any:
        if isinstance(request, Pause):
            await asyncio.sleep(request.seconds)
            return None
        if isinstance(request, Script):
            return await self.scripts[request.name](keys=request.keys, args=request.args)
        if isinstance(request, Batch):
            pipe = self.client.pipeline(transaction=False)
            for call in request.calls:
                pipe.execute_command(*call)
            return await pipe.execute()
        if isinstance(request, Scan):
            return [key async for key in self.client.scan_iter(match=request.pattern, count=500)]
        return await self.client.execute_command(*request.args)


class RedisStore(MemoryStore):
    """Keeps memory in Redis (or Redis Cluster), shared by every worker that opens it.

    Every write to a session is one Lua script over the session's keys (one hash tag), so any
    number of processes can write one session: no turn is lost or duplicated and ids stay
    contiguous. With ``ttl_seconds`` every key of a session expires together, ``ttl_seconds``
    after the session's last write, on the server. See
    :mod:`~langchain_hybrid_memory.stores._redis_plans` for the key scheme.

    Args:
        client_or_url: A ``redis.Redis`` or ``redis.cluster.RedisCluster`` client (created with
            ``decode_responses=False``), or a URL: ``redis://host:port/db``, ``rediss://...``,
            ``unix://...``, or ``redis+cluster://host:port`` (``rediss+cluster://``) for a
            cluster.
        prefix: Namespace of every key (no ``{`` or ``}``).
        ttl_seconds: Sessions expire this long after their last write (``None``: never).
        async_client: The ``redis.asyncio`` client for the async twins when ``client_or_url``
            is a client: it serves the event loop that first uses it (later loops run the sync
            client in a worker thread); it is left open by :meth:`aclose`. With a URL the store
            creates an async client in each event loop that uses it, closed by :meth:`aclose` or
            when that loop shuts down.
        encryption_key: A Fernet key, or a list of them (the first seals, all open), to encrypt
            turns, summaries and entities at rest; ``None`` stores them as plain JSON. See
            :meth:`reencrypt` for rotation.
        encrypt_vectors: With a key, encrypt the embedding vectors too.

    Raises:
        StoreError: The server cannot be reached or is not what the URL says (the message
            never shows the URL's password).
        ConfigError: A bad prefix, TTL, client or encryption key.

    Example:
        Needs a Redis server::

            store = RedisStore("redis://127.0.0.1:6379/0", prefix="bot", ttl_seconds=86400)
            memory = HybridMemory(store=store)
            cluster = RedisStore("redis+cluster://10.0.0.5:7000")
    """

    name = "redis"

    _plans: RedisPlans

    def __init__(
        self,
        client_or_url: str | _SyncClient,
        *,
        prefix: str = "hm",
        ttl_seconds: float | None = None,
        async_client: _AsyncClient | None = None,
        encryption_key: EncryptionKey | None = None,
        encrypt_vectors: bool = False,
    ) -> None:
        url_text = client_or_url if isinstance(client_or_url, str) else ""
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            msg = f"prefix must be a non-empty string without braces, got {prefix!r}"
            raise ConfigError(msg)
        self.prefix = prefix
        self.ttl_seconds = check_ttl(ttl_seconds)
        ttl_ms = 0 if self.ttl_seconds is None else max(1, round(self.ttl_seconds * 1000))
        codec = Codec(encryption_key, encrypt_vectors=encrypt_vectors)
        self._plans = RedisPlans(prefix, ttl_ms, codec)
        self._owns_clients = isinstance(client_or_url, str)
        self._client: _SyncClient
        # a redis.asyncio client only works in the loop that first used it: with a URL each
        # loop gets one of its own; a passed one serves the first loop that uses it
        self._aclients: PerLoop[_Scripted] | None = None
        self._given = None if async_client is None else _Scripted.of(async_client)
        self._given_loop: asyncio.AbstractEventLoop | None = None
        self._given_lock = threading.Lock()
        if isinstance(client_or_url, str):
            url = client_or_url
            self._client = _sync_client_from_url(url)
            self._given = None
            self._aclients = PerLoop(
                lambda: _Scripted.of(_async_client_from_url(url)),
                close=lambda scripted: scripted.client.aclose(),
                abandon=_Scripted.abandon,
            )
        elif isinstance(client_or_url, _SyncClient):
            self._client = client_or_url
        else:
            msg = (
                "client_or_url must be a redis URL, redis.Redis or redis.cluster.RedisCluster, "
                f"got {type(client_or_url).__name__}"
            )
            raise ConfigError(msg)
        for client in (self._client, None if self._given is None else self._given.client):
            if client is not None and client.get_connection_kwargs().get("decode_responses"):
                msg = "redis store: the client must be created with decode_responses=False"
                raise ConfigError(msg)
        self.cluster = isinstance(self._client, redis.cluster.RedisCluster)
        self._scripts = {name: self._client.register_script(src) for name, src in SCRIPTS.items()}
        failure: StoreError | None = None
        try:
            self._client.ping()
        except (RedisError, RedisClusterException, OSError) as exc:
            failure = connection_error("redis store: cannot reach the server", exc, url_text)
        if failure is not None:  # not chained: the driver's message may quote the URL
            raise failure

    # -- drivers ----------------------------------------------------------------------------

    def _execute(self, request: Request) -> Any:
        if isinstance(request, Pause):
            time.sleep(request.seconds)
            return None
        if isinstance(request, Script):
            return self._scripts[request.name](keys=request.keys, args=request.args)
        if isinstance(request, Batch):
            pipe = self._client.pipeline(transaction=False)
            for call in request.calls:
                pipe.execute_command(*call)
            return pipe.execute()
        if isinstance(request, Scan):
            return list(self._client.scan_iter(match=request.pattern, count=500))
        return self._client.execute_command(*request.args)  # type: ignore[no-untyped-call]

    def _run(self, plan: Plan[Request, _R]) -> _R:
        try:
            return run_plan(plan, self._execute)
        except _ERRORS as exc:
            msg = f"redis store: {plan_name(plan)} failed: {exc}"
            raise StoreError(msg) from exc

    async def _scripted(self) -> _Scripted | None:
        """The running loop's async client; ``None``: run the sync client in a thread."""
        if self._aclients is not None:
            return await self._aclients.get()
        loop = asyncio.get_running_loop()
        with self._given_lock:
            if self._given is None or self._given_loop not in (None, loop):
                return None
            self._given_loop = loop
            return self._given

    async def _arun(self, plan: Plan[Request, _R]) -> _R:
        try:
            scripted = await self._scripted()
        except BaseException:
            plan.close()
            raise
        if scripted is None:
            return await asyncio.to_thread(self._run, plan)
        try:
            return await arun_plan(plan, scripted.execute)
        except (*_ERRORS, RuntimeError) as exc:
            # RuntimeError: the client's connections belong to a closed event loop
            msg = f"redis store: {plan_name(plan)} failed: {exc}"
            raise StoreError(msg) from exc

    def _read(
        self, make_plan: Callable[_P, Plan[Any, _R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        return self._run(make_plan(*args, **kwargs))

    _write = _read

    async def _aread(
        self, make_plan: Callable[_P, Plan[Any, _R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        return await self._arun(make_plan(*args, **kwargs))

    _awrite = _aread

    # -- maintenance and lifecycle ------------------------------------------------------------

    def reencrypt(self) -> int:
        """Re-encrypt every stored value under the first key (see :meth:`MemoryStore.reencrypt`).

        ``SCAN``s the prefix's session keys (on every node of a cluster) and re-encrypts each
        key's values with one script per page of values, which replaces a value only if it is
        unchanged since it was read and keeps the key's expiry.
        """
        self._plans.codec.require_key()
        self._run(self._plans.reencrypt_key_check())
        rewritten = 0
        pattern = self._plans.session_key_pattern()
        try:
            for key in self._client.scan_iter(match=pattern, count=REENCRYPT_PAGE):
                name = key.decode() if isinstance(key, bytes) else str(key)
                rewritten += self._run(self._plans.reencrypt_key(name))
        except _ERRORS as exc:
            msg = f"redis store: reencrypt failed: {exc}"
            raise StoreError(msg) from exc
        return rewritten

    def close(self) -> None:
        """Close the clients this store created (clients passed in are left open).

        An async client can only be closed from its event loop: each closes when its loop
        shuts down, or use :meth:`aclose`.
        """
        if self._aclients is not None:
            self._aclients.close_other_threads()
        if self._owns_clients:
            self._client.close()

    async def aclose(self) -> None:
        """Close the clients this store created, the async ones of every event loop included."""
        if self._aclients is not None:
            await self._aclients.aclose()
        if self._owns_clients:
            self._client.close()

    def __repr__(self) -> str:
        kind = "cluster" if self.cluster else "single"
        return f"RedisStore({kind}, prefix={self.prefix!r}, ttl_seconds={self.ttl_seconds!r})"


def _cluster_url(url: str) -> str | None:
    """The plain URL of a ``redis+cluster://`` (``rediss+cluster://``) URL, else ``None``."""
    scheme, _, rest = url.partition("://")
    if scheme.lower().endswith("+cluster"):
        return f"{scheme[: -len('+cluster')]}://{rest}"
    return None


def _sync_client_from_url(url: str) -> _SyncClient:
    """A sync client for a URL; ``redis+cluster://`` gives a cluster client."""
    plain = _cluster_url(url)
    try:
        if plain is not None:
            return redis.cluster.RedisCluster.from_url(plain)
        return redis.Redis.from_url(url)
    except (*_ERRORS, ValueError) as exc:
        failure = connection_error("redis store: cannot connect with this URL", exc, url)
    raise failure  # not chained: the driver's message may quote the URL


def _async_client_from_url(url: str) -> _AsyncClient:
    """An async client for a URL (for the running event loop); cluster as for the sync one."""
    plain = _cluster_url(url)
    if plain is not None:
        return redis.asyncio.cluster.RedisCluster.from_url(plain)
    return redis.asyncio.Redis.from_url(url)
