"""The ``hybrid-memory`` command line.

``hybrid-memory demo`` replays a sample conversation that ships with the package (146 turns over
three weeks, with facts planted in the first minutes), then asks three questions about those
facts and shows, for each, the context the memory built: sections, recall scores, tokens against
the full history, and timings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.messages.utils import count_tokens_approximately

from langchain_hybrid_memory._version import __version__
from langchain_hybrid_memory.errors import HybridMemoryError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

    from langchain_hybrid_memory.types import MemoryContext

__all__ = ["DemoConversation", "load_demo_conversation", "main"]


@dataclass(frozen=True)
class DemoConversation:
    """The sample conversation shipped for the demo."""

    title: str
    user_id: str
    session_id: str
    messages: list[tuple[BaseMessage, datetime]]
    probes: list[tuple[str, list[str]]]


def load_demo_conversation() -> DemoConversation:
    """Load the sample conversation that ships with the package.

    Example:
        >>> conversation = load_demo_conversation()
        >>> len(conversation.messages) >= 100
        True
    """
    raw: dict[str, Any] = json.loads(
        resources.files("langchain_hybrid_memory")
        .joinpath("data/demo_conversation.json")
        .read_text("utf-8")
    )
    messages: list[tuple[BaseMessage, datetime]] = []
    for item in raw["messages"]:
        when = datetime.fromisoformat(item["time"])
        if item["role"] == "user":
            messages.append((HumanMessage(item["text"], name="Ana"), when))
        else:
            messages.append((AIMessage(item["text"]), when))
    probes = [(probe["question"], list(probe["expect"])) for probe in raw["probes"]]
    return DemoConversation(raw["title"], raw["user_id"], raw["session_id"], messages, probes)


def _percentile(values: Sequence[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run_demo(console: Console, *, store: str | None, token_budget: int, window_turns: int) -> int:
    """Replay the sample conversation and show the context built for each probe question."""
    from rich.panel import Panel
    from rich.table import Table

    from langchain_hybrid_memory.hybrid import HybridMemory

    conversation = load_demo_conversation()
    memory = HybridMemory(store=store, token_budget=token_budget, window_turns=window_turns)
    session = conversation.session_id
    console.print(
        f"[bold]hybrid-memory demo[/] · {conversation.title}: replaying "
        f"{len(conversation.messages)} turns (window {window_turns}, budget {token_budget} tokens)"
    )
    started = time.perf_counter()
    memory.embeddings.embed_query("warm up")  # load the model before timing turns
    load_seconds = time.perf_counter() - started
    memory.forget_session(session)
    add_ms = []
    for message, when in conversation.messages:
        began = time.perf_counter()
        memory.add_message(session, message, user_id=conversation.user_id, timestamp=when)
        add_ms.append((time.perf_counter() - began) * 1000)
    history_tokens = count_tokens_approximately(memory.transcript(session))
    build_ms = []
    remembered = 0
    for question, expected in conversation.probes:
        began = time.perf_counter()
        context = memory.build_context(session, question, user_id=conversation.user_id)
        build_ms.append((time.perf_counter() - began) * 1000)
        found = all(word.casefold() in context.to_text().casefold() for word in expected)
        remembered += found
        console.print(Panel(_describe(context, expected, found), title=f"[bold]{question}[/]"))
    table = Table(title="Cost")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("full history tokens", str(history_tokens))
    table.add_row("context tokens (budget)", f"≤ {token_budget}")
    table.add_row("model load (one-off)", f"{load_seconds:.1f} s")
    table.add_row(
        "add_message p50 / p95", f"{_percentile(add_ms, 50):.1f} / {_percentile(add_ms, 95):.1f} ms"
    )
    table.add_row("build_context mean", f"{statistics.fmean(build_ms):.1f} ms")
    table.add_row("probes answered from memory", f"{remembered} / {len(conversation.probes)}")
    console.print(table)
    memory.close()
    return 0


def _describe(context: MemoryContext, expected: list[str], found: bool) -> str:
    from rich.markup import escape

    lines = [
        f"tokens {context.tokens} / {context.token_budget} · "
        + " · ".join(f"{name} {tokens}" for name, tokens in context.section_tokens.items()),
    ]
    if context.summary:
        lines.append(
            f"[bold]summary[/] {escape(context.summary[:300])}{'…' if len(context.summary) > 300 else ''}"
        )
    for entity in context.entities:
        lines.append(f"[bold]entity[/] {escape(entity.name)}")
    for item in context.recalled:
        dense = "-" if item.dense_score is None else f"{item.dense_score:.2f}"
        lines.append(
            f"[bold]recall[/] {item.score:+.2f} (dense {dense}, bm25 {item.lexical_score:.1f}) "
            f"{item.turn.timestamp:%d %b} {escape(item.turn.speaker)}: {escape(item.turn.text[:110])}"
        )
    lines.append(f"[bold]window[/] {len(context.window)} recent turns")
    verdict = "[green]remembered[/]" if found else "[red]missing[/]"
    lines.append(f"{verdict}: {', '.join(expected)}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybrid-memory",
        description="Inspect LangChain hybrid memory: window, summary, entities and recall.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="replay a sample conversation and show what memory recalls"
    )
    demo.add_argument("--store", default=None, help="store URL (default: in memory)")
    demo.add_argument("--budget", type=int, default=600, help="token budget of each context")
    demo.add_argument("--window", type=int, default=10, help="recent turns kept verbatim")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 memory error, 2 usage)."""
    from rich.console import Console

    args = _parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "demo":
            return run_demo(
                console, store=args.store, token_budget=args.budget, window_turns=args.window
            )
    except HybridMemoryError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
