"""Storage cost: bytes per stored turn in each persistent store, beside the raw text (issue #6, item 6).

Stores N synthetic turns, each with a 384-dimension float32 vector (random, so no model is
needed), in SQLite, Redis and PostgreSQL, then measures what the store holds: the SQLite file
after a WAL checkpoint, Redis ``MEMORY USAGE`` of every key under the store's prefix, and
PostgreSQL's ``pg_total_relation_size`` of the store's tables. Needs the local Redis
(127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, database ``test``); ``make bench`` starts them.

Run from the repository root::

    .venv/bin/python benchmarks/bytes_per_turn.py                  # 1,000 turns
    .venv/bin/python benchmarks/bytes_per_turn.py --turns 100 --out /tmp/bytes.md
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory.stores import PostgresStore, RedisStore, SQLiteStore
from langchain_hybrid_memory.types import TurnDraft

if TYPE_CHECKING:
    from langchain_hybrid_memory.stores.base import MemoryStore

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def texts(count: int) -> list[str]:
    """Chat-length texts of varied length."""
    base = "We talked about the trip, the garden and the new job, and what to cook on Sunday"
    return [f"Turn {i}: " + base[: 30 + (i * 37) % len(base)] + "." for i in range(count)]


def fill(store: MemoryStore, count: int) -> int:
    """Store ``count`` turns with vectors; return the raw UTF-8 bytes of their texts."""
    rng = np.random.default_rng(3)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    contents = texts(count)
    drafts = [
        TurnDraft(
            HumanMessage(text) if i % 2 == 0 else AIMessage(text),
            text,
            start + timedelta(minutes=i),
        )
        for i, text in enumerate(contents)
    ]
    turns = store.append_turns("bytes", drafts, user_id="bench").turns
    vectors = rng.standard_normal((count, 384)).astype(np.float32)
    store.put_vectors("bytes", [t.id for t in turns], vectors)
    return sum(len(text.encode("utf-8")) for text in contents)


def sqlite_bytes(count: int) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bytes.db"
        store = SQLiteStore(path)
        empty = _checkpointed_size(path)
        raw = fill(store, count)
        store.close()
        return _checkpointed_size(path) - empty, raw


def _checkpointed_size(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def redis_bytes(count: int) -> tuple[int, int]:
    import redis

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL)
    store = RedisStore(REDIS_URL, prefix=prefix)
    try:
        raw = fill(store, count)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        used = sum(int(client.memory_usage(key) or 0) for key in keys)
        return used, raw
    finally:
        store.delete_user("bench")
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        store.close()


def postgres_bytes(count: int) -> tuple[int, int]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(POSTGRES_URL, schema=schema)
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            empty = _schema_size(connection, schema)
            raw = fill(store, count)
            connection.execute("VACUUM ANALYZE")
            return _schema_size(connection, schema) - empty, raw
    finally:
        store.close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _schema_size(connection: object, schema: str) -> int:
    row = connection.execute(  # type: ignore[attr-defined]
        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
        (schema,),
    ).fetchone()
    return int(row[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks" / "bytes_per_turn.md"
    )
    args = parser.parse_args(argv)
    rows = []
    for name, measure in (
        ("SQLite", sqlite_bytes),
        ("Redis", redis_bytes),
        ("PostgreSQL", postgres_bytes),
    ):
        used, raw = measure(args.turns)
        row = {
            "store": name,
            "bytes_per_turn": used / args.turns,
            "raw_text_bytes_per_turn": raw / args.turns,
            "vector_bytes_per_turn": 384 * 4,
        }
        rows.append(row)
        print(
            f"{name:>10}: {row['bytes_per_turn']:.0f} bytes/turn (text {row['raw_text_bytes_per_turn']:.0f})"
        )
    command = "python benchmarks/bytes_per_turn.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    lines = [
        "# Bytes per stored turn",
        "",
        "Written by `benchmarks/bytes_per_turn.py`; do not edit by hand, run it again.",
        "",
        f"```bash\n{command.strip()}\n```",
        "",
        f"{args.turns:,} turns, each a message (LangChain's `messages_to_dict` JSON with its time) "
        "and one 384-dimension float32 vector (1,536 bytes), no encryption.",
        "",
        "| store | bytes per turn | raw text per turn | of which the vector |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['store']} | {row['bytes_per_turn']:,.0f} | "
            f"{row['raw_text_bytes_per_turn']:,.0f} | {row['vector_bytes_per_turn']:,} |"
        )
    lines += ["", f"Run at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.", ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
