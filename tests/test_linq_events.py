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
from shared.adapters.ledger import DEFAULT_LEASE, Ledger
from shared.adapters.linq_webhook import parse_linq_webhook
from shared.core.entry import EntryKey, Part, State
from shared.core.errors import RetryableError, WebhookRejected
from shared.core.linq_events import Delivery, read_event
from shared.core.outcome import Action
from standins import builders
from tests.harness import LINQ_SECRET, SENDER, customer_calls, entry, log_lines, rewrite

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


# --- matching (the STOP rule itself: tests/test_stop_rule.py) -------------------------------


def test_a_delivery_is_read_by_its_key_and_a_failure_by_its_message_and_chat():
    delivered = {
        "event_type": "message.delivered",
        "data": {"id": "m1", "idempotency_key": "in_1Ab-3-link", "chat": {"id": "c1"}},
    }
    assert read_event(delivered) == Delivery(
        True, EntryKey("in_1Ab", 3), Part.LINK, "m1", "c1", None, None
    )
    # The SDK's message.failed: no idempotency key, the message and chat by id.
    failed = {
        "event_type": "message.failed",
        "data": {"message_id": "m2", "chat_id": "c2", "code": 4001, "reason": "x"},
    }
    assert read_event(failed) == Delivery(False, None, None, "m2", "c2", 4001, "x")
    foreign = {"event_type": "message.delivered", "data": {"idempotency_key": "their-key"}}
    assert read_event(foreign).key is None


def test_a_reply_is_read_from_the_handle_object_or_a_plain_string():
    handle = {"handle": PHONE, "is_me": False, "service": "iMessage"}
    for from_handle in (handle, PHONE):
        event = {
            "event_type": "message.received",
            "data": {"sender_handle": from_handle, "parts": [{"type": "text", "value": "hi"}]},
        }
        assert read_event(event).from_handle == PHONE


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


def reply(chat_id: str, text: str, *, from_handle: str = PHONE, **extra: Any) -> dict[str, Any]:
    """`message.received`: `text` from the handle `from_handle` in the chat `chat_id` of our
    line (`extra` as for builders.linq_received)."""
    return builders.linq_received(chat_id, text, sender=from_handle, line=SENDER, **extra)


def envelope(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """A Linq webhook event around `data`, with the whole 2026-02-03 envelope."""
    return {
        "api_version": "v3",
        "webhook_version": "2026-02-03",
        "event_type": kind,
        "event_id": str(uuid.uuid4()),
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "partner_id": "partner_test",
        "trace_id": uuid.uuid4().hex,
        "data": data,
    }


def chat_handle(handle: str, is_me: bool) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "handle": handle,
        "joined_at": "2026-01-01T00:00:00+00:00",
        "service": "iMessage",
        "is_me": is_me,
    }


def message(
    chat_id: str,
    *parts: dict[str, Any],
    from_handle: str = PHONE,
    health: str = "HEALTHY",
    marked_at: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    """A `message.received` as the SDK's MessageEventV2 defines it (any parts, the chat's
    health), for the variants the stand-in does not send."""
    is_me = from_handle == SENDER
    status = {
        "status": health,
        "doc_url": "https://docs.linqapp.com/chat-health",
        "updated_at": marked_at or "2026-01-01T00:00:00+00:00",
    }
    body = {
        "id": str(uuid.uuid4()),
        "direction": "outbound" if is_me else "inbound",
        "sender_handle": chat_handle(from_handle, is_me),
        "parts": list(parts),
        "service": "iMessage",
        "chat": {
            "id": chat_id,
            "is_group": False,
            "owner_handle": chat_handle(SENDER, True),
            "health_status": status,
        },
        "sent_at": dt.datetime.now(dt.UTC).isoformat(),
        **data,
    }
    return envelope("message.received", body)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "value": value}


def media(mime: str) -> dict[str, Any]:
    return {
        "type": "media",
        "id": str(uuid.uuid4()),
        "filename": "IMG_0001",
        "mime_type": mime,
        "size_bytes": 1024,
        "url": "https://cdn.linqapp.com/a/IMG_0001",
    }


def link(url: str) -> dict[str, Any]:
    return {"type": "link", "value": url}


