"""Tests for the Linq Partner API v3 stand-in over real HTTP."""

from __future__ import annotations

import json
import queue
import re
import select
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from standins import builders, webhooks
from standins.client import StandinClient
from standins.linkrule import contains_url
from standins.linq_api import LINQ_TOKEN, WEBHOOK_EVENTS, LinqStandin, is_opt_out
from standins.serving import AFTER_ANSWER, Server
from standins.webhooks import RETRY_BACKOFF_S, sign
from tests.clock import TestSeconds

REPO = Path(__file__).resolve().parents[1]
LINE, OTHER_LINE = "+12223334444", "+12223335555"
SAM, ALEX = "+15556667777", "+15556668888"
INVOICE_URL = "https://invoice.stripe.com/i/acct_1StandIn/test_abc?s=ap"
OPENER = {"parts": [{"type": "text", "value": "Hi Sam, your last payment didn't go through."}]}
LINK = {"parts": [{"type": "link", "value": INVOICE_URL}]}


@pytest.fixture
def server() -> Iterator[LinqStandin]:
    scenario = {"phone_numbers": [builders.linq_line(LINE), builders.linq_line(OTHER_LINE)]}
    with LinqStandin(scenario=scenario) as srv:
        yield srv


@pytest.fixture
def api(server: LinqStandin) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {LINQ_TOKEN}"
    return session


def post(api: requests.Session, server: LinqStandin, path: str, body: object) -> requests.Response:
    return api.post(f"{server.url}{path}", json=body, timeout=5)


def create_chat(api, server, message=OPENER, to=(SAM,), **extra) -> requests.Response:
    return post(
        api, server, "/v3/chats", {"from": LINE, "to": list(to), "message": message, **extra}
    )


def error_code(resp: requests.Response) -> tuple[int, int]:
    return resp.status_code, resp.json()["error"]["code"]


# URL detector and opt-out keywords ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Pay here: https://invoice.stripe.com/i/x",
        "see www.acme-billing.net/pay",
        "visit acme.com to update your card",
        "visit ACME.IO",
        "go to pay.acme.co/x",
        "ftp://files.example",
        "write to billing@acme.com",
        # Top-level domains beyond any short list (tests/test_message.py tries more).
        "We tried your card.Contact us by replying.",
        "नमूना.भारत",
    ],
)
def test_contains_url_detects_links(text):
    assert contains_url(text)


@pytest.mark.parametrize(
    "text",
    [
        "Hi Sam, your $25.00 payment to Acme didn't go through.",
        "1 × Pro plan (at $25.00 / month)",
        "We tried your card. Contact us by replying.",
        "Reply STOP to opt out. e.g. later",
        "Jane.Doe, Pro plan v2.0, J.R. Smith",
    ],
)
def test_contains_url_ignores_plain_text(text):
    assert not contains_url(text)


@pytest.mark.parametrize(
    "text", ["STOP", "  QUIT  ", "UNSUBSCRIBE", "END", "CANCEL", "OPTOUT", "opt out", "Opt-Out"]
)
def test_opt_out_keywords(text):
    assert is_opt_out(text)


@pytest.mark.parametrize("text", ["stop", "Stop", "please stop", "STOP now", "opt  out", "hello"])
def test_not_opt_out_keywords(text):
    assert not is_opt_out(text)


# Auth and envelope -------------------------------------------------------------------------


def test_missing_token_is_401_2004_with_envelope(server):
    resp = requests.get(f"{server.url}/v3/phone_numbers", timeout=5)
    body = resp.json()
    assert error_code(resp) == (401, 2004)
    assert body["success"] is False
    assert body["error"]["doc_url"] == "https://docs.linqapp.com/error/codes/2xxx/2004/"
    assert re.fullmatch(r"[0-9a-f]{32}", body["trace_id"])


def test_wrong_token_is_401(server):
    resp = requests.get(
        f"{server.url}/v3/phone_numbers", headers={"Authorization": "Bearer nope"}, timeout=5
    )
    assert error_code(resp) == (401, 2004)


