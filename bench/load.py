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


def sequential(url: str, requests_: Sequence[Prepared], warmup: int = 0) -> Timings:
    """One keep-alive connection, one request at a time: latency without queueing.

    The first `warmup` requests are sent but not counted.
    """
    session = requests.Session()
    timings = Timings()
    began = time.perf_counter()
    for index, (method, body, headers) in enumerate(requests_):
        start = time.perf_counter()
        response = session.request(method, url, data=body, headers=headers, timeout=30)
        duration = time.perf_counter() - start
        if index >= warmup:
            timings.durations.append(duration)
            timings.statuses.append(response.status_code)
    timings.elapsed = time.perf_counter() - began
    session.close()
    return timings


def concurrent(url: str, requests_: Sequence[Prepared], clients: int) -> Timings:
    """`clients` threads, each with its own keep-alive session, share the requests in order."""
    timings = Timings()
    lock = threading.Lock()
    next_index = iter(range(len(requests_)))
    ready = threading.Barrier(clients + 1)

    def client() -> None:
        session = requests.Session()
        # Open the connection before the clock starts.
        session.request("GET", url + "/_bench_connect", timeout=30)
        ready.wait()
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                break
            method, body, headers = requests_[index]
            start = time.perf_counter()
            try:
                status = session.request(
                    method, url, data=body, headers=headers, timeout=60
                ).status_code
            except requests.RequestException:
                status = 0
            duration = time.perf_counter() - start
            with lock:
                timings.durations.append(duration)
                timings.statuses.append(status)
        session.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    timings.elapsed = time.perf_counter() - began
    return timings