def failure(chat_id: str) -> dict[str, Any]:
    """A `message.failed` without its optional `message_id`, as the SDK allows."""
    data = {"code": 4001, "chat_id": chat_id, "reason": "Message not delivered"}
    return envelope("message.failed", {**data, "failed_at": dt.datetime.now(dt.UTC).isoformat()})


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


def delivered(pipeline, invoice, part: Part) -> bool | None:
    """Linq's word on a part of the entry's text: delivered, failed (False), or none yet."""
    report = entry(pipeline, invoice).report(part)
    return None if report is None else report.delivered


def test_a_send_followed_by_delivered(pipeline):
    invoice, _ = send(pipeline)
    lines = acted(pipeline.relay(2))
    assert [(line["action"], line["part"], line["invoice_id"]) for line in lines] == [
        ("delivered", "text", invoice["id"]),
        ("delivered", "link", invoice["id"]),
    ]
    assert (delivered(pipeline, invoice, Part.TEXT), delivered(pipeline, invoice, Part.LINK)) == (
        True,
        True,
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
    assert entry(pipeline, invoice).text_report.code == 4001


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
    assert delivered(pipeline, invoice, Part.LINK) is True
    link_id = entry(pipeline, invoice).link_message_id
    late = delivery("message.failed", message_id=link_id, chat_id=chat_id)
    [line] = acted(pipeline.hear(late))
    assert line["message"] == "ignored: delivered already (a delivery is final)"
    assert delivered(pipeline, invoice, Part.LINK) is True


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
    link_id = entry(pipeline, invoice).link_message_id

    rewrite(pipeline, invoice, state=State.ACTIVE, link_message_id=None)
    late = delivery("message.failed", message_id=link_id, chat_id=chat_id, code=4001)
    lines = pipeline.hear(late)
    [retry] = [line for line in lines if line["message"].startswith("will retry")]
    assert "has not recorded it yet" in retry["message"]
    assert acted(lines) == []
    rewrite(pipeline, invoice, state=State.DONE, link_message_id=link_id)
    [line] = acted(pipeline.hear(late))
    assert (line["action"], line["part"]) == ("delivery_failed", "link")
    assert (line["invoice_id"], line["attempt"]) == (invoice["id"], 1)


@pytest.mark.parametrize("text", ["stop", "Stop texting me"])
def test_stop_then_a_new_failed_payment_is_skipped_with_no_linq_call(
    pipeline, texted, linq_api, text
):
    invoice, _ = texted
    # Lower case, or a sentence: Linq itself would not opt the number out; our list does.
    assert linq_api.inbound(PHONE, text) is False
    [line] = acted(pipeline.relay(1))
    assert (line["action"], line["changed"]) == ("opt_out_recorded", True)
    assert "stop" not in str({k: v for k, v in line.items() if k != "message"}).lower()
    [note] = [n["text"] for n in pipeline.slack.notes() if " opted out" in n["text"]]
    assert note.startswith("Jane (")
    assert note.endswith(f'opted out, no more texts to +1******0100: "{text}"')
    before = len(linq_api.requests())
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    result = pipeline.result(invoice, attempt_count=2)
    assert result["action"] == "skipped:opted_out"
    assert result["reason"].startswith("replied STOP on ")
    assert len(linq_api.requests()) == before  # no Linq call at all


def test_only_start_lifts_a_stop_and_texts_go_out_again(pipeline, texted, linq_api):
    invoice, chat_id = texted
    now = dt.datetime.now(dt.UTC)
    later = [(now + dt.timedelta(seconds=s)).isoformat() for s in range(4)]
    acted(pipeline.hear(reply(chat_id, "Stop texting me", sent_at=later[0])))
    # Anything but START or UNSTOP keeps the number on the list, and still reaches the team.
    [line] = acted(pipeline.hear(reply(chat_id, "Sorry, I didn't mean that", sent_at=later[1])))
    assert (line["action"], line["opted_out"]) == ("reply_received", True)
    [note] = [n["text"] for n in pipeline.slack.notes() if n["text"].startswith("Reply from")]
    assert note.endswith(
        '"Sorry, I didn\'t mean that" (still opted out: only START or UNSTOP lifts it)'
    )
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "skipped:opted_out"
    [line] = acted(pipeline.hear(reply(chat_id, "Start", sent_at=later[2])))
    assert line["action"] == "opt_out_lifted"
    [note] = [n["text"] for n in pipeline.slack.notes() if "off our opt-out list" in n["text"]]
    assert note.endswith('wrote "Start": off our opt-out list, +1******0100 may be texted again')
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 3})
    assert pipeline.result(invoice, attempt_count=3)["action"] == "sent"


