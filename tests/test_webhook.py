"""Webhook verification: only an authentic, fresh, readable Stripe event gets through."""

import json
import time

import pytest
import stripe

from shared.adapters.webhook import check_signature_header, parse_webhook
from shared.core.accounts import EndpointKind
from shared.core.errors import DunningError, MalformedEventError, NotSetUp, WebhookRejected
from shared.core.signing_secret import Signing
from standins import builders
from standins.signing_secrets import new_endpoint_secret

SECRET = "whsec_test_secret"
SECRETS = {EndpointKind.ACCOUNT: Signing("STRIPE_WEBHOOK_SECRET", SECRET)}


def signed(event: dict, secret: str = SECRET, timestamp: int | None = None) -> tuple[bytes, str]:
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(
        body, secret, timestamp=timestamp or int(time.time())
    )
    return body.encode(), header


def event() -> dict:
    return builders.payment_failed_event(builders.invoice("cus_1", id="in_1"), id="evt_1")


def test_valid_signature_gives_the_failed_payment():
    payment = parse_webhook(*signed(event()), SECRETS)
    assert payment is not None
    assert (payment.event_id, payment.invoice_id, payment.customer_id) == ("evt_1", "in_1", "cus_1")


def test_known_answer_signature_header():
    # Pins the scheme: HMAC-SHA256 of "t.body", keyed with the whole whsec_ string, hex encoded.
    assert stripe.WebhookSignature.generate_signature_header(
        '{"id":"evt_1"}', SECRET, timestamp=1700000000
    ) == ("t=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a")


def test_thin_event_is_accepted():
    body, header = signed(builders.thin_payment_failed_event("in_thin", id="evt_thin"))
    payment = parse_webhook(body, header, SECRETS)
    assert payment is not None
    assert payment.invoice_id == "in_thin"


def test_other_event_types_are_ignored():
    assert parse_webhook(*signed({"id": "evt_2", "type": "invoice.created"}), SECRETS) is None


def test_an_invoice_paid_without_its_invoice_is_rejected():
    with pytest.raises(WebhookRejected, match=r"invoice\.paid event without an invoice id"):
        parse_webhook(*signed({"id": "evt_2", "type": "invoice.paid"}), SECRETS)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda body, header: (body, None), "missing Stripe-Signature header"),
        (lambda body, header: (body, ""), "missing Stripe-Signature header"),
        (lambda body, header: (body, "garbage"), "malformed Stripe-Signature header"),
        (lambda body, header: (body, header.split(",")[0]), "no v1 signature"),
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
        parse_webhook(body, header, SECRETS)


def test_wrong_secret_is_rejected():
    with pytest.raises(WebhookRejected, match="signature does not match"):
        parse_webhook(*signed(event(), secret="whsec_other"), SECRETS)


def test_stale_signature_is_rejected():
    body, header = signed(event(), timestamp=int(time.time()) - 301)
    with pytest.raises(WebhookRejected, match="too old"):
        parse_webhook(body, header, SECRETS)


def test_signed_body_that_is_not_json_is_rejected():
    header = stripe.WebhookSignature.generate_signature_header("not json", SECRET)
    with pytest.raises(WebhookRejected, match="not JSON"):
        parse_webhook(b"not json", header, SECRETS)


def test_signed_payment_failed_event_without_invoice_is_rejected():
    body, header = signed({"id": "evt_3", "type": "invoice.payment_failed", "data": {}})
    with pytest.raises(WebhookRejected, match="without an invoice id"):
        parse_webhook(body, header, SECRETS)


