"""A recording HTTP proxy: every request forwarded to one address, as it came, and journaled with
its answer's status and times (GET `/_journal` reads the journal, POST `/_journal` clears it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import flask
import urllib3
from werkzeug.http import remove_hop_by_hop_headers

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

# What a journal entry keeps of a request besides its method, path, status and times.
Describe = Callable[[flask.Request], dict[str, Any]]


def create_app(
    target: str,
    describe: Describe = lambda _: {},
    retries: urllib3.Retry | bool = False,
    timeout: float = 30.0,
) -> flask.Flask:
    """Forward to `target` (HOST:PORT). `retries`: how a failed forward is tried again (False:
    never, so a request reaches the target at most once); one that fails for good is answered
    502, as a load balancer in front of a dead instance would."""
    app = flask.Flask(__name__)
    host, port = target.rsplit(":", 1)
    upstream = urllib3.HTTPConnectionPool(
        host, int(port), maxsize=32, retries=retries, timeout=timeout
    )
    journal: list[dict[str, Any]] = []
    lock = threading.Lock()

    @app.get("/_journal")
    def read() -> list[dict[str, Any]]:
        with lock:
            return list(journal)

    @app.post("/_journal")
    def clear() -> dict[str, bool]:
        with lock:
            journal.clear()
        return {"ok": True}

    @app.route("/<path:_>", methods=METHODS)
    def forward(_: str) -> flask.Response:
        request = flask.request
        started = time.time()
        headers = list(request.headers.items())
        remove_hop_by_hop_headers(headers)
        try:
            # The request target as the client wrote it, query and escapes included.
            answer = upstream.request(
                request.method,
                request.environ["RAW_URI"],
                body=request.get_data() or None,
                headers=dict(headers),
                decode_content=False,
            )
        except urllib3.exceptions.HTTPError:
            answer = None
        status = answer.status if answer is not None else 502
        entry = {
            "method": request.method,
            "path": request.path,
            "status": status,
            "t_start": started,
            "t_end": time.time(),
            **describe(request),
        }
        with lock:
            journal.append(entry)
        if answer is None:
            return flask.Response(status=status)
        answer_headers = list(answer.headers.items())
        remove_hop_by_hop_headers(answer_headers)
        return flask.Response(answer.data, answer.status, answer_headers)

    return app
