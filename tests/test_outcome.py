"""The JSON result line: its exact shape for every action, and what a text costs on SMS."""

import io
import json
from dataclasses import replace

import pytest

from shared.core.decline import LatestPayment
from shared.core.outcome import Action, Outcome, dry_run, failed, log_result, sent, skipped
from standins import builders


def line_for(outcome) -> str:
    stream = io.StringIO()
    log_result(outcome, invoice_id="in_1", customer_id="cus_1", event_id="evt_1", stream=stream)
    return stream.getvalue()


def test_sent_line_is_exactly_this():
    assert line_for(sent("chat_9", "Hi Jane. Reply STOP")) == (
        '{"severity": "INFO", "message": "sent", "invoice_id": "in_1", "customer_id": "cus_1", '
        '"action": "sent", "chat_id": "chat_9", "segments": 1, "encoding": "GSM-7", '
        '"event_id": "evt_1"}\n'
    )


def test_a_restated_sent_line_without_its_text_says_no_cost():
    # A redelivery restates the outcome from the ledger, which does not keep the text.
    entry = json.loads(line_for(sent("chat_9")))
    assert (entry["action"], entry["chat_id"]) == ("sent", "chat_9")
    assert "segments" not in entry
    assert "encoding" not in entry


def test_skip_line_is_exactly_this():
    assert line_for(skipped(Action.NO_PHONE, "no phone on file")) == (
        '{"severity": "INFO", "message": "skipped: no phone on file", "invoice_id": "in_1", '
        '"customer_id": "cus_1", "action": "skipped:no_phone", "reason": "no phone on file", '
        '"event_id": "evt_1"}\n'
    )


def test_a_line_with_the_latest_payment_and_the_event_type_is_exactly_this():
    stream = io.StringIO()
    log_result(
        skipped(Action.PROCESSOR_ERROR, "decline code processing_error is not the customer's"),
        invoice_id="in_1",
        customer_id="cus_1",
        event_id="evt_1",
        attempt=2,
        payment=LatestPayment("requires_payment_method", "processing_error"),
        event_type="invoice.payment_action_required",
        stream=stream,
    )
    assert stream.getvalue() == (
        '{"severity": "INFO", "message": "skipped: not the customer\'s to fix", '
        '"invoice_id": "in_1", "customer_id": "cus_1", "attempt": 2, '
        '"action": "skipped:processor_error", '
        '"reason": "decline code processing_error is not the customer\'s", '
        '"decline_code": "processing_error", "payment_status": "requires_payment_method", '
        '"event_id": "evt_1", "event_type": "invoice.payment_action_required"}\n'
    )


def test_a_payment_waiting_for_3d_secure_has_a_status_and_no_decline_code():
    stream = io.StringIO()
    log_result(
        sent("chat_9"),
        invoice_id="in_1",
        customer_id="cus_1",
        event_id="evt_1",
        payment=LatestPayment("requires_action"),
        stream=stream,
    )
    entry = json.loads(stream.getvalue())
    assert (entry["payment_status"], "decline_code" in entry) == ("requires_action", False)


def test_policy_skip_line_is_exactly_this():
    assert line_for(skipped(Action.POLICY, "attempt 2 is not in TEXT_ON_ATTEMPTS=1,3")) == (
        '{"severity": "INFO", "message": "skipped: attempt not in TEXT_ON_ATTEMPTS", '
        '"invoice_id": "in_1", "customer_id": "cus_1", "action": "skipped:policy", '
        '"reason": "attempt 2 is not in TEXT_ON_ATTEMPTS=1,3", "event_id": "evt_1"}\n'
    )


def test_dry_run_line_is_exactly_this():
    would_send = replace(Outcome(Action.SENT), text="Hi Jane. Reply STOP", phone="+14155550100")
    assert line_for(dry_run(would_send)) == (
        '{"severity": "INFO", "message": "dry run: sent", "invoice_id": "in_1", '
        '"customer_id": "cus_1", "action": "dry_run", "reason": "sent", '
        '"phone": "+1******0100", "text": "Hi Jane. Reply STOP", "segments": 1, '
        '"encoding": "GSM-7", "event_id": "evt_1"}\n'
    )


