"""Faults end to end over the emulator: outages, timeouts, crashes, dead letters, bad config."""

import json
import os
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from shared.adapters.ledger import COLLECTION
from shared.core.lines import Line
from shared.core.sender import line_order
from standins import LINQ_TOKEN, STRIPE_TEST_KEY, builders
from tests.stack_support import (
    SENDER,
    acknowledged,
    clean_run,
    find_leaks,
    lines_for,
    parts_sent_to,
    results_for,
    running_stack,
    store,
    wait_for_result,
)

pytestmark = pytest.mark.integration

SECOND = "+12025550199"
# The fewest Pub/Sub allows; no case here but the dead letter needs more than three.
DELIVERY_ATTEMPTS = 5
# A run killed mid-way leaves its lease to run out before the redelivery may resume; production
# leases outlast the function's timeout, these stay short so the tests need not wait minutes.
LEASE_SECONDS = "3"
# The deployed read timeouts (8 s for Stripe and Linq, 5 s for the ledger), shortened alike.
READ_TIMEOUT_SECONDS = "3"
# Longer than the read timeout.
TIMEOUT_DELAY_S = 4.0
LINQ_429 = {
    "success": False,
    "error": {"status": 429, "code": 1007, "message": "Rate limited.", "retry_after": 1},
    "trace_id": "0" * 32,
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    options = {
        "min_backoff_s": 0.5,
        "max_backoff_s": 2.0,
        "max_delivery_attempts": DELIVERY_ATTEMPTS,
        "recover_env": {
            "LEASE_SECONDS": LEASE_SECONDS,
            "READ_TIMEOUT_SECONDS": READ_TIMEOUT_SECONDS,
        },
        "slack": True,
        "journal_pushes": True,
        # Linq does not publish its capability-check limit; keep it out of these tests' way.
        "linq_args": ("--capability-limit", "100000"),
    }
    with running_stack(tmp_path_factory.mktemp("stack"), **options) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(stack):
    with clean_run(stack, SENDER, SECOND):
        yield


def send_and_wait(stack, phone, timeout=60.0):
    invoice = store(stack, phone=phone)
    assert stack.post_webhook(builders.payment_failed_event(invoice)).status_code == 200
    [result] = wait_for_result(stack, invoice, timeout=timeout)
    return invoice, result


def retries_logged(stack, invoice):
    return [line for line in lines_for(stack, invoice) if line["message"].startswith("will retry")]


# --- transient failures: retried, one text in the end ----------------------------------------
# Each vendor's error classes (5xx, 429, 4xx) are told apart in-process, in test_recover.py; here
# what only Pub/Sub's redelivery shows.


def test_stripe_timeout_on_the_invoice_read(stack):
    # Answered, but after the read timeout: a client that waited for it would read it once.
    stack.stripe.add_fault(r"^/v1/invoices/", delay_s=TIMEOUT_DELAY_S)
    invoice, result = send_and_wait(stack, "+14155550121")
    assert result["action"] == "sent"
    assert parts_sent_to(stack, "+14155550121") == ["text", "link"]
    # stripe-python gave up on the late answer and read again inside the same run (the
    # stand-in journals the abandoned request only when its delay ends); a client that waited
    # would have read once. (On a busy machine the second read may time out too.)
    stack.wait_until(lambda: len(stack.stripe.requests()) >= 2, what="a second invoice read")
    assert retries_logged(stack, invoice) == []


@pytest.mark.parametrize("path", [r"^/v3/capability/", r"^/v3/chats$", r"/messages$"])
def test_linq_rate_limit_on_every_call(stack, path):
    fault = {"status": 429, "body": LINQ_429, "headers": {"Retry-After": "1"}}
    stack.linq.add_fault(path, method=None, **fault)
    invoice, result = send_and_wait(stack, "+14155550122")
    assert result["action"] == "sent"
    assert parts_sent_to(stack, "+14155550122") == ["text", "link"]
    assert retries_logged(stack, invoice)[0]["status"] == 429


def test_linq_line_list_failure_on_a_cold_instance(stack):
    stack.kill("recover")
    stack.start_function("recover")
    # Read twice before giving up: ahead of need, then when needed.
    stack.linq.add_fault(r"^/v3/phone_numbers$", status=503, times=2)
    invoice, result = send_and_wait(stack, "+14155550123")
    assert result["action"] == "sent"
    assert parts_sent_to(stack, "+14155550123") == ["text", "link"]
    assert retries_logged(stack, invoice)[0]["status"] == 503


def test_linq_timeouts_on_every_call(stack):
    for path in (r"^/v3/capability/", r"^/v3/chats$", r"/messages$"):
        stack.linq.add_fault(path, delay_s=TIMEOUT_DELAY_S, reset=True)
    phones = ["+14155550124", "+14155550125", "+14155550126"]
    invoices = [store(stack, phone=phone) for phone in phones]
    for invoice in invoices:
        stack.post_webhook(builders.payment_failed_event(invoice))
    for invoice in invoices:
        assert [r["action"] for r in wait_for_result(stack, invoice, timeout=90)] == ["sent"]
    assert [parts_sent_to(stack, phone) for phone in phones] == [["text", "link"]] * 3
    assert stack.linq.stats()["faults_injected"] == 3
    # Each ended in the read timeout, before the stand-in dropped the connection.
    retries = [line for invoice in invoices for line in retries_logged(stack, invoice)]
    assert len(retries) == 3
    assert all(line["message"].endswith(" timed out") for line in retries), retries


def test_crash_after_the_text_sends_only_the_link_on_retry(stack):
    phone = "+14155550127"
    # The link request hangs, then its connection drops unanswered: Linq never gets it.
    stack.linq.add_fault(r"/messages$", delay_s=3.0, reset=True)
    invoice = store(stack, phone=phone)
    stack.post_webhook(builders.payment_failed_event(invoice))
    stack.wait_until(lambda: parts_sent_to(stack, phone) == ["text"], what="the text")
    stack.kill("recover")
    stack.start_function("recover")
    [result] = wait_for_result(stack, invoice)
    assert result["action"] == "sent"
    assert parts_sent_to(stack, phone) == ["text", "link"]


def ledger_entry(stack, invoice, attempt=1):
    url = (
        f"{stack.firestore.url}/v1/projects/{stack.firestore.project}/databases/dunning/documents/"
        f"{COLLECTION}/{invoice['id']}-{attempt}"
    )
    answer = requests.get(url, headers={"Authorization": "Bearer owner"}, timeout=5)
    return answer.json().get("fields") if answer.ok else None


@contextmanager
def frozen(emulator):
    """The Firestore emulator stopped dead (SIGSTOP): every ledger call hangs until it thaws."""
    os.kill(emulator.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(emulator.pid, signal.SIGCONT)


def unread_by(emulator) -> bool:
    """Whether a request to the (frozen) emulator waits unread in its socket: the kernel took
    the bytes, the emulator has not read them (the receive queue in /proc/net; Java's sockets
    are IPv6 ones, with the IPv4 address mapped)."""
    port = f":{emulator.port:04X}"
    for table in ("tcp", "tcp6"):
        for line in Path("/proc/net", table).read_text().splitlines()[1:]:
            local, queues = line.split()[1], line.split()[4]
            if local.endswith(port) and int(queues.split(":")[1], 16) > 0:
                return True
    return False


def test_owner_killed_after_the_claim_is_taken_over_once_its_lease_runs_out(stack):
    phone = "+14155550140"
    # The invoice read hangs: the claim (made beside it) is in the ledger when the run dies.
    stack.stripe.add_fault(r"^/v1/invoices/", delay_s=3.0)
    invoice = store(stack, phone=phone)
    stack.post_webhook(builders.payment_failed_event(invoice))
    stack.wait_until(lambda: ledger_entry(stack, invoice) is not None, what="the claim")
    stack.kill("recover")
    stack.start_function("recover")
    [result] = wait_for_result(stack, invoice)
    assert result["action"] == "sent"
    assert parts_sent_to(stack, phone) == ["text", "link"]


def test_owner_killed_after_the_link_is_finished_by_a_replay_without_a_second_send(stack):
    phone = "+14155550141"
    # The text is held a moment at Linq; once it has arrived (so the plan is recorded) the ledger
    # freezes: the chat record beside the link hangs, the link goes out, and the run, still waiting
    # on that record, is killed before it could write the outcome.
    stack.linq.add_fault(r"^/v3/chats$", delay_s=1.0)
    stack.linq.add_fault(r"/messages$", delay_s=1.0)
    invoice = store(stack, phone=phone)
    stack.post_webhook(builders.payment_failed_event(invoice))
    stack.wait_until(lambda: stack.linq.stats()["faults_injected"] >= 1, what="the text request")
    with frozen(stack.firestore):
        stack.wait_until(lambda: parts_sent_to(stack, phone) == ["text", "link"], what="the link")
        stack.kill("recover")
    stack.start_function("recover")
    [result] = wait_for_result(stack, invoice)
    assert result["action"] == "sent"
    assert parts_sent_to(stack, phone) == ["text", "link"]
    assert ledger_entry(stack, invoice)["state"]["stringValue"] == "done"


def test_owner_killed_as_its_outcome_is_written_has_it_restated_not_resent(stack):
    # The outcome reached the ledger but the run died before its result line: the redelivery
    # states it from the ledger, and nothing is sent twice.
    phone = "+14155550143"
    stack.linq.add_fault(r"/messages$", delay_s=1.0)
    invoice = store(stack, phone=phone)
    stack.post_webhook(builders.payment_failed_event(invoice))
    stack.wait_until(lambda: parts_sent_to(stack, phone) == ["text"], what="the text")
    # The chat is recorded beside the held link.
    stack.wait_until(lambda: "chat_id" in ledger_entry(stack, invoice), what="the chat record")
    with frozen(stack.firestore):
        stack.wait_until(lambda: parts_sent_to(stack, phone) == ["text", "link"], what="the link")
        # The outcome, the run's one ledger write after the link, is on its way.
        stack.wait_until(lambda: unread_by(stack.firestore), what="the outcome write")
        stack.kill("recover")
    stack.start_function("recover")
    [result] = wait_for_result(stack, invoice)
    assert result["action"] == "sent"
    assert ledger_entry(stack, invoice)["action"]["stringValue"] == "sent"
    assert parts_sent_to(stack, phone) == ["text", "link"]


def test_ledger_down_during_the_last_write_is_retried_and_texts_once(stack):
    phone = "+14155550142"
    stack.linq.add_fault(r"/messages$", delay_s=1.0)
    invoice = store(stack, phone=phone)
    stack.post_webhook(builders.payment_failed_event(invoice))
    stack.wait_until(lambda: parts_sent_to(stack, phone) == ["text"], what="the text")
    with frozen(stack.firestore):
        # Longer than the ledger's read timeout, twice: the outcome and the release fail.
        stack.wait_until(lambda: retries_logged(stack, invoice), timeout=30, what="a retry")
    [result] = wait_for_result(stack, invoice)
    assert result["action"] == "sent"
    assert parts_sent_to(stack, phone) == ["text", "link"]
    assert retries_logged(stack, invoice)[0]["vendor"] == "firestore"


def test_pubsub_down_answers_503_and_stripes_retry_is_published(stack):
    invoice = store(stack, phone="+14155550128")
    event = builders.payment_failed_event(invoice)
    stack.emulator.stop()
    try:
        # Answered within the post's 30 s timeout: unbounded, the publish would retry for 600 s.
        answer = stack.post_webhook(event)
    finally:
        stack.restart_emulator()
    assert answer.status_code == 503
    # Stripe sends the event again until it gets a 2xx.
    stack.wait_until(
        lambda: stack.post_webhook(event).status_code == 200, 90, "the ingest to publish again"
    )
    assert [r["action"] for r in wait_for_result(stack, invoice)] == ["sent"]
    assert parts_sent_to(stack, "+14155550128") == ["text", "link"]


def test_message_that_keeps_failing_is_dead_lettered_with_the_reason(stack):
    invoice = store(stack, phone="+14155550129")
    # Stripe's header for an error not worth retrying at once: one invoice read per delivery
    # (stripe-python's own retries are shown above), so each delivery fails fast.
    no_retry = {"Stripe-Should-Retry": "false"}
    path = f"^/v1/invoices/{invoice['id']}$"
    stack.stripe.add_fault(path, status=500, times=1000, headers=no_retry)
    stack.post_webhook(builders.payment_failed_event(invoice))
    dead = []

    def dead_lettered() -> bool:
        dead.extend(stack.emulator.pull(stack.dead_letter_subscription))
        return bool(dead)

    stack.wait_until(dead_lettered, 90, "a message on the dead-letter topic")
    [message] = dead
    assert message["attributes"]["invoice_id"] == invoice["id"]
    assert message["attributes"]["CloudPubSubDeadLetterSourceDeliveryCount"] == str(
        DELIVERY_ATTEMPTS
    )
    retries = retries_logged(stack, invoice)
    assert len(retries) == DELIVERY_ATTEMPTS
    assert {(r["severity"], r["status"]) for r in retries} == {("ERROR", 500)}
    assert results_for(stack, invoice) == []


# --- permanent failures: logged once, acknowledged --------------------------------------------
# The other final errors (an unknown invoice, a rejected key, a test/live mismatch) end the same
# way in-process, in test_recover.py.


def test_linq_client_error_fails_once(stack):
    stack.linq.load({"blocked": ["+14155550132"]})
    invoice = store(stack, phone="+14155550132")
    stack.post_webhook(builders.payment_failed_event(invoice))
    [result] = wait_for_result(stack, invoice)
    # Acknowledged at its one delivery: Pub/Sub has nothing to deliver again.
    assert len(acknowledged(stack, invoice_id=invoice["id"])) == 1
    assert len(results_for(stack, invoice)) == 1
    assert retries_logged(stack, invoice) == []
    assert result["reason"].startswith("Linq 403 (code 2026)")
    assert len([r for r in stack.linq.requests() if r["path"] == "/v3/chats"]) == 1


def test_malformed_message_is_logged_and_acknowledged(stack):
    dropped = lambda: [  # noqa: E731
        line
        for line in stack.entries("recover")
        if line["message"].startswith("malformed message dropped")
    ]
    # Counted before the publish: the line may be written before the count could be taken after.
    before = len(dropped())
    event_id = builders.new_id("evt_bad", 12)
    stack.emulator.publish(stack.topic, b"{not json", {"event_id": event_id})
    # Acknowledged at its one delivery: Pub/Sub has nothing to deliver again.
    assert len(acknowledged(stack, event_id=event_id)) == 1
    assert len(dropped()) == before + 1
    assert dropped()[-1]["severity"] == "ERROR"
    assert stack.emulator.pull(stack.dead_letter_subscription) == []


# --- ineligible lines (Linq 403, code 2027) ---------------------------------------------------


def test_ineligible_picked_line_falls_over_to_the_next(stack):
    phone = "+14155550134"
    first, then = line_order([Line(SENDER, "HEALTHY"), Line(SECOND, "HEALTHY")], phone)
    stack.linq.load({"ineligible": [first.number]})
    _, result = send_and_wait(stack, phone)
    assert result["action"] == "sent"
    assert {m["from"] for m in stack.linq.messages()} == {then.number}


def test_ineligible_configured_line_is_retried_until_it_recovers(stack):
    stack.kill("recover")
    stack.start_function("recover", LINQ_SENDER=SENDER)
    try:
        stack.linq.load({"ineligible": [SENDER]})
        invoice = store(stack, phone="+14155550135")
        stack.post_webhook(builders.payment_failed_event(invoice))
        stack.wait_until(lambda: retries_logged(stack, invoice), what="a retry line")
        assert retries_logged(stack, invoice)[0]["code"] == 2027
        stack.linq.load({"ineligible": []})
        assert [r["action"] for r in wait_for_result(stack, invoice)] == ["sent"]
        assert {m["from"] for m in stack.linq.messages()} == {SENDER}
    finally:
        stack.kill("recover")
        stack.start_function("recover")


# --- vendors' error text carries customer data: none of it reaches a log or a traceback -------

LEAKY_PHONE = "+14155550160"
LEAKY_EMAIL = "ana.leak@example.com"
LEAKY_TEXT = (
    f"delivery to {LEAKY_PHONE} for {LEAKY_EMAIL} failed (key {STRIPE_TEST_KEY}, "
    f"Authorization: Bearer {LINQ_TOKEN})"
)


def stripe_error(status, type_="api_error", code=None):
    error = {"message": LEAKY_TEXT, "type": type_}
    if code is not None:
        error["code"] = code
    return {"status": status, "body": {"error": error}}


def linq_error(status, code):
    body = {"success": False, "error": {"status": status, "code": code, "message": LEAKY_TEXT}}
    headers = {"Retry-After": "1"} if status == 429 else {}
    return {"status": status, "body": {**body, "trace_id": "0" * 32}, "headers": headers}


# One case per error class: retried (5xx, 429) and final (4xx) of each vendor, and Slack's.
LEAKS = {
    "stripe 500": ("stripe", r"^/v1/invoices/", stripe_error(500), 3),
    "stripe 429": (
        "stripe",
        r"^/v1/invoices/",
        stripe_error(429, "invalid_request_error", "rate_limit"),
        1,
    ),
    "stripe 401": ("stripe", r"^/v1/invoices/", stripe_error(401, "invalid_request_error"), 1),
    "stripe 404": (
        "stripe",
        r"^/v1/invoices/",
        stripe_error(404, "invalid_request_error", "resource_missing"),
        1,
    ),
    "linq 503": ("linq", r"^/v3/chats$", linq_error(503, 3006), 1),
    "linq 429": ("linq", r"^/v3/capability/", linq_error(429, 1007), 1),
    "linq 400": ("linq", r"^/v3/capability/", linq_error(400, 1002), 1),
    "linq 403 opted out": ("linq", r"^/v3/chats$", linq_error(403, 2024), 1),
    "linq 403 blocked": ("linq", r"^/v3/chats$", linq_error(403, 2026), 1),
    "linq 403 ineligible": ("linq", r"/messages$", linq_error(403, 2027), 1),
    "slack 500": ("slack", r"/services/", {"status": 500, "body": LEAKY_TEXT}, 1),
}


@pytest.mark.parametrize("case", LEAKS, ids=list(LEAKS))
def test_vendor_error_text_with_a_number_a_key_and_an_email_leaks_nowhere(stack, case):
    service, path, fault, times = LEAKS[case]
    stack.standin(service).add_fault(path, times=times, **fault)
    invoice = store(stack, phone=LEAKY_PHONE, email=LEAKY_EMAIL)
    stack.post_webhook(builders.payment_failed_event(invoice))
    wait_for_result(stack, invoice)
    # The run that wrote the result has answered: every line and note of the case is written.
    acknowledged(stack, invoice_id=invoice["id"])
    assert find_leaks(stack, [LEAKY_PHONE], [LEAKY_EMAIL]) == []


# A Linq error that quotes the request back: the customer's number and text, as JSON.
QUOTED_TEXT = "Hi Ana, your payment for Pro plan didn't go through. Reply STOP to opt out."


@pytest.mark.parametrize(("status", "code"), [(400, 1005), (503, 3006)], ids=["4xx", "5xx"])
def test_a_linq_error_that_quotes_the_request_keeps_its_code_and_not_the_text(stack, status, code):
    parts = [{"type": "text", "value": QUOTED_TEXT}]
    request = {"from": SENDER, "to": [LEAKY_PHONE], "message": {"parts": parts}}
    fault = linq_error(status, code)
    fault["body"]["error"]["message"] = f"Invalid message: {json.dumps(request)}"
    stack.linq.add_fault(r"^/v3/chats$", **fault)
    invoice = store(stack, phone=LEAKY_PHONE, email=LEAKY_EMAIL)
    stack.post_webhook(builders.payment_failed_event(invoice))
    [result] = wait_for_result(stack, invoice)
    # The note comes last: every line of the run is written by then.
    stack.wait_until(
        lambda: any(invoice["id"] in note["text"] for note in stack.slack.notes()), what="a note"
    )
    kept = "Invalid message: [request body dropped]"
    if status < 500:
        assert result["reason"] == f"Linq {status} (code {code}): {kept}"
    else:
        assert result["action"] == "sent"
        assert [line["linq_message"] for line in retries_logged(stack, invoice)] == [kept]
    said = [stack.log(name).read_text(errors="replace") for name in ("ingest", "recover")]
    said += [json.dumps(note["payload"]) for note in stack.slack.notes()]
    assert not [text for text in said if "payment for Pro plan" in text]
    assert find_leaks(stack, [LEAKY_PHONE], [LEAKY_EMAIL]) == []
