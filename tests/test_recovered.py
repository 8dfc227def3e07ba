"""Recovered revenue: `invoice.paid` through the ingest and recover functions over the emulators,
the first-try filter, the group each invoice was assigned at the holdout draw (kept on its ledger
entries and said on its lines, whatever happened after the draw), and one record and one
`recovered` line per payment, however its deliveries interleave."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.adapters.documents import Document
from shared.adapters.ledger import COLLECTION, Ledger
from shared.adapters.memory import MemoryDocuments
from shared.core.attribution import assigned, assignment, attribute
from shared.core.decide import in_holdout
from shared.core.entry import RETENTION, Entry, EntryKey, Payment, Plan, State, payment_id
from shared.core.errors import RetryableError
from shared.core.event import InvoicePaid
from shared.core.outcome import Action
from shared.workflow.recovered import attribute_payment
from standins import builders
from tests.clock import TestClock
from tests.harness import entry, log_lines, results
from tests.test_quiet_hours_flow import morning, night_around_now, push_all
from tools.report import read
from tools.tally import Tally

HOUR = 3600
PHONE = "+14155550100"
SLACK = "/services/T0/B0/X0"


def paid_later(invoice: dict[str, Any], after_s: int = 2 * HOUR) -> dict[str, Any]:
    """`invoice` paid `after_s` after it was finalized: not at its first attempt."""
    finalized = invoice["status_transitions"]["finalized_at"]
    return builders.paid(invoice, at=finalized + after_s)


def deliver_paid(pipeline, invoice: dict[str, Any], **event: Any) -> list[dict[str, Any]]:
    """Post a signed invoice.paid and push what it published; every log line of the recover run."""
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(builders.invoice_paid_event(invoice, **event))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    for message in pipeline.published():
        assert pipeline.push(message).status_code == 200
    return log_lines(pipeline.capsys.readouterr().out)


# --- the first-try filter (the pure rule: tests/test_event.py) ----------------------------------


def test_a_first_try_payment_is_answered_and_not_published(pipeline):
    invoice = pipeline.customer_with_invoice()
    at_once = builders.paid(invoice, at=invoice["status_transitions"]["finalized_at"] + 3)
    answer = pipeline.post_webhook(builders.invoice_paid_event(at_once))
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        200,
        "ignored: paid at its first attempt",
    )
    assert pipeline.published() == []


def test_a_forged_invoice_paid_is_refused(pipeline):
    invoice = paid_later(pipeline.customer_with_invoice())
    answer = pipeline.post_webhook(builders.invoice_paid_event(invoice), secret="whsec_" + "F" * 32)
    assert answer.status_code == 400
    assert pipeline.published() == []


# --- the group, as assigned at the draw --------------------------------------------------------


def assigned_invoice(
    pipeline, held_out: bool, customer: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """An open invoice whose id puts it in the holdout group (HOLDOUT_PERCENT=50) or out of it."""
    while in_holdout(invoice_id := builders.new_id("in_1", 23), 50) != held_out:
        continue
    return pipeline.customer_with_invoice(customer, id=invoice_id, **fields)


def recovered_line(pipeline, invoice: dict[str, Any]) -> dict[str, Any]:
    [line] = [e for e in deliver_paid(pipeline, paid_later(invoice)) if "action" in e]
    assert line["action"] == "recovered"
    return line


CHATS_REFUSED = {
    "success": False,
    "error": {"status": 400, "code": 1005, "message": "Links are not allowed."},
    "trace_id": "0" * 32,
}


@pytest.mark.parametrize(
    ("case", "action", "group"),
    [
        ("texted", "sent", "treated"),
        ("no iMessage, SMS or RCS", "skipped:unreachable", "treated"),
        ("Linq refuses: a STOP it saw", "skipped:opted_out", "treated"),
        ("Linq refuses the chat", "failed", "treated"),
        ("held out", "skipped:holdout", "holdout"),
        ("no phone: never drawn", "skipped:no_phone", None),
        ("already paid: never drawn", "skipped:not_open", None),
    ],
)
def test_the_group_drawn_is_kept_on_the_entry_whatever_happens_next(
    pipeline, linq_api, case, action, group
):
    """Intention to treat: an invoice past the holdout draw is treated whatever came of it. The
    entry records the group with the outcome, the result line says it, and the payment's line
    says it too: an unreachable customer, or one Linq refused, stays in the treated group (the
    holdout keeps such customers too), where it used to fall into `not_texted`."""
    pipeline.configure(HOLDOUT_PERCENT="50")
    customer = builders.customer(phone=None) if action == "skipped:no_phone" else None
    if action == "skipped:unreachable":
        linq_api.load({"capabilities": {PHONE: {"imessage": False, "selected_service": None}}})
    elif action == "skipped:opted_out":
        linq_api.inbound(PHONE, "STOP")
    elif action == "failed":
        linq_api.add_fault(r"/v3/chats$", status=400, body=CHATS_REFUSED)
    fields = {"status": "paid"} if action == "skipped:not_open" else {}
    invoice = assigned_invoice(pipeline, group == "holdout", customer, **fields)
    result = pipeline.result(invoice)
    assert (result["action"], result.get("group")) == (action, group)
    assert entry(pipeline, invoice).group == group
    assert recovered_line(pipeline, invoice)["group"] == (group or "not_assigned")


@pytest.fixture
def night(pipeline):
    pipeline.configure(QUIET_HOURS=night_around_now())
    return pipeline


def released_once(night, invoice: dict[str, Any]) -> dict[str, Any]:
    """The recipient's morning: the sweep hands the payment back; its one result line."""
    morning(night)
    night.sweep()
    [line] = [e for e in push_all(night, night.published()) if "action" in e]
    return line


