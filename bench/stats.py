"""Small statistics for noisy machines: medians, percentiles and ratios, never a single time."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def p99(values: Sequence[float]) -> float:
    return percentile(values, 99.0)


def ratio(value: float, baseline: float) -> float:
    """value / baseline, NaN when the baseline is zero or missing."""
    if not baseline or math.isnan(baseline) or math.isnan(value):
        return math.nan
    return value / baseline


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p90, p99, min and count of a list of durations in seconds, in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "p50": median(ms),
        "p90": percentile(ms, 90.0),
        "p99": p99(ms),
        "min": min(ms) if ms else math.nan,
        "n": float(len(ms)),
    }


def fmt(value: float, digits: int = 1) -> str:
    """A number for a table: fixed digits, or a dash for NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"
