"""The ingest function: verify, publish once confirmed, refuse everything else clearly."""

import base64
import json
import time

import pytest
import stripe

from standins import builders
from standins.emulator import free_port
from tests.harness import WEBHOOK_SECRET, log_lines


def failed_event():
    invoice = builders.invoice("cus_Ingest1", id="in_Ingest1", attempt_count=2)
    return builders.payment_failed_event(invoice, id="evt_Ingest1", created=1795600000)


def test_failed_payment_is_published_then_acknowledged(pipeline):
    answer = pipeline.post_webhook(failed_event())
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "queued")
    [message] = pipeline.published()
    assert message["attributes"] == {"event_id": "evt_Ingest1", "invoice_id": "in_Ingest1"}
    assert json.loads(base64.b64decode(message["data"])) == {
        "attempt_count": 2,
        "customer_id": "cus_Ingest1",
        "event_id": "evt_Ingest1",
        "invoice_id": "in_Ingest1",
        "livemode": False,
    }


def test_queued_line_names_the_event_but_holds_no_body(pipeline):
    pipeline.capsys.readouterr()
    pipeline.post_webhook(failed_event())
    [line] = log_lines(pipeline.capsys.readouterr().out)
    assert (line["severity"], line["message"], line["event_id"], line["invoice_id"]) == (
        "INFO",
        "queued",
        "evt_Ingest1",
        "in_Ingest1",
    )
    assert "data" not in line
    assert "jane@example.com" not in json.dumps(line)


def test_thin_event_is_published(pipeline):
    answer = pipeline.post_webhook(builders.thin_payment_failed_event("in_Thin1", id="evt_Thin1"))
    assert answer.status_code == 200
    [message] = pipeline.published()
    assert message["attributes"]["invoice_id"] == "in_Thin1"


def test_other_event_types_are_acknowledged_and_not_published(pipeline):
    answer = pipeline.post_webhook({"id": "evt_2", "type": "customer.updated", "data": {}})
    assert answer.status_code == 200
    assert pipeline.published() == []


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"secret": "whsec_forged"}, "signature does not match"),
        ({"timestamp": int(time.time()) - 301}, "signature timestamp too old"),
    ],
)
def test_forged_or_stale_webhook_is_refused_and_not_published(pipeline, kwargs, reason):
    answer = pipeline.post_webhook(failed_event(), **kwargs)
    assert (answer.status_code, answer.get_data(as_text=True)) == (400, f"rejected: {reason}")
    assert pipeline.published() == []


def test_missing_signature_is_refused(pipeline):
    answer = pipeline.ingest.post("/", data=json.dumps(failed_event()))
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        400,
        "rejected: missing Stripe-Signature header",
    )
    assert pipeline.published() == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_only_post_is_allowed(pipeline, method):
    answer = pipeline.ingest.open("/", method=method)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert pipeline.published() == []


def test_oversized_body_is_refused_before_verification(pipeline):
    answer = pipeline.ingest.post("/", data=b"x" * (1024 * 1024 + 1))
    assert answer.status_code == 413
    assert pipeline.published() == []


def test_pubsub_unavailable_answers_503_within_seconds(pipeline):
    pipeline.configure(PUBSUB_EMULATOR_HOST=f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(failed_event())
    elapsed = time.monotonic() - started
    assert answer.status_code == 503
    [line] = log_lines(pipeline.capsys.readouterr().out)
    assert (line["severity"], line["event_id"]) == ("ERROR", "evt_Ingest1")
    # A hang guard, not a speed check: unbounded, the client would retry for 600 s.
    assert elapsed < 30, elapsed


def test_missing_configuration_is_a_500_naming_the_variable(pipeline):
    pipeline.configure(STRIPE_WEBHOOK_SECRET=None)
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(failed_event())
    assert answer.status_code == 500
    [line] = log_lines(pipeline.capsys.readouterr().out)
    assert line["message"].startswith("configuration error: STRIPE_WEBHOOK_SECRET is required")


def test_non_ascii_signature_header_is_a_400_not_a_500(pipeline):
    # The stripe library's comparison raises TypeError on a non-ASCII signature.
    answer = pipeline.ingest.post(
        "/", data=json.dumps(failed_event()), headers={"Stripe-Signature": "t=1,v1=\xe9"}
    )
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        400,
        "rejected: non-ASCII Stripe-Signature header",
    )
    assert pipeline.published() == []


def test_correctly_signed_deeply_nested_body_is_a_400_not_a_500(pipeline):
    answer = pipeline.post_webhook({"id": "evt_deep", "data": json.loads("[" * 100 + "]" * 100)})
    assert answer.status_code == 200  # deep but readable: not a failed payment, ignored
    body = '{"a":' * 5000 + "1" + "}" * 5000
    header = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET)
    answer = pipeline.ingest.post("/", data=body, headers={"Stripe-Signature": header})
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        400,
        "rejected: body is nested too deeply",
    )
    assert pipeline.published() == []


@pytest.mark.parametrize(
    "placeholder",
    [
        "whsec_pending",
        "not-set-yet",
        "whsec_" + "0" * 32,
        # Letters, digits and both cases, typed by hand.
        "whsec_" + "YourSigningSecretGoesHere1234",
        # Random, but published: the Standard Webhooks test vector.
        "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ],
)
def test_placeholder_secret_verifies_nothing_and_asks_stripe_to_retry(pipeline, placeholder):
    pipeline.configure(STRIPE_WEBHOOK_SECRET=placeholder)
    pipeline.capsys.readouterr()
    # Signed with the placeholder itself: what anyone who read the README could forge.
    answer = pipeline.post_webhook(failed_event(), secret=placeholder)
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        503,
        "endpoint not set up yet, retry later",
    )
    assert pipeline.published() == []
    output = pipeline.capsys.readouterr().out
    [line] = log_lines(output)
    assert line["severity"] == "WARNING"
    assert "STRIPE_WEBHOOK_SECRET is not the endpoint's signing secret yet" in line["message"]
    assert placeholder not in output


