"""Keeping passwords out of error messages about store URLs.

A driver that cannot parse or use a connection URL often quotes a piece of it in its error: a
password with an unencoded ``%`` or space, or half of one that holds an ``@``. Errors about a
connection are therefore rebuilt from the driver's message with every piece of the URL's
credentials hidden, and without the driver's exception chained (its message, shown in a
traceback, would give them away again).

Example:
    >>> url = "postgresql://bob:s3cr%zz@db/test"
    >>> hide_secrets('invalid percent-encoded token: "s3cr%zz"', url)
    'invalid percent-encoded token: "(hidden)"'
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from langchain_hybrid_memory.errors import StoreError

__all__ = ["connection_error", "hide_secrets"]

_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_KEYWORD_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
#: A quoted piece of a message sharing this many characters with a password is hidden.
_FRAGMENT = 3


def _credentials(url: str) -> list[str]:
    """The pieces of ``url`` that may be secret: its user info and its password."""
    found = []
    _, separator, rest = url.partition("://")
    if separator and "@" in rest:
        userinfo = rest[: rest.rfind("@")]
        found += [userinfo, userinfo.partition(":")[2]]
    found += [m.group(1).strip("'") for m in _KEYWORD_PASSWORD.finditer(url)]
    found += [unquote(piece) for piece in found]
    return sorted({piece for piece in found if piece}, key=len, reverse=True)


def _shares_fragment(text: str, secret: str) -> bool:
    size = min(_FRAGMENT, len(secret))
    return any(secret[i : i + size] in text for i in range(len(secret) - size + 1))


def hide_secrets(text: str, url: str) -> str:
    """``text`` with every piece of ``url``'s credentials (and the URL itself) hidden.

    A quoted piece of ``text`` that holds a secret, or a few characters of a password, is
    replaced whole; any other occurrence of a secret becomes ``***``.
    """
    credentials = _credentials(url)
    secrets = sorted({url, unquote(url), *credentials}, key=len, reverse=True)

    def hide_quoted(match: re.Match[str]) -> str:
        piece = match.group(0)[1:-1]
        if any(secret in piece for secret in secrets) or any(
            _shares_fragment(piece, credential) for credential in credentials
        ):
            quote = match.group(0)[0]
            return f"{quote}(hidden){quote}"
        return match.group(0)

    text = _QUOTED.sub(hide_quoted, text)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def connection_error(what: str, exc: BaseException, url: str) -> StoreError:
    """A :class:`StoreError` for a failed connection, with no piece of ``url``'s secrets.

    Raise it outside the ``except`` block that caught ``exc`` (so it is not chained as the
    context either).
    """
    return StoreError(f"{what}: {hide_secrets(f'{type(exc).__name__}: {exc}', url)}")