def test_phone_numbers_has_documented_shape(server, api):
    lines = api.get(f"{server.url}/v3/phone_numbers", timeout=5).json()["phone_numbers"]
    assert [line["phone_number"] for line in lines] == [LINE, OTHER_LINE]
    assert set(lines[0]) == {"id", "phone_number", "reputation", "forwarding_number", "line_type"}
    assert lines[0]["reputation"]["status"] == "HEALTHY"


# Capability checks -------------------------------------------------------------------------


def test_capability_defaults_to_imessage(server, api):
    resp = post(api, server, "/v3/capability/check_imessage", {"address": SAM})
    assert resp.json() == {"address": SAM, "available": True, "selected_service": "iMessage"}


def test_capability_false_reports_reason_and_service(server, api):
    server.load({"capabilities": {SAM: {"imessage": False, "selected_service": "SMS"}}})
    resp = post(api, server, "/v3/capability/check_imessage", {"address": SAM})
    assert resp.json() == {
        "address": SAM,
        "available": False,
        "reason": "not_supported",
        "selected_service": "SMS",
    }


def test_capability_omits_unknown_selected_service(server, api):
    server.load({"capabilities": {SAM: {"imessage": False, "selected_service": None}}})
    body = post(api, server, "/v3/capability/check_imessage", {"address": SAM}).json()
    assert "selected_service" not in body


def test_capability_accepts_email_address(server, api):
    body = post(api, server, "/v3/capability/check_imessage", {"address": "sam@example.com"}).json()
    assert body == {"address": "sam@example.com", "available": False, "reason": "not_supported"}


def test_capability_rejects_non_e164(server, api):
    resp = post(api, server, "/v3/capability/check_imessage", {"address": "555-666-7777"})
    assert error_code(resp) == (400, 1002)


def test_capability_refused_region(server, api):
    server.load({"refused": [SAM]})
    resp = post(api, server, "/v3/capability/check_imessage", {"address": SAM})
    assert error_code(resp) == (400, 1005)


def test_capability_from_must_be_account_line(server, api):
    resp = post(api, server, "/v3/capability/check_imessage", {"address": SAM, "from": ALEX})
    assert error_code(resp) == (403, 2006)


def test_capability_checks_are_rate_limited():
    with LinqStandin(capability_limit=2) as srv:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {LINQ_TOKEN}"
        for _ in range(2):
            post(session, srv, "/v3/capability/check_imessage", {"address": SAM})
        resp = post(session, srv, "/v3/capability/check_imessage", {"address": SAM})
    assert error_code(resp) == (429, 1007)
    assert int(resp.headers["Retry-After"]) == resp.json()["error"]["retry_after"] > 0


# Creating chats ----------------------------------------------------------------------------


def test_create_chat_returns_201_with_chat_and_message(server, api):
    resp = create_chat(api, server, message={**OPENER, "idempotency_key": "in_1-1-opener"})
    chat = resp.json()["chat"]
    assert resp.status_code == 201
    assert chat["is_group"] is False
    assert chat["service"] == "iMessage"
    assert chat["message"]["delivery_status"] == "queued"
    assert chat["message"]["parts"] == OPENER["parts"]
    assert server.messages()[0]["idempotency_key"] == "in_1-1-opener"


def test_create_chat_invalid_json_is_1003(server, api):
    resp = api.post(f"{server.url}/v3/chats", data=b"{nope", timeout=5)
    assert error_code(resp) == (400, 1003)


def test_create_chat_missing_field_is_1001(server, api):
    resp = post(api, server, "/v3/chats", {"from": LINE, "message": OPENER})
    assert error_code(resp) == (400, 1001)


def test_create_chat_non_e164_recipient_is_1002(server, api):
    assert error_code(create_chat(api, server, to=["(555) 666-7777"])) == (400, 1002)


def test_create_chat_from_unknown_line_is_2006(server, api):
    resp = post(api, server, "/v3/chats", {"from": ALEX, "to": [SAM], "message": OPENER})
    assert error_code(resp) == (403, 2006)


def test_ineligible_line_is_2027_and_creates_nothing(server, api):
    server.load({"ineligible": [LINE]})
    assert error_code(create_chat(api, server)) == (403, 2027)
    assert server.messages() == []
    assert server.stats()["chats"] == 0


