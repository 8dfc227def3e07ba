"""Stripe webhook checks for the ingest function: signature, age and shape."""

from __future__ import annotations

import json
from typing import Any

import stripe

from shared.core.event import FailedPayment, from_stripe_event

MAX_BODY_BYTES = 1024 * 1024
# Stripe's default: a signature older than five minutes is refused (replay protection).
TOLERANCE_SECONDS = 300


class WebhookRejected(Exception):
    """The request is not an authentic, readable Stripe event; the message says why, briefly."""


def parse_webhook(body: bytes, signature: str | None, secret: str) -> FailedPayment | None:
    """The failed payment in a verified webhook body, or None for another event type."""
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected("body is not UTF-8") from None
    try:
        # Verified against the exact raw bytes: re-serialised JSON would not match.
        stripe.WebhookSignature.verify_header(
            payload, signature or "", secret, tolerance=TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejected(_signature_reason(str(exc))) from None
    try:
        event: Any = json.loads(payload)
    except ValueError:
        raise WebhookRejected("body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookRejected("body is not a JSON object")
    try:
        return from_stripe_event(event)
    except ValueError as exc:
        raise WebhookRejected(str(exc)) from None


def _signature_reason(message: str) -> str:
    """A short reason from the stripe library's message, without echoing the header back."""
    lowered = message.lower()
    if "no stripe-signature header" in lowered:
        return "missing Stripe-Signature header"
    if "tolerance" in lowered:
        return "signature timestamp too old"
    if "unable to extract" in lowered or "expected scheme" in lowered:
        return "malformed Stripe-Signature header"
    return "signature does not match"
