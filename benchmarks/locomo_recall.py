"""Evidence recall on LoCoMo: what reaches the context at 500, 1,000 and 2,000 tokens.

Feeds every conversation of a LoCoMo-format file into a HybridMemory (offline extractive
summarizer, local all-MiniLM-L6-v2 embeddings), builds the context for each question of
categories 1-4 at each budget, and reports mean evidence recall (the fraction of a question's
evidence turns present in the context) and mean context tokens, overall and per category.
Writes the figures as Markdown and JSON, with the command and the machine.

    .venv/bin/python benchmarks/locomo_recall.py            # the dev split, default budgets

The data is CC BY-NC 4.0 (Maharana et al., ACL 2024): it is read from its place at run time and
nothing of it is written out except the aggregate figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from langchain_hybrid_memory import BudgetShares, HybridMemory, HybridMemoryConfig, __version__
from langchain_hybrid_memory.embeddings import DEFAULT_EMBEDDINGS, EMBEDDINGS
from langchain_hybrid_memory.evaluation import (
    CATEGORY_NAMES,
    DEFAULT_BUDGETS,
    DEFAULT_CATEGORIES,
    EvaluationReport,
    evaluate_locomo,
    evaluation_memory,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "locomo_dev.json"
DEFAULT_OUT = REPO / "docs" / "benchmarks" / "locomo_recall.md"
#: What issue #6 asks of the engine on conversations it has never seen.
TARGETS = {500: 0.75, 1000: 0.80, 2000: 0.88}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="LoCoMo-format JSON file (default: ../shared/data/locomo_dev.json from the repo root)",
    )
    parser.add_argument(
        "--budgets",
        type=int,
        nargs="+",
        default=list(DEFAULT_BUDGETS),
        help="context token budgets (default: 500 1000 2000)",
    )
    parser.add_argument("--limit", type=int, help="evaluate only the first N conversations")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="Markdown file to write; the JSON goes beside it with a .json suffix "
        "(default: docs/benchmarks/locomo_recall.md)",
    )
    parser.add_argument("--window", type=int, help="window_turns (default: 4)")
    parser.add_argument(
        "--embeddings",
        choices=sorted(EMBEDDINGS),
        default=DEFAULT_EMBEDDINGS,
        help=f"the packaged embeddings to run (default: {DEFAULT_EMBEDDINGS})",
    )
    parser.add_argument("--dense-weight", type=float, help="dense_weight (default: the engine's)")
    parser.add_argument(
        "--shares",
        type=float,
        nargs=4,
        metavar=("RECALL", "WINDOW", "SUMMARY", "ENTITIES"),
        help="budget shares (default: the engine's)",
    )
    return parser.parse_args(argv)


def memory_settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {"embeddings": args.embeddings}
    if args.window is not None:
        settings["window_turns"] = args.window
    if args.dense_weight is not None:
        settings["dense_weight"] = args.dense_weight
    if args.shares is not None:
        recall, window, summary, entities = args.shares
        settings["budget_shares"] = BudgetShares(
            recall=recall, window=window, summary=summary, entities=entities
        )
    return settings


def machine() -> dict[str, Any]:
    try:
        import torch

        torch_threads: int | None = torch.get_num_threads()
    except ImportError:
        torch_threads = None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": torch_threads,
        "load_average_1min_at_start": None if load is None else round(load, 2),
    }


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip() or None


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def preamble(
    title: str, script: str, meta: dict[str, Any], report: EvaluationReport, note: str
) -> list[str]:
    """A LoCoMo part's opening: its title, who writes it, the command, and the data (``note``
    ends the data's sentence)."""
    return [
        f"# {title}",
        "",
        f"Written by `{script}`; do not edit by hand, run it again.",
        "",
        "```bash",
        meta["command"],
        "```",
        "",
        f"Data: `{meta['data']}` (sha256 `{meta['data_sha256'][:16]}…`), "
        f"{report.conversations} conversations, {report.turns} turns, "
        f"{report.questions} questions of categories 1-4 {note}",
    ]


def shown_path(path: Path) -> str:
    """``path`` as the report shows it: relative to the repository's parent when inside it."""
    try:
        return f"../{path.resolve().relative_to(REPO.parent)}"
    except ValueError:
        return str(path)


