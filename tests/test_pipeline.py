"""Signed webhook -> ingest -> Pub/Sub -> recover, in-process: each demo customer
(sandbox/demo.py, the one list of cases) ends as the demo says. What a recovery does with each
kind of invoice, phone and Linq answer is tested once, in tests/test_recover.py; here, that the
webhook as Stripe sends it gets there. The topics and the ledger are in memory; the last two
tests run through the emulators too, so the two harnesses cannot tell a different story (the
processes and Eventarc's push: tests/test_e2e.py)."""

import pytest

from sandbox import demo
from standins import builders
from tests.harness import SENDER, customer_calls

# The quiet-hours customer needs the clock at night in Tokyo: tests/test_quiet_hours_flow.py.
CASES = [case for case in demo.cases() if not case.deferred]


def texts(linq_api):
    return [m["parts"][0]["value"] for m in linq_api.messages() if m["endpoint"] == "chats"]


def links(linq_api):
    return [m["parts"][0]["value"] for m in linq_api.messages() if m["endpoint"] == "messages"]


@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_each_demo_customer_ends_as_the_demo_says(pipeline, linq_api, stripe_api, case):
    pipeline.configure(HOLDOUT_PERCENT=str(demo.HOLDOUT_PERCENT))
    demo.prepare(stripe_api, linq_api, [case])
    # Stripe's events for the attempt, one after the other (the 3-D Secure customer's two).
    events = [builders.payment_failed_event(case.invoice, type=kind) for kind in case.events]
    lines = [line for event in events for line in pipeline.deliver(event)]
    assert [(r["action"], r["event_id"], r["invoice_id"], r["event_type"]) for r in lines] == [
        (action, event["id"], case.invoice["id"], event["type"])
        for action, event in zip(case.event_actions, events, strict=True)
    ]
    if case.expected == "sent":
        assert [(m["endpoint"], m["from"], m["to"]) for m in linq_api.messages()] == [
            ("chats", SENDER, [case.phone]),
            ("messages", SENDER, [case.phone]),
        ]
        assert links(linq_api) == [case.invoice["hosted_invoice_url"]]
        assert texts(linq_api)[0].startswith(case.opens or "Hi ")
    elif case.expected in ("skipped:unreachable", "skipped:opted_out"):
        # Linq was asked about the number (reachability, the opt-out refusal); nothing was sent.
        assert linq_api.messages() == []
    else:
        assert customer_calls(linq_api) == []


BACKENDS = ["pipeline", pytest.param("emulated_pipeline", marks=pytest.mark.integration)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_event_delivered_twice_texts_once(request, backend, linq_api):
    pipeline = request.getfixturevalue(backend)
    invoice = pipeline.customer_with_invoice()
    event = builders.payment_failed_event(invoice)
    pipeline.deliver(event)
    pipeline.deliver(event)
    assert len(texts(linq_api)) == 1
    assert len(links(linq_api)) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_thin_event_goes_all_the_way(request, backend, linq_api):
    pipeline = request.getfixturevalue(backend)
    invoice = pipeline.customer_with_invoice(attempt_count=3)
    [result] = pipeline.deliver(builders.thin_payment_failed_event(invoice["id"]))
    assert result["action"] == "sent"
    assert linq_api.messages()[0]["idempotency_key"] == f"{invoice['id']}-3-text"
