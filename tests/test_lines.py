"""Several lines, one number per customer, through the recover function in-process: each
customer's own line every time, a line that leaves, a line at its daily limit (several runs racing
for its last message, the next UTC day, a resumed plan), and what is counted."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.adapters import linq as linq_module
from shared.adapters.ledger import LINE_COUNTS
from shared.adapters.linq import LinqClient
from shared.core.entry import State
from shared.core.errors import RetryableError
from shared.core.lines import Line
from shared.core.sender import DEFAULT_LINE_DAILY_LIMIT, line_order, utc_day
from standins import LinqStandin, StripeStandin, builders
from tests.harness import ROOT, entry

A, B, C = "+12025550101", "+12025550102", "+12025550103"
# A day's last minute in UTC: the next minute every line's count starts again.
EVENING = datetime(2026, 11, 26, 23, 59, tzinfo=UTC)
MIDNIGHT = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)


def _deployed(name: str) -> int:
    found = re.search(rf"^{name}=(\d+)", (ROOT / "deploy.sh").read_text(), re.MULTILINE)
    assert found is not None, name
    return int(found.group(1))


# The most recover runs that can be in flight at once, as deploy.sh deploys the function.
IN_FLIGHT = _deployed("RECOVER_MAX_INSTANCES") * _deployed("RECOVER_CONCURRENCY")


@pytest.fixture
def linq_api():
    # Linq does not publish its capability-check limit; keep it out of these tests' way.
    with LinqStandin(capability_limit=100_000) as server:
        yield server


@pytest.fixture
def stripe_api():
    # One run after another in-process reads invoices faster than the four deployed instances
    # would; Stripe's rate limits have their own tests.
    with StripeStandin(endpoint_rate=None, global_rate_test=None) as server:
        yield server


def order(to: str, *lines: str) -> list[str]:
    """`to`'s own order of the lines."""
    return [line.number for line in line_order([Line(n, "HEALTHY") for n in lines], to)]


def phones(count: int, *, first: str | None = None, lines: tuple[str, ...] = (A, B)) -> list[str]:
    """`count` customers' numbers (whose own first line is `first`, when given)."""
    found = []
    for index in range(100, 10_000):
        phone = f"+1415555{index:04d}"
        if first is None or order(phone, *lines)[0] == first:
            found.append(phone)
        if len(found) == count:
            return found
    raise AssertionError("not enough numbers")


def accounts(linq_api: Any, *lines: str, critical: tuple[str, ...] = ()) -> None:
    linq_api.load(
        {
            "phone_numbers": [
                builders.linq_line(n, reputation="CRITICAL" if n in critical else "HEALTHY")
                for n in lines
            ]
        }
    )


def invoice_for(pipeline: Any, phone: str, **changes: Any) -> dict[str, Any]:
    return pipeline.customer_with_invoice(builders.customer(phone=phone), **changes)


def text(pipeline: Any, phone: str) -> dict[str, Any]:
    """A failed payment of a new customer at `phone`, recovered; its result line."""
    return pipeline.result(invoice_for(pipeline, phone))


def senders(linq_api: Any, phone: str) -> list[str]:
    """The line of each message `phone` received, in order (text and link)."""
    return [m["from"] for m in linq_api.messages() if m["to"] == [phone]]


def fill(pipeline: Any, line: str, messages: int) -> None:
    """`line` has sent `messages` today."""
    for _ in range(messages):
        pipeline.ledger.count_sent(line)


# --- one number per customer ---------------------------------------------------------------------


def test_each_customer_hears_from_their_own_line_every_time_and_all_lines_carry_some(
    pipeline, linq_api
):
    accounts(linq_api, A, B, C)
    customers = phones(24)
    invoices = [invoice_for(pipeline, phone) for phone in customers]
    for invoice in invoices:
        assert pipeline.result(invoice)["action"] == "sent"
    for invoice in invoices:
        pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
        assert pipeline.result(invoice, attempt_count=2)["action"] == "sent"
    for phone in customers:
        # The text and the link of both failed payments, from the customer's own line.
        assert senders(linq_api, phone) == [order(phone, A, B, C)[0]] * 4
    assert {m["from"] for m in linq_api.messages()} == {A, B, C}
    assert pipeline.ledger.sent_today() == {
        line: 4 * sum(order(phone, A, B, C)[0] == line for phone in customers) for line in (A, B, C)
    }


