"""Every Linq webhook the stand-in sends and the tests build is one Linq's SDK defines
(linq-python's pydantic models, read strictly and with no field they do not define:
tests/linq_sdk.py). Checked for every event the stand-in can send, through every path that sends
one, and for every builder with the variations the tests use; `Pipeline.hear` and
`Pipeline.relay` check each event a test hands the product as well."""

from __future__ import annotations

import ast
import base64
import inspect
import json
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from linq.types import ChatCreateResponse, HandleCheckResponse, PhoneNumberListResponse
from linq.types.chats import MessageSendResponse

from bench import fixtures as bench_fixtures
from shared.core.linq_events import SUBSCRIBED_EVENTS
from standins import LINQ_TOKEN, LinqStandin, builders
from standins.linq_api import WEBHOOK_EVENTS
from tests import linq_sdk
from tests import test_linq_events as helpers
from tests.harness import LinqInbox
from tools.linq_webhook import EVENTS as TOOL_EVENTS
from tools.linq_webhook import WEBHOOK_VERSION as TOOL_VERSION

ROOT = Path(__file__).resolve().parents[1]
LINE, RCS_LINE = "+12223334444", "+12223335555"
SAM, ALEX, SMS_ONLY = "+15556667777", "+15556668888", "+15556669999"
EMAIL = "sam@icloud.com"
TEXT = {"type": "text", "value": "Hi Sam, your last payment didn't go through."}
LINK = {"type": "link", "value": "https://invoice.stripe.com/i/acct_1StandIn/test_abc?s=ap"}


# --- the judge ----------------------------------------------------------------------------------


def test_the_product_subscribes_to_the_events_and_format_the_stand_in_sends_and_the_sdk_models():
    assert set(SUBSCRIBED_EVENTS) == set(TOOL_EVENTS) == set(WEBHOOK_EVENTS) == set(linq_sdk.MODELS)
    assert TOOL_VERSION == builders.LINQ_WEBHOOK_VERSION == linq_sdk.FORMAT


def received() -> dict[str, Any]:
    return builders.linq_received("chat_1", "STOP", sender=SAM, line=LINE)


def test_a_well_formed_event_has_no_problem():
    assert linq_sdk.problems(received()) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        # Each changes one thing; the first two are what issue 25 found in the samples.
        (
            lambda e: e["data"]["chat"]["health_status"].update(doc_url=None),
            "data.chat.health_status.doc_url: Input should be a valid string",
        ),
        (
            lambda e: e["data"]["chat"].update(owner_handle=LINE),
            "data.chat.owner_handle: Input should be an object",
        ),
        (lambda e: e["data"].pop("service"), "data.service: Field required"),
        (lambda e: e["data"]["chat"].pop("health_status"), "data.chat.health_status: Field"),
        (lambda e: e.pop("partner_id"), "partner_id: Field required"),
        (lambda e: e["data"].update(is_from_me=False), "data.is_from_me: a field the SDK does"),
        (
            lambda e: e["data"]["sender_handle"].update(phone=SAM),
            "data.sender_handle.phone: a field the SDK does not define",
        ),
        (
            lambda e: e["data"]["parts"][0].update(text="STOP"),
            "data.parts.0.text: a field the SDK does not define",
        ),
        (lambda e: e["data"].update(sent_at="yesterday"), "data.sent_at: Input should be"),
        (lambda e: e["data"]["chat"].update(is_group="false"), "data.chat.is_group: Input should"),
        (lambda e: e.update(event_type="message.exploded"), "event_type 'message.exploded' is"),
        (lambda e: e.update(webhook_version="2025-01-01"), "webhook_version: '2025-01-01', not"),
    ],
    ids=[
        "doc_url-null",
        "owner-handle-string",
        "no-service",
        "no-health",
        "no-envelope",
        "undefined-field",
        "undefined-nested-field",
        "undefined-part-field",
        "not-a-time",
        "string-for-bool",
        "unknown-type",
        "older-format",
    ],
)
def test_the_judge_names_what_the_sdk_would_not_accept(change, problem):
    event = received()
    change(event)
    found = linq_sdk.problems(event)
    assert any(line.startswith(problem) for line in found), found
    with pytest.raises(AssertionError, match="not a Linq webhook as the SDK defines it"):
        linq_sdk.check(event)


