"""LoCoMo evidence recall of this project's context against baselines at the same budgets (#15).

In one run, on the same stored turns and vectors, every question of categories 1-4 gets a
context at 500, 1,000 and 2,000 tokens from each method: this project's context (window,
summary, entities and recall together), the most recent turns, BM25 alone, dense alone (the
same embeddings), and reciprocal-rank fusion of the two; the full history is measured too (its
recall and what it costs). The baselines' turns are fitted by this project's budget with the
same token counter and written as this project writes recalled turns, so only the choice of
turns differs (see ``langchain_hybrid_memory.baselines``). Scoring is
``langchain_hybrid_memory.evaluation``'s, as in ``locomo_recall.py``.

    .venv/bin/python benchmarks/locomo_baselines.py            # the dev split, default budgets

Writes docs/benchmarks/locomo_baselines.md, .json and .png. The data is CC BY-NC 4.0
(Maharana et al., ACL 2024): it is read from its place at run time and nothing of it is written
out except the aggregate figures.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the recall benchmark's helpers

from locomo_recall import (
    DEFAULT_DATA,
    REPO,
    file_sha256,
    git_commit,
    machine,
    preamble,
    progress_columns,
    shown_path,
)

from langchain_hybrid_memory import __version__
from langchain_hybrid_memory.baselines import BASELINES, RRF_K
from langchain_hybrid_memory.embeddings import DEFAULT_EMBEDDINGS, EMBEDDINGS
from langchain_hybrid_memory.evaluation import (
    CATEGORY_NAMES,
    DEFAULT_BUDGETS,
    DEFAULT_CATEGORIES,
    FULL_HISTORY,
    MEMORY,
    BudgetScores,
    EvaluationReport,
    evaluate_locomo,
    evaluation_memory,
)

DEFAULT_OUT = REPO / "docs" / "benchmarks" / "locomo_baselines.md"
#: How each method is named in the table, in the order of the table.
LABELS = {
    MEMORY: "**this project's context**",
    "recent turns": "most recent turns",
    "bm25": "BM25 only",
    "dense": "dense only",
    "rrf": f"RRF of BM25 + dense (k={RRF_K})",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LoCoMo-format JSON file")
    parser.add_argument(
        "--budgets", type=int, nargs="+", default=list(DEFAULT_BUDGETS), help="token budgets"
    )
    parser.add_argument("--limit", type=int, help="evaluate only the first N conversations")
    parser.add_argument(
        "--questions", type=int, help="score only the first N questions of each conversation"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="Markdown file to write; the JSON and the plot go beside it",
    )
    parser.add_argument(
        "--embeddings",
        choices=sorted(EMBEDDINGS),
        default=DEFAULT_EMBEDDINGS,
        help=f"the packaged embeddings to run (default: {DEFAULT_EMBEDDINGS})",
    )
    return parser.parse_args(argv)


def methods_of(report: EvaluationReport) -> dict[str, tuple[BudgetScores, ...]]:
    """Every budgeted method's figures, this project's first."""
    return {MEMORY: report.budgets, **report.baselines}


def markdown_table(report: EvaluationReport, categories: list[int]) -> list[str]:
    """One row per method and budget: overall recall, per category, and mean tokens."""
    header = " | ".join(CATEGORY_NAMES[c] for c in categories)
    lines = [
        f"| method | budget | overall | {header} | mean tokens |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in categories) + " | ---: |",
    ]
    for method, budgets in methods_of(report).items():
        for scores in budgets:
            lines.append(_row(LABELS.get(method, method), str(scores.budget), scores, categories))
    whole = report.full_history
    if whole is not None:
        lines.append(_row("full history (no budget)", "-", whole, categories))
    return lines


def _row(label: str, budget: str, scores: BudgetScores, categories: list[int]) -> str:
    cells = [
        f"{scores.by_category[c].recall:.3f}" if c in scores.by_category else "-"
        for c in categories
    ]
    return (
        f"| {label} | {budget} | {scores.overall.recall:.3f} | {' | '.join(cells)} | "
        f"{scores.overall.tokens:,.0f} |"
    )


def markdown(report: EvaluationReport, categories: list[int], meta: dict[str, Any]) -> str:
    whole = report.full_history
    full_text = (
        ""
        if whole is None
        else f" The full history is {whole.overall.tokens:,.0f} tokens per question on average "
        f"(the longest conversation {whole.budget:,}), "
        f"{whole.overall.tokens / max(meta['budgets']):.0f} times the largest budget; its recall "
        "is 1.0 by construction, and truncated to a budget it is the most recent turns."
    )
    lines = [
        *preamble(
            "Baselines at the same budgets (LoCoMo evidence recall)",
            "benchmarks/locomo_baselines.py",
            meta,
            report,
            f"({report.skipped} without valid evidence left out). Every method gets a context "
            "for every question at every budget, in one run.",
        ),
        "",
        "Evidence recall of a question = the fraction of its evidence turns present in the "
        "context (as in [locomo_recall.md](locomo_recall.md)); mean over questions, with the "
        "mean context tokens (LangChain's approximate counter, the one the memory budgets with)."
        + full_text,
        "",
        f"![recall against budget per method]({meta['plot']})",
        "",
        *markdown_table(report, categories),
        "",
        "## The methods",
        "",
        "- **This project's context**: `HybridMemory.build_context` with the evaluation's "
        "defaults (`evaluation_memory()`: the engine's defaults, a window of 4 messages, offline "
        "extractive summary): recent window, rolling summary, entity facts and recall (dense + "
        "BM25 fused, neighbours, dates) under one budget.",
        "- **Most recent turns**: the latest turns that fit, what a token-buffer memory (or "
        '`trim_messages(strategy="last")`) keeps.',
        "- **BM25 only**: turns ranked by BM25 (this project's index: Snowball stems, English "
        "stop words, k1 1.2, b 0.75); turns sharing no term with the question are not offered.",
        "- **Dense only**: turns ranked by cosine similarity to the question, with the same "
        f"embeddings (`{meta['embeddings']}`) and the vectors the memory stored.",
        f"- **RRF**: reciprocal-rank fusion of the two rankings, `1 / ({RRF_K} + rank)` summed "
        "(Cormack et al., SIGIR 2009).",
        "- **Full history**: every turn, whole, with no budget.",
        "",
        "Each baseline's ranked turns go through this project's budget (all of it to recall, "
        "texts cut at `recall_max_chars` as recall cuts them, the same counter) and are written "
        "as this project writes recalled turns: in time order, one line per turn "
        "(`- Speaker: text`) under one line per day. So a baseline differs from this project's "
        "context only in which turns it chooses and in not having the window, summary and "
        "entity sections. A baseline stops at the first ranked turn that does not fit, as "
        "recall does; that is why its mean tokens sit a little below the budget.",
        "",
        "## How it was run",
        "",
        f"- Time: {meta['wall_seconds']:.0f} s in all ({report.ingest_seconds:.0f} s feeding, "
        f"{report.context_seconds:.0f} s building and scoring contexts).",
        f"- Machine: {meta['machine']['cpu_count']} CPUs, Python {meta['machine']['python']}, "
        f"{meta['machine']['platform']}; 1-minute load average "
        f"{meta['machine']['load_average_1min_at_start']} at the start (the machine is shared, "
        "so times are noisy; the figures are not).",
        f"- Code: langchain-hybrid-memory {meta['version']}, commit `{meta['commit']}`; "
        f"run at {meta['finished']}.",
        "",
        "Library use (any file in LoCoMo's format):",
        "",
        "```python",
        "from langchain_hybrid_memory.evaluation import evaluate_locomo",
        "",
        'report = evaluate_locomo("my_transcripts.json", baselines=["full history", "recent turns",',
        '                                                          "bm25", "dense", "rrf"])',
        'print(report.at(1000).overall.recall, report.baselines["bm25"][1].overall.recall)',
        "```",
        "",
        "LoCoMo: Maharana et al., ACL 2024 (arXiv:2402.17753), CC BY-NC 4.0; read from outside "
        "the repository at run time, only aggregate figures written here.",
        "",
    ]
    return "\n".join(lines)


def plot(report: EvaluationReport, categories: list[int], path: Path) -> None:
    """Recall against budget, one line per method: overall, then one panel per category."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[int | None] = [None, *categories]
    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), sharey=True)
    for axis, category in zip(axes, panels, strict=True):
        for method, budgets in methods_of(report).items():
            xs = [s.budget for s in budgets]
            ys = [
                s.overall.recall
                if category is None
                else s.by_category[category].recall
                if category in s.by_category
                else float("nan")
                for s in budgets
            ]
            style = {"linewidth": 2.6, "color": "black"} if method == MEMORY else {"linewidth": 1.4}
            axis.plot(xs, ys, marker="o", label=LABELS[method].strip("*"), **style)
        axis.set_title("overall" if category is None else CATEGORY_NAMES[category])
        axis.set_xscale("log")
        axis.set_xticks([s.budget for s in report.budgets], [str(s.budget) for s in report.budgets])
        axis.minorticks_off()
        axis.set_xlabel("token budget")
        budgets = [s.budget for s in report.budgets]
        axis.set_xlim(min(budgets) * 0.8, max(budgets) * 1.25)
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("evidence recall")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    figure.suptitle("LoCoMo evidence recall at the same budgets", fontsize=10)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def console_table(report: EvaluationReport, categories: list[int]) -> Table:
    table = Table(title="LoCoMo evidence recall at the same budgets")
    for column in ("method", "budget", "overall", *(CATEGORY_NAMES[c] for c in categories)):
        table.add_column(column, justify="left" if column == "method" else "right")
    table.add_column("tokens", justify="right")
    for line in markdown_table(report, categories)[2:]:
        table.add_row(*(cell.strip().strip("*") for cell in line.strip("|").split("|")))
    return table


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if not args.data.exists():
        console.print(f"[red]no LoCoMo file at {args.data}[/red]")
        return 2
    categories = list(DEFAULT_CATEGORIES)
    host = machine()
    started = time.perf_counter()
    with Progress(*progress_columns(), console=console) as progress:
        task = progress.add_task("questions", total=None)
        report = evaluate_locomo(
            args.data,
            budgets=args.budgets,
            categories=categories,
            memory_factory=lambda: evaluation_memory(embeddings=args.embeddings),
            limit_conversations=args.limit,
            limit_questions=args.questions,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
            baselines=(FULL_HISTORY, *BASELINES),
        )
    wall = time.perf_counter() - started
    console.print(console_table(report, categories))

    png = args.out.with_suffix(".png")
    meta: dict[str, Any] = {
        "command": shlex.join(
            ["python", "benchmarks/locomo_baselines.py", *(argv or sys.argv[1:])]
        ),
        "data": shown_path(args.data),
        "data_sha256": file_sha256(args.data),
        "embeddings": args.embeddings,
        "budgets": list(args.budgets),
        "plot": png.name,
        "machine": host,
        "version": __version__,
        "commit": git_commit(),
        "wall_seconds": round(wall, 1),
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(report, categories, meta), encoding="utf-8")
    plot(report, categories, png)
    figures = {**meta, **report.as_dict()}
    args.out.with_suffix(".json").write_text(json.dumps(figures, indent=2) + "\n", "utf-8")
    console.print(f"wrote {args.out}, {png.name} and the JSON beside them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
