"""A webhook's body, read from the intake's connection: at most MAX_BODY_BYTES, within a deadline.

A client that declares a body and then sends it a byte at a time would otherwise hold the
instance (one request at a time) for as long as it likes: the server's reads block on each
byte, and no per-read timeout bounds a read that keeps getting one.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import flask

from shared.core.errors import DunningError

MAX_BODY_BYTES = 1024 * 1024
# Where the WSGI servers put the client's connection: gunicorn (functions-framework's server, and
# so Cloud Run's), and Werkzeug's development server (functions-framework --debug).
_SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")
# How each answer begins, by status.
_ANSWERS = {408: "request timeout", 400: "rejected", 413: "payload too large"}


class BodyNotRead(DunningError):
    """The body did not arrive whole and in time. `status` is the answer's: 408 (too slow), 400
    (cut short) or 413 (too large); the message says why, for the log and the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status

    @property
    def answer(self) -> str:
        return f"{_ANSWERS[self.status]}: {self}"


def declared_too_large(request: flask.Request) -> bool:
    """Whether the request declares a body over the limit (checked before anything is read)."""
    return (request.content_length or 0) > MAX_BODY_BYTES


def read_body(request: flask.Request, seconds: float) -> bytes:
    """The whole body, read within `seconds`; BodyNotRead otherwise."""
    declared = request.content_length or 0
    with _deadline(request.environ, seconds) as expired:
        try:
            # At most one byte past the limit, so a body without a length is never read whole.
            body = request.stream.read(MAX_BODY_BYTES + 1)
        # Whatever the server raises for a connection that ended or a chunk that was malformed
        # (Werkzeug's ClientDisconnected, gunicorn's NoMoreData and InvalidChunkSize, OSError):
        # the body could not be read, and the answer depends only on whether time ran out.
        except Exception:
            body = None
    if body is None or len(body) < declared:
        if expired.is_set():
            raise BodyNotRead(408, f"the body took over {seconds:g} s")
        raise BodyNotRead(400, "body shorter than its Content-Length")
    if len(body) > MAX_BODY_BYTES:
        raise BodyNotRead(413, "body over 1 MiB")
    return body


@contextlib.contextmanager
def _deadline(environ: Mapping[str, Any], seconds: float) -> Iterator[threading.Event]:
    """Shut the reading side of the client's connection once `seconds` have passed, so that a read
    blocked on a slow client returns with what has arrived; the event says whether it happened.
    Without a connection (a test client's body in memory) there is nothing to wait on."""
    expired = threading.Event()
    connection = next((environ[key] for key in _SOCKET_KEYS if key in environ), None)
    if connection is None:
        yield expired
        return

    def cut() -> None:
        expired.set()
        # The client may already be gone; the answer is written either way.
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RD)

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()
