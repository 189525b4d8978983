"""A password in a malformed store URL never shows up in an error.

Not in the ``StoreError``'s message or repr, not in any exception of its ``__cause__`` /
``__context__`` chain (a caller's logger prints the whole chain), not in its formatted
traceback, and not on the CLI's stderr. The URLs point at port 1, where nothing listens, so a URL
that parses fails at once with "connection refused" (no server is needed).

The password is two distinctive words joined by the character that breaks the URL, so a leak of
either half (a parser quoting the part it choked on) is caught too.
"""

from __future__ import annotations

import traceback

import pytest

from langchain_hybrid_memory import HybridMemory
from langchain_hybrid_memory.cli import main
from langchain_hybrid_memory.errors import StoreError
from langchain_hybrid_memory.stores import PostgresStore, RedisStore

LEFT, RIGHT = "Kumquat7Sesame", "Walrus9Orchid"
SECRETS = (LEFT, RIGHT)

#: Passwords a user pastes without percent-encoding them.
BREAKING_PASSWORDS = {
    "percent": f"{LEFT}%{RIGHT}",
    "percent-bad-hex": f"{LEFT}%zz{RIGHT}",
    "percent-short": f"{LEFT}%2{RIGHT}",
    "percent-at-end": f"{LEFT}{RIGHT}%",
    "space": f"{LEFT} {RIGHT}",
    "slash": f"{LEFT}/{RIGHT}",
    "question-mark": f"{LEFT}?{RIGHT}",
    "hash": f"{LEFT}#{RIGHT}",
    "colon": f"{LEFT}:{RIGHT}",
    "bracket": f"{LEFT}[{RIGHT}",
}
PLAIN_PASSWORD = f"{LEFT}{RIGHT}"

POSTGRES_URLS = [
    *[
        f"postgresql://bot:{password}@127.0.0.1:1/hm_no_such_db"
        for password in BREAKING_PASSWORDS.values()
    ],
    *[
        f"postgresql://bot:{password}@[::1:1/hm_no_such_db"  # and a broken IPv6 host
        for password in BREAKING_PASSWORDS.values()
    ],
    f"postgresql://bot:{PLAIN_PASSWORD}@[::1/hm_no_such_db",
    f"postgresql://bot:{PLAIN_PASSWORD}@[::1:1/hm_no_such_db",
    f"postgresql://bot:{PLAIN_PASSWORD}@[::1]x:1/hm_no_such_db",
    f"postgresql://bot:{PLAIN_PASSWORD}@[::1]:1x/hm_no_such_db",
    f"postgres://bot:{LEFT}%{RIGHT}@127.0.0.1:1/hm_no_such_db",
    f"postgres://bot:{LEFT} {RIGHT}@[::1:1/hm_no_such_db",
]
REDIS_URLS = [
    *[
        f"{scheme}://default:{password}@{host}{path}"
        for scheme, path in (("redis", "/0"), ("rediss", "/0"), ("redis+cluster", ""))
        for host in ("127.0.0.1:1", "[::1:1")
        for password in BREAKING_PASSWORDS.values()
    ],
    f"redis://default:{PLAIN_PASSWORD}@[::1/0",
    f"redis://default:{PLAIN_PASSWORD}@127.0.0.1:1x/0",
    f"redis+cluster://default:{PLAIN_PASSWORD}@[::1:1",
]


def leaked(error: BaseException) -> list[str]:
    """Where a secret shows: each exception of the chain (str, repr, args), the traceback."""
    places = []
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        texts = [str(current), repr(current), *(str(arg) for arg in current.args)]
        if any(secret in text for text in texts for secret in SECRETS):
            places.append(f"{type(current).__name__}: {str(current)[:160]!r}")
        current = current.__cause__ or current.__context__
    formatted = "".join(traceback.format_exception(error))
    if any(secret in formatted for secret in SECRETS) and not places:
        places.append("the formatted traceback")
    return places


def first(leaks: dict[str, object]) -> object:
    return next(iter(leaks.items()))


def opening_leaks(open_url: object, urls: list[str]) -> dict[str, list[str]]:
    """Open each URL (which must fail with a StoreError); the URLs whose error shows a secret."""
    found = {}
    for url in urls:
        with pytest.raises(StoreError) as caught:
            open_url(url)  # type: ignore[operator]
        places = leaked(caught.value)
        if places:
            found[url] = places
    return found


def test_a_malformed_postgres_url_never_shows_its_password(embeddings):
    leaks = opening_leaks(lambda url: HybridMemory(store=url, embeddings=embeddings), POSTGRES_URLS)
    leaks |= opening_leaks(lambda url: PostgresStore(url, schema="hm_secret_test"), POSTGRES_URLS)

    assert not leaks, f"{len(leaks)} URL(s) leak the password: {sorted(leaks)}; e.g. {first(leaks)}"


def test_a_malformed_redis_url_never_shows_its_password(embeddings):
    leaks = opening_leaks(lambda url: HybridMemory(store=url, embeddings=embeddings), REDIS_URLS)
    leaks |= opening_leaks(lambda url: RedisStore(url, prefix="hm_secret_test"), REDIS_URLS)

    assert not leaks, f"{len(leaks)} URL(s) leak the password: {sorted(leaks)}; e.g. {first(leaks)}"


@pytest.mark.parametrize("urls", [POSTGRES_URLS, REDIS_URLS], ids=["postgres", "redis"])
def test_the_cli_never_prints_the_password_of_a_malformed_store_url(capsys, urls):
    leaks = {}
    for url in urls:
        code = main(["sessions", "--store", url, "--user", "x"])
        out, err = capsys.readouterr()
        assert code == 1, f"exit code {code} for a store that cannot be opened"
        assert err.startswith("error: ")
        if any(secret in out + err for secret in SECRETS):
            leaks[url] = err.strip()[:200]

    assert not leaks, f"{len(leaks)} URL(s) leak it on stderr: {sorted(leaks)}; e.g. {first(leaks)}"
