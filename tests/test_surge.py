"""A surge pauses itself, through the functions in-process: failed payments counted in the ledger,
Stripe asked how many succeeded only past SURGE_MIN and once a minute across instances, a surge
across several instances at once, a billing day that pauses nothing, Stripe unable to answer,
and a resume in the middle of a surge."""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from shared.adapters.ledger import Ledger
from shared.adapters.stripe_gateway import StripeGateway
from shared.core.control import CHECK_EVERY, SURGE_GUARD, Verdict
from shared.core.entry import State
from standins import StripeStandin, builders
from tests.harness import entry, results

ACCOUNT = "acct_1Connected"
RESUME_HINT = "handed back, oldest first, after `./dev resume`."


@pytest.fixture
def stripe_api() -> Iterator[StripeStandin]:
    """Stripe without its rate limits: a surge here comes faster than 25 invoice reads a second,
    and what is tested is the guard, not Stripe's limits (BENCHMARKS.md's surge runs under them)."""
    with StripeStandin(endpoint_rate=None, global_rate_test=None) as server:
        yield server


@pytest.fixture
def world(pipeline, fake_gcloud):
    """The pipeline with the team's Slack on and a guard that looks at 5 failures."""
    pipeline.configure(
        SLACK_WEBHOOK_URL=f"{pipeline.slack.url}/services/T0/B0/X0",
        SURGE_MIN="5",
        SURGE_WINDOW="10m",
        SURGE_SHARE="50",
    )
    return pipeline


def customer(index: int) -> dict[str, Any]:
    return builders.customer(phone=f"+1415555{index:04d}")


def failure(world, index: int, instance: Any = None, **changes: Any) -> dict[str, Any]:
    """A payment of a new customer fails now, as Stripe reports it; its result line."""
    invoice = world.customer_with_invoice(customer(index))
    stamp = int(world.clock().timestamp())
    return world.result(invoice, instance=instance, failed_at=stamp, **changes)


def successes(world, count: int, account: str | None = None) -> None:
    """`count` payments Stripe made now: their `invoice.paid` events (on `account`)."""
    created = int(world.clock().timestamp())
    events = [
        builders.invoice_paid_event(builders.paid(builders.invoice("cus_paid")), created=created)
        for _ in range(count)
    ]
    world.stripe.load(
        {"accounts": [{"id": account, "events": events}]} if account else {"events": events}
    )


def asked(world) -> int:
    """How many pages of events the product read from Stripe."""
    return sum(1 for r in world.stripe.requests() if r["endpoint"] == "GET /v1/events")


def texted(linq_api) -> int:
    return sum(1 for m in linq_api.messages() if m["parts"][0]["type"] == "text")


# --- under SURGE_MIN, and the surge ---------------------------------------------------------------


def test_under_surge_min_stripe_is_never_asked(world, linq_api):
    assert [failure(world, i)["action"] for i in range(4)] == ["sent"] * 4
    assert asked(world) == 0


def test_a_surge_pauses_texting_with_its_counts_and_tells_the_team(world, linq_api):
    successes(world, 1)
    assert [failure(world, i)["action"] for i in range(4)] == ["sent"] * 4
    held = failure(world, 4)
    at = f"{world.clock():%Y-%m-%d %H:%M} UTC"
    reason = "surge: 5 of 6 payments failed in 10 minutes"
    assert (held["action"], held["reason"]) == (
        "deferred:paused",
        f"texting paused by {SURGE_GUARD} at {at}: {reason}",
    )
    [alert] = [n["text"] for n in world.slack.notes() if "surge" in n["text"]]
    assert alert == (
        f"Texting paused by {SURGE_GUARD}: {reason} (SURGE_MIN=5, SURGE_SHARE=50 %). No new text "
        f"goes out; failed payments are kept (deferred:paused) and {RESUME_HINT}"
    )
    # Every later failure is held, without asking Stripe again.
    assert [failure(world, i)["action"] for i in range(5, 8)] == ["deferred:paused"] * 3
    assert asked(world) == 1
    assert texted(linq_api) == 4
    status, out, _ = world.control("pause", "--status")
    assert status == 0
    assert out.splitlines() == [
        f"Texting is paused, by {SURGE_GUARD} since {at}: {reason}.",
        "4 failed payment(s) held (deferred:paused). `./dev resume` ends it.",
        f"Surge guard: last asked Stripe at {at}: 5 failed, 1 paid, surge.",
    ]


