"""Opening stores: URLs, clear errors at construction, lazy imports naming their extra."""

from __future__ import annotations

import importlib
import sqlite3
import sys
import uuid

import psycopg
import pytest
import redis

from langchain_hybrid_memory import stores
from langchain_hybrid_memory.errors import ConfigError, MissingDependencyError, StoreError
from langchain_hybrid_memory.stores import (
    InMemoryStore,
    PostgresStore,
    RedisStore,
    SQLiteStore,
    open_store,
)
from tests.integration.backends import POSTGRES_URL, REDIS_URL

SECRET = "hunter2-secret"


def test_sqlite_urls_take_relative_and_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///relative.db")
    absolute = open_store(f"sqlite:///{tmp_path / 'absolute.db'}", ttl_seconds=60)

    assert isinstance(relative, SQLiteStore)
    assert (tmp_path / "relative.db").exists()
    assert str(tmp_path).startswith("/")
    assert absolute.path == str(tmp_path / "absolute.db")
    assert absolute.ttl_seconds == 60.0
    relative.close()
    absolute.close()


def test_memory_redis_and_postgres_urls_open_their_stores():
    assert isinstance(open_store(None), InMemoryStore)
    assert isinstance(open_store("memory://", ttl_seconds=5), InMemoryStore)
    redis_store = open_store(REDIS_URL, ttl_seconds=5)
    assert isinstance(redis_store, RedisStore)
    assert redis_store.ttl_seconds == 5.0
    redis_store.close()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        existed = connection.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = 'hybrid_memory'"
        ).fetchone()
    try:
        for url in (POSTGRES_URL, POSTGRES_URL.replace("postgresql://", "postgres://", 1)):
            postgres_store = open_store(url)
            assert isinstance(postgres_store, PostgresStore)
            assert postgres_store.schema == "hybrid_memory"
            postgres_store.close()
    finally:
        if not existed:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
                connection.execute("DROP SCHEMA IF EXISTS hybrid_memory CASCADE")


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://bot:{SECRET}@db/memory",
        f"bot:{SECRET}@db/memory",
        f"sqlite://{SECRET}",
        "sqlite:///",
    ],
)
def test_an_unusable_url_is_refused_without_showing_it(url):
    with pytest.raises(StoreError) as failure:
        open_store(url)

    assert SECRET not in str(failure.value)
    assert "sqlite:///" in str(failure.value)  # it says what is supported


@pytest.mark.parametrize(
    ("url", "store_name"),
    [
        (f"redis://:{SECRET}@127.0.0.1:1/0", "redis"),
        (f"rediss://:{SECRET}@127.0.0.1:1/0", "redis"),
        ("redis+cluster://127.0.0.1:1", "redis"),
        (f"postgresql://postgres:{SECRET}@127.0.0.1:1/test", "postgres"),
    ],
)
def test_a_server_refusing_connections_fails_at_construction_naming_store_and_cause(
    url, store_name
):
    with pytest.raises(StoreError) as failure:
        open_store(url)

    message = str(failure.value)
    assert message.startswith(f"{store_name} store:")
    assert "Error" in message  # the driver's error, by name and message
    # not chained: a driver's message may quote the URL, and a traceback shows the chain
    assert failure.value.__cause__ is None
    assert failure.value.__context__ is None
    assert SECRET not in message


def test_a_cluster_url_pointing_at_a_plain_redis_is_refused():
    with pytest.raises(StoreError, match="redis store"):
        open_store(REDIS_URL.replace("redis://", "redis+cluster://", 1).rsplit("/", 1)[0])


def test_a_sqlite_file_that_cannot_be_opened_fails_at_construction(tmp_path):
    with pytest.raises(StoreError, match="sqlite store: cannot open") as missing_folder:
        SQLiteStore(tmp_path / "no-such-folder" / "memory.db")
    assert isinstance(missing_folder.value.__cause__, sqlite3.Error)

    not_a_database = tmp_path / "notes.db"
    not_a_database.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(StoreError, match="sqlite store: cannot open"):
        SQLiteStore(not_a_database)


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "memory.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(path)

    schema = f"hmtest_{uuid.uuid4().hex[:12]}"
    try:
        PostgresStore(POSTGRES_URL, schema=schema).close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"INSERT INTO {schema}.schema_version VALUES (99)")
        with pytest.raises(StoreError, match="newer"):
            PostgresStore(POSTGRES_URL, schema=schema)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_opening_an_existing_store_again_keeps_its_data(tmp_path):
    schema = f"hmtest_{uuid.uuid4().hex[:12]}"
    try:
        first = PostgresStore(POSTGRES_URL, schema=schema)
        first.append_turns("s1", [], user_id="ana")
        first.close()
        again = PostgresStore(POSTGRES_URL, schema=schema)
        assert again.list_sessions("ana") == ["s1"]
        again.close()
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_bad_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        SQLiteStore(tmp_path / "a.db", ttl_seconds=0)
    with pytest.raises(ConfigError):
        InMemoryStore(ttl_seconds=float("inf"))
    with pytest.raises(ConfigError, match="prefix"):
        RedisStore(REDIS_URL, prefix="{app}")
    decoding = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    with pytest.raises(ConfigError, match="decode_responses"):
        RedisStore(decoding)
    decoding.close()
    with pytest.raises(ConfigError, match="schema"):
        PostgresStore(POSTGRES_URL, schema='x"; DROP SCHEMA public; --')


@pytest.mark.parametrize(
    ("name", "package", "extra"),
    [("RedisStore", "redis", "redis"), ("PostgresStore", "psycopg", "postgres")],
)
def test_a_store_whose_extra_is_missing_names_the_extra(monkeypatch, name, package, extra):
    module = f"langchain_hybrid_memory.stores.{extra}"
    monkeypatch.setitem(sys.modules, package, None)  # makes `import <package>` fail
    monkeypatch.delitem(sys.modules, module)

    with pytest.raises(MissingDependencyError, match=rf"langchain-hybrid-memory\[{extra}\]"):
        getattr(stores, name)
    with pytest.raises(ImportError):
        importlib.import_module(module)


def test_stores_are_exported_lazily():
    assert stores.SQLiteStore is SQLiteStore
    assert "RedisStore" in dir(stores)
    with pytest.raises(AttributeError):
        stores.NoSuchStore  # noqa: B018