def test_blocked_handle_is_2026(server, api):
    server.load({"blocked": [SAM]})
    assert error_code(create_chat(api, server)) == (403, 2026)


@pytest.mark.parametrize(
    "message",
    [
        LINK,
        {"parts": [{"type": "text", "value": f"Pay here {INVOICE_URL}"}]},
        {"parts": [{"type": "text", "value": "Update your card at acme.com"}]},
        {"parts": [{"type": "text", "value": "Update your card at www.acme-pay.example"}]},
    ],
    ids=["link-part", "url-in-text", "bare-domain", "www-host"],
)
def test_first_message_of_new_chat_cannot_carry_a_link(server, api, message):
    assert error_code(create_chat(api, server, message=message)) == (400, 1005)
    assert server.messages() == []


def test_effect_on_first_message_is_1005(server, api):
    message = {**OPENER, "effect": {"type": "screen", "name": "confetti"}}
    assert error_code(create_chat(api, server, message=message)) == (400, 1005)


def test_reused_chat_accepts_a_link(server, api):
    first = create_chat(api, server).json()["chat"]
    second = create_chat(api, server, message=LINK)
    assert second.status_code == 201
    assert second.json()["chat"]["id"] == first["id"]


def test_different_line_makes_a_new_chat(server, api):
    first = create_chat(api, server).json()["chat"]
    resp = post(api, server, "/v3/chats", {"from": OTHER_LINE, "to": [SAM], "message": OPENER})
    assert resp.json()["chat"]["id"] != first["id"]


# Parts rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parts",
    [
        [],
        [{"type": "text", "value": "a"}, {"type": "text", "value": "b"}],
        [{"type": "text", "value": "a"}, {"type": "link", "value": INVOICE_URL}],
        [{"type": "link", "value": "https://x.example/" + "a" * 2048}],
        [{"type": "text", "value": "a"}, {"type": "media", "url": "https://x/a.png"}] * 51,
        [{"type": "sticker", "value": "a"}],
    ],
    ids=["none", "adjacent-text", "link-not-alone", "link-too-long", "over-100", "bad-type"],
)
def test_parts_rules_are_enforced(server, api, parts):
    chat = create_chat(api, server).json()["chat"]
    resp = post(api, server, f"/v3/chats/{chat['id']}/messages", {"message": {"parts": parts}})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] in (1001, 1004)


@pytest.mark.parametrize(
    "extra",
    [
        {"effect": "confetti"},
        {"effect": {"type": "sparkle", "name": "confetti"}},
        {"effect": {"name": 7}},
        {"effect": {"name": "slam", "sound": True}},
        {"reply_to": "msg_1"},
        {"reply_to": {"part_index": 0}},
        {"reply_to": {"message_id": "m", "part_index": "0"}},
        {"reply_to": {"message_id": "m", "part_index": -1}},
        {"reply_to": {"message_id": "m", "part_index": True}},
        {"reply_to": {"message_id": "m", "quote": "hi"}},
    ],
)
def test_an_effect_or_reply_not_shaped_as_linq_defines_it_is_1005(server, api, extra):
    # Accepted, it would be echoed into the answer and the webhooks as nothing Linq sends.
    chat = create_chat(api, server).json()["chat"]
    message = {**OPENER, **extra}
    resp = post(api, server, f"/v3/chats/{chat['id']}/messages", {"message": message})
    assert error_code(resp) == (400, 1005)
    assert len(server.messages()) == 1


# Sending into a chat -----------------------------------------------------------------------


def test_send_link_into_existing_chat_is_202(server, api):
    chat = create_chat(api, server).json()["chat"]
    resp = post(api, server, f"/v3/chats/{chat['id']}/messages", {"message": LINK})
    assert resp.status_code == 202
    assert resp.json()["chat_id"] == chat["id"]
    assert [m["endpoint"] for m in server.messages()] == ["chats", "messages"]