NOW = 1_800_000_000
FRESH = f"t={NOW},v1={'a' * 64}"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing Stripe-Signature header"),
        (" ", "missing Stripe-Signature header"),
        # The stripe library's own comparison raises TypeError on these.
        ("t=1,v1=\xe9", "non-ASCII Stripe-Signature header"),
        (f"t={NOW},v1=\u0430{'a' * 63}", "non-ASCII Stripe-Signature header"),
        (f"t={NOW},v1={'a' * 63}\x00", "malformed Stripe-Signature header"),
        (f"t={NOW}\x7f,v1={'a' * 64}", "malformed Stripe-Signature header"),
        (f"v1={'a' * 64}", "malformed Stripe-Signature header"),
        (f"t={NOW},t={NOW},v1={'a' * 64}", "malformed Stripe-Signature header"),
        (f"t=+{NOW},v1={'a' * 64}", "malformed Stripe-Signature header"),
        (f"t={'9' * 5000},v1={'a' * 64}", "malformed Stripe-Signature header"),
        (f"t={NOW},garbage,v1={'a' * 64}", "malformed Stripe-Signature header"),
        (f"t={NOW},v0={'a' * 64}", "no v1 signature in Stripe-Signature header"),
        (f"t={NOW},v1=", "no v1 signature in Stripe-Signature header"),
        (f"t={NOW - 301},v1={'a' * 64}", "signature timestamp too old"),
    ],
)
def test_signature_header_is_classified_before_verifying(header, reason):
    with pytest.raises(WebhookRejected) as caught:
        check_signature_header(header, NOW)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    "header", [FRESH, f"t={NOW + 3600},v1={'a' * 64}", f"t={NOW},v1=x,v1={'b' * 64},v0=c"]
)
def test_well_formed_fresh_header_goes_on_to_verification(header):
    assert check_signature_header(header, NOW) is None


def test_non_ascii_signature_is_rejected_not_crashed():
    body, _ = signed(event())
    with pytest.raises(WebhookRejected, match=r"^non-ASCII Stripe-Signature header$"):
        parse_webhook(body, "t=1,v1=\xe9", SECRETS)


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_correctly_signed_deeply_nested_body_is_rejected(opening):
    closing = "]" if opening == "[" else "}"
    body = opening * 5000 + "1" + closing * 5000
    header = stripe.WebhookSignature.generate_signature_header(body, SECRET)
    with pytest.raises(WebhookRejected, match=r"^body is nested too deeply$"):
        parse_webhook(body.encode(), header, SECRETS)


def test_webhook_errors_belong_to_the_project_error_tree():
    body, header = signed({"id": "evt_3", "type": "invoice.payment_failed", "data": {}})
    with pytest.raises(MalformedEventError) as caught:
        parse_webhook(body, header, SECRETS)
    assert isinstance(caught.value, WebhookRejected)
    assert isinstance(caught.value, DunningError)


# --- the platform's two kinds of endpoint (Stripe Connect) ---------------------------------------

ACCOUNT_SECRET, CONNECT_SECRET, UNKNOWN = (new_endpoint_secret() for _ in range(3))
CONNECTED = "acct_1Connected"
PENDING = None  # a secret not set up yet (a placeholder)
PLATFORM_CROSSED = "the platform's own event, signed with the Connect endpoint's secret"
CONNECT_CROSSED = "a connected account's event, signed with the platform endpoint's secret"
MISMATCH = "signature does not match"


def events(account: str | None) -> dict[str, dict]:
    """One event of each shape, the platform's own (None) or `account`'s."""
    shapes = {
        "snapshot": event(),
        "thin": builders.thin_payment_failed_event("in_1", id="evt_1"),
        "other type": {"id": "evt_2", "type": "customer.updated", "data": {}},
    }
    if account is None:
        return shapes
    named = {"snapshot": "account", "thin": "context", "other type": "account"}
    return {shape: {**found, named[shape]: account} for shape, found in shapes.items()}


def holding(account: str | None, connect: str | bool | None = False) -> dict:
    """The ingest's secrets: the account endpoint's, and the Connect endpoint's (False: the
    ingest has none; None: not set up yet)."""
    secrets = {EndpointKind.ACCOUNT: Signing("STRIPE_WEBHOOK_SECRET", account, "placeholder")}
    if connect is not False:
        variable = "STRIPE_CONNECT_WEBHOOK_SECRET"
        secrets[EndpointKind.CONNECT] = Signing(variable, connect, "placeholder")
    return secrets


