"""Serving many conversations at once on Redis and PostgreSQL, against the embedder's own speed (issue #12, item 4).

A chat server's view of the engine. Each worker process (spawned; one per core is the
intended deployment) opens its own ``HybridMemory`` with the default settings and embeddings on
a shared store, and serves its share of the sessions from one asyncio event loop: every
session is a coroutine doing its turns one after the other, all sessions at once, at most
``--in-flight`` turns inside the engine at a time per process (the others wait, as behind a
server's request limit). A turn is what a chat server does for one user message:
``abuild_context`` for the user's text, then ``aadd_messages`` with the message and a canned
reply (no LLM; the offline summarizer). The workers start together after a barrier, so loading
the model is not timed; the wall time ends with each worker's final ``aflush()``, which embeds
whatever still waits, so background work is counted.

The embedder's raw throughput is measured in the same run, before and after the serving runs:
the default embeddings alone, embedding the run's own texts in calls of 64 on one thread. The
ratio *turns/s x 2 / raw texts/s* says how much of the embedder's speed reaches the turns (a
turn brings two new texts). ``make bench`` starts Redis and PostgreSQL; every key and schema of
the run is deleted at the end.

Run from the repository root::

    .venv/bin/python benchmarks/serving.py          # 1,000 sessions x 3 turns, 1-2 workers, both stores
    .venv/bin/python benchmarks/serving.py --sessions 40 --stores redis --workers 1 --out /tmp/s.md
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
from langchain_hybrid_memory.embeddings import DEFAULT_EMBEDDINGS, embeddings_named

if TYPE_CHECKING:
    from collections.abc import Iterator
    from multiprocessing.synchronize import Barrier

    import numpy as np

    from langchain_hybrid_memory.stores import MemoryStore

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
STORES = ("redis", "postgres")
#: Seconds a run may take before the benchmark gives up on its workers.
TIMEOUT_SECONDS = 1800.0
#: Texts per call when the raw embedder is measured.
RAW_BATCH = 64
#: The target of issue #12: turns/s x 2 at least this share of the raw embedder's texts/s.
TARGET_RATIO = 0.6
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


def run_texts(settings: dict[str, Any]) -> list[str]:
    """Every text a run embeds: each turn's message and reply."""
    return [
        text
        for session in range(settings["sessions"])
        for turn in range(settings["turns_per_session"])
        for text in turn_texts(settings["seed"], session, turn)
    ]


class CountingEmbeddings(Embeddings):
    """The default embeddings, counting model calls, texts and seconds (the fast path kept)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0
        self.texts = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def embed_array(self, texts: list[str]) -> np.ndarray:
        """Embed texts into a matrix (what the engine calls)."""
        began = time.perf_counter()
        vectors: np.ndarray = self.inner.embed_array(texts)
        with self._lock:
            self.calls += 1
            self.texts += len(texts)
            self.seconds += time.perf_counter() - began
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed a batch of texts."""
        rows: list[list[float]] = self.embed_array(texts).tolist()
        return rows

    def embed_query(self, text: str) -> list[float]:
        """Embed one query text."""
        return self.embed_documents([text])[0]


def raw_texts_per_second(texts: list[str]) -> float:
    """The default embeddings alone: texts per second in calls of :data:`RAW_BATCH`."""
    embeddings: Any = embeddings_named(DEFAULT_EMBEDDINGS)
    embeddings.embed_array(texts[:RAW_BATCH])  # loaded and warm
    began = time.perf_counter()
    for start in range(0, len(texts), RAW_BATCH):
        embeddings.embed_array(texts[start : start + RAW_BATCH])
    return len(texts) / (time.perf_counter() - began)


def open_store(settings: dict[str, Any]) -> MemoryStore:
    """This worker's own store object on the run's namespace."""
    if settings["store"] == "redis":
        from langchain_hybrid_memory.stores import RedisStore

        return RedisStore(REDIS_URL, prefix=settings["namespace"])
    from langchain_hybrid_memory.stores import PostgresStore

    return PostgresStore(POSTGRES_URL, schema=settings["namespace"])


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
    embeddings = CountingEmbeddings(embeddings_named(DEFAULT_EMBEDDINGS))
    memory = HybridMemory(
        store=open_store(settings),
        embeddings=embeddings,
        index_cache_size=settings["index_cache_size"],
    )
    # Warm up (not timed): the model, the threads and the store's scripts or tables; the
    # warm-up session is erased again, so the store holds only the measured sessions.
    user, reply = turn_texts(settings["seed"], -1 - number, 0)
    await memory.abuild_context(f"warmup-{number}", user)
    await memory.aadd_messages(f"warmup-{number}", [HumanMessage(user), AIMessage(reply)])
    await memory.aflush()
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
            name=f"serving-{settings['store']}-{w}",
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