@pytest.mark.parametrize(
    "later",
    [
        {"text": "Sorry, I didn't mean that"},
        {"text": "Stop texting me"},
        {"parts": [media("image/jpeg")]},
        {"parts": [link("https://example.com/receipt")]},
        {"parts": [], "zero_retention": True},
    ],
    ids=["a-sentence", "another-stop", "a-photo", "a-link", "zero-retention"],
)
def test_a_later_message_that_is_not_start_keeps_the_number_on_the_list(
    pipeline, texted, linq_api, later
):
    # Before, any later message but a STOP word took the number off the list, as Linq does.
    invoice, chat_id = texted
    now = dt.datetime.now(dt.UTC)
    acted(pipeline.hear(reply(chat_id, "STOP", sent_at=now.isoformat())))
    after = (now + dt.timedelta(seconds=5)).isoformat()
    event = message(chat_id, *later.get("parts", [text(later.get("text", ""))]), sent_at=after)
    event["data"]["zero_retention"] = later.get("zero_retention", False)
    acted(pipeline.hear(event))
    before = len(linq_api.requests())
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "skipped:opted_out"
    assert len(linq_api.requests()) == before


@pytest.mark.parametrize(
    "from_handle",
    ["jane@icloud.com", "14155550100", "+1 (415) 555-0100", "jane/doe%2F@icloud.com"],
    ids=["email", "no-plus", "spaced", "email-with-slash-and-percent"],
)
def test_a_stop_from_another_handle_of_the_texted_person_opts_the_texted_number_out(
    pipeline, texted, linq_api, from_handle
):
    # An iMessage reply can come from the person's Apple ID email rather than the number we
    # texted, and a handle need not be written in E.164: the STOP on our chat still counts.
    invoice, chat_id = texted
    [line] = acted(pipeline.hear(reply(chat_id, "stop", from_handle=from_handle)))
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

    rewrite(pipeline, invoice, state=State.ACTIVE, chat_id=None)
    [line] = acted(pipeline.hear(reply(chat_id, "stop")))
    assert line["action"] == "opt_out_recorded"
    rewrite(pipeline, invoice, state=State.DONE, chat_id=chat_id)
    before = len(linq_api.requests())
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "skipped:opted_out"
    assert len(linq_api.requests()) == before


def test_an_older_stop_arriving_after_a_newer_start_does_not_opt_out(pipeline, texted):
    invoice, chat_id = texted
    now = dt.datetime.now(dt.UTC)
    acted(pipeline.hear(reply(chat_id, "STOP", sent_at=now.isoformat())))
    acted(
        pipeline.hear(reply(chat_id, "START", sent_at=(now + dt.timedelta(seconds=9)).isoformat()))
    )
    [line] = acted(
        pipeline.hear(reply(chat_id, "STOP", sent_at=(now + dt.timedelta(seconds=1)).isoformat()))
    )
    assert line["changed"] is False
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "sent"


def test_a_start_arriving_before_an_older_stop_still_wins(pipeline, texted):
    # Linq reorders and retries: the START (written last) is heard first, from a handle that
    # was never on the list; the STOP written before it arrives afterwards and changes nothing.
    invoice, chat_id = texted
    now = dt.datetime.now(dt.UTC)
    acted(
        pipeline.hear(reply(chat_id, "START", sent_at=(now + dt.timedelta(seconds=9)).isoformat()))
    )
    [line] = acted(pipeline.hear(reply(chat_id, "STOP", sent_at=now.isoformat())))
    assert (line["action"], line["changed"]) == ("opt_out_recorded", False)
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "sent"


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
    pipeline.hear(reply(chat_id, "call me on " + " or ".join(numbers), from_handle=phone))
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
    assert pipeline.backend.pull(pipeline.linq_topic) == []


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
    acted(pipeline.hear(reply(chat_id, "Noted, no more texts.", from_handle=SENDER, sent_at=later)))
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


# --- what Linq's message events really carry ----------------------------------------------------


def notes(pipeline, containing: str) -> list[str]:
    return [n["text"] for n in pipeline.slack.notes() if containing in n["text"]]


def next_attempt(pipeline, invoice: dict[str, Any], attempt: int = 2) -> dict[str, Any]:
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": attempt})
    return pipeline.result(invoice, attempt_count=attempt)


