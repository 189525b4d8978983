"""HybridMemoryMiddleware under the harder paths of create_agent (review of issue #13).

Parallel tool calls, many steps in one run, huge tool results, a run that ends in a tool error,
``return_direct`` tools, structured output, human-in-the-loop interrupts, async streaming, two
workers on one thread. Each test checks what the model received and what the memory stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, HumanInTheLoopMiddleware
from langchain.agents.structured_output import ToolStrategy
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.tools import tool
from langchain_core.tracers.base import BaseTracer
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from pydantic import BaseModel

from langchain_hybrid_memory import HybridMemory, HybridMemoryMiddleware
from tests.fakes import RecordingToolModel
from tests.unit.test_middleware import replies, say, thread

if TYPE_CHECKING:
    from langchain_core.tracers.schemas import Run

BUDGET = 400
SYSTEM = "You are a helpful assistant."


@tool
def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"Sunny in {city}"


@tool
def read_file(path: str) -> str:
    """Read a whole file."""
    return f"{path}: " + "log line with many words in it. " * 600


@tool
def flaky(city: str) -> str:
    """A tool whose service is down."""
    msg = "the weather service is down"
    raise RuntimeError(msg)


@tool(return_direct=True)
def lookup(key: str) -> str:
    """Look a value up and answer the user with it directly."""
    return f"The value of {key} is 42."


def calls(*cities: str, prefix: str = "c") -> AIMessage:
    """One AI message calling ``weather`` for each city, in parallel."""
    return AIMessage(
        "",
        tool_calls=[
            {"name": "weather", "args": {"city": city}, "id": f"{prefix}-{city}"} for city in cities
        ],
    )


def agent_with(
    memory: HybridMemory,
    model: RecordingToolModel,
    tools: list,
    *,
    middleware: tuple = (),
    keep_full_thread: bool = False,
    **kwargs: Any,
):
    """``create_agent`` with the memory first, the app's system prompt and a checkpointer."""
    kwargs.setdefault("checkpointer", InMemorySaver())
    first = HybridMemoryMiddleware(memory, keep_full_thread=keep_full_thread)
    return create_agent(
        model, tools=tools, system_prompt=SYSTEM, middleware=[first, *middleware], **kwargs
    )


@pytest.fixture
def memory(embeddings) -> HybridMemory:
    return HybridMemory(embeddings=embeddings, window_turns=6, token_budget=BUDGET)


def check_prompt(prompt: list[BaseMessage], step: list[BaseMessage]) -> None:
    """What every model call must get: the app's system message, then (after the memory) a
    user message first, every tool call with its result and every result with its call, the
    current step whole at the end, and the rest within the budget.
    """
    assert prompt[0].text == SYSTEM
    rest = prompt[1:]
    after_memory = [m for m in rest if not isinstance(m, SystemMessage)]
    assert isinstance(after_memory[0], HumanMessage), [m.type for m in after_memory]
    called = {c["id"] for m in rest for c in getattr(m, "tool_calls", [])}
    answered = {m.tool_call_id for m in rest if isinstance(m, ToolMessage)}
    assert called == answered, "a tool call reached the model without its result, or back"
    assert [(m.type, m.text) for m in rest[-len(step) :]] == [(m.type, m.text) for m in step]
    if count_tokens_approximately(step) <= BUDGET:
        assert count_tokens_approximately(rest) <= BUDGET


def current_step(state: list[BaseMessage]) -> list[BaseMessage]:
    last_user = max(i for i, m in enumerate(state) if isinstance(m, HumanMessage))
    return state[last_user:]


def check_stored_once(memory: HybridMemory, session: str = "t1") -> list[BaseMessage]:
    transcript = memory.transcript(session)
    assert len({m.id for m in transcript}) == len(transcript), "a message stored twice"
    return transcript


# -- the current step, tool pairs, the window ----------------------------------------------------


