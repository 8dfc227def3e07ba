"""Benchmark data: customers with distinct phones, open invoices, signed webhooks, CloudEvents."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cloudevents.conversion import to_binary

from bench.baselines.sync_main import payment_event
from bench.load import Prepared
from shared.core.event import from_stripe_event
from standins import builders
from standins.client import StandinClient
from standins.emulator import DEFAULT_PROJECT
from standins.stack import SANDBOX_LINQ_SECRET, signed_webhook
from standins.webhooks import signed_headers

SENDER = "+12025550100"
_phones = itertools.count(2_000_000)
LOAD_CHUNK = 250


def next_phone() -> str:
    """A valid US number unique in this run (Linq limits texts per sender and recipient)."""
    return f"+1415{next(_phones):07d}"


@dataclass(frozen=True)
class Case:
    """One failed payment ready to send: the customer, the invoice and its webhook event."""

    customer: dict[str, Any]
    invoice: dict[str, Any]
    event: dict[str, Any]

    @property
    def invoice_id(self) -> str:
        return str(self.invoice["id"])

    @property
    def phone(self) -> str:
        return str(self.customer["phone"])


def cases(count: int) -> list[Case]:
    """`count` open invoices of distinct customers, each with a valid, distinct phone number."""
    made = []
    for _ in range(count):
        customer = builders.customer(phone=next_phone())
        invoice = builders.invoice(customer)
        made.append(Case(customer, invoice, builders.payment_failed_event(invoice)))
    return made


def load(stripe_standin: StandinClient, batch: list[Case]) -> None:
    """Put the customers and invoices into the Stripe stand-in through its scenario endpoint."""
    for start in range(0, len(batch), LOAD_CHUNK):
        chunk = batch[start : start + LOAD_CHUNK]
        stripe_standin.load(
            {"customers": [c.customer for c in chunk], "invoices": [c.invoice for c in chunk]}
        )


def load_linq_line(linq: StandinClient) -> None:
    linq.load({"phone_numbers": [builders.linq_line(SENDER)]})


def signed_posts(events: Iterable[dict[str, Any]]) -> list[Prepared]:
    """Each event as the webhook POST Stripe would send, for the load generators."""
    return [("POST", *signed_webhook(event)) for event in events]


def first_try_paid(case: Case) -> dict[str, Any]:
    """An `invoice.paid` event for the case's invoice paid as it was finalized, at attempt 1: the
    ordinary renewal, which the ingest function answers without publishing."""
    finalized = case.invoice["status_transitions"]["finalized_at"]
    return builders.invoice_paid_event(builders.paid(case.invoice, at=finalized))


def linq_delivered(case: Case) -> dict[str, Any]:
    """A `message.delivered` event for the text of the case's first attempt, built as the Linq
    stand-in builds it (standins.builders: webhook version 2026-02-03, the SDK's
    MessageEventV2)."""
    text = f"Hi {case.customer.get('name') or 'there'}, your card was declined."
    return builders.linq_delivered(
        f"{case.invoice_id}-1-text", line=SENDER, parts=[{"type": "text", "value": text}]
    )


def linq_signed_posts(
    events: Iterable[dict[str, Any]], secret: str = SANDBOX_LINQ_SECRET
) -> list[Prepared]:
    """Each event as the webhook POST Linq would send (Standard Webhooks), signed now: the
    intake rejects a timestamp more than five minutes away, so sign right before posting."""
    posts: list[Prepared] = []
    for event in events:
        body = json.dumps(event)
        posts.append(("POST", body.encode(), signed_headers(secret, event["event_id"], body)))
    return posts


def cloud_event(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A binary-mode Pub/Sub CloudEvent carrying what the ingest function would publish."""
    payment = from_stripe_event(event)
    assert payment is not None
    headers, body = to_binary(payment_event(payment, DEFAULT_PROJECT))
    return body, headers
