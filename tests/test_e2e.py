"""End to end over real processes: Pub/Sub emulator push, functions-framework, stand-ins."""

import concurrent.futures
import time

import pytest

from standins import builders
from standins.stack import json_lines
from tests.harness import customer_calls
from tests.stack_support import (
    clean_run,
    messages_to,
    parts_sent_to,
    results_for,
    running_stack,
    store,
    wait_for_result,
)


@pytest.fixture(scope="module")
def stack():
    with running_stack(min_backoff_s=0.5, max_backoff_s=2.0, slack=True) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(stack):
    with clean_run(stack):
        yield


def duplicates_of(stack, event):
    return [
        line
        for line in json_lines(stack.log("recover"))
        if line.get("message") == "duplicate delivery ignored" and line["event_id"] == event["id"]
    ]


@pytest.mark.parametrize(
    ("customer", "prepare", "action"),
    [
        ({"phone": "+14155550101"}, None, "sent"),
        ({"name": None, "phone": "+14155550102"}, None, "sent"),
        ({"phone": "(415) 555-0103"}, None, "sent"),
        ({"phone": None}, None, "skipped:no_phone"),
        (
            {"phone": "+14155550104"},
            lambda s: s.linq.load(
                {"capabilities": {"+14155550104": {"imessage": False, "selected_service": None}}}
            ),
            "skipped:unreachable",
        ),
        (
            {"phone": "+14155550105"},
            lambda s: s.linq.inbound("+14155550105", "STOP"),
            "skipped:opted_out",
        ),
        ({"phone": "+14155550106"}, lambda s: s.linq.load({"blocked": ["+14155550106"]}), "failed"),
    ],
)
def test_each_action_through_the_emulator(stack, customer, prepare, action):
    if prepare:
        prepare(stack)
    invoice = store(stack, **customer)
    assert stack.post_webhook(builders.payment_failed_event(invoice)).status_code == 200
    [result] = wait_for_result(stack, invoice)
    assert result["action"] == action
    texted = [m for m in stack.linq.messages() if m["endpoint"] == "chats"]
    assert len(texted) == (1 if action == "sent" else 0)
    [note] = stack.slack.notes()
    assert action in note["text"]


def test_paid_invoice_is_skipped_through_the_emulator(stack):
    invoice = store(stack, phone="+14155550107")
    stack.stripe.update_invoice(invoice["id"], {"status": "paid", "amount_remaining": 0})
    stack.post_webhook(builders.payment_failed_event(invoice))
    assert [r["action"] for r in wait_for_result(stack, invoice)] == ["skipped:not_open"]
    assert customer_calls(stack.linq) == []


def test_invoice_of_a_canceled_subscription_is_skipped_through_the_emulator(stack):
    customer = builders.customer(phone="+14155550108")
    subscription = builders.subscription(customer, status="canceled")
    invoice = builders.invoice(customer, subscription=subscription)
    stack.stripe.load(
        {"customers": [customer], "subscriptions": [subscription], "invoices": [invoice]}
    )
    stack.post_webhook(builders.payment_failed_event(invoice))
    [result] = wait_for_result(stack, invoice)
    assert (result["action"], result["reason"]) == (
        "skipped:canceled",
        f"subscription {subscription['id']} is canceled",
    )
    assert customer_calls(stack.linq) == []
    [note] = stack.slack.notes()
    assert "skipped:canceled" in note["text"]


def test_same_event_three_times_at_once_texts_once(stack):
    invoice = store(stack, phone="+14155550110")
    event = builders.payment_failed_event(invoice)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: stack.post_webhook(event), range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200]
    stack.wait_until(lambda: len(duplicates_of(stack, event)) == 2, what="two duplicate lines")
    assert [r["action"] for r in results_for(stack, invoice)] == ["sent"]
    assert parts_sent_to(stack, "+14155550110") == ["text", "link"]


def test_transient_linq_failure_is_redelivered_and_texts_once(stack):
    invoice = store(stack, phone="+14155550111")
    stack.linq.add_fault(r"/v3/chats$", method="POST", status=503)
    stack.post_webhook(builders.payment_failed_event(invoice))
    [result] = wait_for_result(stack, invoice)
    assert result["action"] == "sent"
    assert parts_sent_to(stack, "+14155550111") == ["text", "link"]
    creates = [r for r in stack.linq.requests() if r["path"] == "/v3/chats"]
    assert [r["status"] for r in creates] == [503, 201]


def test_forged_signature_is_refused_and_nothing_moves(stack):
    invoice = store(stack, phone="+14155550112")
    answer = stack.post_webhook(builders.payment_failed_event(invoice), secret="whsec_forged")
    assert answer.status_code == 400
    time.sleep(0.5)
    assert stack.emulator.pull(stack.audit_subscription) == []
    assert results_for(stack, invoice) == []
    assert customer_calls(stack.linq) == []
    assert stack.stripe.requests() == []


def test_webhook_publishes_one_message_with_its_attributes(stack):
    invoice = store(stack, phone="+14155550113")
    event = builders.payment_failed_event(invoice)
    stack.post_webhook(event)
    [message] = stack.emulator.pull(stack.audit_subscription)
    assert message["attributes"] == {"event_id": event["id"], "invoice_id": invoice["id"]}
    wait_for_result(stack, invoice)
    assert messages_to(stack, "+14155550113")