def test_a_zero_retention_stop_is_read_from_linq_s_mark_on_the_chat(pipeline, texted, linq_api):
    # On a zero-retention line `parts` is always empty: the STOP is known only from Linq's mark.
    # Before, it was a reply of length 0 (`Reply from Jane: ""`) and nobody was opted out.
    invoice, chat_id = texted
    marked = dt.datetime.now(dt.UTC).isoformat()
    event = message(chat_id, health="OPTED_OUT", marked_at=marked, zero_retention=True)
    [line] = acted(pipeline.hear(event))
    assert (line["action"], line["changed"]) == ("opt_out_recorded", True)
    [note] = notes(pipeline, "opted out")
    assert note.endswith(
        "opted out (Linq marks the chat opted out), no more texts to +1******0100: "
        '"[not kept: a zero-retention line]"'
    )
    assert notes(pipeline, "Reply from") == []
    before = len(linq_api.requests())
    assert next_attempt(pipeline, invoice)["action"] == "skipped:opted_out"
    assert len(linq_api.requests()) == before


def test_linq_s_mark_on_a_delivered_message_s_chat_opts_out(pipeline, linq_api):
    # Every message event carries the chat's health: a delivery into a chat Linq has marked
    # OPTED_OUT (the person said STOP between our text and our link) opts them out too.
    invoice, chat_id = send(pipeline)
    pipeline.linq_inbox.take(2)
    marked = dt.datetime.now(dt.UTC).isoformat()
    data = message(chat_id, link(invoice["hosted_invoice_url"]), from_handle=SENDER)["data"]
    data["chat"]["health_status"].update(status="OPTED_OUT", updated_at=marked)
    data.update(idempotency_key=f"{invoice['id']}-1-link", delivered_at=marked)
    [line] = acted(pipeline.hear(envelope("message.delivered", data)))
    assert (line["action"], line["part"], line["opt_out_recorded"]) == ("delivered", "link", True)
    assert len(notes(pipeline, "opted out (Linq marks the chat opted out)")) == 1
    assert next_attempt(pipeline, invoice)["action"] == "skipped:opted_out"


@pytest.mark.parametrize(
    "parts",
    [
        [text("STOP"), media("image/png"), text("STOP")],
        [text("CANCEL"), media("image/png"), text("I get paid Friday")],
    ],
    ids=["stop-photo-stop", "cancel-photo-sentence"],
)
def test_each_text_part_is_judged_for_the_stop_rule(pipeline, texted, parts):
    # Before, the parts were joined ("STOP STOP") and judged only as a whole.
    invoice, chat_id = texted
    [line] = acted(pipeline.hear(message(chat_id, *parts)))
    assert line["action"] == "opt_out_recorded"
    assert next_attempt(pipeline, invoice)["action"] == "skipped:opted_out"


def test_a_failure_without_a_message_id_is_matched_on_its_chat(pipeline):
    # The SDK makes `message_id` optional on message.failed. Before: "a message the product
    # did not send". The text is the part Linq has said nothing of first, then the link.
    invoice, chat_id = send(pipeline)
    pipeline.linq_inbox.take(2)  # the stand-in's deliveries, never heard
    [line] = acted(pipeline.hear(failure(chat_id)))
    assert (line["action"], line["part"], line["code"]) == ("delivery_failed", "text", 4001)
    [line] = acted(pipeline.hear(failure(chat_id)))
    assert (line["action"], line["part"]) == ("delivery_failed", "link")
    assert (delivered(pipeline, invoice, Part.TEXT), delivered(pipeline, invoice, Part.LINK)) == (
        False,
        False,
    )


def test_a_failure_without_a_message_id_after_both_deliveries_changes_nothing(pipeline, texted):
    invoice, chat_id = texted
    [line] = acted(pipeline.hear(failure(chat_id)))
    assert line["message"] == "ignored: every message sent into the chat was delivered"
    assert delivered(pipeline, invoice, Part.TEXT) is True


