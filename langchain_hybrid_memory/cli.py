"""The ``hybrid-memory`` command line: inspect and erase what a bot remembers.

Commands (each takes ``--store URL``, default: the embedded SQLite file ``hybrid-memory.db``
in the current directory, or ``$HYBRID_MEMORY_STORE``):

* ``demo``: replay a sample conversation shipped with the package (146 turns over three weeks,
  facts planted in the first minutes), then show the context built for three questions about
  those facts. A second run on the same store finds the conversation already stored. It ends
  by saying where the memory is and which commands show it.
* ``inspect SESSION [--query Q] [--budget N] [--window N]``: the context that would be built,
  section by section.
* ``sessions [--user U]``: the user's sessions with their sizes; without ``--user``, every
  session of the store with its user; a page at a time (``--limit``, ``--after``).
* ``forget --session S | --user U [--yes]``: erase, after confirmation, and print the report.
* ``export SESSION [--anonymize]``: the transcript as JSON lines.
* ``eval FILE``: evidence recall on a LoCoMo-format file, with a progress bar; with
  ``--answer-model PROVIDER:MODEL``, answer accuracy: an LLM answers each question from this
  project's context, the full history and the recent turns, and a judge grades the answers
  (the tokens to be sent are counted and confirmed first).
* ``facts --user U | --session S [--anonymize]``: every fact with its earlier values.
* ``serve [--host H] [--port N] [--allow-erasure] [--allow-remote]``: the memory inspector, a
  local web app (the ``inspector`` extra), on loopback unless ``--allow-remote``.

Every read command takes ``--json`` and then writes only JSON to standard output. A read of a
store, session or user that does not exist is an error, never an empty answer.

An encrypted store's Fernet key(s) come from ``$HYBRID_MEMORY_ENCRYPTION_KEY`` (comma-separated,
newest first), never from the command line, where other users could read them.

Exit codes: 0 success, 1 a memory or store error (one line on stderr), 2 bad usage,
3 erasure not confirmed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages.utils import count_tokens_approximately

from langchain_hybrid_memory._model_cache import CACHE_ENV, FORMATS, exported
from langchain_hybrid_memory._version import __version__
from langchain_hybrid_memory.context import entity_line
from langchain_hybrid_memory.errors import (
    ConfigError,
    DecryptionError,
    HybridMemoryError,
    InvalidInputError,
    MissingDependencyError,
)
from langchain_hybrid_memory.samples import DemoConversation, load_demo_conversation
from langchain_hybrid_memory.stores.base import DEFAULT_PAGE, MAX_PAGE
from langchain_hybrid_memory.stores.encryption import KEY_VARIABLE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from langchain_hybrid_memory.context import MemoryContext
    from langchain_hybrid_memory.hybrid import HybridMemory

__all__ = ["DEFAULT_STORE", "DemoConversation", "load_demo_conversation", "main"]

#: The command's name, as installed by the package.
PROGRAM = "hybrid-memory"
#: The environment variable naming the store when ``--store`` is not given.
STORE_VARIABLE = "HYBRID_MEMORY_STORE"
#: The store every command uses unless ``--store`` or ``$HYBRID_MEMORY_STORE`` says otherwise.
DEFAULT_STORE = "sqlite:///hybrid-memory.db"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_ABORTED = 0, 1, 2, 3
#: The token budget and window of the contexts ``inspect`` and ``serve`` build by default.
CONTEXT_BUDGET, CONTEXT_WINDOW = 2000, 10
#: ``eval``'s budgets: evidence recall at three sizes, answers (which cost money) at one.
DEFAULT_RECALL_BUDGETS, DEFAULT_ANSWER_BUDGETS = (500, 1000, 2000), (1000,)


def _percentile(values: Sequence[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _open(args: argparse.Namespace, *, create: bool = False, **settings: Any) -> HybridMemory:
    """The memory on ``--store``.

    A SQLite file that does not exist is an error unless the command creates data
    (``create``): a typo must not read as an empty memory.
    """
    from langchain_hybrid_memory.hybrid import HybridMemory

    path = _sqlite_path(args.store)
    if not create and path is not None and not path.exists():
        msg = (
            f"no memory store at {path.resolve()} (from --store or ${STORE_VARIABLE}); "
            f"`{_program()} demo` creates one there"
        )
        raise ConfigError(msg)
    if not create and _in_process(args.store):
        msg = (
            f"{_scheme(args.store)}:// holds nothing outside the process that writes it, so this "
            "command would find nothing: pass the store your bot writes (sqlite:///path, "
            "redis://..., postgresql://...)"
        )
        raise ConfigError(msg)
    return HybridMemory(store=args.store, encryption_key=_keys() or None, **settings)


def _keys() -> list[str]:
    """The Fernet keys in ``$HYBRID_MEMORY_ENCRYPTION_KEY``, newest first."""
    return [key.strip() for key in os.environ.get(KEY_VARIABLE, "").split(",") if key.strip()]


def _sessions_of(memory: HybridMemory, user_id: str) -> list[str]:
    """The user's sessions; none is an error, so that a typo'd user never reads as empty."""
    sessions = memory.store.list_sessions(user_id)
    if not sessions:
        msg = f"no session of user {user_id!r} in this store (`{_program()} sessions` lists them)"
        raise InvalidInputError(msg)
    return sessions


def _check_session(memory: HybridMemory, session_id: str) -> None:
    """Fail unless the session is stored, so that a typo'd session never reads as empty."""
    if not memory.store.head(session_id).exists:
        msg = f"no session {session_id!r} in this store (`{_program()} sessions` lists them)"
        raise InvalidInputError(msg)