def progress_columns() -> tuple[ProgressColumn, ...]:
    """The progress bar's columns: what, bar, done of total, elapsed, remaining."""
    return (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def table_of(report: EvaluationReport, categories: list[int]) -> Table:
    table = Table(title="LoCoMo evidence recall (mean per question)")
    table.add_column("budget", justify="right")
    table.add_column("overall", justify="right")
    for category in categories:
        table.add_column(CATEGORY_NAMES[category], justify="right")
    table.add_column("mean tokens", justify="right")
    table.add_column("questions", justify="right")
    for scores in report.budgets:
        table.add_row(
            str(scores.budget),
            f"{scores.overall.recall:.3f}",
            *(
                f"{scores.by_category[c].recall:.3f}" if c in scores.by_category else "-"
                for c in categories
            ),
            f"{scores.overall.tokens:.0f}",
            str(scores.overall.questions),
        )
    return table


def markdown(
    report: EvaluationReport,
    categories: list[int],
    meta: dict[str, Any],
) -> str:
    header = " | ".join(CATEGORY_NAMES[c] for c in categories)
    lines = [
        *preamble(
            "Evidence recall on LoCoMo",
            "benchmarks/locomo_recall.py",
            meta,
            report,
            f"scored at each budget ({report.skipped} without valid evidence left out).",
        ),
        "",
        "Evidence recall of a question = the fraction of its evidence turns (`dia_id`s that name a "
        "turn) present in the context built for it, recalled or in the recent window; the table "
        "gives the mean over questions (overall: every question weighs the same), with the mean "
        "context tokens (`ctx.tokens`, LangChain's approximate counter).",
        "",
        f"| budget | overall | {header} | mean tokens | target (issue #6) |",
        "| ---: | ---: | " + " | ".join("---:" for _ in categories) + " | ---: | ---: |",
    ]
    for scores in report.budgets:
        cells = [
            f"{scores.by_category[c].recall:.3f}" if c in scores.by_category else "-"
            for c in categories
        ]
        target = TARGETS.get(scores.budget)
        lines.append(
            f"| {scores.budget} | **{scores.overall.recall:.3f}** | {' | '.join(cells)} | "
            f"{scores.overall.tokens:.0f} | {'' if target is None else f'>= {target:.2f}'} |"
        )
    counts = {c: report.budgets[0].by_category.get(c) for c in categories}
    lines += [
        "",
        "Questions per category: "
        + ", ".join(
            f"{CATEGORY_NAMES[c]} {s.questions}" for c, s in counts.items() if s is not None
        )
        + ".",
        "",
        "## How it was run",
        "",
        f"- Memory: `HybridMemory` with `llm=None` (offline extractive summarizer), local "
        f"all-MiniLM-L6-v2 embeddings (`{meta.get('embeddings', DEFAULT_EMBEDDINGS)}`), "
        f"{meta['config']} (the engine's defaults, a window of 4 "
        "messages, and the command's options). "
        "With `recall_k=None` recall reads ranked turns until they would fill the budget (at most "
        "`recall_candidates`) and the budget decides how many fit; the questions come after the "
        "conversation, so the window holds only the end of the last session.",
        "- Speaker A's turns are `HumanMessage(text, name=speaker)`, speaker B's "
        "`AIMessage(text, name=speaker)`, stamped with their session's date (`timestamp=`), one "
        "`add_messages` call per LoCoMo session; image turns carry "
        '`" [shares image: <caption>]"`. Each text is embedded once; each budget\'s contexts are '
        "built by a memory sharing the store and embeddings of the one fed.",
        f"- Time: {meta['wall_seconds']:.0f} s in all ({report.ingest_seconds:.0f} s feeding: "
        f"storing, embedding, summarizing; {report.context_seconds:.0f} s building and scoring "
        f"{report.questions * len(report.budgets)} contexts).",
        f"- Machine: {meta['machine']['cpu_count']} CPUs, Python {meta['machine']['python']}, "
        f"{meta['machine']['platform']}, torch threads {meta['machine']['torch_threads']}, "
        f"1-minute load average {meta['machine']['load_average_1min_at_start']} at the start "
        f"and {meta['machine'].get('load_average_1min_at_end')} at the end (the machine is "
        "shared, so times are noisy; the figures are not).",
        f"- Code: langchain-hybrid-memory {meta['version']}, commit `{meta['commit']}`; "
        f"run at {meta['finished']}.",
        "",
        "The targets are for conversations the project has never seen; this file is the "
        "development split, the one to tune on. [locomo_levers.md](locomo_levers.md) records what "
        "changing the recall code and the configuration did on it.",
        "",
        "## Reproduce",
        "",
        "No `make` target: run the script from the repository root with the project's venv.",
        "",
        "```bash",
        ".venv/bin/python benchmarks/locomo_recall.py "
        "[--data PATH] [--budgets 500 1000 2000] [--limit N] [--out docs/benchmarks/locomo_recall.md]",
        "    [--window N] [--dense-weight W] [--shares RECALL WINDOW SUMMARY ENTITIES]",
        "```",
        "",
        "Library use, on any file in LoCoMo's format:",
        "",
        "```python",
        "from langchain_hybrid_memory.evaluation import evaluate_locomo, evaluation_memory",
        "",
        "report = evaluate_locomo(",
        '    "my_transcripts.json",',
        "    budgets=(500, 1000),",
        "    memory_factory=lambda: evaluation_memory(window_turns=6, dense_weight=0.5),",
        ")",
        "print(report.at(500).overall.recall, report.at(500).by_category)",
        "```",
        "",
        "## Data licence",
        "",
        "LoCoMo: Maharana et al., *Evaluating Very Long-Term Conversational Memory of LLM Agents*, "
        "ACL 2024 (arXiv:2402.17753), CC BY-NC 4.0. The data is read from outside the repository "
        "at run time; only aggregate figures are written here.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if not args.data.exists():
        console.print(f"[red]no LoCoMo file at {args.data}[/red]")
        return 2
    settings = memory_settings(args)
    categories = list(DEFAULT_CATEGORIES)
    host = machine()
    configs: list[HybridMemoryConfig] = []

    def memory_factory() -> HybridMemory:
        memory = evaluation_memory(**settings)
        configs.append(memory.config)
        return memory

    started = time.perf_counter()
    with Progress(*progress_columns(), console=console) as progress:
        task = progress.add_task("questions", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = evaluate_locomo(
            args.data,
            budgets=args.budgets,
            categories=categories,
            memory_factory=memory_factory,
            limit_conversations=args.limit,
            progress=advance,
        )
    wall = time.perf_counter() - started
    if hasattr(os, "getloadavg"):
        host["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    console.print(table_of(report, categories))
    console.print(
        f"{wall:.0f} s ({report.ingest_seconds:.0f} s feeding, "
        f"{report.context_seconds:.0f} s contexts)"
    )

    config = configs[0]
    shares = config.budget_shares
    config_text = (
        f"`window_turns={config.window_turns}`, `recall_k={config.recall_k}`, "
        f"`recall_candidates={config.recall_candidates}`, `dense_weight={config.dense_weight}`, "
        f"`summary_batch={config.summary_batch}`, `summary_max_tokens={config.summary_max_tokens}`, "
        f"`recall_max_chars={config.recall_max_chars}`, budget shares recall {shares.recall} / "
        f"window {shares.window} / summary {shares.summary} / entities {shares.entities}"
    )
    first = config.recall_first_shares
    if first is not None:
        config_text += (
            f", recall-first shares (for an input about earlier turns) recall {first.recall} / "
            f"window {first.window} / summary {first.summary} / entities {first.entities}"
        )
    data_text = shown_path(args.data)
    command = shlex.join(["python", "benchmarks/locomo_recall.py", *(argv or sys.argv[1:])])
    meta: dict[str, Any] = {
        "command": command,
        "embeddings": args.embeddings,
        "data": data_text,
        "data_sha256": file_sha256(args.data),
        "config": config_text,
        "machine": host,
        "version": __version__,
        "commit": git_commit(),
        "wall_seconds": wall,
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(report, categories, meta), encoding="utf-8")
    figures = {
        **meta,
        "config": dataclasses.asdict(config),
        "wall_seconds": round(wall, 1),
        **report.as_dict(),
    }
    json_path = args.out.with_suffix(".json")
    json_path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
