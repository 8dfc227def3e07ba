"""Faults end to end over the emulator: outages, timeouts, crashes, dead letters, bad config."""

import json
import os
import signal
import time
from contextlib import contextmanager

import pytest
import requests

from shared.adapters.ledger import COLLECTION
from shared.core.lines import Line
from shared.core.sender import line_order
from standins import LINQ_TOKEN, STRIPE_TEST_KEY, builders
from standins.stack import json_lines
from tests.stack_support import (
    SENDER,
    clean_run,
    find_leaks,
    lines_for,
    parts_sent_to,
    results_for,
    running_stack,
    store,
    wait_for_result,
)

SECOND = "+12025550199"
DELIVERY_ATTEMPTS = 8
# A run killed mid-way leaves its lease to run out before the redelivery may resume; production
# leases outlast the function's timeout, these stay short so the tests need not wait minutes.
LEASE_SECONDS = "3"
# Longer than the product's 8 s read timeout for Stripe and Linq.
TIMEOUT_DELAY_S = 9.0
LINQ_429 = {
    "success": False,
    "error": {"status": 429, "code": 1007, "message": "Rate limited.", "retry_after": 1},
    "trace_id": "0" * 32,
}


@pytest.fixture(scope="module")
def stack():
    options = {
        "min_backoff_s": 0.5,
        "max_backoff_s": 2.0,
        "max_delivery_attempts": DELIVERY_ATTEMPTS,
        "recover_env": {"LEASE_SECONDS": LEASE_SECONDS},
        "slack": True,
        # Linq does not publish its capability-check limit; keep it out of these tests' way.
        "linq_args": ("--capability-limit", "100000"),
    }
    with running_stack(**options) as running:
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


@pytest.mark.parametrize(("status", "times"), [(500, 3), (503, 3), (429, 1)])
def test_stripe_outage_or_rate_limit_on_the_invoice_read(stack, status, times):
    stack.stripe.add_fault(r"^/v1/invoices/", status=status, times=times)
    invoice, result = send_and_wait(stack, "+14155550120")
    assert result["action"] == "sent"
    assert parts_sent_to(stack, "+14155550120") == ["text", "link"]
    [retry] = retries_logged(stack, invoice)
    assert (retry["severity"], retry["status"]) == ("ERROR", status)


def test_stripe_timeout_on_the_invoice_read(stack):
    stack.stripe.add_fault(r"^/v1/invoices/", delay_s=TIMEOUT_DELAY_S, reset=True)
    invoice, result = send_and_wait(stack, "+14155550121")
    assert result["action"] == "sent"
    assert parts_sent_to(stack, "+14155550121") == ["text", "link"]
    # stripe-python retried the timed-out read inside the same run (the stand-in journals the
    # abandoned request only when its delay ends).
    stack.wait_until(lambda: len(stack.stripe.requests()) == 2, what="two invoice reads")
    assert retries_logged(stack, invoice) == []


@pytest.mark.parametrize("path", [r"^/v3/capability/", r"^/v3/chats$", r"/messages$"])
@pytest.mark.parametrize(
    "fault",
    [{"status": 503}, {"status": 429, "body": LINQ_429, "headers": {"Retry-After": "1"}}],
    ids=["5xx", "429"],
)
def test_linq_outage_or_rate_limit_on_every_call(stack, path, fault):
    stack.linq.add_fault(path, method=None, **fault)
    invoice, result = send_and_wait(stack, "+14155550122")
    assert result["action"] == "sent"
    assert parts_sent_to(stack, "+14155550122") == ["text", "link"]
    assert retries_logged(stack, invoice)[0]["status"] == fault["status"]


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
    time.sleep(0.3)  # the chat record, beside the held link, is written by now
    with frozen(stack.firestore):
        stack.wait_until(lambda: parts_sent_to(stack, phone) == ["text", "link"], what="the link")
        time.sleep(0.3)  # the outcome write is on its way to the frozen ledger
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
        # Longer than the ledger's 5 s read timeout, twice: the outcome and the release fail.
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
        started = time.monotonic()
        answer = stack.post_webhook(event)
        elapsed = time.monotonic() - started
    finally:
        stack.restart_emulator()
    assert answer.status_code == 503
    # A hang guard, not a speed check: unbounded, the publish would retry for 600 s.
    assert elapsed < 30, elapsed
    # Stripe retries with backoff until it gets a 2xx.
    deadline = time.monotonic() + 90
    while stack.post_webhook(event).status_code != 200:
        assert time.monotonic() < deadline, "ingest never recovered"
        time.sleep(1.0)
    assert [r["action"] for r in wait_for_result(stack, invoice)] == ["sent"]
    assert parts_sent_to(stack, "+14155550128") == ["text", "link"]