def test_a_treated_invoice_deferred_and_paid_overnight_stays_treated(night, linq_api):
    """Deferred for the night, paid before the morning: never texted, and the release ends
    `skipped:not_open`. It was treated at the draw, and its payment counts for the treated
    group; the holdout keeps its own night-time payers."""
    invoice = night.customer_with_invoice()
    deferred = night.result(invoice)
    assert (deferred["action"], deferred["group"]) == ("deferred:quiet_hours", "treated")
    paid = paid_later(invoice)
    night.stripe.update_invoice(invoice["id"], paid)
    line = recovered_line(night, invoice)
    assert (line["group"], line["reason"].split(":")[0]) == ("treated", "deferred")
    released = released_once(night, invoice)
    assert (released["action"], released["group"]) == ("skipped:not_open", "treated")
    assert entry(night, invoice).group == "treated"
    assert linq_api.messages() == []


def test_a_stop_heard_after_the_draw_leaves_the_invoice_treated(night):
    """Deferred, then the customer's STOP reaches our own list overnight: the release ends
    `skipped:opted_out`, before the draw it would now not reach, but the invoice was assigned
    already."""
    invoice = night.customer_with_invoice()
    assert night.result(invoice)["group"] == "treated"
    night.ledger.set_opt_out(PHONE, True, night.clock(), {})
    released = released_once(night, invoice)
    assert (released["action"], released["group"]) == ("skipped:opted_out", "treated")
    assert entry(night, invoice).group == "treated"


def test_the_first_draw_counts_when_the_share_changes_before_the_release(night, linq_api):
    """HOLDOUT_PERCENT raised overnight: the morning's decision draws again and holds the
    invoice out, but the assignment is the first draw's. Re-assigning only the invoices not paid
    overnight would move exactly the unpaid ones into the holdout."""
    night.configure(HOLDOUT_PERCENT="0")
    invoice = assigned_invoice(night, True)
    assert night.result(invoice)["group"] == "treated"
    night.configure(HOLDOUT_PERCENT="50")
    released = released_once(night, invoice)
    assert (released["action"], released["group"]) == ("skipped:holdout", "treated")
    assert entry(night, invoice).group == "treated"


def test_the_report_reads_the_groups_the_product_recorded(pipeline, linq_api):
    """The product's own ledger, through the report's reading: the arms are as assigned."""
    pipeline.configure(HOLDOUT_PERCENT="50")
    unreachable = builders.customer(phone="+1 415 555 0177")
    linq_api.load({"capabilities": {"+14155550177": {"imessage": False}}})
    texted, unpaid = (assigned_invoice(pipeline, False) for _ in range(2))
    untexted = assigned_invoice(pipeline, False, unreachable)
    held = assigned_invoice(pipeline, True)
    never = assigned_invoice(pipeline, False, builders.customer(phone=None))
    for invoice in (texted, untexted, unpaid, held, never):
        pipeline.result(invoice)
    for invoice in (texted, untexted, held, never):
        recovered_line(pipeline, invoice)
    tally = Tally()
    read(pipeline.ledger, tally, io.StringIO())
    assert tally.groups == {"treated": 3, "holdout": 1, "not_assigned": 1}
    assert tally.paid == {"treated": 2, "holdout": 1, "not_assigned": 1}
    assert (tally.treated_texted, tally.treated_texted_paid) == (2, 1)


