"""One chat loop, four memories: cost per turn and what reaches the prompt (issue #6, item 1).

The same synthetic 1,000-exchange conversation drives, in one process, interleaved by blocks of
20 turns (each memory runs 20 turns, then the next memory the same 20; the order rotates every
block, so a noisy neighbour hurts all of them alike, and each memory runs with its own model in
the CPU's caches, as a server running one memory would):

- **hybrid (memory)** and **hybrid (SQLite)**: this project, ``HybridMemory`` with its in-memory
  and its SQLite store;
- **classic CombinedMemory**: LangChain classic ``ConversationSummaryBufferMemory
  (max_token_limit=1000)`` plus ``VectorStoreRetrieverMemory`` over the community FAISS vector
  store (k=3);
- **tutorial design**: a window of 10 messages, numpy cosine over a Python list of every
  message's embedding (top 3), and an entity dict of capitalised words;
- **create_agent + SummarizationMiddleware**: LangChain 1.x, ``trigger=("tokens", 1000)``,
  ``keep=("messages", 10)``, an ``InMemorySaver`` checkpointer, one user message per call.

Per turn, each memory builds the context for the user input, then stores the user message and
the scripted reply. Every memory embeds with the same local all-MiniLM-L6-v2 and summarizes with
the same zero-latency fake chat model, which counts its calls and the tokens of its prompts. The
conversation's first user message states a fact that the last one asks about.

Peak memory is measured apart, one memory per fresh process (the interleaved loop shares one
heap): the largest resident size after a turn, above the size once the model has run.

Run from the repository root::

    .venv/bin/python benchmarks/chat_loop.py                  # 1,000 exchanges, ~5 minutes
    .venv/bin/python benchmarks/chat_loop.py --turns 50 --out /tmp/chat_loop.md --no-memory
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable  # noqa: TC003 - pydantic resolves the field at run time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.embeddings import LocalMiniLMEmbeddings, OnnxMiniLMEmbeddings
from langchain_hybrid_memory.stores import InMemoryStore, SQLiteStore

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.embeddings import Embeddings

ROOT = Path(__file__).resolve().parents[1]

#: The fact of the first user message, and the question of the last one.
FIRST_MESSAGE = (
    "Before we start: my sister Zoraida lives in Lisbon and works as a marine biologist "
    "at the oceanarium."
)
FACT = "marine biologist"
LAST_QUESTION = "Remind me, what does my sister Zoraida do for a living?"

TOPICS = [
    ("pottery class", "glazes", "the kiln"),
    ("new job", "onboarding", "my manager Priya"),
    ("trip to Valencia", "the paella place", "train tickets"),
    ("10k race", "interval training", "my knee"),
    ("broken bike", "the derailleur", "a new chain"),
    ("sourdough", "the starter", "hydration"),
    ("apartment hunt", "the landlord", "the deposit"),
    ("guitar lessons", "barre chords", "my teacher Tomas"),
    ("tax return", "the receipts", "the deadline"),
    ("garden", "tomatoes", "the slugs"),
    ("book club", "the novel", "my friend Marta"),
    ("kitten", "the vet", "vaccinations"),
]
OPENERS = [
    "I keep thinking about the {0}.",
    "Quick update on the {0}:",
    "Can we talk about the {0} again?",
    "So, the {0}.",
    "Another thing about the {0}.",
]
DETAILS = [
    "{1} went better than I expected, though {2} is still a worry.",
    "I spent the whole evening on {1} and forgot about {2}.",
    "what would you do about {1} if {2} gets in the way?",
    "{2} says {1} should take two more weeks.",
    "I wrote a list: {1} first, then {2}, then rest.",
]
REPLIES = [
    "That sounds like progress. With {1}, small steady steps usually beat one big push.",
    "I'd sort out {2} first, since {1} depends on it. Want a short plan for the week?",
    "Good call. Keep notes on {1} so you can see what changes from one week to the next.",
    "If {2} keeps slipping, set a fixed slot for it and protect {1} from the rest of the day.",
    "It's normal for {1} to take longer. How do you feel about {2} right now?",
]
#: The fake summarizer's answer: about 150 tokens, whatever it is asked.
SUMMARY_TEXT = (
    "The user talks about everyday projects: a pottery class, a new job, a trip to Valencia, "
    "training for a 10k race, a broken bike, sourdough baking, an apartment hunt, guitar lessons, "
    "a tax return, a vegetable garden, a book club and a kitten. The assistant suggests small "
    "steady steps, notes to track progress, fixed time slots for chores and checking in on how "
    "the user feels. Names mentioned: Priya, the user's manager; Tomas, the guitar teacher; "
    "Marta, a friend from the book club. The user tends to plan with lists and worries about "
    "deadlines and appointments."
)


def conversation(exchanges: int, seed: int = 11) -> list[tuple[str, str]]:
    """``exchanges`` (user message, reply) pairs: the fact first, its question last."""
    rng = random.Random(seed)
    pairs = [(FIRST_MESSAGE, "Noted: Zoraida, Lisbon, the oceanarium. What's on your mind today?")]
    for index in range(1, exchanges - 1):
        topic = TOPICS[rng.randrange(len(TOPICS))]
        user = f"{rng.choice(OPENERS)} {rng.choice(DETAILS)}".format(*topic)
        user = user[0].upper() + user[1:] + f" (day {index})"
        pairs.append((user, rng.choice(REPLIES).format(*topic)))
    if exchanges > 1:
        pairs.append((LAST_QUESTION, "She is a marine biologist at the oceanarium in Lisbon."))
    return pairs[:exchanges]


# -- the fake LLM ------------------------------------------------------------------------------


class CountingChatModel(BaseChatModel):
    """A zero-latency chat model that counts its calls and the tokens of its prompts.

    It answers from ``reply`` (a function of the prompt's messages), so one class serves as a
    summarizer (a fixed summary) and as an agent's chat model (the scripted reply).
    """

    reply: Callable[[list[BaseMessage]], str]
    calls: int = 0
    prompt_tokens: int = 0
    last_prompt: list[BaseMessage] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "counting-fake"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls += 1
        self.prompt_tokens += count_tokens_approximately(messages)
        self.last_prompt = list(messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.reply(messages)))])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> CountingChatModel:
        """No tools are called in this loop; an agent may still bind an empty list."""
        return self

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """LangChain's approximate count (the default would fetch a GPT-2 tokenizer)."""
        return count_tokens_approximately(messages)

    def get_num_tokens(self, text: str) -> int:
        """LangChain's approximate count of ``text``."""
        return count_tokens_approximately([HumanMessage(text)])


def summarizer(json_answer: bool = False) -> CountingChatModel:
    """The fake summarizer: the same summary, as JSON for this project's summarizer."""
    text = SUMMARY_TEXT.strip()
    answer = json.dumps({"summary": text, "entities": []}) if json_answer else text
    return CountingChatModel(reply=lambda _messages: answer)


# -- the memories ------------------------------------------------------------------------------


class ChatMemory(Protocol):
    """What the loop asks of each memory."""

    name: str
    summarizer: CountingChatModel

    def context(self, user: str) -> str:
        """The memory's context for ``user``, as the text the chat model would see."""
        ...

    def save(self, user: str, reply: str) -> None:
        """Store one exchange."""
        ...

    def settle(self) -> None:
        """Finish background work, untimed, so it is not counted in another memory's turn."""
        ...


class Hybrid:
    """This project, with its default settings (embeddings included) and a 1,000-token budget."""

    def __init__(self, name: str, store: Any) -> None:
        self.name = name
        self.summarizer = summarizer(json_answer=True)
        # the default embeddings, but an object of its own: memories sharing one would share
        # its vector cache, and the second to see a user message would get its vector free
        self.memory = HybridMemory(
            store=store,
            llm=self.summarizer,
            token_budget=1000,
            embeddings=OnnxMiniLMEmbeddings(),
        )
        self.memory.embeddings.embed_documents(["warm up", "the model and its buffers"])

    def context(self, user: str) -> str:
        context = self.memory.build_context("chat", user)
        return "\n".join(message.text for message in context.to_messages())

    def save(self, user: str, reply: str) -> None:
        self.memory.add_messages("chat", [HumanMessage(user), AIMessage(reply)])

    def settle(self) -> None:
        # the reply is embedded in the background (while the next LLM call would run): wait
        # for it outside the timed turn, so another memory's turn does not pay for it
        self.memory.flush()


class ClassicCombined:
    """LangChain classic: summary buffer (1,000 tokens) plus vector-store recall (k=3)."""

    name = "classic CombinedMemory"

    def __init__(self, embeddings: Embeddings) -> None:
        from langchain_classic.memory import (
            CombinedMemory,
            ConversationSummaryBufferMemory,
            VectorStoreRetrieverMemory,
        )
        from langchain_community.vectorstores import FAISS

        self.summarizer = summarizer()
        store = FAISS.from_texts(["(empty)"], embeddings)  # the class cannot start empty
        self.memory = CombinedMemory(
            memories=[
                ConversationSummaryBufferMemory(
                    llm=self.summarizer, max_token_limit=1000, input_key="input"
                ),
                VectorStoreRetrieverMemory(
                    retriever=store.as_retriever(search_kwargs={"k": 3}),
                    memory_key="recalled",
                    input_key="input",
                ),
            ]
        )

    def context(self, user: str) -> str:
        variables = self.memory.load_memory_variables({"input": user})
        return "\n".join(str(value) for value in variables.values())

    def save(self, user: str, reply: str) -> None:
        self.memory.save_context({"input": user}, {"output": reply})

    def settle(self) -> None:
        """Nothing runs in the background."""


class Tutorial:
    """The design most tutorials teach: window, cosine over a list of vectors, entity dict."""

    name = "tutorial design"
    _NAME = re.compile(r"\b[A-Z][a-z]{2,}\b")

    def __init__(self, embeddings: Embeddings, window: int = 10, k: int = 3) -> None:
        self.embeddings = embeddings
        self.window = window
        self.k = k
        self.messages: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.entities: dict[str, list[str]] = {}
        self.summarizer = summarizer()  # never called: this design keeps no summary

    def context(self, user: str) -> str:
        query = np.array(self.embeddings.embed_query(user))
        older = len(self.messages) - self.window
        scores = [
            float(np.dot(query, vector) / (np.linalg.norm(query) * np.linalg.norm(vector)))
            for vector in self.vectors[: max(0, older)]
        ]
        best = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)[: self.k]
        facts = [
            fact
            for name in set(self._NAME.findall(user))
            for fact in self.entities.get(name, [])[-3:]
        ]
        return "\n".join(
            [*facts, *(self.messages[i] for i in best), *self.messages[-self.window :]]
        )

    def save(self, user: str, reply: str) -> None:
        for text in (user, reply):
            self.messages.append(text)
            self.vectors.append(np.array(self.embeddings.embed_query(text)))
            for name in set(self._NAME.findall(text)):
                self.entities.setdefault(name, []).append(text)

    def settle(self) -> None:
        """Nothing runs in the background."""


