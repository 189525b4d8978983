"""Assemble docs/benchmarks.md from the parts the benchmark scripts wrote (issues #6, #12, #13, #14).

Each script writes its own Markdown, JSON and plot under ``docs/benchmarks/``; this one puts
a headline table of every target in front of them, in one page, and copies the headline
into the README between its ``benchmarks:start`` / ``benchmarks:end`` markers. ``make bench``
runs it last.

Run from the repository root::

    .venv/bin/python benchmarks/report.py
    .venv/bin/python benchmarks/report.py --parts /tmp/parts --out /tmp/benchmarks.md --readme ""
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: The parts, in the order of the page: (file stem, section title, command that writes it).
PARTS = [
    ("chat_loop", "Chat loop against the alternatives", "python benchmarks/chat_loop.py"),
    ("scaling", "Scaling with the session's length", "python benchmarks/scaling.py"),
    ("ingest", "Ingest", "python benchmarks/ingest.py"),
    ("serving", "Serving many conversations", "python benchmarks/serving.py"),
    ("embedders", "The packaged embeddings", "python benchmarks/embedders.py"),
    ("agent_thread", "One long agent thread", "python benchmarks/agent_thread.py"),
    ("locomo_recall", "Recall on LoCoMo", "python benchmarks/locomo_recall.py"),
    (
        "locomo_baselines",
        "Baselines at the same budgets",
        "python benchmarks/locomo_baselines.py",
    ),
    (
        "knowledge_updates",
        "A user's facts over time",
        "python benchmarks/knowledge_updates.py",
    ),
    ("bytes_per_turn", "Bytes per stored turn", "python benchmarks/bytes_per_turn.py"),
]
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
#: LoCoMo evidence recall at 500 / 1,000 / 2,000 tokens before issue #12 (torch embeddings,
#: docs/benchmarks/locomo_recall.md of commit e4afbfc): it may not drop by more than 0.005.
LOCOMO_BEFORE = {500: 0.726, 1000: 0.823, 2000: 0.884}
#: Issue #15's targets: overall evidence recall per budget, and the categories whose evidence
#: spans sessions, at 1,000 tokens.
LOCOMO_TARGETS = {500: 0.77, 1000: 0.85, 2000: 0.91}
LOCOMO_HARD, LOCOMO_HARD_TARGET = ("multi-hop", "open-domain"), 0.5
#: Issue #12: this project's chat-loop p50 / p95 at most these shares of LangChain classic's.
CHAT_RATIOS = (0.25, 0.3)


def _load(parts: Path, stem: str) -> Any:
    path = parts / f"{stem}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _status(met: bool) -> str:
    return "met" if met else "**not met**"


def _locomo_rows(locomo: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """Issue #15's LoCoMo targets (overall and the weak categories) and the check against
    issue #12's embeddings."""
    rows: list[tuple[str, str, str, str]] = []
    if not locomo:
        return rows
    targets = LOCOMO_TARGETS
    figures = {row["budget"]: row["overall"] for row in locomo["budgets"]}
    by_category = {row["budget"]: row["by_category"] for row in locomo["budgets"]}
    measured = " / ".join(
        f"{figures[budget]['recall']:.3f}" for budget in targets if budget in figures
    )
    rows.append(
        (
            "LoCoMo evidence recall at 500 / 1,000 / 2,000 tokens",
            measured,
            " / ".join(f">= {target:.2f}" for target in targets.values()),
            _status(
                all(
                    figures[budget]["recall"] >= target
                    for budget, target in targets.items()
                    if budget in figures
                )
            ),
        )
    )
    hard = by_category.get(1000, {})
    rows.append(
        (
            "LoCoMo multi-hop and open-domain evidence recall at 1,000 tokens",
            " / ".join(
                f"{name} {hard[name]['recall']:.3f}" for name in LOCOMO_HARD if name in hard
            ),
            f">= {LOCOMO_HARD_TARGET:.2f} each",
            _status(
                all(
                    name in hard and hard[name]["recall"] >= LOCOMO_HARD_TARGET
                    for name in LOCOMO_HARD
                )
            ),
        )
    )
    rows.append(
        (
            "LoCoMo recall against before issue #12 (torch embeddings)",
            f"{measured} vs " + " / ".join(f"{LOCOMO_BEFORE[budget]:.3f}" for budget in targets),
            "no lower by more than 0.005",
            _status(
                all(
                    figures[budget]["recall"] >= LOCOMO_BEFORE[budget] - 0.005
                    for budget in targets
                    if budget in figures
                )
            ),
        )
    )
    return rows


