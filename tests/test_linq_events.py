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
import requests
import standardwebhooks
from cloudevents.http import CloudEvent
from standardwebhooks import webhooks as standard

from shared.adapters import ledger as ledger_module
from shared.adapters import linq_webhook
from shared.adapters.linq_webhook import parse_linq_webhook
from shared.core.errors import RetryableError, WebhookRejected
from shared.core.linq_events import Delivery, is_opt_out, read_event
from standins import builders
from tests.harness import LINQ_SECRET, SENDER, entry_url
from tests.harness import entry as entry_fields

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
        # Past the 4,300 digits Python turns into an int: a 400, never a ValueError's 500.
        ("webhook-timestamp", "9" * 5000, "malformed webhook-timestamp"),
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


@pytest.mark.parametrize(
    "text",
    ["Stop.", "STOP!!", "stop!", "\uff53\uff54\uff4f\uff50", "STOP\u200b", "\u201cSTOP\u201d"],
)
def test_a_stop_word_with_punctuation_full_width_letters_or_invisible_characters_opts_out(text):
    # The whole message is still the word: a phone keyboard's period, an exclamation, full-width
    # letters or a zero-width character do not make "stop" mean anything else.
    assert is_opt_out(text)


def test_a_delivery_is_read_by_its_key_and_a_failure_by_its_message_and_chat():
    delivered = {
        "event_type": "message.delivered",
        "data": {"id": "m1", "idempotency_key": "in_1Ab-3-link", "chat": {"id": "c1"}},
    }
    assert read_event(delivered) == Delivery(True, "in_1Ab-3", "link", "m1", "c1", None, None)
    # The SDK's message.failed: no idempotency key, the message and chat by id.
    failed = {
        "event_type": "message.failed",
        "data": {"message_id": "m2", "chat_id": "c2", "code": 4001, "reason": "x"},
    }
    assert read_event(failed) == Delivery(False, None, None, "m2", "c2", 4001, "x")
    foreign = {"event_type": "message.delivered", "data": {"idempotency_key": "their-key"}}
    assert read_event(foreign).entry is None


def test_a_reply_is_read_from_the_handle_object_or_a_plain_string():
    handle = {"handle": PHONE, "is_me": False, "service": "iMessage"}
    for sender in (handle, PHONE):
        event = {
            "event_type": "message.received",
            "data": {"sender_handle": sender, "parts": [{"type": "text", "value": "hi"}]},
        }
        assert read_event(event).sender == PHONE


# --- through the functions ---------------------------------------------------------------------


def delivery(kind: str, key: str | None = None, **data: Any) -> dict[str, Any]:
    """A hand-built delivery event (the stand-in's own are relayed with `pipeline.relay`):
    `message.delivered` of our message sent with `key` (`data` as for builders.linq_delivered),
    or `message.failed`, which carries no key (`data` as for builders.linq_failed)."""
    if kind != "message.failed":
        return builders.linq_delivered(key, line=SENDER, **data)
    if key is not None:
        raise TypeError("Linq's message.failed carries no idempotency key")
    return builders.linq_failed(**data)


def reply(chat_id: str, text: str, *, sender: str = PHONE, **extra: Any) -> dict[str, Any]:
    """`message.received`: `text` from `sender` in the chat `chat_id` of our line (`extra` as
    for builders.linq_received)."""
    return builders.linq_received(chat_id, text, sender=sender, line=SENDER, **extra)


