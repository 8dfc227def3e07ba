"""Whose failure it is, through the functions in-process: a decline that is the processor's is
skipped with its code, every other outcome says its code, and a payment waiting for 3-D Secure
gets the text asking to confirm it, once for Stripe's two events of the attempt, worded by the
invoice as read, never by the event."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from typing import Any

import pytest

from shared.adapters.linq import LinqClient
from standins import builders
from standins.processes import REPO
from tests.harness import CONNECT_SECRET, SENDER, customer_calls, entry, log_lines
from tests.test_quiet_hours_flow import morning, night_around_now, push_all, released
from tests.test_recovered import deliver_paid, paid_later
from tools.report import read, render
from tools.tally import Tally

FAILED, ACTION_REQUIRED = "invoice.payment_failed", "invoice.payment_action_required"
PHONE = "+14155550100"
CONFIRM_TEXT = (
    "Hi Jane, your bank asks you to confirm your $25.00 payment for Pro plan. You can confirm it "
    "with the link below. Reply STOP to opt out."
)
FAILED_TEXT = (
    "Hi Jane, your payment for Pro plan didn't go through. You can update your card and retry "
    "with the link below. Reply STOP to opt out."
)
# The invoice read expands its latest payment's PaymentIntent in the same request.
EXPANDED = [
    "customer",
    "parent.subscription_details.subscription",
    "payments.data.payment.payment_intent",
]


def processing() -> dict[str, Any]:
    """The processor could not answer: Stripe's test card 4000000000000119."""
    return builders.payment_intent(code="processing_error", decline_code=None)


def confirm() -> dict[str, Any]:
    """Waiting for the customer to confirm the payment (3-D Secure)."""
    return builders.payment_intent(status="requires_action", code=None)


def texts(linq_api) -> list[str]:
    return [m["parts"][0]["value"] for m in linq_api.messages() if m["endpoint"] == "chats"]


def parts(linq_api) -> list[str]:
    return [m["parts"][0]["type"] for m in linq_api.messages()]


# --- a decline that is not the customer's ---------------------------------------------------


def test_a_processors_decline_is_skipped_with_its_code_and_nothing_asked_of_linq(pipeline):
    pipeline.configure(SLACK_WEBHOOK_URL=f"{pipeline.slack.url}/services/T0/B0/X0")
    # Stripe retries on 2026-11-28 at 09:46:40 UTC.
    invoice = pipeline.customer_with_invoice(payment=processing(), next_payment_attempt=1795859200)
    [result] = pipeline.deliver(builders.payment_failed_event(invoice))
    assert {k: result[k] for k in ("action", "reason", "decline_code", "payment_status")} == {
        "action": "skipped:processor_error",
        "reason": "decline code processing_error is not the customer's to fix; Stripe retries at "
        "2026-11-28T09:46:40Z",
        "decline_code": "processing_error",
        "payment_status": "requires_payment_method",
    }
    assert "group" not in result  # never drawn: neither treated nor held out
    assert customer_calls(pipeline.linq) == []
    # One read of Stripe, with the PaymentIntent in it.
    [read] = pipeline.stripe.requests()
    assert read["path"] == f"/v1/invoices/{invoice['id']}"
    assert sorted(read["query"].values()) == [[path] for path in EXPANDED]
    stored = entry(pipeline, invoice)
    assert (stored.state, stored.action, stored.decline_code) == (
        "done",
        "skipped:processor_error",
        "processing_error",
    )
    [note] = pipeline.slack.notes()
    assert note["text"] == (
        f"Dunning text skipped:processor_error for {invoice['id']} ({invoice['customer']}): "
        f"{result['reason']}"
    )


def test_another_event_for_the_skipped_attempt_sends_nothing(pipeline):
    invoice = pipeline.customer_with_invoice(payment=processing())
    assert pipeline.result(invoice)["action"] == "skipped:processor_error"
    status, lines = pipeline.run(invoice)
    assert (status, [line["message"] for line in lines]) == (200, ["already handled"])
    assert customer_calls(pipeline.linq) == []


