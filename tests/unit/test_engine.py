"""The engine's promises: it remembers, stays in budget, never loses a turn, and async matches sync."""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from langchain_hybrid_memory import HybridMemory, HybridMemoryConfig
from langchain_hybrid_memory.errors import HybridMemoryError, StoreError
from tests.conversations import START, filler, times
from tests.fakes import CountingEmbeddings, RecordingChatModel

PEANUTS = [HumanMessage("My name is Ana and I'm allergic to peanuts"), AIMessage("Noted, Ana.")]
SUMMARY_JSON = json.dumps(
    {"summary": "Ana asked about cooking, hobbies and travel.", "entities": []}
)


def long_session(memory: HybridMemory, session: str = "s1", *, filler_turns: int = 70) -> None:
    memory.add_messages(session, PEANUTS, timestamp=START)
    for start in range(0, filler_turns, 2):
        memory.add_messages(session, filler(2, start=start // 2), timestamp=times(2)[-1])


def test_turn_one_fact_reaches_the_prompt_of_a_question_asked_70_turns_later(embeddings):
    summarizer = RecordingChatModel(responses=[SUMMARY_JSON])
    memory = HybridMemory(
        llm=summarizer, embeddings=embeddings, window_turns=10, summary_batch=10, token_budget=500
    )
    long_session(memory)

    context = memory.build_context("s1", "Can you suggest a snack for me?")

    assert 0 not in {turn.id for turn in context.window}
    assert "peanuts" not in context.summary  # the fake summary drops it: recall must carry it
    assert any(item.turn.id == 0 for item in context.recalled), "recall must find turn 0"
    assert context.tokens <= 500
    chat = RecordingChatModel(responses=["How about an apple?"])
    prompt = ChatPromptTemplate.from_messages(
        [MessagesPlaceholder("history"), ("human", "{input}")]
    )
    (prompt | chat).invoke({"history": context.to_messages(), "input": "Suggest a snack?"})
    assert "allergic to peanuts" in chat.prompts[-1]


def test_context_stays_within_budget_while_the_conversation_grows(embeddings):
    memory = HybridMemory(embeddings=embeddings, window_turns=10, token_budget=300)
    for start in range(0, 120, 2):
        memory.add_messages("s1", filler(2, start=start // 2))
        context = memory.build_context("s1", "what about coffee?")
        assert context.tokens <= 300
        assert context.tokens == memory.token_counter(context.to_messages())
    assert context.window[-1].message.text == memory.transcript("s1")[-1].text


def test_summarizer_is_called_once_per_batch_and_sees_each_turn_once(embeddings):
    summarizer = RecordingChatModel(responses=[SUMMARY_JSON])
    memory = HybridMemory(llm=summarizer, embeddings=embeddings, window_turns=10, summary_batch=20)
    total = 205
    for message in filler(total):
        memory.add_message("s1", message)

    evicted = total - 10
    assert len(summarizer.prompts) <= math.ceil(evicted / 20)
    assert len(summarizer.prompts) == evicted // 20
    summary = memory.summary("s1")
    assert summary.through_turn == 20 * (evicted // 20) - 1
    assert summary.text == "Ana asked about cooking, hobbies and travel."
    for turn_id in range(summary.through_turn + 1):
        assert sum(prompt.count(f"[{turn_id}] ") for prompt in summarizer.prompts) == 1


def test_long_messages_fold_by_tokens_so_a_summarizer_prompt_stays_bounded(embeddings):
    summarizer = RecordingChatModel(responses=[SUMMARY_JSON])
    memory = HybridMemory(
        llm=summarizer,
        embeddings=embeddings,
        window_turns=4,
        summary_batch=40,
        summary_batch_tokens=300,
    )
    paragraph = "The invoice for the garden shed lists timber, screws and two hinges. " * 8
    for index in range(30):
        memory.add_message("s1", HumanMessage(f"{index}: {paragraph}"))

    # ~130 tokens per message: every third evicted message closes a batch, well before 40
    assert len(summarizer.prompts) == (30 - 4) // 3
    assert memory.summary("s1").through_turn == 3 * len(summarizer.prompts) - 1
    for turn_id in range(memory.summary("s1").through_turn + 1):
        assert sum(prompt.count(f"[{turn_id}] ") for prompt in summarizer.prompts) == 1
    longest = max(memory.token_counter([HumanMessage(p)]) for p in summarizer.prompts)
    assert longest < 300 + 2 * 140 + 400  # threshold + last message + summary and instructions


def test_a_failing_summarizer_loses_no_turn_and_the_batch_is_retried(embeddings):
    summarizer = RecordingChatModel(responses=[SUMMARY_JSON], fail_times=2)
    memory = HybridMemory(
        llm=summarizer,
        embeddings=embeddings,
        window_turns=4,
        summary_batch=5,
        summary_retry_seconds=0,
    )
    messages = filler(20)
    for message in messages:
        memory.add_message("s1", message)

    assert memory.transcript("s1") == messages
    assert memory.summary("s1").through_turn == 14  # batches 0-4, 5-9, 10-14 folded in the end
    assert memory.build_context("s1", "coffee").window[-1].message == messages[-1]


def test_a_failed_batch_waits_for_its_back_off_before_calling_the_llm_again(embeddings):
    summarizer = RecordingChatModel(responses=[SUMMARY_JSON], fail_times=1)
    memory = HybridMemory(
        llm=summarizer,
        embeddings=embeddings,
        window_turns=4,
        summary_batch=5,
        summary_retry_seconds=3600,
    )
    for message in filler(30):
        memory.add_message("s1", message)

    assert len(summarizer.prompts) == 1
    assert memory.summary("s1").version == 0
    context = memory.build_context("s1", "How do I clean a cast iron pan?")
    assert context.recalled, "recall still answers while the summary waits"
    assert len(memory.transcript("s1")) == 30


def test_an_embedding_failure_stores_the_turn_and_indexes_it_later(embeddings):
    flaky = CountingEmbeddings(embeddings, fail_times=1)
    memory = HybridMemory(embeddings=flaky, window_turns=2, embed_in_background=False)
    memory.add_messages("s1", [HumanMessage("My cat is called Miso"), AIMessage("Cute!")])
    assert len(memory.transcript("s1")) == 2

    memory.add_messages("s1", filler(4))
    context = memory.build_context("s1", "What is my cat called?")
    hit = next(item for item in context.recalled if item.turn.id == 0)
    assert hit.dense_score is not None, "turn 0 was embedded on a later call"


def test_a_failing_query_embedding_still_recalls_by_words(embeddings):
    flaky = CountingEmbeddings(embeddings)
    memory = HybridMemory(embeddings=flaky, window_turns=2)
    memory.add_messages(
        "s1", [HumanMessage("My cat is called Miso"), AIMessage("Cute!"), *filler(4)]
    )
    flaky.fail_on = {"Tell me about Miso"}  # every call with the query fails
    context = memory.build_context("s1", "Tell me about Miso")
    assert context.recalled[0].turn.id == 0
    assert context.recalled[0].dense_score is None
    assert [turn.text for turn in memory.transcript("s1")][-1] == filler(4)[-1].text


def test_a_chat_turn_costs_one_embedding_call_and_embeds_each_text_once(embeddings):
    counting = CountingEmbeddings(embeddings)
    memory = HybridMemory(embeddings=counting, embed_in_background=False)
    exchanges = [
        ("Where should I travel in May?", "Try the Azores."),
        ("And in October?", "Madeira is still warm then."),
        ("What should I pack?", "A rain jacket and walking shoes."),
        ("Any food to try?", "Espetada and bolo do caco."),
    ]
    memory.add_messages("s1", filler(4))
    for turn, (question, reply) in enumerate(exchanges):
        calls, texts = counting.calls, counting.documents + counting.queries
        memory.build_context("s1", question)
        memory.add_messages("s1", [HumanMessage(question), AIMessage(reply)])
        assert counting.calls == calls + 1
        if turn > 0:  # the query and the previous reply, in one call (the question is reused)
            assert counting.documents + counting.queries == texts + 2

    memory.flush()  # the window's waiting turns are embedded now
    assert counting.documents + counting.queries == 4 + 2 * len(exchanges)
    ids, _ = memory.store.get_vectors("s1", 0)
    assert list(ids) == list(range(4 + 2 * len(exchanges)))


def test_interleaved_sessions_embed_each_text_once_even_with_a_tiny_cache(embeddings):
    counting = CountingEmbeddings(embeddings)
    # Without the background thread: under load it may pick a waiting reply at the moment the
    # next context embeds it too (a rare duplicate, harmless to what is stored), which is not
    # what this test is about.
    memory = HybridMemory(embeddings=counting, embedding_cache_size=2, embed_in_background=False)
    sessions = [f"s{i}" for i in range(5)]
    for turn in range(3):
        for session in sessions:  # every other session's texts pass through the cache between
            question = f"Question {turn} of {session}: where should I travel in May?"
            memory.build_context(session, question)
            memory.add_messages(
                session, [HumanMessage(question), AIMessage(f"Reply {turn} in {session}.")]
            )
    memory.flush()
    assert counting.documents + counting.queries == len(sessions) * 3 * 2


def test_flush_embeds_what_waits_in_every_session_in_one_model_call(embeddings):
    counting = CountingEmbeddings(embeddings)
    memory = HybridMemory(embeddings=counting, embed_in_background=False)
    sessions = [f"s{i}" for i in range(10)]
    for session in sessions:
        memory.add_messages(
            session, [HumanMessage(f"Hello from {session}"), AIMessage(f"Hi, {session}!")]
        )
    assert counting.calls == 0  # in the window: waiting for a query

    counting.fail_times = 1000  # the model is down: the turns keep waiting, nothing is lost
    memory.flush()
    assert all(memory.store.get_vectors(session)[0] == [] for session in sessions)

    counting.fail_times, counting.calls = 0, 0
    memory.flush()
    assert counting.calls == 1  # one call for all ten sessions
    assert all(list(memory.store.get_vectors(session)[0]) == [0, 1] for session in sessions)


def test_a_failed_batch_is_retried_text_by_text_at_once(embeddings):
    counting = CountingEmbeddings(embeddings)
    memory = HybridMemory(embeddings=counting, embed_in_background=False)
    for n in range(3):
        memory.add_messages(f"s{n}", [HumanMessage(f"Hello from s{n}")])
    counting.fail_times = 1  # the shared call fails once: each text is tried alone
    memory.flush()
    assert all(memory.store.get_vectors(f"s{n}")[0] == [0] for n in range(3))


def test_window_never_separates_a_tool_call_from_its_results(embeddings):
    call = AIMessage(
        "",
        tool_calls=[
            {"name": "weather", "args": {"city": "Porto"}, "id": "c1"},
            {"name": "weather", "args": {"city": "Lisbon"}, "id": "c2"},
        ],
    )
    memory = HybridMemory(embeddings=embeddings, window_turns=2)
    memory.add_messages(
        "s1",
        [
            *filler(6),
            HumanMessage("Weather in Porto and Lisbon?"),
            call,
            ToolMessage("sunny", tool_call_id="c1"),
            ToolMessage("rainy", tool_call_id="c2"),
            AIMessage("Porto is sunny, Lisbon rainy."),
        ],
    )
    messages = memory.build_context("s1", "and tomorrow?").to_messages()
    for position, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            callers = [m for m in messages[:position] if isinstance(m, AIMessage) and m.tool_calls]
            assert any(message.tool_call_id in {c["id"] for c in m.tool_calls} for m in callers)
    assert call in messages


def test_caller_entities_are_merged_with_provenance_and_shown_when_relevant(embeddings):
    memory = HybridMemory(embeddings=embeddings, window_turns=4, token_budget=800)
    memory.add_messages(
        "s1",
        [HumanMessage("My dog Bolt is a border collie"), AIMessage("Lovely!")],
        entities={"Bolt": {"species": "dog", "breed": "border collie"}},
        timestamp=START,
    )
    memory.add_messages("s1", filler(30))

    context = memory.build_context("s1", "Can Bolt come to the beach?")
    bolt = context.entities[0]
    assert bolt.name == "Bolt"
    assert bolt.facts["breed"].value == "border collie"
    assert bolt.facts["breed"].turn_id == 0
    expected = "- Bolt (since Mon 2 Mar 2026): species: dog; breed: border collie"
    assert expected in context.to_text()


def test_one_llm_call_per_batch_returns_the_summary_and_the_entities(embeddings):
    answer = json.dumps(
        {
            "summary": "Ana said she is allergic to peanuts.",
            "entities": [{"name": "Ana", "facts": {"allergy": "peanuts"}, "turn": 0}],
        }
    )
    summarizer = RecordingChatModel(responses=[f"```json\n{answer}\n```"])
    memory = HybridMemory(llm=summarizer, embeddings=embeddings, window_turns=4, summary_batch=4)
    memory.add_messages("s1", [*PEANUTS, *filler(6)])

    assert len(summarizer.prompts) == 1
    context = memory.build_context("s1", "What can Ana not eat?")
    assert context.summary == "Ana said she is allergic to peanuts."
    assert context.entities[0].facts["allergy"].turn_id == 0


def test_imported_turns_keep_when_they_were_said(embeddings):
    memory = HybridMemory(embeddings=embeddings, window_turns=2)
    memory.add_messages(
        "s1",
        [HumanMessage("I ran my first marathon today!"), AIMessage("Congratulations!")],
        timestamp=START.replace(year=2023, month=5, day=8, tzinfo=None),
    )
    memory.add_messages("s1", filler(6))
    text = memory.build_context("s1", "When did I run my first marathon?").to_text()
    assert "Mon 8 May 2023:\n- User: I ran my first marathon today!" in text


def test_content_blocks_are_searched_by_their_text_and_kept_whole(embeddings):
    picture = HumanMessage(
        [
            {"type": "text", "text": "This is my new cat, Miso."},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]
    )
    memory = HybridMemory(embeddings=embeddings, window_turns=2)
    memory.add_messages("s1", [picture, AIMessage("So cute!"), *filler(6)])
    assert memory.transcript("s1")[0] == picture
    context = memory.build_context("s1", "What's my cat's name?")
    assert context.recalled[0].turn.id == 0


def test_messages_without_text_are_kept_in_the_transcript(embeddings):
    memory = HybridMemory(embeddings=embeddings)
    memory.add_messages("s1", [HumanMessage(""), AIMessage("   ")])
    assert len(memory.transcript("s1")) == 2
    assert memory.build_context("s1").tokens <= memory.config.token_budget


def test_an_oversized_message_can_be_accepted_and_the_budget_still_holds(embeddings):
    memory = HybridMemory(embeddings=embeddings, max_message_chars=None, token_budget=400)
    huge = "lorem ipsum " * 450_000  # 5.4 MB
    memory.add_messages("s1", [HumanMessage(huge)])
    assert memory.transcript("s1")[0].content == huge
    context = memory.build_context("s1", "lorem")
    assert context.tokens <= 400
    assert context.window[0].text.startswith("lorem ipsum")


async def test_async_twins_give_the_same_results(embeddings):
    def build() -> HybridMemory:
        return HybridMemory(
            llm=RecordingChatModel(responses=[SUMMARY_JSON]),
            embeddings=embeddings,
            window_turns=6,
            summary_batch=5,
            token_budget=600,
        )

    sync_memory, async_memory = build(), build()
    for start in range(0, 40, 4):
        chunk = filler(4, start=start // 2)
        stamps = times(4)
        sync_memory.add_messages("s1", chunk, timestamp=stamps, user_id="ana")
        await async_memory.aadd_messages("s1", chunk, timestamp=stamps, user_id="ana")
    await async_memory.aadd_message("s1", HumanMessage("one more"), timestamp=START)
    sync_memory.add_message("s1", HumanMessage("one more"), timestamp=START)

    query = "How do I make cold brew coffee?"
    sync_context = sync_memory.build_context("s1", query)
    async_context = await async_memory.abuild_context("s1", query)
    assert async_context.to_messages() == sync_context.to_messages()
    assert async_context.tokens == sync_context.tokens
    assert await async_memory.atranscript("s1") == sync_memory.transcript("s1")
    assert (await async_memory.asummary("s1")).text == sync_memory.summary("s1").text
    sync_memory.flush()  # the same vectors stored on both sides, whatever the background did
    await async_memory.aflush()
    assert await async_memory.aforget_user("ana") == sync_memory.forget_user("ana")
    await async_memory.aclose()


def test_background_folding_finishes_on_flush(embeddings):
    summarizer = RecordingChatModel(responses=[SUMMARY_JSON])
    memory = HybridMemory(
        llm=summarizer, embeddings=embeddings, window_turns=4, summary_batch=5, background=True
    )
    for message in filler(24):
        memory.add_message("s1", message)
    memory.flush()
    assert memory.summary("s1").through_turn == 19
    assert len(summarizer.prompts) == 4
    memory.close()


def test_forget_session_erases_everything_and_reports_it(embeddings):
    memory = HybridMemory(
        embeddings=embeddings,
        window_turns=2,
        summary_batch=2,
        embed_in_background=False,
        embedding_cache_size=0,  # other tests embedded the same texts: no vector is at hand
    )
    memory.add_messages("s1", [*PEANUTS, *filler(6)], entities={"Ana": {"allergy": "peanuts"}})
    memory.add_messages("s2", filler(2))

    report = memory.forget_session("s1")

    assert report.sessions == ("s1",)
    # the window's 2 turns were still waiting for their vectors: never stored, never will be
    assert (report.turns, report.vectors, report.entities) == (8, 6, 1)
    assert report.summaries == 1
    memory.flush()
    assert memory.transcript("s1") == []
    assert memory.store.get_vectors("s1") == ([], None)
    context = memory.build_context("s1", "allergic to peanuts")
    assert (context.recalled, context.entities, context.summary) == ((), (), "")
    assert len(memory.transcript("s2")) == 2


def test_forget_user_erases_only_that_users_sessions(embeddings):
    memory = HybridMemory(embeddings=embeddings)
    memory.add_messages("ana-1", PEANUTS, user_id="ana")
    memory.add_messages("ana-2", filler(2), user_id="ana")
    memory.add_messages("bob-1", filler(2), user_id="bob")

    report = memory.forget_user("ana")

    assert sorted(report.sessions) == ["ana-1", "ana-2"]
    assert report.turns == 4
    assert memory.transcript("ana-1") == []
    assert memory.transcript("ana-2") == []
    assert len(memory.transcript("bob-1")) == 2


def test_a_session_belongs_to_one_user(embeddings):
    memory = HybridMemory(embeddings=embeddings)
    memory.add_messages("s1", PEANUTS, user_id="ana")
    with pytest.raises(ValueError, match="another user"):
        memory.add_messages("s1", filler(2), user_id="bob")
    with pytest.raises(HybridMemoryError):
        memory.build_context("s1", "peanuts", user_id="bob")
    assert len(memory.transcript("s1")) == 2


def test_settings_come_from_a_config_or_keywords(embeddings):
    config = HybridMemoryConfig(window_turns=3, token_budget=900)
    memory = HybridMemory(embeddings=embeddings, config=config, token_budget=700)
    assert (memory.config.window_turns, memory.config.token_budget) == (3, 700)
    with pytest.raises(ValueError, match="unknown setting"):
        HybridMemory(embeddings=embeddings, window_size=3)
    with pytest.raises(ValueError, match="window_turns"):
        HybridMemory(embeddings=embeddings, window_turns=0)


def test_without_a_query_recall_searches_for_the_latest_user_turn_embedded_once(embeddings):
    counting = CountingEmbeddings(embeddings)
    memory = HybridMemory(embeddings=counting, window_turns=2, embed_in_background=False)
    memory.add_messages("s1", [*PEANUTS, *filler(8)])
    memory.add_messages("s1", [HumanMessage("Any snack ideas? Mind my allergy.")])
    before = counting.documents + counting.queries
    context = memory.build_context("s1")
    # only the window's two waiting turns are embedded: the latest user turn is not embedded
    # a second time as the query
    assert counting.documents + counting.queries == before + 2
    memory.build_context("s1")
    assert counting.documents + counting.queries == before + 2
    assert context.query == "Any snack ideas? Mind my allergy."
    assert context.recalled[0].turn.id == 0


def test_a_returning_user_recalls_earlier_sessions_but_never_another_users(embeddings):
    memory = HybridMemory(embeddings=embeddings, recall_scope="user", window_turns=2)
    memory.add_messages("ana-1", PEANUTS, user_id="ana")
    memory.add_messages(
        "bob-1", [HumanMessage("I'm allergic to shellfish and peanuts")], user_id="bob"
    )
    memory.add_messages("ana-2", filler(4), user_id="ana")

    context = memory.build_context("ana-2", "What am I allergic to?", user_id="ana")
    sessions = {item.turn.session_id for item in context.recalled}
    assert "ana-1" in sessions
    assert "bob-1" not in sessions
    earlier = next(item for item in context.recalled if item.turn.session_id == "ana-1")
    assert earlier.dense_score is not None, "the earlier session's last window gets its vectors"
    assert "allergic to peanuts" in context.to_text()
    assert "shellfish" not in context.to_text()

    scoped = HybridMemory(embeddings=embeddings, store=memory.store, window_turns=2)
    assert {i.turn.session_id for i in scoped.build_context("ana-2", "allergic").recalled} == {
        "ana-2"
    }


def test_a_window_turn_the_budget_leaves_out_can_still_be_recalled(embeddings):
    pad = " and then we talked about the weather, the garden and the neighbours at length" * 4
    messages = [HumanMessage("I'm allergic to peanuts"), AIMessage("Noted." + pad)]
    for i in range(4):
        messages += [HumanMessage(f"chat {i}" + pad), AIMessage(f"reply {i}" + pad)]
    memory = HybridMemory(embeddings=embeddings, window_turns=10, token_budget=300)
    memory.add_messages("s1", messages)

    context = memory.build_context("s1", "Which snack? Remember my peanut allergy?")

    assert context.omitted["window"] > 0
    assert "allergic to peanuts" in context.to_text()
    assert context.tokens <= 300


def test_a_session_erased_elsewhere_and_written_anew_is_reloaded(embeddings):
    writer = HybridMemory(embeddings=embeddings)
    reader = HybridMemory(embeddings=embeddings, store=writer.store, window_turns=1)
    writer.add_messages(
        "s1", [HumanMessage("My bank PIN hint is the cat's birthday"), AIMessage("ok")]
    )
    assert reader.build_context("s1", "bank PIN").recalled

    writer.forget_session("s1")  # another worker erases it ...
    writer.add_messages("s1", [HumanMessage("I adopted a cat named Miso"), AIMessage("Cute")])

    recalled = reader.build_context("s1", "What's my cat called?").recalled
    assert [item.turn.text for item in recalled][:1] == ["I adopted a cat named Miso"]
    assert "PIN" not in reader.build_context("s1", "bank PIN").to_text()


def test_a_fault_after_the_turns_are_stored_is_not_raised(embeddings, caplog):
    memory = HybridMemory(embeddings=embeddings, window_turns=1, embed_in_background=False)
    original = memory.store.put_vectors
    memory.store.put_vectors = lambda *a, **k: (_ for _ in ()).throw(OSError("disk hiccup"))  # type: ignore[method-assign]
    turns = memory.add_messages("s1", [HumanMessage("I live in Porto"), AIMessage("Nice")])
    assert len(turns) == 2
    assert "failed, will retry" in caplog.text
    memory.store.put_vectors = original  # type: ignore[method-assign]
    assert memory.build_context("s1", "Where do I live?").recalled[0].turn.text == "I live in Porto"
    assert len(memory.transcript("s1")) == 2


def test_a_store_fault_while_folding_in_the_background_is_logged_not_raised_later(
    embeddings, caplog
):
    memory = HybridMemory(embeddings=embeddings, window_turns=2, summary_batch=2, background=True)
    original = memory.store.compare_and_set_summary
    memory.store.compare_and_set_summary = lambda *a: (_ for _ in ()).throw(OSError("reset"))  # type: ignore[method-assign]
    memory.add_messages("s1", filler(6))
    memory.flush()
    assert "summarizing a batch failed" in caplog.text
    memory.store.compare_and_set_summary = original  # type: ignore[method-assign]
    assert memory.forget_user("nobody").turns == 0  # no stale error surfaces here
    assert len(memory.transcript("s1")) == 6


def test_embeddings_of_another_dimension_never_corrupt_a_session(embeddings):
    from langchain_core.embeddings import FakeEmbeddings

    memory = HybridMemory(embeddings=embeddings)
    memory.add_messages("s1", [HumanMessage("I live in Porto"), AIMessage("Nice")])
    other = HybridMemory(embeddings=FakeEmbeddings(size=32), store=memory.store)
    other.add_messages("s1", [HumanMessage("I work at Tidewater Labs")])
    assert len(memory.transcript("s1")) == 3
    fresh = HybridMemory(embeddings=embeddings, store=memory.store, window_turns=1)
    assert fresh.build_context("s1", "Where do I live?").recalled[0].turn.text == "I live in Porto"


@pytest.mark.parametrize(
    "settings",
    [
        {"dense_weight": "0.5"},
        {"dense_weight": float("nan")},
        {"summary_retry_seconds": None},
        {"ttl_seconds": 0},
        {"faiss_threads": 0},
        {"recall_scope": "everyone"},
    ],
)
def test_bad_settings_are_config_errors(settings):
    from langchain_hybrid_memory.errors import ConfigError

    with pytest.raises(ConfigError):
        HybridMemoryConfig(**settings)


def test_nan_budget_shares_are_refused():
    from langchain_hybrid_memory import BudgetShares
    from langchain_hybrid_memory.errors import ConfigError

    with pytest.raises(ConfigError):
        BudgetShares(recall=float("nan"))


def test_ttl_reaches_a_store_opened_from_a_url_and_must_match_a_store_object(embeddings, tmp_path):
    from langchain_hybrid_memory.errors import ConfigError
    from langchain_hybrid_memory.stores import InMemoryStore

    memory = HybridMemory(f"sqlite:///{tmp_path / 'ttl.db'}", embeddings=embeddings, ttl_seconds=60)
    assert memory.store.ttl_seconds == 60
    with pytest.raises(ConfigError, match="ttl_seconds"):
        HybridMemory(InMemoryStore(), embeddings=embeddings, ttl_seconds=60)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    budget=st.integers(60, 900),
    sizes=st.lists(st.integers(1, 60), min_size=4, max_size=14),
)
def test_no_turn_is_both_in_the_window_and_recalled(embeddings, budget, sizes):
    memory = HybridMemory(embeddings=embeddings, window_turns=8, token_budget=budget)
    messages = [
        (HumanMessage if i % 2 == 0 else AIMessage)(f"peanut allergy note {i} " + "word " * size)
        for i, size in enumerate(sizes)
    ]
    memory.add_messages("s1", messages)
    context = memory.build_context("s1", "peanut allergy")
    window_ids = {turn.id for turn in context.window}
    assert window_ids.isdisjoint({item.turn.id for item in context.recalled})
    assert context.tokens <= budget


def test_caller_entities_are_stored_with_their_turns_or_not_at_all(embeddings, tmp_path):
    path = tmp_path / "memory.db"
    memory = HybridMemory(store=f"sqlite:///{path}", embeddings=embeddings)
    memory.add_messages("s1", [HumanMessage("Hi")])
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("ALTER TABLE entities RENAME TO entities_away")
        connection.commit()
    with pytest.raises(StoreError):
        memory.add_messages(
            "s1", [HumanMessage("I live in Porto")], entities={"Ana": {"city": "Porto"}}
        )
    assert [m.text for m in memory.transcript("s1")] == ["Hi"]  # a retry stores it once
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("ALTER TABLE entities_away RENAME TO entities")
        connection.commit()
    memory.add_messages(
        "s1", [HumanMessage("I live in Porto")], entities={"Ana": {"city": "Porto"}}
    )
    assert memory.store.get_entities("s1")["ana"].facts["city"].turn_id == 1
    assert len(memory.transcript("s1")) == 2
    memory.close()


def _garden_session(memory: HybridMemory) -> None:
    memory.add_messages(
        "s1",
        [
            HumanMessage(f"In my garden, bed number {i} grows {plant}.")
            for i, plant in enumerate(["tomatoes", "basil", "beans", "kale", "leeks"] * 8)
        ],
        timestamp=START,
    )
    memory.add_messages("s1", filler(6), timestamp=times(6)[-1])


def test_by_default_a_larger_budget_recalls_more_earlier_turns(embeddings):
    memory = HybridMemory(embeddings=embeddings, window_turns=4)
    _garden_session(memory)
    small, large = (
        replace_budget(memory, budget).build_context("s1", "What grows in my garden beds?")
        for budget in (300, 2000)
    )
    assert 0 < len(small.recalled) < len(large.recalled)
    assert len(large.recalled) > 8, "the budget, not a fixed count, decides how many are recalled"
    assert len(large.recalled) <= memory.config.recall_candidates
    assert large.tokens <= 2000


def test_recall_k_caps_the_recalled_turns_whatever_the_budget(embeddings):
    memory = HybridMemory(embeddings=embeddings, window_turns=4, recall_k=3, token_budget=2000)
    _garden_session(memory)
    assert len(memory.build_context("s1", "What grows in my garden beds?").recalled) == 3
    assert len(memory.recall("s1", "What grows in my garden beds?")) == 3


def test_recall_returns_eight_turns_unless_told_otherwise(embeddings):
    memory = HybridMemory(embeddings=embeddings, window_turns=4)
    _garden_session(memory)
    assert len(memory.recall("s1", "What grows in my garden beds?")) == 8
    assert len(memory.recall("s1", "What grows in my garden beds?", k=12)) == 12


def replace_budget(memory: HybridMemory, budget: int) -> HybridMemory:
    """Another memory over the same store and embeddings, with another token budget."""
    return HybridMemory(
        memory.store,
        embeddings=memory.embeddings,
        config=HybridMemoryConfig.from_settings(memory.config, {"token_budget": budget}),
    )


def test_a_question_about_earlier_turns_gets_the_room_of_the_recent_chat(embeddings):
    memory = HybridMemory(embeddings=embeddings, window_turns=6, token_budget=400)
    _garden_session(memory)  # 40 turns about the garden, then 6 about other things
    fixed = HybridMemory(
        memory.store,
        embeddings=embeddings,
        config=HybridMemoryConfig.from_settings(memory.config, {"recall_first_shares": None}),
    )
    question = "What grows in my garden beds?"
    leaning, usual = memory.build_context("s1", question), fixed.build_context("s1", question)
    assert len(leaning.recalled) > len(usual.recalled)
    assert len(leaning.window) < len(usual.window)
    assert leaning.window[-1] == usual.window[-1], "the latest exchange is always kept"
    assert leaning.tokens <= 400

    follow_up = "How long should I boil an egg for a runny yolk?"  # the recent chat's topic
    leaning, usual = memory.build_context("s1", follow_up), fixed.build_context("s1", follow_up)
    assert leaning.window == usual.window
    assert leaning.recalled == usual.recalled
