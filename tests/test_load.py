"""Load: 150 signed webhooks (10% duplicates) at once through the emulator; nothing lost, none
twice. Thousands at once, and the throughput, are the bench's to measure (BENCHMARKS.md, burst)."""

import collections
import concurrent.futures
import time

import pytest

from standins import builders
from tests.stack_support import SENDER, find_leaks, running_stack

pytestmark = pytest.mark.integration

WEBHOOKS = 150
DUPLICATE_SHARE = 0.10
POSTERS = 8


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    options = {
        # 20 ms per Stripe and Linq call stands in for the network; Stripe's documented 25/s
        # limits stay on, Linq's capability-check limit (unpublished) is lifted.
        "latency_ms": 20,
        "linq_args": ("--capability-limit", "1000000"),
        # As in production, a rate-limited message is retried well past a burst, never dropped.
        "max_delivery_attempts": 20,
        # As in production, a lease a run could not release (the ledger slow to answer on a
        # busy machine) runs out well inside the redeliveries (here 20 at 1 to 5 s apart).
        "recover_env": {
            "LEASE_SECONDS": "20",
            # Every payment of this burst fails and Stripe's stand-in has no successful ones: a
            # surge by the guard's rule, which would rightly pause texting. The guard under load
            # is test_surge.py's (a billing day across 4 instances) and the bench's.
            "SURGE_MIN": "off",
        },
        "slack": True,
    }
    with running_stack(tmp_path_factory.mktemp("stack"), **options) as running:
        yield running


def test_a_burst_of_webhooks_with_duplicates(stack, capsys):
    unique = int(WEBHOOKS * (1 - DUPLICATE_SHARE))
    customers = [builders.customer(phone=f"+1415555{i:04d}") for i in range(unique)]
    invoices = [builders.invoice(c, attempt_count=1 + i % 3) for i, c in enumerate(customers)]
    stack.stripe.load({"customers": customers, "invoices": invoices})
    stack.linq.load({"phone_numbers": [builders.linq_line(SENDER)]})
    events = [builders.payment_failed_event(invoice) for invoice in invoices]
    posts = events + events[: WEBHOOKS - unique]  # the same events again: Stripe redelivering

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(POSTERS) as pool:
        statuses = list(pool.map(lambda event: stack.post_webhook(event).status_code, posts))
    accepted = time.monotonic() - started
    assert collections.Counter(statuses) == {200: WEBHOOKS}

    def handled() -> tuple[list[dict], list[dict]]:
        lines = stack.entries("recover")
        results = [line for line in lines if "action" in line]
        duplicates = [line for line in lines if line["message"] == "duplicate delivery ignored"]
        return results, duplicates

    stack.wait_until(
        lambda: [len(x) for x in handled()] == [unique, WEBHOOKS - unique],
        timeout=600,
        what=f"{unique} results and {WEBHOOKS - unique} duplicates",
    )
    elapsed = time.monotonic() - started
    results, duplicates = handled()

    per_event = collections.Counter(line["event_id"] for line in results)
    assert set(per_event) == {event["id"] for event in events}
    assert set(per_event.values()) == {1}
    assert collections.Counter(line["action"] for line in results) == {"sent": unique}
    sends = collections.Counter(
        (m["idempotency_key"].rsplit("-", 1)[0], m["parts"][0]["type"])
        for m in stack.linq.messages()
    )
    expected_keys = {f"{i['id']}-{i['attempt_count']}" for i in invoices}
    assert {key for key, _ in sends} == expected_keys
    assert set(sends.values()) == {1}
    assert len(sends) == 2 * unique
    assert stack.emulator.pull(stack.dead_letter_subscription) == []
    assert find_leaks(stack) == []
    stripe_stats = stack.stripe.stats()
    with capsys.disabled():
        print(
            f"\nload: {WEBHOOKS} webhooks ({WEBHOOKS - unique} duplicates) acknowledged in "
            f"{accepted:.1f} s; all {unique} texts and {len(duplicates)} duplicate lines in "
            f"{elapsed:.1f} s ({unique / elapsed:.1f} recoveries/s); Stripe peak "
            f"{stripe_stats['peak_per_second']['overall']}/s, "
            f"{stripe_stats.get('rate_limited', 0)} requests rate-limited and retried"
        )
