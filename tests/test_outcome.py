"""The JSON result line: its exact shape for every action."""

import io
import json

import pytest

from shared.outcome import Action, failed, log_result, sent, skipped


def line_for(outcome) -> str:
    stream = io.StringIO()
    log_result(outcome, invoice_id="in_1", customer_id="cus_1", event_id="evt_1", stream=stream)
    return stream.getvalue()


def test_sent_line_is_exactly_this():
    assert line_for(sent("chat_9")) == (
        '{"severity": "INFO", "message": "sent", "invoice_id": "in_1", "customer_id": "cus_1", '
        '"action": "sent", "chat_id": "chat_9", "event_id": "evt_1"}\n'
    )


def test_skip_line_is_exactly_this():
    assert line_for(skipped(Action.NO_PHONE, "no phone on file")) == (
        '{"severity": "INFO", "message": "skipped: no phone on file", "invoice_id": "in_1", '
        '"customer_id": "cus_1", "action": "skipped:no_phone", "reason": "no phone on file", '
        '"event_id": "evt_1"}\n'
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
        "skipped:opted_out",
        "failed",
    }
