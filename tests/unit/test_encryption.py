"""Encryption at rest (#5): what SQLite, Redis and PostgreSQL hold is sealed, reads back exactly
with the key, fails clearly without it, and rotates to a new key while the store is in use.
Redis and PostgreSQL are real servers, required (never skipped)."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from cryptography.fernet import Fernet
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from langchain_hybrid_memory._inputs import message_text
from langchain_hybrid_memory.errors import ConfigError, DecryptionError, StoreError
from langchain_hybrid_memory.stores import (
    InMemoryStore,
    PostgresStore,
    RedisStore,
    SQLiteStore,
    open_store,
)
from langchain_hybrid_memory.types import (
    Entity,
    EntityFact,
    EntityMention,
    RunningSummary,
    TurnDraft,
)
from tests.integration.backends import POSTGRES_URL, REDIS_URL, Backend
from tests.unit.store_fixtures import (  # noqa: F401 - cluster_port is a fixture
    SealedBackend,
    cluster_port,
    open_backend,
)

SECRET = "X123-SECRET-987"
T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
SECOND = timedelta(seconds=1)
PERSISTENT = ("sqlite", "redis", "postgres")
EVERY_SERVER = ("sqlite", "redis", "redis-cluster", "postgres")

KEY_A = Fernet.generate_key()
KEY_B = Fernet.generate_key()


def without_said(entities: dict) -> dict:
    """Entities without their sayings (the expected values here give the facts only)."""
    return {key: dataclasses.replace(entity, said={}) for key, entity in entities.items()}


def secret_messages() -> list[BaseMessage]:
    return [
        HumanMessage(f"My passport is {SECRET}", id="m-1", name="Ana"),
        AIMessage(
            "",
            tool_calls=[{"name": "save", "args": {"passport": SECRET}, "id": "call-1"}],
            additional_kwargs={"note": SECRET},
        ),
        ToolMessage(f"saved {SECRET}", tool_call_id="call-1"),
        AIMessage(f"Noted, your passport is {SECRET}."),
    ]


def drafts(messages: list[BaseMessage], start: datetime = T0) -> list[TurnDraft]:
    return [
        TurnDraft(message, message_text(message), start + i * SECOND)
        for i, message in enumerate(messages)
    ]


SUMMARY = RunningSummary(f"Ana's passport is {SECRET}.", through_turn=3, version=1, updated_at=T0)
PASSPORT = Entity(f"Passport {SECRET}", {"owner": EntityFact("Ana", 0, T0)}, (0,), T0)
ANA = Entity("Ana", {"passport": EntityFact(SECRET, 0, T0)}, (0, 3), T0)
# what merges into PASSPORT and ANA
SAID = [
    EntityMention(f"Passport {SECRET}", {"owner": "Ana"}, 0, T0),
    EntityMention("Ana", {"passport": SECRET}, 0, T0),
    EntityMention("Ana", {}, 3, T0),
]
VECTORS = np.random.default_rng(5).standard_normal((4, 16)).astype(np.float32)


def fill(store, session_id: str = "s1", user_id: str | None = "ana") -> list:
    turns = store.append_turns(session_id, drafts(secret_messages()), user_id=user_id).turns
    store.put_vectors(session_id, [0, 1, 2, 3], VECTORS)
    store.merge_entities(session_id, SAID)
    assert store.compare_and_set_summary(session_id, 0, SUMMARY)
    return turns


def assert_reads_back(store, turns, session_id: str = "s1") -> None:
    assert store.get_turns(session_id) == turns
    assert [turn.message for turn in store.get_turns(session_id)] == secret_messages()
    assert store.get_turns_by_ids(session_id, [3, 1]) == [turns[1], turns[3]]
    assert store.get_summary(session_id) == SUMMARY
    assert without_said(store.get_entities(session_id)) == {PASSPORT.key: PASSPORT, ANA.key: ANA}
    ids, vectors = store.get_vectors(session_id)
    assert ids == [0, 1, 2, 3]
    assert vectors.tobytes() == VECTORS.tobytes()


def assert_nothing_readable(store, session_id: str = "s1") -> None:
    for read in (
        lambda: store.get_turns(session_id),
        lambda: store.get_turns_by_ids(session_id, [0]),
        lambda: store.get_summary(session_id),
        lambda: store.get_entities(session_id),
        lambda: store.get_vectors(session_id),
    ):
        with pytest.raises(DecryptionError):
            read()


@pytest.fixture(params=PERSISTENT)
def sealed(request, tmp_path):
    """A backend whose stores encrypt under KEY_A, vectors too."""
    yield from open_backend(request, request.param, tmp_path, keys=KEY_A, encrypt_vectors=True)


@pytest.fixture(params=EVERY_SERVER)
def rotating(request, tmp_path):
    yield from open_backend(request, request.param, tmp_path, keys=KEY_A, encrypt_vectors=True)


@pytest.fixture(params=PERSISTENT)
def plain(request, tmp_path):
    yield from open_backend(request, request.param, tmp_path)


# -- what the servers hold --------------------------------------------------------------------


def test_the_raw_bytes_of_every_store_hold_no_plaintext_of_turns_summaries_or_entities(sealed):
    store = sealed.open()
    fill(store)
    store.append_turns("s2", drafts([HumanMessage(f"again: {SECRET}")]), user_id="ana")

    raw = sealed.raw_values()
    assert raw  # the reader sees the stored values
    assert not [value for value in raw if SECRET.encode() in value]
    assert not [value for value in raw if b"passport" in value.lower()]  # entity names too
    if sealed.kind == "sqlite":
        assert SECRET.encode() not in sealed.sqlite_file_bytes()
    # the vectors are sealed: their float32 bytes appear nowhere
    for row in VECTORS:
        assert not [value for value in raw if row.tobytes() in value]


def test_the_same_reader_finds_the_plaintext_in_a_store_without_key(plain):
    """The control of the test above: without a key the secret is there to be found."""
    store = plain.open()
    fill(store)

    raw = SealedBackend(plain.kind, plain.tmp_path, namespace=plain.namespace).raw_values()

    assert [value for value in raw if SECRET.encode() in value]
    assert [value for value in raw if VECTORS[0].tobytes() in value]


def test_vectors_stay_plain_float32_unless_encrypt_vectors(tmp_path):
    backend = SealedBackend("sqlite", tmp_path, keys=KEY_A, encrypt_vectors=False)
    store = backend.open()
    fill(store)

    raw = backend.raw_values()

    assert [value for value in raw if value == VECTORS[0].tobytes()]
    assert not [value for value in raw if SECRET.encode() in value]
    assert store.get_vectors("s1")[1].tobytes() == VECTORS.tobytes()


def test_sealed_values_are_marked_and_vectors_differ_from_their_float32_bytes(sealed):
    fill(sealed.open())

    if sealed.kind == "redis":
        client = sealed.redis_client()
        store = RedisStore(client, prefix=sealed.namespace)
        meta, turns, vectors, entities, _ = store._plans.session_keys("s1")
        records = client.lrange(turns, 0, -1)
        blobs = [client.hget(vectors, i) for i in range(4)]
        summary = client.hget(meta, "summary")
        entity_records = client.hvals(entities)
        client.close()
    else:
        connection = sealed_sql(sealed)
        records = [r for (r,) in connection.execute("SELECT record FROM turns").fetchall()]
        blobs = [
            bytes(v)
            for (v,) in connection.execute("SELECT vector FROM vectors ORDER BY turn_id").fetchall()
        ]
        (summary,) = connection.execute("SELECT summary FROM sessions").fetchone()
        entity_records = [r for (r,) in connection.execute("SELECT record FROM entities")]
        connection.close()

    for value in [*records, summary, *entity_records]:
        text = value.decode() if isinstance(value, bytes) else value
        assert text.startswith("fernet:")
    assert len(blobs) == 4
    for blob, row in zip(blobs, VECTORS, strict=True):
        assert blob.startswith(b"fernet:")
        assert blob != row.tobytes()


def sealed_sql(backend: Backend):
    """A DB-API connection on the backend's tables, unqualified names resolved to them."""
    if backend.kind == "postgres":
        import psycopg

        connection = psycopg.connect(POSTGRES_URL, autocommit=True)
        connection.execute(f'SET search_path TO "{backend.namespace}"')
        return connection
    import sqlite3

    return sqlite3.connect(backend.tmp_path / "memory.db")


