"""What the workflow needs from a Stripe invoice and its customer, read from plain dicts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.core.decline import LatestPayment, latest_payment
from shared.core.text import clean

FALLBACK_DESCRIPTION = "your subscription"
# The latest payment's PaymentIntent, for why it failed: `payments` is not in an invoice unless
# asked for, and asking for a path inside it brings it. Four levels, Stripe's deepest expansion.
PAYMENT_INTENT_PATH = "payments.data.payment.payment_intent"
# What the recover function expands when it reads an invoice: still one request.
EXPAND = ("customer", "parent.subscription_details.subscription", PAYMENT_INTENT_PATH)

# Stripe writes subscription line descriptions itself: "1 × Pro plan (at $25.00 / month)",
# "Pro plan (Tier 1 at $0.00 / month)", "Remaining time on 2 × Pro plan after 25 Nov 2026".
_PRORATION = re.compile(r"^(?:Remaining|Unused) time on (?P<rest>.+?)(?: after .+)?$", re.I)
_QUANTITY_PREFIX = re.compile(r"^\d+(?:[.,]\d+)?\s*[×xX]\s+")
_PRICE_SUFFIX = re.compile(r"\s*\((?:at|tier \d+ at)\s[^()]*\)$", re.I)
# A subscription in one of these states is over: its customer is not asked to pay for it.
ENDED_SUBSCRIPTION = frozenset({"canceled", "incomplete_expired"})


@dataclass(frozen=True)
class Customer:
    """The customer fields the text needs; `deleted` customers carry nothing else."""

    id: str | None
    name: str
    phone: str | None
    country: str | None
    deleted: bool = False
    # The address's state or province as written (`CA`, `California`, `Nuevo León`): quiet hours
    # are judged in its zones too.
    state: str | None = None
    # Stripe's IETF tags, most preferred first (`es-419`, `fr`); they choose the template.
    preferred_locales: tuple[str, ...] = ()


@dataclass(frozen=True)
class Invoice:
    """An invoice as re-read from Stripe at send time."""

    id: str
    status: str
    amount_remaining: int
    currency: str
    hosted_invoice_url: str | None
    attempt_count: int
    livemode: bool
    description: str
    customer: Customer
    # The parent subscription's id and status; None when the invoice has no subscription, or
    # when Stripe did not expand it (the text then goes out: a missed notice costs more).
    subscription_id: str | None = None
    subscription_status: str | None = None
    # The latest payment (its PaymentIntent's status and why it failed); None without one.
    payment: LatestPayment | None = None
    # When Stripe tries the payment again (unix time); None once it has stopped retrying.
    next_payment_attempt: int | None = None

    @property
    def subscription_ended(self) -> bool:
        return self.subscription_status in ENDED_SUBSCRIPTION

    @property
    def needs_action(self) -> bool:
        """Whether the latest payment waits for the customer to confirm it (3-D Secure)."""
        return self.payment is not None and self.payment.needs_action

    @property
    def why_not_open(self) -> str | None:
        """Why the invoice is not open for payment (skipped:not_open), or None: only an open one
        with something due is worth a text."""
        if self.status != "open":
            return f"invoice is {self.status}" if self.status else "invoice has no status"
        return "nothing is due" if self.amount_remaining <= 0 else None


def describe_line(description: str | None) -> str:
    """A short product name from a line description, without Stripe's quantity and price text."""
    text = clean(description)
    proration = _PRORATION.match(text)
    if proration:
        text = proration.group("rest")
    text = _PRICE_SUFFIX.sub("", _QUANTITY_PREFIX.sub("", text)).strip()
    return text or FALLBACK_DESCRIPTION


def parse_customer(data: Mapping[str, Any] | str | None, invoice: Mapping[str, Any]) -> Customer:
    """The customer of `invoice`, from its expanded `customer` field.

    An invoice billed to an Accounts v2 `customer_account` has no customer object (`customer` is
    null): its own copies (`customer_name`, `customer_phone`, `customer_address`, frozen when it
    was finalized) stand in. A customer without an address takes the invoice's address country
    as its phone region, and its state. A bare id or a deleted customer has no contact.
    """
    frozen = invoice.get("customer_address") or {}
    if data is None:
        return Customer(
            id=invoice.get("customer_account"),
            name=clean(invoice.get("customer_name")),
            phone=invoice.get("customer_phone"),
            country=frozen.get("country"),
            state=_state(frozen),
        )
    if not isinstance(data, Mapping):
        return Customer(id=data, name="", phone=None, country=None)
    if data.get("deleted"):
        return Customer(id=data.get("id"), name="", phone=None, country=None, deleted=True)
    address = data.get("address") or {}
    # The customer's own address when it has one; the invoice's frozen copy otherwise.
    place = address if address.get("country") or address.get("state") else frozen
    locales = data.get("preferred_locales") or []
    return Customer(
        id=data.get("id"),
        name=clean(data.get("name")),
        phone=data.get("phone"),
        country=address.get("country") or frozen.get("country"),
        preferred_locales=tuple(locale for locale in locales if isinstance(locale, str)),
        state=_state(place),
    )


def _state(address: Mapping[str, Any]) -> str | None:
    state = address.get("state")
    if not isinstance(state, str) or not state.strip():
        return None
    return state.strip()


def parse_invoice(data: Mapping[str, Any]) -> Invoice:
    """An invoice retrieved with its customer, subscription and latest PaymentIntent expanded
    (`EXPAND`)."""
    details = (data.get("parent") or {}).get("subscription_details") or {}
    subscription = details.get("subscription")
    if isinstance(subscription, Mapping):
        subscription_id, status = subscription.get("id"), subscription.get("status")
    else:
        subscription_id, status = subscription, None
    lines = (data.get("lines") or {}).get("data") or []
    first_line = lines[0].get("description") if lines else None
    remaining = data.get("amount_remaining")
    retry_at = data.get("next_payment_attempt")
    return Invoice(
        id=data["id"],
        status=data.get("status") or "",
        amount_remaining=int(remaining if remaining is not None else data.get("amount_due") or 0),
        currency=data.get("currency") or "",
        hosted_invoice_url=data.get("hosted_invoice_url") or None,
        attempt_count=int(data.get("attempt_count") or 0),
        livemode=bool(data.get("livemode")),
        description=describe_line(first_line),
        customer=parse_customer(data.get("customer"), data),
        subscription_id=subscription_id if isinstance(subscription_id, str) else None,
        subscription_status=status if isinstance(status, str) else None,
        payment=latest_payment(data),
        next_payment_attempt=retry_at if isinstance(retry_at, int) else None,
    )
