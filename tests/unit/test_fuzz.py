"""Hostile input against every public entry point: only documented errors, never a partial write.

Fast deterministic fake embeddings keep 1,000 examples per run cheap; the behaviour under test is
the engine's input handling, not the model.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.errors import HybridMemoryError

EMBEDDINGS = DeterministicFakeEmbedding(size=16)

# Every plane of unicode (hypothesis leaves out lone surrogates, which are not text), control
# characters, and the characters that break naive key schemes and SQL.
hostile_text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.sampled_from(list(":*{}'\"\n\r\t\x00\\%_[]/;-- ")), max_size=20),
    st.text(alphabet=st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF), max_size=8),
    st.just(""),
    st.just(" \n\t "),
    st.builds(lambda n: "x" * n, st.sampled_from([99_999, 100_001])),
)
hostile_ids = st.one_of(hostile_text, st.none(), st.integers(), st.just(b"bytes"))
blocks = st.lists(
    st.one_of(
        hostile_text,
        st.fixed_dictionaries({"type": st.just("text"), "text": hostile_text}),
        st.fixed_dictionaries(
            {
                "type": st.just("image_url"),
                "image_url": st.fixed_dictionaries({"url": hostile_text}),
            }
        ),
        st.dictionaries(st.text(max_size=5), hostile_text, max_size=3),
    ),
    max_size=4,
)
content = st.one_of(hostile_text, blocks)


@st.composite
def messages(draw):
    kind = draw(st.sampled_from(["human", "ai", "tool", "system", "ai_call", "not_a_message"]))
    body = draw(content)
    if kind == "human":
        return HumanMessage(body, name=draw(st.one_of(st.none(), hostile_text)))
    if kind == "ai":
        return AIMessage(body)
    if kind == "tool":
        return ToolMessage(body, tool_call_id=draw(st.text(max_size=5)))
    if kind == "system":
        return SystemMessage(body)
    if kind == "ai_call":
        return AIMessage(
            body, tool_calls=[{"name": "f", "args": {"q": draw(hostile_text)}, "id": "c"}]
        )
    return draw(
        st.one_of(hostile_text, st.none(), st.integers(), st.dictionaries(st.text(), st.text()))
    )


timestamps = st.one_of(
    st.none(),
    st.datetimes(timezones=st.sampled_from([None, UTC])),
    st.just("yesterday"),
    st.lists(st.datetimes(), max_size=3),
)
entities = st.one_of(
    st.none(),
    st.dictionaries(
        hostile_text, st.dictionaries(hostile_text, hostile_text, max_size=2), max_size=2
    ),
    st.lists(st.text(), max_size=2),
    st.dictionaries(st.text(max_size=5), hostile_text, max_size=2),
)


def fresh_memory() -> HybridMemory:
    memory = HybridMemory(embeddings=EMBEDDINGS, window_turns=3, summary_batch=2, token_budget=300)
    memory.add_messages("known", [HumanMessage("hello"), AIMessage("hi")], user_id="owner")
    return memory


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    session=hostile_ids,
    user=st.one_of(st.none(), hostile_ids),
    batch=st.one_of(st.lists(messages(), max_size=4), messages(), st.none()),
    when=timestamps,
    facts=entities,
    query=st.one_of(st.none(), hostile_text, st.integers()),
)
def test_hostile_input_gets_a_documented_error_or_a_complete_write(  # noqa: PLR0917
    session, user, batch, when, facts, query
):
    memory = fresh_memory()
    target = session if isinstance(session, str) else "known"
    before = _count(memory, target)
    try:
        stored = memory.add_messages(session, batch, user_id=user, timestamp=when, entities=facts)
    except HybridMemoryError:
        assert _count(memory, target) == before, "a refused call wrote something"
    else:
        assert isinstance(batch, list)
        assert len(stored) == len(batch)
        assert _count(memory, session) == before + len(batch)
        assert memory.transcript(session)[-len(batch) :] == batch if batch else True
    for call in (
        lambda: memory.build_context(session, query, user_id=user),
        lambda: memory.recall(session, query, user_id=user),
        lambda: memory.export_session(session, anonymize=False),
        lambda: memory.history(session, user_id=user).messages,
    ):
        try:
            result = call()
        except HybridMemoryError:
            continue
        if hasattr(result, "tokens"):
            assert result.tokens <= 300
    with contextlib.suppress(HybridMemoryError):
        memory.forget_session(session, user_id=user)


def _count(memory: HybridMemory, session: str) -> int:
    try:
        return len(memory.transcript(session))
    except HybridMemoryError:
        return 0


@settings(max_examples=200, deadline=None)
@given(user=hostile_ids)
def test_forget_user_with_any_id_erases_only_that_user(user):
    memory = fresh_memory()
    memory.add_messages("other", [HumanMessage("stay")], user_id="someone-else")
    with contextlib.suppress(HybridMemoryError):
        memory.forget_user(user)
    assert [m.text for m in memory.transcript("other")] == ["stay"]
    if user != "owner":
        assert len(memory.transcript("known")) == 2


def test_the_fuzzer_reaches_both_outcomes():
    """The strategies are not so hostile that every call fails, nor so tame that none does."""
    outcomes = set()

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(session=hostile_ids, batch=st.lists(messages(), max_size=3))
    def probe(session, batch):
        try:
            fresh_memory().add_messages(session, batch, timestamp=datetime(2026, 1, 1))
            outcomes.add("stored")
        except HybridMemoryError:
            outcomes.add("refused")

    probe()
    assert outcomes == {"stored", "refused"}