class AgentWithSummarization:
    """LangChain 1.x: create_agent with SummarizationMiddleware and an in-memory checkpointer."""

    name = "create_agent + SummarizationMiddleware"

    def __init__(self, replies: Iterator[str]) -> None:
        from langchain.agents import create_agent
        from langchain.agents.middleware import SummarizationMiddleware
        from langgraph.checkpoint.memory import InMemorySaver

        self.summarizer = summarizer()
        self.chat = CountingChatModel(reply=lambda _messages: next(replies))
        self.agent = create_agent(
            model=self.chat,
            tools=[],
            middleware=[
                SummarizationMiddleware(
                    model=self.summarizer, trigger=("tokens", 1000), keep=("messages", 10)
                )
            ],
            checkpointer=InMemorySaver(),
        )
        self._context = ""

    def context(self, user: str) -> str:
        # The agent builds its context inside the call that also stores the exchange: run it
        # here and read what its chat model was sent (minus the new user message).
        self.agent.invoke(
            {"messages": [HumanMessage(user)]}, {"configurable": {"thread_id": "chat"}}
        )
        return "\n".join(message.text for message in self.chat.last_prompt[:-1])

    def save(self, user: str, reply: str) -> None:
        """Already stored by the agent's call in :meth:`context`."""

    def settle(self) -> None:
        """Nothing runs in the background."""