def test_unsigned_webhook_is_also_503_while_not_set_up(pipeline):
    pipeline.configure(STRIPE_WEBHOOK_SECRET="not-set-yet")
    answer = pipeline.ingest.post("/", data=json.dumps(failed_event()))
    assert answer.status_code == 503
    assert pipeline.published() == []


@pytest.mark.parametrize(
    "known",
    [
        # The Standard Webhooks test vector, which the Linq tests keep; Svix's documented example.
        "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        # The base64 of a passphrase.
        "whsec_" + base64.b64encode(b"linq-production-signing-secret-1").decode(),
    ],
)
def test_a_linq_secret_anyone_can_know_verifies_nothing(pipeline, known):
    pipeline.configure(LINQ_WEBHOOK_SECRET=known)
    pipeline.capsys.readouterr()
    # Signed with that very value: what anyone who read it could forge.
    answer = pipeline.post_linq({"event_type": "message.delivered", "data": {}}, secret=known)
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        503,
        "endpoint not set up yet, retry later",
    )
    assert pipeline.emulator.pull(f"{pipeline.linq_topic}-pull") == []
    output = pipeline.capsys.readouterr().out
    [line] = log_lines(output)
    assert line["severity"] == "WARNING"
    assert "LINQ_WEBHOOK_SECRET is not the subscription's signing secret yet" in line["message"]
    assert known.removeprefix("whsec_") not in output


# --- connected accounts (Stripe Connect) --------------------------------------------------------

CONNECTED = "acct_1Connected"


def connected_events(account: str) -> dict[str, dict]:
    """A connected account's failed payment as each event kind names it, and its payment after
    a failure (an invoice.paid the ingest would carry)."""
    invoice = builders.invoice("cus_Ingest1", id="in_Ingest1", attempt_count=2)
    paid = builders.paid(invoice, at=invoice["status_transitions"]["finalized_at"] + 3600)
    return {
        "snapshot": {**failed_event(), "account": account},
        "thin": {
            **builders.thin_payment_failed_event("in_Ingest1", id="evt_Thin1"),
            "context": account,
        },
        "paid": {**builders.invoice_paid_event(paid, id="evt_Paid1"), "account": account},
    }


@pytest.mark.parametrize("kind", ["snapshot", "thin", "paid"])
@pytest.mark.parametrize("enabled", [None, "", "acct_1Another", "acct_1Another, acct_1Third"])
def test_a_connected_accounts_event_is_acknowledged_and_never_queued_unless_enabled(
    pipeline, kind, enabled
):
    pipeline.configure(STRIPE_CONNECT_ACCOUNTS=enabled)
    event = connected_events(CONNECTED)[kind]
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(event)
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        200,
        "ignored: connected account not enabled",
    )
    assert pipeline.published() == []
    [line] = log_lines(pipeline.capsys.readouterr().out)
    assert line == {
        "severity": "INFO",
        "message": "skipped: connected account not enabled",
        "invoice_id": "in_Ingest1",
        **({"customer_id": "cus_Ingest1"} if kind != "thin" else {}),
        **({"attempt": 2} if kind == "snapshot" else {}),
        "action": "skipped:account_not_enabled",
        "reason": "acct_1Connected is not in STRIPE_CONNECT_ACCOUNTS",
        "event_id": event["id"],
        "account": CONNECTED,
    }


@pytest.mark.parametrize("kind", ["snapshot", "thin", "paid"])
@pytest.mark.parametrize("enabled", ["*", CONNECTED, f" acct_1Another , {CONNECTED} "])
def test_an_enabled_connected_accounts_event_is_queued_with_its_account(pipeline, kind, enabled):
    pipeline.configure(STRIPE_CONNECT_ACCOUNTS=enabled)
    answer = pipeline.post_webhook(connected_events(CONNECTED)[kind])
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "queued")
    [message] = pipeline.published()
    assert message["attributes"]["account"] == CONNECTED
    assert json.loads(base64.b64decode(message["data"]))["account"] == CONNECTED


def test_the_platforms_own_events_are_queued_whatever_accounts_are_enabled(pipeline):
    pipeline.configure(STRIPE_CONNECT_ACCOUNTS="acct_1Another")
    assert pipeline.post_webhook(failed_event()).status_code == 200
    [message] = pipeline.published()
    assert "account" not in message["attributes"]


def test_a_connected_accounts_renewal_paid_at_once_costs_no_line(pipeline):
    invoice = builders.invoice("cus_Ingest1", id="in_Ingest1", attempt_count=1)
    event = {**builders.invoice_paid_event(builders.paid(invoice)), "account": CONNECTED}
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(event)
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        200,
        "ignored: paid at its first attempt",
    )
    assert log_lines(pipeline.capsys.readouterr().out) == []


@pytest.mark.parametrize("value", ["acct_1A;acct_1B", "acct_1A,,acct_1B", "all", "acct_1A *"])
def test_a_malformed_account_list_is_a_500_naming_the_variable(pipeline, value):
    pipeline.configure(STRIPE_CONNECT_ACCOUNTS=value)
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(failed_event())
    assert answer.status_code == 500
    [line] = log_lines(pipeline.capsys.readouterr().out)
    assert line["severity"] == "ERROR"
    assert line["message"].startswith("configuration error: STRIPE_CONNECT_ACCOUNTS must be *")
    assert pipeline.published() == []
