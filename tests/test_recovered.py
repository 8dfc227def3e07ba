"""Recovered revenue: `invoice.paid` through the ingest and recover functions over the emulators,
the first-try filter, and the attribution of a payment to the texted, holdout or neither group."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.core.attribution import attribute
from shared.core.decide import in_holdout
from shared.core.event import InvoicePaid, from_stripe_event, paid_at_first_try
from standins import builders
from tests.harness import log_lines

HOUR = 3600


def paid_later(invoice: dict[str, Any], after_s: int = 2 * HOUR) -> dict[str, Any]:
    """`invoice` paid `after_s` after it was finalized: not at its first attempt."""
    finalized = invoice["status_transitions"]["finalized_at"]
    return builders.paid(invoice, at=finalized + after_s)


def deliver_paid(pipeline, invoice: dict[str, Any], **event: Any) -> list[dict[str, Any]]:
    """Post a signed invoice.paid and push what it published; every log line of the recover run."""
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(builders.invoice_paid_event(invoice, **event))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    for message in pipeline.published():
        assert pipeline.push(message).status_code == 200
    return log_lines(pipeline.capsys.readouterr().out)


# --- the first-try filter ------------------------------------------------------------------


def finalized(**changes: Any) -> dict[str, Any]:
    invoice = builders.invoice("cus_1", attempt_count=1)
    invoice.update(changes)
    return invoice


@pytest.mark.parametrize(
    ("invoice", "first_try"),
    [
        # The monthly renewal: charged as it is finalized, paid at once.
        (
            builders.paid(finalized(), at=finalized()["status_transitions"]["finalized_at"] + 5),
            True,
        ),
        # Paid hours later at attempt 1: the customer paid after the first attempt failed.
        (paid_later(finalized()), False),
        # Paid at an automatic retry.
        (builders.paid(finalized(attempt_count=3)), False),
        # Settled by the merchant by hand.
        (builders.paid(finalized(paid_out_of_band=True), at=finalized()["created"]), False),
        # Never attempted (a zero total, a credit balance): nothing failed.
        (builders.paid(finalized(attempted=False)), True),
    ],
    ids=["renewal", "paid-later", "retry", "out-of-band", "not-attempted"],
)
def test_the_first_try_filter(invoice, first_try):
    assert paid_at_first_try(invoice) is first_try


def test_an_invoice_paid_event_becomes_a_payment_message():
    invoice = paid_later(builders.invoice("cus_1", id="in_Paid1", amount_due=4200, currency="eur"))
    payment = from_stripe_event(builders.invoice_paid_event(invoice, id="evt_Paid1"))
    assert isinstance(payment, InvoicePaid)
    assert (payment.amount, payment.currency, payment.first_try) == (4200, "eur", False)
    assert payment.attributes()["event_type"] == "invoice.paid"
    assert b'"event_type":"invoice.paid"' in payment.to_json()


def test_a_first_try_payment_is_answered_and_not_published(pipeline):
    invoice = pipeline.customer_with_invoice()
    at_once = builders.paid(invoice, at=invoice["status_transitions"]["finalized_at"] + 3)
    answer = pipeline.post_webhook(builders.invoice_paid_event(at_once))
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        200,
        "ignored: paid at its first attempt",
    )
    assert pipeline.published() == []


def test_a_forged_invoice_paid_is_refused(pipeline):
    invoice = paid_later(pipeline.customer_with_invoice())
    answer = pipeline.post_webhook(builders.invoice_paid_event(invoice), secret="whsec_" + "F" * 32)
    assert answer.status_code == 400
    assert pipeline.published() == []


# --- attribution -----------------------------------------------------------------------------


def test_a_texted_invoice_paid_is_recovered_once_with_its_amount_and_delay(pipeline):
    invoice = pipeline.customer_with_invoice(amount_due=2500)
    assert pipeline.result(invoice)["action"] == "sent"
    lines = deliver_paid(pipeline, builders.paid(invoice, at=int(time.time()) + 600))
    [recovered] = [entry for entry in lines if "action" in entry]
    assert (recovered["action"], recovered["message"], recovered["group"]) == (
        "recovered",
        "recovered",
        "texted",
    )
    assert (recovered["amount"], recovered["currency"], recovered["attempt"]) == (2500, "usd", 1)
    assert 9.0 <= recovered["minutes_after_text"] <= 10.5
    assert recovered["invoice_id"] == invoice["id"]
    assert "reason" not in recovered
    # Stripe delivers the same event again: nothing more is said.
    again = deliver_paid(pipeline, builders.paid(invoice, at=int(time.time()) + 600))
    assert [entry for entry in again if "action" in entry] == []


def test_a_holdout_invoice_is_not_texted_and_its_payment_counts_for_the_holdout(pipeline, linq_api):
    pipeline.configure(HOLDOUT_PERCENT="50")
    invoice = next(
        candidate
        for candidate in (pipeline.customer_with_invoice() for _ in range(40))
        if in_holdout(candidate["id"], 50)
    )
    assert pipeline.result(invoice)["action"] == "skipped:holdout"
    assert linq_api.messages() == []
    lines = deliver_paid(pipeline, paid_later(invoice))
    [recovered] = [entry for entry in lines if "action" in entry]
    assert (recovered["group"], recovered["attempt"]) == ("holdout", 1)
    assert "minutes_after_text" not in recovered


def test_an_invoice_skipped_for_another_reason_is_not_texted_with_the_reason(pipeline):
    invoice = pipeline.customer_with_invoice(builders.customer(phone=None))
    assert pipeline.result(invoice)["action"] == "skipped:no_phone"
    [recovered] = [e for e in deliver_paid(pipeline, paid_later(invoice)) if "action" in e]
    assert (recovered["group"], recovered["reason"]) == (
        "not_texted",
        "skipped:no_phone: no phone on file",
    )


def test_a_payment_the_ledger_never_saw_says_nothing(pipeline):
    invoice = pipeline.customer_with_invoice()
    lines = deliver_paid(pipeline, paid_later(invoice))
    assert [line["message"] for line in lines] == ["queued"]  # the ingest's line, nothing after


def test_the_last_text_of_several_attempts_is_the_one_the_payment_followed(pipeline):
    invoice = pipeline.customer_with_invoice(attempt_count=1)
    assert pipeline.result(invoice)["action"] == "sent"
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "sent"
    [recovered] = [e for e in deliver_paid(pipeline, paid_later(invoice)) if "action" in e]
    assert (recovered["group"], recovered["attempt"]) == ("texted", 2)


# --- attribution, pure -------------------------------------------------------------------------

TEXTED_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([], None),
        ([{"attempt": 1, "action": "sent", "texted_at": TEXTED_AT}], ("texted", 0, 1, None)),
        (
            [
                {"attempt": 1, "action": "sent", "texted_at": TEXTED_AT},
                {"attempt": 2, "action": "skipped:policy", "reason": "attempt 2 is not in ..."},
            ],
            ("texted", 0, 1, None),
        ),
        (
            [
                {
                    "attempt": 1,
                    "action": "failed",
                    "reason": "text sent, link refused",
                    "texted_at": TEXTED_AT,
                }
            ],
            ("texted", 0, 1, None),
        ),
        ([{"attempt": 1, "action": "skipped:holdout"}], ("holdout", 0, 1, None)),
        (
            [
                {"attempt": 1, "action": "skipped:no_phone", "reason": "no phone on file"},
                {
                    "attempt": 2,
                    "state": "deferred",
                    "action": "deferred:quiet_hours",
                    "reason": "03:12 in X",
                },
            ],
            ("not_texted", 1, 2, "deferred:quiet_hours: 03:12 in X"),
        ),
    ],
    ids=[
        "never-seen",
        "texted",
        "texted-then-policy",
        "text-without-link",
        "holdout",
        "not-texted",
    ],
)
def test_attribution_by_entries(entries, expected):
    found = attribute(entries)
    if expected is None:
        assert found is None
    else:
        assert (found.group, found.entry, found.attempt, found.reason) == expected


class _Ledger:
    """The two calls attribute_payment makes, over entries held in memory."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.fields = {f"in_1-{e['attempt']}": dict(e) for e in entries}

    def entries(self, invoice_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [(key, "v1", dict(fields)) for key, fields in self.fields.items()]

    def record_payment(self, key: str, version: str, payment: dict[str, Any]) -> bool:
        self.fields[key].update(payment)
        return True


def test_a_text_that_went_out_after_the_payment_is_not_the_one_the_payment_followed():
    """Attempt 1 was texted; the invoice failed again and the customer paid through the first
    text's link a minute before attempt 2's text went out (Stripe's `invoice.paid` reaches us
    after both). The payment followed the first text: the `recovered` line names attempt 1 and
    the minutes since it, not attempt 2 and -1.0 minutes, and the payment is recorded there."""
    from shared.workflow.recovered import attribute_payment

    first = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    paid_at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    ledger = _Ledger(
        [
            {"attempt": 1, "action": "sent", "texted_at": first},
            {"attempt": 2, "action": "sent", "texted_at": paid_at.replace(minute=1)},
        ]
    )
    paid = InvoicePaid("evt_1", "in_1", "cus_1", False, 2500, "usd", int(paid_at.timestamp()))
    now = paid_at.replace(minute=5)
    found = attribute_payment(ledger, paid, now)  # type: ignore[arg-type]
    assert found is not None
    assert (found.group, found.attempt, found.minutes_after_text) == ("texted", 1, 2880.0)
    assert "paid_at" in ledger.fields["in_1-1"]