def clean_up(store: str, namespace: str) -> None:
    """Delete the run's keys (Redis) or schema (PostgreSQL)."""
    if store == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{namespace}:*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
        finally:
            client.close()
    else:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')


def leftovers(store: str, namespace: str) -> int:
    """How many of the run's keys or tables are still there (0 after :func:`clean_up`)."""
    if store == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            return len(list(client.scan_iter(match=f"{namespace}:*", count=1000)))
        finally:
            client.close()
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (namespace,)
        ).fetchone()
    return int(row[0]) if row else 0


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered), round(share * len(ordered))) - 1)]


def summarize(store: str, workers: int, reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row from the workers' reports."""
    merged = {name: [v for r in reports for v in r[name]] for name in ("turn", "build", "add")}
    waited = [v for r in reports for v in r["waited"]]
    turns = len(merged["turn"])
    wall = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    calls = sum(r["embedding_calls"] for r in reports)
    texts = sum(r["texts_embedded"] for r in reports)
    row: dict[str, Any] = {
        "store": store,
        "workers": workers,
        "turns": turns,
        "wall_s": wall,
        "turns_per_s": turns / wall,
        "texts_embedded_per_turn": texts / turns,
        "texts_per_model_call": texts / calls if calls else 0.0,
        "embed_ms_per_turn": sum(r["embed_seconds"] for r in reports) * 1000 / turns,
        "waited_p95_ms": percentile(waited, 0.95),
        "flush_ms": max(r["flush_ms"] for r in reports),
    }
    for name, values in merged.items():
        key = "" if name == "turn" else f"{name}_"  # a whole turn: p50_ms, p95_ms
        row[f"{key}p50_ms"] = statistics.median(values)
        row[f"{key}p95_ms"] = percentile(values, 0.95)
    return row


def measure(store: str, workers: int, settings: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Serve every session with ``workers`` processes on a fresh namespace; the figures."""
    namespace = f"bench_{run_id}_{store}_w{workers}"
    settings = {**settings, "store": store, "namespace": namespace}
    load_average = os.getloadavg()[0]
    try:
        reports = run(workers, settings)
    finally:
        clean_up(store, namespace)
    row = summarize(store, workers, reports)
    row["load_average"] = load_average
    row["namespace"] = namespace
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


def write(figures: dict[str, Any], out: Path) -> None:
    """Markdown table, JSON figures and a PNG plot next to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    settings, machine, rows = figures["settings"], figures["machine"], figures["rows"]
    raw = figures["raw_texts_per_s"]
    in_flight = settings["in_flight"] or "every session"
    lines = [
        "# Serving many conversations: Redis and PostgreSQL, 1 and 2 worker processes",
        "",
        "Written by `benchmarks/serving.py`; do not edit by hand, run it again.",
        "",
        f"```bash\n{figures['command']}\n```",
        "",
        f"{settings['sessions']:,} sessions of {settings['turns_per_session']} turns each, shared "
        "out among the worker processes (spawned, one event loop each, "
        f"{in_flight} turns inside the engine at a time per process). A turn: `abuild_context` "
        "for the user's text, then `aadd_messages` with the message and a canned reply; "
        f"default settings and embeddings (`{DEFAULT_EMBEDDINGS}`), no LLM (offline "
        f"summarizer), `index_cache_size={settings['index_cache_size']}`. The wall time runs "
        "from the start barrier to the last process's final `aflush()` (texts still waiting "
        "for a vector are embedded there, so background work is counted). Latencies are of "
        "one call, from the moment the turn is let in. *Texts per model call*: the mean batch "
        "of the shared model calls. *Raw embedder*: the default embeddings alone in this "
        f"process, the run's texts in calls of {RAW_BATCH}, one thread: "
        f"{figures['raw_before']:.0f} texts/s before the runs and {figures['raw_after']:.0f} "
        f"after (mean {raw:.0f}). *Ratio*: turns/s x 2 (two new texts per turn) over that mean. "
        f"Engine: `{machine['engine']}`.",
        "",
        "| store | workers | turns | wall (s) | turns/s | ratio to the raw embedder "
        "| turn p50 / p95 (ms) | build_context p50 / p95 | add p50 / p95 | texts embedded "
        "per turn | texts per model call |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['store']} | {row['workers']} | {row['turns']:,} | {row['wall_s']:.1f} | "
            f"{row['turns_per_s']:.0f} | {row['ratio']:.2f} | "
            f"{row['p50_ms']:.1f} / {row['p95_ms']:.1f} | "
            f"{row['build_p50_ms']:.1f} / {row['build_p95_ms']:.1f} | "
            f"{row['add_p50_ms']:.1f} / {row['add_p95_ms']:.1f} | "
            f"{row['texts_embedded_per_turn']:.2f} | {row['texts_per_model_call']:.1f} |"
        )
    loads = ", ".join(f"{row['load_average']:.1f}" for row in rows)
    lines += [
        "",
        f"Target (issue #12): one event loop on Redis, turns/s x 2 >= {TARGET_RATIO} x the raw "
        "embedder's texts/s. Each turn has two new texts, so 2 texts embedded per turn is the "
        "least; more means a text was embedded twice.",
        "",
        f"Machine: {machine['cpus']} CPUs (`os.cpu_count()`), Python {machine['python']}, "
        f"{machine['platform']}; run at {machine['run_at']}. The machine is shared: times are "
        f"noisy (load average before each row: {loads}). Redis and PostgreSQL run on the same "
        "machine and take their share of the CPUs.",
        "",
        f"![turns/s and p95 per store and workers]({out.with_suffix('.png').name})",
        "",
    ]
    out.write_text("\n".join(lines), encoding="utf-8")
    plot(rows, raw, out.with_suffix(".png"))


def plot(rows: list[dict[str, Any]], raw: float, path: Path) -> None:
    """Turns per second (with the raw embedder's bound) and p95 per store and workers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.5))
    for store in dict.fromkeys(row["store"] for row in rows):
        mine = [row for row in rows if row["store"] == store]
        workers = [row["workers"] for row in mine]
        left.plot(workers, [row["turns_per_s"] for row in mine], marker="o", label=store)
        right.plot(workers, [row["p95_ms"] for row in mine], marker="o", label=f"{store} turn")
        right.plot(
            workers,
            [row["build_p95_ms"] for row in mine],
            marker="o",
            linestyle="--",
            label=f"{store} build_context",
        )
    left.axhline(raw / 2, color="grey", linestyle=":", label="raw embedder / 2")
    left.set_xlabel("worker processes")
    left.set_ylabel("turns/s")
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    right.set_xlabel("worker processes")
    right.set_ylabel("p95 (ms)")
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    for axis in (left, right):
        axis.set_xticks(sorted({row["workers"] for row in rows}))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--turns-per-session", type=int, default=3)
    parser.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--in-flight", type=int, default=32, help="turns inside the engine at once per process"
    )
    parser.add_argument("--index-cache-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "serving.md")
    args = parser.parse_args(argv)
    settings = {
        "sessions": args.sessions,
        "turns_per_session": args.turns_per_session,
        "in_flight": args.in_flight,
        "index_cache_size": args.index_cache_size,
        "seed": args.seed,
    }
    texts = run_texts(settings)
    raw_before = raw_texts_per_second(texts)
    print(f"raw embedder: {raw_before:.0f} texts/s", flush=True)
    run_id = uuid.uuid4().hex[:8]
    rows = []
    for store in args.stores:
        for workers in args.workers:
            row = measure(store, workers, settings, run_id)
            rows.append(row)
            print(
                f"{store}, {workers} worker(s): {row['turns']} turns in {row['wall_s']:.1f} s, "
                f"{row['turns_per_s']:.1f} turns/s, turn p50 {row['p50_ms']:.0f} ms, "
                f"p95 {row['p95_ms']:.0f} ms, {row['texts_per_model_call']:.1f} texts per call",
                flush=True,
            )
    raw_after = raw_texts_per_second(texts)
    raw = (raw_before + raw_after) / 2
    for row in rows:
        row["ratio"] = row["turns_per_s"] * 2 / raw
    command = "python benchmarks/serving.py " + " ".join(sys.argv[1:] if argv is None else argv)
    figures = {
        "command": command.strip(),
        "machine": {
            "engine": engine_version(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "run_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        },
        "settings": settings,
        "raw_before": raw_before,
        "raw_after": raw_after,
        "raw_texts_per_s": raw,
        "rows": rows,
    }
    write(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