def test_a_billing_day_pauses_nothing_and_counts_only_until_the_question_is_settled(
    world, linq_api
):
    # Many renewals, few failures: at SURGE_SHARE=10, 6 failures are settled by 108 successes
    # (enough for twice the failures): two pages of Stripe's 100, not all of the 350.
    world.configure(SURGE_SHARE="10", SURGE_MIN="6")
    successes(world, 350)
    assert [failure(world, i)["action"] for i in range(7)] == ["sent"] * 7
    assert asked(world) == 2
    check = world.ledger.control().check
    assert (check.failures, check.successes, check.complete, check.verdict) == (
        6,
        108,
        False,
        Verdict.CALM,
    )
    assert world.ledger.control().pause is None


def test_stripe_unable_to_answer_is_no_pause_on_a_guess(world, linq_api):
    world.stripe.add_fault(r"^/v1/events", status=429, times=5)
    assert [failure(world, i)["action"] for i in range(6)] == ["sent"] * 6
    [alert] = [n["text"] for n in world.slack.notes() if n["text"].startswith("Surge guard")]
    assert alert.startswith(
        "Surge guard: 5 payments failed in the last 10 minutes and Stripe could not be asked how "
        "many succeeded (Stripe: "
    )
    assert alert.endswith("Not pausing on a guess: texting goes on. `./dev pause` stops it.")
    # Asked once: the next look is a minute later.
    assert asked(world) == 1
    assert world.ledger.control().check.verdict is Verdict.UNKNOWN


def test_stripe_is_asked_at_most_once_a_minute_across_instances(world, linq_api):
    successes(world, 100)
    first, second = world.instance(), world.instance()
    for index in range(5):
        assert failure(world, index, instance=first)["action"] == "sent"
    assert asked(world) == 1
    # Another instance, the failures not doubled since: the verdict covers it.
    for index in range(5, 9):
        assert failure(world, index, instance=second)["action"] == "sent"
    assert asked(world) == 1
    world.clock.advance(CHECK_EVERY)
    successes(world, 100)
    assert failure(world, 9, instance=second)["action"] == "sent"
    assert asked(world) == 2
    assert world.ledger.control().check.failures == 10


def test_a_check_under_way_holds_another_instances_text_until_the_sweep(
    world, linq_api, monkeypatch
):
    # Two instances cross SURGE_MIN together: one asks Stripe, the other does not text on a
    # guess while it waits; the verdict is calm, and the next sweep hands the held one back.
    successes(world, 100)
    for index in range(4):
        assert failure(world, index)["action"] == "sent"
    inside, done = threading.Event(), threading.Event()
    real = StripeGateway._events_page

    def slow(self: StripeGateway, *args: Any) -> Any:
        inside.set()
        assert done.wait(10)
        return real(self, *args)

    monkeypatch.setattr(StripeGateway, "_events_page", slow)
    checking = world.customer_with_invoice(customer(4))
    stamp = int(world.clock().timestamp())
    answer: list[Any] = []
    thread = threading.Thread(
        target=lambda: answer.append(world.recover(world.payment(checking, failed_at=stamp)))
    )
    thread.start()
    assert inside.wait(10)
    held = failure(world, 5, instance=world.instance())
    assert held["action"] == "deferred:paused"
    assert held["reason"] == (
        "surge check: 6 payments failed in the last 10 minutes; held until the surge guard has "
        "asked Stripe how many succeeded"
    )
    done.set()
    thread.join(10)
    assert answer[0].status_code == 200
    assert world.ledger.control().check.verdict is Verdict.CALM
    assert world.sweep().status_code == 200
    world.capsys.readouterr()
    for message in world.published():
        assert world.push(message).status_code == 200
    assert [r["action"] for r in results(world.capsys.readouterr().out)] == ["sent"]
    assert texted(linq_api) == 6


