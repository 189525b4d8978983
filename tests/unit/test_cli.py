"""The hybrid-memory command line, against a real SQLite store file."""

from __future__ import annotations

import json

import pytest

from langchain_hybrid_memory.cli import DEFAULT_STORE, load_demo_conversation, main


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """A SQLite store holding the demo conversation (replayed once by `demo`)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'memory.db'}"
    assert main(["demo", "--store", url]) == 0
    return url


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


def test_a_second_demo_remembers_the_first(store, capsys):
    assert main(["demo", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "already in" in out
    assert "3 / 3" in out
    assert out.count("remembered") >= 3


def test_inspect_shows_the_sections_with_scores(store, capsys):
    assert (
        main(["inspect", "demo-ana", "--store", store, "--query", "Is my dog OK at the beach?"])
        == 0
    )
    out = capsys.readouterr().out
    assert "recall" in out
    assert "bm25" in out
    assert "Bolt" in out


def test_sessions_lists_a_users_sessions(store, capsys):
    assert main(["sessions", "--user", "ana", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "demo-ana" in out
    assert "146" in out


def test_export_writes_json_lines_and_can_anonymize(store, capsys):
    assert main(["export", "demo-ana", "--store", store]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 146
    assert records[0]["speaker"] == "Ana"
    assert main(["export", "demo-ana", "--anonymize", "--store", store]) == 0
    anonymous = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(anonymous) == 146
    assert {record["speaker"] for record in anonymous} == {"User", "Assistant"}


def test_forget_asks_first_and_reports_what_it_erased(tmp_path, capsys, monkeypatch):
    from langchain_core.messages import AIMessage, HumanMessage

    from langchain_hybrid_memory import HybridMemory

    url = f"sqlite:///{tmp_path / 'forget.db'}"
    memory = HybridMemory(store=url)
    memory.add_messages("s1", [HumanMessage("hi"), AIMessage("hello")], user_id="bob")
    memory.close()

    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    assert main(["forget", "--user", "bob", "--store", url]) == 3
    assert "nothing erased" in capsys.readouterr().out
    assert main(["forget", "--user", "bob", "--store", url, "--yes"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sessions"] == ["s1"]
    assert report["turns"] == 2
    assert main(["sessions", "--user", "bob", "--store", url]) == 0
    assert "s1" not in capsys.readouterr().out


def test_an_unreachable_store_is_one_line_and_exit_code_1(capsys):
    assert main(["sessions", "--user", "ana", "--store", "redis://127.0.0.1:1/0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:")
    assert "Traceback" not in err


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "inspect", "sessions", "forget", "export", "eval"):
        assert command in out
    assert DEFAULT_STORE.startswith("sqlite:///")
