"""The prompt/answer protocol shared by the summarizer and the entity extractor.

Both accept any LangChain runnable (a chat model, a completion LLM or an LCEL chain): this module
writes turns into a prompt, calls the runnable, turns its answer into text, and finds the JSON
object in it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage

from langchain_hybrid_memory.context import format_day, one_line, shorten
from langchain_hybrid_memory.errors import SummarizerError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.runnables import Runnable

    from langchain_hybrid_memory.types import Turn

__all__ = ["ainvoke_text", "format_turns", "invoke_text", "output_text", "parse_json_object"]

_MAX_TURN_CHARS_IN_PROMPT = 2000


def format_turns(turns: Sequence[Turn]) -> str:
    """Write turns for a prompt: ``[id] day, speaker: text``, one per line, long texts cut.

    Example:
        >>> from datetime import datetime
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_hybrid_memory.types import Turn
        >>> print(format_turns([Turn("s", 0, HumanMessage("I live in Porto", name="Ana"), "I live in Porto", datetime(2026, 3, 2))]))
        [0] Mon 2 Mar 2026, Ana: I live in Porto
    """
    return "\n".join(
        f"[{turn.id}] {format_day(turn.timestamp)}, {turn.speaker}: "
        f"{shorten(one_line(turn.text), _MAX_TURN_CHARS_IN_PROMPT)}"
        for turn in turns
        if turn.text.strip()
    )


def output_text(output: object) -> str:
    """The text of a runnable's answer: a string, or a message's text parts.

    Raises:
        SummarizerError: The answer is neither a string nor a message.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> output_text(AIMessage("Ana lives in Porto."))
        'Ana lives in Porto.'
    """
    if isinstance(output, str):
        return output
    if isinstance(output, BaseMessage):
        return output.text
    msg = f"the LLM runnable returned {type(output).__name__}; expected a string or a message"
    raise SummarizerError(msg)


def invoke_text(llm: Runnable[Any, Any], prompt: str, run_name: str) -> str:
    """Invoke ``llm`` with ``prompt`` and return its answer as text.

    ``run_name`` names the call in traces (LangSmith, callbacks): ``hybrid_memory.summarize``,
    ``hybrid_memory.extract_entities``.

    Raises:
        SummarizerError: The runnable raised, or answered with something that is not text.
    """
    try:
        output = llm.invoke(prompt, config={"run_name": run_name})
    except Exception as exc:
        msg = f"the LLM runnable failed: {type(exc).__name__}: {exc}"
        raise SummarizerError(msg) from exc
    return output_text(output)


async def ainvoke_text(llm: Runnable[Any, Any], prompt: str, run_name: str) -> str:
    """Async twin of :func:`invoke_text`."""
    try:
        output = await llm.ainvoke(prompt, config={"run_name": run_name})
    except Exception as exc:
        msg = f"the LLM runnable failed: {type(exc).__name__}: {exc}"
        raise SummarizerError(msg) from exc
    return output_text(output)


def parse_json_object(text: str) -> dict[str, Any] | None:
    r"""Find and parse the first JSON object in ``text`` (models often wrap it in prose or fences).

    Returns:
        The object, or ``None`` when the text holds no JSON object.

    Example:
        >>> parse_json_object('Sure! ```json\n{"summary": "Ana lives in Porto."}\n```')
        {'summary': 'Ana lives in Porto.'}
    """
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None
