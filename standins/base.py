"""What every stand-in shares, on Flask: journal, faults, latency, stats and the control API."""

from __future__ import annotations

import copy
import functools
import json
import math
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import flask
from flask import current_app, g, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import InternalServerError
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from standins.serving import DROP_CONNECTION, Server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CONTROL_PREFIX = "/_control"
UNRECOGNIZED = "unrecognized"
# The WSGI environ key of the stand-in a request came to (`serving`).
_SERVING = "standins.serving"
# A Flask rule's `<param>` or `<converter:param>`, written `{param}` in stats.
_PARAMETER, _TEMPLATE = re.compile(r"<(?:\w+:)?(\w+)>"), r"{\1}"

# A vendor's answer: body (a str goes out as text/plain, anything else as JSON), status, headers.
Reply = tuple[Any, int, dict[str, str]]


class Clock(Protocol):
    """Time as a stand-in reads it: the `time` module, or a test's clock."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float, /) -> None: ...


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
        self.headers = dict(self.headers)
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


@dataclass
class SlidingLimit:
    """At most `limit` events per `window_s` per key, counting only accepted events."""

    limit: int
    window_s: float
    events: dict[Any, deque[float]] = field(default_factory=dict)

    def retry_after(self, keys: Iterable[Any], now: float) -> int | None:
        """Seconds until every key has room again, or None when all have room now (or no limit)."""
        if not self.limit:
            return None
        waits = []
        for key in keys:
            window = self.events.setdefault(key, deque())
            while window and window[0] <= now - self.window_s:
                window.popleft()
            if len(window) >= self.limit:
                waits.append(window[0] + self.window_s - now)
        return max(1, math.ceil(max(waits))) if waits else None

    def add(self, keys: Iterable[Any], now: float) -> None:
        for key in keys:
            self.events.setdefault(key, deque()).append(now)


@dataclass
class IdempotencyKeys:
    """The first answer to each idempotency key: a repeat of the same request replays it, another
    request with the key is refused. An answer is kept only once the endpoint ran, so a rejected
    request can be retried with its key."""

    answers: dict[Any, tuple[Any, Any]] = field(default_factory=dict)
    replays: int = 0

    def answer(
        self, key: Any, fingerprint: Any, run: Callable[[], Any], refuse: Callable[[], Exception]
    ) -> tuple[Any, bool]:
        """`run()`, or the answer kept for `key` (None: no key); and whether it is a replay."""
        if key is None:
            return run(), False
        if key in self.answers:
            first_fingerprint, first = self.answers[key]
            if first_fingerprint != fingerprint:
                raise refuse()
            self.replays += 1
            return copy.deepcopy(first), True
        answer = run()
        self.answers[key] = (fingerprint, copy.deepcopy(answer))
        return answer, False


def peak_per_second(times: Iterable[float]) -> int:
    """The most of `times` (seconds) that fall in any one-second window."""
    ordered, first, peak = sorted(times), 0, 0
    for last, now in enumerate(ordered):
        while ordered[first] <= now - 1.0:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def mask_secret(secret: str) -> str:
    """Mask a credential the way Stripe does: keep the key prefix and the last four characters."""
    prefix = secret[: secret.rfind("_") + 1] if secret.count("_") >= 2 else ""
    return f"{prefix}****{secret[-4:]}"


def bearer_token() -> str | None:
    """The current request's bearer token; "" when the Authorization header is not Bearer."""
    value = request.headers.get("Authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


def json_body() -> Any:
    """The current request's body as JSON, whatever its Content-Type says."""
    return request.get_json(force=True)


class _Response(flask.Response):
    # A view's bare string is plain text (Slack answers "ok"), not Flask's default HTML.
    default_mimetype = "text/plain"


def _flask_app(name: str) -> flask.Flask:
    app = flask.Flask(name)
    app.response_class = _Response
    # Flask sorts JSON keys by default; the vendors' field order is kept instead.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    return app


class Routes:
    """A stand-in class's two Flask apps, the vendor's API and `/_control/`, built once for the
    class and shared by its instances (a URL rule costs ~0.2 ms to compile, and a stand-in is
    made for every test): each view and hook is called with the stand-in serving the request."""

    def __init__(self, name: str) -> None:
        self.api = _flask_app(name)
        self.control = _flask_app(f"{name}.control")
        self.app = DispatcherMiddleware(self.api, {CONTROL_PREFIX: self.control})

    def route(
        self,
        method: str,
        rule: str,
        view: Callable[..., ResponseReturnValue],
        name: str | None = None,
    ) -> None:
        """Serve `view(stand_in, **params)` at `rule` with the stand-in's state lock held; stats
        count it as `METHOD name`, by default the rule with `{param}` for `<param>`."""

        def locked(**params: str) -> ResponseReturnValue:
            server = serving()
            with server._lock:
                return view(server, **params)

        endpoint = f"{method} {name or _PARAMETER.sub(_TEMPLATE, rule)}"
        self.api.add_url_rule(
            rule, endpoint, locked, methods=[method], provide_automatic_options=False
        )

    def control_route(self, method: str, rule: str, action: Callable[..., Any]) -> None:
        """`/_control/<rule>` answers what `action(stand_in, **params)` returns, as JSON (None:
        `{"ok": true}`)."""

        def view(**params: str) -> Any:
            answer = action(serving(), **params)
            return {"ok": True} if answer is None else answer

        self.control.add_url_rule(rule, f"{method} {rule}", view, methods=[method])

    def before_request(self, hook: Callable[[Any], ResponseReturnValue | None]) -> None:
        """`hook(stand_in)` before each API request."""
        self.api.before_request(lambda: hook(serving()))

    def error(self, error: type[Exception] | int, answer: Callable[[Any], Reply]) -> None:
        """The API's answer to `error` (an exception or a status), from `answer(stand_in)`."""
        self.api.register_error_handler(error, lambda _: answer(serving()))


def serving() -> StandinServer:
    """The stand-in serving the current request."""
    return request.environ[_SERVING]


class StandinServer(Server, ABC):
    """Base stand-in: the vendor's API as one Flask app and `/_control/` as another, served on
    127.0.0.1 by Werkzeug from a thread, with a request journal, injected faults and latency."""

    vendor = "the vendor"
    # The keys `load` accepts (each server documents them in its `_load`).
    scenario_keys: frozenset[str] = frozenset()

    def __init__(
        self,
        port: int = 0,
        *,
        latency_s: float = 0.0,
        scenario: Mapping[str, Any] | None = None,
        clock: Clock = time,
    ) -> None:
        """`clock`: what the rate limits' windows slide by and the latency and injected delays
        are slept on; the `time` module unless a test gives its own."""
        self._lock = threading.RLock()
        self._clock = clock
        self._latency_s = latency_s
        self._faults: list[Fault] = []
        self._journal: list[dict[str, Any]] = []
        self._faults_injected = 0
        self._reset_state()
        if scenario is not None:
            self.load(scenario)
        super().__init__(self._app, port)

    @classmethod
    @functools.cache
    def _built(cls) -> Routes:
        routes = Routes(cls.__module__)
        # Registered first: the journal's after_request runs last and sees the final response.
        routes.before_request(cls._arrive)
        routes.api.after_request(lambda response: serving()._record(response))
        for status in (404, 405):
            routes.error(status, cls.unrecognized)
        # Flask logs a stand-in bug's traceback; the client sees the vendor's own 500.
        routes.error(InternalServerError, lambda server: server.error_response(500))
        cls._control_routes(routes)
        cls._routes(routes)
        return routes

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[_SERVING] = self
        return self._built().app(environ, start_response)

    # Python control API --------------------------------------------------------------------

    def reset(self) -> None:
        """Clear data, journal, faults and counters (latency and configuration stay)."""
        with self._lock:
            self._faults.clear()
            self._journal.clear()
            self._faults_injected = 0
            self._reset_state()

    def load(self, scenario: Mapping[str, Any]) -> None:
        """Load scenario data; each server documents its scenario keys."""
        unknown = set(scenario) - self.scenario_keys
        if unknown:
            raise ValueError(f"unknown {self.vendor} scenario keys: {sorted(unknown)}")
        with self._lock:
            self._load(scenario)

    def add_fault(self, path: str = "", **fault: Any) -> None:
        """Inject a failure; the keywords and their defaults are Fault's fields."""
        with self._lock:
            self._faults.append(Fault(path, **fault))

    def set_latency(self, latency_s: float) -> None:
        if latency_s < 0:
            raise ValueError("latency_s must not be negative")
        self._latency_s = latency_s

    def requests(self) -> list[dict[str, Any]]:
        """The journal of API requests, oldest first."""
        with self._lock:
            journal = copy.deepcopy(self._journal)
        # Answers are kept as sent and decoded only here, off the path of the request.
        for entry in journal:
            if entry["response"] is not None:
                is_json, data = entry["response"]
                entry["response"] = json.loads(data) if is_json else data.decode()
        return journal

    def stats(self) -> dict[str, Any]:
        """Counts over the journal, which holds requests once handled (answered or dropped), and
        the faults injected, counted as their requests arrive (a test may wait on a held one)."""
        with self._lock:
            journal = list(self._journal)
            faults = self._faults_injected
            extra = self._extra_stats()
        arrivals: dict[str, list[float]] = {}
        for entry in journal:
            arrivals.setdefault(entry["endpoint"], []).append(entry["t_monotonic"])
        return {
            "requests": len(journal),
            "by_endpoint": {endpoint: len(times) for endpoint, times in arrivals.items()},
            "by_status": dict(Counter(str(entry["status"] or "reset") for entry in journal)),
            "faults_injected": faults,
            "peak_per_second": {
                "overall": peak_per_second(entry["t_monotonic"] for entry in journal),
                "by_endpoint": {
                    endpoint: peak_per_second(times) for endpoint, times in arrivals.items()
                },
            },
            **extra,
        }

    # For subclasses ------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def _routes(cls, routes: Routes) -> None:
        """Register the vendor's endpoints, request hooks and own control endpoints."""

    @abstractmethod
    def _load(self, scenario: Mapping[str, Any]) -> None:
        """Load the keys of `scenario` (all known), with the state lock held."""

    @abstractmethod
    def _reset_state(self) -> None:
        """Clear the server's own data."""

    def _extra_stats(self) -> dict[str, Any]:
        """Server-specific counters merged into stats()."""
        return {}

    @abstractmethod
    def error_response(self, status: int) -> Reply:
        """The server's own error envelope for a bare status (faults, stand-in bugs)."""

    @abstractmethod
    def unrecognized(self) -> Reply:
        """The vendor's answer to a method and path it does not serve."""

    def journal_body(self) -> Any:
        """The request body as the journal keeps it: parsed JSON, else text; None when empty."""
        if not request.get_data():
            return None
        body = request.get_json(force=True, silent=True)
        return request.get_data(as_text=True) if body is None else body

    # Internals -----------------------------------------------------------------------------

    @classmethod
    def _control_routes(cls, routes: Routes) -> None:
        routes.control_route("POST", "/reset", cls.reset)
        routes.control_route("POST", "/scenario", lambda server: server.load(json_body()))
        routes.control_route("POST", "/faults", lambda server: server._add_faults(json_body()))
        routes.control_route(
            "POST",
            "/latency",
            lambda server: server.set_latency(float(json_body()["latency_s"])),
        )
        routes.control_route("GET", "/requests", cls.requests)
        routes.control_route("GET", "/stats", cls.stats)
        control = routes.control
        control.register_error_handler(KeyError, lambda exc: ({"error": f"not found: {exc}"}, 404))
        for error in (TypeError, ValueError):
            control.register_error_handler(error, lambda exc: ({"error": str(exc)}, 400))
        for status in (404, 405):
            control.register_error_handler(
                status,
                lambda _: (
                    {"error": f"unknown control endpoint {request.method} {request.path[1:]}"},
                    404,
                ),
            )

    def _add_faults(self, spec: Any) -> None:
        for one in spec if isinstance(spec, list) else [spec]:
            self.add_fault(**one)

    def _arrive(self) -> ResponseReturnValue | None:
        """Note the arrival, wait the injected latency, and apply the first matching fault."""
        g.arrived, g.arrived_wall = time.monotonic(), time.time()
        with self._lock:
            g.fault = fault = self._take_fault(request.method, request.path)
        delay = self._latency_s + (fault.delay_s if fault else 0.0)
        if delay:
            self._clock.sleep(delay)
        if fault is None or (fault.status is None and not fault.reset):
            return None
        if fault.status is None:
            g.dropped = True
            request.environ[DROP_CONNECTION]()
            return ""  # never sent: the server drops the connection instead
        body, status, headers = self.error_response(fault.status)
        if fault.body is not None:
            body = (
                fault.body if isinstance(fault.body, str) else current_app.json.response(fault.body)
            )
        return body, status, headers

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(method, path):
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                self._faults_injected += 1
                return fault
        return None

    def _record(self, response: flask.Response) -> flask.Response:
        fault: Fault | None = g.fault
        if fault is not None:
            response.headers.update(fault.headers)
        answered = not g.get("dropped")
        status = response.status_code if answered else None
        headers = {k.lower(): v for k, v in request.headers.items()}
        token = bearer_token()
        if token is not None:
            headers["authorization"] = f"Bearer {mask_secret(token)}" if token else "(malformed)"
        entry = {
            "method": request.method,
            "path": request.path,
            "endpoint": request.endpoint or UNRECOGNIZED,
            "query": request.args.to_dict(flat=False),
            "body": self.journal_body(),
            "headers": headers,
            "authorized": token is not None,
            "status": status,
            "response": (response.is_json, response.get_data()) if answered else None,
            "response_headers": dict(response.headers) if answered else None,
            "fault": fault is not None,
            "t_monotonic": g.arrived,
            "t_wall": g.arrived_wall,
        }
        with self._lock:
            self._journal.append(entry)
        return response
