"""Errors raised by langchain-hybrid-memory.

Every failure the library raises is a :class:`HybridMemoryError`, with the underlying cause
chained (``raise ... from exc``). Errors about bad input also subclass the matching builtin, so
callers can catch either ``ValueError``/``TypeError`` or the library's own class.

Tree::

    HybridMemoryError
    ├── ConfigError                 (also ValueError)   invalid settings
    ├── InvalidInputError           (also ValueError)   bad session id, user id, message, query
    │   └── InvalidMessageTypeError (also TypeError)    not a LangChain message, wrong content type
    ├── SessionOwnershipError       (also ValueError)   a session used with a second user id
    ├── StoreError                                      a store failed to read or write
    │   └── DecryptionError                             no configured key opens a sealed value
    ├── EmbeddingError                                  the embedding model failed
    ├── SummarizerError                                 the summarizer LLM failed or answered nonsense
    ├── ChatModelError                                  an evaluation's answer or judge model failed
    └── MissingDependencyError      (also ImportError)  an optional extra is not installed
"""

from __future__ import annotations

__all__ = [
    "ChatModelError",
    "ConfigError",
    "DecryptionError",
    "EmbeddingError",
    "HybridMemoryError",
    "InvalidInputError",
    "InvalidMessageTypeError",
    "MissingDependencyError",
    "SessionOwnershipError",
    "StoreError",
    "SummarizerError",
]


class HybridMemoryError(Exception):
    """Root of every error this library raises."""


class ConfigError(HybridMemoryError, ValueError):
    """A setting is out of range or of the wrong kind."""


class InvalidInputError(HybridMemoryError, ValueError):
    """An argument cannot be accepted (empty id, oversized message, ...); nothing was written."""


class InvalidMessageTypeError(InvalidInputError, TypeError):
    """A value is not a LangChain message, or its content has an unsupported type."""


class SessionOwnershipError(HybridMemoryError, ValueError):
    """A session that belongs to one user was used with another user id."""


class StoreError(HybridMemoryError):
    """A store could not be opened, read or written; the message names the store."""


class DecryptionError(StoreError):
    """A stored value is encrypted and no configured key opens it; nothing was overwritten.

    Pass the key it was written with, or, after a key rotation, keep the old key in the list
    (``encryption_key=[new_key, old_key]``) until the store's ``reencrypt()`` has run.
    """


class EmbeddingError(HybridMemoryError):
    """The embedding model failed; turns stay stored and are indexed later."""


class SummarizerError(HybridMemoryError):
    """The summarizer or entity extractor failed; the batch stays pending and is retried."""


class ChatModelError(HybridMemoryError):
    """A chat model an answer evaluation calls could not be created or failed on a call.

    The message names the model and the kind of failure, never the provider's own message
    (which may quote a credential).
    """


class MissingDependencyError(HybridMemoryError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    @classmethod
    def for_extra(cls, package: str, extra: str) -> MissingDependencyError:
        """Build the error for a missing ``package`` provided by the install ``extra``.

        Example:
            >>> str(MissingDependencyError.for_extra("redis", "redis"))
            "redis is not installed: pip install 'langchain-hybrid-memory[redis]'"
        """
        msg = f"{package} is not installed: pip install 'langchain-hybrid-memory[{extra}]'"
        return cls(msg)
