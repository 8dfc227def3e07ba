"""Lift: how much more often a treated invoice (assigned a text at the holdout draw) gets paid than
a held-out one, with its 95 % interval.

The interval is Newcombe's hybrid score interval for a difference of two independent proportions
(Newcombe 1998, "Interval estimation for the difference between independent proportions",
method 10): each group's Wilson score interval, combined. Chosen over the Wald interval, which
the same paper shows covering well under 95 % at the sample sizes a holdout gives (tens to a few
hundred invoices) and which takes a group with no payment at all (0 of 40) as known exactly, with
no spread; the hybrid score interval keeps close to 95 % there, never leaves [-1, 1], and needs
nothing but the normal quantile (statsmodels has it as `method="newcomb"`,
but would bring scipy and pandas into the checkout for one formula).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95
# Below this many invoices in either group the report says "not enough data" instead of a lift:
# one invoice then moves the group's rate by more than 3 points, and the interval is wider than
# the lifts worth acting on (30 and 30 invoices, both 30 % paid: -22 to +22 points).
MIN_GROUP_INVOICES = 30


@dataclass(frozen=True)
class Lift:
    """The difference of the treated group's recovery rate and the holdout's, with its interval."""

    difference: float
    low: float
    high: float


def wilson(successes: int, trials: int, z: float) -> tuple[float, float]:
    """Wilson's score interval for a proportion (without continuity correction)."""
    p = successes / trials
    centre = (successes + z * z / 2) / (trials + z * z)
    half = z * math.sqrt(trials * p * (1 - p) + z * z / 4) / (trials + z * z)
    return centre - half, centre + half


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf((1 + confidence) / 2)


def rate_interval(
    successes: int, trials: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """One group's recovery rate's interval: Wilson's, the one the lift's is built from."""
    return wilson(successes, trials, _z(confidence))


def newcombe(
    paid_a: int, invoices_a: int, paid_b: int, invoices_b: int, confidence: float = CONFIDENCE
) -> Lift:
    """rate(a) - rate(b) and Newcombe's hybrid score interval for it."""
    z = _z(confidence)
    p_a, p_b = paid_a / invoices_a, paid_b / invoices_b
    low_a, high_a = wilson(paid_a, invoices_a, z)
    low_b, high_b = wilson(paid_b, invoices_b, z)
    difference = p_a - p_b
    return Lift(
        difference,
        difference - math.hypot(p_a - low_a, high_b - p_b),
        difference + math.hypot(high_a - p_a, p_b - low_b),
    )


def too_small(groups: dict[str, int]) -> str | None:
    """Why the lift cannot be told from groups of these sizes (invoices by group), or None."""
    short = [
        f"{name} has {count} invoice{'' if count == 1 else 's'}"
        for name, count in groups.items()
        if count < MIN_GROUP_INVOICES
    ]
    if not short:
        return None
    return f"{' and '.join(short)}; each group needs at least {MIN_GROUP_INVOICES}"
