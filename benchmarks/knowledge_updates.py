"""Knowledge updates: a user's facts across sessions, as they change (issue #14, item 6).

Conversations written for this benchmark, generated from a seed: several users, each with
several sessions weeks apart, in which the user states facts about themself (city, job, diet,
pet, hobby), restates some, changes some and retracts some, and tells news about friends
(whose facts compete for the same budget), between everyday small talk. Each
user then opens a new session weeks later and asks about the current value of a fact, about
an earlier value ("before", "used to", "still") and about when it changed.

Scored without an LLM, on the entities section of the context built for each question at a
500-token budget (the default settings otherwise), parsed back into facts:

- *right current*: the asked attribute's current value is the true one (or, for a retracted
  attribute, none is shown as current);
- *right history*: for questions about the past, the earlier value is shown as earlier (and,
  for "when did it change", the day the current value began is right);
- *superseded as current*: a value that no longer holds is shown as current for the asked
  attribute (should be 0);
- *other users' values*: a value only another user stated appears in the context (should be 0).

Facts reach the memory three ways: the caller's own NLU (``add_messages(..., entities=...)``),
the same with each user's sessions stored newest first (a device that syncs late: the history
must not depend on the order), and a scripted fake LLM summarizer whose one call per batch returns the batch's facts (changes
as new values, retractions as ``null``), as a real model would be asked to; it records its
prompts, so the number of LLM calls is reported too.

Run from the repository root::

    .venv/bin/python benchmarks/knowledge_updates.py
    .venv/bin/python benchmarks/knowledge_updates.py --users 2 --out /tmp/knowledge.md
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableLambda

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.context import format_day

ROOT = Path(__file__).resolve().parents[1]
#: How facts reach the memory: the caller's entities (sessions stored in order, and newest
#: first), and a scripted LLM summarizer.
PATHS = ("caller", "caller-shuffled", "extractor")
BUDGET = 500
#: Targets of issue #14 at a 500-token budget.
TARGET_CURRENT, TARGET_HISTORY = 0.95, 0.9

NAMES = ["Ana", "Bruno", "Carla", "Diego", "Eva", "Filipe", "Gita", "Hugo", "Ines", "Joao"]
#: attribute -> (values, how it is said, how a change is said, how a retraction is said)
ATTRIBUTES: dict[str, tuple[list[str], str, str, str | None]] = {
    "city": (
        ["Porto", "Lisbon", "Braga", "Faro", "Coimbra", "Madrid", "Berlin", "Lyon", "Ghent"],
        "I live in {value} these days.",
        "Big news: I moved to {value} last weekend.",
        None,
    ),
    "job": (
        ["nurse", "teacher", "data analyst", "chef", "architect", "pilot", "pharmacist"],
        "I work as a {value}.",
        "I started a new job as a {value} this month.",
        "I left my job, so I am between jobs for now.",
    ),
    "diet": (
        ["vegetarian", "vegan", "pescatarian", "gluten-free"],
        "By the way, I am {value}.",
        "I switched my diet, I am {value} now.",
        "I gave up my special diet, I eat everything again.",
    ),
    "pet": (
        ["a cat named Miso", "a dog named Bolt", "a parrot named Kiwi", "a rabbit named Nube"],
        "At home I have {value}.",
        "We adopted {value}, it is our only pet now.",
        "Sadly we no longer have a pet at home.",
    ),
    "hobby": (
        ["climbing", "surfing", "chess", "pottery", "cycling", "choir singing"],
        "My main hobby is {value}.",
        "These days my main hobby is {value}, I dropped the old one.",
        "I stopped having time for hobbies at all.",
    ),
}
#: People the users talk about: their facts compete for the same budget.
FRIENDS = ["Rita", "Tomas", "Lucia", "Marco", "Sofia", "Pedro", "Nadia", "Oscar"]
FRIEND_FACTS: dict[str, tuple[str, str]] = {
    "city": ("My friend {friend} lives in {value}.", "{friend} moved to {value} recently."),
    "job": ("My friend {friend} works as a {value}.", "{friend} has a new job as a {value}."),
}
QUESTIONS = {
    "city": ("Which city do I live in now?", "Where did I live before?", "When did I move?"),
    "job": ("What is my job now?", "What did I use to work as?", "Since when do I have this job?"),
    "diet": (
        "What diet do I follow now?",
        "What diet did I follow before?",
        "When did my diet change?",
    ),
    "pet": (
        "Which pet do I have now?",
        "Which pet did we have before?",
        "When did the pet change?",
    ),
    "hobby": (
        "What is my hobby now?",
        "What hobby did I have before?",
        "When did my hobby change?",
    ),
}
SMALL_TALK = [
    ("The weather was lovely this morning.", "Nice, enjoy the sunshine."),
    ("I watched a documentary about whales.", "Whales are fascinating animals."),
    ("Can you suggest a quick lunch?", "A chickpea salad takes ten minutes."),
    ("My week was busy but fine.", "Glad it went well overall."),
    ("I am reading a novel about a lighthouse.", "That sounds atmospheric."),
    ("Traffic was terrible today.", "Sorry to hear that, try a podcast next time."),
    ("I want to plan a picnic soon.", "Bring a blanket and some fruit."),
    ("Any tips for sleeping better?", "Keep a regular bedtime and a dark room."),
]


@dataclass
class Said:
    """One statement: the attribute's value from ``when`` (None: retracted), about ``about``."""

    attribute: str
    value: str | None
    when: datetime
    text: str
    about: str = ""  # a friend's name; empty: the user


