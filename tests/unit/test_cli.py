from __future__ import annotations

import pytest

from langchain_hybrid_memory.cli import load_demo_conversation, main


def test_the_demo_conversation_plants_its_facts_early():
    conversation = load_demo_conversation()
    assert len(conversation.messages) >= 100
    for _, expected in conversation.probes:
        positions = [
            i
            for i, (message, _) in enumerate(conversation.messages)
            if all(word.casefold() in message.text.casefold() for word in expected)
        ]
        assert positions, expected
        assert max(positions) < 12


def test_the_demo_answers_every_probe_from_memory(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "probes answered from memory" in out
    assert "3 / 3" in out
    assert out.count("remembered") >= 3


def test_help_explains_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "demo" in capsys.readouterr().out
