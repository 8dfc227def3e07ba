"""Signed webhook -> ingest -> Pub/Sub (emulator) -> recover: the right action and Linq calls."""

import pytest

from standins import builders
from tests.harness import SENDER, customer_calls

PHONE = "+14155550100"


def event_for(pipeline, customer=None, **invoice):
    data = pipeline.customer_with_invoice(customer, **invoice)
    return data, builders.payment_failed_event(data)


def texts(linq_api):
    return [m["parts"][0]["value"] for m in linq_api.messages() if m["endpoint"] == "chats"]


def links(linq_api):
    return [m["parts"][0]["value"] for m in linq_api.messages() if m["endpoint"] == "messages"]


def test_sent_with_name(pipeline, linq_api):
    invoice, event = event_for(pipeline)
    [result] = pipeline.deliver(event)
    assert (result["action"], result["event_id"]) == ("sent", event["id"])
    assert texts(linq_api) == [
        "Hi Jane, your payment for Pro plan didn't go through. You can update your card and "
        "retry with the link below. Reply STOP to opt out."
    ]
    assert links(linq_api) == [invoice["hosted_invoice_url"]]
    assert {m["from"] for m in linq_api.messages()} == {SENDER}


def test_sent_without_name(pipeline, linq_api):
    _, event = event_for(pipeline, builders.customer(name=""))
    assert [r["action"] for r in pipeline.deliver(event)] == ["sent"]
    assert texts(linq_api)[0].startswith("Hi there,")


def test_sent_to_a_number_written_without_country_code(pipeline, linq_api):
    _, event = event_for(pipeline, builders.customer(phone="(415) 555-0100"))
    assert [r["action"] for r in pipeline.deliver(event)] == ["sent"]
    assert linq_api.messages()[0]["to"] == [PHONE]


@pytest.mark.parametrize(
    ("customer", "action"),
    [
        (builders.customer(phone=None), "skipped:no_phone"),
        (builders.customer(deleted=True), "skipped:no_phone"),
        (builders.customer(phone="not a phone"), "skipped:no_phone"),
    ],
)
def test_no_usable_phone(pipeline, linq_api, customer, action):
    _, event = event_for(pipeline, customer)
    assert [r["action"] for r in pipeline.deliver(event)] == [action]
    assert customer_calls(linq_api) == []


@pytest.mark.parametrize(
    "scenario",
    [
        {"capabilities": {PHONE: {"imessage": False, "selected_service": None}}},
        {"refused": [PHONE]},
    ],
)
def test_unreachable(pipeline, linq_api, scenario):
    linq_api.load(scenario)
    _, event = event_for(pipeline)
    assert [r["action"] for r in pipeline.deliver(event)] == ["skipped:unreachable"]
    assert linq_api.messages() == []


def test_opted_out(pipeline, linq_api):
    linq_api.inbound(PHONE, "STOP")
    _, event = event_for(pipeline)
    assert [r["action"] for r in pipeline.deliver(event)] == ["skipped:opted_out"]
    assert linq_api.messages() == []


def test_paid_before_the_text_went_out(pipeline, linq_api, stripe_api):
    invoice, event = event_for(pipeline)
    stripe_api.update_invoice(invoice["id"], {"status": "paid", "amount_remaining": 0})
    assert [r["action"] for r in pipeline.deliver(event)] == ["skipped:not_open"]
    assert customer_calls(linq_api) == []


def test_open_invoice_without_link_fails(pipeline, linq_api):
    _, event = event_for(pipeline, hosted_invoice_url=None)
    assert [r["action"] for r in pipeline.deliver(event)] == ["failed"]
    assert customer_calls(linq_api) == []


def test_invoice_unknown_to_stripe_fails(pipeline, linq_api):
    event = builders.payment_failed_event(builders.invoice("cus_ghost"))
    [result] = pipeline.deliver(event)
    assert result["action"] == "failed"
    assert "No such invoice" in result["reason"]


def test_same_event_delivered_twice_texts_once(pipeline, linq_api):
    _, event = event_for(pipeline)
    pipeline.deliver(event)
    pipeline.deliver(event)
    assert len(texts(linq_api)) == 1
    assert len(links(linq_api)) == 1


def test_thin_event_goes_all_the_way(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice(attempt_count=3)
    [result] = pipeline.deliver(builders.thin_payment_failed_event(invoice["id"]))
    assert result["action"] == "sent"
    assert linq_api.messages()[0]["idempotency_key"] == f"{invoice['id']}-3-text"