@pytest.mark.parametrize("run_async", [False, True], ids=["invoke", "astream"])
async def test_parallel_tool_calls_over_many_steps_reach_the_model_whole_and_paired(
    memory, run_async
):
    script = [calls("Porto", "Lima", prefix="a"), calls("Faro", "Oslo", "Rome", prefix="b")]
    script += [AIMessage("All sunny.")]
    model = RecordingToolModel(messages=replies(script * 4))
    agent = agent_with(memory, model, [weather])
    for run in range(4):
        text = f"Run {run}: the weather in five cities, please, in two rounds."
        if run_async:
            async for _ in agent.astream(say(text), thread(), stream_mode="values"):
                pass
        else:
            agent.invoke(say(text), thread())
    for prompt in model.calls:
        step = current_step(prompt)
        check_prompt(prompt, step)
    transcript = check_stored_once(memory)
    assert len(transcript) == 4 * (1 + 1 + 2 + 1 + 3 + 1)


def test_a_huge_tool_result_reaches_the_model_whole_and_the_memory_steps_aside(memory):
    call = AIMessage("", tool_calls=[{"name": "read_file", "args": {"path": "app.log"}, "id": "r"}])
    model = RecordingToolModel(messages=replies([AIMessage("Hi."), call, AIMessage("Read.")]))
    agent = agent_with(memory, model, [read_file])
    agent.invoke(say("I live in Porto."), thread())
    agent.invoke(say("Read app.log for me."), thread())
    agent.invoke(say("Anything odd in it?"), thread())

    with_result = model.calls[2]
    assert with_result[-1].text == read_file.invoke({"path": "app.log"})
    assert [m.type for m in with_result] == ["system", "human", "ai", "tool"], "step alone"
    for prompt in model.calls:
        check_prompt(prompt, current_step(prompt))
    check_stored_once(memory)


@pytest.mark.parametrize("checkpointer", [InMemorySaver(), None], ids=["checkpointer", "stateless"])
def test_after_a_run_that_ended_in_a_tool_error_no_call_reaches_the_model_without_result(
    memory, checkpointer
):
    call = AIMessage("", tool_calls=[{"name": "flaky", "args": {"city": "Porto"}, "id": "f1"}])
    model = RecordingToolModel(messages=replies([AIMessage("Hi."), call]))
    agent = agent_with(memory, model, [flaky], checkpointer=checkpointer)
    agent.invoke(say("I live in Porto."), thread())
    with pytest.raises(RuntimeError, match="service is down"):
        agent.invoke(say("Weather in Porto?"), thread())
    agent.invoke(say("Never mind. Where do I live?"), thread())

    prompt = model.calls[-1]
    check_prompt(prompt, current_step(prompt))
    if checkpointer is not None:
        assert any(
            c["id"] == "f1" for m in memory.transcript("t1") for c in getattr(m, "tool_calls", [])
        ), "the unanswered call is stored, as the state holds it"
    transcript = check_stored_once(memory)
    assert [m.text for m in transcript if m.type == "human"] == [
        "I live in Porto.",
        "Weather in Porto?",
        "Never mind. Where do I live?",
    ]


def test_a_return_direct_tool_result_is_stored_and_the_next_prompt_starts_on_a_user(memory):
    call = AIMessage("", tool_calls=[{"name": "lookup", "args": {"key": "x"}, "id": "l1"}])
    model = RecordingToolModel(messages=replies([call]))
    agent = agent_with(memory, model, [lookup])
    result = agent.invoke(say("What is x?"), thread())
    assert result["messages"][-1].text == "The value of x is 42."
    assert [m.type for m in memory.transcript("t1")] == ["human", "ai", "tool"]
    agent.invoke(say("Thanks."), thread())
    prompt = model.calls[-1]
    check_prompt(prompt, current_step(prompt))
    assert [m.type for m in check_stored_once(memory)] == ["human", "ai", "tool", "human", "ai"]


class Weather(BaseModel):
    """The weather report."""

    city: str
    sky: str


def test_structured_output_reaches_the_caller_and_its_messages_are_stored_once(memory):
    answer = AIMessage(
        "",
        tool_calls=[{"name": "Weather", "args": {"city": "Porto", "sky": "clear"}, "id": "s1"}],
    )
    model = RecordingToolModel(messages=replies([answer, answer]))
    agent = agent_with(memory, model, [weather], response_format=ToolStrategy(Weather))
    result = agent.invoke(say("Weather in Porto, as a report?"), thread())
    assert result["structured_response"] == Weather(city="Porto", sky="clear")
    result = agent.invoke(say("And again?"), thread())
    assert result["structured_response"] == Weather(city="Porto", sky="clear")
    prompt = model.calls[-1]
    check_prompt(prompt, current_step(prompt))
    assert [m.type for m in check_stored_once(memory)] == ["human", "ai", "tool"] * 2


