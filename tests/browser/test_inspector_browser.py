"""The memory inspector in a real headless browser (Debian's Chromium driven by Playwright).

The issue's "done when", step by step: open the inspector started by ``hybrid-memory serve``,
find the session of a demo-like conversation, type a query, see why a line reached the prompt
(recalled, with its scores), see the facts, erase the user behind the confirmation, read the
report, and find the store empty for that user.

Without Chromium these tests skip with the reason, except under ``CI=true``, where they fail.
With ``HYBRID_MEMORY_SCREENSHOTS=<folder>`` they save the screenshots the docs show.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from langchain_core.messages import HumanMessage

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.cli import load_demo_conversation
from langchain_hybrid_memory.inspector import InspectorServer, create_app
from langchain_hybrid_memory.stores import SQLiteStore

if TYPE_CHECKING:
    from collections.abc import Iterator

CHROMIUM = Path(os.environ.get("HM_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = os.environ.get("HYBRID_MEMORY_SCREENSHOTS")
DEMO = load_demo_conversation()
DEMO_TURNS = 40  # the demo's first 40 messages: its facts, its dog, a trip; the oldest summarized
MOVED = "Big news: Bolt and I moved to Lisbon last week, he loves the park by the river."
TURNS = DEMO_TURNS + 1  # and a later message that changes a fact
STARTUP_SECONDS = 120


def _missing(message: str) -> None:
    """Skip, except in CI, where a browser test that cannot run is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _launch_browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        _missing(f"Chromium is missing: expected {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is missing: pip install -e '.[dev]'")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from _launch_browser()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def store_url(tmp_path) -> str:
    """A SQLite store where a bot kept the start of the demo conversation (real embeddings)."""
    url = f"sqlite:///{tmp_path / 'memory.db'}"
    bot = HybridMemory(store=url, window_turns=6, summary_batch_tokens=300)
    for index, (message, when) in enumerate(DEMO.messages[:DEMO_TURNS]):
        bot.add_message(
            DEMO.session_id,
            message,
            user_id=DEMO.user_id,
            timestamp=when,
            entities=DEMO.entities.get(index),
        )
    bot.add_message(
        DEMO.session_id,
        HumanMessage(MOVED, name="Ana"),
        user_id=DEMO.user_id,
        timestamp=when + timedelta(days=9),
        entities={"Ana": {"city": "Lisbon"}},
    )
    bot.add_message("other-session", DEMO.messages[0][0], user_id="bob")
    bot.close()
    return url


@pytest.fixture
def served(store_url) -> Iterator[str]:
    """``hybrid-memory serve --allow-erasure`` on a free port, in its own process: its URL."""
    command = [
        sys.executable,
        "-m",
        "langchain_hybrid_memory.cli",
        "serve",
        "--store",
        store_url,
        "--port",
        "0",
        "--allow-erasure",
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], STARTUP_SECONDS)
        assert ready, f"serve said nothing for {STARTUP_SECONDS} s"
        line = process.stdout.readline()  # the line saying where it listens
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found, f"serve did not start: {line}{process.stdout.read() if not line else ''}"
        yield found.group(0)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _shot(page, name: str, height: int | None = None) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        clip = None if height is None else {"x": 0, "y": 0, "width": 1100, "height": height}
        page.screenshot(path=str(Path(SCREENSHOTS) / name), clip=clip)