def test_a_line_that_leaves_moves_only_its_own_customers_each_to_their_next_line(
    pipeline, linq_api, monkeypatch
):
    monkeypatch.setattr(linq_module, "LINES_TTL_SECONDS", 0)
    accounts(linq_api, A, B, C)
    customers = phones(24)
    invoices = [invoice_for(pipeline, phone) for phone in customers]
    for invoice in invoices:
        pipeline.result(invoice)
    before = {phone: senders(linq_api, phone)[0] for phone in customers}
    accounts(linq_api, A, C)  # B leaves the account
    for invoice in invoices:
        pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
        assert pipeline.result(invoice, attempt_count=2)["action"] == "sent"
    after = {phone: senders(linq_api, phone)[2] for phone in customers}
    moved = {phone for phone in customers if after[phone] != before[phone]}
    assert moved == {phone for phone in customers if before[phone] == B}
    assert moved
    for phone in moved:
        assert after[phone] == order(phone, A, B, C)[1]


def test_a_critical_first_line_gives_its_customer_to_their_next_line_and_no_one_else(
    pipeline, linq_api
):
    accounts(linq_api, A, B, C, critical=(A,))
    for phone in phones(9, lines=(A, B, C)):
        text(pipeline, phone)
        expected = next(n for n in order(phone, A, B, C) if n != A)
        assert senders(linq_api, phone) == [expected, expected]


# --- a line at its daily limit -------------------------------------------------------------------


def test_a_line_at_its_limit_gives_new_texts_to_the_customers_next_line(pipeline, linq_api):
    accounts(linq_api, A, B)
    at_a, at_b = phones(2, first=A), phones(1, first=B)
    fill(pipeline, A, DEFAULT_LINE_DAILY_LIMIT - 2)
    text(pipeline, at_a[0])  # the last text and link A takes today
    text(pipeline, at_a[1])
    text(pipeline, at_b[0])
    assert senders(linq_api, at_a[0]) == [A, A]
    assert senders(linq_api, at_a[1]) == [B, B]
    assert senders(linq_api, at_b[0]) == [B, B]
    assert pipeline.ledger.sent_today() == {A: DEFAULT_LINE_DAILY_LIMIT, B: 4}


def test_several_runs_racing_for_a_lines_last_message_overshoot_by_their_own_messages_only(
    pipeline, linq_api, monkeypatch
):
    # Each run reads the counts before it picks a line and counts what it sent after: runs in
    # flight together all read 6,999 and all send from A. The bound: a line ends at most
    # LIMIT - 1 + 2 x the runs in flight (a text and a link each), 7,007 as deployed; the next
    # run reads A full and goes elsewhere.
    accounts(linq_api, A, B)
    fill(pipeline, A, DEFAULT_LINE_DAILY_LIMIT - 1)
    racers, later = phones(IN_FLIGHT, first=A), phones(IN_FLIGHT + 1, first=A)[-1]
    invoices = [invoice_for(pipeline, phone) for phone in racers]
    # Every run is held in Linq's chat call until all have picked their line.
    picked = threading.Barrier(IN_FLIGHT)
    real = LinqClient.create_chat

    def held(self: LinqClient, *args: Any) -> Any:
        picked.wait(10)
        return real(self, *args)

    monkeypatch.setattr(LinqClient, "create_chat", held)
    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda i=i: answers.append(pipeline.recover(i).status_code))
        for i in (pipeline.payment(invoice) for invoice in invoices)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [200] * IN_FLIGHT
    for phone in racers:
        assert senders(linq_api, phone) == [A, A]
    bound = DEFAULT_LINE_DAILY_LIMIT - 1 + 2 * IN_FLIGHT
    assert pipeline.ledger.sent_today() == {A: bound}
    monkeypatch.setattr(LinqClient, "create_chat", real)
    text(pipeline, later)
    assert senders(linq_api, later) == [B, B]
    assert pipeline.ledger.sent_today() == {A: bound, B: 2}