# -- reading back -----------------------------------------------------------------------------


def test_everything_reads_back_exactly_with_the_key(sealed):
    turns = fill(sealed.open())

    assert_reads_back(sealed.open(), turns)


async def test_async_twins_seal_and_open_the_same_way(sealed):
    store = sealed.open()
    turns = (await store.aappend_turns("s1", drafts(secret_messages()), user_id="ana")).turns
    await store.aput_vectors("s1", [0, 1, 2, 3], VECTORS)
    await store.amerge_entities("s1", SAID)
    assert await store.acompare_and_set_summary("s1", 0, SUMMARY)

    assert await store.aget_turns("s1") == turns
    assert await store.aget_summary("s1") == SUMMARY
    assert without_said(await store.aget_entities("s1")) == {PASSPORT.key: PASSPORT, ANA.key: ANA}
    assert (await store.aget_vectors("s1"))[1].tobytes() == VECTORS.tobytes()
    assert not [value for value in sealed.raw_values() if SECRET.encode() in value]
    assert await store.areencrypt() == 0
    await store.aclose()


def test_a_wrong_key_raises_decryption_error_and_changes_no_stored_byte(sealed):
    fill(sealed.open())
    before = sorted(sealed.raw_values(dumps=False))
    wrong = sealed.open(keys=Fernet.generate_key())

    assert_nothing_readable(wrong)
    with pytest.raises(DecryptionError) as failure:
        wrong.reencrypt()

    assert "old key" in str(failure.value)
    assert isinstance(failure.value, StoreError)
    assert sorted(sealed.raw_values(dumps=False)) == before
    assert wrong.count_turns("s1") == 4  # metadata stays readable


