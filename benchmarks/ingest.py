"""Bulk ingest throughput against the raw encoder (issue #6, item 3).

Embeds N synthetic messages with the default embeddings directly (the encoder's own
throughput, one thread), then stores the same N messages through ``HybridMemory.add_messages``
in chunks (store, index, fold the summary offline; the messages are embedded in batches by the
background thread) and ``flush()`` (what still waits is embedded: the timed part ends when every
message has its vector), and reports both rates and their ratio. Target: the memory keeps at
least 90% of the encoder's throughput.

Run from the repository root::

    .venv/bin/python benchmarks/ingest.py                 # 2,000 messages
    .venv/bin/python benchmarks/ingest.py --messages 200 --out /tmp/ingest.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.embeddings import DEFAULT_EMBEDDINGS, embeddings_named

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = ["my sister", "the new job", "our trip to Valencia", "the 10k race", "my old bike"]
VERBS = ["keeps reminding me of", "made me think about", "is all about", "changed how I see"]
OBJECTS = ["cooking on Sundays", "saving money", "learning Rust", "the garden", "early mornings"]


def synthetic(count: int) -> list[BaseMessage]:
    """Varied, distinct messages of chat length."""
    messages: list[BaseMessage] = []
    for i in range(count):
        text = (
            f"{SUBJECTS[i % 5].capitalize()} {VERBS[(i // 5) % 4]} {OBJECTS[(i // 20) % 5]}, "
            f"number {i}."
        )
        messages.append(HumanMessage(text) if i % 2 == 0 else AIMessage(text))
    return messages


def measure(count: int, chunk: int) -> dict[str, float]:
    """Messages per second: the raw encoder, and the memory's bulk add_messages."""
    embeddings = embeddings_named(DEFAULT_EMBEDDINGS)
    embeddings.embed_documents(["warm up"])
    messages = synthetic(count)
    texts = [m.text for m in messages]
    began = time.perf_counter()
    embeddings.embed_documents(texts)
    encoder = count / (time.perf_counter() - began)
    memory = HybridMemory(embeddings=embeddings)
    began = time.perf_counter()
    for first in range(0, count, chunk):
        memory.add_messages("ingest", messages[first : first + chunk])
    memory.flush()
    stored = count / (time.perf_counter() - began)
    ids, _ = memory.store.get_vectors("ingest")
    assert len(ids) == count, "every message has its vector"
    memory.close()
    return {
        "messages": count,
        "chunk": chunk,
        "encoder_per_s": encoder,
        "memory_per_s": stored,
        "ratio": stored / encoder,
    }


def write(result: dict[str, float], out: Path, command: str) -> None:
    """Markdown and JSON beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    out.write_text(
        "\n".join(
            [
                "# Bulk ingest against the raw encoder",
                "",
                "Written by `benchmarks/ingest.py`; do not edit by hand, run it again.",
                "",
                f"```bash\n{command}\n```",
                "",
                f"{result['messages']:,} synthetic messages; `add_messages` in chunks of "
                f"{result['chunk']} on `InMemoryStore` (stored, indexed, summary folded "
                "offline, embedded in batches by the background thread), then `flush()`; the "
                f"default embeddings (`{DEFAULT_EMBEDDINGS}`) on both sides. The memory embeds "
                "on up to two threads (its background lane, and `flush()`'s), the raw encoder "
                "on one.",
                "",
                "| raw encoder (msg/s) | HybridMemory.add_messages (msg/s) | ratio | target |",
                "| ---: | ---: | ---: | ---: |",
                f"| {result['encoder_per_s']:.0f} | {result['memory_per_s']:.0f} | "
                f"{result['ratio']:.0%} | >= 90% |",
                "",
                f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; run at "
                f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. The machine is shared: times are noisy.",
                "",
            ]
        ),
        encoding="utf-8",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "ingest.md")
    args = parser.parse_args(argv)
    result = measure(args.messages, args.chunk)
    print(
        f"encoder {result['encoder_per_s']:.0f} msg/s, memory {result['memory_per_s']:.0f} msg/s "
        f"({result['ratio']:.0%})"
    )
    command = "python benchmarks/ingest.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write(result, args.out, command.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
