"""Operator controls end to end over the emulator: TEXT_ON_ATTEMPTS, BRAND_NAME and {amount},
a language template, DRY_RUN, and `./dev backfill` run as a command against the running stack."""

import json
import os
import subprocess
import time

import pytest
import requests

from shared.adapters.ledger import COLLECTION
from shared.workflow.settings import is_product_variable
from standins import STRIPE_TEST_KEY, builders
from standins.emulator import DEFAULT_PROJECT
from standins.stack import REPO, json_lines
from tests.stack_support import (
    clean_run,
    messages_to,
    parts_sent_to,
    results_for,
    running_stack,
    store,
    wait_for_result,
)

pytestmark = pytest.mark.integration

SPANISH = "{brand}: Hola {first_name}, tu pago de {amount} no se procesó. Responde STOP."
RECOVER_ENV = {"TEXT_ON_ATTEMPTS": "1,3", "BRAND_NAME": "Acme", "MESSAGE_TEMPLATE_ES": SPANISH}
SEND_ENDPOINTS = {"POST /v3/chats", "POST /v3/chats/{chat_id}/messages"}


@pytest.fixture(scope="module")
def stack():
    options = {"min_backoff_s": 0.5, "max_backoff_s": 2.0, "slack": True}
    with running_stack(recover_env=RECOVER_ENV, **options) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(stack):
    with clean_run(stack):
        yield


def failed(stack, attempts=(1,), age_s=3600, invoice_changes=None, **customer):
    """A stored invoice whose payment failed at each of `attempts`, with Stripe's events."""
    invoice = store(stack, {"attempt_count": attempts[-1], **(invoice_changes or {})}, **customer)
    events = builders.payment_failed_events(
        invoice, attempts, last_created=int(time.time()) - age_s
    )
    stack.stripe.load({"events": events})
    return invoice


def texts_to(stack, phone):
    return [m["parts"][0]["value"] for m in messages_to(stack, phone) if m["endpoint"] == "chats"]


def ledger_status(stack, invoice):
    url = (
        f"http://{stack.firestore.host}/v1/projects/{DEFAULT_PROJECT}/databases/dunning/documents/"
        f"{COLLECTION}/{invoice['id']}-{invoice['attempt_count']}"
    )
    return requests.get(url, headers={"Authorization": "Bearer owner"}, timeout=5).status_code


