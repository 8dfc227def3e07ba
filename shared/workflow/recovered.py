"""Attribution of a paid invoice: one `recovered` line for an invoice the ledger saw, once."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.adapters.ledger import Ledger
from shared.core.attribution import TEXTED, attribute
from shared.core.errors import RetryableError
from shared.core.event import InvoicePaid

_TRIES = 3


@dataclass(frozen=True)
class Attributed:
    """What the `recovered` line says."""

    attempt: int | None
    minutes_after_text: float | None
    group: str
    reason: str | None


def attribute_payment(ledger: Ledger, paid: InvoicePaid, now: dt.datetime) -> Attributed | None:
    """Record `paid` on its invoice's ledger entry and say how it relates to the texts; None when
    the ledger never saw the invoice, or has recorded this payment already (a redelivery)."""
    paid_at = dt.datetime.fromtimestamp(paid.paid_at, dt.UTC) if paid.paid_at else now
    for _ in range(_TRIES):
        entries = ledger.entries(paid.invoice_id)
        if any("paid_at" in fields for _, _, fields in entries):
            return None
        found = attribute([fields for _, _, fields in entries], paid_at)
        if found is None:
            return None
        key, version, _ = entries[found.entry]
        payment = {
            "paid_at": paid_at,
            "paid_amount": paid.amount,
            "paid_currency": paid.currency,
            "paid_group": found.group,
            "paid_event": paid.event_id,
        }
        if ledger.record_payment(key, version, payment):
            minutes = None
            if found.group == TEXTED and found.texted_at is not None:
                minutes = round((paid_at - found.texted_at).total_seconds() / 60, 1)
            return Attributed(found.attempt, minutes, found.group, found.reason)
    raise RetryableError(f"ledger entries of {paid.invoice_id} keep changing; try again later")