def test_the_processors_decline_at_stripes_last_retry_is_texted(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice(payment=processing(), next_payment_attempt=None)
    result = pipeline.result(invoice)
    assert (result["action"], result["decline_code"], result["group"]) == (
        "sent",
        "processing_error",
        "treated",
    )
    assert texts(linq_api) == [FAILED_TEXT]


def test_a_dry_run_says_the_processors_decline_would_be_skipped(pipeline):
    pipeline.configure(DRY_RUN="true")
    result = pipeline.result(pipeline.customer_with_invoice(payment=processing()))
    assert (result["action"], result["reason"].split(";")[0], result["decline_code"]) == (
        "dry_run",
        "skipped:processor_error: decline code processing_error is not the customer's to fix",
        "processing_error",
    )


def test_the_next_attempt_declined_for_the_customer_is_texted(pipeline, linq_api):
    # Attempt 1: the issuer could not be reached. Attempt 2: the card is declined for good.
    invoice = pipeline.customer_with_invoice(
        payment=builders.payment_intent(decline_code="issuer_not_available")
    )
    assert pipeline.result(invoice)["action"] == "skipped:processor_error"
    declined = builders.payment_intent(decline_code="insufficient_funds")
    newer = builders.invoice("cus_x", id=invoice["id"], payment=declined)["payments"]
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2, "payments": newer})
    result = pipeline.result(invoice, attempt_count=2)
    assert (result["action"], result["attempt"], result["decline_code"]) == (
        "sent",
        2,
        "insufficient_funds",
    )
    # Another event for attempt 1 (a backfill): its entry ended, nothing more is sent.
    status, lines = pipeline.run(invoice, attempt_count=1)
    assert (status, [line["message"] for line in lines]) == (200, ["already handled"])
    assert parts(linq_api) == ["text", "link"]


@pytest.mark.parametrize(
    ("customer", "changes", "action"),
    [
        ({}, {}, "sent"),
        ({"phone": None}, {}, "skipped:no_phone"),
        ({}, {"status": "paid"}, "skipped:not_open"),
        ({}, {"hosted_invoice_url": None}, "failed"),
    ],
)
def test_every_other_outcome_says_the_decline_code(pipeline, customer, changes, action):
    intent = builders.payment_intent(decline_code="insufficient_funds")
    payment = {} if changes.get("status") == "paid" else {"payment": intent}
    invoice = pipeline.customer_with_invoice(builders.customer(**customer), **changes, **payment)
    result = pipeline.result(invoice)
    expected_code = None if changes.get("status") == "paid" else "insufficient_funds"
    assert (result["action"], result.get("decline_code")) == (action, expected_code)
    # The entry records it too, with the run's own writes.
    assert entry(pipeline, invoice).decline_code == expected_code


def test_the_already_texted_line_says_the_decline_code_too(pipeline):
    invoice = pipeline.customer_with_invoice()
    assert pipeline.result(invoice)["decline_code"] == "generic_decline"
    again = pipeline.result(invoice, event_id=f"backfill_{invoice['id']}_1")
    assert (again["action"], again["decline_code"]) == ("skipped:already_texted", "generic_decline")


# --- 3-D Secure -----------------------------------------------------------------------------