@pytest.mark.parametrize(
    "ours",
    [{"direction": "outbound"}, {"sender_handle": chat_handle(PHONE, True)}],
    ids=["outbound", "is_me"],
)
def test_a_message_our_own_line_sent_is_not_a_reply(pipeline, texted, ours):
    # Our own text says "Reply STOP to opt out": read as a customer's words it would opt them out.
    invoice, chat_id = texted
    event = message(
        chat_id, text("Hi Jane, your payment didn't go through. Reply STOP to opt out.")
    )
    event["data"].update(ours)
    [line] = acted(pipeline.hear(event))
    assert (line["severity"], line["message"]) == ("INFO", "ignored: a message our own line sent")
    assert notes(pipeline, "Jane") == []
    assert next_attempt(pipeline, invoice)["action"] == "sent"


def card(fallback: str) -> dict[str, Any]:
    return {
        "type": "imessage_app",
        "app": {"bundle_id": "com.example.app", "name": "Example", "team_id": "ABCDE12345"},
        "layout": {"caption": "Shared"},
        "url": "https://example.com/card",
        "fallback_text": fallback,
    }


@pytest.mark.parametrize(
    ("parts", "quote"),
    [
        ([media("image/heic")], "[photo]"),
        ([link("https://www.example.com/receipt?id=42")], "[link: www.example.com]"),
        ([card("Call me on +14155550100")], "[card: Call me on +1******0100]"),
        ([text("paid, see"), media("application/pdf")], "paid, see [attachment]"),
    ],
    ids=["photo", "link", "card", "text-and-file"],
)
def test_a_reply_without_words_is_quoted_with_what_it_has(pipeline, texted, parts, quote):
    # Before, each of these reached the team as `Reply from Jane (...): ""`.
    _, chat_id = texted
    [line] = acted(pipeline.hear(message(chat_id, *parts)))
    assert line["action"] == "reply_received"
    [note] = notes(pipeline, "Reply from")
    assert note.endswith(f': "{quote}"')


# --- a STOP is ours whatever became of the entry ------------------------------------------------


@pytest.mark.parametrize("state", [State.DEFERRED, State.FAILED, State.DONE, State.RELEASED])
def test_a_stop_on_a_chat_its_entry_never_recorded_is_ours_in_any_state(
    pipeline, texted, linq_api, state
):
    """Linq took the text but its answer was lost (a read timeout): the entry holds the plan, not
    the chat. Its retry was then deferred (after 21:00), failed, ended, or released: before, only
    an `active` entry made the STOP ours, and it was ignored."""
    invoice, chat_id = texted
    rewrite(pipeline, invoice, state=state, chat_id=None)
    [line] = acted(pipeline.hear(reply(chat_id, "stop")))
    assert (line["action"], line["invoice_id"]) == ("opt_out_recorded", invoice["id"])


def test_a_stop_while_the_text_waits_for_the_morning_stops_the_release(pipeline, texted, linq_api):
    # The night: the text went out but its answer was lost, the retry after 21:00 was
    # deferred, the customer wrote "Stop texting me", and the morning's release sent the link.
    invoice, chat_id = texted
    night_over = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rewrite(
        pipeline,
        invoice,
        state=State.DEFERRED,
        chat_id=None,
        due_at=night_over,
        action=Action.DEFERRED,
    )
    [line] = acted(pipeline.hear(reply(chat_id, "Stop texting me")))
    assert line["action"] == "opt_out_recorded"
    before = len(customer_calls(linq_api))
    assert pipeline.sweep().status_code == 200
    [released] = pipeline.published()
    pipeline.capsys.readouterr()
    assert pipeline.push(released).status_code == 200
    [result] = [entry for entry in log_lines(pipeline.capsys.readouterr().out) if "action" in entry]
    assert result["action"] == "skipped:opted_out"
    assert len(customer_calls(linq_api)) == before


def test_a_stop_in_words_between_the_text_and_the_link_stops_the_link(pipeline, linq_api):
    # The link's send failed (Linq 503) and waits for its retry; meanwhile the customer writes
    # "Stop texting me", which Linq does not block. Our list is read again before the link.
    invoice = pipeline.customer_with_invoice(builders.customer(phone=PHONE))
    payment = pipeline.payment(invoice)
    linq_api.add_fault(r"/messages$", status=503)
    assert pipeline.recover(payment, "m-1").status_code == 500
    assert linq_api.inbound(PHONE, "Stop texting me") is False
    assert "opt_out_recorded" in [line["action"] for line in acted(pipeline.relay(2))]
    result = pipeline.result(invoice, message_id="m-1", event_id=payment.event_id)
    assert result["action"] == "sent"
    assert result["reason"].startswith("link not sent: replied STOP on ")
    assert [m["parts"][0]["type"] for m in linq_api.messages()] == ["text"]