# -- the loop ----------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the loop measured of one memory."""

    name: str
    turn_ms: list[float] = field(default_factory=list)
    context_tokens: list[int] = field(default_factory=list)
    fact_kept: bool = False

    def row(self, memory: ChatMemory) -> dict[str, Any]:
        """Figures of this memory, for the report."""
        return {
            "memory": self.name,
            "p50_ms": statistics.median(self.turn_ms),
            "p95_ms": _percentile(self.turn_ms, 0.95),
            "last_100_p50_ms": statistics.median(self.turn_ms[-100:]),
            "llm_calls": memory.summarizer.calls,
            "summarizer_prompt_tokens": memory.summarizer.prompt_tokens,
            "mean_context_tokens": statistics.fmean(self.context_tokens),
            "max_context_tokens": max(self.context_tokens),
            "turn_1_fact_in_last_context": self.fact_kept,
            "turn_ms": [round(ms, 3) for ms in self.turn_ms],
        }


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(fraction * len(ordered)) - 1)]


def build(name: str, embeddings: Embeddings, pairs: list[tuple[str, str]], tmp: Path) -> ChatMemory:
    """One memory of the comparison, by its key."""
    if name == "hybrid-memory":
        return Hybrid("hybrid (in-memory store)", InMemoryStore())
    if name == "hybrid-sqlite":
        return Hybrid("hybrid (SQLite store)", SQLiteStore(tmp / "chat.db"))
    if name == "classic":
        return ClassicCombined(embeddings)
    if name == "tutorial":
        return Tutorial(embeddings)
    if name == "agent":
        return AgentWithSummarization(iter([reply for _, reply in pairs]))
    msg = f"unknown memory {name!r}"
    raise ValueError(msg)