# --- attribution -----------------------------------------------------------------------------


def test_a_texted_invoice_paid_is_recovered_once_with_its_amount_and_delay(pipeline):
    invoice = pipeline.customer_with_invoice(amount_due=2500)
    assert pipeline.result(invoice)["action"] == "sent"
    lines = deliver_paid(pipeline, builders.paid(invoice, at=int(time.time()) + 600))
    [recovered] = [entry for entry in lines if "action" in entry]
    assert (recovered["action"], recovered["message"], recovered["group"]) == (
        "recovered",
        "recovered",
        "treated",
    )
    assert (recovered["amount"], recovered["currency"], recovered["attempt"]) == (2500, "usd", 1)
    assert 9.0 <= recovered["minutes_after_text"] <= 10.5
    assert recovered["invoice_id"] == invoice["id"]
    assert "reason" not in recovered
    # Stripe delivers the same event again: nothing more is said.
    again = deliver_paid(pipeline, builders.paid(invoice, at=int(time.time()) + 600))
    assert [entry for entry in again if "action" in entry] == []


def test_a_holdout_invoice_is_not_texted_and_its_payment_counts_for_the_holdout(pipeline, linq_api):
    pipeline.configure(HOLDOUT_PERCENT="50")
    invoice = assigned_invoice(pipeline, True)
    result = pipeline.result(invoice)
    assert (result["action"], result["group"]) == ("skipped:holdout", "holdout")
    assert linq_api.messages() == []
    lines = deliver_paid(pipeline, paid_later(invoice))
    [recovered] = [entry for entry in lines if "action" in entry]
    assert (recovered["group"], recovered["attempt"]) == ("holdout", 1)
    assert "minutes_after_text" not in recovered


def test_an_invoice_that_never_reached_the_draw_is_in_neither_group_with_the_reason(pipeline):
    invoice = pipeline.customer_with_invoice(builders.customer(phone=None))
    result = pipeline.result(invoice)
    assert (result["action"], "group" in result) == ("skipped:no_phone", False)
    [recovered] = [e for e in deliver_paid(pipeline, paid_later(invoice)) if "action" in e]
    assert (recovered["group"], recovered["reason"]) == (
        "not_assigned",
        "skipped:no_phone: no phone on file",
    )


def test_a_payment_the_ledger_never_saw_says_nothing(pipeline):
    invoice = pipeline.customer_with_invoice()
    lines = deliver_paid(pipeline, paid_later(invoice))
    assert [line["message"] for line in lines] == ["queued"]  # the ingest's line, nothing after


def test_the_last_text_of_several_attempts_is_the_one_the_payment_followed(pipeline):
    invoice = pipeline.customer_with_invoice(attempt_count=1)
    assert pipeline.result(invoice)["action"] == "sent"
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "sent"
    [recovered] = [e for e in deliver_paid(pipeline, paid_later(invoice)) if "action" in e]
    assert (recovered["group"], recovered["attempt"]) == ("treated", 2)


# --- one payment, one record, one line ---------------------------------------------------------


def paid_document(pipeline, invoice: dict[str, Any]) -> Document | None:
    """The invoice's payment document, as the ledger stores it."""
    return pipeline.backend.documents.read(COLLECTION, payment_id(invoice["id"]))


def recovered_notes(pipeline) -> list[str]:
    return [n["text"] for n in pipeline.slack.notes() if n["text"].startswith("Recovered ")]


