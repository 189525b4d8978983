"""Recall finds earlier turns by meaning and by words, and never returns the window."""

from __future__ import annotations

import numpy as np

from langchain_hybrid_memory.lexical import LexicalIndex, tokenize
from langchain_hybrid_memory.retrieval import SessionIndex

TEXTS = [
    "My sister Marta's birthday is on 14 April",
    "I adopted a border collie called Bolt",
    "We talked about the best way to brew coffee",
    "The train to Valencia leaves at nine",
    "I'm allergic to peanuts, keep that in mind for recipes",
    "Running a 10k race at the end of March",
]


def build(embeddings) -> SessionIndex:
    index = SessionIndex()
    ids = list(range(len(TEXTS)))
    index.add_texts(ids, TEXTS)
    index.add_vectors(ids, np.asarray(embeddings.embed_documents(TEXTS)))
    return index


def search(index: SessionIndex, embeddings, query: str, **kwargs):
    return index.search(query, np.asarray(embeddings.embed_query(query)), k=3, **kwargs)


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
    index = SessionIndex()
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