def test_a_newcomer_finds_why_a_line_reached_the_prompt_and_erases_the_user(
    page, served, store_url
):
    page.goto(served)
    assert page.locator("h2", has_text=f"user {DEMO.user_id}").count() == 1
    assert page.get_by_role("link", name="other-session").count() == 1  # bob's, listed too

    page.get_by_role("link", name=DEMO.session_id).click()
    page.get_by_label("query").fill("Is my dog OK to come along to the beach?")
    page.get_by_role("button", name="build the context").click()

    budget = page.locator(".budget").inner_text()
    tokens, limit = map(int, re.findall(r"(\d+) of (\d+) tokens", budget)[0])
    assert 0 < tokens <= limit
    bolt = page.locator("table.recalled tbody tr", has_text="Bolt is a border collie")
    assert bolt.count() == 1, "the turn about the dog was recalled for the question"
    score, cosine, bm25 = (float(bolt.locator("td").nth(i).inner_text()) for i in range(3))
    assert -1.0 <= cosine <= 1.0
    assert bm25 > 0, "the query shares words with the turn"
    assert score > 0
    facts = page.locator("table.facts").first.inner_text()
    assert "border collie" in facts
    assert "peanuts" in facts
    summary = page.locator("p.covers").inner_text()
    assert re.search(r"Covers turns 0 to \d+", summary), "the oldest turns were summarized"
    _shot(page, "inspector-context.png")

    page.get_by_role("link", name=DEMO.user_id, exact=True).first.click()
    assert "Marta" in page.locator("table.facts").inner_text()
    lisbon = page.locator("table.facts tr.current", has_text="Lisbon")
    porto = page.locator("table.facts tr.past", has_text="Porto")
    assert lisbon.count() == 1, "the city now"
    assert porto.count() == 1, "and where she lived before, until the move"
    assert porto.locator("td").nth(4).inner_text() == lisbon.locator("td").nth(3).inner_text()
    _shot(page, "inspector-user.png")
    page.get_by_role("link", name=re.compile("Erase user")).click()
    assert "cannot be undone" in page.content()
    page.get_by_role("button", name="Yes, erase").click()

    report = page.locator("table.report").inner_text()
    assert page.locator("h1").inner_text() == "Erasure report"
    assert re.search(rf"turns\s+{TURNS}\b", report), report
    assert DEMO.session_id in report
    _shot(page, "inspector-erased.png", height=400)

    with SQLiteStore(store_url.removeprefix("sqlite:///")) as store:  # another worker's view
        assert store.list_sessions(DEMO.user_id) == []
        assert store.count_turns(DEMO.session_id) == 0
        assert [s.session_id for s in store.list_all_sessions()] == ["other-session"]
    page.goto(served)
    assert DEMO.session_id not in page.content()


def test_read_only_mode_offers_no_erasure_and_refuses_a_post(page, store_url):
    memory = HybridMemory(store=store_url)
    try:
        with InspectorServer(create_app(memory), port=0) as server:
            page.goto(f"{server.url}session?id={DEMO.session_id}")
            assert page.locator("h1").inner_text() == f"Session {DEMO.session_id}"
            assert "read-only" in page.locator("header").inner_text()
            assert page.get_by_text(re.compile("erase", re.IGNORECASE)).count() == 0
            page.goto(f"{server.url}user?id={DEMO.user_id}")
            assert page.get_by_text(re.compile("erase", re.IGNORECASE)).count() == 0

            refused = page.request.post(f"{server.url}erase", form={"user": DEMO.user_id})
            assert refused.status == 403
            assert page.request.get(f"{server.url}erase?user={DEMO.user_id}").status == 403
        assert memory.store.count_turns(DEMO.session_id) == TURNS
    finally:
        memory.close()


def test_an_erasure_post_without_the_forms_token_is_refused(page, store_url):
    memory = HybridMemory(store=store_url)
    try:
        with InspectorServer(create_app(memory, allow_erasure=True), port=0) as server:
            forged = page.request.post(
                f"{server.url}erase", form={"user": DEMO.user_id, "token": "guessed"}
            )
            assert forged.status == 403
            assert memory.store.count_turns(DEMO.session_id) == TURNS
    finally:
        memory.close()


def test_two_browsers_erasing_the_same_user_and_a_page_left_open(browser, served, store_url):
    first, second = (browser.new_context().new_page() for _ in range(2))
    try:
        left_open = second.context.new_page()  # a tab left open on the session
        left_open.goto(f"{served}session?id={DEMO.session_id}")
        for page in (first, second):
            page.goto(f"{served}erase?user={DEMO.user_id}")
            assert "cannot be undone" in page.content()
        first.get_by_role("button", name="Yes, erase").click()
        assert first.locator("h1").inner_text() == "Erasure report"

        second.get_by_role("button", name="Yes, erase").click()  # its page was stale
        assert second.locator("h1").inner_text() == "404"
        assert "nothing to erase" in second.locator("p.error").inner_text()
        assert "Erasure report" not in second.content()

        left_open.get_by_label("query").fill("Is my dog OK?")
        left_open.get_by_role("button", name="build the context").click()
        assert left_open.locator("h1").inner_text() == "404", "no context of an erased session"
        assert "Bolt" not in left_open.content()
    finally:
        for page in (first, second):
            page.context.close()