def test_two_deliveries_racing_a_new_entry_record_one_payment(pipeline, linq_api, monkeypatch):
    """Issue 20. Stripe delivers one `invoice.paid` twice. The first delivery reads the invoice's
    entries (attempt 1, unreachable) and is held there; meanwhile a late `payment_failed` for
    attempt 2 creates a second entry (ending `skipped:not_open`: the invoice is paid), and the
    second delivery reads both and records the payment. The first then goes on. Each used to
    record on a different entry (the latest it had read): two lines, two notes, twice the
    amount. The payment is one document per invoice, created once: the first finds it there."""
    pipeline.configure(SLACK_WEBHOOK_URL=pipeline.slack.url + SLACK)
    linq_api.load({"capabilities": {PHONE: {"imessage": False, "selected_service": None}}})
    invoice = pipeline.customer_with_invoice(attempt_count=1)
    assert pipeline.result(invoice)["action"] == "skipped:unreachable"
    paid = paid_later(invoice)
    event = builders.invoice_paid_event(paid)
    for _ in range(2):
        assert pipeline.post_webhook(event).status_code == 200
    first, second = pipeline.published()

    read_once, go_on = threading.Event(), threading.Event()
    entries = Ledger.entries

    def held_after_reading(self: Ledger, invoice_id: str) -> list[Any]:
        found = entries(self, invoice_id)
        if not read_once.is_set():
            read_once.set()
            assert go_on.wait(30)
        return found

    monkeypatch.setattr(Ledger, "entries", held_after_reading)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(pipeline.push, first)
        assert read_once.wait(30)
        pipeline.stripe.update_invoice(invoice["id"], {**paid, "attempt_count": 2})
        assert pipeline.result(invoice, attempt_count=2)["action"] == "skipped:not_open"
        assert pipeline.push(second).status_code == 200
        go_on.set()
        assert held.result().status_code == 200
    lines = results(pipeline.capsys.readouterr().out)
    assert [line["action"] for line in lines] == ["recovered"]
    assert len(recovered_notes(pipeline)) == 1
    assert paid_document(pipeline, invoice) is not None
    assert entry(pipeline, invoice, 1).paid is None
    assert entry(pipeline, invoice, 2).paid is None


def test_a_record_that_committed_but_timed_out_is_said_on_the_retry_once(pipeline, monkeypatch):
    """The payment's write commits but its answer is lost (a timeout): the run raises and
    Pub/Sub redelivers the same message, which finds the payment recorded by itself and says
    it, once. Another message for the payment (Stripe's resend) says nothing."""
    invoice = pipeline.customer_with_invoice()
    assert pipeline.result(invoice)["action"] == "sent"
    documents = pipeline.backend.documents
    write, lost = documents.write, []

    def committed_then_lost(collection: str, key: str, values: dict[str, Any], *args: Any) -> str:
        version = write(collection, key, values, *args)
        if "paid_at" in values and not lost:
            lost.append(key)
            raise RetryableError("Firestore unreachable: ReadTimeout", vendor="firestore")
        return version

    monkeypatch.setattr(documents, "write", committed_then_lost)
    paid = builders.paid(invoice, at=int(time.time()) + 600)
    assert pipeline.post_webhook(builders.invoice_paid_event(paid)).status_code == 200
    [message] = pipeline.published()
    pipeline.capsys.readouterr()
    assert pipeline.push(message).status_code == 500
    assert pipeline.push(message).status_code == 200
    lines = log_lines(pipeline.capsys.readouterr().out)
    assert lines[0]["message"].startswith("will retry: Firestore unreachable")
    [line] = [e for e in lines if "action" in e]
    assert (line["action"], line["group"], line["attempt"]) == ("recovered", "treated", 1)
    assert 9.0 <= line["minutes_after_text"] <= 10.5
    again = deliver_paid(pipeline, paid)
    assert [e for e in again if "action" in e] == []


# --- attribution, pure -------------------------------------------------------------------------

TEXTED_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def recorded(attempt: int = 1, action: str | None = None, **fields: Any) -> Entry:
    """A ledger entry of invoice in_1: done with `action`, or in the state `fields` names."""
    state = fields.pop("state", "done" if action else "active")
    outcome = Action(action) if action else None
    return Entry(EntryKey("in_1", attempt), State(state), action=outcome, **fields)


