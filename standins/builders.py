"""Builders for realistic Stripe objects/events (starting from the fixtures), Linq lines and
Linq webhooks (in the shapes of Linq's SDK models)."""

from __future__ import annotations

import json
import secrets
import string
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
# When Stripe's Smart Retries try a failed invoice again, in the invoices built here.
RETRY_AFTER_S = 3 * 86400
DEFAULT_LINE = "1 × Pro plan (at $25.00 / month)"
_ALPHANUMERIC = string.ascii_letters + string.digits
# Each of the 256 byte values as one of the alphanumerics (a little more often the first few: an
# id need only be unique and look like Stripe's, not be secret).
_ID_CHARACTERS = bytes((_ALPHANUMERIC * 5)[:256], "ascii")
_UNSET: Any = object()
# The Linq webhook payload format the product subscribes to (`?version=` on its URL).
LINQ_WEBHOOK_VERSION = "2026-02-03"
LINQ_PARTNER_ID = "partner_standin"
# Every chat health and line reputation status deep-links to its section of Linq's guide.
_CHAT_HEALTH_GUIDE = "https://docs.linqapp.com/channel/imessage/guides/chats/chat-health"
_REPUTATION_GUIDE = (
    "https://docs.linqapp.com/channel/imessage/guides/phone-numbers/phone-reputation"
)


def new_id(prefix: str, length: int = 24) -> str:
    """A Stripe-looking id such as `in_1Qx...`: prefix plus random alphanumerics."""
    return prefix + secrets.token_bytes(length).translate(_ID_CHARACTERS).decode()


def copy_json(data: Any) -> Any:
    """A copy of JSON data (a Stripe or Linq object): its dicts and lists new, the rest shared,
    since it cannot change. A third of the time of copy.deepcopy, which a stand-in's every
    answer and a builder's every object pay."""
    if isinstance(data, dict):
        return {key: copy_json(value) for key, value in data.items()}
    if isinstance(data, list):
        return [copy_json(value) for value in data]
    return data


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


# Stripe's message for a card error, by its code (or decline code); any other says this.
_CARD_DECLINED = "Your card was declined."
_ERROR_MESSAGES = {
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "An error occurred while processing your card. Try again in a little bit.",
    "authentication_required": "Your card was declined. This transaction requires authentication.",
}


def payment_intent(
    *,
    id: str | None = None,
    status: str = "requires_payment_method",
    code: str | None = "card_declined",
    decline_code: str | None = "generic_decline",
    error_type: str = "card_error",
    amount: int = 2500,
    currency: str = "usd",
    customer: str | None = None,
    livemode: bool = False,
    created: int | None = None,
) -> dict[str, Any]:
    """The PaymentIntent of an invoice's payment, as Stripe has it after an off-session attempt.

    By default the issuer declined the card (`requires_payment_method`, its `last_payment_error`
    a `card_error` with code `card_declined` and decline code `generic_decline`). Stripe gives
    some card errors a code and no decline code (`code="processing_error", decline_code=None`,
    as its test card 4000000000000119 does). `code=None`: no error. A payment waiting for the
    customer's confirmation is `status="requires_action", code=None`, with its `next_action`.
    """
    intent_id = id or new_id("pi_3", 23)
    now = int(time.time()) if created is None else created
    method = new_id("pm_1", 23)
    error = None
    if code is not None:
        error = {
            "charge": new_id("ch_3", 23),
            "code": code,
            "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
            "message": _ERROR_MESSAGES.get(decline_code or code, _CARD_DECLINED),
            "payment_method": {"id": method, "object": "payment_method", "type": "card"},
            "type": error_type,
        }
        if decline_code is not None:
            error["decline_code"] = decline_code
    action = None
    if status == "requires_action":
        action = {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}
    succeeded = status == "succeeded"
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if succeeded else 0,
        "capture_method": "automatic_async",
        "confirmation_method": "automatic",
        "created": now,
        "currency": currency,
        "customer": customer,
        "description": "Subscription update",
        "last_payment_error": error,
        "latest_charge": error["charge"] if error else None,
        "livemode": livemode,
        "metadata": {},
        "next_action": action,
        "payment_method": method,
        "payment_method_types": ["card"],
        "setup_future_usage": "off_session",
        "status": status,
    }


