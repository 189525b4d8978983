"""A tiny smoke run of the serving benchmark (its figures come from `make bench`).

Needs the local Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432);
``scripts/ensure-services.sh`` starts them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

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
    bench = load("serving")
    assert bench.turn_texts(6, 3, 1) == bench.turn_texts(6, 3, 1)
    texts = {text for s in range(50) for t in range(2) for text in bench.turn_texts(6, s, t)}
    assert len(texts) >= 190


def test_the_serving_benchmark_serves_every_turn_on_both_stores_from_one_and_two_workers(
    tmp_path,
):
    bench = load("serving")
    out = tmp_path / "serving.md"
    argv = ["--sessions", "8", "--turns-per-session", "2", "--workers", "1", "2"]
    assert bench.main([*argv, "--in-flight", "3", "--out", str(out)]) == 0
    figures = json.loads(out.with_suffix(".json").read_text())
    rows = figures["rows"]
    assert [(row["store"], row["workers"]) for row in rows] == [
        ("redis", 1),
        ("redis", 2),
        ("postgres", 1),
        ("postgres", 2),
    ]
    assert all(row["turns"] == 16 for row in rows)
    assert all(row["turns_per_s"] > 0 for row in rows)
    assert all(0 < row["build_p50_ms"] <= row["build_p95_ms"] for row in rows)
    assert all(0 < row["add_p50_ms"] <= row["add_p95_ms"] for row in rows)
    assert all(row["p95_ms"] >= row["build_p95_ms"] for row in rows)
    # every text of every turn was embedded once: the message (as the query) and the reply
    assert all(row["texts_embedded_per_turn"] == 2 for row in rows)
    assert all(row["texts_per_model_call"] >= 1 for row in rows)
    assert figures["raw_texts_per_s"] > 0
    assert all(
        row["ratio"] == pytest.approx(row["turns_per_s"] * 2 / figures["raw_texts_per_s"])
        for row in rows
    )
    assert figures["command"].startswith("python benchmarks/serving.py --sessions 8")
    assert "| postgres | 2 | 16 |" in out.read_text()
    assert out.with_suffix(".png").stat().st_size > 1000
    # benchmarks/report.py puts these figures in the headline of docs/benchmarks.md
    headline = "\n".join(load("report").headline(tmp_path))
    assert "8 sessions, one event loop on Redis" in headline
    # the run's keys and schemas are gone
    for row in rows:
        assert bench.leftovers(row["store"], row["namespace"]) == 0
