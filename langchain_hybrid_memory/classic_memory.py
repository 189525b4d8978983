"""Classic LangChain memory (``langchain_classic``) over the hybrid memory, for legacy chains.

Needs the ``classic`` extra. ``BaseMemory`` is deprecated in LangChain 1.x (removal planned for
2.0); this adapter stays thin and serves chains such as ``ConversationChain`` and ``LLMChain``
that are built on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, get_buffer_string

from langchain_hybrid_memory.context import entity_line, render_messages
from langchain_hybrid_memory.errors import InvalidInputError, MissingDependencyError

try:
    from langchain_classic.base_memory import BaseMemory
    from langchain_classic.memory.utils import get_prompt_input_key
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError.for_extra("langchain-classic", "classic") from exc

if TYPE_CHECKING:
    from langchain_hybrid_memory.context import MemoryContext

__all__ = ["ConversationHybridMemory"]


class ConversationHybridMemory(BaseMemory):
    r"""``BaseMemory`` for legacy chains, backed by one session of a :class:`HybridMemory`.

    ``load_memory_variables`` builds the context for the chain's current input (the recall
    query) and returns it under ``memory_key``: as messages with ``return_messages=True``, else
    as one ``Human: ... / AI: ...`` string. ``save_context`` stores the input and the output.

    Attributes:
        memory: The engine.
        session_id: The conversation.
        user_id: The user the conversation belongs to.
        memory_key: Variable holding the context (``"history"``).
        input_key: Input variable holding the user's message (default: the only input that is
            not a memory variable).
        output_key: Output variable holding the reply (default: the only output, or
            ``"output"``).
        return_messages: Return messages instead of a string.
        summary_key: When set, also return the summary alone under this variable.
        entities_key: When set, also return the entity lines alone under this variable.
        human_prefix: Label of user lines in the string form.
        ai_prefix: Label of assistant lines in the string form.

    Example:
        >>> from langchain_hybrid_memory import HybridMemory
        >>> legacy = ConversationHybridMemory(memory=HybridMemory(), session_id="s1")
        >>> legacy.save_context({"input": "I live in Porto"}, {"output": "Nice!"})
        >>> legacy.load_memory_variables({"input": "Where do I live?"})["history"]
        'Human: I live in Porto\nAI: Nice!'
    """

    memory: Any
    session_id: str
    user_id: str | None = None
    memory_key: str = "history"
    input_key: str | None = None
    output_key: str | None = None
    return_messages: bool = False
    summary_key: str | None = None
    entities_key: str | None = None
    human_prefix: str = "Human"
    ai_prefix: str = "AI"

    @property
    def memory_variables(self) -> list[str]:
        """The variables this memory adds to the chain's inputs."""
        extra = [key for key in (self.summary_key, self.entities_key) if key]
        return [self.memory_key, *extra]

    def _query(self, inputs: dict[str, Any]) -> str | None:
        key = self.input_key or get_prompt_input_key(inputs, self.memory_variables)
        value = inputs.get(key)
        if isinstance(value, BaseMessage):
            return value.text
        return value if isinstance(value, str) else None

    def _variables(self, context: MemoryContext) -> dict[str, Any]:
        # a section given its own variable is left out of the history: never in the prompt twice
        messages = render_messages(
            "" if self.summary_key else context.summary,
            () if self.entities_key else context.entities,
            context.recalled,
            context.window,
        )
        history: Any = (
            messages
            if self.return_messages
            else get_buffer_string(
                messages, human_prefix=self.human_prefix, ai_prefix=self.ai_prefix
            )
        )
        variables = {self.memory_key: history}
        if self.summary_key:
            variables[self.summary_key] = context.summary
        if self.entities_key:
            variables[self.entities_key] = "\n".join(entity_line(e) for e in context.entities)
        return variables

    def load_memory_variables(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The context built for the chain's current input."""
        context = self.memory.build_context(
            self.session_id, self._query(inputs), user_id=self.user_id
        )
        return self._variables(context)

    async def aload_memory_variables(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Async twin of :meth:`load_memory_variables`."""
        context = await self.memory.abuild_context(
            self.session_id, self._query(inputs), user_id=self.user_id
        )
        return self._variables(context)

    def _exchange(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> list[BaseMessage]:
        input_key = self.input_key or get_prompt_input_key(inputs, self.memory_variables)
        if self.output_key:
            output_key = self.output_key
        elif len(outputs) == 1:
            output_key = next(iter(outputs))
        elif "output" in outputs:
            output_key = "output"
        else:
            msg = f"several outputs {sorted(outputs)}: set output_key to the reply's key"
            raise InvalidInputError(msg)
        return [
            _as_message(inputs[input_key], HumanMessage),
            _as_message(outputs[output_key], AIMessage),
        ]

    def save_context(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Store the chain's input and output as a user and an assistant turn."""
        self.memory.add_messages(
            self.session_id, self._exchange(inputs, outputs), user_id=self.user_id
        )

    async def asave_context(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Async twin of :meth:`save_context`."""
        await self.memory.aadd_messages(
            self.session_id, self._exchange(inputs, outputs), user_id=self.user_id
        )

    def clear(self) -> None:
        """Erase the session from the memory."""
        self.memory.forget_session(self.session_id, user_id=self.user_id)

    async def aclear(self) -> None:
        """Async twin of :meth:`clear`."""
        await self.memory.aforget_session(self.session_id, user_id=self.user_id)


def _as_message(value: Any, kind: type[HumanMessage] | type[AIMessage]) -> BaseMessage:
    if isinstance(value, BaseMessage):
        return value
    if isinstance(value, str):
        return kind(value)
    msg = f"expected a string or a message, got {type(value).__name__}"
    raise InvalidInputError(msg)
