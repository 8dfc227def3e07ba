"""The report's arithmetic: one invoice's ledger entries and payment at a time, folded into
running totals.

Pure: no network. tools/report.py feeds it from the ledger; the tests feed it by hand too. The
groups are the product's own (shared/core/attribution.py): as assigned at the holdout draw.
"""

from __future__ import annotations

import datetime as dt
import statistics
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.core.attribution import HOLDOUT, TREATED, assignment, attribute, minutes_after
from shared.core.entry import Entry, Payment
from tools.lift import Lift, newcombe, too_small

NO_OUTCOME = "(no outcome yet)"
# An invoice none of whose entries recorded a decline code: written before entries recorded one,
# never read (outside TEXT_ON_ATTEMPTS, unreadable), or a payment without an error (3-D Secure).
NO_DECLINE_CODE = "(none recorded)"


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
    texted_invoices: int = 0
    # Every entry's outcome, and those of the entries not texted: with the texted, they are all.
    outcomes: Counter[str] = field(default_factory=Counter)
    untexted: Counter[str] = field(default_factory=Counter)
    # Entries deferred for quiet hours at some point, and those of them texted since: a deferral
    # is a state an entry passed through, not an outcome beside the others.
    deferred: int = 0
    deferred_texted: int = 0
    # Invoices by the group they were assigned, and those of them paid.
    groups: Counter[str] = field(default_factory=Counter)
    paid: Counter[str] = field(default_factory=Counter)
    # Invoices by (decline code, group), and those of them paid.
    declines: Counter[tuple[str, str]] = field(default_factory=Counter)
    declines_paid: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Per protocol: the treated invoices that were texted, and those of them paid.
    treated_texted: int = 0
    treated_texted_paid: int = 0
    # (group, currency) and (day, group, currency): a few currencies, days and groups.
    recovered: dict[tuple[str, str], Recovered] = field(default_factory=dict)
    by_day: dict[tuple[dt.date, str, str], Recovered] = field(default_factory=dict)
    # Minutes from the last text to the payment, one float per texted invoice paid after its
    # text (8 bytes each: a million recoveries take 8 MB), kept whole so the median and p90 are
    # exact.
    minutes: array[float] = field(default_factory=lambda: array("d"))

    def add_invoice(self, entries: Sequence[Entry], payment: Payment | None = None) -> None:
        """Count one invoice: its ledger entries (one per failed attempt) and its payment, if it
        was paid."""
        kept = [e for e in entries if self.since is None or _on_or_after(e, self.since)]
        if not kept:
            return
        self.invoices += 1
        self.entries += len(kept)
        for entry in kept:
            outcome = entry.action.value if entry.action is not None else NO_OUTCOME
            self.outcomes[outcome] += 1
            if not entry.texted:
                self.untexted[outcome] += 1
            self.texts += entry.texted
            self.deferred += entry.due_at is not None
            self.deferred_texted += entry.due_at is not None and entry.texted
        group = assignment(entries)
        self.groups[group] += 1
        declined = (decline_code(entries), group)
        self.declines[declined] += 1
        was_texted = any(entry.texted for entry in entries)
        self.texted_invoices += was_texted
        per_protocol = group == TREATED and was_texted
        self.treated_texted += per_protocol
        # The previous version recorded the payment on an entry, once.
        if payment is None:
            payment = next((e.paid for e in entries if e.paid is not None), None)
        if payment is None or payment.paid_at is None:
            return
        paid_at = payment.paid_at
        self.paid[group] += 1
        self.declines_paid[declined] += 1
        self.treated_texted_paid += per_protocol
        currency = payment.currency or "?"
        for totals in (
            self.recovered.setdefault((group, currency), Recovered()),
            self.by_day.setdefault((paid_at.date(), group, currency), Recovered()),
        ):
            totals.invoices += 1
            totals.amount += payment.amount or 0
        found = attribute(entries, paid_at)
        minutes = None if found is None else minutes_after(found, paid_at)
        # A text that went out only after the payment did not bring it.
        if minutes is not None and minutes >= 0:
            self.minutes.append(minutes)

    def rate(self, group: str) -> float | None:
        return self.paid[group] / self.groups[group] if self.groups[group] else None

    def decline_codes(self) -> list[str]:
        """The invoices' decline codes, the one of the most invoices first."""
        invoices: Counter[str] = Counter()
        for (code, _), count in self.declines.items():
            invoices[code] += count
        return sorted(invoices, key=lambda code: (-invoices[code], code))

    def lift(self) -> Lift | str:
        """The treated group's rate minus the holdout's with its interval, or why not."""
        why_not = too_small({group: self.groups[group] for group in (TREATED, HOLDOUT)})
        if why_not is not None:
            return why_not
        return newcombe(
            self.paid[TREATED], self.groups[TREATED], self.paid[HOLDOUT], self.groups[HOLDOUT]
        )

    def per_protocol_rate(self) -> float | None:
        """The rate of the treated invoices that were texted: not the lift's (docs/measuring.md)."""
        return self.treated_texted_paid / self.treated_texted if self.treated_texted else None

    def minutes_to_pay(self) -> tuple[float, float] | None:
        """Median and 90th percentile of the minutes from text to payment."""
        if not self.minutes:
            return None
        if len(self.minutes) == 1:
            return self.minutes[0], self.minutes[0]
        deciles = statistics.quantiles(self.minutes, n=10, method="inclusive")
        return deciles[4], deciles[8]


def decline_code(entries: Sequence[Entry]) -> str:
    """The invoice's decline code: its earliest attempt's that recorded one, the failure that
    first brought it in (as a rule before any text of it, so the groups within one code are
    drawn from the same failures)."""
    recorded = [(e.key.attempt, e.decline_code) for e in entries if e.decline_code is not None]
    return min(recorded)[1] if recorded else NO_DECLINE_CODE


def _on_or_after(entry: Entry, since: dt.datetime) -> bool:
    # An entry without a creation time cannot be placed in the window.
    return entry.created_at is not None and entry.created_at >= since
