"""Webhook verification: only an authentic, fresh, readable Stripe event gets through."""

import json
import time

import pytest
import stripe

from shared.adapters.webhook import WebhookRejected, parse_webhook
from standins import builders

SECRET = "whsec_test_secret"


def signed(event: dict, secret: str = SECRET, timestamp: int | None = None) -> tuple[bytes, str]:
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(
        body, secret, timestamp=timestamp or int(time.time())
    )
    return body.encode(), header


def event() -> dict:
    return builders.payment_failed_event(builders.invoice("cus_1", id="in_1"), id="evt_1")


def test_valid_signature_gives_the_failed_payment():
    payment = parse_webhook(*signed(event()), SECRET)
    assert payment is not None
    assert (payment.event_id, payment.invoice_id, payment.customer_id) == ("evt_1", "in_1", "cus_1")


def test_known_answer_signature_header():
    # Pins the scheme: HMAC-SHA256 of "t.body", keyed with the whole whsec_ string, hex encoded.
    assert stripe.WebhookSignature.generate_signature_header(
        '{"id":"evt_1"}', SECRET, timestamp=1700000000
    ) == ("t=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a")


def test_thin_event_is_accepted():
    body, header = signed(builders.thin_payment_failed_event("in_thin", id="evt_thin"))
    payment = parse_webhook(body, header, SECRET)
    assert payment is not None
    assert payment.invoice_id == "in_thin"


def test_other_event_types_are_ignored():
    assert parse_webhook(*signed({"id": "evt_2", "type": "invoice.paid"}), SECRET) is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda body, header: (body, None), "missing Stripe-Signature header"),
        (lambda body, header: (body, ""), "missing Stripe-Signature header"),
        (lambda body, header: (body, "garbage"), "malformed Stripe-Signature header"),
        (lambda body, header: (body, header.split(",")[0]), "malformed Stripe-Signature header"),
        (lambda body, header: (body + b" ", header), "signature does not match"),
        (
            lambda body, header: (json.dumps(json.loads(body), indent=1).encode(), header),
            "signature does not match",
        ),
        (lambda body, header: (b"\xff\xfe", header), "body is not UTF-8"),
    ],
)
def test_forged_or_damaged_requests_are_rejected(mutate, reason):
    body, header = mutate(*signed(event()))
    with pytest.raises(WebhookRejected, match=reason):
        parse_webhook(body, header, SECRET)


def test_wrong_secret_is_rejected():
    with pytest.raises(WebhookRejected, match="signature does not match"):
        parse_webhook(*signed(event(), secret="whsec_other"), SECRET)


def test_stale_signature_is_rejected():
    body, header = signed(event(), timestamp=int(time.time()) - 301)
    with pytest.raises(WebhookRejected, match="too old"):
        parse_webhook(body, header, SECRET)


def test_signed_body_that_is_not_json_is_rejected():
    header = stripe.WebhookSignature.generate_signature_header("not json", SECRET)
    with pytest.raises(WebhookRejected, match="not JSON"):
        parse_webhook(b"not json", header, SECRET)


def test_signed_payment_failed_event_without_invoice_is_rejected():
    body, header = signed({"id": "evt_3", "type": "invoice.payment_failed", "data": {}})
    with pytest.raises(WebhookRejected, match="without an invoice id"):
        parse_webhook(body, header, SECRET)