def invoice_payment(
    invoice_id: str,
    intent: Mapping[str, Any] | str,
    *,
    livemode: bool = False,
    created: int | None = None,
) -> dict[str, Any]:
    """An InvoicePayment of `invoice_id` (Stripe's `payments` of an invoice) whose payment is
    `intent`, a PaymentIntent: the object (the Stripe stand-in keeps it as one of its own), or
    its id as an invoice read without expanding it shows it."""
    now = int(time.time()) if created is None else created
    known = intent if isinstance(intent, Mapping) else {}
    paid = known.get("status") == "succeeded"
    return {
        "id": new_id("inpay_1", 23),
        "object": "invoice_payment",
        "amount_paid": known.get("amount") if paid else None,
        "amount_requested": known.get("amount"),
        "created": now,
        "currency": known.get("currency"),
        "invoice": invoice_id,
        "is_default": True,
        "livemode": livemode,
        "payment": {"type": "payment_intent", "payment_intent": copy_json(intent)},
        "status": "paid" if paid else "open",
        "status_transitions": {"canceled_at": None, "paid_at": now if paid else None},
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
    payment: Mapping[str, Any] | str | None = _UNSET,
    next_payment_attempt: int | None = _UNSET,
    **overrides: Any,
) -> dict[str, Any]:
    """An endive-shaped invoice from the synthetic event, for `customer` (a dict or an id).

    Given a customer dict, the frozen `customer_*` fields copy it, as Stripe does at
    finalization. `subscription` (a dict or an id) is the parent subscription; None makes a
    one-off invoice without one; unset keeps the fixture's id, unknown to the stand-in.
    `payment` is the PaymentIntent of its latest payment (see `payment_intent`), in its
    `payments`; unset: once attempted, a card the issuer declined (`generic_decline`), or, paid,
    one that succeeded; None: no payment. `next_payment_attempt` is when Stripe retries (unix
    time; None: it has stopped); unset: three days after `created` while the invoice is open and
    was attempted. `overrides` set any other top-level field last.
    """
    obj = _fixture("sample_invoice.payment_failed.synthetic.json")["data"]["object"]
    invoice_id = id or new_id("in_1", 23)
    now = int(time.time()) if created is None else created
    customer_id, livemode = _owner(customer, livemode)
    if isinstance(customer, Mapping) and not customer.get("deleted"):
        frozen = ("name", "phone", "email", "address")
        obj.update({f"customer_{name}": copy_json(customer.get(name)) for name in frozen})
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
    if next_payment_attempt is _UNSET:
        next_payment_attempt = now + RETRY_AFTER_S if status == "open" and attempt_count else None
    obj["next_payment_attempt"] = next_payment_attempt
    if payment is _UNSET and attempt_count > 0 and status != "draft":
        payment = payment_intent(
            status="succeeded" if paid else "requires_payment_method",
            code=None if paid else "card_declined",
            amount=amount_due,
            currency=currency,
            customer=customer_id,
            livemode=livemode,
            created=now,
        )
    payments = [] if payment in (None, _UNSET) else [payment]
    obj["payments"] = {
        "object": "list",
        "data": [invoice_payment(invoice_id, p, livemode=livemode, created=now) for p in payments],
        "has_more": False,
        "total_count": len(payments),
        "url": f"/v1/invoice_payments?invoice={invoice_id}",
    }
    obj.update(copy_json(overrides))
    return obj


# Fields Stripe leaves out of an object unless `expand[]` asks for them ("includable"), and so
# out of every event.
INCLUDABLE = {"invoice": ("payments",)}


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
    event["data"]["object"] = {
        k: copy_json(v) for k, v in invoice.items() if k not in INCLUDABLE["invoice"]
    }
    return event


