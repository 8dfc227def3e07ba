"""The time, as every shell reads it: one clock, injected wherever a decision or a lease reads
the time, so that a test moves it instead of waiting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