@pytest.mark.parametrize(
    ("decision", "run_async"),
    [("approve", False), ("reject", False), ("edit", False), ("approve", True)],
    ids=["approve", "reject", "edit", "approve-astream"],
)
async def test_a_run_resumed_after_human_review_stores_each_message_once(
    memory, decision, run_async
):
    call = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Porto"}, "id": "h1"}])
    model = RecordingToolModel(messages=replies([call, AIMessage("Done.")]))
    review_tools = HumanInTheLoopMiddleware(interrupt_on={"weather": True})
    agent = agent_with(memory, model, [weather], middleware=(review_tools,))
    paused = agent.invoke(say("Weather in Porto?"), thread())
    assert "__interrupt__" in paused
    review: dict[str, Any] = {"type": decision}
    if decision == "reject":
        review["message"] = "Not now."
    if decision == "edit":
        review["edited_action"] = {"name": "weather", "args": {"city": "Lisbon"}}
    resume = Command(resume={"decisions": [review]})
    if run_async:
        async for _ in agent.astream(resume, thread()):
            pass
        await agent.ainvoke(say("Thanks."), thread())
    else:
        agent.invoke(resume, thread())
        agent.invoke(say("Thanks."), thread())

    for prompt in model.calls:
        check_prompt(prompt, current_step(prompt))
    transcript = check_stored_once(memory)
    assert [m.type for m in transcript] == ["human", "ai", "tool", "ai", "human", "ai"]
    state = agent.get_state(thread()).values["messages"]
    assert [m.id for m in transcript[-len(state) :]] == [m.id for m in state]
    assert transcript[1].tool_calls == state[1].tool_calls, "the call as the state holds it"


# -- storing and the bounded state ----------------------------------------------------------------


def check_state_keeps_tool_pairs(state: list[BaseMessage]) -> None:
    called = {c["id"] for m in state for c in getattr(m, "tool_calls", [])}
    answered = {m.tool_call_id for m in state if isinstance(m, ToolMessage)}
    assert answered <= called, "a tool result lost its call in the state"


def test_over_200_turns_the_state_stays_bounded_keeps_pairs_and_the_memory_everything(embeddings):
    memory = HybridMemory(embeddings=embeddings, window_turns=5, token_budget=BUDGET)
    script: list[AIMessage] = []
    for i in range(200):
        if i % 3 == 0:
            script += [calls(f"City{i}", f"Town{i}", prefix=f"p{i}"), AIMessage(f"Both sunny {i}.")]
        else:
            script += [AIMessage(f"Reply {i}.")]
    model = RecordingToolModel(messages=replies(script))
    agent = agent_with(memory, model, [weather])
    sizes = []
    for i in range(200):
        result = agent.invoke(say(f"Turn {i}."), thread())
        state = result["messages"]
        sizes.append(len(state))
        check_state_keeps_tool_pairs(state)
        assert isinstance(state[0], HumanMessage)
    assert max(sizes) <= 5 + 5, "the window before the step, plus the step"
    for prompt in model.calls[-20:]:
        check_prompt(prompt, current_step(prompt))
    transcript = check_stored_once(memory)
    assert len(transcript) == 200 * 2 + 67 * 3
    assert [m.id for m in transcript[-len(state) :]] == [m.id for m in state]


@pytest.mark.parametrize("keep_full_thread", [False, True], ids=["bounded", "full"])
def test_the_memory_stores_what_ended_in_the_state_after_pii_middleware(memory, keep_full_thread):
    from langchain.agents.middleware import PIIMiddleware

    @tool
    def contact(name: str) -> str:
        """A person's contact."""
        return f"{name} is at bob@example.com"

    call = AIMessage("", tool_calls=[{"name": "contact", "args": {"name": "Bob"}, "id": "k1"}])
    script = [call, AIMessage("Bob: bob@example.com."), AIMessage("Yours: ana@example.com.")]
    model = RecordingToolModel(messages=replies(script))
    redact = PIIMiddleware(
        "email",
        strategy="redact",
        apply_to_input=True,
        apply_to_output=True,
        apply_to_tool_results=True,
    )
    agent = agent_with(
        memory, model, [contact], middleware=(redact,), keep_full_thread=keep_full_thread
    )
    agent.invoke(say("I'm ana@example.com; how do I reach Bob?"), thread())
    result = agent.invoke(say("And me, at ana@example.com?"), thread())

    transcript = check_stored_once(memory)
    state = result["messages"]
    shown = [(m.id, m.type, m.text) for m in state]
    assert [(m.id, m.type, m.text) for m in transcript[-len(state) :]] == shown
    assert len(transcript) == 4 + 2
    assert not any("@example.com" in m.text for m in transcript)