def paid(invoice: Mapping[str, Any], *, at: int | None = None) -> dict[str, Any]:
    """`invoice` as Stripe has it once paid (at `at`, unix time; now by default), in full."""
    out = copy_json(dict(invoice))
    paid_at = int(time.time()) if at is None else at
    out.update(status="paid", amount_paid=out["amount_due"], amount_remaining=0)
    out["status_transitions"] = {**out.get("status_transitions", {}), "paid_at": paid_at}
    # The latest payment (Stripe lists newest first) is the one that paid it.
    for payment in ((out.get("payments") or {}).get("data") or [])[:1]:
        payment.update(status="paid", amount_paid=payment.get("amount_requested"))
        payment["status_transitions"] = {"canceled_at": None, "paid_at": paid_at}
        intent = payment["payment"]["payment_intent"]
        if isinstance(intent, dict):
            intent.update(settled(intent))
    return out


def settled(intent: Mapping[str, Any]) -> dict[str, Any]:
    """What changes in a PaymentIntent once it succeeds."""
    return {
        "status": "succeeded",
        "amount_received": intent.get("amount"),
        "last_payment_error": None,
        "next_action": None,
    }


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


def webhook_endpoint(
    url: str,
    enabled_events: Sequence[str],
    *,
    api_version: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, str] | None = None,
    livemode: bool = False,
    status: str = "enabled",
    created: int | None = None,
) -> dict[str, Any]:
    """A webhook endpoint as Stripe lists it: without its signing secret, which only the answer
    that creates it carries. `api_version` None: events come in the account's default version."""
    return {
        "id": new_id("we_1", 23),
        "object": "webhook_endpoint",
        "api_version": api_version,
        "application": None,
        "created": int(time.time()) if created is None else created,
        "description": description,
        "enabled_events": list(enabled_events),
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "status": status,
        "url": url,
    }


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
        "reputation": linq_reputation(reputation),
        "forwarding_number": forwarding_number,
        "line_type": line_type,
    }


# Linq webhooks: each builder gives an event that Linq's SDK (linq-python) validates as its model
# for the event type, with no field the SDK does not define (tests/test_linq_payloads.py).


def linq_time(ago: timedelta = timedelta()) -> str:
    """A Linq timestamp, `ago` before now: UTC with a Z, to the microsecond, so that events
    built one after the other are in order."""
    moment = datetime.now(UTC) - ago
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def linq_handle(
    handle: str,
    *,
    is_me: bool = False,
    service: str = "iMessage",
    line_type: str | None = None,
    joined_at: str | None = None,
) -> dict[str, Any]:
    """A chat participant (the SDK's ChatHandle): a person, or with `is_me` one of our lines
    (whose `line_type` is iMessage or RCS)."""
    return {
        "id": str(uuid.uuid4()),
        "handle": handle,
        "joined_at": joined_at or linq_time(),
        "service": service,
        "is_me": is_me,
        "left_at": None,
        "line_type": line_type,
        "status": "active",
    }


def linq_reputation(status: str = "HEALTHY") -> dict[str, Any]:
    """A line's reputation (the SDK's PhoneNumberReputation): HEALTHY, AT_RISK or CRITICAL,
    with the guide's section for it."""
    return {"status": status, "doc_url": _section(_REPUTATION_GUIDE, status)}


def linq_health(status: str = "HEALTHY", *, updated_at: str | None = None) -> dict[str, Any]:
    """A chat's health (the SDK's ChatHealthStatus): HEALTHY, AT_RISK, CRITICAL or OPTED_OUT,
    with the guide's section for it."""
    return {
        "status": status,
        "doc_url": _section(_CHAT_HEALTH_GUIDE, status),
        "updated_at": updated_at or linq_time(),
    }


def _section(guide: str, status: str) -> str:
    return f"{guide}#{status.lower().replace('_', '-')}"