def test_send_to_unknown_chat_is_404_2001(server, api):
    resp = post(
        api, server, "/v3/chats/00000000-0000-0000-0000-000000000000/messages", {"message": LINK}
    )
    assert error_code(resp) == (404, 2001)


def test_send_on_line_that_became_ineligible_is_2027(server, api):
    chat = create_chat(api, server).json()["chat"]
    server.load({"ineligible": [LINE]})
    resp = post(api, server, f"/v3/chats/{chat['id']}/messages", {"message": LINK})
    assert error_code(resp) == (403, 2027)


# Opt-out -----------------------------------------------------------------------------------


def test_opted_out_recipient_is_2024(server, api):
    server.load({"opted_out": [SAM]})
    assert error_code(create_chat(api, server)) == (403, 2024)


def test_override_optout_lets_one_request_through(server, api):
    server.load({"opted_out": [SAM]})
    assert create_chat(api, server, override_optout=True).status_code == 201
    assert error_code(create_chat(api, server)) == (403, 2024)


def test_inbound_stop_opts_out_on_every_chat(server, api):
    chat = create_chat(api, server).json()["chat"]
    resp = requests.post(
        f"{server.url}/_control/inbound", json={"from": SAM, "text": " STOP "}, timeout=5
    )
    assert resp.json() == {"opted_out": True}
    sent = post(api, server, f"/v3/chats/{chat['id']}/messages", {"message": LINK})
    assert error_code(sent) == (403, 2024)
    other = post(api, server, "/v3/chats", {"from": OTHER_LINE, "to": [SAM], "message": OPENER})
    assert error_code(other) == (403, 2024)


def test_lowercase_stop_does_not_opt_out(server, api):
    assert server.inbound(SAM, "stop") is False
    assert create_chat(api, server).status_code == 201


def test_later_message_lifts_opt_out(server, api):
    server.inbound(SAM, "Opt-Out")
    assert server.inbound(SAM, "sorry, I paid already") is False
    assert create_chat(api, server).status_code == 201


def test_opt_out_does_not_block_group_chats(server, api):
    server.inbound(SAM, "STOP")
    assert create_chat(api, server, to=(SAM, ALEX)).status_code == 201


# Pair rate limit ---------------------------------------------------------------------------


def test_default_pair_limit_is_documented_30_per_60s():
    srv = LinqStandin()
    try:
        assert (srv.pair_limit, srv.pair_window_s) == (30, 60.0)
    finally:
        srv.stop()


def test_pair_limit_returns_429_with_retry_after():
    scenario = {"phone_numbers": [builders.linq_line(LINE)]}
    clock = TestSeconds()
    with LinqStandin(scenario=scenario, pair_limit=3, pair_window_s=60, clock=clock) as srv:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {LINQ_TOKEN}"
        chat = create_chat(session, srv).json()["chat"]
        for _ in range(2):
            post(session, srv, f"/v3/chats/{chat['id']}/messages", {"message": LINK})
        clock.advance(59.9)
        limited = post(session, srv, f"/v3/chats/{chat['id']}/messages", {"message": LINK})
        other_pair = create_chat(session, srv, to=(ALEX,))
        clock.advance(0.1)
        after_window = post(session, srv, f"/v3/chats/{chat['id']}/messages", {"message": LINK})
    assert error_code(limited) == (429, 1007)
    assert limited.headers["Retry-After"] == "1"
    assert other_pair.status_code == 201
    assert after_window.status_code == 202


# Idempotency -------------------------------------------------------------------------------


def test_idempotent_replay_returns_original_without_sending():
    scenario = {"phone_numbers": [builders.linq_line(LINE)]}
    with LinqStandin(scenario=scenario, pair_limit=1) as srv:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {LINQ_TOKEN}"
        message = {**OPENER, "idempotency_key": "in_1-1-opener"}
        first = create_chat(session, srv, message=message)
        again = create_chat(session, srv, message=message)
        assert (again.status_code, again.json()) == (first.status_code, first.json())
        assert len(srv.messages()) == 1
        assert srv.stats()["idempotent_replays"] == 1


