"""Many sessions on Redis: turns per second and turn latency from 1 to 4 worker processes (issue #6, item 4).

Each worker process opens its own ``HybridMemory`` on the local Redis (127.0.0.1:6379, a key
prefix unique to the run), loads the local all-MiniLM-L6-v2 once, and serves its share of the
sessions from one asyncio event loop: every session is a coroutine doing its turns one after the
other, all sessions at once, with at most ``--in-flight`` turns inside the engine at a time per
process (the others wait their turn, as behind a server's worker pool). A turn is what a chat
server does for one user message: ``abuild_context`` for the user's text, then ``aadd_messages``
with the user message and the reply (a canned reply, no LLM; the default offline summarizer).
The workers start together after a barrier, so loading the model is not timed. Every key of the
run is deleted at the end. ``make bench`` starts Redis.

Run from the repository root::

    .venv/bin/python benchmarks/redis_sessions.py          # 1,000 sessions x 2 turns, 1-4 workers
    .venv/bin/python benchmarks/redis_sessions.py --sessions 40 --workers 1 2 --out /tmp/rs.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import queue
import random
import statistics
import sys
import threading
import time
import uuid
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.embeddings import LocalMiniLMEmbeddings
from langchain_hybrid_memory.stores import RedisStore

if TYPE_CHECKING:
    from collections.abc import Iterator
    from multiprocessing.synchronize import Barrier

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/0"
#: Seconds a run may take before the benchmark gives up on its workers.
TIMEOUT_SECONDS = 1800.0
OPENERS = ["By the way,", "Quick question:", "So,", "Honestly,", "Remember that", "Today"]
SUBJECTS = ["my sister", "the new job", "our trip to Valencia", "the 10k race", "my old bike"]
SUBJECTS += ["the landlord", "my doctor", "the pottery class", "our cat Miso", "the budget"]
VERBS = ["keeps reminding me of", "made me think about", "is all about", "changed how I see"]
VERBS += ["has nothing to do with", "got me worried about"]
OBJECTS = ["cooking on Sundays", "saving money", "learning Rust", "the garden", "early mornings"]
OBJECTS += ["the flight to Lisbon", "my knee", "the invoice from March", "a new guitar"]
REPLIES = ["Got it.", "That makes sense.", "Noted, I'll keep it in mind.", "Tell me more."]
REPLIES += ["Good to know.", "I remember you mentioned that."]


def turn_texts(seed: int, session: int, turn: int) -> tuple[str, str]:
    """The user's text and the reply of one turn: short, varied, the same for the same seed."""
    rng = random.Random(f"{seed}:{session}:{turn}")
    user = (
        f"{rng.choice(OPENERS)} {rng.choice(SUBJECTS)} {rng.choice(VERBS)} "
        f"{rng.choice(OBJECTS)} ({rng.randint(1, 999)})."
    )
    subject = rng.choice(SUBJECTS)
    reply = (
        f"{rng.choice(REPLIES)} {subject[0].upper()}{subject[1:]}, number {rng.randint(1, 999)}."
    )
    return user, reply


