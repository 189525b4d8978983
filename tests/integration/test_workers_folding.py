"""One batch, one LLM call: workers folding one session never summarize a batch twice.

Several ``HybridMemory`` objects (each with its own store object) and several threads feed one
session of a shared store; with an LLM summarizer, every fold must cost exactly one LLM call, so
at the end the LLM calls of all workers together equal the number of folds (the summary's
version). Folding runs in the caller's thread (``background`` off); ``summary_retry_seconds=0``
so no back-off hides a batch.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import threading
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import HumanMessage

from langchain_hybrid_memory import HybridMemory
from tests.fakes import RecordingChatModel
from tests.integration.backends import Backend
from tests.unit.store_fixtures import cluster_port, open_backend  # noqa: F401 - fixture

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


pytestmark = pytest.mark.integration

WORKER_KINDS = ("sqlite", "redis", "redis-cluster", "postgres")
SUMMARY_JSON = json.dumps({"summary": "The user listed errands to run.", "entities": []})
#: Seconds each fake LLM call takes (a real one takes far longer): folds overlap as in production.
LLM_SECONDS = 0.01
FOLDING = {
    "window_turns": 2,
    "summary_batch": 2,
    "summary_batch_tokens": None,
    "summary_retry_seconds": 0,
    "background": False,
    "token_budget": 1000,
}


@pytest.fixture(params=WORKER_KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path)


def feed(memory: HybridMemory, session_id: str, name: str, turns: int, start: Any) -> None:
    """One thread of a worker: add ``turns`` messages to the session, one call each."""
    start.wait(timeout=60)
    for i in range(turns):
        memory.add_messages(session_id, [HumanMessage(f"{name}: errand number {i}")])


# -- threads of several workers in one process ------------------------------------------------

WORKERS = 3
THREADS = 2
TURNS_PER_THREAD = 6
ROUNDS = 3


def test_each_batch_costs_one_llm_call_across_workers_and_threads(backend, embeddings):
    checker = backend.open()
    report = []
    for round_ in range(ROUNDS):
        session = f"errands-{round_}"
        llms = [
            RecordingChatModel(responses=[SUMMARY_JSON], sleep=LLM_SECONDS) for _ in range(WORKERS)
        ]
        memories = [
            HybridMemory(store=backend.open(), llm=llm, embeddings=embeddings, **FOLDING)
            for llm in llms
        ]
        start = threading.Barrier(WORKERS * THREADS)
        threads = [
            threading.Thread(
                target=feed,
                args=(memory, session, f"w{w}t{t}", TURNS_PER_THREAD, start),
            )
            for w, memory in enumerate(memories)
            for t in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        for memory in memories:
            memory.flush()

        assert checker.count_turns(session) == WORKERS * THREADS * TURNS_PER_THREAD
        folds = memories[0].summary(session).version
        calls = sum(len(llm.prompts) for llm in llms)
        report.append((folds, calls))
        for memory in memories:
            memory.close()
    assert all(calls == folds for folds, calls in report), f"(folds, LLM calls) per round: {report}"
    assert all(folds > 0 for folds, _ in report)


# -- several processes ------------------------------------------------------------------------

PROCESSES = 3
PROCESS_THREADS = 2
PROCESS_TURNS = 8
SESSION = "errands-shared"


def fold_in_a_process(  # noqa: PLR0917 - a spawned process's target takes positional args
    kind: str, tmp_path: Path, namespace: str, number: int, start: Any, results: Any
) -> None:
    """Run in a spawned process: two threads feed the shared session; report the LLM calls.

    The embedding model is a deterministic fake (loading the local model in every process
    would cost seconds); recall is not what this test measures.
    """
    store = Backend(kind, tmp_path, namespace=namespace).open()
    llm = RecordingChatModel(responses=[SUMMARY_JSON], sleep=LLM_SECONDS)
    memory = HybridMemory(
        store=store, llm=llm, embeddings=DeterministicFakeEmbedding(size=64), **FOLDING
    )
    threads = [
        threading.Thread(
            target=feed, args=(memory, SESSION, f"p{number}t{t}", PROCESS_TURNS, start)
        )
        for t in range(PROCESS_THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    memory.close()
    results.put((number, len(llm.prompts)))


@pytest.mark.parametrize("backend", ["redis", "postgres"], indirect=True)
def test_each_batch_costs_one_llm_call_across_processes(backend):
    checker = backend.open()  # creates the schema before the processes race
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES * PROCESS_THREADS)
    results = context.Queue()
    processes = [
        context.Process(
            target=fold_in_a_process,
            args=(backend.kind, backend.tmp_path, backend.namespace, n, start, results),
        )
        for n in range(PROCESSES)
    ]
    try:
        for process in processes:
            process.start()
        counts: dict[int, int] = {}
        while len(counts) < PROCESSES:
            try:
                number, calls = results.get(timeout=1)
            except queue.Empty:
                if not any(process.is_alive() for process in processes) and results.empty():
                    break  # a process died without reporting
                continue
            counts[number] = calls
        for process in processes:
            process.join(timeout=60)
        assert [process.exitcode for process in processes] == [0] * PROCESSES
        assert len(counts) == PROCESSES
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()

    assert checker.count_turns(SESSION) == PROCESSES * PROCESS_THREADS * PROCESS_TURNS
    folds = checker.get_summary(SESSION).version
    assert folds > 0
    assert sum(counts.values()) == folds, f"{folds} folds, LLM calls per process: {counts}"