def test_idempotency_key_reuse_with_other_body_is_409(server, api):
    create_chat(api, server, message={**OPENER, "idempotency_key": "k"})
    other = {"parts": [{"type": "text", "value": "Different"}], "idempotency_key": "k"}
    assert error_code(create_chat(api, server, message=other)) == (409, 1005)


def test_rejected_request_does_not_consume_its_key(server, api):
    message = {**OPENER, "idempotency_key": "k"}
    server.load({"opted_out": [SAM]})
    assert create_chat(api, server, message=message).status_code == 403
    server.inbound(SAM, "hi again")
    assert create_chat(api, server, message=message).status_code == 201


# Faults, latency, controls, process mode ---------------------------------------------------


def test_injected_429_uses_linq_envelope(server, api):
    server.add_fault("/v3/chats", method="POST", status=429)
    resp = create_chat(api, server)
    assert error_code(resp) == (429, 1007)
    assert resp.headers["Retry-After"] == "1"
    assert create_chat(api, server).status_code == 201


def test_injected_reset_drops_the_connection(server, api):
    server.add_fault("/v3/chats", reset=True)
    with pytest.raises(requests.ConnectionError):
        create_chat(api, server)
    assert server.requests()[-1]["status"] is None


def test_latency_applies_to_api_calls(api):
    clock = TestSeconds()
    scenario = {"phone_numbers": [builders.linq_line(LINE)]}
    with LinqStandin(scenario=scenario, clock=clock) as srv:
        srv.set_latency(0.15)
        api.get(f"{srv.url}/v3/phone_numbers", timeout=5)
        requests.get(f"{srv.url}/_control/stats", timeout=5).raise_for_status()
        assert clock.slept == [0.15]


def test_control_messages_lists_what_linq_received(server, api):
    create_chat(api, server)
    sent = requests.get(f"{server.url}/_control/messages", timeout=5).json()
    assert [(m["from"], m["to"], m["parts"]) for m in sent] == [(LINE, [SAM], OPENER["parts"])]


def test_journal_masks_the_token(server, api):
    api.get(f"{server.url}/v3/phone_numbers", timeout=5)
    assert server.requests()[0]["headers"]["authorization"] == "Bearer ****0000"
    assert LINQ_TOKEN not in repr(server.requests())


def test_reset_clears_chats_and_messages(server, api):
    create_chat(api, server)
    requests.post(f"{server.url}/_control/reset", timeout=5)
    assert server.messages() == []
    assert server.requests() == []


# Webhooks ----------------------------------------------------------------------------------

# Standard Webhooks' published test vector (the spec's and every library's known answer).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID, VECTOR_TIMESTAMP = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
VECTOR_BODY = '{"test": 2432232314}'


class Receiver:
    """A webhook endpoint on loopback: keeps each request and answers the statuses queued in
    `answers`, then 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._arrived = threading.Condition()
        self.answers: list[int] = []
        # Called as each request arrives, before it is kept.
        self.on_arrival: Callable[[], None] = lambda: None
        self.server = Server(self._app).start()
        self.url = f"{self.server.url}/linq?version=2026-02-03"

    def _app(self, environ: Any, start_response: Any) -> Any:
        self.on_arrival()
        request = Request(environ)
        headers = {name.lower(): value for name, value in request.headers.items()}
        body = request.get_data(as_text=True)
        with self._arrived:
            self.requests.append({"path": request.full_path, "headers": headers, "body": body})
            self._arrived.notify_all()
        status = self.answers.pop(0) if self.answers else 200
        return Response("", status)(environ, start_response)

    def events(self, count: int) -> list[dict[str, Any]]:
        """The first `count` events received (waiting for them), decoded."""
        with self._arrived:
            arrived = self._arrived.wait_for(lambda: len(self.requests) >= count, timeout=10)
        assert arrived, f"{len(self.requests)} webhook(s) received, not {count}"
        return [json.loads(request["body"]) for request in self.requests[:count]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.stop()


@pytest.fixture
def hooked(server: LinqStandin, receiver: Receiver) -> LinqStandin:
    """The stand-in sending every event to `receiver`, signed with the test vector's secret."""
    server.load({"webhook": {"url": receiver.url, "secret": VECTOR_SECRET}})
    return server


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """As many webhook retries as Linq's stand-in makes, without its waits between them: the
    tries are what a test shows."""
    monkeypatch.setattr(webhooks, "RETRY_BACKOFF_S", (0.0,) * len(RETRY_BACKOFF_S))


