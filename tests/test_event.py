"""The message between the functions: from Stripe events, through Pub/Sub and back."""

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from shared.core.errors import MalformedEventError, MalformedMessageError
from shared.core.event import FailedPayment, from_pubsub, from_stripe_event
from standins import builders


def pubsub_data(payload: bytes) -> dict:
    return {"message": {"data": base64.b64encode(payload).decode(), "attributes": {}}}


def test_snapshot_event_becomes_a_compact_message():
    invoice = builders.invoice("cus_Jane", id="in_Test1", attempt_count=3)
    event = builders.payment_failed_event(invoice, id="evt_Test1", created=1_795_600_000)
    payment = from_stripe_event(event)
    assert payment == FailedPayment(
        event_id="evt_Test1",
        invoice_id="in_Test1",
        customer_id="cus_Jane",
        attempt_count=3,
        livemode=False,
        failed_at=1_795_600_000,
        event_type="invoice.payment_failed",
    )
    assert payment.attributes() == {
        "event_id": "evt_Test1",
        "invoice_id": "in_Test1",
        "event_type": "invoice.payment_failed",
    }
    assert payment.to_json() == (
        b'{"attempt_count":3,"customer_id":"cus_Jane","event_id":"evt_Test1",'
        b'"event_type":"invoice.payment_failed","failed_at":1795600000,"invoice_id":"in_Test1",'
        b'"livemode":false}'
    )


def test_a_3d_secure_event_is_the_same_failed_payment_with_its_own_type():
    invoice = builders.invoice("cus_Jane", id="in_Test1", attempt_count=2)
    failed = builders.payment_failed_event(invoice, id="evt_Failed")
    action = builders.payment_failed_event(
        invoice, id="evt_Action", type="invoice.payment_action_required"
    )
    one, other = from_stripe_event(failed), from_stripe_event(action)
    assert (other.event_id, other.event_type) == ("evt_Action", "invoice.payment_action_required")
    # Everything that names the failed payment (and so its ledger entry) is the same.
    assert replace(other, event_id="evt_Failed", event_type=one.event_type) == one
    assert other.attributes()["event_type"] == "invoice.payment_action_required"
    assert from_pubsub(pubsub_data(other.to_json())) == other


@pytest.mark.parametrize(
    ("kind", "read"),
    [
        ("invoice.payment_failed", "invoice.payment_failed"),
        ("invoice.payment_action_required", "invoice.payment_action_required"),
        ("v1.invoice.payment_failed", "v1.invoice.payment_failed"),
        # Not a type that reports a failed payment: a message never says it came from one.
        ("invoice.paid", None),
        ("anything", None),
        (7, None),
    ],
)
def test_a_message_says_the_event_type_that_brought_it_and_nothing_else(kind, read):
    payload = {"event_id": "evt_1", "invoice_id": "in_1", "event_type": kind}
    data = pubsub_data(json.dumps(payload).encode())
    if kind == "invoice.paid":
        # The type of a paid invoice makes it a payment, not a failed one.
        assert not isinstance(from_pubsub(data), FailedPayment)
        return
    assert from_pubsub(data).event_type == read


def test_message_bytes_are_exactly_this():
    payment = FailedPayment("evt_1", "in_1", "cus_1", 2, False)
    assert payment.to_json() == (
        b'{"attempt_count":2,"customer_id":"cus_1",'
        b'"event_id":"evt_1","invoice_id":"in_1","livemode":false}'
    )


def test_an_event_of_a_connected_account_carries_the_account():
    invoice = builders.invoice("cus_1", id="in_1")
    event = {**builders.payment_failed_event(invoice), "account": "acct_1Connected"}
    payment = from_stripe_event(event)
    assert payment is not None
    assert payment.account == "acct_1Connected"
    assert payment.attributes()["account"] == "acct_1Connected"
    thin = {**builders.thin_payment_failed_event("in_1"), "context": "acct_1Connected"}
    assert from_stripe_event(thin).account == "acct_1Connected"
    action = {
        **builders.payment_failed_event(invoice, type="invoice.payment_action_required"),
        "account": "acct_1Connected",
    }
    assert from_stripe_event(action).account == "acct_1Connected"
    assert from_stripe_event({**event, "account": "not an account"}).account is None


def test_a_message_queued_by_the_previous_version_is_still_read():
    data = base64.b64encode(
        b'{"attempt_count":2,"created":1795600000,"customer_id":"cus_1",'
        b'"event_id":"evt_1","invoice_id":"in_1","livemode":false}'
    ).decode()
    assert from_pubsub({"message": {"data": data}}) == FailedPayment(
        "evt_1", "in_1", "cus_1", 2, False
    )


def test_thin_event_carries_the_invoice_id_only():
    created = datetime(2026, 11, 26, 12, 0, 5, 250_000, tzinfo=UTC)
    event = builders.thin_payment_failed_event("in_Thin1", id="evt_Thin1", created=created)
    payment = from_stripe_event(event)
    assert payment is not None
    assert (payment.event_id, payment.invoice_id) == ("evt_Thin1", "in_Thin1")
    assert payment.customer_id is None
    assert payment.attempt_count is None
    # Its `created` is an ISO timestamp: the surge guard counts it by the second.
    assert payment.failed_at == int(datetime(2026, 11, 26, 12, 0, 5, tzinfo=UTC).timestamp())
    unreadable = {**event, "created": "yesterday"}
    assert from_stripe_event(unreadable).failed_at is None


def test_other_event_types_are_neither_failed_payments_nor_payments():
    for kind in ("invoice.created", "invoice.payment_succeeded", "customer.updated"):
        assert from_stripe_event({"id": "evt_1", "type": kind, "data": {}}) is None


@pytest.mark.parametrize("kind", ["invoice.payment_failed", "invoice.payment_action_required"])
def test_failed_payment_event_without_invoice_is_an_error(kind):
    with pytest.raises(MalformedEventError, match="without an invoice id"):
        from_stripe_event({"id": "evt_1", "type": kind, "data": {}})


def test_failed_payment_event_without_its_own_id_is_an_error():
    event = {**builders.payment_failed_event(builders.invoice("cus_1", id="in_1")), "id": ""}
    with pytest.raises(MalformedEventError, match="without an id"):
        from_stripe_event(event)


def test_round_trip_through_pubsub():
    payment = FailedPayment("evt_1", "in_1", None, None, True, None)
    assert from_pubsub(pubsub_data(payment.to_json())) == payment
    reported = FailedPayment("evt_1", "in_1", "cus_1", 2, False, "acct_1A", failed_at=1_795_600_000)
    assert from_pubsub(pubsub_data(reported.to_json())) == reported


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "no message.data"),
        ({"message": {}}, "no message.data"),
        ({"message": {"data": "***not base64***"}}, "not base64"),
        (pubsub_data(b"not json"), "not JSON"),
        (pubsub_data(b"[1, 2]"), "not a JSON object"),
        # Nested past the parser's recursion limit: malformed too, never a RecursionError that
        # Pub/Sub would redeliver until it dead-letters.
        (pubsub_data(b"[" * 100_000 + b"]" * 100_000), "not JSON"),
        (pubsub_data(json.dumps({"event_id": "evt_1"}).encode()), "no invoice_id"),
        (pubsub_data(json.dumps({"invoice_id": "in_1"}).encode()), "no event_id"),
    ],
)
def test_malformed_messages_say_what_is_wrong(data, reason):
    with pytest.raises(MalformedMessageError, match=reason):
        from_pubsub(data)