def linq_event(event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` in the envelope every Linq webhook has, with a new event id, made now (Linq's
    retries of one event repeat it; a test repeats an event by sending the same dict again)."""
    return {
        "api_version": "v3",
        "webhook_version": LINQ_WEBHOOK_VERSION,
        "event_type": event_type,
        "event_id": str(uuid.uuid4()),
        "created_at": linq_time(),
        "partner_id": LINQ_PARTNER_ID,
        "trace_id": uuid.uuid4().hex,
        "data": copy_json(dict(data)),
    }


def linq_message(
    chat_id: str,
    *,
    owner: Mapping[str, Any],
    sender: Mapping[str, Any],
    parts: Sequence[Mapping[str, Any]],
    service: str = "iMessage",
    is_group: bool = False,
    health: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A message event's data (the SDK's MessageEventV2) for a message from `sender` (a
    linq_handle) in the chat `chat_id` of our line `owner` (a linq_handle with is_me): outbound
    when the sender is one of our lines. `fields` set the others (id, sent_at, delivered_at,
    idempotency_key, reconciled_at, zero_retention, ...) or replace any of these."""
    data: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "direction": "outbound" if sender.get("is_me") else "inbound",
        "sender_handle": dict(sender),
        "parts": [dict(part) for part in parts],
        "service": service,
        "chat": {
            "id": chat_id,
            "is_group": is_group,
            "owner_handle": dict(owner),
            "health_status": dict(health or linq_health()),
        },
        "effect": None,
        "reply_to": None,
        "preferred_service": None,
        "idempotency_key": None,
        "sent_at": linq_time(),
        "delivered_at": None,
        "read_at": None,
    }
    data.update(fields)
    return copy_json(data)


def linq_received(
    chat_id: str,
    text: str,
    *,
    sender: str,
    line: str,
    service: str = "iMessage",
    **fields: Any,
) -> dict[str, Any]:
    """`message.received`: `text` from the handle `sender` in the chat `chat_id` of our `line`.
    `fields` as for linq_message (is_group, health, ...); `parts` replace the text (`parts=[]`
    with `zero_retention=True` for a zero-retention line, whose messages carry no content)."""
    fields.setdefault("parts", [{"type": "text", "value": text}])
    owner = linq_handle(line, is_me=True, service=service, line_type="iMessage")
    sender_handle = linq_handle(sender, service=service)
    data = linq_message(chat_id, owner=owner, sender=sender_handle, service=service, **fields)
    return linq_event("message.received", data)


def linq_delivered(
    idempotency_key: str | None,
    *,
    line: str,
    chat_id: str | None = None,
    parts: Sequence[Mapping[str, Any]] = ({"type": "text", "value": "Hi Jane"},),
    service: str = "iMessage",
    **fields: Any,
) -> dict[str, Any]:
    """`message.delivered`: our message sent with `idempotency_key` from `line` (in the chat
    `chat_id`, a new one unless given) reached the person. `fields` as for linq_message."""
    own = linq_handle(line, is_me=True, service=service, line_type="iMessage")
    fields = {"sent_at": linq_time(timedelta(seconds=2)), "delivered_at": linq_time(), **fields}
    data = linq_message(
        chat_id or str(uuid.uuid4()),
        owner=own,
        sender=own,
        parts=parts,
        service=service,
        idempotency_key=idempotency_key,
        **fields,
    )
    return linq_event("message.delivered", data)


def linq_failed(
    *,
    message_id: str | None = None,
    chat_id: str | None = None,
    code: int = 4001,
    reason: str = "Message not delivered",
    service: str | None = "iMessage",
    preferred_service: str | None = None,
) -> dict[str, Any]:
    """`message.failed` (the SDK's): what failed (`message_id`, `chat_id`: both optional in the
    SDK, left out here when None), Linq's `code` and `reason`, and an opaque `detail_code`.
    Unlike the message events it carries no idempotency key."""
    data: dict[str, Any] = {"code": code, "detail_code": code * 10 + 1, "reason": reason}
    ids = {"message_id": message_id, "chat_id": chat_id}
    data.update({name: value for name, value in ids.items() if value is not None})
    data.update(failed_at=linq_time(), service=service, preferred_service=preferred_service)
    return linq_event("message.failed", data)


def linq_line_change(
    phone_number: str,
    *,
    new_status: str = "ACTIVE",
    new_reputation: str = "HEALTHY",
    previous_status: str = "ACTIVE",
    previous_reputation: str = "HEALTHY",
) -> dict[str, Any]:
    """`phone_number.status_updated`: our line's status (ACTIVE, FLAGGED) and reputation
    (HEALTHY, AT_RISK, CRITICAL) changed, now."""
    data = {
        "phone_number": phone_number,
        "previous_status": previous_status,
        "new_status": new_status,
        "previous_reputation": previous_reputation,
        "new_reputation": new_reputation,
        "changed_at": linq_time(),
    }
    return linq_event("phone_number.status_updated", data)