# --- the handling of each event: a lease, not a window ---------------------------------------


def retried(lines: list[dict[str, Any]]) -> str:
    """The reason of the one `will retry` line, there being no outcome line."""
    assert acted(lines) == [], lines
    [line] = [line for line in lines if line["message"].startswith("will retry")]
    return line["message"]


def after_the_lease(pipeline) -> None:
    """Move the functions' clock past any lease taken now (instead of waiting for it)."""
    pipeline.clock.advance(DEFAULT_LEASE + dt.timedelta(seconds=1))


def test_a_stop_whose_first_handling_failed_is_handled_on_redelivery(
    pipeline, texted, linq_api, monkeypatch
):
    """The run claims the webhook id, then Firestore fails: neither the STOP nor the end of the
    claim's lease is written. Before, the redelivery seconds later read the claim as "being
    handled", was acknowledged as a duplicate, and the STOP was gone."""
    invoice, chat_id = texted
    event, webhook_id = reply(chat_id, "stop"), f"msg_{uuid.uuid4().hex}"
    documents = pipeline.backend.documents
    real = {name: getattr(documents, name) for name in ("read", "write", "find")}
    outage: list[bool] = []

    def failing(name: str) -> Any:
        def call(*args: Any) -> Any:
            if outage:
                raise RetryableError("Firestore unreachable: ConnectTimeout", vendor="firestore")
            answer = real[name](*args)
            # The claim is the first write: Firestore is gone from then on.
            outage.extend([True] if name == "write" else [])
            return answer

        return call

    for name in real:
        monkeypatch.setattr(documents, name, failing(name))
    assert "Firestore unreachable" in retried(pipeline.hear(event, webhook_id=webhook_id))
    for name, call in real.items():
        monkeypatch.setattr(documents, name, call)
    # Redelivered while the failed run's lease is live: retried, never taken for a duplicate.
    reason = retried(pipeline.hear(event, webhook_id=webhook_id))
    assert "another run is handling this Linq event" in reason
    after_the_lease(pipeline)
    [line] = acted(pipeline.hear(event, webhook_id=webhook_id))
    assert line["action"] == "opt_out_recorded"
    [line] = acted(pipeline.hear(event, webhook_id=webhook_id))
    assert line["message"] == "duplicate Linq event ignored"
    assert next_attempt(pipeline, invoice)["action"] == "skipped:opted_out"


def test_a_stop_whose_run_died_after_its_claim_is_handled_once_the_lease_runs_out(pipeline, texted):
    _, chat_id = texted
    event, webhook_id = reply(chat_id, "STOP"), f"msg_{uuid.uuid4().hex}"
    # What a run killed (or timed out) right after its claim leaves: a lease nobody will end.
    assert pipeline.ledger.claim_event(webhook_id, "killed") is not None
    assert "another run is handling" in retried(pipeline.hear(event, webhook_id=webhook_id))
    after_the_lease(pipeline)
    [line] = acted(pipeline.hear(event, webhook_id=webhook_id))
    assert line["action"] == "opt_out_recorded"


def test_a_stop_written_by_a_run_that_then_failed_is_restated_with_its_note(
    pipeline, texted, monkeypatch
):
    # The STOP was written but the answer was lost (a timeout after the commit): the run fails,
    # its redelivery finds the number listed already. Before, it said `changed: false` and the
    # team never heard that the person opted out.
    _, chat_id = texted
    event, webhook_id = reply(chat_id, "stop"), f"msg_{uuid.uuid4().hex}"
    set_opt_out = Ledger.set_opt_out

    def written_then_lost(self: Any, *args: Any) -> bool:
        set_opt_out(self, *args)
        raise RetryableError("Firestore unreachable: ReadTimeout", vendor="firestore")

    monkeypatch.setattr(Ledger, "set_opt_out", written_then_lost)
    assert "ReadTimeout" in retried(pipeline.hear(event, webhook_id=webhook_id))
    monkeypatch.setattr(Ledger, "set_opt_out", set_opt_out)
    [line] = acted(pipeline.hear(event, webhook_id=webhook_id))
    assert (line["action"], line["changed"]) == ("opt_out_recorded", True)
    assert len(notes(pipeline, "opted out, no more texts to +1******0100")) == 1