class CountingEmbeddings(Embeddings):
    """Delegates to the local MiniLM, counting model calls, the texts embedded and the time."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.calls = 0
        self.texts = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def _count(self, texts: int, began: float) -> None:
        with self._lock:
            self.calls += 1
            self.texts += texts
            self.seconds += time.perf_counter() - began

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed a batch of texts."""
        began = time.perf_counter()
        vectors = self.inner.embed_documents(texts)
        self._count(len(texts), began)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed one query text."""
        began = time.perf_counter()
        vector = self.inner.embed_query(text)
        self._count(1, began)
        return vector


def worker(
    number: int,
    sessions: list[int],
    settings: dict[str, Any],
    barrier: Barrier,
    results: multiprocessing.Queue[dict[str, Any]],
) -> None:
    """One worker process: load the model, wait for the others, serve its sessions, report."""
    try:
        results.put(asyncio.run(_serve(number, sessions, settings, barrier)))
    except BaseException as exc:
        barrier.abort()  # the other workers must not wait for this one
        results.put({"worker": number, "error": f"{type(exc).__name__}: {exc}"})
        raise


async def _serve(
    number: int, sessions: list[int], settings: dict[str, Any], barrier: Barrier
) -> dict[str, Any]:
    if settings["torch_threads"]:
        import torch

        torch.set_num_threads(settings["torch_threads"])
    embeddings = CountingEmbeddings(LocalMiniLMEmbeddings())
    memory = HybridMemory(
        store=RedisStore(REDIS_URL, prefix=settings["prefix"]),
        embeddings=embeddings,
        index_cache_size=settings["index_cache_size"],
        embedding_cache_size=settings["embedding_cache_size"],
    )
    # Warm up (not timed): the model, the executor's threads and the store's scripts; the
    # warm-up session is erased again, so Redis holds only the measured sessions.
    user, reply = turn_texts(settings["seed"], -1 - number, 0)
    await memory.abuild_context(f"warmup-{number}", user)
    await memory.aadd_messages(f"warmup-{number}", [HumanMessage(user), AIMessage(reply)])
    await memory.aforget_session(f"warmup-{number}")
    before = (embeddings.calls, embeddings.texts, embeddings.seconds)
    await asyncio.to_thread(barrier.wait, TIMEOUT_SECONDS)
    gate = asyncio.Semaphore(settings["in_flight"] or len(sessions) or 1)
    timings: dict[str, list[float]] = {"turn": [], "build": [], "add": [], "waited": []}

    async def session(index: int) -> None:
        session_id = f"user-{index:05d}"
        for turn in range(settings["turns_per_session"]):
            user, reply = turn_texts(settings["seed"], index, turn)
            arrived = time.perf_counter()
            async with gate:
                began = time.perf_counter()
                await memory.abuild_context(session_id, user)
                built = time.perf_counter()
                await memory.aadd_messages(session_id, [HumanMessage(user), AIMessage(reply)])
                done = time.perf_counter()
            timings["waited"].append((began - arrived) * 1000)
            timings["build"].append((built - began) * 1000)
            timings["add"].append((done - built) * 1000)
            timings["turn"].append((done - began) * 1000)

    started = time.time()
    await asyncio.gather(*(session(index) for index in sessions))
    began = time.perf_counter()
    await memory.aflush()  # timed too: texts still waiting for a vector are embedded here
    flush_ms = (time.perf_counter() - began) * 1000
    finished = time.time()
    await memory.aclose()
    return {
        "worker": number,
        "started": started,
        "finished": finished,
        "embedding_calls": embeddings.calls - before[0],
        "texts_embedded": embeddings.texts - before[1],
        "embed_seconds": embeddings.seconds - before[2],
        "flush_ms": flush_ms,
        **timings,
    }


def run(workers: int, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Start ``workers`` spawned processes, each with its share of the sessions; their reports."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    results: multiprocessing.Queue[dict[str, Any]] = context.Queue()
    shares = [list(range(w, settings["sessions"], workers)) for w in range(workers)]
    processes = [
        context.Process(
            target=worker,
            args=(w, shares[w], settings, barrier, results),
            name=f"redis-sessions-{w}",
        )
        for w in range(workers)
    ]
    reports: list[dict[str, Any]] = []
    deadline = time.monotonic() + TIMEOUT_SECONDS
    with _importable_here():
        for process in processes:
            process.start()
    try:
        while len(reports) < workers:
            try:
                report = results.get(timeout=1.0)
            except queue.Empty:
                dead = [p.name for p in processes if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    msg = f"worker(s) {dead or 'timed out'} stopped without a report"
                    raise RuntimeError(msg) from None
                continue
            if "error" in report:
                msg = f"worker {report['worker']} failed: {report['error']}"
                raise RuntimeError(msg)
            reports.append(report)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()
    return sorted(reports, key=lambda report: report["worker"])


@contextmanager
def _importable_here() -> Iterator[None]:
    """Let spawned children import this file as a module (they get the parent's ``sys.path``).

    Run as a script, the children re-run it as ``__mp_main__``; imported as a module (a test
    loads it by its file's name into ``sys.modules``), they import it by that name from here.
    """
    folder = str(Path(__file__).resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added:
            with suppress(ValueError):
                sys.path.remove(folder)


def redis_usage_and_cleanup(prefix: str) -> tuple[int, int]:
    """Bytes (``MEMORY USAGE``) and count of the keys under ``prefix``, then delete them."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        used = 0
        for first in range(0, len(keys), 500):
            pipe = client.pipeline(transaction=False)
            for key in keys[first : first + 500]:
                pipe.memory_usage(key)
            used += sum(int(size or 0) for size in pipe.execute())
        return used, len(keys)
    finally:
        delete_keys(client, prefix)
        client.close()


def delete_keys(client: Any, prefix: str) -> None:
    """Delete every key under ``prefix`` (the run's sessions and its key check)."""
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered), round(share * len(ordered))) - 1)]