def test_a_full_line_takes_new_texts_again_from_midnight_utc(pipeline, linq_api):
    pipeline.configure(LINQ_LINE_DAILY_LIMIT="2")
    pipeline.clock.set(EVENING)
    accounts(linq_api, A, B)
    first, second, third = phones(3, first=A)
    text(pipeline, first)  # A's two messages of the day
    text(pipeline, second)
    pipeline.clock.set(MIDNIGHT)
    text(pipeline, third)
    assert [senders(linq_api, phone) for phone in (first, second, third)] == [
        [A, A],
        [B, B],
        [A, A],
    ]
    assert pipeline.ledger.sent_today() == {A: 2}


def test_with_every_line_full_the_payment_is_retried_until_midnight_utc_never_lost(
    pipeline, linq_api
):
    pipeline.configure(LINQ_LINE_DAILY_LIMIT="2")
    pipeline.clock.set(EVENING)
    accounts(linq_api, A, B)
    text(pipeline, phones(1, first=A)[0])
    text(pipeline, phones(1, first=B)[0])
    late = invoice_for(pipeline, phones(3, first=A)[-1])
    status, lines = pipeline.run(late, "m-1")
    assert status == 500
    [retry] = [line for line in lines if line["message"].startswith("will retry")]
    assert retry["message"] == (
        "will retry: no usable Linq line: 2 line(s), 0 CRITICAL, 0 refused as ineligible "
        "(Linq 403, code 2027), 2 at the daily limit (LINQ_LINE_DAILY_LIMIT=2 messages, until "
        "00:00 UTC)"
    )
    assert entry(pipeline, late).state is State.ACTIVE
    assert entry(pipeline, late).plan is None
    pipeline.clock.set(MIDNIGHT)
    assert pipeline.result(late, "m-1")["action"] == "sent"
    assert len(linq_api.messages()) == 6


def test_a_resumed_plan_keeps_its_recorded_line_though_the_line_filled_meanwhile(
    pipeline, linq_api
):
    accounts(linq_api, A, B)
    phone = phones(1, first=A)[0]
    invoice = invoice_for(pipeline, phone)
    linq_api.add_fault(r"^/v3/chats$", method="POST", status=503)
    status, _ = pipeline.run(invoice, "m-1")
    assert status == 500
    assert entry(pipeline, invoice).plan.line == A
    fill(pipeline, A, DEFAULT_LINE_DAILY_LIMIT)
    assert pipeline.result(invoice, "m-1")["action"] == "sent"
    assert senders(linq_api, phone) == [A, A]
    assert pipeline.ledger.sent_today() == {A: DEFAULT_LINE_DAILY_LIMIT + 2}


def test_the_link_follows_its_text_from_a_line_the_text_filled(pipeline, linq_api):
    pipeline.configure(LINQ_LINE_DAILY_LIMIT="1")
    accounts(linq_api, A, B)
    phone = phones(1, first=A)[0]
    text(pipeline, phone)
    assert senders(linq_api, phone) == [A, A]


def test_linq_sender_wins_over_a_full_line_and_is_still_counted(pipeline, linq_api):
    accounts(linq_api, A, B)
    pipeline.configure(LINQ_SENDER=A)
    fill(pipeline, A, DEFAULT_LINE_DAILY_LIMIT)
    phone = phones(1, first=B)[0]
    assert text(pipeline, phone)["action"] == "sent"
    assert senders(linq_api, phone) == [A, A]
    assert pipeline.ledger.sent_today() == {A: DEFAULT_LINE_DAILY_LIMIT + 2}


def test_an_ineligible_first_line_gives_way_to_the_customers_next_line_not_linqs(
    pipeline, linq_api
):
    accounts(linq_api, A, B, C)

    def listed_after(first: str) -> str:
        """The usable line Linq lists first once `first` is refused."""
        return next(n for n in (A, B, C) if n != first)

    # A customer whose next line is not the one Linq lists first.
    phone = next(
        p
        for p in phones(40, lines=(A, B, C))
        if order(p, A, B, C)[1] != listed_after(order(p, A, B, C)[0])
    )
    first, then = order(phone, A, B, C)[:2]
    linq_api.load({"ineligible": [first]})
    assert text(pipeline, phone)["action"] == "sent"
    assert senders(linq_api, phone) == [then, then]
    [recorded] = pipeline.ledger.entries_to(phone)
    assert recorded.plan.line == then
    # Only what went out is counted: Linq refused the first line before creating anything.
    assert pipeline.ledger.sent_today() == {then: 2}


