"""A tiny smoke run of each benchmark script: they stay runnable (figures come from `make bench`)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_scaling_benchmark_writes_its_table_figures_and_plot(tmp_path):
    scaling = load("scaling")
    out = tmp_path / "scaling.md"
    assert scaling.main(["--sizes", "50", "200", "--queries", "2", "--out", str(out)]) == 0
    figures = json.loads(out.with_suffix(".json").read_text())
    assert [row["turns"] for row in figures] == [50, 200]
    assert all(row["overhead_p50_ms"] > 0 for row in figures)
    assert "| 200 |" in out.read_text()
    assert out.with_suffix(".png").stat().st_size > 1000