def test_a_ucs2_text_costs_its_segments():
    text = "Hi Zoë, " + "x" * 300 + " Reply STOP"
    entry = json.loads(line_for(dry_run(replace(Outcome(Action.SENT), text=text, phone="+1"))))
    assert (entry["segments"], entry["encoding"]) == (5, "UCS-2")


def test_dry_run_of_a_skip_carries_the_skip_and_its_reason():
    entry = json.loads(line_for(dry_run(skipped(Action.NO_PHONE, "no phone on file"))))
    assert (entry["message"], entry["action"], entry["reason"]) == (
        "dry run: skipped:no_phone",
        "dry_run",
        "skipped:no_phone: no phone on file",
    )
    assert "phone" not in entry
    assert "text" not in entry
    assert "segments" not in entry


def test_dry_run_that_would_fail_is_a_warning():
    entry = json.loads(line_for(dry_run(failed("LINQ_SENDER is not a line"))))
    assert (entry["severity"], entry["message"], entry["reason"]) == (
        "WARNING",
        "dry run: failed",
        "failed: LINQ_SENDER is not a line",
    )


def test_failed_line_is_an_error_with_its_reason():
    entry = json.loads(line_for(failed("Stripe: No such invoice")))
    assert entry["severity"] == "ERROR"
    assert entry["action"] == "failed"
    assert entry["reason"] == "Stripe: No such invoice"
    assert "chat_id" not in entry


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (Action.NO_PHONE, "skipped: no phone on file"),
        (Action.UNREACHABLE, "skipped: unreachable"),
        (Action.NOT_OPEN, "skipped: invoice not open"),
        (Action.OPTED_OUT, "skipped: opted out"),
        (Action.POLICY, "skipped: attempt not in TEXT_ON_ATTEMPTS"),
        (Action.CANCELED, "skipped: subscription canceled"),
        (Action.SUPERSEDED, "skipped: a newer attempt superseded it"),
        (Action.ALREADY_TEXTED, "skipped: already texted for this attempt"),
        (Action.HOLDOUT, "skipped: holdout group"),
        (Action.PROCESSOR_ERROR, "skipped: not the customer's to fix"),
    ],
)
def test_every_skip_has_its_message(action, message):
    entry = json.loads(line_for(skipped(action, "why")))
    assert (entry["message"], entry["action"], entry["reason"]) == (message, action.value, "why")


def test_action_vocabulary_is_closed():
    assert {a.value for a in Action} == {
        "sent",
        "skipped:no_phone",
        "skipped:unreachable",
        "skipped:not_open",
        "skipped:canceled",
        "skipped:opted_out",
        "skipped:policy",
        "skipped:superseded",
        "skipped:already_texted",
        "skipped:holdout",
        "skipped:processor_error",
        "skipped:account_not_enabled",
        "deferred:quiet_hours",
        "deferred:paused",
        "recovered",
        "delivered",
        "delivery_failed",
        "reply_received",
        "opt_out_recorded",
        "opt_out_lifted",
        "line_health",
        "ignored",
        "failed",
        "dry_run",
    }


# --- the result lines of real runs --------------------------------------------------------------


def test_a_live_sent_line_carries_the_cost_of_the_text_linq_received(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice(builders.customer(name="Zoë Durand"))
    result = pipeline.result(invoice)
    text = linq_api.messages()[0]["parts"][0]["value"]
    # 131 characters, "ë" not among GSM 03.38's: two UCS-2 segments of 67.
    assert (text[:20], len(text)) == ("Hi Zoë, your payment", 131)
    assert (result["action"], result["segments"], result["encoding"]) == ("sent", 2, "UCS-2")
    assert "text" not in result


def test_a_dry_run_line_carries_the_cost_of_the_text_it_shows(pipeline):
    pipeline.configure(DRY_RUN="true")
    result = pipeline.result(pipeline.customer_with_invoice())
    # 132 characters of GSM 03.38's alphabet: one segment of 160.
    assert len(result["text"]) == 132
    assert (result["action"], result["segments"], result["encoding"]) == ("dry_run", 1, "GSM-7")


def test_a_text_whose_link_was_refused_still_says_what_it_cost(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice()
    linq_api.add_fault(r"/messages$", status=400)
    result = pipeline.result(invoice)
    assert result["action"] == "failed"
    assert result["reason"].startswith("text sent, link refused")
    assert (result["segments"], result["encoding"]) == (1, "GSM-7")