def _decryption_message() -> str:
    """What to do when the store holds values no key opens, in the command line's terms."""
    if not _keys():
        return (
            f"this store holds encrypted data and ${KEY_VARIABLE} is not set: set it to the "
            "Fernet key the store was written with"
        )
    return (
        f"no key in ${KEY_VARIABLE} opens this store's encrypted data (a wrong key, or a "
        "damaged value): set it to the key(s) the store was written with, comma-separated, "
        "newest first"
    )


def _program() -> str:
    """How to run this command line again from here.

    ``hybrid-memory`` when it is on the PATH; else the path it was started by (``make demo``
    runs ``.venv/bin/hybrid-memory``), or this Python with ``-m langchain_hybrid_memory.cli``.
    """
    if shutil.which(PROGRAM) is not None:
        return PROGRAM
    started = sys.argv[0] if sys.argv else ""
    if Path(started).name == PROGRAM:
        return started
    python = Path(sys.executable)
    if python.is_relative_to(Path.cwd()):
        python = python.relative_to(Path.cwd())
    return f"{python} -m langchain_hybrid_memory.cli"


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def _in_process(url: str) -> bool:
    """Whether a store URL names a store that lives and dies with its process."""
    return _scheme(url) == "memory" or (_scheme(url) == "sqlite" and url.endswith("/:memory:"))