def summarize(workers: int, reports: list[dict[str, Any]], settings: dict[str, Any]) -> dict:
    """One table row from the workers' reports."""
    merged = {name: [v for r in reports for v in r[name]] for name in ("turn", "build", "add")}
    waited = [v for r in reports for v in r["waited"]]
    turns = len(merged["turn"])
    wall = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    row: dict[str, Any] = {
        "workers": workers,
        "torch_threads": settings["torch_threads"] or "default",
        "sessions": settings["sessions"],
        "turns": turns,
        "wall_s": wall,
        "turns_per_s": turns / wall,
        "texts_embedded_per_turn": sum(r["texts_embedded"] for r in reports) / turns,
        "embedding_calls_per_turn": sum(r["embedding_calls"] for r in reports) / turns,
        "embed_ms_per_turn": sum(r["embed_seconds"] for r in reports) * 1000 / turns,
        "waited_p95_ms": percentile(waited, 0.95),
        "flush_ms": max(r["flush_ms"] for r in reports),
    }
    for name, values in merged.items():
        key = "" if name == "turn" else f"{name}_"  # a whole turn: p50_ms, p95_ms
        row[f"{key}p50_ms"] = statistics.median(values)
        row[f"{key}p95_ms"] = percentile(values, 0.95)
    return row


def measure(workers: int, args: argparse.Namespace, run_id: str) -> dict[str, Any]:
    """Serve every session with ``workers`` processes on a fresh prefix; the figures."""
    prefix = f"bench-{run_id}-w{workers}"
    settings = {
        "prefix": prefix,
        "sessions": args.sessions,
        "turns_per_session": args.turns_per_session,
        "in_flight": args.in_flight,
        "seed": args.seed,
        "torch_threads": args.torch_threads if args.torch_threads is not None else int(workers > 1),
        "index_cache_size": args.index_cache_size,
        "embedding_cache_size": args.embedding_cache_size,
    }
    load_average = os.getloadavg()[0]
    try:
        reports = run(workers, settings)
    finally:
        used, keys = redis_usage_and_cleanup(prefix)
    row = summarize(workers, reports, settings)
    row["load_average"] = load_average
    row["redis_prefix"] = prefix
    row["redis_keys"] = keys
    row["redis_bytes"] = used
    row["redis_bytes_per_turn"] = used / row["turns"]
    return row


def engine_version() -> str:
    """The commit measured, with ``+changes`` when the engine's files differ from it."""
    import subprocess

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "langchain_hybrid_memory"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+changes" if changed else commit


