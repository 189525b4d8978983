"""Many writers, one session: separate processes appending at once lose and duplicate nothing."""

from __future__ import annotations

import itertools
import multiprocessing
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from langchain_core.messages import HumanMessage

from langchain_hybrid_memory.types import TurnDraft
from tests.integration.backends import PERSISTENT_KINDS, Backend

if TYPE_CHECKING:
    from pathlib import Path
    from threading import Barrier

WRITERS = 4
TURNS_PER_WRITER = 500
SESSION = "shared:{session}"


def append_one_by_one(
    kind: str, tmp_path: Path, namespace: str, writer: int, barrier: Barrier
) -> None:
    """Run in a spawned process: append this writer's turns to the shared session, one per call."""
    store = Backend(kind, tmp_path, namespace=namespace).open()
    barrier.wait(timeout=120)
    for i in range(TURNS_PER_WRITER):
        text = f"writer-{writer} {i}"
        store.append_turns(SESSION, [TurnDraft(HumanMessage(text), text, datetime.now(UTC))])
        # A bot pauses between turns. Without any pause, SQLite's busy handler (which sleeps
        # and polls) lets one writer run its whole batch while the others wait: still correct,
        # but the writers would not interleave and the test would prove less.
        time.sleep(0.001)
    store.close()


@pytest.mark.parametrize("kind", PERSISTENT_KINDS)
def test_four_processes_appending_to_one_session_lose_and_duplicate_nothing(kind, tmp_path):
    backend = Backend(kind, tmp_path)
    try:
        store = backend.open()  # creates the schema before the writers race
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(WRITERS)
        writers = [
            context.Process(
                target=append_one_by_one, args=(kind, tmp_path, backend.namespace, n, barrier)
            )
            for n in range(WRITERS)
        ]
        for process in writers:
            process.start()
        for process in writers:
            process.join(timeout=300)
        assert [process.exitcode for process in writers] == [0] * WRITERS

        turns = store.get_turns(SESSION)

        assert [turn.id for turn in turns] == list(range(WRITERS * TURNS_PER_WRITER))
        assert len({turn.text for turn in turns}) == WRITERS * TURNS_PER_WRITER
        for n in range(WRITERS):
            own = [int(t.text.split()[1]) for t in turns if t.text.startswith(f"writer-{n} ")]
            assert own == list(range(TURNS_PER_WRITER))
        writer_of = [turn.text.split()[0] for turn in turns]
        runs = 1 + sum(a != b for a, b in itertools.pairwise(writer_of))
        assert runs > WRITERS, "the writers should have interleaved"
    finally:
        for process in writers:
            if process.is_alive():
                process.kill()
        backend.cleanup()