#: Turns each memory runs in a row before the next memory runs the same turns (see run_loop).
BLOCK = 20
#: An untimed pause before each memory's turn: torch's worker threads spin for a while after a
#: call, and in this interleaved loop they would spin through the next memory's timed turn (a
#: server running one memory has no such neighbour). Every memory gets the same pause.
PAUSE_SECONDS = 0.005

MEMORIES = ["hybrid-memory", "hybrid-sqlite", "classic", "tutorial", "agent"]


def run_loop(
    names: list[str], pairs: list[tuple[str, str]], embeddings: Embeddings, block: int = BLOCK
) -> list[dict[str, Any]]:
    """Run every memory on the conversation, interleaved by blocks of turns; figures per memory.

    Each memory runs ``block`` turns in a row, then the next memory the same turns (the order
    rotating from block to block), so every memory meets the machine's noise alike, but runs
    with its own model and data in the CPU's caches, as a server running one memory does.
    ``block=1`` interleaves turn by turn: then each turn starts with caches full of the other
    memories' models (torch's weights are 90 MB), which slows the fastest memories most.
    """
    with tempfile.TemporaryDirectory() as tmp:
        memories = [build(name, embeddings, pairs, Path(tmp)) for name in names]
        tallies = [Tally(memory.name) for memory in memories]
        counter = count_tokens_approximately
        for start in range(0, len(pairs), block):
            order = list(range(len(memories)))
            shift = (start // block) % len(order)
            for index in order[shift:] + order[:shift]:
                memory, tally = memories[index], tallies[index]
                for turn in range(start, min(start + block, len(pairs))):
                    user, reply = pairs[turn]
                    time.sleep(PAUSE_SECONDS)
                    began = time.perf_counter()
                    text = memory.context(user)
                    memory.save(user, reply)
                    tally.turn_ms.append((time.perf_counter() - began) * 1000)
                    memory.settle()
                    tally.context_tokens.append(counter([HumanMessage(text)]) if text else 0)
                    if turn == len(pairs) - 1:
                        tally.fact_kept = FACT in text
            done = min(start + block, len(pairs))
            if done % 100 == 0 or done == len(pairs):
                print(f"  {done} exchanges", flush=True)
        return [tally.row(memory) for tally, memory in zip(tallies, memories, strict=True)]


def measure_peak(name: str, exchanges: int) -> int:
    """The peak resident bytes one memory adds over the whole loop (run in a fresh process)."""
    embeddings = LocalMiniLMEmbeddings()
    embeddings.embed_documents(["warm up", "the model and its buffers"])
    pairs = conversation(exchanges)
    with tempfile.TemporaryDirectory() as tmp:
        memory = build(name, embeddings, pairs, Path(tmp))
        # ru_maxrss would include the model's loading peak: sample the resident size instead,
        # from a baseline taken once the model has run on texts of every length in the loop
        embeddings.embed_documents([text for pair in pairs[:20] for text in pair])
        before = peak = _rss_bytes()
        for user, reply in pairs:
            memory.context(user)
            memory.save(user, reply)
            memory.settle()
            peak = max(peak, _rss_bytes())
    return peak - before


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(names: list[str], exchanges: int) -> dict[str, int]:
    """Peak resident bytes each memory adds, measured in one fresh process per memory."""
    peaks = {}
    for name in names:
        command = [sys.executable, __file__, "--peak-of", name, "--turns", str(exchanges)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        peaks[name] = int(done.stdout.strip().splitlines()[-1])
    return peaks


# -- the report --------------------------------------------------------------------------------


def write(rows: list[dict[str, Any]], meta: dict[str, Any], out: Path) -> None:
    """Markdown table, JSON figures and a PNG plot next to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    ours = rows[0]

    def ratio(row: dict[str, Any], key: str) -> str:
        return f"{row[key] / ours[key]:.1f}x" if ours[key] else "-"

    lines = [
        "# Chat loop: cost per turn against the memories users would pick instead",
        "",
        "Written by `benchmarks/chat_loop.py`; do not edit by hand, run it again.",
        "",
        f"```bash\n{meta['command']}\n```",
        "",
        f"{meta['exchanges']:,} exchanges (a user message and a reply each; "
        f"{2 * meta['exchanges']:,} messages), the same for every memory, in one process, "
        f"interleaved by blocks of {meta.get('block', 1)} turns (each memory runs a block, then the "
        "next memory the same turns, the order rotating: all meet the machine's noise alike, and "
        "each runs with its own model in the CPU's caches). This project runs with its defaults and a 1,000-token budget. A turn: "
        "build the context for the user message, then store the "
        "message and its reply. Embeddings: all-MiniLM-L6-v2, local: this project's default "
        "(int8 on ONNX Runtime; the reply is embedded in the background, which the loop waits "
        "for outside the timed turn), sentence-transformers on torch for the others. Summarizer: a zero-latency "
        "fake chat model counting calls and prompt tokens (LangChain's approximate counter), "
        "answering a ~150-token summary. *LLM calls* counts every call a memory makes (this "
        "project's one call per batch returns the summary and the entities). *Context tokens*: "
        "what the memory adds to the prompt, without the new user message. *Turn-1 fact*: the "
        "first message's fact is in the context built for the last message, which asks about it "
        "(a summary made by the fake LLM cannot keep it: only recall can). *Peak memory*: the "
        "largest resident size after any turn, above the size once the model has run, one fresh "
        "process per memory (the loaded model itself, about the same for all, is not counted).",
        "",
        "| memory | p50 ms | p95 ms | p50 ms, last 100 | LLM calls | summarizer prompt tokens "
        "| mean / max context tokens | peak memory | turn-1 fact |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for row in rows:
        peak = row.get("peak_memory_bytes")
        peak_text = f"{peak / 2**20:.1f} MiB" if peak is not None else "-"
        lines.append(
            f"| {row['memory']} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | "
            f"{row['last_100_p50_ms']:.1f} | {row['llm_calls']:,} | "
            f"{row['summarizer_prompt_tokens']:,} | {row['mean_context_tokens']:.0f} / "
            f"{row['max_context_tokens']:,} | {peak_text} | "
            f"{'yes' if row['turn_1_fact_in_last_context'] else 'no'} |"
        )
    lines += [
        "",
        f"Ratio to {ours['memory']}:",
        "",
        "| memory | p50 | p95 | LLM calls | summarizer prompt tokens | mean context tokens "
        "| peak memory |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows[1:]:
        peak = (
            ratio(row, "peak_memory_bytes")
            if row.get("peak_memory_bytes") is not None and ours.get("peak_memory_bytes")
            else "-"
        )
        lines.append(
            f"| {row['memory']} | {ratio(row, 'p50_ms')} | {ratio(row, 'p95_ms')} | "
            f"{ratio(row, 'llm_calls')} | {ratio(row, 'summarizer_prompt_tokens')} | "
            f"{ratio(row, 'mean_context_tokens')} | {peak} |"
        )
    lines += [
        "",
        "Targets for this project: p50 <= 0.25x and p95 <= 0.3x classic CombinedMemory's in the "
        "same run (issue #12); no more LLM calls than create_agent + SummarizationMiddleware and "
        "at most two thirds of its summarizer prompt tokens; the turn-1 fact still recalled "
        "(issue #6).",
        "",
        f"Machine: {meta['machine']}; run at {meta['run_at']}, 1-minute load average "
        f"{meta['load_average_start']:.2f} at the start. The machine is shared: times are noisy.",
        "",
        f"![milliseconds per turn]({out.with_suffix('.png').name})",
        "",
    ]
    out.write_text("\n".join(lines), encoding="utf-8")
    out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2), encoding="utf-8"
    )
    _plot(rows, out.with_suffix(".png"))


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for row in rows:
        times = np.array(row["turn_ms"])
        width = max(1, len(times) // 50)
        smooth = [float(np.median(times[i : i + width])) for i in range(0, len(times), width)]
        axis.plot(np.arange(len(smooth)) * width, smooth, label=row["memory"])
    axis.set_yscale("log")
    axis.set_xlabel("exchange")
    axis.set_ylabel("ms per turn (median of a window)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000, help="exchanges in the conversation")
    parser.add_argument("--memories", nargs="+", choices=MEMORIES, default=MEMORIES)
    parser.add_argument(
        "--memory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure peak memory, one fresh process per memory",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "chat_loop.md")
    parser.add_argument(
        "--block",
        type=int,
        default=BLOCK,
        help=f"turns each memory runs in a row (default {BLOCK}; 1: interleave turn by turn)",
    )
    parser.add_argument("--peak-of", choices=MEMORIES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_of:  # the child process of peak_memory()
        warnings.filterwarnings("ignore", message=r"(?s).*deprecated")
        print(measure_peak(args.peak_of, args.turns))
        return 0
    # The classic memories measured here are deprecated on purpose: that is the comparison.
    warnings.filterwarnings("ignore", message=r"(?s).*deprecated")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    load = os.getloadavg()[0]
    embeddings = LocalMiniLMEmbeddings()
    embeddings.embed_documents(["warm up", "the model and its buffers"])
    pairs = conversation(args.turns)
    print(f"chat loop: {len(pairs)} exchanges, {len(args.memories)} memories, interleaved")
    rows = run_loop(args.memories, pairs, embeddings, max(1, args.block))
    if args.memory:
        print("peak memory: one process per memory")
        for row, peak in zip(rows, peak_memory(args.memories, args.turns).values(), strict=True):
            row["peak_memory_bytes"] = peak
    command = "python benchmarks/chat_loop.py " + " ".join(sys.argv[1:] if argv is None else argv)
    meta = {
        "command": command.strip(),
        "exchanges": len(pairs),
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}",
        "run_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "load_average_start": load,
        "block": max(1, args.block),
    }
    write(rows, meta, args.out)
    for row in rows:
        print(
            f"{row['memory']:>40}: p50 {row['p50_ms']:6.1f} ms, p95 {row['p95_ms']:7.1f} ms, "
            f"{row['llm_calls']:4} LLM calls, {row['summarizer_prompt_tokens']:7,} prompt tokens, "
            f"fact {'kept' if row['turn_1_fact_in_last_context'] else 'lost'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
