"""Shared HTTP scaffolding for the stand-ins: lifecycle, journal, faults, latency, controls."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

CONTROL_PREFIX = "/_control/"
PEAK_WINDOW_S = 1.0


def wait_for_stop_signal() -> None:
    """Block the main thread until SIGTERM or SIGINT: how a server run as its own process ends."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request as the stand-in handlers see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    raw: bytes

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        return json.loads(self.raw.decode("utf-8"))

    def form(self) -> dict[str, list[str]]:
        """The body parsed as application/x-www-form-urlencoded."""
        return parse_qs(self.raw.decode("utf-8"), keep_blank_values=True)


@dataclass
class Response:
    """A response to send: a str body goes out as text/plain, anything else as JSON."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode("utf-8"), "application/json"


@dataclass
class Fault:
    """An injected failure for the next `times` requests whose path matches `path` (re.search)."""

    path: str = ""
    method: str | None = None
    times: int = 1
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    reset: bool = False

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path)
        if self.method is not None:
            self.method = self.method.upper()
        if not isinstance(self.times, int) or self.times < 1:
            raise ValueError("fault times must be a positive integer")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("fault status must be an HTTP status code")
        if self.delay_s < 0:
            raise ValueError("fault delay_s must not be negative")

    def matches(self, method: str, path: str) -> bool:
        return (self.method in (None, method)) and self._pattern.search(path) is not None


def mask_secret(secret: str) -> str:
    """Mask a credential the way Stripe does: keep the key prefix and the last four characters."""
    prefix = secret[: secret.rfind("_") + 1] if secret.count("_") >= 2 else ""
    return f"{prefix}****{secret[-4:]}"


def bearer_token(headers: Message) -> str | None:
    value = headers.get("Authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # A benchmark opens many connections at once; the default backlog of 5 would refuse some.
    request_queue_size = 128

    def __init__(self, port: int, standin: StandinServer) -> None:
        self.standin = standin
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # Clients use pooled keep-alive sessions: HTTP/1.1 with a Content-Length on every reply.
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the access log: the journal records every request."""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; Nagle would hold the body ~40 ms per reply.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.standin._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.standin._track(self.connection, add=False)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        query = parse_qs(split.query, keep_blank_values=True)
        request = Request(self.command, split.path, query, self.headers, raw)
        response = self.server.standin._handle(request)
        if response is None:
            # SO_LINGER 0 makes close() send RST, like a server that dropped the connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        payload, content_type = response.encode()
        self.send_response(response.status)
        headers = {"Content-Type": content_type, **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class StandinServer(ABC):
    """Base stand-in: a threaded HTTP server on 127.0.0.1 with journal, faults and latency."""

    def __init__(
        self,
        port: int = 0,
        *,
        latency_s: float = 0.0,
        scenario: Mapping[str, Any] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._latency_s = latency_s
        self._faults: list[Fault] = []
        self._journal: list[dict[str, Any]] = []
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self._clear_counters()
        self._reset_state()
        if scenario is not None:
            self.load(scenario)
        self._httpd = _HTTPServer(port, self)

    # Lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        # Keep-alive connections would otherwise keep answering from a stopped server.
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Python control API --------------------------------------------------------------------

    def reset(self) -> None:
        """Clear data, journal, faults and counters (latency and configuration stay)."""
        with self._lock:
            self._faults.clear()
            self._journal.clear()
            self._clear_counters()
            self._reset_state()

    @abstractmethod
    def load(self, scenario: Mapping[str, Any]) -> None:
        """Load scenario data; each server documents its scenario keys."""

    def add_fault(
        self,
        path: str = "",
        *,
        method: str | None = None,
        times: int = 1,
        status: int | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        delay_s: float = 0.0,
        reset: bool = False,
    ) -> None:
        fault = Fault(path, method, times, status, body, dict(headers or {}), delay_s, reset)
        with self._lock:
            self._faults.append(fault)

    @property
    def latency_s(self) -> float:
        return self._latency_s

    def set_latency(self, latency_s: float) -> None:
        if latency_s < 0:
            raise ValueError("latency_s must not be negative")
        self._latency_s = latency_s

    def requests(self) -> list[dict[str, Any]]:
        """The journal of API requests, oldest first."""
        with self._lock:
            return copy.deepcopy(self._journal)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": len(self._journal),
                "by_endpoint": dict(self._by_endpoint),
                "by_status": dict(self._by_status),
                "faults_injected": self._faults_injected,
                "peak_per_second": {
                    "overall": self._peak.get("*", 0),
                    "by_endpoint": {k: v for k, v in self._peak.items() if k != "*"},
                },
                **self._extra_stats(),
            }

    # Hooks for subclasses ------------------------------------------------------------------

    @abstractmethod
    def _reset_state(self) -> None:
        """Clear the server's own data."""

    @abstractmethod
    def _extra_stats(self) -> dict[str, Any]:
        """Server-specific counters merged into stats()."""

    @abstractmethod
    def endpoint_key(self, method: str, path: str) -> str:
        """The bucket a request counts under in stats (a route template)."""

    @abstractmethod
    def handle_api(self, request: Request) -> Response:
        """Answer an API request; called with the state lock held."""

    @abstractmethod
    def error_response(self, status: int) -> Response:
        """The server's own error envelope for a bare status (used by faults)."""

    def common_headers(self, request: Request) -> dict[str, str]:
        """Headers every API response carries, faults included."""
        return {}

    def journal_body(self, request: Request) -> Any:
        if not request.raw:
            return None
        try:
            return request.json()
        except ValueError:
            return request.raw.decode("utf-8", "replace")

    @abstractmethod
    def control_routes(self) -> dict[tuple[str, str], Callable[[Request, str], Response]]:
        """Extra control endpoints: (method, regex on the name after /_control/) -> handler."""

    # Internals -----------------------------------------------------------------------------

    def _clear_counters(self) -> None:
        self._by_endpoint: Counter[str] = Counter()
        self._by_status: Counter[str] = Counter()
        self._faults_injected = 0
        self._arrivals: dict[str, deque[float]] = {}
        self._peak: dict[str, int] = {}

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _handle(self, request: Request) -> Response | None:
        if request.path.startswith(CONTROL_PREFIX):
            return self._control(request)
        arrived, arrived_wall = time.monotonic(), time.time()
        endpoint = self.endpoint_key(request.method, request.path)
        with self._lock:
            self._note_arrival(endpoint, arrived)
            fault = self._take_fault(request)
        delay = self._latency_s + (fault.delay_s if fault else 0.0)
        if delay:
            time.sleep(delay)
        response: Response | None = None
        if fault is None or (fault.status is None and not fault.reset):
            with self._lock:
                response = self._handle_api_safely(request)
        elif fault.status is not None:
            response = self.error_response(fault.status)
            if fault.body is not None:
                response.body = fault.body
        if response is not None:
            response.headers.update(self.common_headers(request))
            if fault is not None:
                response.headers.update(fault.headers)
        with self._lock:
            self._record(request, endpoint, response, fault, arrived, arrived_wall)
        return response

    def _handle_api_safely(self, request: Request) -> Response:
        try:
            return self.handle_api(request)
        except Exception:
            # A stand-in bug must be loud, not look like a flaky upstream.
            traceback.print_exc()
            return self.error_response(500)

    def _take_fault(self, request: Request) -> Fault | None:
        for fault in self._faults:
            if fault.matches(request.method, request.path):
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                self._faults_injected += 1
                return fault
        return None

    def _note_arrival(self, endpoint: str, now: float) -> None:
        for key in ("*", endpoint):
            window = self._arrivals.setdefault(key, deque())
            window.append(now)
            while window[0] <= now - PEAK_WINDOW_S:
                window.popleft()
            self._peak[key] = max(self._peak.get(key, 0), len(window))

    def _record(
        self,
        request: Request,
        endpoint: str,
        response: Response | None,
        fault: Fault | None,
        arrived: float,
        arrived_wall: float,
    ) -> None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        token = bearer_token(request.headers)
        if token is not None:
            headers["authorization"] = f"Bearer {mask_secret(token)}" if token else "(malformed)"
        status = response.status if response is not None else None
        self._by_endpoint[endpoint] += 1
        self._by_status[str(status) if status is not None else "reset"] += 1
        self._journal.append(
            {
                "method": request.method,
                "path": request.path,
                "endpoint": endpoint,
                "query": request.query,
                "body": self.journal_body(request),
                "headers": headers,
                "authorized": token is not None,
                "status": status,
                "response": copy.deepcopy(response.body) if response is not None else None,
                "response_headers": dict(response.headers) if response is not None else None,
                "fault": fault is not None,
                "t_monotonic": arrived,
                "t_wall": arrived_wall,
            }
        )

    def _control(self, request: Request) -> Response:
        name = request.path[len(CONTROL_PREFIX) :]
        try:
            return self._dispatch_control(request, name)
        except KeyError as exc:
            return Response(404, {"error": f"not found: {exc}"})
        except (TypeError, ValueError) as exc:
            return Response(400, {"error": str(exc)})

    def _dispatch_control(self, request: Request, name: str) -> Response:
        ok = Response(200, {"ok": True})
        match (request.method, name):
            case ("POST", "reset"):
                self.reset()
                return ok
            case ("POST", "scenario"):
                self.load(request.json())
                return ok
            case ("POST", "faults"):
                spec = request.json()
                for one in spec if isinstance(spec, list) else [spec]:
                    self.add_fault(**one)
                return ok
            case ("POST", "latency"):
                self.set_latency(float(request.json()["latency_s"]))
                return ok
            case ("GET", "requests"):
                return Response(200, self.requests())
            case ("GET", "stats"):
                return Response(200, self.stats())
        for (method, pattern), handler in self.control_routes().items():
            match = re.fullmatch(pattern, name)
            if method == request.method and match:
                return handler(request, match.group(match.lastindex or 0))
        return Response(404, {"error": f"unknown control endpoint {request.method} {name}"})