TAKEN = ("taken", None)
TAKEN_FOR_CONNECTED = ("taken", CONNECTED)
WAITS = ("503", None)  # NotSetUp: Stripe retries until the secret is in place


def refused(reason: str) -> tuple[str, str]:
    return ("400", reason)


@pytest.mark.parametrize("shape", ["snapshot", "thin", "other type"])
@pytest.mark.parametrize(
    ("secrets", "account", "signed_with", "outcome"),
    [
        # Each kind's event, signed with its own kind's secret: taken.
        (holding(ACCOUNT_SECRET, CONNECT_SECRET), None, ACCOUNT_SECRET, TAKEN),
        (holding(ACCOUNT_SECRET, CONNECT_SECRET), CONNECTED, CONNECT_SECRET, TAKEN_FOR_CONNECTED),
        (holding(ACCOUNT_SECRET), None, ACCOUNT_SECRET, TAKEN),
        # Signed with the other kind's secret: whoever holds one cannot forge the other kind.
        (
            holding(ACCOUNT_SECRET, CONNECT_SECRET),
            CONNECTED,
            ACCOUNT_SECRET,
            refused(CONNECT_CROSSED),
        ),
        (holding(ACCOUNT_SECRET, CONNECT_SECRET), None, CONNECT_SECRET, refused(PLATFORM_CROSSED)),
        (holding(ACCOUNT_SECRET), CONNECTED, ACCOUNT_SECRET, refused(CONNECT_CROSSED)),
        # Neither secret: forged.
        (holding(ACCOUNT_SECRET, CONNECT_SECRET), CONNECTED, UNKNOWN, refused(MISMATCH)),
        (holding(ACCOUNT_SECRET, CONNECT_SECRET), None, UNKNOWN, refused(MISMATCH)),
        # The Connect secret not set up yet: only connected accounts' events wait.
        (holding(ACCOUNT_SECRET, PENDING), None, ACCOUNT_SECRET, TAKEN),
        (holding(ACCOUNT_SECRET, PENDING), CONNECTED, CONNECT_SECRET, WAITS),
        (holding(ACCOUNT_SECRET, PENDING), CONNECTED, ACCOUNT_SECRET, WAITS),
        (holding(ACCOUNT_SECRET, PENDING), None, UNKNOWN, WAITS),
        # The platform's secret not set up yet: only its own events wait.
        (holding(PENDING, CONNECT_SECRET), CONNECTED, CONNECT_SECRET, TAKEN_FOR_CONNECTED),
        (holding(PENDING, CONNECT_SECRET), None, ACCOUNT_SECRET, WAITS),
        (holding(PENDING, CONNECT_SECRET), None, CONNECT_SECRET, WAITS),
        # One secret for both (`stripe listen` forwards both kinds signed with its own): taken.
        (holding(ACCOUNT_SECRET, ACCOUNT_SECRET), CONNECTED, ACCOUNT_SECRET, TAKEN_FOR_CONNECTED),
        (holding(ACCOUNT_SECRET, ACCOUNT_SECRET), None, ACCOUNT_SECRET, TAKEN),
    ],
)
def test_an_event_is_taken_only_with_the_secret_of_the_kind_of_endpoint_stripe_sends_it_to(
    shape, secrets, account, signed_with, outcome
):
    body, header = signed(events(account)[shape], signed_with)
    answer, detail = outcome
    if answer == "503":
        with pytest.raises(NotSetUp) as waiting:
            parse_webhook(body, header, secrets)
        # The secrets not set up are named, for the 503's warning.
        assert waiting.value.signings == tuple(s for s in secrets.values() if s.secret is None)
    elif answer == "400":
        with pytest.raises(WebhookRejected) as caught:
            parse_webhook(body, header, secrets)
        assert str(caught.value) == detail
    else:
        payment = parse_webhook(body, header, secrets)
        if shape == "other type":
            assert payment is None
        else:
            assert payment is not None
            assert payment.account == detail