# --- what is counted -----------------------------------------------------------------------------

PHONE = "+14155550100"


@pytest.mark.parametrize(
    ("scenario", "action", "counted"),
    [
        ({}, "sent", 2),
        # The text went out, the link was refused: one message.
        ({"fault": (r"/messages$", 400)}, "failed", 1),
        # Linq refused the text: nothing went out.
        ({"fault": (r"^/v3/chats$", 400)}, "failed", 0),
        ({"linq": {"opted_out": [PHONE]}}, "skipped:opted_out", 0),
        (
            {"linq": {"capabilities": {PHONE: {"imessage": False, "selected_service": None}}}},
            "skipped:unreachable",
            0,
        ),
        ({"env": {"DRY_RUN": "true"}}, "dry_run", 0),
    ],
)
def test_each_message_that_went_out_is_counted_once_and_nothing_else(
    pipeline, linq_api, scenario, action, counted
):
    accounts(linq_api, A)
    linq_api.load(scenario.get("linq", {}))
    if "fault" in scenario:
        path, status = scenario["fault"]
        linq_api.add_fault(path, method="POST", status=status)
    pipeline.configure(**scenario.get("env", {}))
    assert text(pipeline, PHONE)["action"] == action
    assert pipeline.ledger.sent_today() == ({A: counted} if counted else {})
    assert len(linq_api.messages()) == counted


def test_a_run_resumed_after_its_text_counts_only_the_link(pipeline, linq_api):
    accounts(linq_api, A)
    invoice = invoice_for(pipeline, PHONE)
    linq_api.add_fault(r"/messages$", method="POST", status=503)
    status, _ = pipeline.run(invoice, "m-1")
    assert status == 500
    assert pipeline.ledger.sent_today() == {A: 1}
    assert pipeline.result(invoice, "m-1")["action"] == "sent"
    assert pipeline.ledger.sent_today() == {A: 2}


def test_a_count_that_cannot_be_written_is_a_warning_and_the_payment_is_sent_once(
    pipeline, linq_api, monkeypatch
):
    accounts(linq_api, A)
    documents = pipeline.backend.documents

    def unavailable(*_: Any) -> int:
        raise RetryableError("Firestore unreachable: ConnectionError", vendor="firestore")

    monkeypatch.setattr(documents, "increment", unavailable)
    status, lines = pipeline.run(invoice_for(pipeline, PHONE))
    assert status == 200
    assert [line["action"] for line in lines if "action" in line] == ["sent"]
    warnings = [line for line in lines if line["message"].startswith("line count not recorded")]
    assert [(w["severity"], w["line"]) for w in warnings] == [("WARNING", "+1******0101")] * 2
    assert len(linq_api.messages()) == 2


def test_a_dry_run_checks_the_customers_own_line_and_counts_nothing(pipeline, linq_api):
    accounts(linq_api, A, B, C)
    pipeline.configure(DRY_RUN="true")
    phone = phones(1, first=C, lines=(A, B, C))[0]
    assert text(pipeline, phone)["reason"] == "sent"
    [check] = [r for r in linq_api.requests() if r["path"] == "/v3/capability/check_imessage"]
    assert check["body"]["from"] == C
    assert pipeline.ledger.sent_today() == {}


@pytest.mark.integration
def test_the_counts_live_in_firestore_and_a_full_line_is_passed_over(emulated_pipeline, linq_api):
    pipeline = emulated_pipeline
    pipeline.configure(LINQ_LINE_DAILY_LIMIT="2")
    accounts(linq_api, A, B)
    first, second = phones(2, first=A)
    text(pipeline, first)
    text(pipeline, second)
    assert [senders(linq_api, phone) for phone in (first, second)] == [[A, A], [B, B]]
    stored = pipeline.backend.documents.find(LINE_COUNTS, "line", A)
    assert [(d.fields["day"], d.fields["sent"]) for d in stored] == [(utc_day(pipeline.clock()), 2)]


def test_reliability_states_the_bound_for_the_deployed_parallelism():
    bound = DEFAULT_LINE_DAILY_LIMIT - 1 + 2 * IN_FLIGHT
    assert f"{IN_FLIGHT} runs in flight" in (ROOT / "RELIABILITY.md").read_text()
    assert f"{bound:,}" in (ROOT / "RELIABILITY.md").read_text()
