"""The stores under test, each in its own namespace, and a Redis Cluster started on demand.

The servers are required: an unreachable Redis or PostgreSQL fails the test (never a skip).
``scripts/ensure-services.sh`` (run by ``make test`` and ``.ci/run``) starts them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
import redis
import redis.cluster

from langchain_hybrid_memory.stores import (
    InMemoryStore,
    MemoryStore,
    PostgresStore,
    RedisStore,
    SQLiteStore,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

REDIS_URL = os.environ.get("HM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("HM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

KINDS = ("memory", "sqlite", "redis", "redis-cluster", "postgres")
PERSISTENT_KINDS = ("sqlite", "redis", "postgres")

_CLUSTER_WATCHDOG_SECONDS = 600


@dataclass
class Backend:
    """One store kind in a fresh namespace; ``open()`` gives stores sharing that namespace."""

    kind: str
    tmp_path: Path
    cluster_port: int | None = None
    namespace: str = field(default_factory=lambda: f"hmtest_{uuid.uuid4().hex[:12]}")
    opened: list[MemoryStore] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A URL that opens this backend's store with ``open_store`` (not for memory)."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp_path / 'memory.db'}"
        if self.kind == "redis":
            return REDIS_URL
        if self.kind == "redis-cluster":
            return f"redis+cluster://127.0.0.1:{self.cluster_port}"
        if self.kind == "postgres":
            return POSTGRES_URL
        msg = f"{self.kind} has no URL"
        raise ValueError(msg)

    def open(self, *, ttl_seconds: float | None = None) -> MemoryStore:
        """A new store object on this backend's namespace."""
        store: MemoryStore
        if self.kind == "memory":
            store = InMemoryStore(ttl_seconds=ttl_seconds)
        elif self.kind == "sqlite":
            store = SQLiteStore(self.tmp_path / "memory.db", ttl_seconds=ttl_seconds)
        elif self.kind in ("redis", "redis-cluster"):
            store = RedisStore(self.url, prefix=self.namespace, ttl_seconds=ttl_seconds)
        else:
            store = PostgresStore(self.url, schema=self.namespace, ttl_seconds=ttl_seconds)
        self.opened.append(store)
        return store

    def redis_client(self) -> Any:
        """A raw client on the backend's Redis (cluster-aware)."""
        if self.kind == "redis-cluster":
            return redis.cluster.RedisCluster(host="127.0.0.1", port=self.cluster_port)
        return redis.Redis.from_url(REDIS_URL)

    def traces(self) -> list[str]:
        """Everything the stores left in storage: Redis keys, or rows per table."""
        if self.kind in ("redis", "redis-cluster"):
            client = self.redis_client()
            try:
                return sorted(k.decode() for k in client.scan_iter(match=f"{self.namespace}:*"))
            finally:
                client.close()
        if self.kind == "postgres":
            tables = [
                f'"{self.namespace}".{t}' for t in ("sessions", "turns", "vectors", "entities")
            ]
            with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
                return [
                    f"{table}: {row}"
                    for table in tables
                    for row in connection.execute(f"SELECT * FROM {table}").fetchall()
                ]
        if self.kind == "sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.tmp_path / "memory.db")) as connection:
                return [
                    f"{table}: {row}"
                    for table in ("sessions", "turns", "vectors", "entities")
                    for row in connection.execute(f"SELECT * FROM {table}").fetchall()
                ]
        msg = f"{self.kind} keeps nothing outside the process"
        raise ValueError(msg)

    def break_turn_storage(self, session_id: str) -> None:
        """Make the next append to ``session_id`` fail inside the server."""
        if self.kind in ("redis", "redis-cluster"):
            client = self.redis_client()
            store = RedisStore(client, prefix=self.namespace)
            turns_key = store._plans.session_keys(session_id)[1]
            client.set(turns_key, "not a list")  # appending to it is a WRONGTYPE error
            client.close()
        elif self.kind == "postgres":
            with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
                connection.execute(f'DROP TABLE "{self.namespace}".turns')
        elif self.kind == "sqlite":
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.tmp_path / "memory.db")) as connection:
                connection.execute("DROP TABLE turns")
                connection.commit()

    def cleanup(self) -> None:
        """Close every store opened and remove the namespace from the server."""
        for store in self.opened:
            with contextlib.suppress(Exception):
                store.close()
        if self.kind == "postgres":
            with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{self.namespace}" CASCADE')
        elif self.kind in ("redis", "redis-cluster"):
            client = self.redis_client()
            try:
                for key in list(client.scan_iter(match=f"{self.namespace}:*")):
                    client.delete(key)
            finally:
                client.close()


def _free_cluster_port() -> int:
    """A loopback port free together with its cluster bus port (port + 10000)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 55000:
            continue
        try:
            with socket.socket() as first, socket.socket() as bus:
                first.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    msg = "no free loopback port pair for a Redis Cluster node"
    raise RuntimeError(msg)


def _wait_until(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            msg = f"timed out waiting for {what}"
            raise RuntimeError(msg)
        time.sleep(0.1)


@contextlib.contextmanager
def redis_cluster(directory: Path) -> Iterator[int]:
    """Start a 3-node Redis Cluster on free loopback ports; yield one node's port.

    Each node runs under ``timeout`` as a child of this process, so it stops by itself even if
    the test run dies; on exit the nodes are shut down (``shutdown nosave``) and reaped.
    """
    server = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    if server is None or cli is None:
        msg = "redis-server and redis-cli are required (scripts/ensure-services.sh installs them)"
        raise RuntimeError(msg)
    ports: list[int] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(3):
            port = _free_cluster_port()
            while port in ports:
                port = _free_cluster_port()
            ports.append(port)
            processes.append(
                subprocess.Popen(
                    [
                        "timeout",
                        str(_CLUSTER_WATCHDOG_SECONDS),
                        server,
                        "--port",
                        str(port),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(directory / f"nodes-{port}.conf"),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(directory),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in ports:
            _wait_until(lambda port=port: redis.Redis(port=port).ping(), f"node {port}")
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *[f"127.0.0.1:{p}" for p in ports],
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        for port in ports:
            _wait_until(
                lambda port=port: redis.Redis(port=port).cluster("info")["cluster_state"] == "ok",
                "the cluster",
            )
        yield ports[0]
    finally:
        for port in ports:
            subprocess.run(
                [cli, "-p", str(port), "shutdown", "nosave"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