def test_message_that_keeps_failing_is_dead_lettered_with_the_reason(stack):
    invoice = store(stack, phone="+14155550129")
    stack.stripe.add_fault(f"^/v1/invoices/{invoice['id']}$", status=500, times=1000)
    stack.post_webhook(builders.payment_failed_event(invoice))
    dead = []
    deadline = time.monotonic() + 90
    while not dead:
        assert time.monotonic() < deadline, "nothing reached the dead-letter topic"
        time.sleep(0.5)
        dead = stack.emulator.pull(stack.dead_letter_subscription)
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


def settles_without_retry(stack, invoice):
    [result] = wait_for_result(stack, invoice)
    time.sleep(2.5)  # longer than the subscription's maximum backoff: a nack would show by now
    assert len(results_for(stack, invoice)) == 1
    assert retries_logged(stack, invoice) == []
    return result


def test_unknown_invoice_fails_once(stack):
    invoice = builders.invoice(builders.customer(phone="+14155550130"))
    stack.post_webhook(builders.payment_failed_event(invoice))
    result = settles_without_retry(stack, invoice)
    assert (result["action"], result["severity"]) == ("failed", "ERROR")
    assert "No such invoice" in result["reason"]
    assert len(stack.stripe.requests()) == 1


def test_stripe_auth_error_fails_once(stack):
    invoice = store(stack, phone="+14155550131")
    stack.stripe.add_fault(r"^/v1/invoices/", status=401)
    stack.post_webhook(builders.payment_failed_event(invoice))
    result = settles_without_retry(stack, invoice)
    assert result["action"] == "failed"
    assert result["reason"].startswith("Stripe rejected the API key")


def test_linq_client_error_fails_once(stack):
    stack.linq.load({"blocked": ["+14155550132"]})
    invoice = store(stack, phone="+14155550132")
    stack.post_webhook(builders.payment_failed_event(invoice))
    result = settles_without_retry(stack, invoice)
    assert result["reason"].startswith("Linq 403 (code 2026)")
    assert len([r for r in stack.linq.requests() if r["path"] == "/v3/chats"]) == 1


def test_live_event_with_a_test_key_fails_and_says_so(stack):
    invoice = store(stack, phone="+14155550133")
    stack.post_webhook(builders.payment_failed_event(invoice, livemode=True))
    result = settles_without_retry(stack, invoice)
    assert "event is live-mode but STRIPE_API_KEY is a test key" in result["reason"]
    assert stack.stripe.requests() == []


def test_malformed_message_is_logged_and_acknowledged(stack):
    dropped = lambda: [  # noqa: E731
        line
        for line in json_lines(stack.log("recover"))
        if line["message"].startswith("malformed message dropped")
    ]
    # Counted before the publish: the line may be written before the count could be taken after.
    before = len(dropped())
    stack.emulator.publish(stack.topic, b"{not json", {"event_id": "evt_bad"})
    stack.wait_until(lambda: len(dropped()) == before + 1, what="the malformed-message line")
    time.sleep(2.5)
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
    time.sleep(0.5)  # a traceback is written after the answer
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