@dataclass
class Question:
    user: str
    attribute: str
    kind: str  # "current", "history" or "when"
    text: str
    current: str | None  # the true current value (None: retracted)
    earlier: str | None  # the value before the current one (history questions)
    since: datetime | None  # when the current value began ("when" questions)


@dataclass
class UserStory:
    name: str
    sessions: list[list[tuple[str, str, datetime, Said | None]]] = field(default_factory=list)
    said: list[Said] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    final_day: datetime = datetime(2026, 1, 1, tzinfo=UTC)


def write_story(name: str, rng: random.Random, start: datetime, sessions: int) -> UserStory:
    """One user's sessions and questions: facts stated, restated, changed and retracted."""
    story = UserStory(name)
    current: dict[str, str | None] = {}
    friends = rng.sample(FRIENDS, k=3)
    day = start
    for index in range(sessions):
        day += timedelta(days=rng.randint(14, 28))
        moments = [day + timedelta(minutes=2 * i) for i in range(40)]
        statements: list[Said] = []
        for attribute, (values, first, change, retract) in ATTRIBUTES.items():
            known = current.get(attribute)
            if index == 0:
                value: str | None = rng.choice(values)
                template = first
            else:
                roll = rng.random()
                if roll < 0.4 and known is not None:  # a change
                    value = rng.choice([v for v in values if v != known])
                    template = change
                elif roll < 0.55 and retract is not None and known is not None:
                    value, template = None, retract
                elif roll < 0.75 and known is not None:  # restated
                    value, template = known, first
                elif roll < 0.5 and known is None:  # said again after a retraction
                    value, template = rng.choice(values), first
                else:
                    continue
            text = template.format(value=value) if value is not None else template
            statements.append(Said(attribute, value, day, text))
            current[attribute] = value
        for friend in rng.sample(friends, k=2):  # news about two friends
            attribute = rng.choice(list(FRIEND_FACTS))
            known = current.get(f"{friend}/{attribute}")
            template = FRIEND_FACTS[attribute][0 if known is None else 1]
            value = rng.choice([v for v in ATTRIBUTES[attribute][0] if v != known])
            text = template.format(friend=friend, value=value)
            statements.append(Said(attribute, value, day, text, about=friend))
            current[f"{friend}/{attribute}"] = value
        rng.shuffle(statements)
        turns: list[tuple[str, str, datetime, Said | None]] = []
        talk = rng.sample(SMALL_TALK, k=len(SMALL_TALK))
        slots = iter(moments)
        for i, statement in enumerate(statements):
            user_text, reply = talk[i % len(talk)]
            turns.append((user_text, reply, next(slots), None))
            when = next(slots)
            statement.when = when
            turns.append((statement.text, "Thanks, I will remember that.", when, statement))
        for user_text, reply in talk[:6]:  # the session goes on: the facts leave the window
            turns.append((user_text, reply, next(slots), None))
        story.sessions.append(turns)
        story.said += statements
    story.final_day = day + timedelta(days=rng.randint(14, 35))
    story.questions = questions_for(story)
    return story


