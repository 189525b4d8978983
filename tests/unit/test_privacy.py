"""PII redaction: detectors, and the engine redacting before it stores, embeds or summarizes."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.errors import ConfigError
from langchain_hybrid_memory.redaction import PIIRedactor, detect_iban, detect_phone
from tests.conversations import filler
from tests.fakes import CountingEmbeddings, RecordingChatModel

SECRET = "Write to ana.ribeiro@example.com or call +351 912 345 678; card 4111 1111 1111 1111."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ana@example.com", "[REDACTED_EMAIL]"),
        ("card 4111-1111-1111-1111 ok", "card [REDACTED_CREDIT_CARD] ok"),
        ("card 4111-1111-1111-1112 ok", "card 4111-1111-1111-1112 ok"),  # fails the Luhn check
        ("server 192.168.10.4 down", "server [REDACTED_IP] down"),
        ("ring (555) 123-4567 now", "ring [REDACTED_PHONE] now"),
        ("IBAN PT50 0002 0123 1234 5678 9015 4", "IBAN [REDACTED_IBAN]"),
        ("I ran 10 km in 55 minutes on 2026-03-09", "I ran 10 km in 55 minutes on 2026-03-09"),
    ],
)
def test_default_detectors_redact_personal_data_and_leave_ordinary_text(text, expected):
    assert PIIRedactor().redact(text) == expected


def test_iban_and_phone_detectors_check_what_they_find():
    assert detect_iban("GB82WEST12345698765432")
    assert not detect_iban("GB83WEST12345698765432")
    assert not detect_phone("order 1234")


def test_custom_patterns_and_callables_join_the_defaults():
    from langchain_hybrid_memory.redaction import PIIMatch

    def detect_ticket(text: str) -> list[PIIMatch]:
        start = text.find("TICKET-")
        return [PIIMatch("ticket", start, start + 11)] if start >= 0 else []

    redactor = PIIRedactor({"ticket": detect_ticket}, patterns={"badge": r"E\d{6}"})
    assert redactor.redact("TICKET-1234 by E123456") == "[REDACTED_TICKET] by [REDACTED_BADGE]"
    with pytest.raises(ConfigError):
        PIIRedactor(patterns={"bad": "("})
    with pytest.raises(ConfigError):
        PIIRedactor(redact_on=["everywhere"])


def test_redacted_memory_stores_embeds_and_summarizes_no_personal_data(embeddings):
    counting = CountingEmbeddings(embeddings)
    seen: list[str] = []
    original_embed = counting.embed_documents

    def spy(texts: list[str]) -> list[list[float]]:
        seen.extend(texts)
        return original_embed(texts)

    counting.embed_documents = spy  # type: ignore[method-assign]
    summarizer = RecordingChatModel(
        responses=['{"summary": "Contact details shared.", "entities": []}']
    )
    memory = HybridMemory(
        llm=summarizer, embeddings=counting, redact_pii=True, window_turns=2, summary_batch=2
    )
    memory.add_messages(
        "s1",
        [HumanMessage(SECRET), AIMessage("Got it.")],
        entities={"Ana": {"email": "ana.ribeiro@example.com"}},
    )
    memory.add_messages("s1", filler(4))

    stored = memory.transcript("s1")[0].text
    assert "example.com" not in stored
    assert "[REDACTED_EMAIL]" in stored
    assert "912 345" not in stored
    assert "4111" not in stored
    assert not any("example.com" in text for text in seen)
    assert summarizer.prompts
    assert not any("example.com" in prompt for prompt in summarizer.prompts)
    context = memory.build_context("s1", "How can I reach Ana?")
    assert "example.com" not in context.to_text()


def test_redaction_can_skip_persistence_but_still_protect_the_llm(embeddings):
    summarizer = RecordingChatModel(responses=["Contact details shared."])
    memory = HybridMemory(
        llm=summarizer,
        embeddings=embeddings,
        redactor=PIIRedactor(redact_on=["summarize", "embed"]),
        window_turns=2,
        summary_batch=2,
        extract_entities=False,
    )
    memory.add_messages("s1", [HumanMessage(SECRET), AIMessage("ok"), *filler(2)])
    assert memory.transcript("s1")[0].text == SECRET
    assert "example.com" not in summarizer.prompts[0]
    assert "[REDACTED_EMAIL]" in summarizer.prompts[0]


def test_an_anonymized_export_hides_personal_data_and_names(embeddings):
    memory = HybridMemory(embeddings=embeddings)
    memory.add_messages("s1", [HumanMessage(SECRET, name="Ana"), AIMessage("ok")], user_id="ana")
    plain = memory.export_session("s1")
    assert plain[0]["text"] == SECRET
    assert plain[0]["speaker"] == "Ana"
    anonymous = memory.export_session("s1", anonymize=True)
    assert "example.com" not in str(anonymous)
    assert "Ana" not in str(anonymous)
    assert anonymous[1]["message"]["data"]["content"] == "ok"


def test_the_embedding_model_never_sees_personal_data_when_embed_redaction_is_on(embeddings):
    counting = CountingEmbeddings(embeddings)
    seen: list[str] = []
    documents, query = counting.embed_documents, counting.embed_query
    counting.embed_documents = lambda texts: (seen.extend(texts), documents(texts))[1]  # type: ignore[method-assign]
    counting.embed_query = lambda text: (seen.append(text), query(text))[1]  # type: ignore[method-assign]
    memory = HybridMemory(
        embeddings=counting, redactor=PIIRedactor(redact_on=["embed"]), window_turns=1
    )
    memory.add_messages("s1", [HumanMessage(SECRET), AIMessage("ok")])
    memory.build_context("s1", "Is ana.ribeiro@example.com still my address?")
    assert seen
    assert not any("example.com" in text for text in seen)
    assert memory.transcript("s1")[0].text == SECRET  # not redacted where it is stored


def test_tool_call_arguments_and_entity_names_are_redacted_before_storing(embeddings):
    call = AIMessage(
        "",
        tool_calls=[{"name": "send", "args": {"to": ["ana.ribeiro@example.com"]}, "id": "c1"}],
        additional_kwargs={"note": "call +351 912 345 678"},
    )
    memory = HybridMemory(embeddings=embeddings, redact_pii=True)
    memory.add_messages(
        "s1",
        [HumanMessage("mail her"), call],
        entities={"ana.ribeiro@example.com": {"role": "client"}},
    )
    stored = memory.transcript("s1")[1]
    assert stored.tool_calls[0]["args"] == {"to": ["[REDACTED_EMAIL]"]}
    assert stored.tool_calls[0]["id"] == "c1"
    assert "912" not in str(stored.additional_kwargs)
    assert "example.com" not in str(memory.export_session("s1"))
    assert "example.com" not in str(memory.store.get_entities("s1"))


def test_an_encrypted_memory_keeps_no_plaintext_on_disk_and_needs_its_key(embeddings, tmp_path):
    from cryptography.fernet import Fernet

    from langchain_hybrid_memory.errors import DecryptionError

    key = Fernet.generate_key()
    url = f"sqlite:///{tmp_path / 'secret.db'}"
    with HybridMemory(url, embeddings=embeddings, encryption_key=key, window_turns=2) as memory:
        memory.add_messages(
            "s1",
            [HumanMessage("My passport is X123-SECRET-987"), AIMessage("Stored."), *filler(4)],
            entities={"Ana": {"passport": "X123-SECRET-987"}},
        )
    raw = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    assert b"X123-SECRET-987" not in raw
    with HybridMemory(url, embeddings=embeddings, encryption_key=key, window_turns=2) as again:
        assert "X123-SECRET-987" in again.build_context("s1", "What is my passport?").to_text()
    with pytest.raises(DecryptionError):
        HybridMemory(url, embeddings=embeddings, encryption_key=Fernet.generate_key()).transcript(
            "s1"
        )


def test_the_command_line_reads_an_encrypted_store_with_the_key_from_the_environment(
    embeddings, tmp_path, monkeypatch, capsys
):
    from cryptography.fernet import Fernet

    from langchain_hybrid_memory.cli import KEY_VARIABLE, main

    key = Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'secret.db'}"
    with HybridMemory(url, embeddings=embeddings, encryption_key=key) as memory:
        memory.add_messages("s1", [HumanMessage("hello there")])
    assert main(["export", "s1", "--store", url]) == 1
    assert "key" in capsys.readouterr().err
    monkeypatch.setenv(KEY_VARIABLE, f"{Fernet.generate_key().decode()}, {key}")
    assert main(["export", "s1", "--store", url]) == 0
    assert "hello there" in capsys.readouterr().out
