"""The inspector's pages and the ``serve`` / ``sessions`` commands, without a browser.

The browser walk-through is in tests/browser; these check what a page must never do (run a
stored text as markup, show a key or a store password, erase without the flag and the form's
token) and what the commands print.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.cli import main
from langchain_hybrid_memory.errors import ConfigError
from langchain_hybrid_memory.inspector import check_host, create_app
from langchain_hybrid_memory.inspector.app import TURNS_PER_PAGE
from tests.integration.backends import KINDS
from tests.unit.store_fixtures import cluster_port, open_backend  # noqa: F401 - fixture

T0 = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def memory(tmp_path):
    memory = HybridMemory(store=f"sqlite:///{tmp_path / 'm.db'}", window_turns=4)
    memory.add_messages(
        "s1",
        [HumanMessage(f"I am Ana and I say {HOSTILE}"), AIMessage("Noted.")],
        user_id="ana",
        timestamp=T0,
        entities={"Ana": {"city": "Porto"}},
    )
    memory.add_messages(
        "s1",
        [HumanMessage(f"message number {i}") for i in range(TURNS_PER_PAGE + 10)],
        user_id="ana",
        timestamp=T0 + timedelta(hours=1),
    )
    memory.add_messages("s2", [HumanMessage("hello from bob")], user_id="bob")
    yield memory
    memory.close()


def form_token(page: str) -> str:
    """The token of the erasure confirmation form on ``page``."""
    return re.search(r'name="token" value="([^"]+)"', page).group(1)


def test_stored_text_is_shown_as_text_never_as_markup(memory):
    client = create_app(memory).test_client()
    for url in ("/transcript?id=s1", "/session?id=s1&q=what+did+Ana+say"):
        page = client.get(url)
        assert page.status_code == 200
        assert HOSTILE not in page.text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
        assert "script-src" not in page.headers["Content-Security-Policy"]  # no script at all
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_the_front_page_lists_every_user_with_their_sessions(memory):
    page = create_app(memory).test_client().get("/").text
    assert re.search(r"user <a [^>]*>ana</a>", page)
    assert re.search(r"user <a [^>]*>bob</a>", page)
    assert ">s1</a>" in page
    assert ">s2</a>" in page


def test_a_transcript_is_read_a_page_at_a_time(memory):
    client = create_app(memory).test_client()
    first = client.get("/transcript?id=s1").text
    assert 'id="turn-0"' in first
    assert f'id="turn-{TURNS_PER_PAGE - 1}"' in first
    assert f'id="turn-{TURNS_PER_PAGE}"' not in first
    second = client.get("/transcript?id=s1&page=1").text
    assert f'id="turn-{TURNS_PER_PAGE}"' in second
    assert 'id="turn-0"' not in second
    assert client.get("/transcript?id=s1&page=-1").status_code == 400
    assert client.get("/transcript?id=nope").status_code == 404


def test_exports_are_json_downloads(memory):
    client = create_app(memory).test_client()
    export = client.get("/export.json?session=s1")
    assert export.headers["Content-Disposition"].startswith("attachment")
    records = json.loads(export.text)
    assert len(records) == TURNS_PER_PAGE + 12
    facts = json.loads(client.get("/facts.json?user=ana").text)
    assert {(f["entity"], f["attribute"], f["value"]) for f in facts} == {("Ana", "city", "Porto")}


def test_erasure_needs_the_flag_then_the_confirmation_forms_token(memory):
    read_only = create_app(memory).test_client()
    assert read_only.get("/erase?session=s1").status_code == 403
    assert read_only.post("/erase", data={"session": "s1"}).status_code == 403

    client = create_app(memory, allow_erasure=True).test_client()
    confirm = client.get("/erase?session=s1").text
    token = form_token(confirm)
    assert client.post("/erase", data={"session": "s1", "token": "x" + token}).status_code == 403
    assert memory.store.count_turns("s1") == TURNS_PER_PAGE + 12
    done = client.post("/erase", data={"session": "s1", "token": token})
    assert done.status_code == 200
    assert re.search(rf"turns</th><td class=\"num\">{TURNS_PER_PAGE + 12}<", done.text)
    assert memory.store.count_turns("s1") == 0
    assert client.get("/erase?session=s1").status_code == 404, "nothing left to erase"
    assert memory.store.count_turns("s2") == 1


def test_no_page_shows_the_encryption_key(tmp_path):
    key = Fernet.generate_key()
    memory = HybridMemory(store=f"sqlite:///{tmp_path / 'sealed.db'}", encryption_key=key)
    memory.add_messages("s1", [HumanMessage("secret plans")], user_id="ana")
    client = create_app(memory, allow_erasure=True).test_client()
    pages = [client.get(url) for url in ("/", "/user?id=ana", "/session?id=s1&q=plans")]
    assert all(page.status_code == 200 for page in pages)
    assert not any(key.decode() in page.text for page in pages)
    memory.close()


def test_only_loopback_is_served_unless_remote_is_allowed():
    check_host("127.0.0.1")
    check_host("::1")
    check_host("localhost")
    for host in ("0.0.0.0", "192.0.2.7", "::"):
        with pytest.raises(ConfigError, match="--allow-remote"):
            check_host(host)
        check_host(host, allow_remote=True)


def test_serve_beyond_loopback_without_the_flag_exits_1(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert main(["serve", "--host", "0.0.0.0", "--store", url]) == 1
    assert "--allow-remote" in capsys.readouterr().err
    assert not (tmp_path / "m.db").exists(), "nothing opened"


def test_serve_never_prints_the_store_password(capsys):
    url = "postgresql://ana:hunter2@127.0.0.1:1/memory"
    assert main(["serve", "--port", "0", "--store", url]) == 1
    captured = capsys.readouterr()
    assert "hunter2" not in captured.err + captured.out


def test_sessions_without_a_user_lists_every_session_a_page_at_a_time(memory, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert main(["sessions", "--json", "--store", url]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["session_id"], r["user_id"], r["turns"]) for r in rows] == [
        ("s1", "ana", TURNS_PER_PAGE + 12),
        ("s2", "bob", 1),
    ]
    assert rows[0]["last_turn"].startswith("2026-03-02T09:30")

    assert main(["sessions", "--limit", "1", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "ana" in out
    assert "s2" not in out
    assert 'more sessions follow: --after "s1"' in out
    assert main(["sessions", "--after", "s1", "--json", "--store", url]) == 0
    assert [json.loads(line)["session_id"] for line in capsys.readouterr().out.splitlines()] == [
        "s2"
    ]


def test_the_request_log_never_holds_the_typed_query(memory, caplog):
    import urllib.request

    from langchain_hybrid_memory.inspector import InspectorServer

    caplog.set_level("INFO", logger="werkzeug")
    with (
        InspectorServer(create_app(memory), port=0) as server,
        urllib.request.urlopen(f"{server.url}session?id=s1&q=my+secret+plans") as answer,
    ):
        assert answer.status == 200
    logged = caplog.text
    assert '"GET /session" 200' in logged
    assert "secret" not in logged
    assert "s1" not in logged


@pytest.fixture(params=KINDS)
def backend(request, tmp_path):
    yield from open_backend(request, request.param, tmp_path)


def test_the_inspector_reads_every_store_a_worker_wrote(backend):
    writer = HybridMemory(store=backend.open())
    inspector = writer if backend.kind == "memory" else HybridMemory(store=backend.open())
    writer.add_messages("s1", [HumanMessage("I live in Porto"), AIMessage("Nice.")], user_id="ana")
    client = create_app(inspector, allow_erasure=True).test_client()
    assert ">s1</a>" in client.get("/").text
    assert "I live in Porto" in client.get("/transcript?id=s1").text
    assert "I live in Porto" in client.get("/session?id=s1&q=where+do+I+live").text
    token = form_token(client.get("/erase?user=ana").text)
    assert client.post("/erase", data={"user": "ana", "token": token}).status_code == 200
    assert writer.store.list_sessions("ana") == []
    assert ">s1</a>" not in client.get("/").text


def test_a_facts_download_of_an_unknown_user_or_session_is_not_found(memory):
    client = create_app(memory).test_client()
    assert client.get("/facts.json?user=anna").status_code == 404, "a typo is not an empty list"
    assert client.get("/facts.json?session=nope").status_code == 404
    assert json.loads(client.get("/facts.json?user=ana").text), "a known user still downloads"


def test_a_second_browser_erasing_what_is_gone_is_told_nothing_was_erased(memory, tmp_path):
    other_worker = HybridMemory(store=f"sqlite:///{tmp_path / 'm.db'}")
    first = create_app(memory, allow_erasure=True).test_client()
    second = create_app(other_worker, allow_erasure=True).test_client()
    first_token = form_token(first.get("/erase?user=ana").text)
    second_token = form_token(second.get("/erase?user=ana").text)  # both pages open at once
    assert first.post("/erase", data={"user": "ana", "token": first_token}).status_code == 200
    late = second.post("/erase", data={"user": "ana", "token": second_token})
    assert late.status_code == 404
    assert "Erasure report" not in late.text
    assert "nothing to erase" in late.text
    other_worker.close()


def test_a_page_asked_for_by_another_host_name_is_refused(memory):
    """A web page whose name resolves to 127.0.0.1 (DNS rebinding) must not read the store."""
    client = create_app(memory).test_client()
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "127.0.0.2"):
        assert client.get("/", headers={"Host": host}).status_code == 200, host
    for host in ("attacker.example:8765", "127.0.0.1.nip.io", "localhost.attacker.example"):
        answer = client.get("/user?id=ana", headers={"Host": host})
        assert answer.status_code == 400, host
        assert "Porto" not in answer.text
    remote = create_app(memory, allow_remote=True).test_client()
    assert remote.get("/", headers={"Host": "memory.internal:8765"}).status_code == 200


def test_a_user_with_many_sessions_is_shown_a_page_at_a_time(tmp_path):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from langchain_hybrid_memory.inspector.app import SESSIONS_PER_PAGE

    memory = HybridMemory(
        store=f"sqlite:///{tmp_path / 'many.db'}", embeddings=DeterministicFakeEmbedding(size=8)
    )
    count = SESSIONS_PER_PAGE + 5
    for number in range(count):
        memory.add_messages(f"s{number:03d}", [HumanMessage("hi")], user_id="ana")
    client = create_app(memory, allow_erasure=True).test_client()
    first = client.get("/user?id=ana").text
    assert first.count('href="/session?id=s') == SESSIONS_PER_PAGE
    assert f"{count} sessions" in first
    following = re.search(r'href="(/user\?[^"]*after=[^"]*)"', first).group(1)
    second = client.get(following.replace("&amp;", "&")).text
    assert second.count('href="/session?id=s') == 5
    assert f">s{count - 1:03d}</a>" in second
    confirm = client.get("/erase?user=ana").text
    assert f"{count} sessions" in confirm, "the erasure page says how many sessions will go"
    done = client.post("/erase", data={"user": "ana", "token": form_token(confirm)})
    assert re.search(rf"sessions</th><td class=\"num\">{count}<", done.text)
    memory.close()


def test_a_busy_port_is_a_config_error_not_an_exit(memory, tmp_path, capsys):
    import socket

    from langchain_hybrid_memory.inspector import InspectorServer

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            InspectorServer(create_app(memory), port=port)  # SystemExit would end the caller
        url = f"sqlite:///{tmp_path / 'm.db'}"
        assert main(["serve", "--port", str(port), "--store", url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, "one line, the library's"
    assert "in use" in err


def test_an_encrypted_store_opened_without_its_key_says_how_to_pass_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'sealed.db'}"
    with HybridMemory(store=url, encryption_key=Fernet.generate_key()) as writer:
        writer.add_messages("s1", [HumanMessage("secret plans")], user_id="ana")
    with HybridMemory(store=url) as keyless:
        page = create_app(keyless).test_client().get("/transcript?id=s1")
    assert page.status_code == 503
    assert "$HYBRID_MEMORY_ENCRYPTION_KEY" in page.text, "what to set when started by serve"
    assert "secret plans" not in page.text


def test_an_odd_page_number_is_a_clear_error_never_a_crash(memory):
    client = create_app(memory).test_client()
    for page in ("²", "٣", "9" * 5000, "-1", "1e3", ""):
        answer = client.get("/transcript", query_string={"id": "s1", "page": page})
        assert answer.status_code in (200, 400), (page, answer.status_code)
        if answer.status_code == 400:
            assert "page must be a whole number" in answer.text
    last = client.get("/transcript", query_string={"id": "s1", "page": "9" * 40})
    assert last.status_code == 200, "a page past the end shows the last"
    assert f"message number {TURNS_PER_PAGE + 9}" in last.text


ODD_IDS = (
    "ünïcødé-セッション",
    "a/b/c",
    "../../etc/passwd",
    "x" * 256,
    "<b>bold</b>&amp;",
    "has space?q=1&x#frag",
    "%2F..%2F",
    "emoji 😀",
    "back\\slash",
)


def test_every_link_works_for_odd_session_and_user_ids(tmp_path):
    import html

    from langchain_core.embeddings import DeterministicFakeEmbedding

    memory = HybridMemory(
        store=f"sqlite:///{tmp_path / 'odd.db'}", embeddings=DeterministicFakeEmbedding(size=8)
    )
    for odd in ODD_IDS:
        memory.add_messages(
            odd,
            [HumanMessage("I live in Porto"), AIMessage("ok")],
            user_id=odd,
            entities={"Ana": {"city": "Porto"}},
        )
    client = create_app(memory, allow_erasure=True).test_client()
    seen: set[str] = set()
    waiting = ["/"]
    while waiting:
        url = waiting.pop()
        if url in seen:
            continue
        seen.add(url)
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.status_code)
        if answer.content_type.startswith("text/html"):
            for link in re.findall(r'href="(/[^"]*)"', answer.text):
                target = html.unescape(link).partition("#")[0]
                if not target.startswith("/static/"):
                    waiting.append(target)
    # each id's session, transcript, user, session export, facts export and two erase pages
    assert len(seen) >= 7 * len(ODD_IDS), "every page of every odd id was reached by a link"
    for odd in ODD_IDS:
        page = client.get("/session", query_string={"id": odd})
        assert html.escape(odd) in page.text
    memory.close()