def write(rows: list[dict[str, Any]], args: argparse.Namespace, command: str) -> None:
    """Markdown table, JSON (figures, command and machine) and a PNG plot next to ``args.out``."""
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "engine": engine_version(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "run_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    }
    settings = {
        "sessions": args.sessions,
        "turns_per_session": args.turns_per_session,
        "in_flight": args.in_flight,
        "index_cache_size": args.index_cache_size,
        "embedding_cache_size": args.embedding_cache_size,
        "torch_threads": args.torch_threads,
        "seed": args.seed,
    }
    figures = {
        "command": command,
        "machine": machine,
        "sessions": args.sessions,
        "settings": settings,
        "rows": rows,
    }
    out.with_suffix(".json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    in_flight = args.in_flight or "every session"
    loads = ", ".join(f"{row['load_average']:.1f}" for row in rows)
    lines = [
        "# Many sessions on Redis: 1 to 4 worker processes",
        "",
        "Written by `benchmarks/redis_sessions.py`; do not edit by hand, run it again.",
        "",
        f"```bash\n{command}\n```",
        "",
        f"{args.sessions:,} sessions of {args.turns_per_session} turn(s) each on the local Redis, "
        "shared out among the worker processes (spawned). Each process serves its sessions from "
        f"one asyncio event loop, all at once, {in_flight} turn(s) inside the engine at a time "
        "per process. A turn: `abuild_context` for the user's text, then `aadd_messages` with "
        "the user message and a canned reply (local all-MiniLM-L6-v2 embeddings, no LLM, "
        f"offline summarizer; `index_cache_size={args.index_cache_size}`, "
        f"`embedding_cache_size={args.embedding_cache_size}`). Latencies are of one call, from "
        "the moment the turn is let in (waited: before that, for the other sessions' turns). "
        "The wall time runs from the start barrier to the last process's final `aflush()` "
        "(texts still waiting for a vector are embedded there); model loading is not timed. "
        f"Engine: `{machine['engine']}`.",
        "",
        "| workers | turns | wall (s) | of which final flush (s) | turns/s | turn p50 / p95 (ms) "
        "| build_context p50 / p95 | add p50 / p95 | waited p95 (ms) | texts embedded per turn "
        "| Redis bytes per turn |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['workers']} | {row['turns']:,} | {row['wall_s']:.1f} | "
            f"{row['flush_ms'] / 1000:.1f} | {row['turns_per_s']:.1f} | "
            f"{row['p50_ms']:.0f} / {row['p95_ms']:.0f} | "
            f"{row['build_p50_ms']:.0f} / {row['build_p95_ms']:.0f} | "
            f"{row['add_p50_ms']:.0f} / {row['add_p95_ms']:.0f} | {row['waited_p95_ms']:.0f} | "
            f"{row['texts_embedded_per_turn']:.2f} | {row['redis_bytes_per_turn']:,.0f} |"
        )
    lines += [
        "",
        f"Machine: {os.cpu_count()} CPUs (`os.cpu_count()`), Python {platform.python_version()}, "
        f"{platform.platform()}; run at {machine['run_at']}. The machine is shared: times are "
        f"noisy (load average before each row: {loads}). Redis runs on the same "
        "machine and takes its share of the CPUs.",
        "",
        "The embedding (MiniLM on the CPU, a few short texts per model call) is the expected "
        "bottleneck: each turn has two new texts, the user's and the reply, so about 2 texts "
        "embedded per turn is the least; more means a text was embedded twice (e.g. the "
        "query's vector left the embedding cache before the user message was embedded). "
        f"{_threads_note(args.torch_threads)} Beyond the number of cores, more processes "
        "cannot add throughput; they only share the same cores. Inside a process the engine's async methods run in asyncio's "
        f"default executor (min(32, CPUs + 4) = {min(32, (os.cpu_count() or 1) + 4)} threads).",
        "",
        f"![turns/s and p95 against worker processes]({out.with_suffix('.png').name})",
        "",
    ]
    out.write_text("\n".join(lines), encoding="utf-8")
    plot(rows, out.with_suffix(".png"))


def _threads_note(threads: int | None) -> str:
    if threads is None:
        return (
            "With one process torch keeps its default threads; with more, each process is set "
            "to one thread (`torch.set_num_threads(1)`) so the processes do not fight over the "
            "cores."
        )
    return f"Each process is set to {threads} torch thread(s) (`torch.set_num_threads`)."


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Turns per second and p95 turn latency against the number of worker processes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workers = [row["workers"] for row in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.5))
    left.plot(workers, [row["turns_per_s"] for row in rows], marker="o")
    left.set_xlabel("worker processes")
    left.set_ylabel("turns/s")
    left.set_xticks(workers)
    left.set_ylim(bottom=0)
    right.plot(workers, [row["p95_ms"] for row in rows], marker="o", label="turn")
    right.plot(workers, [row["build_p95_ms"] for row in rows], marker="o", label="build_context")
    right.plot(workers, [row["add_p95_ms"] for row in rows], marker="o", label="add")
    right.set_xlabel("worker processes")
    right.set_ylabel("p95 (ms)")
    right.set_xticks(workers)
    right.set_ylim(bottom=0)
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--turns-per-session", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument(
        "--in-flight", type=int, default=8, help="turns inside the engine at once per process"
    )
    parser.add_argument("--index-cache-size", type=int, default=1000)
    parser.add_argument("--embedding-cache-size", type=int, default=64)
    parser.add_argument(
        "--torch-threads",
        type=int,
        help="torch threads per process (default: torch's own with 1 process, 1 with more)",
    )
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks" / "redis_sessions.md"
    )
    args = parser.parse_args(argv)
    run_id = uuid.uuid4().hex[:8]
    rows = []
    for workers in args.workers:
        row = measure(workers, args, run_id)
        rows.append(row)
        print(
            f"{workers} worker(s): {row['turns']} turns in {row['wall_s']:.1f} s, "
            f"{row['turns_per_s']:.1f} turns/s, turn p50 {row['p50_ms']:.0f} ms, "
            f"p95 {row['p95_ms']:.0f} ms, {row['texts_embedded_per_turn']:.2f} texts "
            "embedded per turn",
            flush=True,
        )
    command = "python benchmarks/redis_sessions.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    write(rows, args, command.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
