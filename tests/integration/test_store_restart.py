"""A restarted process serves an old session from the store without embedding anything again."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory import HybridMemory
from tests.conversations import filler
from tests.fakes import CountingEmbeddings
from tests.integration.backends import PERSISTENT_KINDS, Backend


@pytest.mark.parametrize("kind", PERSISTENT_KINDS)
def test_a_new_engine_on_the_same_store_builds_context_with_zero_embeddings(
    kind, tmp_path, embeddings
):
    backend = Backend(kind, tmp_path)
    try:
        before = CountingEmbeddings(embeddings)
        first = HybridMemory(store=backend.open(), embeddings=before, window_turns=6)
        first.add_messages(
            "s1",
            [HumanMessage("I'm allergic to peanuts"), AIMessage("Noted.")],
            user_id="ana",
        )
        for start in range(0, 30, 2):
            first.add_messages("s1", filler(2, start=start // 2), user_id="ana")
        first.add_messages("s1", [HumanMessage("Which snack can I take on the hike?")])
        transcript = first.transcript("s1")
        assert before.documents > 0
        first.close()

        after = CountingEmbeddings(embeddings)
        second = HybridMemory(store=backend.open(), embeddings=after, window_turns=6)
        context = second.build_context("s1")

        assert after.documents == 0, "stored vectors must be reused, not re-embedded"
        assert after.queries == 0, "the latest user turn's stored vector is the query"
        assert second.transcript("s1") == transcript
        assert [turn.message for turn in context.window] == transcript[-len(context.window) :]
        assert any("peanuts" in item.turn.text for item in context.recalled)
        second.close()
    finally:
        backend.cleanup()
