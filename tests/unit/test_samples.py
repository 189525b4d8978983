from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory import cli
from langchain_hybrid_memory.samples import load_demo_conversation, multi_session_sample


def test_the_demo_conversation_alternates_ana_and_the_assistant_in_time_order():
    conversation = load_demo_conversation()
    kinds = [type(message) for message, _ in conversation.messages]
    assert kinds[:2] == [HumanMessage, AIMessage]
    times = [when for _, when in conversation.messages]
    assert times == sorted(times)
    assert all(0 <= index < len(kinds) for index in conversation.entities)
    assert cli.load_demo_conversation is load_demo_conversation  # what `demo` replays


def test_every_question_of_the_multi_session_sample_names_turns_that_exist():
    sample = multi_session_sample()
    for question in sample.questions:
        assert question.evidence
        assert sample.valid_evidence(question) == question.evidence
    speakers = {turn.speaker for session in sample.sessions for turn in session.turns}
    assert speakers == {sample.speaker_a, sample.speaker_b}
    dates = [session.date for session in sample.sessions]
    assert dates == sorted(dates)
    assert len(set(dates)) == len(dates)


def test_the_multi_session_sample_is_the_same_for_a_seed_and_moves_with_it():
    assert multi_session_sample(3) == multi_session_sample(3)
    assert multi_session_sample(3) != multi_session_sample(4)
    first, other = multi_session_sample(3), multi_session_sample(4)
    assert [q.question for q in first.questions] == [q.question for q in other.questions]


def test_the_evidence_of_a_question_states_its_answer():
    sample = multi_session_sample()
    text = {turn.dia_id: turn.text for session in sample.sessions for turn in session.turns}
    answers = {
        "Is there any food I must stay away from?": ["peanuts"],
        "Where did we live before moving to Lisbon?": ["Porto", "Lisbon"],
        "What do I need to sort out before the holiday in Japan?": ["Japan", "passport"],
    }
    for question in sample.questions:
        if question.question in answers:
            said = " ".join(text[dia_id] for dia_id in question.evidence)
            assert all(word in said for word in answers[question.question])
