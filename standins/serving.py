"""Werkzeug's threaded WSGI server on 127.0.0.1, kept alive across requests, run in a thread."""

from __future__ import annotations

import contextlib
import io
import selectors
import signal
import socket
import struct
import threading
from typing import TYPE_CHECKING, Self

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Response

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

# The WSGI environ key of a function an app calls to have the connection dropped unanswered.
DROP_CONNECTION = "standins.drop_connection"
# The WSGI environ key of a function an app calls with a callable to run once the answer has been
# written to the connection (or the connection dropped): what the request caused that the
# client must not see before the answer.
AFTER_ANSWER = "standins.after_answer"


def serve_until_signalled(server: Server, banner: str) -> int:
    """How a started server run as its own process lives: it prints `banner`, serves until
    SIGTERM or SIGINT, then stops; the process's exit status is the result."""
    print(banner, flush=True)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
    server.stop()
    return 0


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler, answering on a kept-alive connection and without an access log.

    Werkzeug's own `run_wsgi` closes the connection after every answer (since 2.1), and the
    stand-ins' clients use pooled keep-alive sessions: a closed connection per request would be
    a new TCP handshake and thread per call, counted as product time by the benchmarks.
    """

    server: Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; Nagle would hold the body ~40 ms per reply.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, open_=False)

    def make_environ(self) -> WSGIEnvironment:
        environ = super().make_environ()
        environ[AFTER_ANSWER] = self._after_answer.append
        return environ

    def run_wsgi(self) -> None:
        self._after_answer: list[Callable[[], None]] = []
        try:
            self._answer()
        finally:
            # Also when the answer could not be written: what the request caused still happens.
            for action in self._after_answer:
                action()

    def _answer(self) -> None:
        if "Transfer-Encoding" in self.headers:
            # A chunked upload has no length to stop at: Werkzeug reads it and closes after.
            super().run_wsgi()
            return
        environ = self.make_environ()
        # Read exactly the body, so the next request on this connection starts where it ends.
        length = int(self.headers.get("Content-Length") or 0)
        environ["wsgi.input"] = io.BytesIO(self.rfile.read(length))
        self._dropping = False
        environ[DROP_CONNECTION] = self._drop
        response = Response.from_app(self.server.app, environ, buffered=True)
        if self._dropping:
            # SO_LINGER 0 makes close() send RST, like a server that dropped the connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.get_data())

    def _drop(self) -> None:
        self._dropping = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silent: the journal records every request."""


class Server(ThreadedWSGIServer):
    """Serves a WSGI app on 127.0.0.1 (`port` 0: any free port) from a background thread."""

    # A benchmark opens many connections at once; a listen backlog of 5 would refuse some.
    request_queue_size = 128

    def __init__(self, app: WSGIApplication, port: int = 0) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # Written to by `stop`: the serving loop wakes on it at once.
        self._wake_up = socket.socketpair()
        super().__init__("127.0.0.1", port, app, handler=_Handler)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        """Accept connections until `stop` wakes the loop: socketserver's serve_forever would
        notice a shutdown only at its next poll, and a test stops several servers."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake_up[0], selectors.EVENT_READ)
            while True:
                ready = [key.fileobj for key, _ in selector.select()]
                if self._wake_up[0] in ready:
                    return
                self._handle_request_noblock()

    def stop(self) -> None:
        """Stop accepting, then end the kept-alive connections, which would otherwise go on
        answering from a stopped server."""
        if self._thread is not None:
            self._wake_up[1].send(b"\0")
            self._thread.join()
            self._thread = None
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()

    def server_close(self) -> None:
        super().server_close()
        for end in self._wake_up:
            end.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
