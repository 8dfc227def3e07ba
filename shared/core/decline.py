"""Why the invoice's latest payment failed, as its PaymentIntent says, and whose it is to fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.core.event import json_int, json_object

# Stripe's decline codes whose next steps, in Stripe's table (docs.stripe.com/declines/codes),
# are to attempt the payment again, not to ask the customer for another card or to call their
# bank first: the processor or the issuer could not answer this time. Stripe's own retries get
# past them; a text would ask the customer to fix what is not theirs.
PROCESSOR_DECLINES = frozenset(
    {
        # "The payment can't be authorized": attempt it again.
        "approve_with_id",
        # "The card issuer couldn't be reached": attempt it again.
        "issuer_not_available",
        # "An error occurred while processing the card": attempt it again, later if need be.
        "processing_error",
        # "The payment couldn't be processed by the issuer for an unknown reason": again.
        "reenter_transaction",
        # "The card was declined for an unknown reason": attempt it again.
        "try_again_later",
    }
)
# A PaymentIntent waiting for its customer to confirm the payment (3-D Secure): the invoice's
# hosted page asks for it.
REQUIRES_ACTION = "requires_action"


@dataclass(frozen=True)
class LatestPayment:
    """The invoice's latest payment, as its PaymentIntent says: its status, and the code of its
    last error (`decline_code`, or the error's `code` where Stripe gives no decline code, as it
    does for `processing_error` or `expired_card`)."""

    status: str | None
    decline_code: str | None = None

    @property
    def needs_action(self) -> bool:
        """Whether the customer is asked to confirm the payment (3-D Secure)."""
        return self.status == REQUIRES_ACTION

    @property
    def processor_error(self) -> bool:
        """Whether the failure is the processor's or the issuer's to get past, not the
        customer's: never while the payment waits for the customer's confirmation."""
        return not self.needs_action and self.decline_code in PROCESSOR_DECLINES


def latest_payment(invoice: Mapping[str, Any]) -> LatestPayment | None:
    """The latest of the invoice's `payments` (the last created), read through its expanded
    PaymentIntent; None when the invoice has no payment. A PaymentIntent left as an id (not
    expanded) says nothing: the payment is judged as a plain failure."""
    payments = json_object(invoice.get("payments")).get("data")
    listed = payments if isinstance(payments, list) else []
    entries = [entry for entry in listed if isinstance(entry, Mapping)]
    if not entries:
        return None
    # Of payments made in the same second, the first listed: Stripe lists newest first.
    latest = max(entries, key=lambda entry: json_int(entry.get("created")) or 0)
    intent = json_object(json_object(latest.get("payment")).get("payment_intent"))
    error = json_object(intent.get("last_payment_error"))
    return LatestPayment(
        status=_text(intent.get("status")),
        decline_code=_text(error.get("decline_code")) or _text(error.get("code")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