# -- traces ---------------------------------------------------------------------------------------


class EveryRun(BaseTracer):
    """A tracer (as LangSmith's) that keeps every run it records: name, inputs, outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.recorded: list[tuple[str, str]] = []

    def _persist_run(self, run: Run) -> None:
        pass

    def _end_trace(self, run: Run) -> None:
        self.recorded.append((run.name, repr((run.inputs, run.outputs))))
        super()._end_trace(run)


@pytest.mark.parametrize("redact_on", [("persist", "embed", "summarize"), ("embed",)])
def test_a_memory_that_redacts_leaves_raw_pii_only_in_the_apps_own_runs(embeddings, redact_on):
    from langchain_hybrid_memory.redaction import PIIRedactor

    memory = HybridMemory(
        embeddings=embeddings, window_turns=2, redactor=PIIRedactor(redact_on=redact_on)
    )
    model = RecordingToolModel(messages=replies())
    agent = agent_with(memory, model, [])
    agent.invoke(say("My email is ana@example.com, write to me there."), thread())
    for i in range(4):
        agent.invoke(say(f"Small talk {i}."), thread())
    tracer = EveryRun()
    agent.invoke(say("Is bob@example.com my email?"), {**thread(), "callbacks": [tracer]})

    def runs_showing(raw: str) -> set[str]:
        return {name for name, payload in tracer.recorded if raw in payload}

    assert "hybrid_memory.recall" in {name for name, _ in tracer.recorded}
    assert not {"HybridMemoryMiddleware.after_agent", "hybrid_memory.recall"} & runs_showing(
        "bob@"
    ), "the memory's runs show the input redacted, its hook spans nothing"
    the_model = {"RecordingToolModel"}
    assert runs_showing("ana@") <= (the_model if redact_on == ("embed",) else set()), (
        "raw text the memory keeps reaches only the model's prompt"
    )


@pytest.mark.parametrize("keep_full_thread", [False, True], ids=["bounded", "full"])
async def test_two_workers_alternating_on_one_thread_store_each_message_once(
    embeddings, tmp_path, keep_full_thread
):
    """Two processes' memories on one SQLite file, one checkpointer, sync and async runs, tool
    calls, more messages than the middleware compares by default.
    """
    url = f"sqlite:///{tmp_path / 'memory.db'}"
    memories = [
        HybridMemory(store=url, embeddings=embeddings, window_turns=4, token_budget=BUDGET)
        for _ in range(2)
    ]
    script: list[AIMessage] = []
    for i in range(30):
        script += (
            [calls(f"City{i}", prefix=f"w{i}"), AIMessage(f"Sunny {i}.")] if i % 4 == 0 else []
        )
        script += [] if i % 4 == 0 else [AIMessage(f"Reply {i}.")]
    model = RecordingToolModel(messages=replies(script))
    saver = InMemorySaver()
    agents = [
        agent_with(memory, model, [weather], checkpointer=saver, keep_full_thread=keep_full_thread)
        for memory in memories
    ]
    for i in range(30):
        if i % 3 == 0:
            await agents[i % 2].ainvoke(say(f"Turn {i}."), thread())
        else:
            agents[i % 2].invoke(say(f"Turn {i}."), thread())
    for memory in memories:
        transcript = check_stored_once(memory)
        assert len(transcript) == 30 * 2 + 8 * 2
        assert [m.text for m in transcript if m.type == "human"] == [
            f"Turn {i}." for i in range(30)
        ]
    for prompt in model.calls:
        check_prompt(prompt, current_step(prompt))
    for memory in memories:
        memory.close()


class FailOnce(AgentMiddleware):
    """An ``after_model`` hook that raises once, on the reply it is told to."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def after_model(self, state: Any, runtime: Any) -> None:
        if state["messages"][-1].text == self.text:
            self.text = ""
            msg = "the moderation service is down"
            raise RuntimeError(msg)