def test_a_payment_waiting_for_3d_secure_is_texted_to_confirm_it(pipeline, linq_api):
    pipeline.configure(SLACK_WEBHOOK_URL=f"{pipeline.slack.url}/services/T0/B0/X0")
    invoice = pipeline.customer_with_invoice(payment=confirm(), attempt_count=2)
    [result] = pipeline.deliver(builders.payment_failed_event(invoice, type=ACTION_REQUIRED))
    assert {
        k: result.get(k) for k in ("action", "payment_status", "event_type", "decline_code")
    } == {
        "action": "sent",
        "payment_status": "requires_action",
        "event_type": ACTION_REQUIRED,
        "decline_code": None,
    }
    messages = linq_api.messages()
    assert [(m["endpoint"], m["from"], m["to"], m["idempotency_key"]) for m in messages] == [
        ("chats", SENDER, [PHONE], f"{invoice['id']}-2-text"),
        ("messages", SENDER, [PHONE], f"{invoice['id']}-2-link"),
    ]
    assert messages[0]["parts"] == [{"type": "text", "value": CONFIRM_TEXT}]
    assert messages[1]["parts"] == [{"type": "link", "value": invoice["hosted_invoice_url"]}]
    [note] = pipeline.slack.notes()
    assert note["text"] == (
        "Dunning text sent (3-D Secure: the bank asks the customer to confirm) for "
        f"{invoice['id']} ({invoice['customer']}): chat {messages[0]['chat_id']}"
    )


@pytest.mark.parametrize(
    ("event", "intent", "text"),
    [
        (ACTION_REQUIRED, confirm(), CONFIRM_TEXT),
        (FAILED, confirm(), CONFIRM_TEXT),
        # Authentication failed since: the payment needs a card that works now.
        (
            ACTION_REQUIRED,
            builders.payment_intent(
                code="payment_intent_authentication_failure", decline_code=None
            ),
            FAILED_TEXT,
        ),
        (FAILED, builders.payment_intent(), FAILED_TEXT),
    ],
)
def test_the_text_is_worded_by_the_invoice_as_read_never_by_the_event(
    pipeline, linq_api, event, intent, text
):
    invoice = pipeline.customer_with_invoice(payment=intent)
    [result] = pipeline.deliver(builders.payment_failed_event(invoice, type=event))
    assert (result["action"], result["event_type"]) == ("sent", event)
    assert texts(linq_api) == [text]


def test_the_branded_3d_secure_text_and_an_own_one(pipeline, linq_api):
    pipeline.configure(BRAND_NAME="Acme")
    invoice = pipeline.customer_with_invoice(payment=confirm())
    pipeline.result(invoice)
    assert texts(linq_api) == [f"Acme: {CONFIRM_TEXT}"]
    pipeline.configure(ACTION_TEMPLATE="{brand}: {first_name}, please confirm {amount}. STOP")
    other = pipeline.customer_with_invoice(
        builders.customer(phone="+14155550142"), payment=confirm()
    )
    pipeline.result(other)
    assert texts(linq_api)[1] == "Acme: Jane, please confirm $25.00. STOP"


def test_the_3d_secure_text_in_the_customers_language(pipeline, linq_api):
    pipeline.configure(
        MESSAGE_TEMPLATE_ES="Hola {first_name}, tu pago no se procesó. Responde STOP.",
        ACTION_TEMPLATE_ES="Hola {first_name}, confirma tu pago de {amount}. Responde STOP.",
        MESSAGE_TEMPLATE_FR="Bonjour {first_name}, votre paiement a échoué. Répondez STOP.",
    )
    spanish = builders.customer(preferred_locales=["es-419"], phone="+14155550143")
    french = builders.customer(preferred_locales=["fr"], phone="+14155550144")
    for customer in (spanish, french):
        pipeline.result(pipeline.customer_with_invoice(customer, payment=confirm()))
    assert texts(linq_api) == [
        "Hola Jane, confirma tu pago de $25.00. Responde STOP.",
        # No ACTION_TEMPLATE_FR: the customer's own language rather than one they may not read.
        "Bonjour Jane, votre paiement a échoué. Répondez STOP.",
    ]


def two_events(pipeline, invoice: dict[str, Any]) -> list[dict[str, Any]]:
    """Stripe's two events for the attempt, through the ingest: their Pub/Sub messages."""
    for kind in (ACTION_REQUIRED, FAILED):
        answer = pipeline.post_webhook(builders.payment_failed_event(invoice, type=kind))
        assert answer.status_code == 200, answer.get_data(as_text=True)
    messages = pipeline.published()
    assert len(messages) == 2
    return messages


