"""Hearing back from Linq: the intake's signature checks, the STOP rule, and what the subscriber
does with deliveries, replies and line changes, through both functions over the emulators."""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
import time
import uuid
from typing import Any

import pytest
import standardwebhooks
from cloudevents.http import CloudEvent
from standardwebhooks import webhooks as standard

from shared.adapters import linq_webhook
from shared.adapters.linq_webhook import parse_linq_webhook
from shared.core.errors import WebhookRejected
from shared.core.linq_events import Delivery, is_opt_out, read_event
from standins import builders
from tests.harness import LINQ_SECRET, SENDER

PHONE = "+14155550100"

# Standard Webhooks' published test vector (the specification's own, reproduced by every one of
# its libraries).
VECTOR = {
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "timestamp": 1614265330,
    "body": '{"test": 2432232314}',
    "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}


def headers(webhook_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def sign(
    body: str, secret: str = LINQ_SECRET, webhook_id: str = "msg_1", at: int | None = None
) -> dict[str, str]:
    stamp = at or int(time.time())
    key = base64.b64decode(secret.removeprefix("whsec_") + "==")
    signature = standardwebhooks.Webhook(key).sign(
        webhook_id, dt.datetime.fromtimestamp(stamp, dt.UTC), body
    )
    return headers(webhook_id, stamp, signature)


EVENT = '{"event_type": "message.delivered", "data": {}}'


# --- the signature ------------------------------------------------------------------------


def test_the_published_test_vector_verifies(monkeypatch):
    # Both clocks at the vector's moment: ours (the header check) and the library's (its own).
    moment = dt.datetime.fromtimestamp(VECTOR["timestamp"], dt.UTC)

    class Then(dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> dt.datetime:
            return moment

    monkeypatch.setattr(linq_webhook.time, "time", lambda: float(VECTOR["timestamp"]))
    monkeypatch.setattr(standard, "datetime", Then)
    body = '{"event_type": "test", "test": 2432232314}'
    with pytest.raises(WebhookRejected, match="signature does not match"):
        # The vector's signature is for its own body, not this one.
        parse_linq_webhook(
            body.encode(),
            headers(VECTOR["id"], VECTOR["timestamp"], VECTOR["signature"]),
            VECTOR["secret"],
        )
    signed = standardwebhooks.Webhook(VECTOR["secret"]).sign(VECTOR["id"], moment, VECTOR["body"])
    assert signed == VECTOR["signature"]
    vector_body = VECTOR["body"].replace("{", '{"event_type": "test", ', 1)
    signed_event = standardwebhooks.Webhook(VECTOR["secret"]).sign(
        VECTOR["id"], moment, vector_body
    )
    event = parse_linq_webhook(
        vector_body.encode(),
        headers(VECTOR["id"], VECTOR["timestamp"], signed_event),
        VECTOR["secret"],
    )
    assert (event.webhook_id, event.event["test"]) == (VECTOR["id"], 2432232314)


def test_a_correctly_signed_event_verifies():
    event = parse_linq_webhook(EVENT.encode(), sign(EVENT), LINQ_SECRET)
    assert (event.event_type, event.webhook_id) == ("message.delivered", "msg_1")


def test_one_good_signature_among_several_verifies():
    good = sign(EVENT)
    several = f"v1,{base64.b64encode(b'x' * 32).decode()} v2,abcd {good['webhook-signature']}"
    assert parse_linq_webhook(EVENT.encode(), {**good, "webhook-signature": several}, LINQ_SECRET)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"secret": "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()},
            "signature does not match",
        ),
        ({"age": 310}, "timestamp too old or too new"),
        ({"age": -310}, "timestamp too old or too new"),
        ({"body": EVENT.replace("delivered", "delivereD")}, "signature does not match"),
    ],
    ids=["wrong-key", "stale", "from-the-future", "one-byte-changed"],
)
def test_a_forged_stale_or_tampered_event_is_rejected(change, reason):
    # The moment is taken as the test runs: one computed at collection is minutes old by then.
    at = int(time.time()) - change["age"] if "age" in change else None
    signed = sign(EVENT, secret=change.get("secret", LINQ_SECRET), at=at)
    with pytest.raises(WebhookRejected, match=reason):
        parse_linq_webhook(change.get("body", EVENT).encode(), signed, LINQ_SECRET)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("webhook-id", "", "missing webhook-id"),
        ("webhook-signature", "v1,\xe9", "non-ASCII"),
        ("webhook-signature", "v1", "malformed webhook-signature"),
        ("webhook-signature", "v1,not base64!", "malformed webhook-signature"),
        ("webhook-signature", "v2,YWJj", "no v1 signature"),
        ("webhook-timestamp", "soon", "malformed webhook-timestamp"),
        ("webhook-id", "has space", "malformed webhook-id"),
    ],
)
def test_a_malformed_header_is_a_short_reason_never_a_crash(name, value, reason):
    with pytest.raises(WebhookRejected, match=reason):
        parse_linq_webhook(EVENT.encode(), {**sign(EVENT), name: value}, LINQ_SECRET)


