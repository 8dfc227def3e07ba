"""The report's arithmetic: one invoice's ledger entries at a time, folded into running totals.

Pure: no network. tools/report.py feeds it from Firestore; the tests feed it by hand too.
"""

from __future__ import annotations

import datetime as dt
import statistics
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.core.outcome import Action
from tools.lift import Lift, newcombe, too_small

TEXTED, HOLDOUT, NOT_TEXTED = "texted", "holdout", "not_texted"
GROUPS = (TEXTED, HOLDOUT, NOT_TEXTED)
# What the report reads of each entry (the fields of Entry).
FIELDS = (
    "created_at",
    "action",
    "due_at",
    "texted_at",
    "paid_at",
    "paid_amount",
    "paid_currency",
)
NO_OUTCOME = "(no outcome yet)"


@dataclass(frozen=True)
class Entry:
    """The part of one ledger entry the report reads."""

    invoice_id: str
    created_at: dt.datetime | None
    action: str | None
    due_at: dt.datetime | None
    texted_at: dt.datetime | None
    paid_at: dt.datetime | None
    paid_amount: int | None
    paid_currency: str | None


def texted(entry: Entry) -> bool:
    """Whether the entry's text went out: `texted_at` is recorded as it does, and stays when the
    entry then ends `failed` (the link refused) or never ends (a crash after the text), as the
    product's own attribution (shared/core/attribution.py) reads it."""
    return entry.action == Action.SENT or entry.texted_at is not None


def group_of(entries: Sequence[Entry]) -> str:
    """The invoice's group: texted if any attempt was texted, else held out if any was."""
    if any(texted(entry) for entry in entries):
        return TEXTED
    return HOLDOUT if any(entry.action == Action.HOLDOUT for entry in entries) else NOT_TEXTED


@dataclass
class Recovered:
    """Invoices paid and their amount, in one currency's minor units."""

    invoices: int = 0
    amount: int = 0


@dataclass
class Tally:
    """The report's running totals, one invoice at a time."""

    since: dt.datetime | None = None
    entries: int = 0
    invoices: int = 0
    texts: int = 0
    deferred: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    groups: Counter[str] = field(default_factory=Counter)
    paid: Counter[str] = field(default_factory=Counter)
    # (group, currency) and (day, group, currency): a few currencies, days and groups.
    recovered: dict[tuple[str, str], Recovered] = field(default_factory=dict)
    by_day: dict[tuple[dt.date, str, str], Recovered] = field(default_factory=dict)
    # Minutes from the last text to the payment, one float per paid texted invoice (8 bytes
    # each: a million recoveries take 8 MB), kept whole so the median and p90 are exact.
    minutes: array[float] = field(default_factory=lambda: array("d"))

    def add_invoice(self, entries: Sequence[Entry]) -> None:
        kept = [e for e in entries if self.since is None or _on_or_after(e.created_at, self.since)]
        if not kept:
            return
        self.invoices += 1
        self.entries += len(kept)
        for entry in kept:
            self.outcomes[entry.action or NO_OUTCOME] += 1
            self.texts += texted(entry)
            self.deferred += entry.due_at is not None
        group = group_of(entries)
        self.groups[group] += 1
        # The product records a payment once; should two entries carry one, the first counts.
        payments = [(e.paid_at, e) for e in entries if e.paid_at is not None]
        if not payments:
            return
        paid_at, payment = payments[0]
        self.paid[group] += 1
        currency = payment.paid_currency or "?"
        for totals in (
            self.recovered.setdefault((group, currency), Recovered()),
            self.by_day.setdefault((paid_at.date(), group, currency), Recovered()),
        ):
            totals.invoices += 1
            totals.amount += payment.paid_amount or 0
        # The text that brought the payment is the last one before it.
        texts = [e.texted_at for e in entries if e.texted_at and e.texted_at <= paid_at]
        if group == TEXTED and texts:
            self.minutes.append((paid_at - max(texts)).total_seconds() / 60)

    def rate(self, group: str) -> float | None:
        return self.paid[group] / self.groups[group] if self.groups[group] else None

    def lift(self) -> Lift | str:
        """The texted group's rate minus the holdout's with its interval, or why not."""
        why_not = too_small({group: self.groups[group] for group in (TEXTED, HOLDOUT)})
        if why_not is not None:
            return why_not
        return newcombe(
            self.paid[TEXTED], self.groups[TEXTED], self.paid[HOLDOUT], self.groups[HOLDOUT]
        )

    def minutes_to_pay(self) -> tuple[float, float] | None:
        """Median and 90th percentile of the minutes from text to payment."""
        if not self.minutes:
            return None
        if len(self.minutes) == 1:
            return self.minutes[0], self.minutes[0]
        deciles = statistics.quantiles(self.minutes, n=10, method="inclusive")
        return deciles[4], deciles[8]


def _on_or_after(moment: dt.datetime | None, since: dt.datetime) -> bool:
    # An entry without a creation time cannot be placed in the window.
    return moment is not None and moment >= since
