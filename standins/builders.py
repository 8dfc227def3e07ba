"""Builders for realistic Stripe objects/events and Linq lines, starting from the fixtures."""

from __future__ import annotations

import copy
import json
import secrets
import string
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
DEFAULT_LINE = "1 × Pro plan (at $25.00 / month)"
_ALPHANUMERIC = string.ascii_letters + string.digits
_UNSET: Any = object()


def new_id(prefix: str, length: int = 24) -> str:
    """A Stripe-looking id such as `in_1Qx...`: prefix plus random alphanumerics."""
    return prefix + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


@cache
def _fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _fixture(name: str) -> dict[str, Any]:
    return json.loads(_fixture_text(name))


def _owner(customer: Mapping[str, Any] | str, livemode: bool | None) -> tuple[str, bool]:
    """A customer's id, and the mode: `livemode`, else the customer's (an id alone: test)."""
    if isinstance(customer, str):
        return customer, bool(livemode)
    return customer["id"], bool(customer.get("livemode")) if livemode is None else livemode


def customer(
    *,
    id: str | None = None,
    name: str | None = "Jane Doe",
    phone: str | None = "+1 415 555 0100",
    email: str | None = "jane@example.com",
    country: str | None = "US",
    deleted: bool = False,
    livemode: bool = False,
    preferred_locales: list[str] | None = None,
    metadata: Mapping[str, str] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A customer built on the OpenAPI fixture, or the deleted stub when `deleted`."""
    customer_id = id or new_id("cus_", 14)
    if deleted:
        return {**_fixture("openapi_fixture_deleted_customer.json"), "id": customer_id}
    obj = _fixture("openapi_fixture_customer.json")
    obj.update(
        id=customer_id,
        name=name,
        phone=phone,
        email=email,
        livemode=livemode,
        preferred_locales=list(preferred_locales or []),
        metadata=dict(metadata or {}),
        created=int(time.time()) if created is None else created,
        discount=None,
        invoice_prefix=new_id("", 7).upper(),
    )
    obj["address"]["country"] = country
    return obj


def subscription(
    customer: Mapping[str, Any] | str,
    *,
    id: str | None = None,
    status: str = "past_due",
    livemode: bool | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A subscription in `status` (Stripe's: active, past_due, unpaid, canceled, ...) for
    `customer`, with the fields the product and an operator look at."""
    customer_id, livemode = _owner(customer, livemode)
    now = int(time.time()) if created is None else created
    ended = now if status in ("canceled", "incomplete_expired") else None
    return {
        "id": id or new_id("sub_1", 23),
        "object": "subscription",
        "customer": customer_id,
        "status": status,
        "livemode": livemode,
        "created": now,
        "start_date": now,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": ended,
        "ended_at": ended,
        "collection_method": "charge_automatically",
        "metadata": {},
    }


def invoice(
    customer: Mapping[str, Any] | str,
    *,
    id: str | None = None,
    status: str = "open",
    attempt_count: int = 1,
    amount_due: int = 2500,
    currency: str = "usd",
    description_line: str | None = DEFAULT_LINE,
    hosted_invoice_url: str | None = _UNSET,
    livemode: bool | None = None,
    created: int | None = None,
    subscription: Mapping[str, Any] | str | None = _UNSET,
    **overrides: Any,
) -> dict[str, Any]:
    """An endive-shaped invoice from the synthetic event, for `customer` (a dict or an id).

    Given a customer dict, the frozen `customer_*` fields copy it, as Stripe does at
    finalization. `subscription` (a dict or an id) is the parent subscription; None makes a
    one-off invoice without one; unset keeps the fixture's id, unknown to the stand-in.
    `overrides` set any other top-level field last.
    """
    obj = _fixture("sample_invoice.payment_failed.synthetic.json")["data"]["object"]
    invoice_id = id or new_id("in_1", 23)
    now = int(time.time()) if created is None else created
    customer_id, livemode = _owner(customer, livemode)
    if isinstance(customer, Mapping) and not customer.get("deleted"):
        frozen = ("name", "phone", "email", "address")
        obj.update({f"customer_{name}": copy.deepcopy(customer.get(name)) for name in frozen})
    mode = "live" if livemode else "test"
    token = new_id("", 40)
    if hosted_invoice_url is _UNSET:
        hosted_invoice_url = f"https://invoice.stripe.com/i/acct_1StandIn/{mode}_{token}?s=ap"
    paid = status == "paid"
    # No discount and no tax: every total of the invoice is the amount due.
    totals = ("amount_due", "subtotal", "subtotal_excluding_tax", "total", "total_excluding_tax")
    obj.update(
        dict.fromkeys(totals, amount_due),
        id=invoice_id,
        customer=customer_id,
        status=status,
        attempt_count=attempt_count,
        attempted=attempt_count > 0,
        amount_paid=amount_due if paid else 0,
        amount_remaining=0 if paid or status == "void" else amount_due,
        currency=currency,
        livemode=livemode,
        created=now,
        hosted_invoice_url=hosted_invoice_url,
        invoice_pdf=f"https://pay.stripe.com/invoice/acct_1StandIn/{mode}_{token}/pdf?s=ap",
        number=f"{new_id('', 8).upper()}-{attempt_count:04d}",
        effective_at=now,
        webhooks_delivered_at=now,
    )
    transitions = obj["status_transitions"]
    transitions.update(finalized_at=now, paid_at=now if paid else None)
    transitions["voided_at"] = now if status == "void" else None
    transitions["marked_uncollectible_at"] = now if status == "uncollectible" else None
    if status == "draft":
        # Drafts are not finalized yet: no number, no hosted page, no PDF.
        obj.update(number=None, hosted_invoice_url=None, invoice_pdf=None, effective_at=None)
        transitions["finalized_at"] = None
    if subscription is None:
        obj["parent"] = None
    elif subscription is not _UNSET:
        sub_id = subscription["id"] if isinstance(subscription, Mapping) else subscription
        obj["parent"]["subscription_details"]["subscription"] = sub_id
    lines = obj["lines"]
    lines["url"] = f"/v1/invoices/{invoice_id}/lines"
    if description_line is None:
        lines.update(data=[], total_count=0)
    else:
        line = lines["data"][0]
        line.update(
            id=new_id("il_1", 23),
            invoice=invoice_id,
            amount=amount_due,
            subtotal=amount_due,
            currency=currency,
            description=description_line,
            livemode=livemode,
        )
        line["pricing"]["unit_amount_decimal"] = str(amount_due)
    obj.update(copy.deepcopy(overrides))
    return obj


def payment_failed_event(
    invoice: Mapping[str, Any],
    *,
    id: str | None = None,
    livemode: bool | None = None,
    created: int | None = None,
    type: str = "invoice.payment_failed",
) -> dict[str, Any]:
    """A snapshot event (`invoice.payment_failed` unless `type` says otherwise) carrying a copy
    of `invoice` in data.object."""
    event = _fixture("sample_invoice.payment_failed.synthetic.json")
    event.update(
        id=id or new_id("evt_1", 23),
        type=type,
        livemode=bool(invoice.get("livemode")) if livemode is None else livemode,
        created=int(time.time()) if created is None else created,
    )
    event["data"]["object"] = copy.deepcopy(dict(invoice))
    return event


def paid(invoice: Mapping[str, Any], *, at: int | None = None) -> dict[str, Any]:
    """`invoice` as Stripe has it once paid (at `at`, unix time; now by default), in full."""
    out = copy.deepcopy(dict(invoice))
    paid_at = int(time.time()) if at is None else at
    out.update(status="paid", amount_paid=out["amount_due"], amount_remaining=0)
    out["status_transitions"] = {**out.get("status_transitions", {}), "paid_at": paid_at}
    return out


def invoice_paid_event(invoice: Mapping[str, Any], **event: Any) -> dict[str, Any]:
    """An `invoice.paid` event for `invoice` (give it already paid: see `paid`)."""
    return payment_failed_event(invoice, type="invoice.paid", **event)


def payment_failed_events(
    invoice: Mapping[str, Any], attempts: Sequence[int], *, last_created: int
) -> list[dict[str, Any]]:
    """One snapshot event per failed attempt of `invoice`, a second apart, the last at
    `last_created`: what Stripe has sent by the time the invoice reached `attempts[-1]`."""
    first = last_created - len(attempts) + 1
    return [
        payment_failed_event({**invoice, "attempt_count": attempt}, created=first + i)
        for i, attempt in enumerate(attempts)
    ]


def thin_payment_failed_event(
    invoice_id: str,
    *,
    id: str | None = None,
    livemode: bool = False,
    created: datetime | None = None,
) -> dict[str, Any]:
    """A thin `v1.invoice.payment_failed` notification, as parse_event_notification expects."""
    stamp = (created or datetime.now(UTC)).astimezone(UTC)
    return {
        "id": id or new_id("evt_" if livemode else "evt_test_", 46),
        "object": "v2.core.event",
        "type": "v1.invoice.payment_failed",
        "created": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "livemode": livemode,
        "related_object": {
            "id": invoice_id,
            "type": "invoice",
            "url": f"/v1/invoices/{invoice_id}",
        },
    }


def linq_line(
    phone_number: str,
    *,
    reputation: str = "HEALTHY",
    line_type: str | None = "iMessage",
    forwarding_number: str | None = None,
) -> dict[str, Any]:
    """A line entry for the Linq stand-in's `phone_numbers` scenario key."""
    return {
        "id": str(uuid.uuid4()),
        "phone_number": phone_number,
        "reputation": {"status": reputation},
        "forwarding_number": forwarding_number,
        "line_type": line_type,
    }
