"""The holdout groups: the group an invoice was assigned at the draw, and how its payment relates
to the texts. One reading for the `recovered` line and for `./dev report`.

The comparison is by intention to treat: an invoice is in the group it was assigned the first
time one of its failed payments reached the holdout draw (shared/core/decide.py), whatever
happened next (texted, deferred and paid overnight, unreachable, refused by Linq, failed). An
invoice none of whose failed payments reached the draw (no phone, not open, outside
TEXT_ON_ATTEMPTS, ...) is in neither group: it was never a candidate for a text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.core.entry import Entry
from shared.core.outcome import Action

TREATED, HOLDOUT, NOT_ASSIGNED = "treated", "holdout", "not_assigned"
GROUPS = (TREATED, HOLDOUT, NOT_ASSIGNED)

# An entry written before the ledger recorded the assignment carries no `group`; these outcomes
# (and a recorded plan, a deferral, a text) only ever came after the draw, so it was treated.
_AFTER_THE_DRAW = frozenset({Action.SENT, Action.DEFERRED, Action.UNREACHABLE})


@dataclass(frozen=True)
class Attribution:
    """The group of a paid invoice and the attempt its payment is told against."""

    group: str
    # The last text before the payment's attempt, or, with no text, the latest attempt.
    attempt: int | None
    texted_at: datetime | None
    # Why no text went out (the latest entry's outcome and its reason), when none did.
    reason: str | None


def assigned(entry: Entry) -> str | None:
    """The group the entry was assigned at the draw, or None when it never reached it."""
    if entry.group is not None:
        return entry.group if entry.group in (TREATED, HOLDOUT) else None
    if entry.action is Action.HOLDOUT:
        return HOLDOUT
    after = entry.plan is not None or entry.due_at is not None
    if entry.texted or entry.action in _AFTER_THE_DRAW or after:
        return TREATED
    return None


def _attempt(entry: Entry) -> int:
    return entry.key.attempt


def assignment(entries: Sequence[Entry]) -> str:
    """The invoice's group: the assignment of its earliest attempt that reached the draw (the
    same for all of them while HOLDOUT_PERCENT stays), or NOT_ASSIGNED."""
    drawn = [(_attempt(entry), group) for entry in entries if (group := assigned(entry))]
    return min(drawn)[1] if drawn else NOT_ASSIGNED


def attribute(entries: Sequence[Entry], paid_at: datetime | None = None) -> Attribution | None:
    """How the payment at `paid_at` of an invoice whose ledger entries (one per failed attempt)
    are `entries` relates to the texts; None when it has none (the ledger never saw it).

    The text a payment followed is the latest that went out before it: a text that went out
    after it, racing the payment, did not bring it.
    """
    if not entries:
        return None
    group = assignment(entries)
    texts = [entry for entry in entries if entry.texted]
    if texts:
        before = [
            entry
            for entry in texts
            if paid_at is not None and entry.texted_at is not None and entry.texted_at <= paid_at
        ]
        chosen = max(before or texts, key=_attempt)
        return Attribution(group, chosen.key.attempt, chosen.texted_at, None)
    latest = max(entries, key=_attempt)
    action = latest.action.value if latest.action is not None else latest.state.value
    why = f"{action}: {latest.reason}" if latest.reason else action
    return Attribution(group, latest.key.attempt, None, why)


def minutes_after(found: Attribution, paid_at: datetime) -> float | None:
    """Minutes from the text the payment followed to the payment, when one went out."""
    if found.texted_at is None:
        return None
    return (paid_at - found.texted_at).total_seconds() / 60
