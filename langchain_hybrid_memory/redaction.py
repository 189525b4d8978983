"""PII redaction: find personal data in text and replace it before memory keeps or sends it.

Default detectors: e-mail addresses, credit card numbers (Luhn-checked) and IP addresses come
from LangChain's own PII detectors (``langchain.agents.middleware.pii``, the ``agents`` extra);
phone numbers and IBANs (ISO 13616 mod-97 checked), which LangChain does not ship, are detected
here. Custom regular expressions and callables join them.

A :class:`PIIRedactor` is applied at up to three points, each switchable: before a turn is
persisted (the stored message itself is redacted), before text is embedded, and before turns are
sent to the summarizer or the entity extractor LLM.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from langchain_hybrid_memory.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

__all__ = [
    "PIIMatch",
    "PIIRedactor",
    "RedactionPoint",
    "default_detectors",
    "detect_address",
    "detect_iban",
    "detect_phone",
    "name_detector",
]

RedactionPoint = Literal["persist", "embed", "summarize"]


@dataclass(frozen=True)
class PIIMatch:
    """A span of text holding personal data of one kind."""

    kind: str
    start: int
    end: int


Detector = Callable[[str], Iterable[PIIMatch]]

#: Keys whose string values are binary data or identifiers, never redacted.
_OPAQUE_KEYS = frozenset(
    {"type", "id", "url", "data", "base64", "mime_type", "source_type", "tool_call_id", "index"}
)

_PHONE = re.compile(r"(?<![\w+(])(?:\+|00)?\(?\d[\d \-().]{6,18}\d(?!\w)")
_DATE_LIKE = re.compile(r"\d{1,4}[-.]\d{1,2}[-.]\d{1,4}")
_MIN_PHONE_DIGITS = 8
_MAX_PHONE_DIGITS = 15
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_IBAN_MIN_LENGTH = 15
_IBAN_MAX_LENGTH = 34


def detect_phone(text: str) -> list[PIIMatch]:
    """Phone numbers: 8 to 15 digits, optionally with ``+``/``00``, spaces, dashes, dots, brackets.

    Dates such as ``2026-03-09`` or ``09.03.2026`` are not phone numbers.

    Example:
        >>> [text[m.start:m.end] for text in ["Call me on +351 912 345 678."] for m in detect_phone(text)]
        ['+351 912 345 678']
    """
    matches = []
    for found in _PHONE.finditer(text):
        digits = sum(ch.isdigit() for ch in found.group())
        if _DATE_LIKE.fullmatch(found.group()):
            continue
        if _MIN_PHONE_DIGITS <= digits <= _MAX_PHONE_DIGITS:
            matches.append(PIIMatch("phone", found.start(), found.end()))
    return matches


def _iban_is_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not _IBAN_MIN_LENGTH <= len(compact) <= _IBAN_MAX_LENGTH:
        return False
    rearranged = compact[4:] + compact[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


def detect_iban(text: str) -> list[PIIMatch]:
    """IBANs whose ISO 13616 check digits are right (spaces every four characters allowed).

    Example:
        >>> [m.kind for m in detect_iban("Pay to GB82 WEST 1234 5698 7654 32 please")]
        ['iban']
        >>> detect_iban("GB00 WEST 1234 5698 7654 32")
        []
    """
    return [
        PIIMatch("iban", found.start(), found.end())
        for found in _IBAN.finditer(text)
        if _iban_is_valid(found.group())
    ]


def _from_langchain(kind: str, detector: Callable[[str], list[dict[str, object]]]) -> Detector:
    def detect(text: str) -> list[PIIMatch]:
        return [PIIMatch(kind, int(m["start"]), int(m["end"])) for m in detector(text)]  # type: ignore[call-overload]

    return detect


def default_detectors() -> dict[str, Detector]:
    """E-mail, credit card and IP detectors from LangChain, phone and IBAN from here.

    Raises:
        MissingDependencyError: LangChain's agents package (the ``agents`` extra) is missing.
    """
    try:
        from langchain.agents.middleware.pii import detect_credit_card, detect_email, detect_ip
    except ImportError as exc:
        raise MissingDependencyError.for_extra("langchain", "agents") from exc
    return {
        "email": _from_langchain("email", detect_email),  # type: ignore[arg-type]
        "credit_card": _from_langchain("credit_card", detect_credit_card),  # type: ignore[arg-type]
        "ip": _from_langchain("ip", detect_ip),  # type: ignore[arg-type]
        "phone": detect_phone,
        "iban": detect_iban,
    }


def _pattern_detector(kind: str, pattern: str | re.Pattern[str]) -> Detector:
    compiled = re.compile(pattern) if isinstance(pattern, str) else pattern

    def detect(text: str) -> list[PIIMatch]:
        return [PIIMatch(kind, m.start(), m.end()) for m in compiled.finditer(text) if m.group()]

    return detect


#: A self-introduction: the name after it is redacted ("I'm Carla Mendes").
_INTRODUCED = re.compile(
    r"\b(?:I am|I'm|my name is|call me|this is)\s+((?:[A-Z][\w'-]+)(?:\s+[A-Z][\w'-]+){0,2})"
)
#: A street address: a number and a street word around a capitalized name (either order).
_ADDRESS = re.compile(
    r"\b\d{1,5}[A-Za-z]?,?\s+(?:[A-Z][\w'-]*\s+){1,4}"
    r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Square|Sq)\b\.?"
    r"|\b(?:Rua|Avenida|Av\.|Calle|Via|Rue|Praça|Largo|Travessa)\s+(?:d[aeo]s?\s+)?"
    r"(?:[A-Z][\w'-]*\s*){1,4},?\s*\d{1,5}[A-Za-z]?\b"
)


def detect_address(text: str) -> list[PIIMatch]:
    """Street addresses (``12 Baker Street``, ``Rua das Flores, 21``).

    Example:
        >>> [text[m.start:m.end] for text in ["I live at 12 Baker Street now"] for m in detect_address(text)]
        ['12 Baker Street']
    """
    return [PIIMatch("address", m.start(), m.end()) for m in _ADDRESS.finditer(text)]


def name_detector(names: Iterable[str]) -> Detector:
    """Detects the given names (each word of a name too) and any self-introduced name.

    Example:
        >>> detect = name_detector(["Ana Ribeiro"])
        >>> text = "Ana said: I'm Carla Mendes, and Ribeiro is Ana's name"
        >>> [text[m.start:m.end] for m in detect(text)]
        ['Ana', 'Carla Mendes', 'Ribeiro', 'Ana']
    """
    words = sorted(
        {part for name in names for part in [name, *name.split()] if len(part.strip()) > 1},
        key=len,
        reverse=True,
    )
    known = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b") if words else None

    def detect(text: str) -> list[PIIMatch]:
        found = [PIIMatch("name", m.start(1), m.end(1)) for m in _INTRODUCED.finditer(text)]
        if known is not None:
            found += [PIIMatch("name", m.start(), m.end()) for m in known.finditer(text)]
        return sorted(found, key=lambda m: m.start)

    return detect


class PIIRedactor:
    r"""Replaces personal data with ``[REDACTED_<KIND>]`` markers.

    Args:
        detectors: Detectors by kind; default :func:`default_detectors`.
        patterns: Extra regular expressions by kind, e.g. ``{"employee_id": r"E\d{6}"}``.
        redact_on: Where the redactor applies: ``"persist"`` (the stored message and its text),
            ``"embed"`` (text sent to the embedding model), ``"summarize"`` (turns sent to the
            summarizer and entity extractor LLM).

    Example:
        >>> redactor = PIIRedactor(patterns={"employee_id": r"E\d{6}"})
        >>> redactor.redact("Mail ana@example.com, badge E123456")
        'Mail [REDACTED_EMAIL], badge [REDACTED_EMPLOYEE_ID]'
    """

    def __init__(
        self,
        detectors: Mapping[str, Detector] | None = None,
        *,
        patterns: Mapping[str, str | re.Pattern[str]] | None = None,
        redact_on: Iterable[RedactionPoint] = ("persist", "embed", "summarize"),
    ) -> None:
        self.redact_on = frozenset(redact_on)
        unknown = self.redact_on - {"persist", "embed", "summarize"}
        if unknown:
            msg = f"redact_on accepts 'persist', 'embed', 'summarize'; got {sorted(unknown)}"
            raise ConfigError(msg)
        try:
            compiled = {k: _pattern_detector(k, p) for k, p in (patterns or {}).items()}
        except re.error as exc:
            msg = f"invalid redaction pattern: {exc}"
            raise ConfigError(msg) from exc
        base = default_detectors() if detectors is None else dict(detectors)
        self.detectors: dict[str, Detector] = {**base, **compiled}

    def anonymizer(self, names: Iterable[str]) -> PIIRedactor:
        """A copy that also redacts ``names`` (and any self-introduced name) and street addresses.

        What anonymized exports use: the names are the speakers' and the known entities'.

        Example:
            >>> PIIRedactor().anonymizer(["Ana Ribeiro"]).redact("Ribeiro lives at 12 Baker Street")
            '[REDACTED_NAME] lives at [REDACTED_ADDRESS]'
        """
        detectors = {**self.detectors, "name": name_detector(names), "address": detect_address}
        return PIIRedactor(detectors, redact_on=self.redact_on)

    def applies_to(self, point: RedactionPoint) -> bool:
        """Whether the redactor runs at ``point``."""
        return point in self.redact_on

    def find(self, text: str) -> list[PIIMatch]:
        """Every match of every detector, sorted, overlaps merged (the longest span wins)."""
        found = sorted(
            (m for detector in self.detectors.values() for m in detector(text)),
            key=lambda m: (m.start, -(m.end - m.start)),
        )
        merged: list[PIIMatch] = []
        for match in found:
            if merged and match.start < merged[-1].end:
                continue
            merged.append(match)
        return merged

    def redact(self, text: str) -> str:
        """``text`` with every match replaced by ``[REDACTED_<KIND>]``."""
        parts = []
        position = 0
        for match in self.find(text):
            parts.append(text[position : match.start])
            parts.append(f"[REDACTED_{match.kind.upper()}]")
            position = match.end
        parts.append(text[position:])
        return "".join(parts)

    def redact_value(self, value: Any) -> Any:
        """Redact every string inside ``value`` (lists and dicts walked recursively).

        Strings under keys that hold binary data or identifiers (``data``, ``url``, ``id``,
        ``type``, ...) are left alone, so an image's base64 payload is not altered.

        Example:
            >>> PIIRedactor().redact_value({"to": ["ana@example.com"], "type": "email"})
            {'to': ['[REDACTED_EMAIL]'], 'type': 'email'}
        """
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list | tuple):
            return [self.redact_value(item) for item in value]
        if isinstance(value, dict):
            return {
                key: item if key in _OPAQUE_KEYS else self.redact_value(item)
                for key, item in value.items()
            }
        return value

    def redact_message(self, message: BaseMessage) -> BaseMessage:
        """A copy of ``message`` with personal data redacted everywhere it can hold text.

        That is its content (strings and every block), its tool calls' arguments (also
        ``invalid_tool_calls``), and ``additional_kwargs``.
        """
        update: dict[str, Any] = {
            "content": self.redact_value(message.content),
            "additional_kwargs": self.redact_value(message.additional_kwargs),
        }
        for field_name in ("tool_calls", "invalid_tool_calls"):
            calls = getattr(message, field_name, None)
            if calls:
                update[field_name] = self.redact_value(calls)
        return message.model_copy(update=update)
