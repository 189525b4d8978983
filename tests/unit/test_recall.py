"""Recall finds earlier turns by meaning and by words, and never returns the window."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_hybrid_memory._search import SearchIndex
from langchain_hybrid_memory.lexical import LexicalIndex, tokenize

TEXTS = [
    "My sister Marta's birthday is on 14 April",
    "I adopted a border collie called Bolt",
    "We talked about the best way to brew coffee",
    "The train to Valencia leaves at nine",
    "I'm allergic to peanuts, keep that in mind for recipes",
    "Running a 10k race at the end of March",
]


def build(embeddings) -> SearchIndex:
    index = SearchIndex()
    ids = list(range(len(TEXTS)))
    index.add_texts(ids, TEXTS)
    index.add_vectors(ids, np.asarray(embeddings.embed_documents(TEXTS)))
    return index


def search(index: SearchIndex, embeddings, query: str, *, k: int = 3, **kwargs):
    return index.search(query, np.asarray(embeddings.embed_query(query)), k=k, **kwargs)


def test_a_paraphrase_is_found_by_meaning(embeddings):
    hits = search(build(embeddings), embeddings, "Which nuts can't I eat?")
    assert hits[0].turn_id == 4


def test_a_rare_name_is_found_by_words(embeddings):
    hits = search(build(embeddings), embeddings, "What did I say about Bolt?")
    assert hits[0].turn_id == 1
    assert hits[0].lexical_score > 0


def test_window_turns_are_never_recalled(embeddings):
    hits = search(build(embeddings), embeddings, "peanut allergy", exclude={4, 5})
    assert {hit.turn_id for hit in hits}.isdisjoint({4, 5})


def test_without_a_query_vector_recall_is_lexical(embeddings):
    hits = build(embeddings).search("Valencia train", None, k=2)
    assert hits[0].turn_id == 3
    assert hits[0].dense_score is None


def test_scores_are_kept_for_inspection(embeddings):
    hit = search(build(embeddings), embeddings, "coffee brewing")[0]
    assert hit.turn_id == 2
    assert hit.dense_score is not None
    assert hit.dense_score > 0.3
    assert hit.lexical_score > 0


def test_turns_without_vectors_are_still_found_by_words(embeddings):
    index = SearchIndex()
    index.add_texts([0, 1], ["The wifi password is kumquat", "We went hiking"])
    index.add_vectors([1], np.asarray([embeddings.embed_query("We went hiking")]))
    hits = index.search("kumquat", np.asarray(embeddings.embed_query("kumquat")), k=2)
    assert hits[0].turn_id == 0


def test_tokens_are_stemmed_and_stop_words_dropped():
    assert tokenize("The runners were running") == ["runner", "run"]


def test_bm25_prefers_rarer_terms_and_grows_one_turn_at_a_time():
    index = LexicalIndex()
    for i in range(50):
        index.add(i, f"ordinary chat about the weather number {i}")
    index.add(50, "the weather and the volcano")
    assert index.top("weather volcano", 1)[0][0] == 50
    index.add(50, "a duplicate id is ignored")
    assert len(index) == 51


def build_dialogue(embeddings, turns, start=None):
    """Index (speaker, text, minutes after start) triples as one session."""
    from datetime import datetime, timedelta

    start = start or datetime(2023, 5, 8, 9, 0)
    index = SearchIndex()
    ids = list(range(len(turns)))
    texts = [text for _, text, _ in turns]
    index.add_texts(
        ids,
        texts,
        speakers=[speaker for speaker, _, _ in turns],
        timestamps=[start + timedelta(minutes=minutes) for _, _, minutes in turns],
    )
    index.add_vectors(ids, np.asarray(embeddings.embed_documents(texts)))
    return index


def test_the_answer_next_to_a_matching_question_is_recalled_with_it(embeddings):
    index = build_dialogue(
        embeddings,
        [
            ("Ana", "What is the wifi password at the cabin?", 0),
            ("Rui", "It's kumquat42, written on the fridge.", 1),
            ("Ana", "We should bring board games this time.", 2),
            ("Rui", "And the big thermos for coffee.", 3),
        ]
        + [
            ("Ana", f"Reminder number {i} about the car insurance", 60 * 24 * i)
            for i in range(1, 20)
        ],
    )
    hits = search(index, embeddings, "What is the wifi password at the cabin?")
    assert {0, 1} <= {hit.turn_id for hit in hits[:2]}


def test_turns_by_the_speaker_the_question_names_come_first(embeddings):
    index = build_dialogue(
        embeddings,
        [
            ("Ana", "I started learning the cello last month.", 0),
            ("Rui", "I started learning the violin last month.", 1),
        ],
    )
    for name, expected in (("Ana", 0), ("Rui", 1)):
        hits = search(index, embeddings, f"Which instrument did {name} start learning?")
        assert hits[0].turn_id == expected


def test_an_episode_about_the_topic_lifts_its_quieter_turns(embeddings):
    minute, day = 1, 60 * 24
    index = build_dialogue(
        embeddings,
        [
            ("Ana", "We finally booked the trip to Japan for April!", 0),
            ("Rui", "Amazing, Kyoto in cherry blossom season.", minute),
            ("Ana", "I also want to see the temples there.", 2 * minute),
            ("Rui", "I want to see the temples of my home town again.", 3 * day),
            ("Ana", "My sister repainted her kitchen yellow.", 3 * day + minute),
        ],
    )
    hits = search(index, embeddings, "What will they visit on the Japan trip?")
    assert {hit.turn_id for hit in hits} == {0, 1, 2}


def test_context_scores_match_the_sum_of_neighbour_vectors_however_vectors_arrive():
    """The stored neighbour dot products give the cosine of the query with v(t-1)+v(t)+v(t+1)."""
    rng = np.random.default_rng(7)
    count, dimension = 300, 16
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[[5, 6, 100]] = 0.0  # a model may answer an all-zero vector
    without = set(rng.choice(count, 40, replace=False).tolist())  # turns never embedded
    index = SearchIndex()
    index.add_texts(list(range(count)), [f"turn {i}" for i in range(count)])
    order = [i for i in rng.permutation(count).tolist() if i not in without]
    for start in range(0, len(order), 7):  # in shuffled batches, as the background stores them
        batch = order[start : start + 7]
        index.add_vectors(batch, vectors[batch])
    query = rng.standard_normal(dimension).astype(np.float32)
    query /= np.linalg.norm(query)
    ids = sorted(rng.choice(count + 3, 120, replace=False).tolist())  # a few beyond the last turn

    scores = index._context_scores(ids, query)

    for turn_id, score in zip(ids, scores.tolist(), strict=True):
        if turn_id >= count or turn_id in without:
            assert np.isnan(score)
            continue
        around = [n for n in (turn_id - 1, turn_id, turn_id + 1) if 0 <= n < count]
        total = sum(vectors[n] for n in around if n not in without)
        expected = float(total @ query / max(float(np.linalg.norm(total)), 1e-9))
        assert score == pytest.approx(expected, abs=1e-5)


def test_word_scores_computed_ahead_are_used_only_while_the_index_is_unchanged():
    index = SearchIndex()
    index.add_texts([0, 1], ["I live in Porto", "The weather is nice"])
    ahead = index.score_words("Where is Porto?")
    index.add_texts([2], ["Porto has a bridge over the Douro"])  # the index grew meanwhile
    hits = index.search("Where is Porto?", None, k=3, words=ahead)
    assert 2 in {hit.turn_id for hit in hits}, "stale scores are computed again"
    fresh = index.score_words("Where is Porto?")
    assert index.search("Where is Porto?", None, k=3, words=fresh) == hits


def test_a_hits_dense_score_is_the_cosine_of_the_turn_and_the_query(embeddings):
    index = SearchIndex()
    texts = ["I live in Porto", "Porto has a bridge", "We talked about the weather"]
    index.add_texts([0, 1, 2], texts)
    index.add_vectors([0, 1, 2], np.asarray(embeddings.embed_documents(texts)))
    query = np.asarray(embeddings.embed_query("Where do I live?"))
    for hit in index.search("Where do I live?", query, k=3):
        vector = index.vector(hit.turn_id)
        cosine = float(vector @ query / np.linalg.norm(query))
        assert hit.dense_score == pytest.approx(cosine, abs=1e-5)
        assert -1.0 <= hit.dense_score <= 1.0


def test_a_period_the_question_names_lifts_what_was_said_then_or_told_the_week_after(embeddings):
    from datetime import datetime

    day = 60 * 24
    turns = [
        ("Ana", "Last week I went hiking along the river.", 0),  # 3 June 2025
        ("Rui", "The river trail is lovely.", 1),
        ("Ana", "My cousin visits next weekend.", 7 * day),
        ("Ana", "Went hiking by the lake with my dog.", 24 * day),  # 27 June
        ("Ana", "We went hiking in the mountains, what a view!", 47 * day),  # 20 July
        ("Rui", "Glad you enjoyed it.", 47 * day + 1),
    ]
    index = build_dialogue(embeddings, turns, start=datetime(2025, 6, 3, 9, 0))
    assert search(index, embeddings, "Where did Ana go hiking?")[0].turn_id == 3
    assert search(index, embeddings, "Where did Ana go hiking in July?")[0].turn_id == 4
    assert search(index, embeddings, "Where did Ana go hiking in May 2025?")[0].turn_id == 0
    assert search(index, embeddings, "Where did Ana go hiking on 29 May?")[0].turn_id == 0


def test_a_name_in_the_question_does_not_pull_toward_turns_that_only_say_it(embeddings):
    turns = [
        ("Rui", "Thanks Ana, that means a lot to me, Ana!", 0),
        ("Ana", "Swimming in the sea keeps me calm.", 1),
        ("Rui", "Ana, you are the best friend ever.", 2),
        ("Ana", "Work has been stressful lately.", 3),
        ("Rui", "Haha Ana, so true, Ana.", 4),
        ("Rui", "I watch old movies to unwind.", 5),
    ]
    query = "What does Ana do to unwind?"
    index = build_dialogue(embeddings, turns)
    before = [hit.turn_id for hit in search(index, embeddings, query, k=6)]
    assert before.index(4) < before.index(1), "the bare name pulls the query toward Rui's call"
    assert index.names_to_embed(query) == ["Ana"]
    index.add_name_vectors(["Ana"], np.asarray(embeddings.embed_documents(["Ana"])))
    assert index.names_to_embed(query) == []
    after = search(index, embeddings, query, k=6)
    ranked = [hit.turn_id for hit in after]
    assert ranked.index(1) < ranked.index(4), "what Ana does comes before calls of her name"
    assert max(hit.dense_score for hit in after if hit.turn_id in {0, 2, 4}) < 0.2


DISHES = ["lentil soup", "mushroom risotto", "fish tacos", "pumpkin curry", "lemon tart"]


def test_a_second_worker_recalls_by_the_month_and_person_a_question_names(embeddings, tmp_path):
    from datetime import UTC, datetime

    from langchain_core.messages import AIMessage, HumanMessage

    from langchain_hybrid_memory import HybridMemory

    store = f"sqlite:///{tmp_path / 'memory.db'}"
    writer = HybridMemory(store=store, embeddings=embeddings, window_turns=4, summary_batch=8)
    for month, dish in enumerate(DISHES, start=1):
        chat = [
            HumanMessage(f"I cooked {dish} for dinner yesterday, it came out great.", name="Rui"),
            AIMessage("Sounds delicious! Did the kids like it?", name="Ana"),
            HumanMessage("They did. Then we walked to the park.", name="Rui"),
            AIMessage(f"My week was busy with work, report number {month}.", name="Ana"),
            *(
                HumanMessage(f"Did you see match {month}-{i} of the cup?", name="Rui")
                for i in range(4)
            ),
        ]
        writer.add_messages("s1", chat, timestamp=datetime(2026, month, 10, 19, 0, tzinfo=UTC))
    writer.add_messages("s1", [HumanMessage("Anyway, how are you?", name="Rui")])
    writer.flush()
    reader = HybridMemory(store=store, embeddings=embeddings, window_turns=4, token_budget=300)
    for month, dish in enumerate(DISHES, start=1):
        name = datetime(2026, month, 1).strftime("%B")
        context = reader.build_context("s1", f"What did Rui cook in {name} 2026?")
        assert dish in context.recalled[0].turn.text, name

    named = reader.build_context("s1", "What did Rui cook for dinner?")
    unnamed = reader.build_context("s1", "What was cooked for dinner?")
    assert reader.summary("s1").text, "the conversation has a summary to leave out"
    assert named.section_tokens["summary"] == 0, "a question about Rui: recall takes its room"
    assert unnamed.section_tokens["summary"] > 0, "a question about no one keeps the summary"


def test_speaker_names_are_embedded_once_and_a_failure_leaves_recall_working(embeddings):
    from langchain_core.messages import AIMessage, HumanMessage

    from langchain_hybrid_memory import HybridMemory
    from tests.fakes import CountingEmbeddings

    counting = CountingEmbeddings(embeddings)
    memory = HybridMemory(embeddings=counting, window_turns=2)
    chat = [
        HumanMessage("Thanks Ana, you are great, Ana!", name="Rui"),
        AIMessage("Swimming in the sea keeps me calm.", name="Ana"),
        *(HumanMessage(f"Match {i} of the cup was fun.", name="Rui") for i in range(6)),
    ]
    memory.add_messages("s1", chat)
    memory.flush()
    counting.fail_on = {"Ana"}  # the name's embedding fails: the search goes on without it
    context = memory.build_context("s1", "How does Ana stay calm?")
    assert context.recalled[0].turn.id == 1
    counting.fail_on = set()
    memory.build_context("s1", "How does Ana stay calm?")
    embedded = counting.documents + counting.queries
    memory.build_context("s1", "Does Ana like the sea?")  # the name's vector is kept
    assert counting.documents + counting.queries == embedded + 1


def test_the_async_twin_recalls_a_named_speaker_and_period_alike(embeddings):
    import asyncio
    from datetime import UTC, datetime

    from langchain_core.messages import HumanMessage

    from langchain_hybrid_memory import HybridMemory

    memory = HybridMemory(embeddings=embeddings, window_turns=2)
    for month, dish in enumerate(DISHES, start=1):
        said = datetime(2026, month, 10, 19, 0, tzinfo=UTC)
        memory.add_messages("s1", [HumanMessage(f"I cooked {dish}.", name="Rui")], timestamp=said)
    memory.add_messages("s1", [HumanMessage(f"Chat {i}", name="Ana") for i in range(3)])
    question = "What did Rui cook in March?"
    sync = memory.build_context("s1", question)
    fresh = HybridMemory(memory.store, embeddings=embeddings, window_turns=2)
    later = asyncio.run(fresh.abuild_context("s1", question))
    assert "fish tacos" in sync.recalled[0].turn.text
    assert [r.turn.id for r in later.recalled] == [r.turn.id for r in sync.recalled]