def test_the_judge_names_a_failure_with_fields_the_sdk_does_not_define_and_no_failed_at():
    # The tests' message.failed before issue 25: a message's id and key, and no failed_at.
    failed = builders.linq_failed(message_id="m1", chat_id="c1")
    failed["data"].update(id="m1", idempotency_key="in_1Ab-1-text", code="4001")
    del failed["data"]["failed_at"]
    assert linq_sdk.problems(failed) == [
        "data.code: Input should be a valid integer",
        "data.failed_at: Field required",
        "data.id: a field the SDK does not define",
        "data.idempotency_key: a field the SDK does not define",
    ]


@pytest.mark.parametrize("body", ["[]", "null", '"message.received"', "{}"])
def test_the_judge_answers_a_body_that_is_no_event(body):
    [problem] = linq_sdk.problems(body)
    assert problem.startswith("event_type None is none of")


# --- every event the stand-in sends ------------------------------------------------------------


@pytest.fixture
def linq() -> Iterator[tuple[LinqStandin, LinqInbox]]:
    """The stand-in with an iMessage line and an RCS line, an SMS-only recipient, and every
    event subscribed to an inbox that keeps each request as it came."""
    inbox = LinqInbox()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    scenario = {
        "phone_numbers": [builders.linq_line(LINE), builders.linq_line(RCS_LINE, line_type="RCS")],
        "capabilities": {SMS_ONLY: {"imessage": False, "selected_service": "SMS"}},
        "webhook": {"url": inbox.url, "secret": secret},
    }
    with LinqStandin(scenario=scenario) as server:
        yield server, inbox
    inbox.close()


