"""The message between the functions: built from a Stripe event, read back from Pub/Sub."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from shared.core.errors import MalformedEventError, MalformedMessageError

SNAPSHOT_TYPE = "invoice.payment_failed"
# A payment that needs the customer to confirm it (3-D Secure). Stripe sends it beside
# invoice.payment_failed for the same attempt: both are one failed payment, one text.
ACTION_TYPE = "invoice.payment_action_required"
PAID_TYPE = "invoice.paid"
# A payment this soon after the invoice was finalized is the first attempt succeeding (a card is
# charged at finalization): nobody can have been texted and have paid in between.
FIRST_TRY_SECONDS = 60
# Thin event notifications (GA since API version 2026-09-30) carry only the invoice id.
THIN_TYPE = "v1.invoice.payment_failed"
# The events that report a failed payment, as the message names the one that brought it.
FAILED_TYPES = (SNAPSHOT_TYPE, ACTION_TYPE, THIN_TYPE)
# A Stripe account id, as events name a connected account.
ACCOUNT_ID = re.compile(r"acct_[A-Za-z0-9]{1,64}")


@dataclass(frozen=True)
class FailedPayment:
    """One failed payment attempt to recover; small on purpose, the invoice is re-read anyway."""

    event_id: str
    invoice_id: str
    customer_id: str | None
    attempt_count: int | None
    livemode: bool
    # The connected account the event belongs to (Stripe Connect), or None for the platform's own.
    account: str | None = None
    # Set by the release sweep on a payment deferred for quiet hours: the token its ledger entry
    # was released with, which lets this message (and no other) take the entry over.
    release: str | None = None
    # When Stripe reported the failure (the event's `created`, unix time): the surge guard counts
    # the failures of its window by it. None for a backfill, which is no new failure.
    failed_at: int | None = None
    # The Stripe event that reported it (one of FAILED_TYPES); None from a backfill or a release.
    # Only said, never decided on: the invoice as read decides the text.
    event_type: str | None = None

    def to_json(self) -> bytes:
        """Compact JSON; a field that is None is left out (from_pubsub reads it back as None)."""
        fields = {name: value for name, value in asdict(self).items() if value is not None}
        return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()

    def attributes(self) -> dict[str, str]:
        """Message attributes, so operators can filter and dead letters stay identifiable."""
        attributes = {"event_id": self.event_id, "invoice_id": self.invoice_id}
        optional = {"account": self.account, "release": self.release, "event_type": self.event_type}
        attributes.update({name: value for name, value in optional.items() if value is not None})
        return attributes


@dataclass(frozen=True)
class InvoicePaid:
    """An invoice paid (`invoice.paid`): the recover function attributes it to a text, to the
    holdout group, or to neither. Carries what was paid, from the verified event."""

    event_id: str
    invoice_id: str
    customer_id: str | None
    livemode: bool
    amount: int
    currency: str
    # Unix time Stripe marked it paid.
    paid_at: int | None
    account: str | None = None
    # Whether the invoice was paid at its first attempt: the ingest function drops those (not
    # carried on the topic).
    first_try: bool = False

    def to_json(self) -> bytes:
        fields = {k: v for k, v in asdict(self).items() if v is not None and k != "first_try"}
        return json.dumps(
            {**fields, "event_type": PAID_TYPE}, separators=(",", ":"), sort_keys=True
        ).encode()

    def attributes(self) -> dict[str, str]:
        attributes = {"event_id": self.event_id, "invoice_id": self.invoice_id}
        attributes["event_type"] = PAID_TYPE
        if self.account is not None:
            attributes["account"] = self.account
        return attributes


Message = FailedPayment | InvoicePaid


def paid_at_first_try(invoice: Mapping[str, Any]) -> bool:
    """Whether a paid invoice was paid at its first attempt: the ordinary monthly renewal, which
    nobody was texted about.

    `attempt_count` alone cannot tell: Stripe counts the first attempt of any kind and after it
    only automatic retries, so a customer who paid through the text's link after the first
    attempt failed leaves it at 1. A first attempt that succeeds pays the invoice as it is
    finalized (a card is charged then); a payment after a failure comes later, at a retry or when
    the customer pays. So: paid at attempt 1, within FIRST_TRY_SECONDS of finalization, and not
    marked paid by hand (`paid_out_of_band`: the merchant settled it, typically after failures).
    An invoice never attempted (a zero total, a credit balance) failed nothing either. A first
    try that settles late (a bank debit) is carried anyway: the recover function finds no ledger
    entry for it and says nothing, which costs one message, never a missed recovery.
    """
    if not invoice.get("attempted"):
        return True
    if invoice.get("paid_out_of_band") or (json_int(invoice.get("attempt_count")) or 0) > 1:
        return False
    transitions = json_object(invoice.get("status_transitions"))
    finalized, paid = (
        json_int(transitions.get("finalized_at")),
        json_int(transitions.get("paid_at")),
    )
    if finalized is None or paid is None:
        return False
    return paid - finalized < FIRST_TRY_SECONDS


def json_object(value: Any) -> Mapping[str, Any]:
    """`value` when it is a JSON object, else an empty one: webhook bodies (and Stripe's answers)
    can hold anything."""
    return value if isinstance(value, Mapping) else {}


def json_int(value: Any) -> int | None:
    """`value` when it is a JSON integer (not a boolean), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _created(value: Any) -> int | None:
    """An event's `created` as unix time: a snapshot event's is a number, a thin event's an ISO
    8601 timestamp."""
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return None
    return json_int(value)


def _account(value: Any) -> str | None:
    """A Stripe account id (`acct_...`), or None: anything else is not an account to read from."""
    return value if isinstance(value, str) and ACCOUNT_ID.fullmatch(value) else None


def event_account(event: Mapping[str, Any]) -> str | None:
    """The connected account a Stripe event belongs to (Stripe Connect), or None for the
    platform's own: `account`, or `context` on a thin event."""
    thin = event.get("type") == THIN_TYPE
    return _account(event.get("context") if thin else event.get("account"))


def from_stripe_event(event: Mapping[str, Any]) -> Message | None:
    """The failed payment (`invoice.payment_failed`, `invoice.payment_action_required`, or the
    thin `v1.invoice.payment_failed`) or the payment (`invoice.paid`) an event reports, or None
    for any other event type.

    Raises MalformedEventError when such an event lacks its invoice id or its id.
    """
    kind = event.get("type")
    invoice = json_object(json_object(event.get("data")).get("object"))
    customer = invoice.get("customer")
    if isinstance(customer, Mapping):
        customer = customer.get("id")
    invoice_id = invoice.get("id")
    attempt = invoice.get("attempt_count")
    if kind == THIN_TYPE:
        related = json_object(event.get("related_object"))
        invoice_id = related.get("id") if related.get("type") == "invoice" else None
        customer, attempt = None, None
    elif kind not in (SNAPSHOT_TYPE, ACTION_TYPE, PAID_TYPE):
        return None
    if not isinstance(invoice_id, str) or not invoice_id.startswith("in_"):
        raise MalformedEventError(f"{kind} event without an invoice id")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedEventError(f"{kind} event without an id")
    common = {
        "event_id": event_id,
        "invoice_id": invoice_id,
        "customer_id": customer if isinstance(customer, str) else None,
        "livemode": bool(event.get("livemode")),
        "account": event_account(event),
    }
    if kind == PAID_TYPE:
        currency = invoice.get("currency")
        return InvoicePaid(
            **common,
            amount=json_int(invoice.get("amount_paid")) or 0,
            currency=currency if isinstance(currency, str) else "",
            paid_at=json_int(json_object(invoice.get("status_transitions")).get("paid_at")),
            first_try=paid_at_first_try(invoice),
        )
    return FailedPayment(
        **common,
        attempt_count=json_int(attempt),
        failed_at=_created(event.get("created")),
        event_type=kind,
    )


def from_pubsub(data: Mapping[str, Any] | None) -> Message:
    """Decode a Pub/Sub CloudEvent's data (`message.data` is base64 JSON): a payment when it says
    `event_type: invoice.paid`, else a failed payment (messages queued before payments were
    carried say nothing)."""
    message = (data or {}).get("message") if isinstance(data, Mapping) else None
    if not isinstance(message, Mapping) or "data" not in message:
        raise MalformedMessageError("not a Pub/Sub message: no message.data")
    try:
        payload = json.loads(base64.b64decode(message["data"], validate=True))
    # RecursionError: nested past the parser's limit, unreadable like any other bad JSON.
    except (binascii.Error, TypeError, ValueError, RecursionError) as exc:
        reason = "not base64" if isinstance(exc, binascii.Error) else "not JSON"
        raise MalformedMessageError(f"message data is {reason}") from None
    if not isinstance(payload, Mapping):
        raise MalformedMessageError("message data is not a JSON object")
    invoice_id, event_id = payload.get("invoice_id"), payload.get("event_id")
    if not isinstance(invoice_id, str) or not invoice_id:
        raise MalformedMessageError("message has no invoice_id")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedMessageError("message has no event_id")
    customer = payload.get("customer_id")
    common = {
        "event_id": event_id,
        "invoice_id": invoice_id,
        "customer_id": customer if isinstance(customer, str) else None,
        "livemode": bool(payload.get("livemode")),
        "account": _account(payload.get("account")),
    }
    if payload.get("event_type") == PAID_TYPE:
        currency = payload.get("currency")
        return InvoicePaid(
            **common,
            amount=json_int(payload.get("amount")) or 0,
            currency=currency if isinstance(currency, str) else "",
            paid_at=json_int(payload.get("paid_at")),
        )
    kind = payload.get("event_type")
    return FailedPayment(
        **common,
        attempt_count=json_int(payload.get("attempt_count")),
        release=release if isinstance(release := payload.get("release"), str) else None,
        failed_at=json_int(payload.get("failed_at")),
        event_type=kind if kind in FAILED_TYPES else None,
    )