@pytest.mark.parametrize("intent", [confirm(), builders.payment_intent()], ids=["3ds", "declined"])
@pytest.mark.parametrize("order", [(0, 1), (1, 0)], ids=["action-first", "failed-first"])
def test_both_events_of_one_attempt_arriving_at_once_are_one_text(
    pipeline, linq_api, monkeypatch, intent, order
):
    invoice = pipeline.customer_with_invoice(payment=intent, attempt_count=2)
    messages = two_events(pipeline, invoice)
    # The owner is kept busy at Linq until the other message has been answered.
    answered = threading.Event()
    real = LinqClient.create_chat

    def busy(self: LinqClient, *args: Any, **kwargs: Any) -> Any:
        assert answered.wait(10)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LinqClient, "create_chat", busy)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def push(message: dict[str, Any]) -> None:
        barrier.wait()
        statuses.append(pipeline.push(message).status_code)
        answered.set()

    pipeline.capsys.readouterr()
    threads = [threading.Thread(target=push, args=(messages[i],)) for i in order]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    lines = log_lines(pipeline.capsys.readouterr().out)
    assert statuses == [200, 200]
    [sent] = [line for line in lines if "action" in line]
    [other] = [line for line in lines if "action" not in line]
    assert sent["action"] == "sent"
    assert (other["message"], other["key"]) == (
        "in progress for another event",
        f"{invoice['id']}-2",
    )
    assert {sent["event_id"], other["event_id"]} == {m["attributes"]["event_id"] for m in messages}
    expected = CONFIRM_TEXT if intent["status"] == "requires_action" else FAILED_TEXT
    assert texts(linq_api) == [expected]
    assert parts(linq_api) == ["text", "link"]


@pytest.mark.parametrize("first", [ACTION_REQUIRED, FAILED])
def test_the_second_event_after_the_text_says_already_texted(pipeline, linq_api, first):
    invoice = pipeline.customer_with_invoice(payment=confirm())
    second = FAILED if first == ACTION_REQUIRED else ACTION_REQUIRED
    [one] = pipeline.deliver(builders.payment_failed_event(invoice, type=first))
    [two] = pipeline.deliver(builders.payment_failed_event(invoice, type=second))
    assert (one["action"], two["action"], two["event_type"]) == (
        "sent",
        "skipped:already_texted",
        second,
    )
    assert two["reason"] == f"attempt 1 was already texted for event {one['event_id']}"
    assert texts(linq_api) == [CONFIRM_TEXT]


def test_a_connected_accounts_3d_secure_payment_is_read_and_worded_on_that_account(
    pipeline, linq_api
):
    pipeline.configure(
        STRIPE_CONNECT_ACCOUNTS="acct_1Connected", STRIPE_CONNECT_WEBHOOK_SECRET=CONNECT_SECRET
    )
    customer = builders.customer()
    invoice = builders.invoice(customer, payment=confirm())
    pipeline.stripe.load(
        {"accounts": [{"id": "acct_1Connected", "customers": [customer], "invoices": [invoice]}]}
    )
    event = {
        **builders.payment_failed_event(invoice, type=ACTION_REQUIRED),
        "account": "acct_1Connected",
    }
    # Stripe sends a connected account's events through the Connect endpoint only.
    [result] = pipeline.deliver(event, secret=CONNECT_SECRET)
    assert (result["action"], result["account"], result["payment_status"]) == (
        "sent",
        "acct_1Connected",
        "requires_action",
    )
    assert texts(linq_api) == [CONFIRM_TEXT]