def headline(parts: Path) -> list[str]:
    """The headline table: one row per target of issue #6, from the parts' JSON figures."""
    rows: list[tuple[str, str, str, str]] = []
    chat = _load(parts, "chat_loop")
    if chat:
        by_name = {row["memory"]: row for row in chat["rows"]}
        ours = chat["rows"][0]
        agent = by_name.get("create_agent + SummarizationMiddleware")
        classic = by_name.get("classic CombinedMemory")
        if classic:
            p50, p95 = ours["p50_ms"] / classic["p50_ms"], ours["p95_ms"] / classic["p95_ms"]
            rows.append(
                (
                    f"chat loop p50 / p95 against classic CombinedMemory ({ours['memory']}, "
                    f"{chat['meta']['exchanges']:,} exchanges, interleaved by blocks of "
                    f"{chat['meta'].get('block', 1)} turns)",
                    f"{p50:.2f}x / {p95:.2f}x ({ours['p50_ms']:.1f} / {ours['p95_ms']:.1f} ms "
                    f"vs {classic['p50_ms']:.1f} / {classic['p95_ms']:.1f})",
                    f"<= {CHAT_RATIOS[0]}x / {CHAT_RATIOS[1]}x",
                    _status(p50 <= CHAT_RATIOS[0] and p95 <= CHAT_RATIOS[1]),
                )
            )
        if agent:
            rows.append(
                (
                    "memory LLM calls, against create_agent + SummarizationMiddleware",
                    f"{ours['llm_calls']:,} vs {agent['llm_calls']:,}",
                    "no more",
                    _status(ours["llm_calls"] <= agent["llm_calls"]),
                )
            )
            share = ours["summarizer_prompt_tokens"] / max(1, agent["summarizer_prompt_tokens"])
            rows.append(
                (
                    "summarizer prompt tokens, against create_agent + SummarizationMiddleware",
                    f"{ours['summarizer_prompt_tokens']:,} vs "
                    f"{agent['summarizer_prompt_tokens']:,} ({share:.0%})",
                    "<= 67%",
                    _status(share <= 2 / 3),
                )
            )
        kept = ", ".join(
            f"{row['memory']}: {'yes' if row['turn_1_fact_in_last_context'] else 'no'}"
            for row in chat["rows"]
        )
        rows.append(
            (
                "turn-1 fact in the last turn's context",
                kept,
                "yes, for this project",
                _status(ours["turn_1_fact_in_last_context"]),
            )
        )
    scaling = _load(parts, "scaling")
    if scaling:
        at = {row["turns"]: row for row in scaling}
        biggest = at.get(10_000) or scaling[-1]
        rows.append(
            (
                f"build_context above the query embedding, {biggest['turns']:,} turns (p50 ms)",
                ", ".join(f"{row['turns']:,}: {row['overhead_p50_ms']:.1f}" for row in scaling),
                "<= 3 at 10,000",
                _status(biggest["overhead_p50_ms"] <= 3) if 10_000 in at else "-",
            )
        )
    ingest = _load(parts, "ingest")
    if ingest:
        rows.append(
            (
                "bulk ingest, share of the raw encoder's throughput",
                f"{ingest['ratio']:.0%} ({ingest['memory_per_s']:.0f} msg/s)",
                ">= 90%",
                _status(ingest["ratio"] >= 0.9),
            )
        )
    serving = _load(parts, "serving")
    if serving:
        rows += _serving_rows(serving)
    rows += _locomo_rows(_load(parts, "locomo_recall"))
    rows += _baseline_rows(_load(parts, "locomo_baselines"))
    agent = _load(parts, "agent_thread")
    if agent:
        rows += _agent_rows(agent)
    embedders = _load(parts, "embedders")
    if embedders:
        rows += _embedder_rows(embedders)
    knowledge = _load(parts, "knowledge_updates")
    if knowledge:
        rows += _knowledge_rows(knowledge)
    storage = _load(parts, "bytes_per_turn")
    if storage:
        rows.append(
            (
                "bytes per stored turn (text + 384-d vector + index)",
                ", ".join(f"{row['store']} {row['bytes_per_turn']:,.0f}" for row in storage),
                "-",
                "-",
            )
        )
    lines = ["| benchmark | measured | target | |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return lines


def _baseline_rows(figures: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """Issue #15: this project's context against the baselines, at the same budgets."""
    if not figures:
        return []

    def recall(budgets: list[dict[str, Any]]) -> list[float]:
        return [scores["overall"]["recall"] for scores in budgets]

    ours = recall(figures["budgets"])
    sizes = " / ".join(f"{scores['budget']:,}" for scores in figures["budgets"])
    others = {name: recall(budgets) for name, budgets in figures["baselines"].items()}
    best = [max(others, key=lambda name, i=i: others[name][i]) for i in range(len(ours))]
    beaten = all(ours[i] > others[name][i] for i, name in enumerate(best))
    listed = "; ".join(
        f"{name} " + " / ".join(f"{value:.3f}" for value in values)
        for name, values in others.items()
    )
    whole = figures.get("full_history")
    full = (
        ""
        if whole is None
        else f"; full history {whole['overall']['recall']:.3f} at "
        f"{whole['overall']['tokens']:,.0f} tokens"
    )
    return [
        (
            f"LoCoMo evidence recall at {sizes} tokens: this project's context against the best "
            "baseline at each budget (same run, budget, counter and rendering)",
            " / ".join(f"{value:.3f}" for value in ours)
            + " vs "
            + " / ".join(f"{others[name][i]:.3f} ({name})" for i, name in enumerate(best)),
            "above every baseline at every budget",
            _status(beaten),
        ),
        (f"LoCoMo baselines at {sizes} tokens", listed + full, "-", "-"),
    ]


def _serving_rows(serving: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = serving["rows"]
    sessions = serving["settings"]["sessions"]
    figures = ", ".join(
        f"{row['store']} {row['workers']}w: {row['turns_per_s']:.0f} turns/s "
        f"(build_context p95 {row['build_p95_ms']:.0f} ms)"
        for row in rows
    )
    lines = [(f"{sessions:,} sessions served concurrently", figures, "-", "-")]
    one_loop = next((r for r in rows if r["store"] == "redis" and r["workers"] == 1), None)
    if one_loop:
        lines.append(
            (
                f"{sessions:,} sessions, one event loop on Redis: turns/s x 2 over the raw "
                "embedder's texts/s",
                f"{one_loop['ratio']:.2f} ({one_loop['turns_per_s']:.0f} turns/s, raw "
                f"{serving['raw_texts_per_s']:.0f} texts/s, "
                f"{one_loop['texts_per_model_call']:.1f} texts per model call)",
                ">= 0.6",
                _status(one_loop["ratio"] >= 0.6),
            )
        )
    return lines


def _embedder_rows(embedders: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    by_name = {row["name"]: row for row in embedders["rows"]}
    default, torch = by_name["minilm-onnx-int8"], by_name["minilm-torch"]
    fp32 = by_name["minilm-onnx"]
    cold = default["cold_start"]
    lines = [
        (
            "default embeddings (int8 ONNX): one sentence, batched, against torch",
            f"{default['single_p50_ms']:.1f} ms vs {torch['single_p50_ms']:.1f} ms, "
            f"{default['batched_texts_per_s']:.0f} vs {torch['batched_texts_per_s']:.0f} texts/s",
            "-",
            "-",
        ),
        (
            "cold start to the first context (fresh process, SQLite)",
            f"{cold['total_s']:.2f} s (import {cold['import_s']:.2f} s, first context "
            f"{cold['first_context_s']:.2f} s); torch: {torch['cold_start']['total_s']:.2f} s",
            "measured",
            "-",
        ),
    ]
    if default.get("locomo") and fp32.get("locomo"):
        gap = max(abs(default["locomo"][b] - fp32["locomo"][b]) for b in default["locomo"])
        lines.append(
            (
                "int8 is the default: LoCoMo recall within 0.005 of fp32 at every budget",
                f"largest difference {gap:.3f}",
                "<= 0.005",
                _status(gap <= 0.005),
            )
        )
    return lines


def _agent_rows(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """Issue #13: a long create_agent thread with SqliteSaver, against SummarizationMiddleware."""
    ours, theirs = rows[0], rows[-1]
    turns = ours["turns"]
    first, last = ours["at"]["10"]["p50_ms"], ours["at"][str(turns)]["p50_ms"]
    growth = last / first if first else float("inf")
    flat = ours["checkpoint_bytes_per_turn_last_block"] <= 1.2 * max(
        1.0, ours["checkpoint_bytes_per_turn_first_block"]
    )
    return [
        (
            f"agent thread of {turns:,} turns (SqliteSaver): turn p50 at the end over turn 10",
            f"{growth:.2f}x ({first:.1f} -> {last:.1f} ms; SummarizationMiddleware "
            f"{theirs['at']['10']['p50_ms']:.1f} -> {theirs['at'][str(turns)]['p50_ms']:.1f})",
            "<= 1.3x",
            _status(growth <= 1.3),
        ),
        (
            "agent thread: state messages at the end, checkpoint bytes per turn first / last tenth",
            f"{ours['state_messages']}, {ours['checkpoint_bytes_per_turn_first_block']:,.0f} / "
            f"{ours['checkpoint_bytes_per_turn_last_block']:,.0f} (SummarizationMiddleware: "
            f"{theirs['state_messages']}, {theirs['checkpoint_bytes_per_turn_last_block']:,.0f})",
            "bounded by the window, flat",
            _status(flat),
        ),
        (
            "agent thread: the turn-1 fact in the last prompt",
            f"{'yes' if ours['fact_in_last_prompt'] else 'no'} (SummarizationMiddleware: "
            f"{'yes' if theirs['fact_in_last_prompt'] else 'no'})",
            "yes",
            _status(ours["fact_in_last_prompt"]),
        ),
    ]


def _knowledge_rows(knowledge: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Issue #14: a user's facts across sessions at 500 tokens, per way facts come in."""
    labels = {
        "caller": "caller's entities",
        "caller-shuffled": "caller's entities, sessions stored newest first",
        "extractor": "scripted LLM summarizer",
    }
    rows = []
    for path, figures in knowledge["paths"].items():
        current, history = figures["right_current"], figures["right_history"]
        stale = figures["superseded_as_current"]
        rows.append(
            (
                f"user facts over time, right current / right history / superseded shown as "
                f"current, 500 tokens ({labels.get(path, path)})",
                f"{current:.3f} / {history:.3f} / {stale:.3f}",
                ">= 0.95 / >= 0.9 / 0",
                _status(current >= 0.95 and history >= 0.9 and stale == 0),
            )
        )
    return rows


def gaps(parts: Path) -> list[str]:
    """What limits each target that is not met, in the run's own figures."""
    notes: list[str] = []
    chat, scaling = _load(parts, "chat_loop"), _load(parts, "scaling")
    if chat and scaling:
        ours = chat["rows"][0]
        classic = next((r for r in chat["rows"] if r["memory"] == "classic CombinedMemory"), None)
        at = {row["turns"]: row for row in scaling}
        row = at.get(1_000) or scaling[0]
        embedding = row["p50_ms"] - row["overhead_p50_ms"]
        if classic and (
            ours["p50_ms"] > CHAT_RATIOS[0] * classic["p50_ms"]
            or ours["p95_ms"] > CHAT_RATIOS[1] * classic["p95_ms"]
        ):
            notes.append(
                f"- **Chat loop latency** ({ours['p50_ms']:.1f} / {ours['p95_ms']:.1f} ms against "
                f"{CHAT_RATIOS[0] * classic['p50_ms']:.1f} / "
                f"{CHAT_RATIOS[1] * classic['p95_ms']:.1f}). A turn waits for one embedding, "
                f"its query ({embedding:.1f} ms in the scaling run; the reply is embedded in the "
                f"background), and build_context's own work ({row['overhead_p50_ms']:.1f} ms at "
                f"{row['turns']:,} turns: recall, counting and rendering as many turns as the "
                "budget holds). The p95 turn is one that folds a summary batch (every 20 or so "
                "turns, in the call unless `background=True`)."
            )
    serving = _load(parts, "serving")
    one_loop = serving and next(
        (r for r in serving["rows"] if r["store"] == "redis" and r["workers"] == 1), None
    )
    if one_loop and one_loop["ratio"] < 0.6:
        notes.append(
            f"- **One event loop on Redis** ({one_loop['ratio']:.2f} of the raw embedder's "
            "throughput against 0.6). The embedding runs in the model's threads, off the event "
            "loop; the loop itself runs the engine's Python (recall and the budget, about 2-3 ms "
            "a turn) and about ten Redis round trips a turn, and shares the two cores with the "
            "model threads and the Redis server."
        )
    ingest = _load(parts, "ingest")
    if ingest and ingest["ratio"] < 0.9:
        notes.append(
            f"- **Bulk ingest** ({ingest['ratio']:.0%} of the raw encoder's throughput against "
            "90%). Both sides are the same model calls (2,000 texts, 64 per call for the memory, "
            "one call for the raw encoder); the rest of `add_messages` (checking each message's "
            "whole payload, storing a copy, indexing, folding offline) costs about 1-2% of a "
            "message's time, and back-to-back runs on this shared machine vary by 5 points "
            "(89-97%), so a single run lands on either side of the target."
        )
    locomo = _load(parts, "locomo_recall")
    if locomo:
        small = next((b for b in locomo["budgets"] if b["budget"] == 500), None)
        if small and small["overall"]["recall"] < LOCOMO_TARGETS[500]:
            weak = ", ".join(
                f"{name} {figures['recall']:.2f}"
                for name, figures in small["by_category"].items()
                if figures["recall"] < LOCOMO_TARGETS[500]
            )
            notes.append(
                f"- **LoCoMo at 500 tokens** ({small['overall']['recall']:.3f} against "
                f"{LOCOMO_TARGETS[500]}). "
                f"Weak categories: {weak}. Their evidence spans several sessions, which a "
                "500-token context rarely holds together; the levers tried and their figures "
                "are in `docs/benchmarks/locomo_levers.md` (giving the summary's share to recall "
                "reaches about 0.75 but drops standing facts, such as an allergy, that only the "
                "summary carries)."
            )
    return ["## Targets not met, and what limits them", "", *notes, ""] if notes else []


def section(parts: Path, stem: str, title: str, command: str) -> list[str]:
    """One part's Markdown under a second-level heading, its links made relative to docs/."""
    path = parts / f"{stem}.md"
    if not path.exists():
        return [f"## {title}", "", f"Not measured yet: run `{command}`.", ""]
    text = path.read_text(encoding="utf-8")
    body = text.split("\n", 1)[1] if text.startswith("# ") else text
    body = re.sub(r"^(#{1,5}) ", r"#\1 ", body, flags=re.MULTILINE)  # one level down
    body = re.sub(r"\]\((?!https?:|/|#)([^)]+)\)", rf"]({parts.name}/\1)", body)
    return [f"## {title}", "", body.strip(), ""]


def build(parts: Path) -> str:
    """The whole page."""
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench`: each script under `benchmarks/` writes its part under "
        "`docs/benchmarks/`, then `benchmarks/report.py` assembles this page. Do not edit by "
        "hand. Every part names the command that made it and the machine it ran on.",
        "",
        START,
        *headline(parts),
        END,
        "",
        *gaps(parts),
    ]
    for stem, title, command in PARTS:
        lines += section(parts, stem, title, command)
    return "\n".join(lines)


def update_readme(readme: Path, page: str) -> bool:
    """Copy the headline (between the markers) into ``readme``; whether it had the markers."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return False
    block = page[page.index(START) : page.index(END) + len(END)]
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(head + block + tail, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--readme", default=str(ROOT / "README.md"), help="'' to leave it")
    args = parser.parse_args(argv)
    page = build(args.parts)
    args.out.write_text(page, encoding="utf-8")
    print(f"wrote {args.out}")
    if args.readme and not update_readme(Path(args.readme), page):
        print(f"{args.readme} has no {START} / {END} markers: headline not copied")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
