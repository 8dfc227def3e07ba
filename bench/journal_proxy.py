"""A recording HTTP proxy in front of the Firestore emulator, which keeps no request journal.

Run as its own process (`python -m bench.journal_proxy --port P --target HOST:PORT`), so the
recover function's ledger calls get start and end times like the stand-ins' journals, without
touching product code: the function's FIRESTORE_EMULATOR_HOST points here.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

import flask
import urllib3
from werkzeug.http import remove_hop_by_hop_headers

from standins.serving import Server, serve_until_signalled

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def create_app(target: str) -> flask.Flask:
    """Forward every request to `target` (HOST:PORT) and journal it; GET `/_journal` reads the
    journal, POST `/_journal` clears it."""
    app = flask.Flask(__name__)
    host, port = target.rsplit(":", 1)
    # A pooled connection the emulator has closed is retried once on a new one, any method.
    upstream = urllib3.HTTPConnectionPool(
        host, int(port), maxsize=32, retries=urllib3.Retry(1, allowed_methods=None), timeout=30
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
        # The request target as the client wrote it, query and escapes included.
        answer = upstream.request(
            request.method,
            request.environ["RAW_URI"],
            body=request.get_data() or None,
            headers=dict(headers),
            decode_content=False,
        )
        ended = time.time()
        entry = {
            "method": request.method,
            "path": request.path,
            "status": answer.status,
            "t_start": started,
            "t_end": ended,
        }
        if request.path.endswith(":commit"):
            entry["writes"] = commit_writes(request.get_json(silent=True))
        with lock:
            journal.append(entry)
        answer_headers = list(answer.headers.items())
        remove_hop_by_hop_headers(answer_headers)
        return flask.Response(answer.data, answer.status, answer_headers)

    return app


def commit_writes(body: Any) -> list[dict[str, Any]]:
    """What each write of a `:commit` changes (its `updateMask` field paths) and on what
    condition (`exists` or `updateTime`): all it takes to tell a claim from a plan or an outcome,
    without journaling the plan's text and recipient."""
    writes = body.get("writes") if isinstance(body, dict) else None
    return [
        {
            "fields": sorted((write.get("updateMask") or {}).get("fieldPaths") or []),
            "precondition": sorted(write.get("currentDocument") or {}),
        }
        for write in writes or []
        if isinstance(write, dict)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.journal_proxy", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="HOST:PORT of the emulator")
    args = parser.parse_args(argv)
    server = Server(create_app(args.target), args.port)
    server.start()
    return serve_until_signalled(
        server, f"journal proxy on 127.0.0.1:{server.port} -> {args.target}"
    )


if __name__ == "__main__":
    sys.exit(main())