def acted(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The subscriber's outcome lines (the intake's "queued" line also names the webhook)."""
    return [line for line in lines if "webhook_id" in line and "action" in line]


def send(pipeline, phone: str = PHONE) -> tuple[dict[str, Any], str]:
    pipeline.configure(SLACK_WEBHOOK_URL=f"{pipeline.slack.url}/services/T0/B0/X0")
    invoice = pipeline.customer_with_invoice(builders.customer(phone=phone))
    result = pipeline.result(invoice)
    assert result["action"] == "sent", result.get("reason")
    return invoice, result["chat_id"]


@pytest.fixture
def texted(pipeline):
    """A customer texted (chat open, both deliveries heard), with Slack on."""
    invoice, chat_id = send(pipeline)
    assert [line["action"] for line in acted(pipeline.relay(2))] == ["delivered", "delivered"]
    return invoice, chat_id


def ledger_fields(pipeline, invoice) -> dict[str, Any]:
    return entry_fields(pipeline, invoice)


def put(url: str, fields: dict[str, Any]) -> None:
    """Write `fields` into the ledger entry at `url` as a run in mid-flight would have left it."""
    body = {"fields": {k: ledger_module._encode(v) for k, v in fields.items()}}
    params = {"updateMask.fieldPaths": list(fields)}
    headers = {"Authorization": "Bearer owner"}
    requests.patch(url, params=params, json=body, headers=headers, timeout=5).raise_for_status()


def test_a_send_followed_by_delivered(pipeline):
    invoice, _ = send(pipeline)
    lines = acted(pipeline.relay(2))
    assert [(line["action"], line["part"], line["invoice_id"]) for line in lines] == [
        ("delivered", "text", invoice["id"]),
        ("delivered", "link", invoice["id"]),
    ]
    fields = ledger_fields(pipeline, invoice)
    assert (fields["text_delivery"]["status"], fields["link_delivery"]["status"]) == (
        "delivered",
        "delivered",
    )


def test_an_undeliverable_text_is_matched_by_its_message_id(pipeline):
    pipeline.linq.load({"undeliverable": [PHONE]})
    invoice, _ = send(pipeline)
    lines = acted(pipeline.relay(2))
    assert [(line["severity"], line["action"], line["part"], line["code"]) for line in lines] == [
        ("WARNING", "delivery_failed", "text", 4001),
        ("WARNING", "delivery_failed", "link", 4001),
    ]
    assert lines[0]["reason"] == "Message not delivered"
    assert ledger_fields(pipeline, invoice)["text_delivery"]["code"] == 4001


def test_failed_then_delivered_and_a_late_failed_changes_nothing(pipeline):
    pipeline.linq.load({"delivery_flaps": [PHONE]})
    invoice, chat_id = send(pipeline)
    lines = acted(pipeline.relay(4))
    assert [(line["action"], line["part"]) for line in lines] == [
        ("delivery_failed", "text"),
        ("delivered", "text"),
        ("delivery_failed", "link"),
        ("delivered", "link"),
    ]
    fields = ledger_fields(pipeline, invoice)
    assert fields["link_delivery"]["status"] == "delivered"
    late = delivery("message.failed", message_id=fields["link_message_id"], chat_id=chat_id)
    [line] = acted(pipeline.hear(late))
    assert line["message"] == "ignored: delivered already (a delivery is final)"
    assert ledger_fields(pipeline, invoice)["link_delivery"]["status"] == "delivered"


def test_an_event_for_a_message_the_product_did_not_send_is_ignored(pipeline):
    [line] = acted(pipeline.hear(delivery("message.delivered", "someone-elses-key")))
    assert line["message"] == "ignored: a message the product did not send"
    [line] = acted(pipeline.hear(delivery("message.failed", message_id="m0", chat_id="c0")))
    assert line["message"] == "ignored: a message the product did not send"
    [line] = acted(pipeline.hear(delivery("message.delivered", "in_1Nobody-1-text")))
    assert line["message"] == "ignored: no ledger entry for the message's key"


def test_a_failure_heard_before_the_run_recorded_its_message_is_retried(pipeline):
    """The run is still sending (its entry active, the chat recorded, the link's id not yet):
    the subscriber answers with a retry, and acts once the run has finished."""
    invoice, chat_id = send(pipeline)
    pipeline.linq_inbox.take(2)
    link_id = ledger_fields(pipeline, invoice)["link_message_id"]
    entry = f"{invoice['id']}-1"
    url = entry_url(pipeline, invoice, 1)

    put(url, {"state": "active", "link_message_id": None})
    late = delivery("message.failed", message_id=link_id, chat_id=chat_id, code=4001)
    lines = pipeline.hear(late)
    [retry] = [line for line in lines if line["message"].startswith("will retry")]
    assert "has not recorded it yet" in retry["message"]
    assert acted(lines) == []
    put(url, {"state": "done", "link_message_id": link_id})
    [line] = acted(pipeline.hear(late))
    assert (line["action"], line["part"]) == ("delivery_failed", "link")
    assert entry == f"{line['invoice_id']}-{line['attempt']}"


def test_stop_then_a_new_failed_payment_is_skipped_with_no_linq_call(pipeline, texted, linq_api):
    invoice, _ = texted
    # Lower case: Linq itself would not opt the number out; our list does.
    assert linq_api.inbound(PHONE, "stop") is False
    [line] = acted(pipeline.relay(1))
    assert (line["action"], line["changed"]) == ("opt_out_recorded", True)
    assert "stop" not in str({k: v for k, v in line.items() if k != "message"}).lower()
    [note] = [n["text"] for n in pipeline.slack.notes() if "replied STOP" in n["text"]]
    assert PHONE not in note
    before = len(linq_api.requests())
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    result = pipeline.result(invoice, attempt_count=2)
    assert result["action"] == "skipped:opted_out"
    assert result["reason"].startswith("replied STOP on ")
    assert len(linq_api.requests()) == before  # no Linq call at all


def test_a_later_word_lifts_the_stop_and_texts_go_out_again(pipeline, texted, linq_api):
    invoice, _ = texted
    linq_api.inbound(PHONE, "STOP")
    time.sleep(0.01)  # the stand-in stamps sent_at in microseconds: the later word is later
    linq_api.inbound(PHONE, "sorry, I'll pay")
    lines = acted(pipeline.relay(2))
    assert [line["action"] for line in lines] == ["opt_out_recorded", "reply_received"]
    assert lines[1]["opt_out_lifted"] is True
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "sent"


@pytest.mark.parametrize(
    "sender",
    ["jane@icloud.com", "14155550100", "+1 (415) 555-0100"],
    ids=["email", "no-plus", "spaced"],
)
def test_a_stop_from_another_handle_of_the_texted_person_opts_the_texted_number_out(
    pipeline, texted, linq_api, sender
):
    # An iMessage reply can come from the person's Apple ID email rather than the number we
    # texted, and a handle need not be written in E.164: the STOP on our chat still counts.
    invoice, chat_id = texted
    [line] = acted(pipeline.hear(reply(chat_id, "stop", sender=sender)))
    assert line["action"] == "opt_out_recorded"
    before = len(linq_api.requests())
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    result = pipeline.result(invoice, attempt_count=2)
    assert result["action"] == "skipped:opted_out"
    assert len(linq_api.requests()) == before


def test_a_stop_heard_before_the_run_recorded_its_chat_still_opts_out(pipeline, texted, linq_api):
    """The text went out but its run has not recorded the chat yet (it is between the send and
    the write, or died there and waits for a takeover): a STOP on that chat still counts."""
    invoice, chat_id = texted
    url = entry_url(pipeline, invoice, 1)

    put(url, {"state": "active", "chat_id": None})
    [line] = acted(pipeline.hear(reply(chat_id, "stop")))
    assert line["action"] == "opt_out_recorded"
    put(url, {"state": "done", "chat_id": chat_id})
    before = len(linq_api.requests())
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "skipped:opted_out"
    assert len(linq_api.requests()) == before


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


def test_a_reply_reaches_the_team_without_the_number_and_no_log_holds_the_text(
    pipeline, texted, linq_api
):
    text = "I'll pay on Friday, call me at +14155550100"
    linq_api.inbound(PHONE, text)
    lines = pipeline.relay(1)
    [line] = acted(lines)
    assert (line["action"], line["length"]) == ("reply_received", len(text))
    assert "Friday" not in str(lines)
    [note] = [n["text"] for n in pipeline.slack.notes() if n["text"].startswith("Reply from")]
    assert note.startswith("Reply from Jane (")
    assert '"I\'ll pay on Friday, call me at +1******0100"' in note
    assert "4155550100" not in note


@pytest.mark.parametrize(
    ("phone", "numbers"),
    [
        ("+447911123456", ["07911 123457", "+44 7911 123456"]),
        ("+14155550100", ["(415) 555-0199", "415.555.0123"]),
        ("+33612345678", ["06 12 34 56 79"]),
    ],
    ids=["GB", "US", "FR"],
)
def test_a_number_written_the_national_way_in_a_reply_is_masked_in_the_note(
    pipeline, phone, numbers
):
    # The note quotes what the person typed: a number in it is read as their country writes it.
    _, chat_id = send(pipeline, phone)
    pipeline.hear(reply(chat_id, "call me on " + " or ".join(numbers), sender=phone))
    [note] = [n["text"] for n in pipeline.slack.notes() if n["text"].startswith("Reply from")]
    quote = note.split('"')[1]
    assert quote.startswith("call me on +")
    for number in numbers:
        digits = "".join(c for c in number if c.isdigit())
        assert digits[-4:] in quote
        assert digits[-8:-4] not in quote  # the middle of every number is masked


def test_a_long_reply_is_quoted_short(pipeline, texted):
    _, chat_id = texted
    pipeline.hear(reply(chat_id, "x" * 1000))
    [note] = [n["text"] for n in pipeline.slack.notes() if n["text"].startswith("Reply from")]
    assert note.endswith('…"')
    assert len(note) < 400


def test_history_and_group_chats_are_ignored(pipeline, texted, linq_api):
    _, chat_id = texted
    linq_api.inbound(PHONE, "sorry, I'll pay", reconciled=True)
    [line] = acted(pipeline.relay(1))
    assert line["message"].startswith("ignored: reconciled history")
    [line] = acted(pipeline.hear(reply(chat_id, "STOP", is_group=True)))
    assert line["message"].startswith("ignored: reconciled history or a group chat")


def test_a_duplicated_webhook_is_acted_on_once(pipeline, texted, linq_api):
    linq_api.inbound(PHONE, "hello?")
    [sent] = pipeline.linq_inbox.take(1)
    pipeline.linq_inbox.received[:0] = [sent, sent]  # Linq retrying: the same id and body
    lines = acted(pipeline.relay(2))
    assert [line["action"] for line in lines] == ["reply_received", "ignored"]
    assert lines[1]["message"] == "duplicate Linq event ignored"
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
    """`phone_number.status_updated`: our line, ACTIVE and HEALTHY until now."""
    return builders.linq_line_change(SENDER, new_status=new_status, new_reputation=new_reputation)


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


def test_an_unexpected_error_is_one_masked_line_and_a_retry_without_its_text(
    pipeline, capsys, monkeypatch
):
    # A bug or an answer nobody expected, whose text quotes the person's number: one ERROR line
    # with the stack, masked, and an exception for Pub/Sub's retry that carries none of it.
    from shared.workflow import linq_events as workflow

    pipeline.app("recover_fn/main.py", "linq_event", "cloudevent")
    instance = sys.modules["main"]  # the module functions-framework just loaded

    def broken(*_: object, **__: object) -> None:
        raise KeyError(f"no chat for {PHONE}")

    monkeypatch.setattr(workflow, "handle", broken)
    data = base64.b64encode(json.dumps(reply("chat_1", "hello")).encode()).decode()
    message = {"data": data, "attributes": {"webhook_id": "msg_1"}}
    head = {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//test"}
    capsys.readouterr()
    with pytest.raises(RetryableError) as raised:
        instance.linq_event(CloudEvent({**head, "id": "m1"}, {"message": message}))
    assert str(raised.value) == "unexpected KeyError; see the line above"
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    out = capsys.readouterr().out
    [line] = [json.loads(text) for text in out.splitlines()]
    assert (line["severity"], line["webhook_id"]) == ("ERROR", "msg_1")
    assert line["message"] == "will retry: unexpected KeyError: 'no chat for +1******0100'"
    assert "Traceback" in line["stack_trace"]
    assert PHONE not in out


@pytest.mark.parametrize(
    "message",
    [
        # Nested past the parser's recursion limit.
        {
            "data": base64.b64encode(b"[" * 100_000 + b"]" * 100_000).decode(),
            "attributes": {"webhook_id": "msg_1"},
        },
        # Attributes that are not an object.
        {"data": base64.b64encode(b"{}").decode(), "attributes": ["webhook_id"]},
    ],
    ids=["deeply nested", "attributes not an object"],
)
def test_an_unreadable_queued_event_is_logged_and_acknowledged(capsys, message):
    # The subscriber reads what the intake queued; a message it cannot read is dropped with one
    # line, never raised for a redelivery that would fail the same way.
    from pathlib import Path

    import functions_framework

    source = Path(__file__).resolve().parents[1] / "recover_fn" / "main.py"
    subscriber = functions_framework.create_app("linq_event", str(source), "cloudevent")
    capsys.readouterr()
    answer = subscriber.test_client().post(
        "/",
        headers={
            "ce-id": "m1",
            "ce-specversion": "1.0",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
            "ce-source": "//pubsub.googleapis.com/projects/demo-proj/topics/linq",
        },
        json={"message": message},
    )
    assert answer.status_code == 200
    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert line["severity"] == "ERROR"
    assert line["message"].startswith("malformed Linq event dropped")


def test_a_message_from_another_handle_in_the_chat_does_not_lift_the_texted_numbers_stop(
    pipeline, texted, linq_api
):
    # Only the sender's own handle comes off the list: a message from any other handle in the
    # chat (our own line's, an email handle) leaves the texted number's STOP in place.
    invoice, chat_id = texted
    now = dt.datetime.now(dt.UTC)
    acted(pipeline.hear(reply(chat_id, "STOP", sent_at=now.isoformat())))
    later = (now + dt.timedelta(seconds=5)).isoformat()
    acted(pipeline.hear(reply(chat_id, "Noted, no more texts.", sender=SENDER, sent_at=later)))
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "skipped:opted_out"


def test_a_stop_recovered_late_as_history_still_opts_out(pipeline, texted, linq_api):
    # Linq recovered the message after the fact (`reconciled_at`): not a reason to reply to it,
    # but the person did say stop, and a lower-case one is on nobody's list but ours.
    invoice, _ = texted
    linq_api.inbound(PHONE, "stop", reconciled=True)
    [line] = acted(pipeline.relay(1))
    assert line["action"] == "opt_out_recorded"
    before = len(linq_api.requests())
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "skipped:opted_out"
    assert len(linq_api.requests()) == before