def test_no_key_raises_decryption_error_that_asks_for_the_key(sealed):
    fill(sealed.open())
    before = sorted(sealed.raw_values(dumps=False))
    keyless = sealed.open(keys=None)

    assert_nothing_readable(keyless)
    with pytest.raises(DecryptionError, match="encryption_key"):
        keyless.get_turns("s1")
    with pytest.raises(ConfigError, match="encryption key"):
        keyless.reencrypt()
    assert sorted(sealed.raw_values(dumps=False)) == before


# -- rotation ---------------------------------------------------------------------------------


def test_rotation_moves_every_value_to_the_new_key(rotating):
    turns = fill(rotating.open())
    fill(rotating.open(), "s2", "bob")
    rotated = rotating.open(keys=[KEY_B, KEY_A])
    assert_reads_back(rotated, turns)  # both keys open during the rotation

    rewritten = rotated.reencrypt()

    # per session: 4 turns, 1 summary, 2 entities, 4 vectors
    assert rewritten == 2 * (4 + 1 + 2 + 4)
    assert rotated.reencrypt() == 0  # idempotent
    assert_reads_back(rotating.open(keys=[KEY_B]), turns)
    assert_nothing_readable(rotating.open(keys=[KEY_A]))
    assert rotating.open(keys=[KEY_B]).list_sessions("bob") == ["s2"]


def test_reencrypt_with_a_key_encrypts_a_store_written_without_one(rotating):
    plain = rotating.open(keys=None)
    turns = fill(plain)
    keyed = rotating.open(keys=KEY_A, encrypt_vectors=True)
    assert_reads_back(keyed, turns)  # plain values read as they are

    assert keyed.reencrypt() == 4 + 1 + 2 + 4

    assert not [value for value in rotating.raw_values() if SECRET.encode() in value]
    assert not [value for value in rotating.raw_values() if VECTORS[0].tobytes() in value]
    assert_reads_back(rotating.open(keys=KEY_A), turns)
    assert_nothing_readable(rotating.open(keys=None))
    assert keyed.reencrypt() == 0


def test_writes_and_appends_during_a_rotation_are_kept(rotating):
    old = rotating.open()
    old.append_turns("busy", drafts([HumanMessage(f"old {i}") for i in range(300)]))
    old.merge_entities("busy", SAID[1:])
    writer_store = rotating.open(keys=[KEY_B, KEY_A])
    rotator = rotating.open(keys=[KEY_B, KEY_A])
    appended: list[str] = []
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(40):
                text = f"new {i}"
                writer_store.append_turns("busy", drafts([HumanMessage(text)]))
                appended.append(text)
                if i % 10 == 0:
                    moved = EntityMention("Ana", {"city": f"City {i}"}, None, T0 + i * SECOND)
                    writer_store.merge_entities("busy", [moved])
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    rotator.reencrypt()
    writer.join()
    rotator.reencrypt()  # whatever the first pass could not see is moved now

    assert failures == []
    reader = rotating.open(keys=[KEY_B])
    texts = [turn.text for turn in reader.get_turns("busy")]
    assert texts[:300] == [f"old {i}" for i in range(300)]
    assert sorted(texts[300:]) == sorted(appended)
    assert len(texts) == 340
    entities = reader.get_entities("busy")
    assert list(entities) == ["ana"]
    assert entities["ana"].facts["city"].value == "City 30"