def _sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (``None`` for another store or an in-memory database)."""
    scheme, separator, rest = url.partition("://")
    if scheme.lower() != "sqlite" or not separator or not rest.startswith("/"):
        return None
    name = rest[1:]
    return None if name in ("", ":memory:") else Path(name)


# -- commands ---------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace, console: Console) -> int:
    """Replay the sample conversation (unless already stored) and show what memory recalls."""
    from rich.panel import Panel
    from rich.table import Table

    conversation = load_demo_conversation()
    memory = _open(args, create=True, token_budget=args.budget, window_turns=args.window)
    session = conversation.session_id
    started = time.perf_counter()
    memory.embeddings.embed_query("warm up")  # load the model before timing turns
    load_seconds = time.perf_counter() - started
    stored = len(memory.latest_turns(session, len(conversation.messages)))
    add_ms = []
    if stored == len(conversation.messages):
        console.print(
            f"[bold]hybrid-memory demo[/] · {conversation.title}: {stored} turns already in "
            "the store from an earlier run; nothing replayed or embedded again"
        )
    else:
        memory.forget_session(session)
        console.print(
            f"[bold]hybrid-memory demo[/] · {conversation.title}: replaying "
            f"{len(conversation.messages)} turns into the store "
            f"(window {args.window}, budget {args.budget} tokens)"
        )
        from rich.progress import Progress

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("storing turns", total=len(conversation.messages))
            for index, (message, when) in enumerate(conversation.messages):
                began = time.perf_counter()
                memory.add_message(
                    session,
                    message,
                    user_id=conversation.user_id,
                    timestamp=when,
                    entities=conversation.entities.get(index),
                )
                add_ms.append((time.perf_counter() - began) * 1000)
                progress.advance(task)
    history_tokens = count_tokens_approximately(memory.transcript(session))
    build_ms = []
    remembered = 0
    for question, expected in conversation.probes:
        began = time.perf_counter()
        context = memory.build_context(session, question, user_id=conversation.user_id)
        build_ms.append((time.perf_counter() - began) * 1000)
        found = all(word.casefold() in context.to_text().casefold() for word in expected)
        remembered += found
        body = _describe(context) + (
            f"\n{'[green]remembered' if found else '[red]missing'}[/]: {', '.join(expected)}"
        )
        console.print(Panel(body, title=f"[bold]{question}[/]"))
    table = Table(title="Cost")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("full history tokens", str(history_tokens))
    table.add_row("context tokens (budget)", f"≤ {args.budget}")
    table.add_row("model load (one-off)", f"{load_seconds:.1f} s")
    if add_ms:
        table.add_row(
            "add_message p50 / p95",
            f"{_percentile(add_ms, 50):.1f} / {_percentile(add_ms, 95):.1f} ms",
        )
    table.add_row("build_context mean", f"{statistics.fmean(build_ms):.1f} ms")
    table.add_row("probes answered from memory", f"{remembered} / {len(conversation.probes)}")
    console.print(table)
    kind = memory.store.name
    memory.close()
    settings = "".join(
        f" --{name} {value}"
        for name, value, default in (
            ("budget", args.budget, CONTEXT_BUDGET),
            ("window", args.window, CONTEXT_WINDOW),
        )
        if value != default
    )
    console.print(
        _demo_next_steps(args.store, kind, session, conversation.user_id, settings), markup=False
    )
    return EXIT_OK


def _demo_next_steps(url: str, kind: str, session: str, user_id: str, settings: str) -> str:
    """Where the demo's memory is and how to look at it (never the URL: it may hold a password).

    ``settings`` are the demo's options that ``inspect`` and ``serve`` need to build the
    contexts the demo showed.
    """
    path = _sqlite_path(url)
    program = _program()
    if _in_process(url):
        return (
            f"{_scheme(url)}:// keeps nothing after this process ends: run "
            f"`{program} demo --store sqlite:///demo.db` to look closer afterwards."
        )
    where = str(path.resolve()) if path is not None else f"the {kind} store of --store"
    return (
        f"Stored in {where} as session {session!r} of user {user_id!r}. Look closer with "
        f"`{program} inspect {session}{settings}` or `{program} facts --user {user_id}` (with "
        f"the same --store). Open the inspector in a browser with `{program} serve{settings}` "
        "(same --store; the inspector extra)."
    )


def _describe(context: MemoryContext, *, full: bool = False) -> str:
    """The sections of a context, one line per item, with tokens and recall scores.

    Texts are cut to about a line unless ``full``.
    """
    from rich.markup import escape

    def cut(text: str, limit: int) -> str:
        return text if full or len(text) <= limit else text[:limit] + "…"

    left_out = ", ".join(
        "summary cut" if name == "summary" else f"{count} {name}"
        for name, count in context.omitted.items()
        if count
    )
    lines = [
        f"tokens {context.tokens} / {context.token_budget} · "
        + " · ".join(f"{name} {tokens}" for name, tokens in context.section_tokens.items())
        + (f" · left out: {left_out}" if left_out else "")
    ]
    if context.summary:
        lines.append(f"[bold]summary[/] {escape(cut(context.summary, 300))}")
    for entity in context.entities:
        lines.append(f"[bold]entity[/] {escape(entity_line(entity)[2:])}")
    for item in context.recalled:
        dense = "-" if item.dense_score is None else f"{item.dense_score:.2f}"
        lines.append(
            f"[bold]recall[/] {item.score:+.2f} (cosine {dense}, bm25 {item.lexical_score:.1f}) "
            f"{item.turn.timestamp:%d %b %Y} {escape(item.turn.speaker)}: "
            f"{escape(cut(item.turn.text, 110))}"
        )
    for turn in context.window:
        lines.append(f"[bold]window[/] {escape(turn.speaker)}: {escape(cut(turn.text, 110))}")
    return "\n".join(lines)


def run_inspect(args: argparse.Namespace, console: Console) -> int:
    """Show the context that would be built for a session."""
    from rich.markup import escape
    from rich.panel import Panel

    memory = _open(args, token_budget=args.budget, window_turns=args.window)
    try:
        _check_session(memory, args.session)
        context = memory.build_context(args.session, args.query, user_id=args.user)
    finally:
        memory.close()
    if args.json:
        _write_json_lines([context.to_record()])
        return EXIT_OK
    title = f"[bold]{escape(args.session)}[/] · query: {escape(context.query or '(none)')}"
    console.print(Panel(_describe(context, full=args.full), title=title))
    return EXIT_OK


def run_sessions(args: argparse.Namespace, console: Console) -> int:
    """List a user's sessions, or every session of the store (a page at a time)."""
    from rich.table import Table
    from rich.text import Text

    memory = _open(args)
    try:
        rows = _session_rows(memory, args.user, after=args.after, limit=args.limit)
    finally:
        memory.close()
    if args.json:
        _write_json_lines(rows)
        return EXIT_OK
    if not rows:
        console.print("no more sessions" if args.after else "this store holds no session yet")
        return EXIT_OK
    table = Table(title=Text(f"sessions of {args.user}" if args.user else "sessions"))
    table.add_column("session")
    if args.user is None:
        table.add_column("user")
    table.add_column("turns", justify="right")
    table.add_column("last turn")
    for row in rows:
        when = str(row["last_turn"] or "")[:16].replace("T", " ")
        owner = [] if args.user else [Text(row["user_id"] or "-")]
        table.add_row(Text(str(row["session_id"])), *owner, str(row["turns"]), when)
    console.print(table)
    if len(rows) == args.limit:
        console.print(
            f"more sessions follow: --after {json.dumps(rows[-1]['session_id'])}", markup=False
        )
    return EXIT_OK


