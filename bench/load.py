"""Load generation from the bench process: keep-alive sessions, sequential or N concurrent."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import requests

# A request to send: method, body and headers (the URL is given separately).
Prepared = tuple[str, bytes | None, dict[str, str]]


@dataclass
class Timings:
    """Client-side durations (seconds) and status codes of a run."""

    durations: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def ok(self) -> int:
        return sum(1 for s in self.statuses if 200 <= s < 300)

    @property
    def per_second(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0


def _send(session: requests.Session, url: str, request: Prepared) -> tuple[float, int]:
    """One request's client-side duration and status (0: no answer)."""
    method, body, headers = request
    start = time.perf_counter()
    try:
        status = session.request(method, url, data=body, headers=headers, timeout=60).status_code
    except requests.RequestException:
        status = 0
    return time.perf_counter() - start, status


def _timings(answers: list[tuple[float, int]], elapsed: float = 0.0) -> Timings:
    return Timings([seconds for seconds, _ in answers], [status for _, status in answers], elapsed)


def sequential(url: str, requests_: Sequence[Prepared], warmup: int = 0) -> Timings:
    """One keep-alive connection, one request at a time: latency without queueing. The first
    `warmup` requests are sent but not counted."""
    with requests.Session() as session:
        return _timings([_send(session, url, request) for request in requests_][warmup:])


def concurrent(url: str, requests_: Sequence[Prepared], clients: int) -> Timings:
    """`clients` threads, each with its own keep-alive session, share the requests in order."""
    lock = threading.Lock()
    pending = iter(requests_)
    answers: list[tuple[float, int]] = []
    ready = threading.Barrier(clients + 1)

    def client() -> None:
        with requests.Session() as session:
            # Open the connection before the clock starts.
            session.request("GET", url + "/_bench_connect", timeout=30)
            ready.wait()
            while True:
                with lock:
                    request = next(pending, None)
                if request is None:
                    return
                answer = _send(session, url, request)
                with lock:
                    answers.append(answer)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return _timings(answers, time.perf_counter() - began)