def test_an_entity_written_under_a_new_key_replaces_its_older_form(rotating):
    rotating.open(keys=None).append_turns("s1", drafts([HumanMessage("hi")]))
    rotating.open(keys=None).merge_entities("s1", SAID[1:])  # stored under its plain name
    rotating.open(keys=KEY_A).merge_entities("s1", SAID[1:])  # moved under a digest of key A
    later = EntityMention("Ana", {"city": "Lisbon"}, None, T0 + SECOND)

    rotating.open(keys=[KEY_B, KEY_A]).merge_entities("s1", [later])

    facts = {
        "passport": EntityFact(SECRET, 0, T0),
        "city": EntityFact("Lisbon", None, later.timestamp),
    }
    merged = Entity("Ana", facts, (0, 3), later.timestamp)
    assert without_said(rotating.open(keys=[KEY_B]).get_entities("s1")) == {"ana": merged}
    assert not [value for value in rotating.raw_values() if value == b"ana"]


async def test_the_async_rotation_twin_runs_reencrypt(tmp_path):
    backend = SealedBackend("sqlite", tmp_path, keys=KEY_A)
    turns = fill(backend.open())

    assert await backend.open(keys=[KEY_B, KEY_A]).areencrypt() == 4 + 1 + 2 + 4

    assert_reads_back(backend.open(keys=KEY_B), turns)
    backend.cleanup()


# -- configuration ----------------------------------------------------------------------------