def _session_rows(
    memory: HybridMemory, user_id: str | None, *, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """A page of the user's sessions, or of every session, as JSON-ready rows."""
    if user_id is None:
        return [
            {
                "session_id": info.session_id,
                "user_id": info.user_id,
                "turns": info.turn_count,
                "last_turn": info.last_activity.isoformat() if info.last_activity else None,
            }
            for info in memory.store.list_all_sessions(after=after, limit=limit)
        ]
    following = [s for s in _sessions_of(memory, user_id) if after is None or s > after]
    rows = []
    for session in following[:limit]:
        latest = memory.latest_turns(session, 1)
        rows.append(
            {
                "session_id": session,
                "user_id": user_id,
                "turns": memory.store.count_turns(session),
                "last_turn": latest[0].timestamp.isoformat() if latest else None,
            }
        )
    return rows


def run_forget(args: argparse.Namespace, console: Console) -> int:
    """Erase a session or every session of a user, after confirmation."""
    from rich.markup import escape
    from rich.prompt import Confirm

    target = f"session {args.session!r}" if args.session else f"every session of user {args.user!r}"
    try:
        confirmed = args.yes or Confirm.ask(f"Erase {escape(target)}?", console=console)
    except EOFError:  # no terminal to answer on: never erase without a yes
        confirmed = False
    if not confirmed:
        console.print("nothing erased")
        return EXIT_ABORTED
    memory = _open(args)
    report = memory.forget_session(args.session) if args.session else memory.forget_user(args.user)
    if not report.sessions:  # a typo must not read as an erasure
        memory.close()
        what = f"session {args.session!r}" if args.session else f"session of user {args.user!r}"
        sys.stderr.write(f"error: nothing to erase: no {what} in this store\n")
        return EXIT_ERROR
    console.print_json(
        json.dumps(
            {
                "erased": target,
                "sessions": list(report.sessions),
                "turns": report.turns,
                "vectors": report.vectors,
                "summaries": report.summaries,
                "entities": report.entities,
            }
        )
    )
    memory.close()
    return EXIT_OK


def _write_json_lines(records: Sequence[dict[str, Any]]) -> None:
    """Write records as JSON lines to standard output."""
    try:
        for record in records:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader stopped early (`| head`): that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run_export(args: argparse.Namespace, console: Console) -> int:
    """Write a session's transcript as JSON lines to standard output."""
    memory = _open(args)
    try:
        _check_session(memory, args.session)
        records = memory.export_session(args.session, anonymize=args.anonymize)
    finally:
        memory.close()
    _write_json_lines(records)
    return EXIT_OK


def run_facts(args: argparse.Namespace, console: Console) -> int:
    """Show what the memory knows about a user (or a session): each fact with its history."""
    from rich.table import Table
    from rich.text import Text

    memory = _open(args)
    try:
        if args.user is not None:
            _sessions_of(memory, args.user)
        else:
            _check_session(memory, args.session)
        records = memory.export_facts(args.session, user_id=args.user, anonymize=args.anonymize)
    finally:
        memory.close()
    if args.json:
        _write_json_lines(records)
        return EXIT_OK
    whose = f"user {args.user}" if args.user else f"session {args.session}"
    table = Table(title=Text(f"facts of {whose}"))
    for column in ("entity", "attribute", "value", "from", "until", "session", "turn"):
        table.add_column(column)
    for record in records:
        until = record["until"][:10] if record["until"] else ("now" if record["current"] else "")
        table.add_row(
            Text(record["entity"]),
            Text(record["attribute"]),
            Text(record["value"], style="bold" if record["current"] else "dim"),
            record["since"][:10],
            until,
            Text(record["session_id"] or ""),
            "" if record["turn_id"] is None else str(record["turn_id"]),
        )
    console.print(table)
    return EXIT_OK


def _eval_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The evaluation memory's settings from ``eval``'s options."""
    settings: dict[str, Any] = {}
    if args.window is not None:
        settings["window_turns"] = args.window
    if args.dense_weight is not None:
        settings["dense_weight"] = args.dense_weight
    if args.embeddings is not None:
        settings["embeddings"] = args.embeddings
    return settings


def run_eval(args: argparse.Namespace, console: Console) -> int:
    """Evidence recall on a LoCoMo-format file, per category and budget (or answer accuracy).

    With ``--json`` the figures are the only thing on standard output; progress, the cost
    estimate and notes go to standard error.
    """
    if args.json:
        from rich.console import Console

        console = Console(stderr=True)
    if args.answer_model is not None:
        return run_answer_eval(args, console)
    if args.judge_model is not None or args.price_per_mtok is not None:
        sys.stderr.write("error: --judge-model and --price-per-mtok need --answer-model\n")
        return EXIT_USAGE
    from rich.progress import Progress
    from rich.text import Text

    from langchain_hybrid_memory.evaluation import evaluate_locomo, evaluation_memory

    settings = _eval_settings(args)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("evaluating", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = evaluate_locomo(
            args.file,
            budgets=tuple(args.budgets or DEFAULT_RECALL_BUDGETS),
            categories=tuple(args.categories),
            memory_factory=lambda: evaluation_memory(**settings),
            limit_conversations=args.limit,
            limit_questions=args.questions,
            progress=advance,
        )
    if args.json:
        _write_json_lines([report.as_dict()])
        return EXIT_OK
    from langchain_hybrid_memory.evaluation import CATEGORY_NAMES

    categories = sorted({c for scores in report.budgets for c in scores.by_category})
    table = _category_table(
        Text(f"evidence recall on {args.file}"), [], categories, ["mean tokens"]
    )
    for scores in report.budgets:
        cells = [
            f"{scores.by_category[c].recall:.3f}" if c in scores.by_category else "-"
            for c in categories
        ]
        table.add_row(
            str(scores.budget),
            f"{scores.overall.recall:.3f}",
            *cells,
            f"{scores.overall.tokens:.0f}",
        )
    console.print(table)
    console.print(f"{report.questions} questions in {report.conversations} conversations")
    if report.skipped:
        console.print(
            f"{report.skipped} questions of these categories left out: no evidence id of "
            "theirs names a turn of the conversation"
        )
    unscored = sorted(set(CATEGORY_NAMES) - set(args.categories))
    if unscored:
        names = ", ".join(f"{c} ({CATEGORY_NAMES[c]})" for c in unscored)
        console.print(f"not scored: category {names}; --categories scores them")
    return EXIT_OK


def _category_table(
    title: Text, leading: list[str], categories: list[int], trailing: list[str]
) -> Table:
    """A table of figures per budget.

    Its columns: ``leading``, budget, overall, one per category, then ``trailing``.
    """
    from rich.table import Table

    from langchain_hybrid_memory.evaluation import CATEGORY_NAMES

    table = Table(title=title)
    for name in leading:
        table.add_column(name)
    for name in ("budget", "overall", *(CATEGORY_NAMES.get(c, str(c)) for c in categories)):
        table.add_column(name, justify="right")
    for name in trailing:
        table.add_column(name, justify="right")
    return table


def run_answer_eval(args: argparse.Namespace, console: Console) -> int:
    """Answer accuracy: count and confirm the tokens, answer, judge, and print the figures."""
    from rich.markup import escape
    from rich.progress import MofNCompleteColumn, Progress
    from rich.prompt import Confirm
    from rich.text import Text

    from langchain_hybrid_memory import answering
    from langchain_hybrid_memory.evaluation import evaluation_memory, plan_questions

    settings = _eval_settings(args)
    budgets = tuple(args.budgets or DEFAULT_ANSWER_BUDGETS)
    judge = args.judge_model or args.answer_model
    answering.open_chat_model(args.answer_model)  # a missing package or key fails here, first
    if judge != args.answer_model:
        answering.open_chat_model(judge)
    plans = plan_questions(
        args.file,
        categories=tuple(args.categories),
        limit_conversations=args.limit,
        limit_questions=args.questions,
    )
    estimate = answering.estimate_cost(plans, budgets=budgets)
    console.print(
        f"{estimate.questions} questions, answered from {len(answering.DEFAULT_ANSWER_METHODS)} "
        f"contexts (this project's and the recent turns' at {', '.join(map(str, budgets))} "
        "tokens, and the full history):"
    )
    console.print(
        f"  answer model {escape(args.answer_model)}: {estimate.answer_calls:,} calls, at most "
        f"{estimate.answer_tokens:,} prompt tokens"
    )
    console.print(
        f"  judge model {escape(judge)}: {estimate.judge_calls:,} calls, about "
        f"{estimate.judge_tokens:,} prompt tokens"
    )
    if args.price_per_mtok is not None:
        console.print(
            f"  about ${estimate.price(args.price_per_mtok):,.2f} of prompt tokens at "
            f"${args.price_per_mtok}/M (replies not counted)"
        )
    else:
        console.print("  (--price-per-mtok USD prices them; prices change, so none is assumed)")
    try:
        confirmed = args.yes or Confirm.ask("Send them?", console=console)
    except EOFError:  # no terminal to answer on: spend nothing without a yes
        confirmed = False
    if not confirmed:
        console.print("nothing sent")
        return EXIT_ABORTED

    columns = (*Progress.get_default_columns(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("answers", total=estimate.answer_calls)
        report = answering.evaluate_answers(
            plans,
            args.answer_model,
            judge_model=judge,
            budgets=budgets,
            memory_factory=lambda: evaluation_memory(**settings),
            progress=lambda done, total: progress.update(task, completed=done, total=total),
            max_concurrency=args.concurrency,
        )
    if args.json:
        _write_json_lines([report.as_dict()])
        return EXIT_OK
    categories = sorted({c for row in report.rows for c in row.by_category})
    table = _category_table(
        Text(f"answer accuracy on {args.file} ({args.answer_model})"),
        ["context"],
        categories,
        ["prompt tokens", "latency p50"],
    )
    for row in report.rows:
        table.add_row(
            row.method,
            "-" if row.budget is None else str(row.budget),
            f"{row.accuracy:.3f}",
            *(
                f"{row.by_category[c].accuracy:.3f}" if c in row.by_category else "-"
                for c in categories
            ),
            f"{row.prompt_tokens:,.0f}",
            f"{row.latency_p50_s * 1000:,.0f} ms",
        )
    console.print(table)
    console.print(
        f"judged by {escape(judge)}; {report.unjudged} verdicts neither CORRECT nor WRONG "
        f"(counted wrong); {report.skipped} questions without a gold answer left out"
    )
    return EXIT_OK


# -- parsing ----------------------------------------------------------------------------------


def _positive(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected a whole number >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _page_size(text: str) -> int:
    """An argparse type: how many sessions a page lists, 1 to ``MAX_PAGE``."""
    value = _positive(text)
    if value > MAX_PAGE:
        msg = f"expected at most {MAX_PAGE}, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _add_eval_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``eval`` command's options."""
    evaluate = commands.add_parser(
        "eval",
        help="evidence recall (or, with --answer-model, answer accuracy) on a LoCoMo-format file",
        description="The share of each question's evidence turns that reach the context built "
        "for it, per budget and category. With --answer-model, an LLM answers each question "
        "from this project's context, the full history and the most recent turns that fit the "
        "budget, a judge grades each answer against the gold answer, and the accuracy, prompt "
        "tokens and latency are reported per context and category; the tokens to be sent are "
        "counted, and confirmed, first. LoCoMo's categories: 1 multi-hop, 2 temporal, "
        "3 open-domain, 4 single-hop, 5 adversarial (asks about what was never said: it has no "
        "evidence to recall, so it is not scored by default).",
    )
    evaluate.add_argument("file", help="path to a LoCoMo-format JSON file")
    evaluate.add_argument(
        "--budgets",
        type=_positive,
        nargs="+",
        help="token budgets (default 500 1000 2000; with --answer-model, 1000)",
    )
    evaluate.add_argument(
        "--categories",
        type=_positive,
        nargs="+",
        default=[1, 2, 3, 4],
        help="categories to score (default 1 2 3 4)",
    )
    evaluate.add_argument("--window", type=_positive, help="recent turns kept verbatim")
    evaluate.add_argument(
        "--dense-weight", type=float, help="weight of the embedding score against BM25 (0-1)"
    )
    evaluate.add_argument(
        "--embeddings", help="embeddings by name: minilm-onnx-int8, minilm-onnx, minilm-torch"
    )
    evaluate.add_argument("--limit", type=_positive, help="evaluate only the first N conversations")
    evaluate.add_argument(
        "--questions", type=_positive, help="ask only the first N questions of each conversation"
    )
    answers = evaluate.add_argument_group("answer accuracy (calls the models: costs money)")
    answers.add_argument(
        "--answer-model",
        metavar="PROVIDER:MODEL",
        help="the chat model that answers, through LangChain's init_chat_model "
        "(e.g. openai:gpt-4o-mini; needs the provider's package and API key)",
    )
    answers.add_argument(
        "--judge-model",
        metavar="PROVIDER:MODEL",
        help="the chat model that grades (default: the answer model)",
    )
    answers.add_argument(
        "--price-per-mtok",
        type=float,
        metavar="USD",
        help="price of a million prompt tokens, to print the run's cost before it starts",
    )
    answers.add_argument(
        "--concurrency",
        type=_positive,
        default=4,
        help="answer-and-judge calls in flight at once (default 4)",
    )
    answers.add_argument("--yes", action="store_true", help="do not ask before sending")
    evaluate.add_argument(
        "--json", action="store_true", help="write the figures as JSON (progress goes to stderr)"
    )
    evaluate.set_defaults(run=run_eval)


def _parser() -> argparse.ArgumentParser:
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store",
        default=os.environ.get(STORE_VARIABLE, DEFAULT_STORE),
        help="store URL: sqlite:///path, redis://host:port/db, postgresql://..., memory:// "
        f"(default: $HYBRID_MEMORY_STORE or {DEFAULT_STORE})",
    )
    parser = argparse.ArgumentParser(
        prog="hybrid-memory",
        description="Inspect and erase what a LangChain bot remembers with langchain-hybrid-memory: "
        "recent window, rolling summary, entities and recall under one token budget.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", parents=[store], help="replay a sample conversation and show what memory recalls"
    )
    demo.add_argument("--budget", type=_positive, default=600, help="token budget (default 600)")
    demo.add_argument(
        "--window",
        type=_positive,
        default=CONTEXT_WINDOW,
        help=f"recent turns kept verbatim (default {CONTEXT_WINDOW})",
    )
    demo.set_defaults(run=run_demo)

    inspect = commands.add_parser(
        "inspect", parents=[store], help="show the context that would be built for a session"
    )
    inspect.add_argument("session", help="session id")
    inspect.add_argument("--query", help="the input to recall for (default: latest user turn)")
    inspect.add_argument("--user", help="the user the session must belong to")
    _add_context_options(inspect)
    inspect.add_argument("--full", action="store_true", help="show every text whole")
    inspect.add_argument("--json", action="store_true", help="write the context as JSON")
    inspect.set_defaults(run=run_inspect)

    _add_sessions(commands, store)

    forget = commands.add_parser(
        "forget", parents=[store], help="erase a session or a user, and print what was removed"
    )
    target = forget.add_mutually_exclusive_group(required=True)
    target.add_argument("--session", help="session id to erase")
    target.add_argument("--user", help="user id whose sessions to erase")
    forget.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    forget.set_defaults(run=run_forget)

    export = commands.add_parser(
        "export", parents=[store], help="write a session's transcript as JSON lines"
    )
    export.add_argument("session", help="session id")
    export.add_argument(
        "--anonymize", action="store_true", help="redact personal data and speaker names"
    )
    export.add_argument(
        "--json", action="store_true", help="JSON lines (the only format; as every read command)"
    )
    export.set_defaults(run=run_export)

    facts = commands.add_parser(
        "facts",
        parents=[store],
        help="show what the memory knows about a user or a session: facts and their history",
    )
    whose = facts.add_mutually_exclusive_group(required=True)
    whose.add_argument("--user", help="user id: the facts of every session of the user")
    whose.add_argument("--session", help="session id: the facts its context would see")
    facts.add_argument("--json", action="store_true", help="write JSON lines instead of a table")
    facts.add_argument(
        "--anonymize", action="store_true", help="leave out entity names and redact values"
    )
    facts.set_defaults(run=run_facts)

    _add_eval_parser(commands)

    export_model = commands.add_parser(
        "export-model",
        help="export the default embedding model to ONNX into the cache, ahead of time",
        description="Export all-MiniLM-L6-v2 to ONNX (fp32 and int8) into the model cache "
        f"(${CACHE_ENV}, else the user's cache folder), as the first use would. Run it where "
        "torch is installed (e.g. when building a container image); processes that find the "
        "cache need neither torch nor transformers.",
    )
    export_model.add_argument(
        "--cache-dir", type=Path, help=f"the cache folder (default: ${CACHE_ENV} or the user's)"
    )
    export_model.set_defaults(run=run_export_model)

    _add_serve(commands, store)
    return parser