@pytest.mark.parametrize(
    ("given", "group"),
    [
        (recorded(group="treated", action="skipped:unreachable"), "treated"),
        (recorded(group="treated", action="skipped:not_open", due_at=TEXTED_AT), "treated"),
        (recorded(group="holdout", action="skipped:holdout"), "holdout"),
        (recorded(group="treated", action="skipped:holdout"), "treated"),
        (recorded(action="skipped:no_phone"), None),
        (recorded(action="skipped:not_open"), None),
        (recorded(action="skipped:policy"), None),
        (recorded(state="active"), None),
        (recorded(group="something else", action="sent"), None),
        # Written before the ledger recorded the group: what only comes after the draw says so.
        (recorded(action="sent", texted_at=TEXTED_AT), "treated"),
        (recorded(action="failed", state="failed", texted_at=TEXTED_AT), "treated"),
        (recorded(action="skipped:unreachable"), "treated"),
        (
            recorded(state="deferred", action="deferred:quiet_hours", due_at=TEXTED_AT),
            "treated",
        ),
        (recorded(action="skipped:not_open", due_at=TEXTED_AT), "treated"),
        # The report reads a plan's line alone: the rest reads empty.
        (recorded(action="skipped:not_open", plan=Plan("", "", "", "+12025550100")), "treated"),
        (recorded(action="skipped:holdout"), "holdout"),
    ],
)
def test_the_assignment_of_an_entry(given, group):
    assert assigned(given) == group


def test_an_invoice_is_in_the_group_of_its_first_attempt_that_reached_the_draw():
    assert assignment([]) == "not_assigned"
    assert assignment([recorded(1, "skipped:no_phone")]) == "not_assigned"
    # HOLDOUT_PERCENT changed between the attempts: the first draw counts.
    later_held = [
        recorded(3, "skipped:holdout", group="holdout"),
        recorded(1, "skipped:no_phone"),
        recorded(2, "skipped:unreachable", group="treated"),
    ]
    assert assignment(later_held) == "treated"


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([], None),
        (
            [recorded(1, "sent", group="treated", texted_at=TEXTED_AT)],
            ("treated", 1, TEXTED_AT, None),
        ),
        (
            [
                recorded(1, "sent", group="treated", texted_at=TEXTED_AT),
                recorded(2, "skipped:policy", reason="attempt 2 is not in ..."),
            ],
            ("treated", 1, TEXTED_AT, None),
        ),
        (
            [
                recorded(
                    1,
                    "failed",
                    state="failed",
                    group="treated",
                    reason="text sent, link refused",
                    texted_at=TEXTED_AT,
                )
            ],
            ("treated", 1, TEXTED_AT, None),
        ),
        (
            [recorded(1, "skipped:holdout", group="holdout", reason="held")],
            ("holdout", 1, None, "skipped:holdout: held"),
        ),
        (
            [recorded(1, "skipped:unreachable", group="treated", reason="no")],
            ("treated", 1, None, "skipped:unreachable: no"),
        ),
        (
            [recorded(1, "skipped:no_phone", reason="no phone on file"), recorded(2)],
            ("not_assigned", 2, None, "active"),
        ),
    ],
    ids=[
        "never-seen",
        "texted",
        "texted-then-policy",
        "text-without-link",
        "holdout",
        "treated-unreachable",
        "not-assigned",
    ],
)
def test_attribution_by_entries(entries, expected):
    found = attribute(entries)
    if expected is None:
        assert found is None
    else:
        assert (found.group, found.attempt, found.texted_at, found.reason) == expected


def test_a_text_that_went_out_after_the_payment_is_not_the_one_the_payment_followed():
    """Attempt 1 was texted; the invoice failed again and the customer paid through the first
    text's link a minute before attempt 2's text went out (Stripe's `invoice.paid` reaches us
    after both). The payment followed the first text: the `recovered` line names attempt 1 and
    the minutes since it, not attempt 2 and -1.0 minutes."""
    first = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    paid_at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    clock = TestClock(paid_at + 5 * MINUTE)
    ledger = Ledger(MemoryDocuments(), clock=clock)
    ledger.write_all(
        [
            recorded(1, "sent", group="treated", texted_at=first),
            recorded(2, "sent", group="treated", texted_at=paid_at + MINUTE),
        ]
    )
    paid = InvoicePaid("evt_1", "in_1", "cus_1", False, 2500, "usd", int(paid_at.timestamp()))
    found = attribute_payment(ledger, paid, "msg_1", clock)
    assert found is not None
    assert (found.group, found.attempt, found.minutes_after_text) == ("treated", 1, 2880.0)
    # What was recorded, as a later delivery of the payment finds it.
    assert ledger.record_payment(Payment("in_1", paid_at, pubsub_message_id="m2")) == (
        Payment(
            "in_1",
            paid_at,
            2500,
            "usd",
            "evt_1",
            "msg_1",
            "treated",
            1,
            2880.0,
            None,
            clock(),
            clock() + RETENTION,
        )
    )


MINUTE = timedelta(minutes=1)
