"""Small statistics for noisy machines: medians, percentiles and ratios, never a single time."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: int) -> float:
    """The q-th percentile (0..100), interpolated between closest ranks: the standard library's
    inclusive method, which treats the values as the whole population."""
    if len(values) < 2:
        return values[0] if values else math.nan
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return [min(values), *cuts, max(values)][q]


def p99(values: Sequence[float]) -> float:
    return percentile(values, 99)


def ratio(value: float, baseline: float) -> float:
    """value / baseline, NaN when the baseline is zero or missing."""
    if not baseline or math.isnan(baseline) or math.isnan(value):
        return math.nan
    return value / baseline


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p90, p99 and count of a list of durations in seconds, in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    return {"p50": median(ms), "p90": percentile(ms, 90), "p99": p99(ms), "n": float(len(ms))}


def fmt(value: float, digits: int = 1) -> str:
    """A number for a table: fixed digits, or a dash for NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"