def run_serve(args: argparse.Namespace, console: Console) -> int:
    """Serve the memory inspector until interrupted."""
    try:
        from langchain_hybrid_memory.inspector import InspectorServer, check_host, create_app
    except ImportError as exc:
        msg = "the inspector needs Flask: pip install 'langchain-hybrid-memory[inspector]'"
        raise MissingDependencyError(msg) from exc

    check_host(args.host, allow_remote=args.allow_remote)  # before opening anything
    memory = _open(args, token_budget=args.budget, window_turns=args.window)
    try:
        server = InspectorServer(
            create_app(memory, allow_erasure=args.allow_erasure, allow_remote=args.allow_remote),
            args.host,
            args.port,
            allow_remote=args.allow_remote,
        )
        mode = "erasure allowed" if args.allow_erasure else "read-only"
        console.print(
            f"hybrid-memory inspector ({mode}) on {server.url} · Ctrl-C stops it", markup=False
        )
        if args.allow_remote:
            console.print("warning: it has no login; anyone who reaches it reads the store")
        server.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C is how it stops
        console.print("inspector stopped")
    finally:
        memory.close()
    return EXIT_OK


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > 65535:
        msg = f"expected a port from 0 to 65535, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def _add_context_options(command: argparse.ArgumentParser) -> None:
    """``--budget`` and ``--window``: the settings of the contexts a command builds."""
    command.add_argument(
        "--budget",
        type=_positive,
        default=CONTEXT_BUDGET,
        help=f"token budget of contexts (default {CONTEXT_BUDGET})",
    )
    command.add_argument(
        "--window",
        type=_positive,
        default=CONTEXT_WINDOW,
        help=f"recent turns kept verbatim (default {CONTEXT_WINDOW})",
    )


