"""One long create_agent thread with a SQLite checkpointer: this middleware against SummarizationMiddleware (issue #13, item 6).

The same 1,000-exchange conversation as ``benchmarks/chat_loop.py`` goes through two
``create_agent`` agents, each with LangGraph's ``SqliteSaver`` on a file of its own: one with
``HybridMemoryMiddleware`` (this project's defaults, a 1,000-token budget, a counting fake LLM
as summarizer), one with LangChain's ``SummarizationMiddleware`` (trigger at 1,000 tokens,
keeping 10 messages, the same kind of fake summarizer). The agents take turns, an untimed pause
before each (torch-free here, but the background embedding is waited for outside the turn).

Measured per agent: turn p50 / p95 around turn 10, 100 and 1,000; the messages in the thread's
state at the end; checkpoint bytes written per turn (the SQLite file's growth, per block of
turns); LLM calls (chat model and summarizer); whether the first message's fact reaches the
chat model's prompt at the last turn; and, for this project, how many messages it stored.

Run from the repository root::

    .venv/bin/python benchmarks/agent_thread.py
    .venv/bin/python benchmarks/agent_thread.py --turns 120 --out /tmp/agent_thread.md
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the chat loop's conversation

from chat_loop import FACT, CountingChatModel, conversation, summarizer

from langchain_hybrid_memory import HybridMemory, HybridMemoryMiddleware

ROOT = Path(__file__).resolve().parents[1]
#: Untimed pause before each turn (see benchmarks/chat_loop.py).
PAUSE_SECONDS = 0.005
#: Issue #13: turn time at 1,000 turns within this factor of turn 10's.
TARGET_GROWTH = 1.3


@dataclass
class Thread:
    """One agent on one SQLite checkpoint file, and what it measured."""

    name: str
    agent: Any
    chat: CountingChatModel
    summarizer: CountingChatModel
    path: Path
    memory: HybridMemory | None = None
    turn_ms: list[float] = field(default_factory=list)
    file_bytes: list[int] = field(default_factory=list)

    def turn(self, text: str) -> None:
        time.sleep(PAUSE_SECONDS)
        began = time.perf_counter()
        self.agent.invoke({"messages": [HumanMessage(text)]}, {"configurable": {"thread_id": "t"}})
        self.turn_ms.append((time.perf_counter() - began) * 1000)
        if self.memory is not None:
            self.memory.flush()  # the background embedding, outside the timed turn
        self.file_bytes.append(_size(self.path))


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def build(name: str, folder: Path, replies: list[str]) -> Thread:
    from langchain.agents import create_agent
    from langchain.agents.middleware import SummarizationMiddleware
    from langgraph.checkpoint.sqlite import SqliteSaver

    answers = iter(replies)
    chat = CountingChatModel(reply=lambda _messages: next(answers))
    path = folder / f"{name}.sqlite"
    saver = SqliteSaver(sqlite3.connect(path, check_same_thread=False))
    if name == "hybrid":
        fold = summarizer(json_answer=True)
        memory = HybridMemory(llm=fold, token_budget=1000)
        agent = create_agent(
            chat, tools=[], middleware=[HybridMemoryMiddleware(memory)], checkpointer=saver
        )
        return Thread("HybridMemoryMiddleware", agent, chat, fold, path, memory)
    fold = summarizer()
    middleware = SummarizationMiddleware(
        model=fold, trigger=("tokens", 1000), keep=("messages", 10)
    )
    agent = create_agent(chat, tools=[], middleware=[middleware], checkpointer=saver)
    return Thread("SummarizationMiddleware", agent, chat, fold, path)


def _window(values: list[float], start: int, stop: int) -> list[float]:
    return values[max(0, start) : max(start + 1, stop)]


def figures(thread: Thread, turns: int) -> dict[str, Any]:
    """What one agent measured, at turn 10, 100 and the last turns."""
    points = {10: (0, 10), 100: (90, 110), turns: (turns - 20, turns)}
    at = {}
    for point, (start, stop) in points.items():
        if point > turns:
            continue
        values = _window(thread.turn_ms, start, stop)
        at[point] = {
            "p50_ms": statistics.median(values),
            "p95_ms": sorted(values)[int(0.95 * (len(values) - 1))],
        }
    block = max(1, turns // 10)
    growth = [
        (thread.file_bytes[i + block - 1] - thread.file_bytes[i - 1]) / block
        for i in range(1, turns - block + 1, block)
    ]
    state = thread.agent.get_state({"configurable": {"thread_id": "t"}}).values["messages"]
    row = {
        "agent": thread.name,
        "turns": turns,
        "at": {str(point): value for point, value in at.items()},
        "state_messages": len(state),
        "checkpoint_bytes_per_turn_first_block": growth[0] if growth else 0.0,
        "checkpoint_bytes_per_turn_last_block": growth[-1] if growth else 0.0,
        "checkpoint_file_bytes": thread.file_bytes[-1],
        "chat_calls": thread.chat.calls,
        "summarizer_calls": thread.summarizer.calls,
        "fact_in_last_prompt": any(FACT in m.text for m in thread.chat.last_prompt),
    }
    if thread.memory is not None:
        row["messages_stored"] = len(thread.memory.transcript("t"))
    return row


def run(turns: int) -> list[dict[str, Any]]:
    pairs = conversation(turns)
    replies = [reply for _, reply in pairs]
    with tempfile.TemporaryDirectory() as folder:
        threads = [build(name, Path(folder), replies) for name in ("hybrid", "summarization")]
        for index, (user, _) in enumerate(pairs):
            for thread in threads[index % 2 :] + threads[: index % 2]:
                thread.turn(user)
            if (index + 1) % 100 == 0:
                print(f"  {index + 1} turns", flush=True)
        rows = [figures(thread, turns) for thread in threads]
        for thread in threads:
            if thread.memory is not None:
                thread.memory.close()
    return rows


def write(rows: list[dict[str, Any]], out: Path, command: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    turns = rows[0]["turns"]
    points = list(rows[0]["at"])
    head = " | ".join(f"turn {int(p):,} p50 / p95 ms" for p in points)
    lines = [
        "# One long agent thread with a SQLite checkpointer",
        "",
        "Written by `benchmarks/agent_thread.py`; do not edit by hand, run it again.",
        "",
        "```bash",
        command,
        "```",
        "",
        f"One `create_agent` thread of {turns:,} exchanges (the chat loop's conversation), "
        "checkpointed by LangGraph's `SqliteSaver`, once with this project's "
        "`HybridMemoryMiddleware` (defaults, 1,000-token budget) and once with LangChain's "
        "`SummarizationMiddleware` (trigger 1,000 tokens, keep 10 messages); zero-latency fake "
        "chat models and summarizers that count their calls. *Checkpoint bytes per turn*: the "
        "SQLite file's growth per turn over the first and the last tenth of the thread.",
        "",
        f"| agent | {head} | state messages at the end | checkpoint bytes per turn, first / last tenth | chat + summarizer calls | turn-1 fact in the last prompt |",
        "| --- | " + " | ".join("---:" for _ in points) + " | ---: | ---: | ---: | :---: |",
    ]
    for row in rows:
        cells = " | ".join(
            f"{row['at'][p]['p50_ms']:.1f} / {row['at'][p]['p95_ms']:.1f}" for p in points
        )
        lines.append(
            f"| {row['agent']} | {cells} | {row['state_messages']} | "
            f"{row['checkpoint_bytes_per_turn_first_block']:,.0f} / "
            f"{row['checkpoint_bytes_per_turn_last_block']:,.0f} | "
            f"{row['chat_calls']:,} + {row['summarizer_calls']:,} | "
            f"{'yes' if row['fact_in_last_prompt'] else 'no'} |"
        )
    ours = rows[0]
    lines += [
        "",
        f"This project stored {ours.get('messages_stored', 0):,} messages "
        f"(each once: {2 * turns:,} were said). Targets (issue #13): state messages bounded by "
        f"the window, checkpoint bytes per turn flat, turn time at {turns:,} turns within "
        f"{TARGET_GROWTH}x of turn 10's, the turn-1 fact in the last prompt.",
        "",
    ]
    out.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks" / "agent_thread.md"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=r"(?s).*deprecated")
    rows = run(args.turns)
    for row in rows:
        last = row["at"][str(args.turns)]
        print(
            f"{row['agent']:>24}: last p50 {last['p50_ms']:.1f} ms, state {row['state_messages']} "
            f"messages, {row['checkpoint_bytes_per_turn_last_block']:,.0f} checkpoint bytes/turn, "
            f"fact {'kept' if row['fact_in_last_prompt'] else 'lost'}"
        )
    command = "python benchmarks/agent_thread.py"
    if args.turns != 1000:
        command += f" --turns {args.turns}"
    write(rows, args.out, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
