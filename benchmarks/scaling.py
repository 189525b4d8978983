"""How build_context latency grows with the number of stored turns in one session (issue #6, item 2).

Fills one session with N synthetic turns and random unit vectors (no embedding needed to fill),
then times ``build_context`` for fresh queries: once with the query embedding (the default
embeddings) and once more with the query vector cached, which is the memory's own overhead.
Writes a Markdown table, JSON figures and a PNG plot.

Run from the repository root::

    .venv/bin/python benchmarks/scaling.py                       # 100, 1k, 10k, 100k turns
    .venv/bin/python benchmarks/scaling.py --sizes 100 1000 --queries 5 --out /tmp/scaling.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.stores import InMemoryStore
from langchain_hybrid_memory.types import TurnDraft

ROOT = Path(__file__).resolve().parents[1]
WORDS = [
    "garden",
    "coffee",
    "train",
    "museum",
    "recipe",
    "budget",
    "bicycle",
    "guitar",
    "marathon",
    "sister",
    "holiday",
    "apartment",
    "doctor",
    "invoice",
    "kitten",
    "library",
    "concert",
    "printer",
    "passport",
    "ferry",
]
TOPICS = ["a pottery class", "the new job", "a trip to Valencia", "the 10k race", "a broken bike"]


def fill(store: InMemoryStore, session: str, turns: int, dimension: int, seed: int = 7) -> None:
    """Store ``turns`` synthetic turns with random unit vectors, without any model."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    chunk = 5000
    for first in range(0, turns, chunk):
        drafts = []
        for i in range(first, min(turns, first + chunk)):
            text = (
                f"Turn {i}: talking about {TOPICS[i % len(TOPICS)]}, the {WORDS[i % len(WORDS)]} "
                f"and the {WORDS[(i * 7) % len(WORDS)]} again."
            )
            message = HumanMessage(text) if i % 2 == 0 else AIMessage(text)
            drafts.append(TurnDraft(message, text, start + timedelta(minutes=i)))
        stored = store.append_turns(session, drafts).turns
        vectors = rng.standard_normal((len(stored), dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.put_vectors(session, [t.id for t in stored], vectors)


def measure(turns: int, queries: int) -> dict[str, float]:
    """Median and p95 build_context latency with and without embedding the query."""
    store = InMemoryStore()
    fill(store, "s", turns, dimension=384)
    memory = HybridMemory(store=store, embedding_cache_size=4 * queries)
    began = time.perf_counter()
    memory.build_context("s", "warm up")  # this process loads the session's index once
    load_ms = (time.perf_counter() - began) * 1000
    with_embedding, overhead = [], []
    for q in range(queries):
        query = (  # new to the process's embedding cache, whatever ran before
            f"What did I say about the {WORDS[q % len(WORDS)]} and {TOPICS[q % len(TOPICS)]}? "
            f"({turns}, {q})"
        )
        began = time.perf_counter()
        memory.build_context("s", query)
        with_embedding.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        memory.build_context("s", query)  # the query vector is cached now
        overhead.append((time.perf_counter() - began) * 1000)
    return {
        "turns": turns,
        "load_ms": load_ms,
        "p50_ms": statistics.median(with_embedding),
        "p95_ms": _p95(with_embedding),
        "overhead_p50_ms": statistics.median(overhead),
        "overhead_p95_ms": _p95(overhead),
    }


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def write(results: list[dict[str, float]], out: Path, command: str) -> None:
    """Markdown table, JSON figures and a PNG plot next to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# build_context latency against session length",
        "",
        "Written by `benchmarks/scaling.py`; do not edit by hand, run it again.",
        "",
        f"```bash\n{command}\n```",
        "",
        "One session of N synthetic turns with random unit vectors (384 dimensions), "
        "`InMemoryStore`, default settings. *With embedding*: a fresh query, embedded by the "
        "default embeddings (all-MiniLM-L6-v2, int8, ONNX Runtime). *Memory overhead*: the same query again, its vector cached: window read, "
        "FAISS + BM25 recall, entities, summary and budget. Load: the first access of the session "
        "in a process (index rebuilt from stored vectors, no embedding).",
        "",
        "| turns | with embedding p50 / p95 (ms) | memory overhead p50 / p95 (ms) | first load (ms) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for row in results:
        lines.append(
            f"| {row['turns']:,} | {row['p50_ms']:.1f} / {row['p95_ms']:.1f} | "
            f"{row['overhead_p50_ms']:.2f} / {row['overhead_p95_ms']:.2f} | {row['load_ms']:.0f} |"
        )
    lines += [
        "",
        "Target (issue #12): at 10,000 turns, at most 3 ms above the query embedding (p50).",
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}; "
        f"run at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. The machine is shared: times are noisy.",
        "",
        f"![build_context latency]({out.with_suffix('.png').name})",
        "",
    ]
    out.write_text("\n".join(lines), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4))
    sizes = [row["turns"] for row in results]
    axis.plot(sizes, [row["p50_ms"] for row in results], marker="o", label="with query embedding")
    axis.plot(
        sizes, [row["overhead_p50_ms"] for row in results], marker="o", label="memory overhead"
    )
    axis.set_xscale("log")
    axis.set_xlabel("stored turns in the session")
    axis.set_ylabel("build_context p50 (ms)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "scaling.md")
    args = parser.parse_args(argv)
    results = []
    for size in args.sizes:
        row = measure(size, args.queries)
        results.append(row)
        print(
            f"{size:>7} turns: {row['p50_ms']:6.1f} ms with embedding, "
            f"{row['overhead_p50_ms']:6.2f} ms overhead (p50), load {row['load_ms']:.0f} ms"
        )
    command = "python benchmarks/scaling.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write(results, args.out, command.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
