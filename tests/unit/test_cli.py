"""The hybrid-memory command line, against a real SQLite store file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from langchain_hybrid_memory.cli import DEFAULT_STORE, load_demo_conversation, main


@pytest.fixture
def on_path(monkeypatch) -> None:
    """``hybrid-memory`` on the PATH, as after ``pip install`` in an active environment."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


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


def test_a_second_demo_remembers_the_first(store, capsys, on_path):
    assert main(["demo", "--store", store]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "already in" in out
    assert "3 / 3" in out
    assert out.count("remembered") >= 3
    assert "session 'demo-ana' of user 'ana'" in out, "the demo says where to look next"
    assert "hybrid-memory serve" in out, "and how to open the inspector"


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
    text = " ".join(record["text"] for record in anonymous)
    for name in ("Ana", "Ribeiro", "Marta", "Bolt"):  # speakers, entities, self-introductions
        assert name not in text, name
    assert "[REDACTED_NAME]" in text


def test_facts_shows_a_users_facts_with_their_history_and_exports_them(tmp_path, capsys):
    from datetime import UTC, datetime

    from langchain_core.messages import HumanMessage

    from langchain_hybrid_memory import HybridMemory

    url = f"sqlite:///{tmp_path / 'facts.db'}"
    memory = HybridMemory(store=url, embeddings=None)
    for session, city, day in (("s1", "Porto", 5), ("s2", "Lisbon", 26)):
        memory.add_messages(
            session,
            [HumanMessage(f"I live in {city}, mail me at ana@example.com")],
            user_id="ana",
            timestamp=datetime(2026, 1, day, tzinfo=UTC),
            entities={"Ana": {"city": city, "email": "ana@example.com"}},
        )
    memory.close()

    assert main(["facts", "--user", "ana", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "Lisbon" in out
    assert "Porto" in out
    assert "2026-01-26" in out

    assert main(["facts", "--user", "ana", "--json", "--store", url]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    city = [
        (r["value"], r["current"], r["session_id"]) for r in records if r["attribute"] == "city"
    ]
    assert city == [("Porto", False, "s1"), ("Lisbon", True, "s2")]

    assert main(["facts", "--user", "ana", "--json", "--anonymize", "--store", url]) == 0
    text = capsys.readouterr().out
    assert "Ana" not in text
    assert "ana@example.com" not in text
    assert json.loads(text.splitlines()[0])["entity"] == "entity 1"


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
    assert main(["sessions", "--user", "bob", "--store", url]) == 1, "the store no longer knows bob"
    assert "no session of user 'bob'" in capsys.readouterr().err


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
    for command in ("demo", "inspect", "sessions", "forget", "export", "eval", "export-model"):
        assert command in out
    assert DEFAULT_STORE.startswith("sqlite:///")


def test_odd_ids_are_printed_as_they_are_not_as_markup(tmp_path, capsys):
    from langchain_core.messages import HumanMessage

    from langchain_hybrid_memory import HybridMemory

    url = f"sqlite:///{tmp_path / 'odd.db'}"
    with HybridMemory(store=url) as memory:
        memory.add_messages("[red]s[/]", [HumanMessage("hi")], user_id="[bold]u")
    assert main(["sessions", "--user", "[bold]u", "--store", url]) == 0
    assert "[red]s[/]" in capsys.readouterr().out
    assert main(["inspect", "[/]", "--store", url]) == 1


def test_forget_without_a_terminal_erases_nothing(tmp_path, capsys, monkeypatch):
    import io

    from langchain_core.messages import HumanMessage

    from langchain_hybrid_memory import HybridMemory

    url = f"sqlite:///{tmp_path / 'keep.db'}"
    with HybridMemory(store=url) as memory:
        memory.add_messages("s1", [HumanMessage("keep me")])
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["forget", "--session", "s1", "--store", url]) == 3
    assert main(["export", "s1", "--store", url]) == 0
    assert "keep me" in capsys.readouterr().out


def test_forget_a_single_session_with_yes(tmp_path, capsys):
    from langchain_core.messages import HumanMessage

    from langchain_hybrid_memory import HybridMemory

    url = f"sqlite:///{tmp_path / 'one.db'}"
    with HybridMemory(store=url) as memory:
        memory.add_messages("s1", [HumanMessage("bye")])
        memory.add_messages("s2", [HumanMessage("stay")])
    assert main(["forget", "--session", "s1", "--store", url, "--yes"]) == 0
    assert json.loads(capsys.readouterr().out)["turns"] == 1
    assert main(["export", "s2", "--store", url]) == 0
    assert "stay" in capsys.readouterr().out


def test_eval_prints_recall_per_budget_for_a_locomo_format_file(tmp_path, capsys):
    turns = [{"speaker": "Ana", "dia_id": "D1:1", "text": "My sister Marta lives in Porto."}]
    chat = [
        {"speaker": "Ana" if i % 2 == 0 else "Rui", "dia_id": f"D2:{i + 1}", "text": f"Recipe {i}?"}
        for i in range(12)
    ]
    sample = {
        "sample_id": "mini",
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Rui",
            "session_1": turns,
            "session_1_date_time": "10:00 am on 8 May, 2023",
            "session_2": chat,
            "session_2_date_time": "10:00 am on 9 May, 2023",
        },
        "qa": [
            {
                "question": "Where does Marta live?",
                "answer": "Porto",
                "evidence": ["D1:1"],
                "category": 4,
            },
            {"question": "Who is Zed?", "answer": "?", "evidence": ["D9:9"], "category": 4},
            {"question": "When did Ana fly?", "answer": "never", "evidence": [], "category": 5},
        ],
    }
    path = tmp_path / "mini.json"
    path.write_text(json.dumps([sample]))
    assert (
        main(["eval", str(path), "--budgets", "300", "--window", "2", "--dense-weight", "0.4"]) == 0
    )
    out = capsys.readouterr().out
    assert "300" in out
    assert "1.000" in out
    assert "1 questions of these categories left out" in out, "never dropped silently"
    assert "5 (adversarial)" in out


def test_bad_option_values_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", "s1", "--budget", "-5"])
    assert exit_info.value.code == 2


def test_store_errors_are_one_line(capsys):
    assert main(["sessions", "--user", "ana", "--store", "redis://127.0.0.1:1/0"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1


def test_export_model_fills_the_cache_folder_it_is_given(tmp_path, capsys):
    assert main(["export-model", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for onnx_format in ("fp32", "int8"):
        assert f"{onnx_format}:" in out
    models = sorted(tmp_path.rglob("model.onnx"))
    assert [model.parent.name for model in models] == ["fp32", "int8"]
    assert all(str(model) in out.replace("\n", "") for model in models)


def test_a_typo_never_looks_like_success(tmp_path, capsys, store):
    missing = f"sqlite:///{tmp_path / 'no-such.db'}"
    for command in (
        ["inspect", "s1"],
        ["sessions", "--user", "ana"],
        ["export", "s1"],
        ["facts", "--user", "ana"],
        ["forget", "--session", "s1", "--yes"],
    ):
        assert main([*command, "--store", missing]) == 1, command
        assert "no memory store at" in capsys.readouterr().err
    assert not (tmp_path / "no-such.db").exists(), "no empty store created by a read"

    assert main(["forget", "--session", "does-not-exist", "--yes", "--store", store]) == 1
    assert "nothing to erase" in capsys.readouterr().err
    assert main(["export", "nope", "--store", store]) == 1
    assert "no session 'nope' in this store" in capsys.readouterr().err
    assert main(["inspect", "demo-anna", "--store", store]) == 1
    assert "sessions` lists them" in capsys.readouterr().err


def test_read_commands_write_json_and_inspect_shows_texts_whole(store, capsys):
    assert (
        main(["inspect", "demo-ana", "--json", "--store", store, "--query", "Is my dog OK?"]) == 0
    )
    context = json.loads(capsys.readouterr().out)
    assert context["tokens"] <= context["token_budget"]
    assert context["recalled"], "recalled turns with their scores"
    hit = context["recalled"][0]
    assert {"turn_id", "timestamp", "text", "score", "dense_score", "lexical_score"} <= set(hit)
    assert all(-1.0 <= r["dense_score"] <= 1.0 for r in context["recalled"] if r["dense_score"])

    assert (
        main(["inspect", "demo-ana", "--full", "--store", store, "--query", "Is my dog OK?"]) == 0
    )
    assert "cosine" in capsys.readouterr().out

    assert main(["sessions", "--user", "ana", "--json", "--store", store]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["session_id"] == "demo-ana"
    assert rows[0]["turns"] == 146


def test_anonymized_export_leaves_out_introduced_names_and_addresses(tmp_path, capsys):
    from langchain_core.messages import HumanMessage

    from langchain_hybrid_memory import HybridMemory

    url = f"sqlite:///{tmp_path / 'anon.db'}"
    memory = HybridMemory(store=url, embeddings=None)
    memory.add_messages(
        "s1", [HumanMessage("Hello, I am Carla Mendes and I live at 12 Baker Street, London")]
    )
    memory.close()
    assert main(["export", "s1", "--anonymize", "--store", url]) == 0
    text = json.loads(capsys.readouterr().out)["text"]
    assert "Carla" not in text
    assert "Mendes" not in text
    assert "12 Baker Street" not in text


def test_an_unknown_user_or_session_is_an_error_not_an_empty_table(store, capsys):
    for command, said in (
        (["sessions", "--user", "anna"], "no session of user 'anna'"),
        (["sessions", "--user", "anna", "--json"], "no session of user 'anna'"),
        (["facts", "--user", "anna"], "no session of user 'anna'"),
        (["facts", "--user", "anna", "--json"], "no session of user 'anna'"),
        (["facts", "--session", "demo-anna"], "no session 'demo-anna'"),
        (["forget", "--user", "anna", "--yes"], "no session of user 'anna'"),
    ):
        assert main([*command, "--store", store]) == 1, command
        captured = capsys.readouterr()
        assert said in captured.err, (command, captured.err)
        assert captured.out == "", "nothing on standard output that reads as a result"
    assert main(["facts", "--session", "demo-ana", "--json", "--store", store]) == 0
    assert capsys.readouterr().out, "a known session still answers"


def test_eval_json_writes_only_the_figures(tmp_path, capsys):
    sample = {
        "sample_id": "mini",
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Rui",
            "session_1": [
                {"speaker": "Ana", "dia_id": f"D1:{i + 1}", "text": f"Recipe {i}?"}
                for i in range(6)
            ],
            "session_1_date_time": "10:00 am on 8 May, 2023",
        },
        "qa": [{"question": "Recipe 1?", "answer": "-", "evidence": ["D1:2"], "category": 4}],
    }
    path = tmp_path / "mini.json"
    path.write_text(json.dumps([sample]))
    assert main(["eval", str(path), "--budgets", "300", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["questions"] == 1
    assert [b["budget"] for b in figures["budgets"]] == [300]
    assert 0.0 <= figures["budgets"][0]["overall"]["recall"] <= 1.0


def test_an_encrypted_store_without_its_key_names_the_variable_to_set(
    tmp_path, capsys, monkeypatch
):
    from cryptography.fernet import Fernet
    from langchain_core.messages import HumanMessage

    from langchain_hybrid_memory import HybridMemory

    key = Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'sealed.db'}"
    with HybridMemory(store=url, encryption_key=key) as memory:
        memory.add_messages("s1", [HumanMessage("secret plans")], user_id="ana")
    monkeypatch.delenv("HYBRID_MEMORY_ENCRYPTION_KEY", raising=False)
    assert main(["export", "s1", "--store", url]) == 1
    err = capsys.readouterr().err
    assert "$HYBRID_MEMORY_ENCRYPTION_KEY" in err
    assert "encryption_key=" not in err, "a Python keyword argument means nothing on a shell"
    monkeypatch.setenv("HYBRID_MEMORY_ENCRYPTION_KEY", key)
    assert main(["export", "s1", "--store", url]) == 0
    assert "secret plans" in capsys.readouterr().out


def test_a_users_sessions_are_listed_a_page_at_a_time(tmp_path, capsys):
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.messages import HumanMessage

    from langchain_hybrid_memory import HybridMemory

    url = f"sqlite:///{tmp_path / 'many.db'}"
    with HybridMemory(store=url, embeddings=DeterministicFakeEmbedding(size=8)) as memory:
        for session in ("a", "b", "c"):
            memory.add_messages(session, [HumanMessage("hi")], user_id="ana")
    assert main(["sessions", "--user", "ana", "--limit", "2", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "a" in out
    assert 'more sessions follow: --after "b"' in out
    assert main(["sessions", "--user", "ana", "--after", "b", "--json", "--store", url]) == 0
    assert [json.loads(line)["session_id"] for line in capsys.readouterr().out.splitlines()] == [
        "c"
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(["sessions", "--limit", "100000", "--store", url])
    assert exit_info.value.code == 2, "an out-of-range option is bad usage"


def test_the_demo_says_where_its_memory_is(store, capsys):
    from pathlib import Path

    assert main(["demo", "--store", store]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"Stored in {Path(store.removeprefix('sqlite:///')).resolve()}" in out

    assert main(["demo", "--store", "memory://"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "hybrid-memory inspect" not in out, "nothing is left to inspect after this process"
    assert "memory:// keeps nothing" in out


def test_every_read_command_takes_json(store, tmp_path, capsys):
    reads = (
        ["inspect", "demo-ana"],
        ["sessions"],
        ["sessions", "--user", "ana"],
        ["facts", "--user", "ana"],
        ["facts", "--session", "demo-ana"],
        ["export", "demo-ana"],
    )
    for command in reads:
        assert main([*command, "--json", "--store", store]) == 0, command
        lines = capsys.readouterr().out.splitlines()
        assert lines, command
        assert all(isinstance(json.loads(line), dict) for line in lines), command


def test_an_empty_store_says_so(tmp_path, capsys):
    from langchain_hybrid_memory.stores import SQLiteStore

    path = tmp_path / "empty.db"
    SQLiteStore(str(path)).close()
    assert main(["sessions", "--store", f"sqlite:///{path}"]) == 0
    assert "this store holds no session" in capsys.readouterr().out


def test_the_demos_next_command_shows_the_context_the_demo_built(store, capsys, on_path):
    question = load_demo_conversation().probes[0][0]
    assert main(["demo", "--store", store, "--budget", "400", "--window", "6"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "`hybrid-memory inspect demo-ana --budget 400 --window 6`" in out
    assert "`hybrid-memory serve --budget 400 --window 6`" in out
    command = ["inspect", "demo-ana", "--budget", "400", "--window", "6", "--json"]
    assert main([*command, "--query", question, "--store", store]) == 0
    context = json.loads(capsys.readouterr().out)
    assert context["token_budget"] == 400
    assert len(context["window"]) <= 6


def test_anonymized_facts_leave_out_names_in_values_too(store, capsys):
    assert main(["facts", "--user", "ana", "--anonymize", "--json", "--store", store]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records
    values = " ".join(record["value"] for record in records)
    assert "Ribeiro" not in values, "a full name is personal data, whatever its attribute"
    assert "Ana" not in values
    assert "peanuts" in values, "facts that name nobody stay"


def test_reading_an_in_process_store_is_an_error_not_an_empty_answer(capsys):
    for command in (["sessions"], ["inspect", "s1"], ["facts", "--user", "ana"], ["serve"]):
        assert main([*command, "--store", "memory://"]) == 1, command
        assert "memory:// holds nothing" in capsys.readouterr().err


def test_the_demos_next_commands_run_where_hybrid_memory_is_not_on_the_path(
    store, capsys, monkeypatch
):
    monkeypatch.setattr("sys.argv", [".venv/bin/hybrid-memory", "demo"])  # as `make demo` runs it
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["demo", "--store", store]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "`.venv/bin/hybrid-memory inspect demo-ana" in out
    assert "`.venv/bin/hybrid-memory serve" in out

    monkeypatch.setattr("sys.argv", ["/somewhere/cli.py", "demo"])  # python -m ...cli demo
    assert main(["demo", "--store", store]) == 0
    out = " ".join(capsys.readouterr().out.split())
    python = Path(sys.executable)  # shown relative to the working directory when inside it
    shown = python.relative_to(Path.cwd()) if python.is_relative_to(Path.cwd()) else python
    assert f"`{shown} -m langchain_hybrid_memory.cli inspect demo-ana" in out
