"""Embedding off the critical path: stored messages are embedded in a background thread."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory import _indexing as indexing
from langchain_hybrid_memory.stores import InMemoryStore
from tests.conversations import filler
from tests.fakes import CountingEmbeddings


class GatedEmbeddings(Embeddings):
    """Real embeddings that hold any call containing a held text until released."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.held: set[str] = set()
        self.gate = threading.Event()
        self.holding = threading.Event()
        self.texts: list[str] = []
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            self.texts += texts
        if self.held & set(texts):
            self.holding.set()
            assert self.gate.wait(10), "never released"
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def wait_for(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def background_threads():
    """The background threads started during the test (earlier tests' may still be idling)."""
    before = set(threading.enumerate())

    def started() -> list[str]:
        return [
            t.name
            for t in threading.enumerate()
            if t.name == "hybrid-embed-waiting" and t not in before
        ]

    return started


def test_storing_a_reply_never_waits_for_the_model_nor_delays_the_next_context(
    embeddings, background_threads
):
    gated = GatedEmbeddings(embeddings)
    gated.held = {"Try the Azores in May."}
    memory = HybridMemory(embeddings=gated, window_turns=2)
    memory.build_context("s1", "Where should I travel in May?")
    memory.add_messages(
        "s1", [HumanMessage("Where should I travel in May?"), AIMessage("Try the Azores in May.")]
    )
    assert gated.holding.wait(10), "the reply is being embedded in the background"

    # the model is busy with the reply: the next context only waits for its query
    context = memory.build_context("s1", "And in October?")
    assert [turn.text for turn in context.window][-1] == "Try the Azores in May."
    memory.add_messages("s1", [HumanMessage("And in October?"), AIMessage("Madeira.")])
    # the questions' vectors (from their queries) are stored; the replies' are not yet
    assert list(memory.store.get_vectors("s1", 0)[0]) == [0, 2]

    gated.gate.set()
    wait_for(lambda: list(memory.store.get_vectors("s1", 0)[0]) == [0, 1, 2, 3])
    # each text once: the questions as queries (their vectors reused), the replies behind
    assert sorted(gated.texts) == sorted(
        ["Where should I travel in May?", "Try the Azores in May.", "And in October?", "Madeira."]
    )
    memory.close()
    assert background_threads() == []


def test_a_context_embeds_what_left_the_window_unembedded_with_its_query(embeddings):
    gated = GatedEmbeddings(embeddings)
    gated.held = {"Another conversation"}
    memory = HybridMemory(embeddings=gated, window_turns=2)
    memory.add_messages("s0", [HumanMessage("Another conversation")])
    assert gated.holding.wait(10), "the background thread is stuck on another session"
    memory.add_messages("s1", [HumanMessage("My cat is called Miso"), *filler(5)])

    context = memory.build_context("s1", "What is my cat called?")
    hit = next(item for item in context.recalled if item.turn.id == 0)
    assert hit.dense_score is not None, "turn 0 left the window: embedded for this context"
    assert list(memory.store.get_vectors("s1", 0)[0]) == [0, 1, 2, 3]
    gated.gate.set()
    memory.close()


def test_the_background_backs_off_after_a_model_failure_and_catches_up(embeddings, monkeypatch):
    monkeypatch.setattr(indexing, "MAX_BACKOFF_SECONDS", 0.5)
    flaky = CountingEmbeddings(embeddings, fail_times=2)
    memory = HybridMemory(embeddings=flaky, window_turns=2)
    memory.add_messages("s1", [HumanMessage("My cat is called Miso"), AIMessage("Cute!")])
    assert [turn.text for turn in memory.transcript("s1")] == ["My cat is called Miso", "Cute!"]
    wait_for(lambda: list(memory.store.get_vectors("s1", 0)[0]) == [0, 1])
    assert flaky.fail_times == 0
    memory.close()


def test_a_session_erased_while_its_turns_are_embedded_gets_none_of_their_vectors(embeddings):
    gated = GatedEmbeddings(embeddings)
    gated.held = {"old life"}
    memory = HybridMemory(embeddings=gated)
    memory.add_messages("s1", [HumanMessage("old life")])
    assert gated.holding.wait(10)
    memory.forget_session("s1")
    memory.add_messages("s1", [HumanMessage("new life")])
    gated.gate.set()
    memory.flush()
    ids, vectors = memory.store.get_vectors("s1", 0)
    assert list(ids) == [0]
    expected = memory.embeddings.embed_query("new life")
    assert float(vectors[0] @ expected) > 0.999, "turn 0 has the new life's vector"
    memory.close()


async def test_async_callers_get_the_background_too(embeddings, background_threads):
    gated = GatedEmbeddings(embeddings)
    gated.held = {"A reply"}
    memory = HybridMemory(embeddings=gated, window_turns=2)
    await memory.aadd_messages("s1", [HumanMessage("A question"), AIMessage("A reply")])
    await asyncio.to_thread(gated.holding.wait, 10)
    context = await memory.abuild_context("s1", "Another question")
    assert context.window[-1].text == "A reply"
    gated.gate.set()
    await memory.aclose()
    assert list(memory.store.get_vectors("s1", 0)[0]) == [0, 1]
    assert background_threads() == []


class AsyncOnlyEmbeddings(Embeddings):
    """Embeddings with async methods only (a remote API client, say)."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    def embed_query(self, text: str) -> list[float]:
        raise NotImplementedError

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


async def test_embeddings_with_async_methods_only_serve_async_callers(
    embeddings, background_threads
):
    memory = HybridMemory(embeddings=AsyncOnlyEmbeddings(embeddings), window_turns=2)
    await memory.aadd_messages(
        "s1", [HumanMessage("My cat is called Miso"), AIMessage("Cute!"), *filler(4)]
    )
    context = await memory.abuild_context("s1", "What is my cat called?")
    hit = next(item for item in context.recalled if item.turn.id == 0)
    assert hit.dense_score is not None, "recalled by its vector, not by words alone"
    await memory.aflush()
    assert list(memory.store.get_vectors("s1", 0)[0]) == list(range(6))
    await memory.aclose()
    assert background_threads() == []


class RefusingEmbeddings(CountingEmbeddings):
    """Real embeddings that refuse (raise for) any call holding a text with "POISON"."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if any("POISON" in text for text in texts):
            msg = "input too long for the model"
            raise ValueError(msg)
        return super().embed_documents(texts)


def test_a_text_the_model_refuses_does_not_keep_other_sessions_waiting(embeddings):
    memory = HybridMemory(embeddings=RefusingEmbeddings(embeddings), window_turns=2)
    memory.add_messages("bad", [HumanMessage("POISON " * 5)])
    for n in range(20):
        memory.add_messages(f"s{n}", [HumanMessage(f"Session {n} talks about gardening")])
    wait_for(lambda: all(memory.store.get_vectors(f"s{n}")[0] == [0] for n in range(20)))
    assert memory.store.get_vectors("bad")[0] == [], "the refused text waits, stored"
    assert [turn.text for turn in memory.transcript("bad")] == ["POISON " * 5]
    memory.close()


def test_an_erased_session_leaves_none_of_its_texts_in_the_vector_cache(embeddings):
    gated = GatedEmbeddings(embeddings)
    gated.held = {"My PIN is 4921"}
    memory = HybridMemory(embeddings=gated)
    memory.add_messages("s1", [HumanMessage("My PIN is 4921")])
    assert gated.holding.wait(10), "being embedded in the background"
    memory.forget_session("s1")
    gated.gate.set()
    memory.flush()
    assert memory._indexer.batcher.cached("My PIN is 4921") is None
    memory.close()


FORK_AFTER_USE = """
import os, sys
from langchain_core.messages import HumanMessage
from langchain_hybrid_memory import HybridMemory
memory = HybridMemory()
memory.add_messages("s", [HumanMessage("I live in Porto"), HumanMessage("hello there")])
memory.recall("s", "Where do I live?", k=1)
child = os.fork()
if child == 0:  # the parent's threads are gone here: the child embeds with threads of its own
    memory.add_messages("s", [HumanMessage("My sister lives in Lisbon")])
    found = memory.recall("s", "Where does my sister live?", k=1)[0].turn.text
    memory.flush()
    ids = memory.store.get_vectors("s")[0]
    os._exit(0 if found == "My sister lives in Lisbon" and ids == [0, 1, 2] else 3)
_, status = os.waitpid(child, 0)
print(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_embeds_with_threads_of_its_own():
    ran = subprocess.run(
        [sys.executable, "-c", FORK_AFTER_USE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "0"


def test_the_query_is_embedded_while_the_store_is_read(embeddings):
    gated = GatedEmbeddings(embeddings)
    query = "Which island did you suggest?"
    gated.held = {query}
    model_busy_at_reads: list[bool] = []

    class WatchedStore(InMemoryStore):
        watching = False

        def head(self, session_id):
            if self.watching:
                model_busy_at_reads.append(gated.holding.wait(5))
                gated.gate.set()  # the query is in the model (or never came): let it go
            return super().head(session_id)

    store = WatchedStore()
    memory = HybridMemory(store=store, embeddings=gated, window_turns=2)
    memory.add_messages("s1", [HumanMessage("Where should I go?"), AIMessage("The Azores.")])
    memory.flush()
    store.watching = True
    context = memory.build_context("s1", query)
    assert model_busy_at_reads[0] is True, "the query was in the model before the first read"
    assert context.window[-1].text == "The Azores."
    assert gated.texts.count(query) == 1, "the query is embedded once"
    memory.close()