def test_a_deeply_nested_signed_body_is_rejected():
    body = '{"event_type": "x", "data": ' + "[" * 50_000 + "]" * 50_000 + "}"
    with pytest.raises(WebhookRejected, match="nested too deeply"):
        parse_linq_webhook(body.encode(), sign(body), LINQ_SECRET)


# --- the STOP rule and matching ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["STOP", " stop ", "Stop", "Opt-Out", "optout", "opt out", "QUIT", "end"]
)
def test_opt_out_keywords_in_any_case(text):
    assert is_opt_out(text)


@pytest.mark.parametrize("text", ["please stop", "STOPPED", "stop it", "I'll pay on Friday", ""])
def test_anything_else_is_not_an_opt_out(text):
    assert not is_opt_out(text)


def test_a_delivery_is_matched_by_the_idempotency_key_the_product_set():
    event = {
        "event_type": "message.failed",
        "data": {"idempotency_key": "in_1Ab-3-link", "code": 4001, "reason": "x"},
    }
    assert read_event(event) == Delivery(False, "in_1Ab-3", "link", None, 4001, "x")
    foreign = {"event_type": "message.delivered", "data": {"idempotency_key": "their-key"}}
    assert read_event(foreign).entry is None


# --- through the functions ---------------------------------------------------------------------


def delivery(kind: str, key: str, **data: Any) -> dict[str, Any]:
    return {
        "api_version": "v3",
        "webhook_version": "2026-02-03",
        "event_type": kind,
        "event_id": str(uuid.uuid4()),
        "data": {"idempotency_key": key, "message_id": str(uuid.uuid4()), **data},
    }


def reply(chat_id: str, text: str, *, sender: str = PHONE, **extra: Any) -> dict[str, Any]:
    chat = {"id": chat_id, "is_group": extra.pop("is_group", False), "owner_handle": SENDER}
    data = {
        "id": str(uuid.uuid4()),
        "direction": "inbound",
        "sender_handle": sender,
        "parts": [{"type": "text", "value": text}],
        "chat": chat,
        "sent_at": extra.pop("sent_at", dt.datetime.now(dt.UTC).isoformat()),
        **extra,
    }
    return {"event_type": "message.received", "event_id": str(uuid.uuid4()), "data": data}


