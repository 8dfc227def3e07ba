"""A paid invoice: one `recovered` line for an invoice the ledger saw, once."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.adapters.ledger import Ledger
from shared.core.attribution import attribute, minutes_after
from shared.core.clock import Clock
from shared.core.entry import Payment
from shared.core.event import InvoicePaid


@dataclass(frozen=True)
class Attributed:
    """What the `recovered` line says."""

    attempt: int | None
    minutes_after_text: float | None
    group: str
    reason: str | None


def attribute_payment(
    ledger: Ledger, paid: InvoicePaid, pubsub_message_id: str, clock: Clock
) -> Attributed | None:
    """Record `paid` in the ledger and say how it relates to the texts; None when the ledger
    never saw the invoice, or another delivery of the payment recorded it first.

    The record is one document per invoice, created once, so two deliveries that read the
    invoice's entries on either side of a new entry being written cannot both record it. The
    redelivery of the message that recorded it (its run died before the line, or its write
    timed out but committed) restates what was recorded.
    """
    paid_at = dt.datetime.fromtimestamp(paid.paid_at, dt.UTC) if paid.paid_at else clock()
    entries = ledger.entries(paid.invoice_id)
    found = attribute(entries, paid_at)
    # The previous version recorded a payment on the entry itself.
    if found is None or any(entry.paid is not None for entry in entries):
        return None
    minutes = minutes_after(found, paid_at)
    said = Attributed(
        found.attempt, None if minutes is None else round(minutes, 1), found.group, found.reason
    )
    payment = Payment(
        paid.invoice_id,
        paid_at,
        paid.amount,
        paid.currency,
        paid.event_id,
        pubsub_message_id,
        said.group,
        said.attempt,
        said.minutes_after_text,
        said.reason,
    )
    first = ledger.record_payment(payment)
    if first is None:
        return said
    if first.pubsub_message_id != pubsub_message_id:
        return None
    return Attributed(
        first.attempt, first.minutes_after_text, first.group or said.group, first.reason
    )
