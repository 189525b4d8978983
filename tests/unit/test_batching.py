"""Shared model calls: concurrent requests of threads and tasks gathered into one call."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from langchain_hybrid_memory import _batching as batching
from langchain_hybrid_memory._batching import EmbeddingBatcher, batcher_for
from langchain_hybrid_memory.errors import EmbeddingError


class GatedModel:
    """A fake model: each text's vector is its length; calls wait while their gate is shut.

    ``hold(text)`` shuts a gate that a call containing ``text`` waits on; ``release()`` opens
    them all. Every call's texts are recorded.
    """

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.started = threading.Event()
        self.fail: set[str] = set()
        self._gates: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def hold(self, text: str) -> None:
        self._gates[text] = threading.Event()

    def release(self) -> None:
        for gate in self._gates.values():
            gate.set()

    def __call__(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            self.calls.append(list(texts))
        self.started.set()
        for text in texts:
            if text in self._gates:
                assert self._gates[text].wait(10), "a gate was never opened"
        if self.fail & set(texts):
            msg = "the model failed"
            raise RuntimeError(msg)
        return np.array([[len(text), 1.0] for text in texts], dtype=np.float32)


def vector(text: str) -> list[float]:
    return [float(len(text)), 1.0]


def wait_for(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_requests_arriving_during_a_call_share_the_next_one():
    model = GatedModel()
    model.hold("first")
    batcher = EmbeddingBatcher(model)
    first = batcher.submit(["first"], urgent=True)
    model.started.wait(10)

    results: dict[int, np.ndarray] = {}

    def ask(n: int) -> None:
        results[n] = batcher.embed([f"text {n}", "shared"], urgent=True)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    wait_for(lambda: batcher.waiting() == 9)  # every thread has asked
    model.release()
    for thread in threads:
        thread.join()

    assert first.result().tolist() == [vector("first")]
    assert model.calls[0] == ["first"]
    # the eight requests (nine distinct texts) went into the one next call, "shared" once
    assert len(model.calls) == 2
    assert sorted(model.calls[1]) == sorted(["shared", *(f"text {n}" for n in range(8))])
    for n, rows in results.items():
        assert rows.tolist() == [vector(f"text {n}"), vector("shared")]


def test_sync_and_async_callers_share_calls():
    model = GatedModel()
    model.hold("first")
    batcher = EmbeddingBatcher(model)
    batcher.submit(["first"], urgent=True)
    model.started.wait(10)

    async def main() -> list[np.ndarray]:
        tasks = [
            asyncio.ensure_future(batcher.aembed([f"task {n}"], urgent=True)) for n in range(5)
        ]
        thread_result: list[np.ndarray] = []
        thread = threading.Thread(
            target=lambda: thread_result.append(batcher.embed(["thread"], urgent=True))
        )
        thread.start()
        while batcher.waiting() < 6:
            await asyncio.sleep(0.001)
        model.release()
        rows = await asyncio.gather(*tasks)
        await asyncio.to_thread(thread.join)
        return [*rows, *thread_result]

    rows = asyncio.run(main())
    assert [row.tolist() for row in rows] == [[vector(f"task {n}")] for n in range(5)] + [
        [vector("thread")]
    ]
    assert len(model.calls) == 2, "five tasks and a thread: one call"


def test_an_idle_model_is_called_at_once_and_a_text_asked_twice_is_embedded_once():
    model = GatedModel()
    batcher = EmbeddingBatcher(model)
    rows = batcher.embed(["a", "bb", "a"], urgent=False)
    assert rows.tolist() == [vector("a"), vector("bb"), vector("a")]
    assert model.calls == [["a", "bb"]]
    assert batcher.embed([], urgent=True).shape[0] == 0


def test_a_text_being_embedded_is_not_embedded_again_for_another_request():
    model = GatedModel()
    model.hold("slow")
    batcher = EmbeddingBatcher(model)
    first = batcher.submit(["slow"], urgent=True)
    model.started.wait(10)
    second = batcher.submit(["slow"], urgent=True)
    model.release()
    assert first.result().tolist() == second.result().tolist() == [vector("slow")]
    assert model.calls == [["slow"]]


def test_a_failing_call_fails_only_the_requests_in_it():
    model = GatedModel()
    model.hold("doomed")
    model.fail = {"doomed"}
    batcher = EmbeddingBatcher(model)
    doomed = batcher.submit(["doomed"], urgent=True)
    model.started.wait(10)
    later = batcher.submit(["fine"], urgent=True)  # the next call
    model.release()

    with pytest.raises(RuntimeError, match="the model failed"):
        doomed.result()
    assert later.result().tolist() == [vector("fine")]
    assert batcher.embed(["doomed again"], urgent=True).tolist() == [vector("doomed again")]


def test_urgent_texts_never_queue_behind_background_ones():
    model = GatedModel()
    model.hold("background")
    batcher = EmbeddingBatcher(model)
    background = batcher.submit(["background"], urgent=False)
    model.started.wait(10)

    assert batcher.embed(["query"], urgent=True).tolist() == [vector("query")]
    assert not background.done(), "the background call is still running"
    model.release()
    assert background.result().tolist() == [vector("background")]


def test_an_urgent_request_moves_a_waiting_background_text_up():
    model = GatedModel()
    model.hold("busy")
    batcher = EmbeddingBatcher(model)
    batcher.submit(["busy"], urgent=False)  # the background lane is busy...
    model.started.wait(10)
    waiting = batcher.submit(["reply"], urgent=False)  # ...so this one waits in it

    assert batcher.embed(["reply", "query"], urgent=True).tolist() == [
        vector("reply"),
        vector("query"),
    ]
    assert waiting.result(10).tolist() == [vector("reply")]
    model.release()
    assert sum(texts.count("reply") for texts in model.calls) == 1


def test_a_cancelled_async_caller_leaves_the_others_their_answer():
    model = GatedModel()
    model.hold("x")
    batcher = EmbeddingBatcher(model)

    async def main() -> np.ndarray:
        gone = asyncio.ensure_future(batcher.aembed(["x"], urgent=True))
        kept = asyncio.ensure_future(batcher.aembed(["x", "y"], urgent=True))
        await asyncio.to_thread(model.started.wait, 10)
        gone.cancel()
        model.release()
        return await kept

    assert asyncio.run(main()).tolist() == [vector("x"), vector("y")]


def test_the_cache_answers_without_a_call_and_can_be_cleared():
    model = GatedModel()
    batcher = EmbeddingBatcher(model, cache_size=2)
    batcher.embed(["a", "b", "c"], urgent=True)
    assert batcher.cached("a") is None, "the oldest left a cache of two"
    assert batcher.cached("c").tolist() == vector("c")
    batcher.embed(["b", "c"], urgent=True)
    assert len(model.calls) == 1
    batcher.embed(["c"], urgent=True, use_cache=False)
    assert len(model.calls) == 2
    batcher.clear_cache()
    assert batcher.cached("c") is None


def test_lane_threads_end_when_idle(monkeypatch):
    monkeypatch.setattr(batching, "IDLE_SECONDS", 0.05)
    batcher = EmbeddingBatcher(GatedModel(), name="idle-test")
    batcher.embed(["a"], urgent=True)
    batcher.embed(["b"], urgent=False)
    wait_for(lambda: not any(t.name.startswith("idle-test") for t in threading.enumerate()))
    assert batcher.embed(["c"], urgent=True).tolist() == [vector("c")], "a new thread starts"


def test_a_process_has_one_batcher_per_embeddings_object(embeddings):
    from langchain_hybrid_memory._indexing import _embed_rows

    assert batcher_for(embeddings, _embed_rows) is batcher_for(embeddings, _embed_rows)

    class Unreferable:
        __slots__ = ()

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [[1.0, 0.0] for _ in texts]

    own = batcher_for(Unreferable(), _embed_rows)  # type: ignore[arg-type]
    assert own.embed(["x"], urgent=True).tolist() == [[1.0, 0.0]]


def test_bad_vectors_fail_the_call_with_an_embedding_error():
    from langchain_hybrid_memory._indexing import _embed_rows

    class Broken:
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [[float("nan"), 1.0] for _ in texts]

    broken = Broken()
    with pytest.raises(EmbeddingError):
        batcher_for(broken, _embed_rows).embed(["x"], urgent=True)  # type: ignore[arg-type]


def test_a_request_answered_by_both_lanes_gets_each_text_its_own_vector():
    model = GatedModel()
    model.hold("slow background text")
    batcher = EmbeddingBatcher(model)
    batcher.submit(["slow background text"], urgent=False)
    model.started.wait(10)
    both = batcher.submit(["slow background text", "query"], urgent=True)
    wait_for(lambda: ["query"] in model.calls)  # the urgent lane answered its part
    assert not both.done()
    model.release()
    assert both.result(10).tolist() == [vector("slow background text"), vector("query")]


def test_a_text_embedded_across_an_erasure_never_enters_the_cache():
    model = GatedModel()
    model.hold("secret")
    batcher = EmbeddingBatcher(model, cache_size=8)
    pending = batcher.submit(["secret"], urgent=False)
    model.started.wait(10)
    batcher.clear_cache()  # the session is erased while its text is being embedded
    model.release()
    assert pending.result(10).tolist() == [vector("secret")]
    assert batcher.cached("secret") is None
    batcher.embed(["public"], urgent=True)
    assert batcher.cached("public") is not None, "later texts are cached again"


def test_a_model_raising_a_base_exception_fails_its_callers_and_the_lane_lives_on():
    calls = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        if len(calls) == 1:
            raise asyncio.CancelledError
        return np.ones((len(texts), 2), dtype=np.float32)

    batcher = EmbeddingBatcher(embed)
    with pytest.raises(EmbeddingError, match="CancelledError"):
        batcher.embed(["a"], urgent=True)
    assert batcher.embed(["b"], urgent=True).tolist() == [[1.0, 1.0]]


def test_when_no_thread_can_start_the_request_fails_and_the_next_one_works(monkeypatch):
    original = threading.Thread.start
    failures = iter([RuntimeError("can't start new thread")])

    def start(self: threading.Thread) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        original(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    batcher = EmbeddingBatcher(GatedModel())
    with pytest.raises(RuntimeError, match="can't start new thread"):
        batcher.submit(["a"], urgent=True).result(10)
    assert batcher.embed(["b"], urgent=True).tolist() == [vector("b")]


def test_a_closed_batcher_embeds_in_the_callers_thread():
    model = GatedModel()
    batcher = EmbeddingBatcher(model, name="closed-test")
    batcher.embed(["a"], urgent=True)
    batcher.close()
    assert not any(t.name.startswith("closed-test") for t in threading.enumerate())
    assert batcher.embed(["b", "c"], urgent=False).tolist() == [vector("b"), vector("c")]
