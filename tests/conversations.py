"""Conversations for tests: a planted fact followed by many turns about other things."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

_TOPICS = [
    ("How long should I boil an egg for a runny yolk?", "About six minutes in boiling water."),
    ("What's a good stretch after cycling?", "Try a standing quad stretch and a hip flexor lunge."),
    ("Recommend a science fiction novel.", "The Left Hand of Darkness is a classic."),
    ("How do I repot a fern?", "Use a slightly larger pot and keep the soil moist."),
    ("Is it worth learning Rust this year?", "Yes, if you like systems programming."),
    ("What should I pack for a rainy hike?", "A shell jacket, spare socks and a map."),
    ("How do I clean a cast iron pan?", "Scrub with salt, rinse, dry and oil it lightly."),
    ("Any tips for a job interview tomorrow?", "Prepare three stories that show your impact."),
    ("Which chess opening suits beginners?", "The Italian Game teaches sound development."),
    ("How often should I water tomatoes?", "Deeply, two or three times a week."),
    ("What's the capital of Australia?", "Canberra."),
    ("How do I fix a squeaky door hinge?", "A drop of oil on the hinge pin usually works."),
    ("Suggest a podcast about history.", "Try a narrative series on the Roman Republic."),
    ("How do I make cold brew coffee?", "Steep coarse grounds in cold water for 16 hours."),
    ("What's a good warm-up before climbing?", "Easy traversing and shoulder circles."),
    ("How can I sleep better?", "Keep a regular schedule and a dark, cool room."),
    ("Recommend a board game for four.", "Ticket to Ride is easy to learn."),
    ("How do I start journaling?", "Write three lines every evening, nothing more."),
    ("What's a quick vegetarian lunch?", "A chickpea salad with lemon and herbs."),
    ("How do I change a bike tyre?", "Release the brake, lever the tyre off, swap the tube."),
]


def filler(count: int, *, start: int = 0) -> list[BaseMessage]:
    """``count`` messages (alternating user and assistant) about everyday topics."""
    messages: list[BaseMessage] = []
    index = start
    while len(messages) < count:
        question, answer = _TOPICS[index % len(_TOPICS)]
        messages.append(HumanMessage(f"{question} (take {index})"))
        messages.append(AIMessage(f"{answer} (note {index})"))
        index += 1
    return messages[:count]


def times(count: int, *, start: datetime = START) -> list[datetime]:
    """One timestamp per message, a minute apart."""
    return [start + timedelta(minutes=i) for i in range(count)]
