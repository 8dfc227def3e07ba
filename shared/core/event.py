"""The message between the functions: built from a Stripe event, read back from Pub/Sub."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from shared.core.errors import MalformedEventError, MalformedMessageError

SNAPSHOT_TYPE = "invoice.payment_failed"
# Thin event notifications (GA since API version 2026-09-30) carry only the invoice id.
THIN_TYPE = "v1.invoice.payment_failed"
_ACCOUNT = re.compile(r"acct_[A-Za-z0-9]{1,64}")


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

    def to_json(self) -> bytes:
        """Compact JSON; a field that is None is left out (from_pubsub reads it back as None)."""
        fields = {name: value for name, value in asdict(self).items() if value is not None}
        return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()

    def attributes(self) -> dict[str, str]:
        """Message attributes, so operators can filter and dead letters stay identifiable."""
        attributes = {"event_id": self.event_id, "invoice_id": self.invoice_id}
        if self.account is not None:
            attributes["account"] = self.account
        if self.release is not None:
            attributes["release"] = self.release
        return attributes


def _mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a JSON object, else an empty one: webhook bodies can hold anything."""
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _account(value: Any) -> str | None:
    """A Stripe account id (`acct_...`), or None: anything else is not an account to read from."""
    return value if isinstance(value, str) and _ACCOUNT.fullmatch(value) else None


def from_stripe_event(event: Mapping[str, Any]) -> FailedPayment | None:
    """The failed payment an event reports, or None for any other event type.

    Raises MalformedEventError when a payment-failed event lacks its invoice id or its id.
    """
    kind = event.get("type")
    if kind == SNAPSHOT_TYPE:
        invoice = _mapping(_mapping(event.get("data")).get("object"))
        customer = invoice.get("customer")
        if isinstance(customer, Mapping):
            customer = customer.get("id")
        attempt = invoice.get("attempt_count")
        invoice_id = invoice.get("id")
        account = event.get("account")
    elif kind == THIN_TYPE:
        related = _mapping(event.get("related_object"))
        invoice_id = related.get("id") if related.get("type") == "invoice" else None
        customer, attempt = None, None
        # A thin event names a connected account in its context.
        account = event.get("context")
    else:
        return None
    if not isinstance(invoice_id, str) or not invoice_id.startswith("in_"):
        raise MalformedEventError(f"{kind} event without an invoice id")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedEventError(f"{kind} event without an id")
    return FailedPayment(
        event_id=event_id,
        invoice_id=invoice_id,
        customer_id=customer if isinstance(customer, str) else None,
        attempt_count=_int(attempt),
        livemode=bool(event.get("livemode")),
        account=_account(account),
    )


def from_pubsub(data: Mapping[str, Any] | None) -> FailedPayment:
    """Decode a Pub/Sub CloudEvent's data (`message.data` is base64 JSON)."""
    message = (data or {}).get("message") if isinstance(data, Mapping) else None
    if not isinstance(message, Mapping) or "data" not in message:
        raise MalformedMessageError("not a Pub/Sub message: no message.data")
    try:
        payload = json.loads(base64.b64decode(message["data"], validate=True))
    except (binascii.Error, TypeError, ValueError) as exc:
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
    return FailedPayment(
        event_id=event_id,
        invoice_id=invoice_id,
        customer_id=customer if isinstance(customer, str) else None,
        attempt_count=_int(payload.get("attempt_count")),
        livemode=bool(payload.get("livemode")),
        account=_account(payload.get("account")),
        release=release if isinstance(release := payload.get("release"), str) else None,
    )
