"""Sample conversations for demos, notebooks and tuning: no network, no LLM needed.

Two samples ship with the package:

* :func:`load_demo_conversation`: the conversation ``hybrid-memory demo`` replays, 146 messages
  over three weeks between Ana and an assistant, with facts planted in the first minutes, three
  probe questions about them, and the facts a caller's NLU would pass for some messages.
* :func:`multi_session_sample`: a longer synthetic conversation, ten weekly sessions of 24
  messages, in which about thirty facts are stated among small talk that shares their words
  (colleagues' birthdays, friends' dogs, other people moving house), some of them changing later,
  with questions naming the messages that answer them. Scored with
  :func:`~langchain_hybrid_memory.evaluation.evaluate_locomo`, it shows how the token budget,
  the window and the recall settings change what reaches a prompt. It is written for this
  project (generated from the templates below with a fixed seed); it is not LoCoMo data, only
  in the same shape (:class:`~langchain_hybrid_memory.evaluation.LocomoConversation`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

if TYPE_CHECKING:
    from langchain_hybrid_memory.evaluation import LocomoConversation

__all__ = ["DemoConversation", "load_demo_conversation", "multi_session_sample"]


@dataclass(frozen=True)
class DemoConversation:
    """The sample conversation shipped for the demo.

    Attributes:
        title: A one-line description.
        user_id: The user who speaks.
        session_id: The session the demo stores it as.
        messages: Every message with the time it was said, in order.
        probes: Questions about early facts, each with words its context must contain.
        entities: The facts some messages state, as a caller's NLU would pass them: message
            index -> entity -> attribute -> value.
    """

    title: str
    user_id: str
    session_id: str
    messages: list[tuple[BaseMessage, datetime]]
    probes: list[tuple[str, list[str]]]
    entities: dict[int, dict[str, dict[str, str]]] = field(default_factory=dict)


def load_demo_conversation() -> DemoConversation:
    """Load the sample conversation that ships with the package.

    Example:
        >>> conversation = load_demo_conversation()
        >>> len(conversation.messages) >= 100
        True
    """
    data = resources.files("langchain_hybrid_memory").joinpath("data/demo_conversation.json")
    raw: dict[str, Any] = json.loads(data.read_text("utf-8"))
    messages: list[tuple[BaseMessage, datetime]] = []
    for item in raw["messages"]:
        when = datetime.fromisoformat(item["time"])
        if item["role"] == "user":
            messages.append((HumanMessage(item["text"], name="Ana"), when))
        else:
            messages.append((AIMessage(item["text"]), when))
    probes = [(probe["question"], list(probe["expect"])) for probe in raw["probes"]]
    entities = {i: item["entities"] for i, item in enumerate(raw["messages"]) if "entities" in item}
    return DemoConversation(
        raw["title"], raw["user_id"], raw["session_id"], messages, probes, entities
    )


# -- the multi-session sample -----------------------------------------------------------------

#: Exchanges (a message of Ana's and the assistant's answer) per session.
_EXCHANGES = 12
_FIRST_SESSION = datetime(2026, 1, 5, 19, 0)

#: The facts, by session: (key, Ana's message, the assistant's answer).
_FACTS: dict[int, list[tuple[str, str, str]]] = {
    1: [
        (
            "porto",
            "We live in Porto, in a flat two streets from the Bolhão market.",
            "Living that close to the market must make weekend cooking easy.",
        ),
        (
            "peanuts",
            "Before I forget: I'm allergic to peanuts, even a trace makes me ill.",
            "Understood, I'll keep peanuts out of every recipe idea.",
        ),
        (
            "bolt",
            "Our dog Bolt is a three-year-old border collie with far too much energy.",
            "Border collies love a job to do; puzzle toys help on busy days.",
        ),
    ],
    2: [
        (
            "oat",
            "My mornings start with a big coffee with oat milk, no sugar.",
            "A classic. Oat milk froths nicely too if you ever get a steamer.",
        ),
        (
            "engineer",
            "I work as a structural engineer, mostly on bridge inspections.",
            "That sounds like work where no two weeks look alike.",
        ),
        (
            "cello",
            "I've started cello lessons; my teacher Inês is very patient with me.",
            "A patient teacher makes a huge difference in the first year.",
        ),
    ],
    3: [
        (
            "gym",
            "I joined the Fitness Up gym on Rua de Santa Catarina, three evenings a week.",
            "Three evenings is a solid routine; keep one rest day between the heavy ones.",
        ),
        (
            "bike",
            "My bike got a puncture, so I left it at Pedro's repair shop in Foz.",
            "Hopefully Pedro has it patched up before the weekend.",
        ),
        (
            "chef",
            "My brother Tiago is a chef, he trained in Lyon for two years.",
            "Two years in Lyon is a serious apprenticeship.",
        ),
    ],
    4: [
        (
            "passport",
            "My passport expires in August, I really need to renew it soon.",
            "Renewals can take several weeks, so booking an appointment now is wise.",
        ),
        (
            "dentist",
            "My dentist is Dr. Sousa, her clinic is next to the university.",
            "Good to have someone near the university, easy to reach.",
        ),
        (
            "key",
            "Our neighbour Luís on the second floor keeps our spare house key.",
            "Handy, especially with a dog who needs letting out.",
        ),
    ],
    5: [
        (
            "japan",
            "Big news: we booked two weeks in Japan for October, Tokyo and Kyoto.",
            "Wonderful! October is a lovely season there, with mild weather.",
        ),
        (
            "train",
            "Every Tuesday I take the 7:40 train to Coimbra for client meetings.",
            "An early start, but at least you can read on the train.",
        ),
        (
            "book",
            "My book club is reading Blindness by José Saramago this month.",
            "A powerful novel; it should give the club plenty to discuss.",
        ),
    ],
    6: [
        (
            "lisbon",
            "We finally moved to Lisbon last weekend, to a flat in Alvalade.",
            "Congratulations on the move! Alvalade is a friendly neighbourhood.",
        ),
        (
            "car",
            "I drive a green 2015 Renault Clio, it has never let me down.",
            "A reliable small car is worth a lot in city traffic.",
        ),
        (
            "walks",
            "Bolt needs at least an hour of walking every single morning.",
            "An hour a day should keep a collie calm at home.",
        ),
    ],
    7: [
        (
            "tea",
            "I've given up coffee completely, now it's green tea every morning.",
            "Green tea still has a little caffeine, so the switch is gentler.",
        ),
        (
            "sofia",
            "Our daughter Sofia starts primary school in September.",
            "A big step! New shoes and a proper school bag are traditional.",
        ),
        (
            "marathon",
            "I signed up for the Lisbon half marathon in March.",
            "That gives you a good few months to build up the distance.",
        ),
    ],
    8: [
        (
            "pool",
            "I cancelled the gym membership; I swim at the Areeiro municipal pool now.",
            "Swimming is kind to the joints, a good partner for running.",
        ),
        (
            "restaurant",
            "Tiago opened his own restaurant in Aveiro, seafood mostly.",
            "Aveiro is a great place for seafood; I hope it goes well.",
        ),
        (
            "blood",
            "I give blood at Santa Maria hospital every three months.",
            "That's generous; remember to eat well on donation days.",
        ),
    ],
    9: [
        (
            "aisle",
            "On planes I always ask for an aisle seat, my legs are too long.",
            "An aisle seat also makes it easier to stretch on long flights.",
        ),
        (
            "caldo",
            "Grandma's caldo verde only works with chouriço from Chaves.",
            "Regional sausages really do change the flavour of a soup.",
        ),
        (
            "sitter",
            "When we travel, Luís takes Bolt on his morning walks.",
            "Lucky Bolt, a neighbour he knows is the best sitter.",
        ),
    ],
    10: [
        (
            "turbines",
            "I changed jobs: I now design wind turbine towers for an energy company.",
            "Congratulations, that's an exciting new field to work in.",
        ),
        (
            "bill",
            "The electricity bill goes out by direct debit on the 3rd of each month.",
            "Direct debit is one less thing to remember.",
        ),
    ],
}

#: Questions asked after the last session: (question, LoCoMo category, keys of the facts).
#: Categories as LoCoMo numbers them: 1 multi-hop, 2 temporal, 4 single-hop.
_QUESTIONS: list[tuple[str, int, tuple[str, ...]]] = [
    ("Is there any food I must stay away from?", 4, ("peanuts",)),
    ("What kind of dog is Bolt?", 4, ("bolt",)),
    ("Who gives me cello lessons?", 4, ("cello",)),
    ("Where did I take my bike to be fixed?", 4, ("bike",)),
    ("Who is my dentist?", 4, ("dentist",)),
    ("Who has a copy of our house key?", 4, ("key",)),
    ("Which train do I catch for my meetings in Coimbra?", 4, ("train",)),
    ("What is my book club reading?", 4, ("book",)),
    ("What car do I drive?", 4, ("car",)),
    ("When does Sofia start school?", 4, ("sofia",)),
    ("Which race am I training for?", 4, ("marathon",)),
    ("How often do I donate blood?", 4, ("blood",)),
    ("What seat do I like on a flight?", 4, ("aisle",)),
    ("Which sausage does grandma's soup need?", 4, ("caldo",)),
    ("How is the electricity paid?", 4, ("bill",)),
    ("What do I need to sort out before the holiday in Japan?", 1, ("japan", "passport")),
    ("What does my brother do, and where is his restaurant?", 1, ("chef", "restaurant")),
    (
        "Who walks my dog when we are away, and how much walking does he need?",
        1,
        ("walks", "sitter"),
    ),
    ("What is Tiago's training, and where did he learn to cook?", 1, ("chef",)),
    ("Where did we live before moving to Lisbon?", 2, ("porto", "lisbon")),
    ("What did I drink in the mornings before, and what now?", 2, ("oat", "tea")),
    ("Where did I exercise before I started swimming?", 2, ("gym", "pool")),
    ("What was my job before the current one?", 2, ("engineer", "turbines")),
    ("When did we move to Alvalade?", 2, ("lisbon",)),
]

_PEOPLE = ("Carla", "Nuno", "Helena", "Rita", "Jorge", "Beatriz", "Miguel", "Teresa")
_CITIES = ("Faro", "Braga", "Madrid", "Évora", "Coimbra", "Aveiro", "Sintra", "Seville")
_MONTHS = ("March", "April", "May", "June", "September", "October", "November")
_BREEDS = ("beagle", "labrador", "dachshund", "poodle", "collie cross")
_DISHES = ("a mushroom risotto", "grilled sardines", "a lentil curry", "bacalhau à Brás")
_TOPICS = ("deep-sea fish", "the history of trams", "volcanoes", "old maps", "bees")
_THINGS = ("the kitchen tap", "a squeaky door", "the balcony light", "a wobbly shelf")

#: Small talk: Ana's message and the assistant's answer, filled from the lists above.
_SMALL_TALK: tuple[tuple[str, str], ...] = (
    (
        "My colleague {person} has her birthday in {month}, we're planning a surprise lunch.",
        "A surprise lunch is a lovely idea; a card signed by everyone is a nice touch.",
    ),
    (
        "{person} from work just adopted a {breed} puppy.",
        "Puppies are a lot of work in the first months, but so much fun.",
    ),
    (
        "{person} told me she's thinking of moving to {city} next year.",
        "A move is a big decision; visiting in different seasons helps.",
    ),
    (
        "I watched a documentary about {topic} last night.",
        "Documentaries are a great way to end the day.",
    ),
    (
        "We had {dish} for dinner, it turned out really well.",
        "Sounds delicious, a dish worth keeping in the rotation.",
    ),
    (
        "I finally fixed {thing} at home this weekend.",
        "Small repairs are so satisfying once they're done.",
    ),
    ("My cousin sent photos from her trip to {city}.", "{city} is beautiful at this time of year."),
    (
        "{person}'s car broke down again on the way to the office.",
        "Hopefully it's something simple for the mechanic.",
    ),
    (
        "There's a street market in {city} on Saturday, maybe I'll go.",
        "Markets are a nice way to spend a Saturday morning.",
    ),
    (
        "Can you suggest a quick lunch for a busy workday?",
        "A grain bowl with roasted vegetables and a boiled egg takes ten minutes.",
    ),
    (
        "I read an article about {topic} on my phone.",
        "It's amazing how much there is to learn about almost anything.",
    ),
    (
        "{person} recommended a podcast about {topic}.",
        "Podcasts make chores and commutes go faster.",
    ),
    (
        "The weather was grey all day, I stayed in with a book.",
        "Sometimes a quiet day in is exactly what's needed.",
    ),
    (
        "{person}'s son is learning the piano and practises every evening.",
        "Daily practice is the secret, even just twenty minutes.",
    ),
    (
        "I need a gift idea for {person}, she likes gardening.",
        "A good pair of gloves or a set of herb seeds is always welcome.",
    ),
    (
        "My aunt's dog, a {breed}, is staying with us for a few days.",
        "A visiting dog can be fun company for a while.",
    ),
    (
        "{person} says her passport photo looks nothing like her.",
        "Passport photos are famously unflattering.",
    ),
    (
        "{person}'s brother works in a restaurant kitchen in {city}.",
        "Kitchen work means long hours on your feet.",
    ),
    ("{person} just started a new job at a bank.", "A new job takes a few weeks to settle into."),
    (
        "The train to {city} was late again this morning.",
        "Delays are frustrating, especially on a work day.",
    ),
    (
        "{person} swims in the sea every Sunday, even in winter.",
        "Cold-water swimming takes real dedication.",
    ),
    (
        "{person}'s daughter is learning to ride a bike.",
        "A balance bike makes the first rides easier.",
    ),
    (
        "I tried a new café near the office, their coffee was great.",
        "A good coffee can make a morning.",
    ),
    (
        "{person} is reading a thriller set in Tokyo.",
        "Thrillers set in big cities are hard to put down.",
    ),
    (
        "My uncle's soup recipe calls for a whole cabbage.",
        "Cabbage soups are comforting in the cold months.",
    ),
    ("{person} keeps losing her house keys.", "A key hook by the door helps a lot."),
)


def multi_session_sample(seed: int = 0) -> LocomoConversation:
    """A ten-session conversation with questions about facts scattered through it.

    Ana talks with an assistant once a week for ten weeks (24 messages a session, 240 in all).
    Each session states two or three facts (her city, allergy, dog, family, work, habits), some
    of which change later (she moves, changes jobs, swaps coffee for tea, the gym for a pool),
    among small talk about other people's birthdays, dogs, cars and moves that shares their
    words. The 24 questions name the messages that answer them as evidence (``"D3:5"``:
    session 3, message 5): 15 single-hop questions (LoCoMo category 4), 4 multi-hop (1) and
    5 temporal (2). The same ``seed`` always gives the same conversation.

    Args:
        seed: Chooses where facts fall in their sessions and fills the small talk.

    Returns:
        The conversation, ready for
        :func:`~langchain_hybrid_memory.evaluation.evaluate_locomo`.

    Example:
        >>> sample = multi_session_sample()
        >>> len(sample.sessions), sum(len(s.turns) for s in sample.sessions), len(sample.questions)
        (10, 240, 24)
        >>> question = sample.questions[0]
        >>> question.question, [t.text for s in sample.sessions for t in s.turns
        ...                     if t.dia_id in question.evidence]
        ('Is there any food I must stay away from?', ["Before I forget: I'm allergic to \
peanuts, even a trace makes me ill."])
    """
    from langchain_hybrid_memory.evaluation import (
        LocomoConversation,
        LocomoQuestion,
        LocomoSession,
        LocomoTurn,
    )

    rng = random.Random(seed)
    sessions: list[LocomoSession] = []
    evidence_of: dict[str, str] = {}
    for number in range(1, len(_FACTS) + 1):
        facts = _FACTS[number]
        slots = set(rng.sample(range(_EXCHANGES), len(facts)))
        fact_iter = iter(facts)
        small_talk = rng.sample(_SMALL_TALK, _EXCHANGES - len(facts))
        talk_iter = iter(small_talk)
        turns: list[LocomoTurn] = []
        for exchange in range(_EXCHANGES):
            if exchange in slots:
                key, said, answer = next(fact_iter)
                evidence_of[key] = f"D{number}:{len(turns) + 1}"
            else:
                said, answer = _fill(next(talk_iter), rng)
            turns.append(LocomoTurn(f"D{number}:{len(turns) + 1}", "Ana", said))
            turns.append(LocomoTurn(f"D{number}:{len(turns) + 1}", "Assistant", answer))
        date = _FIRST_SESSION + timedelta(weeks=number - 1)
        sessions.append(LocomoSession(number, date, tuple(turns)))
    questions = tuple(
        LocomoQuestion(question, category, tuple(evidence_of[key] for key in keys))
        for question, category, keys in _QUESTIONS
    )
    return LocomoConversation("ana-ten-weeks", "Ana", "Assistant", tuple(sessions), questions)


def _fill(template: tuple[str, str], rng: random.Random) -> tuple[str, str]:
    """One exchange of small talk, its blanks filled the same way in both messages."""
    values = {
        "person": rng.choice(_PEOPLE),
        "city": rng.choice(_CITIES),
        "month": rng.choice(_MONTHS),
        "breed": rng.choice(_BREEDS),
        "dish": rng.choice(_DISHES),
        "topic": rng.choice(_TOPICS),
        "thing": rng.choice(_THINGS),
    }
    said, answer = template
    return said.format(**values), answer.format(**values)