def send_link(api, server, chat_id: str) -> requests.Response:
    return post(api, server, f"/v3/chats/{chat_id}/messages", {"message": LINK})


def test_signer_gives_the_standard_webhooks_known_answer():
    signature = sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_accepted_send_is_followed_by_a_signed_message_delivered(hooked, receiver, api):
    message = {**OPENER, "idempotency_key": "in_1-1-opener"}
    chat = create_chat(api, hooked, message=message).json()["chat"]
    [event] = receiver.events(1)
    request = receiver.requests[0]
    assert request["path"] == "/linq?version=2026-02-03"
    assert set(event) == {
        "api_version",
        "webhook_version",
        "event_type",
        "event_id",
        "created_at",
        "partner_id",
        "trace_id",
        "data",
    }
    assert (event["event_type"], event["webhook_version"]) == ("message.delivered", "2026-02-03")
    headers = request["headers"]
    assert headers["webhook-id"] == event["event_id"]
    expected = sign(
        VECTOR_SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), request["body"]
    )
    assert headers["webhook-signature"] == expected
    data = event["data"]
    assert (data["id"], data["chat"]["id"]) == (chat["message"]["id"], chat["id"])
    assert (data["direction"], data["idempotency_key"]) == ("outbound", "in_1-1-opener")
    assert (data["sender_handle"]["handle"], data["sender_handle"]["is_me"]) == (LINE, True)
    assert data["delivered_at"] is not None
    assert data["service"] == "iMessage"
    assert data["chat"]["owner_handle"]["handle"] == LINE


def test_an_idempotent_replay_sends_no_event(hooked, receiver, api):
    message = {**OPENER, "idempotency_key": "k"}
    chat = create_chat(api, hooked, message=message).json()["chat"]
    create_chat(api, hooked, message=message)
    send_link(api, hooked, chat["id"])
    # One worker delivers in order: a replay's event would come before the link's.
    first, second = receiver.events(2)
    assert second["data"]["parts"] == LINK["parts"]
    assert first["data"]["id"] != second["data"]["id"]


def test_undeliverable_recipient_gets_message_failed(hooked, receiver, api):
    hooked.load({"undeliverable": [SAM]})
    chat = create_chat(api, hooked).json()["chat"]
    send_link(api, hooked, chat["id"])
    failed, _ = receiver.events(2)
    assert failed["event_type"] == "message.failed"
    assert set(failed["data"]) == {
        "code",
        "detail_code",
        "reason",
        "message_id",
        "chat_id",
        "failed_at",
        "service",
        "preferred_service",
    }
    assert (failed["data"]["message_id"], failed["data"]["code"]) == (chat["message"]["id"], 4001)
    assert [e["event_type"] for e in receiver.events(2)] == ["message.failed", "message.failed"]


def test_what_a_request_causes_runs_once_its_answer_has_been_written():
    answered_first: queue.Queue[bool] = queue.Queue()

    def check() -> None:
        # The client does not read: the answer, once written, waits in its socket.
        answered_first.put(bool(select.select([client], [], [], 0)[0]))

    def app(environ: Any, start_response: Any) -> Any:
        environ[AFTER_ANSWER](check)
        return Response("answered")(environ, start_response)

    with Server(app) as server, socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert answered_first.get(timeout=10) is True