def call(server: LinqStandin, path: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {LINQ_TOKEN}"}
    answer = requests.post(f"{server.url}{path}", json=body, headers=headers, timeout=5)
    assert answer.ok, answer.text
    return answer.json()


def chat(server: LinqStandin, to: list[str], *, line: str = LINE, **message: Any) -> str:
    """A new chat opened with TEXT (and `message`'s other fields); its id."""
    body = {"from": line, "to": to, "message": {"parts": [TEXT], **message}}
    return call(server, "/v3/chats", body)["chat"]["id"]


def send(server: LinqStandin, chat_id: str, **message: Any) -> dict[str, Any]:
    return call(server, f"/v3/chats/{chat_id}/messages", {"message": message})["message"]


def text_delivered(server: LinqStandin) -> None:
    chat(server, [SAM], idempotency_key="in_1Ab-1-text")


def link_delivered(server: LinqStandin) -> None:
    send(server, chat(server, [SAM]), parts=[LINK], idempotency_key="in_1Ab-1-link")


def media_delivered(server: LinqStandin) -> None:
    media = [
        {"type": "media", "url": "https://example.com/receipts/march.pdf"},
        {"type": "media", "attachment_id": "att_1"},
        {"type": "media", "url": "https://example.com/"},
    ]
    send(server, chat(server, [SAM]), parts=[TEXT, *media])


def effect_and_reply_delivered(server: LinqStandin) -> None:
    chat_id = chat(server, [SAM])
    first = send(server, chat_id, parts=[TEXT])
    effect = {"type": "bubble", "name": "slam"}
    reply_to = {"message_id": first["id"], "part_index": 0}
    send(server, chat_id, parts=[TEXT], effect=effect, reply_to=reply_to)


def sms_from_an_rcs_line(server: LinqStandin) -> None:
    chat(server, [SMS_ONLY], line=RCS_LINE, preferred_service="SMS")


def undeliverable(server: LinqStandin) -> None:
    server.load({"undeliverable": [SAM]})
    chat(server, [SAM])


def flapping(server: LinqStandin) -> None:
    server.load({"delivery_flaps": [SAM]})
    chat(server, [SAM])


def replies_stop_and_history(server: LinqStandin) -> None:
    chat(server, [SAM])
    server.inbound(SAM, "I'll pay on Friday")
    server.inbound(SAM, "STOP")  # the chat reads OPTED_OUT
    server.inbound(SAM, "paid it yesterday", reconciled=True)


def group_and_email(server: LinqStandin) -> None:
    group = chat(server, [SAM, ALEX])
    server.inbound(ALEX, "STOP", chat_id=group)
    chat(server, [EMAIL])
    server.inbound(EMAIL, "who is this?")


def line_changes(server: LinqStandin) -> None:
    server.set_line_status(LINE, status="FLAGGED", reputation="AT_RISK")
    server.set_line_status(LINE, reputation="CRITICAL")
    server.set_line_status(LINE, status="ACTIVE", reputation="HEALTHY")


D, F, R, S = (
    "message.delivered",
    "message.failed",
    "message.received",
    "phone_number.status_updated",
)
# Every path by which the stand-in sends a webhook, and the events it sends, in order.
STANDIN_PATHS: list[tuple[Callable[[LinqStandin], None], list[str]]] = [
    (text_delivered, [D]),
    (link_delivered, [D, D]),
    (media_delivered, [D, D]),
    (effect_and_reply_delivered, [D, D, D]),
    (sms_from_an_rcs_line, [D]),
    (undeliverable, [F]),
    (flapping, [F, D]),
    (replies_stop_and_history, [D, R, R, R]),
    (group_and_email, [D, R, D, R]),
    (line_changes, [S, S, S]),
]


def test_the_paths_cover_every_event_the_stand_in_sends():
    assert {kind for _, kinds in STANDIN_PATHS for kind in kinds} == set(WEBHOOK_EVENTS)


@pytest.mark.parametrize(
    ("path", "kinds"), STANDIN_PATHS, ids=[path.__name__ for path, _ in STANDIN_PATHS]
)
def test_every_webhook_the_stand_in_sends_is_the_sdks(linq, path, kinds):
    server, inbox = linq
    path(server)
    bodies = [body for _, body in inbox.take(len(kinds))]
    assert [json.loads(body)["event_type"] for body in bodies] == kinds
    for body in bodies:
        linq_sdk.check(body)


def test_the_stand_in_reports_what_linq_stored_of_each_part(linq):
    server, inbox = linq
    media_delivered(server)
    _, (_, body) = inbox.take(2)
    text, pdf, uploaded, unnamed = json.loads(body)["data"]["parts"]
    assert text == TEXT
    assert (pdf["filename"], pdf["mime_type"]) == ("march.pdf", "application/pdf")
    assert (uploaded["id"], unnamed["filename"]) == ("att_1", "attachment")
    assert pdf["url"].startswith("https://cdn.linqapp.com/attachments/")
    # Linq's own record of the sends keeps the parts as they were asked for.
    assert server.messages()[-1]["parts"][1] == {
        "type": "media",
        "url": "https://example.com/receipts/march.pdf",
    }


def test_an_opted_out_chat_reads_opted_out_with_its_guide_section(linq):
    server, inbox = linq
    replies_stop_and_history(server)
    events = [json.loads(body) for _, body in inbox.take(4)]
    health = [e["data"]["chat"]["health_status"] for e in events]
    # Linq lifts an opt-out at the person's next word that is no keyword.
    assert [h["status"] for h in health] == ["HEALTHY", "HEALTHY", "OPTED_OUT", "HEALTHY"]
    assert health[2]["doc_url"].endswith("/chats/chat-health#opted-out")


def test_every_answer_the_product_reads_from_the_stand_in_is_the_sdks(linq):
    # Not webhooks, but the same promise: what the product's adapter reads is what Linq sends.
    server, _ = linq
    server.set_line_status(LINE, reputation="AT_RISK")
    headers = {"Authorization": f"Bearer {LINQ_TOKEN}"}
    lines = requests.get(f"{server.url}/v3/phone_numbers", headers=headers, timeout=5)
    check = call(server, "/v3/capability/check_imessage", {"address": SAM})
    created = call(server, "/v3/chats", {"from": LINE, "to": [SAM], "message": {"parts": [TEXT]}})
    sent = call(
        server, f"/v3/chats/{created['chat']['id']}/messages", {"message": {"parts": [LINK]}}
    )
    answers = [
        (PhoneNumberListResponse, lines.json()),
        (HandleCheckResponse, check),
        (ChatCreateResponse, created),
        (MessageSendResponse, sent),
    ]
    found = {model.__name__: linq_sdk.answer_problems(model, json.dumps(a)) for model, a in answers}
    assert {name: problems for name, problems in found.items() if problems} == {}
    reputations = {
        line["phone_number"]: line["reputation"] for line in lines.json()["phone_numbers"]
    }
    assert reputations[LINE]["doc_url"].endswith("/phone-numbers/phone-reputation#at-risk")


# --- every builder the tests use ---------------------------------------------------------------


def hours_ago(hours: int) -> str:
    return builders.linq_time(timedelta(hours=hours))


# Each event builder of standins.builders with the variations the tests use, and the Linq
# variants the product must read (issue 25): zero-retention, opted-out, outbound, no message id.
EVENT_BUILDERS: dict[str, list[Any]] = {
    "linq_received": [
        pytest.param(lambda: received(), id="stop"),
        pytest.param(
            lambda: builders.linq_received("c", "stop", sender="jane@icloud.com", line=LINE),
            id="email-sender",
        ),
        pytest.param(
            lambda: builders.linq_received("c", "hi", sender=SAM, line=LINE, is_group=True),
            id="group",
        ),
        pytest.param(
            lambda: builders.linq_received("c", "ok", sender=SAM, line=LINE, service="SMS"),
            id="sms",
        ),
        pytest.param(
            lambda: builders.linq_received(
                "c",
                "paid",
                sender=SAM,
                line=LINE,
                sent_at=hours_ago(3),
                reconciled_at=builders.linq_time(),
            ),
            id="reconciled",
        ),
        pytest.param(
            lambda: builders.linq_received(
                "c",
                "",
                sender=SAM,
                line=LINE,
                parts=[],
                zero_retention=True,
                health=builders.linq_health("OPTED_OUT"),
            ),
            id="zero-retention-opted-out",
        ),
        pytest.param(
            lambda: builders.linq_received(
                "c",
                "ok",
                sender=SAM,
                line=LINE,
                parts=[
                    {"type": "text", "value": "STOP"},
                    {
                        "type": "media",
                        "id": "att_1",
                        "filename": "IMG_0001.HEIC",
                        "mime_type": "image/heic",
                        "size_bytes": 1_204_332,
                        "url": "https://cdn.linqapp.com/attachments/att_1/IMG_0001.HEIC",
                    },
                    {"type": "text", "value": "STOP"},
                ],
            ),
            id="text-photo-text",
        ),
        pytest.param(
            lambda: builders.linq_received(
                "c", "", sender=SAM, line=LINE, parts=[{"type": "link", "value": LINK["value"]}]
            ),
            id="link",
        ),
        pytest.param(
            lambda: builders.linq_received(
                "c",
                "Noted.",
                sender=LINE,
                line=LINE,
                direction="outbound",
                sender_handle=builders.linq_handle(LINE, is_me=True, line_type="iMessage"),
            ),
            id="outbound",
        ),
    ],
    "linq_delivered": [
        pytest.param(lambda: builders.linq_delivered("in_1Ab-1-text", line=LINE), id="ours"),
        pytest.param(lambda: builders.linq_delivered(None, line=LINE), id="no-key"),
        pytest.param(
            lambda: builders.linq_delivered(
                "in_1Ab-1-link", line=LINE, chat_id="c", parts=[LINK], service="RCS"
            ),
            id="link-over-rcs",
        ),
    ],
    "linq_failed": [
        pytest.param(lambda: builders.linq_failed(message_id="m", chat_id="c"), id="message"),
        pytest.param(lambda: builders.linq_failed(chat_id="c", code=4001), id="no-message-id"),
        pytest.param(lambda: builders.linq_failed(), id="no-ids"),
        pytest.param(
            lambda: builders.linq_failed(
                message_id="m", code=3007, service="SMS", preferred_service="SMS"
            ),
            id="retries-exhausted-sms",
        ),
    ],
    "linq_line_change": [
        pytest.param(lambda: builders.linq_line_change(LINE, new_status="FLAGGED"), id="flagged"),
        pytest.param(
            lambda: builders.linq_line_change(LINE, new_reputation="CRITICAL"), id="critical"
        ),
        pytest.param(
            lambda: builders.linq_line_change(
                LINE, previous_status="FLAGGED", previous_reputation="AT_RISK"
            ),
            id="recovered",
        ),
    ],
}
# The builders that make no webhook of their own: each is part of the events above, or (a line)
# of the stand-in's scenario.
PART_BUILDERS = {
    "linq_time",
    "linq_handle",
    "linq_health",
    "linq_reputation",
    "linq_message",
    "linq_event",
    "linq_line",
}


def test_every_linq_builder_is_checked_here():
    defined = {
        name
        for name, value in vars(builders).items()
        if name.startswith("linq_") and inspect.isfunction(value)
    }
    assert defined == set(EVENT_BUILDERS) | PART_BUILDERS


@pytest.mark.parametrize(
    ("name", "build"),
    [
        pytest.param(name, case.values[0], id=f"{name}-{case.id}")
        for name, cases in EVENT_BUILDERS.items()
        for case in cases
    ],
)
def test_every_builder_makes_the_sdks_event(name, build):
    linq_sdk.check(build())


# The tests' own helpers, each as the tests call it.
HELPERS = [
    pytest.param(lambda: helpers.reply("c", "stop"), id="reply"),
    pytest.param(
        lambda: helpers.reply("c", "stop", from_handle="jane@icloud.com"), id="reply-email"
    ),
    pytest.param(
        lambda: helpers.reply("c", "stop", from_handle="+1 (415) 555-0100"), id="reply-spaced"
    ),
    pytest.param(lambda: helpers.reply("c", "STOP", is_group=True), id="reply-group"),
    pytest.param(
        lambda: helpers.reply("c", "ok fine", sent_at=builders.linq_time(timedelta(seconds=-9))),
        id="reply-sent-at",
    ),
    pytest.param(
        lambda: helpers.reply("c", "Noted.", from_handle=helpers.SENDER), id="reply-own-line"
    ),
    pytest.param(
        lambda: helpers.delivery("message.delivered", "someone-elses-key"), id="delivered"
    ),
    pytest.param(
        lambda: helpers.delivery("message.failed", message_id="m0", chat_id="c0"), id="failed"
    ),
    pytest.param(
        lambda: helpers.delivery("message.failed", message_id="m", chat_id="c", code=4001),
        id="failed-code",
    ),
    pytest.param(lambda: helpers.line_change("FLAGGED"), id="line-flagged"),
    pytest.param(lambda: helpers.line_change("ACTIVE", "CRITICAL"), id="line-critical"),
    pytest.param(
        lambda: bench_fixtures.linq_delivered(bench_fixtures.cases(1)[0]), id="bench-delivered"
    ),
]


@pytest.mark.parametrize("build", HELPERS)
def test_every_helper_of_the_tests_makes_the_sdks_event(build):
    linq_sdk.check(build())


def test_a_failure_cannot_be_given_an_idempotency_key():
    with pytest.raises(TypeError, match="carries no idempotency key"):
        helpers.delivery("message.failed", "in_1Ab-1-text", message_id="m")


def test_the_harness_hands_the_product_only_events_linq_sends(pipeline):
    event = helpers.reply("c", "STOP")
    del event["data"]["chat"]
    with pytest.raises(AssertionError, match=r"data\.chat: Field required"):
        pipeline.hear(event)
    pipeline.linq_inbox.received.append(({}, json.dumps(event).encode()))
    with pytest.raises(AssertionError, match=r"data\.chat: Field required"):
        pipeline.relay(1)
    assert pipeline.backend.pull(pipeline.linq_topic) == []  # nothing reached it


# --- the product keeps its own parser ----------------------------------------------------------


def test_nothing_deployed_imports_the_sdk():
    imported = set()
    for folder in ("shared", "ingest_fn", "recover_fn"):
        for source in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    imported.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module.split(".")[0])
    assert "json" in imported  # the walk does see the imports
    assert "linq" not in imported
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert "linq-python" not in requirements