BAD_KEYS = [
    "not a key",
    b"c2hvcnQ=",  # valid base64, 5 bytes
    [],
    [KEY_A, "nope"],
    [KEY_A, 42],
    42,
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_a_bad_key_is_refused_at_construction_without_showing_it(key, tmp_path):
    with pytest.raises(ConfigError) as failure:
        SQLiteStore(tmp_path / "memory.db", encryption_key=key)
    assert "nope" not in str(failure.value)
    assert "not a key" not in str(failure.value)
    assert not (tmp_path / "memory.db").exists()  # refused before opening anything
    with pytest.raises(ConfigError):
        RedisStore(REDIS_URL, prefix=f"hmtest_{uuid.uuid4().hex[:8]}", encryption_key=key)
    with pytest.raises(ConfigError):
        PostgresStore(POSTGRES_URL, schema=f"hmtest_{uuid.uuid4().hex[:8]}", encryption_key=key)
    with pytest.raises(ConfigError):
        open_store(f"sqlite:///{tmp_path / 'other.db'}", encryption_key=key)
    with pytest.raises(ConfigError):
        open_store("memory://", encryption_key=key)


def test_keys_are_accepted_as_str_bytes_or_a_list(tmp_path):
    for n, key in enumerate([KEY_A, KEY_A.decode(), [KEY_A.decode(), KEY_B], (KEY_A,)]):
        store = SQLiteStore(tmp_path / f"{n}.db", encryption_key=key)
        store.append_turns("s1", drafts([HumanMessage(SECRET)]))
        assert SQLiteStore(tmp_path / f"{n}.db", encryption_key=KEY_A).get_turns("s1")[0].text == (
            SECRET
        )


def test_encrypt_vectors_needs_a_key(tmp_path):
    with pytest.raises(ConfigError, match="encrypt_vectors"):
        SQLiteStore(tmp_path / "memory.db", encrypt_vectors=True)


def test_open_store_passes_the_key_and_refuses_it_for_a_store_object(tmp_path):
    store = open_store(
        f"sqlite:///{tmp_path / 'memory.db'}", encryption_key=KEY_A, encrypt_vectors=True
    )
    fill(store)
    backend = SealedBackend("sqlite", tmp_path)
    assert not [value for value in backend.raw_values() if SECRET.encode() in value]
    assert not [value for value in backend.raw_values() if VECTORS[0].tobytes() in value]
    store.close()

    prefix = f"hmtest_{uuid.uuid4().hex[:12]}"
    redis_backend = SealedBackend("redis", tmp_path, namespace=prefix)
    redis_store = RedisStore(REDIS_URL, prefix=prefix, encryption_key=KEY_A)
    try:
        redis_store.append_turns("s1", drafts([HumanMessage(SECRET)]))
        assert not [v for v in redis_backend.raw_values() if SECRET.encode() in v]
    finally:
        redis_backend.cleanup()
        redis_store.close()
    url_store = open_store(REDIS_URL, encryption_key=KEY_A)
    assert url_store._plans.codec.encrypted
    url_store.close()

    assert isinstance(open_store("memory://", encryption_key=KEY_A), InMemoryStore)
    with pytest.raises(ConfigError, match="constructor"):
        open_store(InMemoryStore(), encryption_key=KEY_A)
    with pytest.raises(ConfigError, match="constructor"):
        open_store(SQLiteStore(tmp_path / "other.db"), encryption_key=KEY_A)


def test_an_in_memory_store_has_nothing_to_reencrypt():
    store = InMemoryStore()
    store.append_turns("s1", drafts([HumanMessage(SECRET)]))
    assert store.reencrypt() == 0


# -- the key check: a wrong or missing key never writes ---------------------------------------


def write_everything(store, session_id: str = "s1") -> None:
    """Each kind of write, each one expected to be refused."""
    writes = (
        lambda: store.append_turns(session_id, drafts([HumanMessage("late")]), user_id="ana"),
        lambda: store.append_turns("new", drafts([HumanMessage("late")]), user_id="ana"),
        lambda: store.compare_and_set_summary(session_id, 1, SUMMARY),
        lambda: store.merge_entities(session_id, SAID),
        lambda: store.put_vectors(session_id, [4], VECTORS[:1]),
    )
    for write in writes:
        with pytest.raises(DecryptionError) as failure:
            write()
        assert "nothing was written" in str(failure.value)


@pytest.mark.parametrize("keys", [None, KEY_B], ids=["no-key", "wrong-key"])
def test_a_wrong_or_missing_key_refuses_every_write_before_writing_anything(sealed, keys):
    turns = fill(sealed.open())
    before = sorted(sealed.raw_values(dumps=False))

    write_everything(sealed.open(keys=keys))

    assert sorted(sealed.raw_values(dumps=False)) == before
    assert_reads_back(sealed.open(), turns)  # the right key still reads everything
    assert sealed.open(keys=keys).count_turns("s1") == 4  # metadata stays readable


def test_the_first_writer_with_a_key_claims_a_plain_store_and_old_keys_keep_writing(rotating):
    rotating.open(keys=None).append_turns("s1", drafts([HumanMessage("plain")]))
    rotating.open(keys=None).append_turns("s1", drafts([HumanMessage("plain again")]))
    rotating.open(keys=KEY_A).append_turns("s1", drafts([HumanMessage("sealed")]))

    with pytest.raises(DecryptionError, match="pass its key"):
        rotating.open(keys=None).append_turns("s1", drafts([HumanMessage("plain")]))
    with pytest.raises(DecryptionError, match="another key"):
        rotating.open(keys=KEY_B).append_turns("s1", drafts([HumanMessage("wrong")]))
    rotating.open(keys=[KEY_B, KEY_A]).append_turns("s1", drafts([HumanMessage("rotating")]))
    texts = [turn.text for turn in rotating.open(keys=[KEY_B, KEY_A]).get_turns("s1")]
    assert texts == ["plain", "plain again", "sealed", "rotating"]


def test_reencrypt_moves_the_key_check_to_the_new_key(rotating):
    fill(rotating.open(keys=KEY_A))

    rotating.open(keys=[KEY_B, KEY_A]).reencrypt()

    rotating.open(keys=KEY_B).append_turns("s1", drafts([HumanMessage("after")]))
    with pytest.raises(DecryptionError, match="another key"):
        rotating.open(keys=KEY_A).append_turns("s1", drafts([HumanMessage("stale worker")]))
    assert rotating.open(keys=KEY_B).count_turns("s1") == 5


def test_reencrypt_of_a_plain_store_claims_it_for_the_key(tmp_path):
    backend = SealedBackend("sqlite", tmp_path, keys=None)
    fill(backend.open(keys=None))

    backend.open(keys=KEY_A).reencrypt()

    with pytest.raises(DecryptionError, match="pass its key"):
        backend.open(keys=None).append_turns("s1", drafts([HumanMessage("plain")]))
    backend.cleanup()


def test_a_wrong_key_is_refused_through_the_async_twins_too(sealed):
    import asyncio

    fill(sealed.open())
    before = sorted(sealed.raw_values(dumps=False))
    wrong = sealed.open(keys=KEY_B)

    with pytest.raises(DecryptionError):
        asyncio.run(wrong.aappend_turns("s1", drafts([HumanMessage("late")]), user_id="ana"))

    assert sorted(sealed.raw_values(dumps=False)) == before
