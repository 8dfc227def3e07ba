"""A recording HTTP proxy in front of the Firestore emulator, which keeps no request journal.

Run as its own process (`python -m bench.journal_proxy --port P --target HOST:PORT`), so the
recover function's ledger calls get start and end times like the stand-ins' journals, without
touching product code: the function's FIRESTORE_EMULATOR_HOST points here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standins.base import wait_for_stop_signal

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int, target: str) -> None:
        self.target = target
        self.journal: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.local = threading.local()
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the journal is the log."""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _upstream(self) -> http.client.HTTPConnection:
        conn = getattr(self.server.local, "conn", None)
        if conn is None:
            host, port = self.server.target.rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            self.server.local.conn = conn
        return conn

    def _forward(self) -> None:
        started = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.path.startswith("/_journal"):
            self._control(body)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        for attempt in (1, 2):
            conn = self._upstream()
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                self.server.local.conn = None
                if attempt == 2:
                    raise
        ended = time.time()
        with self.server.lock:
            self.server.journal.append(
                {
                    "method": self.command,
                    "path": self.path.split("?", 1)[0],
                    "status": response.status,
                    "t_start": started,
                    "t_end": ended,
                }
            )
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _control(self, body: bytes | None) -> None:
        with self.server.lock:
            if self.command == "POST":
                self.server.journal.clear()
                payload = b'{"ok": true}'
            else:
                payload = json.dumps(self.server.journal).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _forward
    do_POST = _forward
    do_PATCH = _forward
    do_DELETE = _forward
    do_PUT = _forward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.journal_proxy", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="HOST:PORT of the emulator")
    args = parser.parse_args(argv)
    server = _Server(args.port, args.target)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    print(f"journal proxy on 127.0.0.1:{args.port} -> {args.target}", flush=True)
    wait_for_stop_signal()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