def _add_sessions(commands: Any, store: argparse.ArgumentParser) -> None:
    """The ``sessions`` command's parser."""
    sessions = commands.add_parser(
        "sessions",
        parents=[store],
        help="list a user's sessions, or every session with its user",
    )
    sessions.add_argument("--user", help="user id (default: every session of the store)")
    sessions.add_argument(
        "--limit",
        type=_page_size,
        default=DEFAULT_PAGE,
        help=f"list at most this many (default {DEFAULT_PAGE}, at most {MAX_PAGE})",
    )
    sessions.add_argument("--after", help="list the sessions whose id sorts after this one")
    sessions.add_argument("--json", action="store_true", help="write JSON lines instead")
    sessions.set_defaults(run=run_sessions)


def _add_serve(commands: Any, store: argparse.ArgumentParser) -> None:
    """The ``serve`` command's parser."""
    serve = commands.add_parser(
        "serve",
        parents=[store],
        help="open the memory inspector, a local web app, in a browser",
        description="A local web app showing users and sessions, transcripts, the context built "
        "for a query (with scores and what was left out), summaries, entity facts with their "
        "history, exports, and (with --allow-erasure) erasure. Needs the inspector extra. It "
        "never shows encryption keys or the store URL, and listens on loopback only unless "
        "--allow-remote: it has no login.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8765, help="port (default 8765; 0: any)")
    serve.add_argument(
        "--allow-erasure", action="store_true", help="offer erasure of sessions and users"
    )
    serve.add_argument(
        "--allow-remote", action="store_true", help="allow a host beyond loopback (no login!)"
    )
    _add_context_options(serve)
    serve.set_defaults(run=run_serve)


def run_export_model(args: argparse.Namespace, console: Console) -> int:
    """Export the ONNX models into the cache and print where they are."""
    from rich.markup import escape

    for onnx_format in FORMATS:
        path = exported(onnx_format, cache_dir=args.cache_dir)
        console.print(f"{onnx_format}: {escape(str(path))} ({path.stat().st_size:,} bytes)")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    from rich.console import Console

    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args, Console())
    except DecryptionError:  # its message speaks of Python's `encryption_key=`
        sys.stderr.write(f"error: {_decryption_message()}\n")
        return EXIT_ERROR
    except HybridMemoryError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the exception holds
        sys.stderr.write(f"error: {message}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ABORTED
    return code


if __name__ == "__main__":
    sys.exit(main())
