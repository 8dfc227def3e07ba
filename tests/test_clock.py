"""The shells' clock: the time as an aware UTC moment, which every decision compares against."""

from __future__ import annotations

from datetime import UTC

from shared.core.clock import utc_now


def test_the_clock_reads_utc():
    assert utc_now().tzinfo is UTC