def acted(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The subscriber's outcome lines (the intake's "queued" line also names the webhook)."""
    return [line for line in lines if "webhook_id" in line and "action" in line]


@pytest.fixture
def texted(pipeline):
    """A customer texted (chat open), with Slack on."""
    pipeline.configure(SLACK_WEBHOOK_URL=f"{pipeline.slack.url}/services/T0/B0/X0")
    invoice = pipeline.customer_with_invoice()
    result = pipeline.result(invoice)
    assert result["action"] == "sent", result.get("reason")
    return invoice, result["chat_id"]


def ledger_fields(pipeline, invoice) -> dict[str, Any]:
    from tests.test_quiet_hours_flow import entry

    return entry(pipeline, invoice)


def test_a_send_followed_by_delivered(pipeline, texted):
    invoice, _ = texted
    [line] = acted(pipeline.hear(delivery("message.delivered", f"{invoice['id']}-1-text")))
    assert (line["action"], line["part"], line["invoice_id"]) == (
        "delivered",
        "text",
        invoice["id"],
    )
    assert ledger_fields(pipeline, invoice)["text_delivery"]["status"] == "delivered"


def test_failed_then_delivered_and_a_late_failed_changes_nothing(pipeline, texted):
    invoice, _ = texted
    key = f"{invoice['id']}-1-link"
    [failed] = acted(
        pipeline.hear(delivery("message.failed", key, code=4001, reason="Delivery failed"))
    )
    assert (
        failed["severity"],
        failed["action"],
        failed["code"],
        failed["reason"],
        failed["part"],
    ) == (
        "WARNING",
        "delivery_failed",
        4001,
        "Delivery failed",
        "link",
    )
    [delivered] = acted(pipeline.hear(delivery("message.delivered", key)))
    assert delivered["action"] == "delivered"
    [late] = acted(pipeline.hear(delivery("message.failed", key, code=4001)))
    assert late["message"] == "ignored: delivered already (a delivery is final)"
    assert ledger_fields(pipeline, invoice)["link_delivery"]["status"] == "delivered"


def test_an_event_for_a_message_the_product_did_not_send_is_ignored(pipeline):
    [line] = acted(pipeline.hear(delivery("message.delivered", "someone-elses-key")))
    assert line["message"].startswith("ignored: a message the product did not send")
    [line] = acted(pipeline.hear(delivery("message.delivered", "in_1Nobody-1-text")))
    assert line["message"] == "ignored: no ledger entry for the message's key"


def test_stop_then_a_new_failed_payment_is_skipped_with_no_linq_call(pipeline, texted, linq_api):
    invoice, chat_id = texted
    [line] = acted(pipeline.hear(reply(chat_id, "stop")))
    assert (line["action"], line["changed"]) == ("opt_out_recorded", True)
    assert "stop" not in str({k: v for k, v in line.items() if k != "message"}).lower()
    before = len(linq_api.requests())
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    result = pipeline.result(invoice, attempt_count=2)
    assert result["action"] == "skipped:opted_out"
    assert result["reason"].startswith("replied STOP on ")
    assert len(linq_api.requests()) == before  # no Linq call at all


def test_a_later_word_lifts_the_stop_and_texts_go_out_again(pipeline, texted):
    invoice, chat_id = texted
    now = dt.datetime.now(dt.UTC)
    acted(pipeline.hear(reply(chat_id, "STOP", sent_at=now.isoformat())))
    [line] = acted(
        pipeline.hear(
            reply(chat_id, "sorry, I'll pay", sent_at=(now + dt.timedelta(seconds=5)).isoformat())
        )
    )
    assert (line["action"], line["opt_out_lifted"]) == ("reply_received", True)
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "sent"


def test_an_older_stop_arriving_after_a_newer_word_does_not_opt_out(pipeline, texted):
    _, chat_id = texted
    now = dt.datetime.now(dt.UTC)
    acted(pipeline.hear(reply(chat_id, "STOP", sent_at=now.isoformat())))
    acted(
        pipeline.hear(
            reply(chat_id, "ok fine", sent_at=(now + dt.timedelta(seconds=9)).isoformat())
        )
    )
    [line] = acted(
        pipeline.hear(reply(chat_id, "STOP", sent_at=(now + dt.timedelta(seconds=1)).isoformat()))
    )
    assert line["changed"] is False


def test_a_reply_reaches_the_team_without_the_number_and_no_log_holds_the_text(pipeline, texted):
    _, chat_id = texted
    text = "I'll pay on Friday, call me at +14155550100"
    lines = pipeline.hear(reply(chat_id, text))
    [line] = acted(lines)
    assert (line["action"], line["length"]) == ("reply_received", len(text))
    assert "Friday" not in str(lines)
    [note] = [n["text"] for n in pipeline.slack.notes() if n["text"].startswith("Reply from")]
    assert note.startswith("Reply from Jane (")
    assert '"I\'ll pay on Friday, call me at +1******0100"' in note
    assert "4155550100" not in note


def test_a_long_reply_is_quoted_short(pipeline, texted):
    _, chat_id = texted
    pipeline.hear(reply(chat_id, "x" * 1000))
    [note] = [n["text"] for n in pipeline.slack.notes() if n["text"].startswith("Reply from")]
    assert note.endswith('…"')
    assert len(note) < 400


def test_history_and_group_chats_are_ignored(pipeline, texted):
    _, chat_id = texted
    [line] = acted(pipeline.hear(reply(chat_id, "STOP", reconciled_at="2026-11-26T00:00:00Z")))
    assert line["message"].startswith("ignored: reconciled history")
    [line] = acted(pipeline.hear(reply(chat_id, "STOP", is_group=True)))
    assert line["message"].startswith("ignored: reconciled history or a group chat")


def test_a_duplicated_webhook_is_acted_on_once(pipeline, texted):
    _, chat_id = texted
    event = reply(chat_id, "hello?")
    first = acted(pipeline.hear(event, webhook_id="msg_same"))
    second = acted(pipeline.hear(event, webhook_id="msg_same"))
    assert first[0]["action"] == "reply_received"
    assert second[0]["message"] == "duplicate Linq event ignored"
    assert len([n for n in pipeline.slack.notes() if n["text"].startswith("Reply from")]) == 1


def test_a_forged_linq_webhook_is_refused_and_nothing_is_queued(pipeline, texted):
    _, chat_id = texted
    forged = "whsec_" + base64.b64encode(b"not-the-subscription-secret-123!").decode()
    answer = pipeline.post_linq(reply(chat_id, "STOP"), secret=forged)
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        400,
        "rejected: signature does not match",
    )
    assert pipeline.emulator.pull(f"{pipeline.linq_topic}-pull") == []


def test_a_placeholder_secret_answers_503(pipeline):
    pipeline.configure(LINQ_WEBHOOK_SECRET="not-set-yet")
    answer = pipeline.post_linq({"event_type": "message.delivered", "data": {}})
    assert answer.status_code == 503


def line_change(new_status: str, new_reputation: str = "HEALTHY") -> dict[str, Any]:
    return {
        "event_type": "phone_number.status_updated",
        "data": {
            "phone_number": SENDER,
            "previous_status": "ACTIVE",
            "new_status": new_status,
            "previous_reputation": "HEALTHY",
            "new_reputation": new_reputation,
        },
    }


def test_a_flagged_line_is_an_alert_naming_the_masked_line(pipeline, texted):
    [line] = acted(pipeline.hear(line_change("FLAGGED")))
    assert (line["severity"], line["action"]) == ("WARNING", "line_health")
    assert "status ACTIVE → FLAGGED" in line["change"]
    [alert] = [n["text"] for n in pipeline.slack.notes() if n["text"].startswith("Linq line")]
    assert "FLAGGED" in alert
    assert SENDER not in alert  # masked
    assert SENDER not in str(line)


def test_a_better_line_is_one_info_line_and_no_alert(pipeline, texted):
    [line] = acted(pipeline.hear(line_change("ACTIVE", "HEALTHY")))
    assert (line["severity"], line["action"]) == ("INFO", "line_health")
    assert [n for n in pipeline.slack.notes() if n["text"].startswith("Linq line")] == []


@pytest.mark.parametrize(
    ("status", "reputation", "forgotten"),
    [
        ("FLAGGED", "HEALTHY", True),
        ("ACTIVE", "AT_RISK", True),
        ("ACTIVE", "CRITICAL", True),
        ("ACTIVE", "HEALTHY", False),
    ],
)
def test_the_instance_that_hears_a_worse_line_reads_the_line_list_again(
    pipeline, texted, linq_api, status, reputation, forgotten
):
    """One module, as one Cloud Functions instance: it recovers (caching the line list), hears
    the line change, and recovers again."""
    pipeline.app("recover_fn/main.py", "linq_event", "cloudevent")
    instance = sys.modules["main"]  # the module functions-framework just loaded

    def pushed(data: bytes, attributes: dict[str, str]) -> CloudEvent:
        message = {"data": base64.b64encode(data).decode(), "attributes": attributes}
        head = {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//test"}
        return CloudEvent({**head, "id": uuid.uuid4().hex}, {"message": message})

    def recover(attempt: int) -> None:
        payment = pipeline.payment(invoice, attempt_count=attempt)
        instance.recover_payment(pushed(payment.to_json(), payment.attributes()))

    reads = lambda: len([r for r in linq_api.requests() if r["path"] == "/v3/phone_numbers"])  # noqa: E731
    invoice = pipeline.customer_with_invoice(builders.customer(phone="+14155550111"))
    recover(1)
    before = reads()
    change = json.dumps(line_change(status, reputation)).encode()
    instance.linq_event(pushed(change, {"webhook_id": f"msg_{uuid.uuid4().hex}"}))
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    recover(2)
    assert reads() == before + (1 if forgotten else 0)