def questions_for(story: UserStory) -> list[Question]:
    """Per fact: its current value; its earlier value, when it had one; when it changed."""
    name, questions = story.name, []
    for attribute in ATTRIBUTES:
        runs = _runs([s for s in story.said if s.attribute == attribute and not s.about])
        if not runs:
            continue
        value, began = runs[-1]
        ask_current, ask_before, ask_when = QUESTIONS[attribute]
        questions.append(Question(name, attribute, "current", ask_current, value, None, None))
        earlier = next((v for v, _ in reversed(runs[:-1]) if v is not None), None)
        if value is None:  # retracted: the value that ended is the earlier one
            earlier = next((v for v, _ in reversed(runs) if v is not None), None)
        if earlier is not None:
            questions.append(Question(name, attribute, "history", ask_before, value, earlier, None))
        if value is not None and len(runs) >= 2:
            questions.append(Question(name, attribute, "when", ask_when, value, earlier, began))
    return questions


def _runs(said: list[Said]) -> list[tuple[str | None, datetime]]:
    """The attribute's values in order, each with when it began (restatements folded in)."""
    runs: list[tuple[str | None, datetime]] = []
    for statement in said:
        if not runs or runs[-1][0] != statement.value:
            runs.append((statement.value, statement.when))
    return runs


# -- feeding the memory -------------------------------------------------------------------------


class ScriptedSummarizer:
    """A fake LLM for the summarizer: answers each batch with the facts its turns state.

    It reads the turns from the prompt (``[id] day, speaker: text``) and looks each one up in
    the script, as a real model would be asked to: a change is the new value, a retraction is
    ``null``. It records the prompts it got.
    """

    _TURN = re.compile(r"^\[(\d+)\] [^,]+, (?P<speaker>[^:]+): (?P<text>.*)$", re.MULTILINE)

    def __init__(self, script: dict[tuple[str, str], Said]) -> None:
        self.script = script
        self.prompts: list[str] = []

    def __call__(self, prompt: Any) -> str:
        text = prompt if isinstance(prompt, str) else str(prompt)
        self.prompts.append(text)
        entities = []
        new_turns = text.split("New turns:", 1)[-1]
        for match in self._TURN.finditer(new_turns):
            said = self.script.get((match["speaker"], match["text"].strip()))
            if said is not None:
                entities.append(
                    {
                        "name": said.about or match["speaker"],
                        "facts": {said.attribute: said.value},
                        "turn": int(match.group(1)),
                    }
                )
        return json.dumps({"summary": "Small talk and personal updates.", "entities": entities})


def build_memory(
    path: str, stories: list[UserStory]
) -> tuple[HybridMemory, ScriptedSummarizer | None]:
    """A memory with default settings, fed every session of every user."""
    fake = None
    options: dict[str, Any] = {"token_budget": BUDGET}
    if path == "extractor":
        script = {(s.name, said.text): said for s in stories for said in s.said}
        fake = ScriptedSummarizer(script)
        # batches small enough that a session's statements fold before it ends
        options |= {"llm": RunnableLambda(fake), "window_turns": 6, "summary_batch_tokens": 80}
    memory = HybridMemory(**options)
    for story in stories:
        order = list(enumerate(story.sessions))
        if path == "caller-shuffled":  # a user's devices sync late: newest sessions first
            order.reverse()
        for index, turns in order:
            session = f"{story.name.lower()}-{index}"
            for user_text, reply, when, said in turns:
                entities = None
                if path.startswith("caller") and said is not None:
                    entities = {said.about or story.name: {said.attribute: said.value}}
                memory.add_messages(
                    session,
                    [HumanMessage(user_text, name=story.name), AIMessage(reply)],
                    user_id=story.name.lower(),
                    timestamp=[when, when + timedelta(seconds=20)],
                    entities=entities,
                )
    memory.flush()
    return memory, fake