@pytest.mark.integration
@pytest.mark.parametrize("in_flight", [2, 4])
def test_a_surge_across_several_instances_texts_at_most_surge_min_and_those_in_flight(
    world, linq_api, in_flight
):
    # A processor incident: 40 payments fail, one attempt in ten succeeds, as they come, each
    # handed to the first free of `in_flight` instances. At most SURGE_MIN + in_flight are
    # texted; every other one is held, none lost; after the resume, each is texted once.
    count = 40
    instances = [world.instance() for _ in range(in_flight)]
    invoices = [world.customer_with_invoice(customer(i)) for i in range(count)]
    waiting: queue.Queue[int] = queue.Queue()
    for index in range(count):
        waiting.put(index)
    lock = threading.Lock()
    lines: list[dict[str, Any]] = []

    def work(instance: Any) -> None:
        while True:
            try:
                index = waiting.get_nowait()
            except queue.Empty:
                return
            if index % 10 == 9:
                successes(world, 1)
            stamp = int(world.clock().timestamp())
            payment = world.payment(invoices[index], failed_at=stamp)
            assert world.recover(payment, None, instance).status_code == 200

    world.capsys.readouterr()
    threads = [threading.Thread(target=work, args=(instance,)) for instance in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with lock:
        lines = results(world.capsys.readouterr().out)
    actions = {line["invoice_id"]: line["action"] for line in lines}
    assert len(actions) == count
    sent = [i for i, action in actions.items() if action == "sent"]
    assert 5 - 1 <= len(sent) <= 5 + in_flight
    assert {a for a in actions.values() if a != "sent"} == {"deferred:paused"}
    assert asked(world) == 1
    held = world.ledger.control().pause
    assert held is not None
    assert held.by == SURGE_GUARD
    assert re.fullmatch(r"surge: \d+ of \d+ payments failed in 10 minutes", held.reason)
    assert world.ledger.paused_count() == count - len(sent)

    world.clock.advance(timedelta(minutes=5))
    status, out, _ = world.control("resume")
    assert status == 0
    assert f"{count - len(sent)} paused payment(s) go back" in out
    assert world.sweep().status_code == 200
    world.capsys.readouterr()
    for message in world.published():
        assert world.push(message).status_code == 200
    after = results(world.capsys.readouterr().out)
    assert sorted(line["invoice_id"] for line in after) == sorted(
        i for i, action in actions.items() if action == "deferred:paused"
    )
    assert {line["action"] for line in after} == {"sent"}
    # Every payment texted exactly once, text and link.
    keys = sorted(m["idempotency_key"] for m in linq_api.messages())
    assert keys == sorted(f"{i['id']}-1-{part}" for i in invoices for part in ("text", "link"))


@pytest.mark.integration
def test_a_resume_during_a_surge_counts_only_the_failures_after_it(world, linq_api):
    first = [failure(world, index) for index in range(8)]
    assert [line["action"] for line in first] == ["sent"] * 4 + ["deferred:paused"] * 4
    held = [line["invoice_id"] for line in first[4:]]
    world.clock.advance(timedelta(minutes=2))
    assert world.control("resume")[0] == 0
    # The held payments go back: the failures before the resume are the operator's judgment.
    assert world.sweep().status_code == 200
    world.capsys.readouterr()
    for message in world.published():
        assert world.push(message).status_code == 200
    assert {r["invoice_id"]: r["action"] for r in results(world.capsys.readouterr().out)} == (
        dict.fromkeys(held, "sent")
    )
    # The surge goes on: SURGE_MIN new failures, none of them paid, pause it again.
    world.clock.advance(timedelta(seconds=1))
    assert [failure(world, index)["action"] for index in range(8, 12)] == ["sent"] * 4
    assert failure(world, 12)["action"] == "deferred:paused"
    assert world.ledger.control().pause.reason == "surge: 5 of 5 payments failed in 10 minutes"


def test_a_backfill_is_no_new_failure(world, linq_api):
    for index in range(8):
        invoice = world.customer_with_invoice(customer(index))
        assert world.result(invoice, event_id=f"backfill_{invoice['id']}_1")["action"] == "sent"
    assert asked(world) == 0


def test_a_connected_accounts_payments_are_counted_on_that_account(world, linq_api):
    successes(world, 50, account=ACCOUNT)
    for index in range(6):
        person = customer(index)
        invoice = builders.invoice(person)
        world.stripe.load(
            {"accounts": [{"id": ACCOUNT, "customers": [person], "invoices": [invoice]}]}
        )
        stamp = int(world.clock().timestamp())
        result = world.result(invoice, account=ACCOUNT, failed_at=stamp)
        assert result["action"] == "sent"
    assert world.ledger.control().check.verdict is Verdict.CALM
    assert entry(world, invoice).state is State.DONE


def test_surge_min_off_counts_nothing(world, linq_api, monkeypatch):
    world.configure(SURGE_MIN="off")

    def never(*_: Any) -> int:
        raise AssertionError("the guard is off: nothing is counted")

    monkeypatch.setattr(Ledger, "failures_since", never)
    assert [failure(world, i)["action"] for i in range(8)] == ["sent"] * 8
    assert asked(world) == 0