def test_a_3d_secure_payment_deferred_overnight_is_worded_as_the_invoice_is_in_the_morning(
    pipeline, linq_api
):
    night = pipeline
    night.configure(QUIET_HOURS=night_around_now())
    invoice = night.customer_with_invoice(payment=confirm())
    assert night.result(invoice)["action"] == "deferred:quiet_hours"
    # Overnight the confirmation failed: the morning's text asks for a card that works.
    [payment] = night.stripe.requests()[0]["response"]["payments"]["data"]
    night.stripe.update_payment_intent(
        payment["payment"]["payment_intent"]["id"],
        {
            "status": "requires_payment_method",
            "next_action": None,
            "last_payment_error": builders.payment_intent(
                code="payment_intent_authentication_failure", decline_code=None
            )["last_payment_error"],
        },
    )
    morning(night)
    night.sweep()
    [result] = results_of(push_all(night, released(night)))
    assert (result["action"], result["decline_code"]) == (
        "sent",
        "payment_intent_authentication_failure",
    )
    assert texts(linq_api) == [FAILED_TEXT]
    # The entry's code is the one the morning's run read.
    assert entry(night, invoice).decline_code == "payment_intent_authentication_failure"


def results_of(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "action" in line]


READ_IN_A_FRESH_PROCESS = """
import sys
from shared.adapters.stripe_gateway import StripeGateway, preload
from standins import STRIPE_TEST_KEY, StripeStandin, builders

preload()
with StripeStandin() as server:
    customer = builders.customer()
    invoice = builders.invoice(customer, payment=builders.payment_intent(status="requires_action"))
    server.load({"customers": [customer], "invoices": [invoice]})
    before = set(sys.modules)
    read = StripeGateway(STRIPE_TEST_KEY, server.url).invoice(invoice["id"])
    assert read.needs_action, read
    print(" ".join(sorted(m for m in set(sys.modules) - before if m.startswith("stripe"))))
"""


@pytest.mark.integration
def test_the_invoice_read_imports_no_stripe_resource_module_on_a_new_instance():
    # The PaymentIntent's module alone costs tens of milliseconds to import: a first run that
    # made typed objects of the answer would pay for it (BENCHMARKS.md, cold start).
    done = subprocess.run(
        [sys.executable, "-c", READ_IN_A_FRESH_PROCESS],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = done.stdout.split()
    assert [m for m in imported if m != "stripe._telemetry_id"] == [], imported


def test_the_report_breaks_recoveries_down_by_the_decline_code_the_runs_recorded(pipeline):
    """The product's own ledger, through the report: each invoice under the decline code of its
    first failure, as its run recorded it, by the group it was assigned."""
    funds = [
        pipeline.customer_with_invoice(
            builders.customer(phone=f"+1415555016{n}"),
            payment=builders.payment_intent(decline_code="insufficient_funds"),
        )
        for n in range(2)
    ]
    expired = pipeline.customer_with_invoice(
        builders.customer(phone="+14155550169"),
        payment=builders.payment_intent(code="expired_card", decline_code=None),
    )
    retried = pipeline.customer_with_invoice(payment=processing())
    waiting = pipeline.customer_with_invoice(
        builders.customer(phone="+14155550168"), payment=confirm()
    )
    for invoice in (*funds, expired, retried, waiting):
        pipeline.result(invoice)
    for invoice in (funds[0], retried, waiting):
        deliver_paid(pipeline, paid_later(invoice))
    tally = Tally()
    read(pipeline.ledger, tally, io.StringIO())
    lines = render(tally, "in memory")
    start = lines.index("By first decline code     paid of invoices, rate, as assigned")
    assert lines[start + 1 : start + 6] == [
        "  insufficient_funds      treated 1 of 2, 50.0 %",
        # Waiting for 3-D Secure: a payment without an error, so no code.
        "  (none recorded)         treated 1 of 1, 100.0 %",
        "  expired_card            treated 0 of 1, 0.0 %",
        "  processing_error        not_assigned 1 of 1, 100.0 %",
        "",
    ]
