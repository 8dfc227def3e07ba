"""Stripe webhook checks for the ingest function: signature, age and shape."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

import stripe

from shared.core.accounts import EndpointKind
from shared.core.errors import NotSetUp, WebhookRejected
from shared.core.event import Message, event_account, from_stripe_event
from shared.core.signing_secret import Signing

# Stripe's default: a signature older than five minutes is refused (replay protection).
TOLERANCE_SECONDS = 300
# Unix seconds; twelve digits last until the year 33658, and a longer run is no timestamp.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def check_signature_header(signature: str | None, now: float) -> None:
    """Raise WebhookRejected when the Stripe-Signature header cannot be a fresh signature.

    Done here rather than left to the stripe library, whose parser raises TypeError on a
    non-ASCII signature and whose messages are no stable interface. Stripe's format:
    `t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=<hex>]`.
    """
    if not signature or not signature.strip():
        raise WebhookRejected("missing Stripe-Signature header")
    if not signature.isascii():
        raise WebhookRejected("non-ASCII Stripe-Signature header")
    items = [item.partition("=") for item in signature.split(",")]
    timestamps = [value for key, _, value in items if key == "t"]
    if (
        not signature.isprintable()
        or any(not key or not separator for key, separator, _ in items)
        or len(timestamps) != 1
        or not _TIMESTAMP.fullmatch(timestamps[0])
    ):
        raise WebhookRejected("malformed Stripe-Signature header")
    if not any(key == "v1" and value for key, _, value in items):
        raise WebhookRejected("no v1 signature in Stripe-Signature header")
    # Only old timestamps are refused, as the stripe library does: clocks drift both ways.
    if int(timestamps[0]) < now - TOLERANCE_SECONDS:
        raise WebhookRejected("signature timestamp too old")


def body_text(body: bytes) -> str:
    """A webhook body as text; WebhookRejected when it is not UTF-8 (Stripe's and Linq's)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected("body is not UTF-8") from None


def load_json(text: str) -> Any:
    """A verified webhook body parsed; WebhookRejected when it is not JSON, or nested so deeply
    that the parser gives up (a 400, never a 500)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise WebhookRejected("body is nested too deeply") from None
    except ValueError:
        raise WebhookRejected("body is not JSON") from None


def parse_webhook(
    body: bytes, signature: str | None, secrets: Mapping[EndpointKind, Signing]
) -> Message | None:
    """The failed payment or the payment in a webhook body, or None for another event type.

    The body is verified with the signing secret of each kind of endpoint the ingest hears from
    (`secrets`), and its event taken only when the secret of the kind Stripe sends it through
    verifies it (a connected account's event the Connect endpoint's, the platform's own the
    account endpoint's): one secret's leak cannot forge the other kind's events. NotSetUp when
    only a secret not set up yet could: Stripe retries the 503 until it is in place.
    """
    check_signature_header(signature, time.time())
    payload = body_text(body)
    verified = {
        kind
        for kind, signing in secrets.items()
        if signing.secret is not None and _signed_with(payload, signature, signing.secret)
    }
    pending = {kind: signing for kind, signing in secrets.items() if signing.secret is None}
    if not verified:
        if pending:
            raise NotSetUp(tuple(pending.values()))
        raise WebhookRejected("signature does not match")
    event = load_json(payload)
    if not isinstance(event, dict):
        raise WebhookRejected("body is not a JSON object")
    kind = EndpointKind.sending(event_account(event))
    if kind in pending:
        raise NotSetUp((pending[kind],))
    if kind not in verified:
        raise WebhookRejected(kind.crossed)
    return from_stripe_event(event)


def _signed_with(payload: str, signature: str | None, secret: str) -> bool:
    # Verified against the exact raw bytes: re-serialised JSON would not match. The age was
    # checked already, so the library is asked about the signature alone; with the header's
    # shape checked, a mismatch is the only way it can fail.
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret)
    except stripe.SignatureVerificationError:
        return False
    return True