# -- scoring --------------------------------------------------------------------------------------

_HEAD = re.compile(r"^- (?P<name>[^(:]+?)(?: \(since (?P<day>[^)]*)\))?: (?P<body>.*)$")


def _top_level(body: str) -> list[str]:
    """``a: x; b: y (since ...; before: ...)`` split at the semicolons outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in body:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ";" and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [*parts, current.strip()] if current.strip() else parts


def shown_facts(context_text: str, name: str) -> dict[str, tuple[str | None, str]]:
    """The facts the entities section shows for ``name``: attribute -> (current or None, notes).

    A fact without notes of its own began the day that heads its entity's line.
    """
    facts: dict[str, tuple[str | None, str]] = {}
    for line in context_text.splitlines():
        head = _HEAD.match(line)
        if head is None or head["name"] != name:
            continue
        for part in _top_level(head["body"]):
            attribute, _, rest = part.partition(": ")
            value, notes = rest, f"since {head['day']}" if head["day"] else ""
            if rest.endswith(")") and " (" in rest:
                value, notes = rest[:-1].split(" (", 1)
            facts[attribute.strip()] = (None if value == "none now" else value.strip(), notes)
    return facts


def _latest_earlier(notes: str) -> str | None:
    """The value shown right before the current one (or the one that ended), if any."""
    for marker in ("before: ", "was: "):
        if marker in notes:
            return notes.split(marker, 1)[1].split(", ", 1)[0]
    return None


def score(memory: HybridMemory, stories: list[UserStory]) -> dict[str, Any]:
    """Ask every question in a new session of its user; the shares of right answers."""
    tallies = {"current": [0, 0], "history": [0, 0], "when": [0, 0]}
    superseded = other_users = asked = 0
    failures: list[str] = []
    values_of = {s.name: {v.value for v in s.said if v.value} for s in stories}
    for story in stories:
        session = f"{story.name.lower()}-new"
        memory.add_messages(
            session,
            [HumanMessage("Hello again!", name=story.name), AIMessage("Welcome back!")],
            user_id=story.name.lower(),
            timestamp=[story.final_day, story.final_day + timedelta(seconds=20)],
        )
        for question in story.questions:
            context = memory.build_context(session, question.text, user_id=story.name.lower())
            text = "\n".join(m.text for m in context.to_messages())
            facts = shown_facts(text, story.name)
            shown, notes = facts.get(question.attribute, (None, ""))
            right = shown == question.current
            if question.kind == "history":
                right = right and _latest_earlier(notes) == question.earlier
            elif question.kind == "when":
                day = format_day(question.since) if question.since else ""
                right = right and f"since {day}" in notes
            tallies[question.kind][0] += right
            tallies[question.kind][1] += 1
            asked += 1
            stale = {
                s.value for s in story.said if s.attribute == question.attribute and not s.about
            }
            if shown is not None and shown != question.current and shown in stale:
                superseded += 1
            others = set().union(*(v for n, v in values_of.items() if n != story.name))
            if any(value in text for value in others - values_of[story.name]):
                other_users += 1
            if not right and len(failures) < 5:
                failures.append(
                    f"{question.kind} {story.name}/{question.attribute}: {question.text!r} -> {shown!r} ({notes})"
                )
    share = {kind: (hits / total if total else 1.0) for kind, (hits, total) in tallies.items()}
    history_total = tallies["history"][1] + tallies["when"][1]
    return {
        "questions": asked,
        "by_kind": {kind: {"right": h, "asked": t} for kind, (h, t) in tallies.items()},
        "right_current": share["current"],
        "right_history": (tallies["history"][0] + tallies["when"][0]) / history_total
        if history_total
        else 1.0,
        "superseded_as_current": superseded / asked if asked else 0.0,
        "other_users_values": other_users / asked if asked else 0.0,
        "examples_of_misses": failures,
    }


def run(users: int, sessions: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    stories = [
        write_story(
            NAMES[i % len(NAMES)] + ("" if i < len(NAMES) else str(i)), rng, start, sessions
        )
        for i in range(users)
    ]
    results: dict[str, Any] = {"users": users, "sessions_per_user": sessions, "seed": seed}
    results["statements"] = sum(len(s.said) for s in stories)
    results["changes"] = sum(
        len(_runs([x for x in story.said if x.attribute == attribute and not x.about])) - 1
        for story in stories
        for attribute in ATTRIBUTES
        if any(x.attribute == attribute and not x.about for x in story.said)
    )
    results["paths"] = {}
    for path in PATHS:
        began = time.perf_counter()
        memory, fake = build_memory(path, stories)
        figures = score(memory, stories)
        figures["seconds"] = time.perf_counter() - began
        figures["llm_calls"] = len(fake.prompts) if fake else 0
        memory.close()
        results["paths"][path] = figures
        print(
            f"{path:>9}: right current {figures['right_current']:.3f}, right history "
            f"{figures['right_history']:.3f}, superseded as current "
            f"{figures['superseded_as_current']:.3f}, other users {figures['other_users_values']:.3f} "
            f"({figures['questions']} questions, {figures['llm_calls']} LLM calls)",
            flush=True,
        )
    return results


def write(results: dict[str, Any], out: Path, command: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Knowledge updates: a user's facts across sessions, as they change",
        "",
        "Written by `benchmarks/knowledge_updates.py`; do not edit by hand, run it again.",
        "",
        "```bash",
        command,
        "```",
        "",
        f"{results['users']} users, {results['sessions_per_user']} sessions each, two to four "
        f"weeks apart ({results['statements']} statements of a fact, {results['changes']} "
        "changes or retractions), then a new session per user weeks later with questions about "
        "each fact's current value, its earlier value and when it changed. Each question's "
        f"context is built at {BUDGET} tokens with the default settings and its entities "
        "section parsed back into facts (no LLM judges). Conversations are generated from a "
        f"seed ({results['seed']}) for this benchmark.",
        "",
        "| facts from | right current | right history | superseded as current | other users' values | questions | LLM calls |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    labels = {
        "caller": "the caller's NLU (`entities=`)",
        "caller-shuffled": "the caller's NLU, a user's sessions stored newest first",
        "extractor": "a scripted LLM summarizer",
    }
    for path, figures in results["paths"].items():
        lines.append(
            f"| {labels[path]} | {figures['right_current']:.3f} | {figures['right_history']:.3f} | "
            f"{figures['superseded_as_current']:.3f} | {figures['other_users_values']:.3f} | "
            f"{figures['questions']} | {figures['llm_calls']} |"
        )
    lines += [
        "",
        f"Targets (issue #14): right current >= {TARGET_CURRENT}, right history >= "
        f"{TARGET_HISTORY} (questions about an earlier value and about when the current value "
        "began, together), no superseded value shown as current.",
        "",
        "*Right current*: the asked fact's current value is the true one (for a retracted fact, "
        "none is shown as current). *Right history*: the earlier value is shown as earlier, or "
        "the day the current value began is right. *Superseded as current*: a value that no "
        "longer holds is shown as the current one. *Other users' values*: a context holding a "
        "value only another user stated.",
        "",
        f"Machine: {_machine()}.",
        "",
    ]
    out.write_text("\n".join(lines), encoding="utf-8")


def _machine() -> str:
    import os

    cpus = os.cpu_count()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{cpus} CPUs, Python {platform.python_version()}, run at {when}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks" / "knowledge_updates.md"
    )
    args = parser.parse_args(argv)
    results = run(args.users, args.sessions, args.seed)
    command = "python benchmarks/knowledge_updates.py"
    if (args.users, args.sessions, args.seed) != (8, 4, 14):
        command += f" --users {args.users} --sessions {args.sessions} --seed {args.seed}"
    write(results, args.out, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
