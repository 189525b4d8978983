"""Faults lose nothing (#5, item 4): a Redis that dies mid-run, and a summarizer and embeddings
that fail.

Each test starts its own ``redis-server`` on a free loopback port, with the append-only file on
and fsynced on every write (in the test's tmp dir), so a server killed with SIGKILL and started
again on the same port comes back with every write it acknowledged: what a production Redis with
persistence promises. A missing or failing ``redis-server`` fails the test; it never skips.

The stores get clients that retry a refused connection once, without back-off, so a dead server
turns each call into a ``StoreError`` at once (the URL's default client retries three times with
back-off, about 3.5 s per call); after the restart they reconnect by themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from langchain_core.messages import AIMessage, HumanMessage
from redis.backoff import NoBackoff

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.errors import StoreError
from langchain_hybrid_memory.stores import RedisStore
from tests.conversations import filler
from tests.fakes import CountingEmbeddings, RecordingChatModel

if TYPE_CHECKING:
    from collections.abc import Iterator

    from langchain_core.embeddings import Embeddings
    from langchain_core.messages import BaseMessage

pytestmark = pytest.mark.integration

_WATCHDOG_SECONDS = 300  # the server stops by itself even if the test process dies
_READY_SECONDS = 20.0

PEANUTS = [HumanMessage("My name is Ana and I'm allergic to peanuts"), AIMessage("Noted, Ana.")]
SNACK_QUESTION = "Which snack is safe for my allergy?"
SUMMARY_JSON = json.dumps({"summary": "Ana talked about cooking and travel.", "entities": []})


class PrivateRedis:
    """A ``redis-server`` child process on a free loopback port, with a durable AOF in ``dir``.

    ``start()`` runs it under ``timeout`` (no ``--daemonize``) and waits for PING; ``kill()``
    SIGKILLs the server process (a crash); ``start()`` again brings it back on the same port
    with the data it acknowledged.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.server_pid: int | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (scripts/ensure-services.sh installs it)")
        log = self.dir / f"redis-{self.port}.log"
        self.process = subprocess.Popen(
            [
                "timeout",
                str(_WATCHDOG_SECONDS),
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "yes",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.dir),
                "--logfile",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _READY_SECONDS
        while True:
            if self.process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                pytest.fail(
                    f"redis-server on port {self.port} exited with {self.process.returncode}:\n"
                    f"{tail}"
                )
            with contextlib.suppress(redis.RedisError, OSError):
                client = redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1)
                try:
                    if client.ping():
                        self.server_pid = int(client.info("server")["process_id"])
                        break
                finally:
                    client.close()
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server on port {self.port} did not answer PING")
            time.sleep(0.05)
        if _parent_pid(self.server_pid) != self.process.pid:
            self.stop()
            pytest.fail(f"port {self.port} is answered by a Redis this test did not start")

    def kill(self) -> None:
        """Crash the server (SIGKILL to the redis-server process) and reap it."""
        assert self.process is not None
        assert self.server_pid is not None
        os.kill(self.server_pid, signal.SIGKILL)
        self.process.wait(timeout=10)  # `timeout` exits as soon as its child dies
        self.process = self.server_pid = None

    def stop(self) -> None:
        """Stop the server if it runs (teardown)."""
        if self.process is None or self.process.poll() is not None:
            self.process = self.server_pid = None
            return
        if self.server_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.server_pid, signal.SIGKILL)
        else:
            self.process.terminate()  # `timeout` passes SIGTERM on to redis-server
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = self.server_pid = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _parent_pid(pid: int | None) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private Redis for this test, killed in teardown."""
    server = PrivateRedis(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _sync_client(port: int) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_connect_timeout=2,
        socket_timeout=5,
        retry=redis.retry.Retry(NoBackoff(), 1),
    )


def _async_client(port: int) -> redis.asyncio.Redis:
    return redis.asyncio.Redis(
        host="127.0.0.1",
        port=port,
        socket_connect_timeout=2,
        socket_timeout=5,
        retry=redis.asyncio.retry.Retry(NoBackoff(), 1),
    )


def _prefix() -> str:
    return f"hmfault_{uuid.uuid4().hex[:12]}"


class KillingEmbeddings(CountingEmbeddings):
    """Real embeddings that, once armed, crash the Redis server as they start embedding."""

    def __init__(self, inner: Embeddings, server: PrivateRedis) -> None:
        super().__init__(inner)
        self.server = server
        self.armed = False

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.armed:
            self.armed = False
            self.server.kill()
        return super().embed_documents(texts)


def _batches(start: int, count: int) -> list[list[BaseMessage]]:
    """``count`` user/assistant pairs, distinct from every other batch of the test."""
    return [filler(2, start=start + i) for i in range(count)]


def _check_recovered(
    memory: HybridMemory,
    session: str,
    acknowledged: list[BaseMessage],
    refused: list[BaseMessage],
) -> None:
    """Every acknowledged message once, in order, ids contiguous; no refused message stored."""
    turns = memory.turns(session)
    stored = [turn.message for turn in turns]
    refused_texts = {message.content for message in refused}
    assert not [m.content for m in stored if m.content in refused_texts], "refused turns stored"
    assert stored == acknowledged, "an acknowledged turn is missing, duplicated or out of order"
    assert [turn.id for turn in turns] == list(range(len(acknowledged)))
    memory.flush()  # the window's turns wait for the next query's embedding call until then
    ids, _ = memory.store.get_vectors(session)
    assert sorted(ids) == list(range(len(acknowledged))), (
        "turns whose vectors could not be stored while the server was down get them afterwards"
    )


def test_a_redis_crash_refuses_calls_with_store_error_and_loses_no_acknowledged_turn(
    private_redis, embeddings
):
    session = "s1"
    client = _sync_client(private_redis.port)
    prefix = _prefix()
    killer = KillingEmbeddings(embeddings, private_redis)
    memory = HybridMemory(  # embedding in the call, where the server dies
        store=RedisStore(client, prefix=prefix),
        embeddings=killer,
        window_turns=2,
        embed_in_background=False,
    )
    acknowledged: list[BaseMessage] = []
    refused: list[BaseMessage] = []
    try:
        for batch in [PEANUTS, *_batches(0, 3)]:
            memory.add_messages(session, batch)
            acknowledged += batch

        # The server dies in the middle of a call, after the turns were appended: the call is
        # acknowledged (reporting failure would make a caller retry and store them twice).
        killer.armed = True
        batch = filler(2, start=3)
        try:
            memory.add_messages(session, batch)
        except StoreError:
            pytest.fail("the turns were stored before the crash, yet the call reported failure")
        assert private_redis.process is None, "the server was killed mid-call"
        acknowledged += batch

        for batch in _batches(10, 2):
            with pytest.raises(StoreError):
                memory.add_messages(session, batch)
            refused += batch
        with pytest.raises(StoreError):
            memory.build_context(session, SNACK_QUESTION)
        with pytest.raises(StoreError):
            memory.transcript(session)

        private_redis.start()
        for batch in _batches(20, 3):
            memory.add_messages(session, batch)
            acknowledged += batch

        _check_recovered(memory, session, acknowledged, refused)
        context = memory.build_context(session, SNACK_QUESTION)
        assert [turn.message for turn in context.window] == acknowledged[-len(context.window) :]
        assert any("peanuts" in item.turn.text for item in context.recalled)

        fresh = HybridMemory(store=RedisStore(client, prefix=prefix), embeddings=embeddings)
        assert fresh.transcript(session) == acknowledged
        fresh.close()
    finally:
        memory.close()
        client.close()


async def test_the_async_twins_refuse_with_store_error_and_recover_after_a_restart(
    private_redis, embeddings
):
    session = "s1"
    client = _sync_client(private_redis.port)
    aclient = _async_client(private_redis.port)
    killer = KillingEmbeddings(embeddings, private_redis)
    store = RedisStore(client, prefix=_prefix(), async_client=aclient)
    memory = HybridMemory(  # embedding in the call, where the server dies
        store=store, embeddings=killer, window_turns=2, embed_in_background=False
    )
    acknowledged: list[BaseMessage] = []
    refused: list[BaseMessage] = []
    try:
        for batch in [PEANUTS, *_batches(0, 3)]:
            await memory.aadd_messages(session, batch)
            acknowledged += batch
        assert await memory.atranscript(session) == acknowledged  # the native async client

        killer.armed = True
        batch = filler(2, start=3)
        try:
            await memory.aadd_messages(session, batch)
        except StoreError:
            pytest.fail("the turns were stored before the crash, yet the call reported failure")
        assert private_redis.process is None, "the server was killed mid-call"
        acknowledged += batch

        for batch in _batches(10, 2):
            with pytest.raises(StoreError):
                await memory.aadd_messages(session, batch)
            refused += batch
        with pytest.raises(StoreError):
            await memory.abuild_context(session, SNACK_QUESTION)
        with pytest.raises(StoreError):
            await memory.atranscript(session)

        private_redis.start()
        assert await memory.atranscript(session) == acknowledged, (
            "the async client reconnects after the restart"
        )
        for batch in _batches(20, 3):
            await memory.aadd_messages(session, batch)
            acknowledged += batch

        _check_recovered(memory, session, acknowledged, refused)
        assert await memory.atranscript(session) == acknowledged
        context = await memory.abuild_context(session, SNACK_QUESTION)
        assert [turn.message for turn in context.window] == acknowledged[-len(context.window) :]
        assert any("peanuts" in item.turn.text for item in context.recalled)
    finally:
        memory.close()
        await aclient.aclose()
        client.close()


def _fold_as_if_nothing_failed(embeddings: Embeddings, calls: list[list[BaseMessage]]) -> int:
    """Where the summary of these calls ends when nothing fails (an in-memory run)."""
    reference = HybridMemory(
        llm=RecordingChatModel(responses=[SUMMARY_JSON]),
        embeddings=embeddings,
        window_turns=4,
        summary_batch=5,
    )
    for batch in calls:
        reference.add_messages("s1", batch)
    return reference.summary("s1").through_turn


def test_a_failing_summarizer_and_embedder_lose_no_turn_and_catch_up_on_redis(
    private_redis, embeddings
):
    session = "s1"
    client = _sync_client(private_redis.port)
    prefix = _prefix()
    summarizer = RecordingChatModel(responses=[SUMMARY_JSON], fail_times=10**6)
    flaky = CountingEmbeddings(embeddings, fail_times=10**6)
    memory = HybridMemory(
        store=RedisStore(client, prefix=prefix),
        llm=summarizer,
        embeddings=flaky,
        window_turns=4,
        summary_batch=5,
        summary_retry_seconds=0,
    )
    calls = [PEANUTS, *_batches(0, 12)]
    stored: list[BaseMessage] = []
    try:
        for batch in calls:
            memory.add_messages(session, batch)
            stored += batch
            assert memory.transcript(session) == stored

        assert summarizer.prompts, "the summarizer was asked (and failed)"
        assert memory.summary(session).version == 0
        assert memory.store.get_vectors(session)[0] == []
        context = memory.build_context(session, "Tell me about my peanuts allergy")
        assert context.window[-1].message == stored[-1], "build_context answers meanwhile"
        assert any(item.turn.id == 0 for item in context.recalled), "recalled by words"

        summarizer.fail_times = 0
        flaky.fail_times = 0
        last = filler(2, start=40)
        memory.add_messages(session, last)
        stored += last
        calls.append(last)

        assert memory.transcript(session) == stored
        summary = memory.summary(session)
        assert summary.text == "Ana talked about cooking and travel."
        assert summary.through_turn == _fold_as_if_nothing_failed(embeddings, calls)
        assert summary.through_turn >= 14, "several batches left the window"
        assert summary.version == (summary.through_turn + 1) // 5, "each batch folded once"
        memory.flush()  # the window's turns wait for the next query's embedding call until then
        ids, _ = memory.store.get_vectors(session)
        assert sorted(ids) == list(range(len(stored))), "every turn got its vector"

        fresh_embeddings = CountingEmbeddings(embeddings)
        fresh = HybridMemory(
            store=RedisStore(client, prefix=prefix), embeddings=fresh_embeddings, window_turns=4
        )
        recalled = fresh.build_context(session, SNACK_QUESTION).recalled
        hit = next((item for item in recalled if item.turn.id == 0), None)
        assert hit is not None, "the early turn is recalled from the stored session"
        assert hit.dense_score is not None, "from its stored vector"
        embedded = fresh_embeddings.documents + fresh_embeddings.queries
        assert embedded == 1, "only the query: stored vectors are reused, not re-embedded"
        fresh.close()
    finally:
        memory.close()
        client.close()
