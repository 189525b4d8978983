"""Where the inspector listens: loopback unless told, one server thread, a clean stop."""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import TYPE_CHECKING

from werkzeug.serving import WSGIRequestHandler, make_server, select_address_family

from langchain_hybrid_memory.errors import ConfigError

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["InspectorServer", "check_host"]


def check_host(host: str, *, allow_remote: bool = False) -> None:
    """Refuse to listen beyond this machine unless ``allow_remote``.

    A host is local when it is a loopback address, or a name every address of which is one
    (``localhost``). The inspector has no login: anyone who reaches it reads the whole store.

    Raises:
        ConfigError: ``host`` is not loopback and ``allow_remote`` is false, or it does not
            resolve.

    Example:
        >>> check_host("127.0.0.1")
        >>> check_host("0.0.0.0")
        Traceback (most recent call last):
        ...
        langchain_hybrid_memory.errors.ConfigError: refusing to listen on 0.0.0.0, beyond this machine: the inspector has no login, so anyone who reaches it reads the whole store; pass --allow-remote (allow_remote=True) to do it anyway
    """
    if allow_remote:
        return
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as exc:
            msg = f"cannot resolve the host {host!r} to listen on"
            raise ConfigError(msg) from exc
        addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found}
    if not addresses or not all(address.is_loopback for address in addresses):
        msg = (
            f"refusing to listen on {host}, beyond this machine: the inspector has no login, "
            "so anyone who reaches it reads the whole store; pass --allow-remote "
            "(allow_remote=True) to do it anyway"
        )
        raise ConfigError(msg)


class _RequestLog(WSGIRequestHandler):
    """Logs each request's method, page and status, never its address's query.

    The query holds ids and the text typed to build a context: conversation content, which
    this project never logs above DEBUG.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        page = getattr(self, "path", "").partition("?")[0]
        self.log("info", '"%s %s" %s', self.command, page, code)


class InspectorServer:
    """The inspector app on a host and port, served by threads (one per request).

    Port 0 takes a free port; :attr:`url` tells which. Use it as a context manager to serve in
    a background thread (tests, scripts), or call :meth:`serve_forever`.

    Example:
        >>> from flask import Flask
        >>> with InspectorServer(Flask("demo"), port=0) as server:
        ...     server.url.startswith("http://127.0.0.1:")
        True
    """

    def __init__(
        self, app: Flask, host: str = "127.0.0.1", port: int = 0, *, allow_remote: bool = False
    ) -> None:
        check_host(host, allow_remote=allow_remote)
        try:  # bound here: Werkzeug prints and calls sys.exit when it cannot bind
            listener = socket.create_server((host, port), family=select_address_family(host, port))
        except OSError as exc:
            msg = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            raise ConfigError(msg) from exc
        with listener:  # the server works on its own copy of the socket
            self._server = make_server(
                host, port, app, threaded=True, request_handler=_RequestLog, fd=listener.fileno()
            )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/"

    def serve_forever(self) -> None:
        """Serve until interrupted (Ctrl-C) or :meth:`shutdown`."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def shutdown(self) -> None:
        """Stop serving and wait for the background thread, if any."""
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> InspectorServer:
        self._thread = threading.Thread(
            target=self.serve_forever, name="hybrid-memory-inspector", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