def test_a_delivery_is_sent_only_once_the_send_has_been_answered(hooked, receiver):
    body = json.dumps({"from": LINE, "to": [SAM], "message": OPENER}).encode()
    head = (
        f"POST /v3/chats HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {LINQ_TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    answered_first: list[bool] = []
    with socket.create_connection(("127.0.0.1", hooked.port), timeout=5) as client:
        # The client does not read: the answer, once written, waits in its socket.
        receiver.on_arrival = lambda: answered_first.append(
            bool(select.select([client], [], [], 0)[0])
        )
        client.sendall(head.encode() + body)
        (delivered,) = receiver.events(1)
        assert client.recv(12) == b"HTTP/1.1 201"
    assert delivered["event_type"] == "message.delivered"
    assert answered_first == [True]


def test_a_flapping_delivery_is_failed_then_delivered(hooked, receiver, api):
    hooked.load({"delivery_flaps": [SAM]})
    chat = create_chat(api, hooked).json()["chat"]
    failed, delivered = receiver.events(2)
    assert (failed["event_type"], delivered["event_type"]) == (
        "message.failed",
        "message.delivered",
    )
    assert failed["data"]["message_id"] == delivered["data"]["id"] == chat["message"]["id"]


def test_inbound_to_a_known_chat_is_message_received(hooked, receiver, api):
    chat = create_chat(api, hooked).json()["chat"]
    hooked.inbound(ALEX, "who is this?")  # no chat with Alex: nothing is sent
    assert hooked.inbound(SAM, "STOP") is True
    _, received = receiver.events(2)
    data = received["data"]
    assert received["event_type"] == "message.received"
    assert (data["direction"], data["sender_handle"]["handle"]) == ("inbound", SAM)
    assert data["parts"] == [{"type": "text", "value": "STOP"}]
    assert (data["chat"]["id"], data["chat"]["is_group"]) == (chat["id"], False)
    assert data["chat"]["health_status"]["status"] == "OPTED_OUT"
    assert data["idempotency_key"] is None
    assert "reconciled_at" not in data
    assert len(receiver.requests) == 2


def test_a_reconciled_inbound_arrives_as_history(hooked, receiver, api):
    create_chat(api, hooked)
    hooked.inbound(SAM, "paid it yesterday", reconciled=True)
    data = receiver.events(2)[1]["data"]
    assert data["sent_at"] < data["reconciled_at"]


def test_inbound_into_a_group_chat(hooked, receiver, api):
    group = create_chat(api, hooked, to=(SAM, ALEX)).json()["chat"]
    hooked.inbound(ALEX, "hi all", chat_id=group["id"])
    data = receiver.events(2)[1]["data"]
    assert (data["chat"]["id"], data["chat"]["is_group"]) == (group["id"], True)
    assert data["sender_handle"]["handle"] == ALEX


def test_line_status_change_is_sent_and_listed(hooked, receiver, api):
    answer = requests.post(
        f"{hooked.url}/_control/line_status",
        json={"phone_number": LINE, "status": "FLAGGED", "reputation": "AT_RISK"},
        timeout=5,
    )
    [event] = receiver.events(1)
    assert event["event_type"] == "phone_number.status_updated"
    assert event["data"] == answer.json()
    assert {k: v for k, v in event["data"].items() if k != "changed_at"} == {
        "phone_number": LINE,
        "previous_status": "ACTIVE",
        "new_status": "FLAGGED",
        "previous_reputation": "HEALTHY",
        "new_reputation": "AT_RISK",
    }
    lines = api.get(f"{hooked.url}/v3/phone_numbers", timeout=5).json()["phone_numbers"]
    assert lines[0]["reputation"]["status"] == "AT_RISK"
    assert hooked.set_line_status(LINE, reputation="HEALTHY")["previous_status"] == "FLAGGED"


def test_line_status_rejects_unknown_values(server):
    with pytest.raises(ValueError, match="status"):
        server.set_line_status(LINE, status="PAUSED")


def test_5xx_and_429_are_retried_with_the_same_id(hooked, receiver, api, quick_retries):
    receiver.answers = [503, 429]
    create_chat(api, hooked)
    attempts = hooked.wait_for_webhooks(3)
    assert [a["status"] for a in attempts] == [503, 429, 200]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert len(receiver.requests) == 3
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1


def test_other_4xx_is_not_retried(hooked, receiver, api):
    receiver.answers = [400]
    chat = create_chat(api, hooked).json()["chat"]
    send_link(api, hooked, chat["id"])
    receiver.events(2)
    # The receiver hears the request before the stand-in journals its answer.
    assert [a["status"] for a in hooked.wait_for_webhooks(2)] == [400, 200]


def test_an_unreachable_endpoint_is_tried_a_few_times_then_given_up(server, api, quick_retries):
    closed = Server(lambda environ, start_response: [])
    url = closed.url
    closed.server_close()
    server.load({"webhook": {"url": url, "secret": VECTOR_SECRET}})
    create_chat(api, server)
    attempts = server.wait_for_webhooks(len(RETRY_BACKOFF_S) + 1)
    assert len(attempts) == len(RETRY_BACKOFF_S) + 1
    assert all(a["status"] is None and "ConnectionError" in a["error"] for a in attempts)


def subscribe(api, server, target_url: str, **extra) -> requests.Response:
    body = {"target_url": target_url, "subscribed_events": list(WEBHOOK_EVENTS), **extra}
    return post(api, server, "/v3/webhook-subscriptions", body)


def test_subscription_shows_its_secret_once_and_receives_signed_events(server, receiver, api):
    created = subscribe(api, server, receiver.url)
    subscription = created.json()
    secret = subscription.pop("signing_secret")
    assert created.status_code == 201
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    assert subscription["target_url"] == receiver.url
    listed = api.get(f"{server.url}/v3/webhook-subscriptions", timeout=5).json()
    assert listed == {"subscriptions": [subscription]}
    assert secret not in json.dumps(listed)
    create_chat(api, server)
    receiver.events(1)
    request = receiver.requests[0]
    headers = request["headers"]
    expected = sign(
        secret, headers["webhook-id"], int(headers["webhook-timestamp"]), request["body"]
    )
    assert headers["webhook-signature"] == expected


def test_a_target_url_takes_one_subscription(server, receiver, api):
    subscribe(api, server, receiver.url)
    assert error_code(subscribe(api, server, receiver.url)) == (409, 1005)


@pytest.mark.parametrize(
    ("target_url", "extra", "code"),
    [
        ("http://hooks.example.com/linq", {}, 1005),
        ("https://hooks.example.com/linq", {"subscribed_events": ["message.exploded"]}, 1005),
        ("https://hooks.example.com/linq", {"phone_numbers": ["555"]}, 1002),
        ("", {}, 1001),
    ],
    ids=["plain-http", "unknown-event", "bad-number", "no-url"],
)
def test_subscription_requests_are_checked(server, api, target_url, extra, code):
    assert error_code(subscribe(api, server, target_url, **extra)) == (400, code)


def test_subscription_events_and_lines_filter_what_is_sent(server, receiver, api):
    subscribe(
        api,
        server,
        receiver.url,
        subscribed_events=["phone_number.status_updated"],
        phone_numbers=[OTHER_LINE],
    )
    create_chat(api, server)
    server.set_line_status(LINE, status="FLAGGED")
    server.set_line_status(OTHER_LINE, status="FLAGGED")
    [event] = receiver.events(1)
    assert event["data"]["phone_number"] == OTHER_LINE
    assert len(receiver.requests) == 1


def test_a_deleted_subscription_receives_nothing(server, receiver, api):
    subscription = subscribe(api, server, receiver.url).json()
    path = f"{server.url}/v3/webhook-subscriptions/{subscription['id']}"
    assert api.delete(path, timeout=5).status_code == 204
    assert error_code(api.delete(path, timeout=5)) == (404, 1000)
    assert api.get(f"{server.url}/v3/webhook-subscriptions", timeout=5).json() == {
        "subscriptions": []
    }


def test_the_control_client_drives_webhooks(hooked, receiver, api):
    client = StandinClient(hooked.url)
    group = create_chat(api, hooked, to=(SAM, ALEX)).json()["chat"]
    assert client.inbound(SAM, "hello", chat_id=group["id"], reconciled=True) is False
    assert client.set_line_status(LINE, reputation="CRITICAL")["new_reputation"] == "CRITICAL"
    receiver.events(3)
    # The receiver hears a request before the stand-in journals its answer.
    hooked.wait_for_webhooks(3)
    assert [a["event"]["event_type"] for a in client.webhooks()] == [
        "message.delivered",
        "message.received",
        "phone_number.status_updated",
    ]