def test_a_run_that_raises_after_its_model_call_then_retried_stores_each_message_once(memory):
    call = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Porto"}, "id": "x1"}])
    model = RecordingToolModel(messages=replies([call, AIMessage("Checked.")]))
    agent = agent_with(memory, model, [weather], middleware=(FailOnce("Checked."),))
    with pytest.raises(RuntimeError, match="moderation"):
        agent.invoke(say("Weather in Porto?"), thread())
    agent.invoke(None, thread())  # the run retried from its last checkpoint
    agent.invoke(say("Thanks."), thread())

    for prompt in model.calls:
        check_prompt(prompt, current_step(prompt))
    transcript = check_stored_once(memory)
    assert [m.text for m in transcript if m.type != "tool"] == [
        "Weather in Porto?",
        "",
        "Checked.",  # the model ran once; the retry ran the hook again
        "Thanks.",
        "Reply 0.",
    ]


def test_with_durability_exit_a_run_writes_one_checkpoint_and_stores_its_reply(memory):
    call = AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Porto"}, "id": "d1"}])
    saver = InMemorySaver()
    model = RecordingToolModel(messages=replies([call]))
    agent = agent_with(memory, model, [weather], checkpointer=saver)
    for text in ("Weather in Porto?", "Thanks.", "Bye."):
        agent.invoke(say(text), thread(), durability="exit")
        assert memory.transcript("t1")[-1].id == agent.get_state(thread()).values["messages"][-1].id
    assert len(list(saver.list(thread()))) == 3, "the after_agent step adds no checkpoint"
    assert len(check_stored_once(memory)) == 4 + 2 + 2


def test_in_a_run_of_many_tool_steps_the_turns_before_it_reach_the_model_once(embeddings):
    """A run longer than the stored turns the middleware compares (60 messages): the exchange
    before it is still known as stored turns, so recall does not bring it a second time.
    """
    memory = HybridMemory(
        embeddings=embeddings, window_turns=4, token_budget=4000, summary_batch=200
    )
    fact = "Remember: the vault code is 4711 and the vault is in the cellar."
    script = [AIMessage("Noted the vault code.")]
    script += [calls(f"A{i}", f"B{i}", prefix=f"s{i}") for i in range(20)]
    script += [AIMessage("All checked.")]
    model = RecordingToolModel(messages=replies(script))
    agent = agent_with(memory, model, [weather])
    agent.invoke(say(fact), thread())
    agent.invoke(say("Check forty cities; what was the vault code?"), thread())

    for prompt in model.calls:
        check_prompt(prompt, current_step(prompt))
        assert sum(fact in m.text for m in prompt) == 1, "the fact once, in the window"
    check_stored_once(memory)


@pytest.mark.parametrize("checkpointer", [InMemorySaver(), None], ids=["checkpointer", "stateless"])
def test_a_system_prompt_sent_as_the_threads_first_message_reaches_every_model_call(
    memory, checkpointer
):
    instructions = SystemMessage("Always answer in French.", id="sys")
    model = RecordingToolModel(messages=replies())
    agent = create_agent(
        model,
        tools=[weather],
        middleware=[HybridMemoryMiddleware(memory)],
        checkpointer=checkpointer,
    )
    agent.invoke({"messages": [instructions, HumanMessage("Hi")]}, thread())
    for i in range(8):
        sent = [HumanMessage(f"Turn {i}.")]
        sent = sent if checkpointer else [instructions, *sent]  # a client resending it
        result = agent.invoke({"messages": sent}, thread())

    for prompt in model.calls:
        assert prompt[0].text == "Always answer in French.", "first, as the app sent it"
        assert sum(m.text == instructions.text for m in prompt) == 1
        after_memory = [m for m in prompt if not isinstance(m, SystemMessage)]
        assert isinstance(after_memory[0], HumanMessage)
    transcript = check_stored_once(memory)
    assert [m.type for m in transcript] == ["human", "ai"] * 9, "instructions are not turns"
    if checkpointer:
        assert result["messages"][0].id == "sys", "kept in the bounded state"
        assert len(result["messages"]) <= 1 + 6 + 2
