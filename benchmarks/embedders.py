"""The packaged embeddings side by side: speed, closeness to torch, cold start, install size, recall (issue #12, item 1).

For each name ``HybridMemory(embeddings=...)`` takes (``minilm-onnx-int8``, the default;
``minilm-onnx``; ``minilm-torch``):

- *One sentence*: p50 ms to embed one chat message (a query), one call each.
- *Batched*: texts per second embedding the same messages in calls of 64, one thread.
- *Cosine to torch*: min and mean cosine of its vectors with sentence-transformers' on torch.
- *Cold start*: a fresh Python process importing the library, opening a SQLite memory and
  building its first context (the ONNX export already cached), split into its stages; the
  median of three processes.
- *Install*: the size on disk of what the extra adds to the base install (the packages of its
  dependency closure, from their installed RECORD files).
- *LoCoMo*: evidence recall on the development split at 500 / 1,000 / 2,000 tokens
  (``benchmarks/locomo_recall.py --embeddings NAME``); skipped with ``--no-locomo`` or without
  the data.

Run from the repository root::

    .venv/bin/python benchmarks/embedders.py
    .venv/bin/python benchmarks/embedders.py --texts 50 --no-locomo --out /tmp/embedders.md
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement

from langchain_hybrid_memory.embeddings import EMBEDDINGS, LocalMiniLMEmbeddings, embeddings_named

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "locomo_dev.json"
NAMES = ["minilm-onnx-int8", "minilm-onnx", "minilm-torch"]
#: What each name needs installed beyond the base package.
EXTRAS = {"minilm-onnx-int8": "onnx", "minilm-onnx": "onnx", "minilm-torch": "local-model"}
BATCH = 64
BUDGETS = (500, 1000, 2000)
SUBJECTS = ["my sister", "the new job", "our trip to Valencia", "the 10k race", "my old bike"]
EVENTS = ["moved to Porto", "starts next Monday", "was cancelled again", "went better than I hoped"]


def messages(count: int) -> list[str]:
    """Chat messages of the usual lengths (one short sentence to a few)."""
    texts = []
    for n in range(count):
        sentence = f"{SUBJECTS[n % len(SUBJECTS)]} {EVENTS[(n * 3) % len(EVENTS)]} ({n})."
        texts.append(" ".join([sentence.capitalize()] * (1 + n % 4)))
    return texts


def speed(name: str, texts: list[str]) -> dict[str, float]:
    """p50 ms for one text per call, and texts/s in calls of :data:`BATCH`."""
    embeddings = embeddings_named(name)
    embeddings.embed_documents(texts[:BATCH])  # loaded and warm
    single = []
    for text in texts:
        began = time.perf_counter()
        embeddings.embed_query(text)
        single.append((time.perf_counter() - began) * 1000)
    began = time.perf_counter()
    for start in range(0, len(texts), BATCH):
        embeddings.embed_documents(texts[start : start + BATCH])
    batched = len(texts) / (time.perf_counter() - began)
    return {"single_p50_ms": statistics.median(single), "batched_texts_per_s": batched}


def closeness(name: str, texts: list[str], reference: np.ndarray) -> dict[str, float]:
    """Min and mean cosine of ``name``'s vectors with torch's."""
    vectors = np.asarray(embeddings_named(name).embed_documents(texts), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = (vectors * reference).sum(axis=1)
    return {"cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean())}


_COLD = textwrap.dedent(
    """
    import json, sys, time
    began = time.perf_counter()
    from langchain_hybrid_memory import HybridMemory
    imported = time.perf_counter()
    memory = HybridMemory(store="sqlite:///" + sys.argv[2], embeddings=sys.argv[1])
    opened = time.perf_counter()
    memory.build_context("s1", "Where did my sister move?")
    built = time.perf_counter()
    print(json.dumps({"import_s": imported - began, "open_s": opened - imported,
                      "first_context_s": built - opened, "total_s": built - began,
                      "torch_loaded": "torch" in sys.modules}))
    """
)


def cold_start(name: str, runs: int = 3) -> dict[str, Any]:
    """A fresh process to its first context: the median run's stages."""
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            done = subprocess.run(
                [sys.executable, "-c", _COLD, name, str(Path(folder) / "memory.db")],
                capture_output=True,
                text=True,
                check=True,
            )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    results.sort(key=lambda result: result["total_s"])
    return results[len(results) // 2]


def _closure(requirements: list[str], extras: set[str] | None = None) -> set[str]:
    """The installed distributions ``requirements`` pull in, recursively (normalized names)."""
    names: set[str] = set()
    visited: set[tuple[str, frozenset[str]]] = set()  # a package with extras is another node
    todo = [(text, extras or set()) for text in requirements]
    while todo:
        text, wanted = todo.pop()
        requirement = Requirement(text)
        name = _normal(requirement.name)
        if requirement.marker is not None and not _applies(requirement.marker, wanted):
            continue
        node = (name, frozenset(requirement.extras))
        if node in visited:
            continue
        visited.add(node)
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        names.add(name)
        for sub in distribution.requires or []:
            todo.append((sub, set(requirement.extras)))
    return names


def _applies(marker: Marker, extras: set[str]) -> bool:
    environment = dict(default_environment())
    return any(marker.evaluate({**environment, "extra": extra}) for extra in extras or {""})


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _size(name: str) -> int:
    distribution = importlib.metadata.distribution(name)
    total = 0
    for file in distribution.files or []:
        path = Path(str(file.locate()))
        if path.is_file():
            total += path.stat().st_size
    return total


def install_sizes() -> dict[str, dict[str, Any]]:
    """What each extra adds to the base install: packages and bytes on disk."""
    base = _closure(["langchain-hybrid-memory"])
    sizes = {}
    for extra in dict.fromkeys(EXTRAS.values()):
        added = _closure([f"langchain-hybrid-memory[{extra}]"]) - base
        sizes[extra] = {
            "packages": sorted(added),
            "bytes": sum(_size(name) for name in added),
        }
    sizes["base"] = {"packages": sorted(base), "bytes": sum(_size(name) for name in base)}
    return sizes


def locomo(name: str, folder: Path) -> dict[str, float] | None:
    """LoCoMo evidence recall per budget with ``name``, or ``None`` without the data."""
    if not DATA.exists():
        return None
    out = folder / f"locomo-{name}.md"
    script = ROOT / "benchmarks" / "locomo_recall.py"
    subprocess.run(
        [sys.executable, str(script), "--embeddings", name, "--data", str(DATA), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    return {str(row["budget"]): row["overall"]["recall"] for row in figures["budgets"]}


def write(figures: dict[str, Any], out: Path) -> None:
    """Markdown table and JSON figures."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    rows, sizes = figures["rows"], figures["install"]
    lines = [
        "# The packaged embeddings side by side",
        "",
        "Written by `benchmarks/embedders.py`; do not edit by hand, run it again.",
        "",
        f"```bash\n{figures['command']}\n```",
        "",
        f"all-MiniLM-L6-v2 from the packaged weights, three runtimes, on {figures['texts']} "
        "chat messages of one to four sentences. *One sentence*: p50 of embedding one message "
        f"per call. *Batched*: texts/s in calls of {BATCH}. *Cosine to torch*: min / mean over "
        "the messages. *Cold start*: a fresh process importing the library, opening a SQLite "
        "memory and building its first context (the ONNX export cached), median of three; "
        "*first context* includes loading the model. *Install*: what the name's extra adds to "
        "the base install on disk. *LoCoMo*: evidence recall on the development split.",
        "",
        "| embeddings | one sentence p50 (ms) | batched (texts/s) | cosine to torch min / mean "
        "| cold start (s): import + open + first context = total | extra, install size "
        "| LoCoMo 500 / 1,000 / 2,000 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        cold = row["cold_start"]
        recall = row.get("locomo")
        recall_text = (
            " / ".join(f"{recall[str(b)]:.3f}" for b in BUDGETS if str(b) in recall)
            if recall
            else "-"
        )
        extra = EXTRAS[row["name"]]
        lines.append(
            f"| `{row['name']}`{' (default)' if row['name'] == NAMES[0] else ''} | "
            f"{row['single_p50_ms']:.2f} | {row['batched_texts_per_s']:.0f} | "
            f"{row['cosine_min']:.4f} / {row['cosine_mean']:.4f} | "
            f"{cold['import_s']:.2f} + {cold['open_s']:.2f} + {cold['first_context_s']:.2f} = "
            f"{cold['total_s']:.2f}{' (torch loaded)' if cold['torch_loaded'] else ''} | "
            f"`{extra}`, {sizes[extra]['bytes'] / 2**20:,.0f} MiB | {recall_text} |"
        )
    onnx_int8 = rows[0]
    lines += [
        "",
        "What each extra adds: "
        + "; ".join(
            f"`{extra}` {len(sizes[extra]['packages'])} packages "
            f"({', '.join(sizes[extra]['packages'][:12])}"
            f"{', ...' if len(sizes[extra]['packages']) > 12 else ''})"
            for extra in dict.fromkeys(EXTRAS.values())
        )
        + f". The base install: {sizes['base']['bytes'] / 2**20:,.0f} MiB.",
        "",
        f"What dominates the default's cold start: {_dominant(onnx_int8['cold_start'])}. The "
        "first process on a machine also exports the ONNX model from the torch weights once "
        f"(about {figures['export_s']:.0f} s here, `hybrid-memory export-model` does it ahead "
        "of time); later processes find it in the cache and need neither torch nor "
        "transformers.",
        "",
        f"Machine: {figures['machine']}; run at {figures['run_at']}. The machine is shared: "
        "times are noisy.",
        "",
    ]
    out.write_text("\n".join(lines), encoding="utf-8")


def _dominant(cold: dict[str, float]) -> str:
    stages = {
        "importing the library (LangChain core, FAISS, NumPy)": cold["import_s"],
        "opening the store": cold["open_s"],
        "the first context (loading the model and its tokenizer)": cold["first_context_s"],
    }
    stage, seconds = max(stages.items(), key=lambda item: item[1])
    return f"{stage}, {seconds:.2f} of {cold['total_s']:.2f} s"


def export_seconds() -> float:
    """One export of both ONNX formats into an empty cache folder (a machine's first run)."""
    from langchain_hybrid_memory import _model_cache

    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        for onnx_format in _model_cache.FORMATS:
            _model_cache.exported(onnx_format, cache_dir=Path(folder))
        return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--locomo", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "embedders.md")
    args = parser.parse_args(argv)
    assert set(NAMES) == set(EMBEDDINGS)
    texts = messages(args.texts)
    reference = np.asarray(LocalMiniLMEmbeddings().embed_documents(texts), dtype=np.float32)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in NAMES:
            row: dict[str, Any] = {"name": name, **speed(name, texts)}
            row.update(closeness(name, texts, reference))
            row["cold_start"] = cold_start(name)
            if args.locomo:
                row["locomo"] = locomo(name, Path(folder))
            rows.append(row)
            print(
                f"{name}: {row['single_p50_ms']:.2f} ms one, {row['batched_texts_per_s']:.0f} "
                f"texts/s, cosine min {row['cosine_min']:.4f}, cold start "
                f"{row['cold_start']['total_s']:.2f} s",
                flush=True,
            )
    command = "python benchmarks/embedders.py " + " ".join(sys.argv[1:] if argv is None else argv)
    figures = {
        "command": command.strip(),
        "texts": len(texts),
        "rows": rows,
        "install": install_sizes(),
        "export_s": export_seconds(),
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.platform()}",
        "run_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    }
    write(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