def backfill(stack, *args):
    """`./dev backfill ARGS` against the stack's Stripe stand-in and topic."""
    env = {k: v for k, v in os.environ.items() if not is_product_variable(k)}
    env.update(
        STRIPE_API_KEY=STRIPE_TEST_KEY,
        STRIPE_API_BASE=stack.urls["stripe"],
        GOOGLE_CLOUD_PROJECT=DEFAULT_PROJECT,
        PUBSUB_TOPIC=stack.topic,
        PUBSUB_EMULATOR_HOST=stack.emulator.host,
    )
    done = subprocess.run(
        [str(REPO / "dev"), "backfill", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_attempts_outside_the_policy_are_skipped_through_the_emulator(stack):
    second = failed(stack, attempts=(2,), phone="+14155550120")
    third = failed(stack, attempts=(3,), phone="+14155550121")
    for invoice in (second, third):
        stack.post_webhook(builders.payment_failed_event(invoice))
    assert [r["action"] for r in wait_for_result(stack, second)] == ["skipped:policy"]
    assert [r["action"] for r in wait_for_result(stack, third)] == ["sent"]
    journal = json.dumps(stack.linq.requests())
    assert "+14155550120" not in journal
    assert "+14155550121" in journal


def test_brand_amount_and_language_through_the_emulator(stack):
    english = failed(stack, phone="+14155550122", invoice_changes={"amount_due": 4900})
    spanish = failed(
        stack,
        phone="+14155550123",
        preferred_locales=["es-419"],
        invoice_changes={"currency": "eur"},
    )
    for invoice in (english, spanish):
        stack.post_webhook(builders.payment_failed_event(invoice))
        wait_for_result(stack, invoice)
    assert texts_to(stack, "+14155550122") == [
        "Acme: Hi Jane, your $49.00 payment for Pro plan didn't go through. You can update your "
        "card and retry with the link below. Reply STOP to opt out."
    ]
    assert texts_to(stack, "+14155550123") == [
        "Acme: Hola Jane, tu pago de €25.00 no se procesó. Responde STOP."
    ]


def test_dry_run_sends_and_claims_nothing_then_the_live_run_sends(stack):
    invoice = failed(stack, phone="+14155550124")
    no_phone = failed(stack, phone=None)
    event = builders.payment_failed_event(invoice)
    stack.kill("recover")
    stack.start_function("recover", DRY_RUN="true")
    try:
        stack.post_webhook(event)
        stack.post_webhook(builders.payment_failed_event(no_phone))
        [dry_run] = wait_for_result(stack, invoice)
        [skip] = wait_for_result(stack, no_phone)
    finally:
        stack.kill("recover")
        stack.start_function("recover")
    assert (dry_run["action"], dry_run["reason"], dry_run["phone"]) == (
        "dry_run",
        "sent",
        "+1******0124",
    )
    assert dry_run["text"].startswith("Acme: Hi Jane, your $25.00 payment for Pro plan")
    assert (skip["action"], skip["reason"]) == ("dry_run", "skipped:no_phone: no phone on file")
    endpoints = [r["endpoint"] for r in stack.linq.requests()]
    assert "POST /v3/capability/check_imessage" in endpoints
    assert SEND_ENDPOINTS.isdisjoint(endpoints)
    assert ledger_status(stack, invoice) == 404

    stack.post_webhook(event)
    assert [r["action"] for r in wait_for_result(stack, invoice, count=2)] == ["dry_run", "sent"]
    assert parts_sent_to(stack, "+14155550124") == ["text", "link"]
    assert ledger_status(stack, invoice) == 200


def test_backfill_dry_run_then_live_then_again_texts_once(stack):
    first = failed(stack, phone="+14155550125")
    policy_skipped = failed(stack, attempts=(1, 2), phone="+14155550126", age_s=7200)
    paid = failed(stack, phone="+14155550127", age_s=10800, invoice_changes={"status": "paid"})

    dry_run = backfill(stack, "--since", "7d", "--dry-run")
    assert dry_run.stdout.splitlines() == [
        "3 invoice(s) with a failed payment in that time, newest first",
        f"would queue {first['id']} {first['customer']} attempt 1 $25.00",
        f"would queue {policy_skipped['id']} {policy_skipped['customer']} attempt 2 $25.00",
        f"skipped {paid['id']}: invoice is paid",
        "2 would be queued (dry run: nothing published), 1 skipped, 0 not found",
    ]
    assert stack.emulator.pull(stack.audit_subscription) == []

    live = backfill(stack, "--since", "7d", "--progress")
    assert live.stdout.splitlines()[-1] == "2 queued, 1 skipped, 0 not found"
    assert live.stderr.endswith("] 3/3\n")
    assert [r["action"] for r in wait_for_result(stack, first)] == ["sent"]
    assert [r["action"] for r in wait_for_result(stack, policy_skipped)] == ["skipped:policy"]
    assert results_for(stack, paid) == []

    backfill(stack, "--since", "7d")
    event_ids = {f"backfill_{first['id']}_1", f"backfill_{policy_skipped['id']}_2"}
    stack.wait_until(
        lambda: (
            {
                line["event_id"]
                for line in json_lines(stack.log("recover"))
                if line.get("message") == "duplicate delivery ignored"
            }
            >= event_ids
        ),
        what="both payments to be dropped as duplicates",
    )
    assert len(results_for(stack, first)) == 1
    assert parts_sent_to(stack, "+14155550125") == ["text", "link"]
    assert len(stack.linq.messages()) == 2
