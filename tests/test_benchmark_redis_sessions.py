"""A tiny smoke run of the many-sessions Redis benchmark (its figures come from `make bench`).

Needs the local Redis (127.0.0.1:6379); ``scripts/ensure-services.sh`` starts it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import redis

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

pytestmark = pytest.mark.integration


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # registered, so its worker function pickles by name for the spawned worker processes
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_synthetic_turns_are_varied_and_the_same_for_the_same_seed():
    bench = load("redis_sessions")
    assert bench.turn_texts(6, 3, 1) == bench.turn_texts(6, 3, 1)
    texts = {text for s in range(50) for t in range(2) for text in bench.turn_texts(6, s, t)}
    assert len(texts) >= 190


def test_the_redis_sessions_benchmark_serves_every_turn_from_one_and_two_workers(tmp_path):
    bench = load("redis_sessions")
    out = tmp_path / "redis_sessions.md"
    argv = ["--sessions", "8", "--turns-per-session", "2", "--workers", "1", "2"]
    assert bench.main([*argv, "--in-flight", "3", "--out", str(out)]) == 0
    figures = json.loads(out.with_suffix(".json").read_text())
    rows = figures["rows"]
    assert [row["workers"] for row in rows] == [1, 2]
    assert [row["torch_threads"] for row in rows] == ["default", 1]
    assert all(row["turns"] == 16 for row in rows)
    assert all(row["turns_per_s"] > 0 for row in rows)
    assert all(0 < row["build_p50_ms"] <= row["build_p95_ms"] for row in rows)
    assert all(0 < row["add_p50_ms"] <= row["add_p95_ms"] for row in rows)
    assert all(row["p95_ms"] >= row["build_p95_ms"] for row in rows)
    # each session's keys were in Redis (meta, turns, vectors), and a turn embeds about 2 texts
    assert all(row["redis_keys"] >= 3 * 8 for row in rows)
    assert all(row["redis_bytes_per_turn"] > 384 * 4 for row in rows)
    assert all(row["texts_embedded_per_turn"] >= 1.5 for row in rows)
    assert figures["machine"]["cpus"] >= 1
    assert figures["command"].startswith("python benchmarks/redis_sessions.py --sessions 8")
    assert "| 2 | 16 |" in out.read_text()
    assert out.with_suffix(".png").stat().st_size > 1000
    # benchmarks/report.py puts these figures in the headline of docs/benchmarks.md
    headline = "\n".join(load("report").headline(tmp_path))
    assert "8 sessions on Redis, concurrent" in headline
    assert "2w: " in headline
    # the run's keys are gone
    client = redis.Redis.from_url(bench.REDIS_URL)
    try:
        for row in rows:
            assert not list(client.scan_iter(match=f"{row['redis_prefix']}:*"))
    finally:
        client.close()
