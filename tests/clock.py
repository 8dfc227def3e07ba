"""Clocks a test moves: the ledger, the workflow and the sweep read one instead of the time;
the stand-ins' rate limits and the retries' backoffs the other."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class TestClock:
    """Stands still until the test moves it; shared by every thread that reads it."""

    __test__ = False  # not a test class, whatever pytest's name rule says

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, by: timedelta) -> None:
        with self._lock:
            self._now += by

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment


class TestSeconds:
    """The `time` module of code that reads only monotonic() and sleep() (the stand-ins, a
    retry's backoff): its seconds stand still until the test moves them or the code sleeps, and a
    sleep moves them on at once and is kept for the test to read."""

    __test__ = False

    def __init__(self) -> None:
        self._now = 0.0
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
