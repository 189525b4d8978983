"""Encryption at rest: stored values sealed with Fernet, under one key or a rotating list of keys.

A *sealed* value is ``fernet:`` followed by a Fernet token (AES-128-CBC and HMAC-SHA256, in URL-safe
base64). The prefix tells a reader a sealed value from a plain one: plain turns, summaries and
entities are JSON objects, which start with ``{``. The first key seals, every key opens
(:class:`~cryptography.fernet.MultiFernet`), so keys rotate without downtime: put the new key first,
keep the old ones while a store's ``reencrypt()`` moves what they sealed to the new key, then
drop them.

Names that a store uses as lookup keys (an entity's normalized name) are not sealed but replaced by
a keyed digest (HMAC-SHA256 under a key derived from the Fernet key), so equal names still find
each other without showing the name.

Example:
    >>> from cryptography.fernet import Fernet
    >>> old, new = Fernet.generate_key(), Fernet.generate_key()
    >>> sealed = Sealer(old).seal(b'{"text": "hi"}')
    >>> is_sealed(sealed), Sealer([new, old]).open(sealed, "turn")
    (True, b'{"text": "hi"}')
    >>> rotated = Sealer([new, old]).reencrypt(sealed, "turn")
    >>> Sealer(new).open(rotated, "turn")
    b'{"text": "hi"}'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from typing import TypeAlias

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from langchain_hybrid_memory.errors import ConfigError, DecryptionError

__all__ = ["KEY_VARIABLE", "SEALED_PREFIX", "EncryptionKey", "Sealer", "is_sealed", "no_key_error"]

#: What every sealed value starts with.
SEALED_PREFIX = "fernet:"
#: Where the command line and the inspector read a store's Fernet key(s), comma-separated,
#: newest first (never from their arguments, which other users of the machine can read).
KEY_VARIABLE = "HYBRID_MEMORY_ENCRYPTION_KEY"

#: One Fernet key (as made by ``Fernet.generate_key()``, ``str`` or ``bytes``), or a list of them:
#: the first seals, all open.
EncryptionKey: TypeAlias = str | bytes | Sequence[str | bytes]

_PREFIX = SEALED_PREFIX.encode("ascii")
_DIGEST_INFO = b"langchain-hybrid-memory lookup-name digest v1"
_DIGEST_HEX_CHARS = 32  # 128 bits


def is_sealed(value: str | bytes) -> bool:
    """Whether a stored value is sealed (starts with :data:`SEALED_PREFIX`).

    Example:
        >>> is_sealed('{"text": "hi"}'), is_sealed(b"fernet:gAAAAA")
        (False, True)
    """
    if isinstance(value, str):
        return value.startswith(SEALED_PREFIX)
    return bytes(value[: len(_PREFIX)]) == _PREFIX


def no_key_error(what: str) -> DecryptionError:
    """The error for a sealed ``what`` read by a store that has no key."""
    msg = (
        f"a stored {what} is encrypted but this store has no encryption_key: open the store with "
        "the key it was written with (encryption_key=...)"
    )
    return DecryptionError(msg)


class Sealer:
    """Seals and opens stored values with Fernet: the first key seals, every key opens.

    Args:
        keys: One Fernet key (``str`` or ``bytes``, as ``Fernet.generate_key()`` makes), or a
            non-empty list of them, newest first.

    Raises:
        ConfigError: A key is not a valid Fernet key, or the list is empty (the message never
            shows a key).

    Example:
        >>> from cryptography.fernet import Fernet
        >>> sealer = Sealer(Fernet.generate_key())
        >>> sealed = sealer.seal(b"My passport is X123")
        >>> sealed.startswith(b"fernet:"), b"X123" in sealed, sealer.open(sealed, "turn")
        (True, False, b'My passport is X123')
    """

    def __init__(self, keys: EncryptionKey) -> None:
        raw_keys = _raw_keys(keys)
        self._fernets = [Fernet(base64.urlsafe_b64encode(raw)) for raw in raw_keys]
        self._newest = self._fernets[0]
        self._all = MultiFernet(self._fernets)
        self._digest_keys = [_derive_digest_key(raw) for raw in raw_keys]

    def seal(self, data: bytes) -> bytes:
        """``data`` sealed under the first key, with the :data:`SEALED_PREFIX`."""
        return _PREFIX + self._all.encrypt(data)

    def open(self, value: bytes, what: str) -> bytes:
        """The plain bytes of a sealed ``value`` (a ``what``, named in the error).

        Raises:
            DecryptionError: No key opens it (a wrong key, or a damaged value).
        """
        try:
            return self._all.decrypt(_token(value))
        except InvalidToken as exc:
            raise _wrong_key_error(what) from exc

    def reencrypt(self, value: bytes, what: str) -> bytes | None:
        """``value`` sealed again under the first key, or ``None`` if it is sealed under it already.

        Raises:
            DecryptionError: No key opens it.
        """
        token = _token(value)
        try:
            self._newest.decrypt(token)
        except InvalidToken:
            pass
        else:
            return None
        try:
            return _PREFIX + self._all.rotate(token)
        except InvalidToken as exc:
            raise _wrong_key_error(what) from exc

    def digests(self, name: str) -> list[str]:
        """Keyed digests of a lookup name, one per key: the first is the one to write."""
        data = name.encode("utf-8")
        return [
            "hmac:" + hmac.new(key, data, hashlib.sha256).hexdigest()[:_DIGEST_HEX_CHARS]
            for key in self._digest_keys
        ]

    def __repr__(self) -> str:
        return f"Sealer(<{len(self._fernets)} key(s)>)"


def _raw_keys(keys: EncryptionKey) -> list[bytes]:
    """The 32 raw bytes of each Fernet key; :class:`ConfigError` for anything else."""
    if isinstance(keys, (str, bytes)):
        listed: list[object] = [keys]
    elif isinstance(keys, Sequence):
        listed = list(keys)
    else:
        msg = (
            "encryption_key must be a Fernet key (str or bytes) or a list of them, "
            f"got {type(keys).__name__}"
        )
        raise ConfigError(msg)
    if not listed:
        msg = "encryption_key is an empty list: give at least one Fernet key"
        raise ConfigError(msg)
    raw_keys: list[bytes] = []
    for position, key in enumerate(listed):
        if not isinstance(key, (str, bytes)):
            msg = f"encryption key #{position} must be str or bytes, got {type(key).__name__}"
            raise ConfigError(msg)
        invalid = (
            f"encryption key #{position} is not a Fernet key (32 bytes in URL-safe base64, as "
            "Fernet.generate_key() makes)"
        )
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii") if isinstance(key, str) else key)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(invalid) from exc
        if len(raw) != 32:
            raise ConfigError(invalid)
        raw_keys.append(raw)
    return raw_keys


def _derive_digest_key(raw: bytes) -> bytes:
    """A key for name digests, derived from (and independent of) a Fernet key's bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DIGEST_INFO).derive(raw)


def _token(value: bytes) -> bytes:
    return bytes(value[len(_PREFIX) :])


def _wrong_key_error(what: str) -> DecryptionError:
    msg = (
        f"a stored {what} cannot be decrypted with the configured encryption key(s) (a wrong key, "
        "or a damaged value): pass the key it was written with, or, after a rotation, keep the old "
        "key in the list (encryption_key=[new_key, old_key]) until reencrypt() has run"
    )
    return DecryptionError(msg)
