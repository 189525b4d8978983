"""Every session of a store, whoever owns it: what a store browser lists, page by page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from langchain_core.messages import HumanMessage

from langchain_hybrid_memory.errors import InvalidInputError
from langchain_hybrid_memory.types import SessionInfo, TurnDraft
from tests.integration.backends import KINDS
from tests.unit.store_fixtures import SQLITE_ENCRYPTED, cluster_port, open_backend  # noqa: F401 - fixture

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(params=(*KINDS, SQLITE_ENCRYPTED))
def backend(request, tmp_path):
    yield from open_backend(request, request.param, tmp_path)


def say(store, session_id, user_id, turns, start=T0):
    store.append_turns(
        session_id,
        [
            TurnDraft(
                HumanMessage(f"{session_id} {i}"), f"{session_id} {i}", start + timedelta(minutes=i)
            )
            for i in range(turns)
        ],
        user_id=user_id,
    )


def test_every_session_is_listed_with_its_owner_turns_and_last_activity(backend):
    writer = backend.open()
    reader = writer if backend.kind == "memory" else backend.open()  # two workers on one store
    say(writer, "s-b", "ana", 3)
    say(writer, "s-a", "bob", 1, start=T0 + timedelta(days=1))
    say(writer, "s-c", None, 2)
    say(writer, "s:{weird} id", "ana", 1)
    expected = [
        SessionInfo("s-a", "bob", 1, T0 + timedelta(days=1)),
        SessionInfo("s-b", "ana", 3, T0 + timedelta(minutes=2)),
        SessionInfo("s-c", None, 2, T0 + timedelta(minutes=1)),
        SessionInfo("s:{weird} id", "ana", 1, T0),
    ]
    assert reader.list_all_sessions() == expected
    assert writer.list_all_sessions() == expected


def test_pages_follow_the_last_id_and_cover_every_session_once(backend):
    store = backend.open()
    ids = [f"s-{i:02d}" for i in range(7)]
    for i, session_id in enumerate(ids):
        say(store, session_id, f"user-{i % 3}", 1)
    seen, after = [], None
    while page := store.list_all_sessions(after=after, limit=3):
        assert len(page) <= 3
        seen += [info.session_id for info in page]
        after = page[-1].session_id
    assert seen == ids
    assert [i.session_id for i in store.list_all_sessions(after="s-04", limit=100)] == ids[5:]


def test_an_erased_session_or_user_is_no_longer_listed(backend):
    store = backend.open()
    other = store if backend.kind == "memory" else backend.open()
    say(store, "kept", "ana", 1)
    say(store, "gone", "ana", 1)
    say(store, "bobs", "bob", 2)
    other.delete_session("gone")
    assert [i.session_id for i in store.list_all_sessions()] == ["bobs", "kept"]
    other.delete_user("bob")
    assert [i.session_id for i in store.list_all_sessions()] == ["kept"]


async def test_the_async_twin_lists_the_same_page(backend):
    store = backend.open()
    say(store, "s-1", "ana", 2)
    say(store, "s-2", "bob", 1)
    assert await store.alist_all_sessions(limit=1) == store.list_all_sessions(limit=1)
    assert await store.alist_all_sessions(after="s-1") == store.list_all_sessions(after="s-1")


@pytest.mark.parametrize("limit", [0, -1, 1001, 2.5, True, "10"])
def test_a_page_size_out_of_range_is_refused(limit):
    from langchain_hybrid_memory.stores import InMemoryStore

    with pytest.raises(InvalidInputError, match="limit"):
        InMemoryStore().list_all_sessions(limit=limit)
