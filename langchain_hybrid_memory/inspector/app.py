"""The inspector's pages: a Flask app over one :class:`~langchain_hybrid_memory.HybridMemory`.

Every page is rendered on the server by Jinja2 with autoescaping, so a stored text can never
become markup or script. The only state-changing route is ``POST /erase``: it answers 403
unless the app was created with ``allow_erasure=True``, and 403 without the form's token (a
random value made when the app starts, so another site cannot post for the user's browser).
Unless created with ``allow_remote=True``, it answers only requests addressed to a loopback
name (``localhost``, ``127.0.0.1``, ``[::1]``): a site whose own name a DNS server points at
127.0.0.1 (DNS rebinding) would otherwise read the store through the user's browser.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from langchain_hybrid_memory.errors import (
    DecryptionError,
    HybridMemoryError,
    InvalidInputError,
    StoreError,
)
from langchain_hybrid_memory.stores.encryption import KEY_VARIABLE

if TYPE_CHECKING:
    from langchain_hybrid_memory.hybrid import HybridMemory
    from langchain_hybrid_memory.types import ErasureReport, SessionHead, SessionInfo

__all__ = ["SESSIONS_PER_PAGE", "TURNS_PER_PAGE", "create_app"]

logger = logging.getLogger(__name__)

#: Sessions listed on one page of the front page.
SESSIONS_PER_PAGE = 50
#: Turns shown on one page of a transcript.
TURNS_PER_PAGE = 50
_SECURITY_HEADERS = {
    # no script at all; styles and forms from this server only; never framed by another site
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(
    memory: HybridMemory, *, allow_erasure: bool = False, allow_remote: bool = False
) -> Flask:
    """The inspector as a Flask app (a WSGI application) over ``memory``.

    Args:
        memory: The memory whose store to show; contexts are built with its settings.
        allow_erasure: Offer erasure of sessions and users (behind a confirmation page).
            Without it every page only reads, and ``POST /erase`` answers 403.
        allow_remote: Answer requests addressed to any host name. Without it a request
            whose ``Host`` is not a loopback name answers 400.

    Returns:
        The app; serve it with :class:`~langchain_hybrid_memory.inspector.InspectorServer`
        or any WSGI server.

    Example:
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_hybrid_memory import HybridMemory
        >>> memory = HybridMemory(embeddings=DeterministicFakeEmbedding(size=8))
        >>> _ = memory.add_messages("s1", [HumanMessage("I live in <Porto>")], user_id="ana")
        >>> page = create_app(memory).test_client().get("/transcript?id=s1").text
        >>> "I live in &lt;Porto&gt;" in page
        True
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    pages = _Pages(memory, allow_erasure=allow_erasure)
    for rule, view, methods in (
        ("/", pages.index, ["GET"]),
        ("/find", pages.find, ["GET"]),
        ("/user", pages.user, ["GET"]),
        ("/session", pages.session, ["GET"]),
        ("/transcript", pages.transcript, ["GET"]),
        ("/export.json", pages.export, ["GET"]),
        ("/facts.json", pages.facts, ["GET"]),
        ("/erase", pages.confirm_erase, ["GET"]),
        ("/erase", pages.erase, ["POST"]),
    ):
        app.add_url_rule(rule, view.__name__, view, methods=methods)
    if not allow_remote:
        app.before_request(_loopback_only)
    app.context_processor(pages.everywhere)
    app.after_request(_with_security_headers)
    app.register_error_handler(HybridMemoryError, _memory_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


class _Pages:
    """The inspector's views over one memory."""

    def __init__(self, memory: HybridMemory, *, allow_erasure: bool) -> None:
        self.memory = memory
        self.store = memory.store
        self.allow_erasure = allow_erasure
        self.token = secrets.token_urlsafe(32)  # the erase form's: new at every start

    def everywhere(self) -> dict[str, Any]:
        """Values every template sees."""
        return {
            "store_kind": self.store.name,
            "allow_erasure": self.allow_erasure,
            "turns_per_page": TURNS_PER_PAGE,
        }

    def index(self) -> str:
        """Users and their sessions, a page of sessions at a time (by id)."""
        after = request.args.get("after") or None
        page = self.store.list_all_sessions(after=after, limit=SESSIONS_PER_PAGE)
        users: dict[str | None, list[SessionInfo]] = {}
        for info in page:
            users.setdefault(info.user_id, []).append(info)
        more = page[-1].session_id if len(page) == SESSIONS_PER_PAGE else None
        return render_template("index.html", users=users, after=after, more=more)

    def find(self) -> Response:
        """Go to the session or user typed in the header."""
        wanted = _required("q")
        if request.args.get("kind") == "user":
            return _redirect(url_for("user", id=wanted))
        return _redirect(url_for("session", id=wanted))

    def user(self) -> str:
        """A user's sessions, a page at a time (by id), and their facts."""
        user_id = _required("id")
        after = request.args.get("after") or None
        sessions = self._sessions_of(user_id, after=after)
        facts = self.memory.export_facts(user_id=user_id)
        return render_template(
            "user.html", user_id=user_id, sessions=sessions, after=after, facts=facts
        )

    def session(self) -> str:
        """A session: the context for a query, its summary and the facts it sees."""
        session_id = _required("id")
        head = self._head(session_id)
        query = request.args.get("q")
        context = None
        if query is not None:
            built = self.memory.build_context(
                session_id, query.strip() or None, user_id=head.user_id
            )
            context = built.to_record()
        return render_template(
            "session.html",
            session_id=session_id,
            head=head,
            summary=head.summary,
            facts=self.memory.export_facts(session_id, user_id=head.user_id),
            query=query,
            context=context,
        )

    def transcript(self) -> str:
        """One page of a session's turns (only those are read)."""
        session_id = _required("id")
        head = self._head(session_id)
        pages = max(1, -(-head.turn_count // TURNS_PER_PAGE))
        number = _page_number(pages)
        start = number * TURNS_PER_PAGE
        return render_template(
            "transcript.html",
            session_id=session_id,
            head=head,
            turns=self.store.get_turns(session_id, start, start + TURNS_PER_PAGE),
            page=number,
            pages=pages,
            summarized_through=head.summary.through_turn,
        )

    def export(self) -> Response:
        """A session's turns as a JSON download."""
        session_id = _required("session")
        records = self.memory.export_session(session_id)
        if not records:
            abort(404, f"no session {session_id!r} in this store")
        return _download(records, f"session-{session_id}.json")

    def facts(self) -> Response:
        """A user's (or a session's) facts with their history, as a JSON download."""
        user_id = request.args.get("user") or None
        session_id = None
        if user_id is not None:
            self._user_sessions(user_id)
        else:
            session_id = _required("session")
            self._head(session_id)
        records = self.memory.export_facts(session_id, user_id=user_id)
        return _download(records, f"facts-{user_id or session_id}.json")

    def confirm_erase(self) -> str:
        """What an erasure would remove, and the form that does it."""
        self._require_erasure()
        kind, target = _erasure_target(request.args)
        assert target is not None
        if kind == "user":
            sessions = self._sessions_of(target)
        else:
            self._head(target)
            sessions = _SessionPage([(target, self.store.count_turns(target))], 1, None)
        return render_template(
            "erase.html", kind=kind, target=target, sessions=sessions, token=self.token
        )

    def erase(self) -> str:
        """Erase a session or a user (with the confirmation form's token) and report it."""
        self._require_erasure()
        sent = request.form.get("token", "")
        if not hmac.compare_digest(sent.encode(), self.token.encode()):
            abort(403, "the confirmation form is missing or stale: open the erase page again")
        kind, target = _erasure_target(request.form)
        assert target is not None
        report: ErasureReport = (
            self.memory.forget_user(target)
            if kind == "user"
            else self.memory.forget_session(target)
        )
        if not report.sessions:  # erased meanwhile by another page or worker, or never stored
            abort(404, "nothing to erase: no such session or user in this store (any more)")
        logger.info("inspector: erased %d session(s)", len(report.sessions))
        return render_template("erased.html", kind=kind, target=target, report=report)

    def _head(self, session_id: str) -> SessionHead:
        head = self.store.head(session_id)
        if not head.exists:
            abort(404, f"no session {session_id!r} in this store")
        return head

    def _sessions_of(self, user_id: str, *, after: str | None = None) -> _SessionPage:
        """A page of the user's sessions with their turn counts (only the page's are counted)."""
        every = self._user_sessions(user_id)
        following = [s for s in every if after is None or s > after]
        shown = following[:SESSIONS_PER_PAGE]
        more = shown[-1] if len(following) > len(shown) else None
        return _SessionPage([(s, self.store.count_turns(s)) for s in shown], len(every), more)

    def _user_sessions(self, user_id: str) -> list[str]:
        """The ids of the user's sessions, sorted; 404 when there is none."""
        sessions = self.store.list_sessions(user_id)
        if not sessions:
            abort(404, f"no session of user {user_id!r} in this store")
        return sessions

    def _require_erasure(self) -> None:
        if not self.allow_erasure:
            abort(403, "read-only: this inspector was started without --allow-erasure")


def _loopback_only() -> None:
    """Refuse a request addressed to a name other than loopback's (DNS rebinding)."""
    name = urlsplit(f"//{request.host}").hostname or ""
    try:
        loopback = name == "localhost" or ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        abort(400, "this inspector answers only on localhost, 127.0.0.1 or [::1]")


@dataclass(frozen=True)
class _SessionPage:
    """One page of a user's sessions.

    Attributes:
        rows: ``(session id, turns)`` of the sessions on the page.
        total: How many sessions the user has.
        more: The id to list after for the next page; ``None`` on the last.
    """

    rows: list[tuple[str, int]]
    total: int
    more: str | None


def _with_security_headers(response: Response) -> Response:
    response.headers.update(_SECURITY_HEADERS)
    return response


def _memory_error(exc: HybridMemoryError) -> tuple[str, int]:
    status = 503 if isinstance(exc, StoreError) else 400
    message = " ".join(str(exc).split())  # the library's messages never hold a secret
    if isinstance(exc, DecryptionError):
        message += (
            f". `hybrid-memory serve` reads the key(s) from ${KEY_VARIABLE} "
            "(comma-separated, newest first)"
        )
    return render_template("error.html", status=status, message=message), status


def _unexpected_error(exc: Exception) -> tuple[str, int]:
    if isinstance(exc, HTTPException):  # refused by a view (404, 403, ...) or by routing
        status = exc.code or 500
        return render_template("error.html", status=status, message=exc.description), status
    logger.exception("inspector: unexpected error")
    message = "unexpected error: see the server's log"
    return render_template("error.html", status=500, message=message), 500


def _required(name: str) -> str:
    value = request.args.get(name, "")
    if not value:
        msg = f"missing {name!r} in the address"
        raise InvalidInputError(msg)
    return value


def _page_number(pages: int) -> int:
    text = request.args.get("page", "0")
    if not (text.isascii() and text.isdigit()):  # isdigit alone takes "²" and "٣"
        msg = f"page must be a whole number, got {text[:20]!r}"
        raise InvalidInputError(msg)
    digits = text.lstrip("0") or "0"
    return pages - 1 if len(digits) > len(str(pages)) else min(int(digits), pages - 1)


def _erasure_target(values: Any) -> tuple[str, str | None]:
    """``("user", id)`` or ``("session", id)``, from a form or the address, and the id."""
    session_id, user_id = values.get("session") or None, values.get("user") or None
    if (session_id is None) == (user_id is None):
        msg = "name exactly one of a session or a user to erase"
        raise InvalidInputError(msg)
    return ("user", user_id) if user_id is not None else ("session", session_id)


def _download(records: list[dict[str, Any]], name: str) -> Response:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    body = json.dumps(records, ensure_ascii=False, indent=2)
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


def _redirect(location: str) -> Response:
    return Response(status=303, headers={"Location": location})
