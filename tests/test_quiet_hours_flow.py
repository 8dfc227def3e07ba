"""Quiet hours through the functions: a failure at night is deferred, released by the sweep when
the recipient's morning comes, and decided again on the invoice as it is then.

"Night" is made for the test's customer (+1 415, America/Los_Angeles): QUIET_HOURS is set to a
window around the moment the test runs, and "morning" comes by moving the functions' clock past
the window's end.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.adapters import publisher
from shared.adapters.ledger import Due, Ledger
from shared.core.entry import STALE_RELEASE, EntryKey, State
from shared.workflow import release as release_module
from shared.workflow.release import Sweep
from standins import builders
from tests.harness import entry, log_lines, results

LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def night_around_now() -> str:
    """A QUIET_HOURS window that holds the present moment in Los Angeles, for two hours yet."""
    local = datetime.now(LOS_ANGELES)
    return f"{local - timedelta(hours=1):%H:%M}-{local + timedelta(hours=2):%H:%M}"


@pytest.fixture
def night(pipeline):
    pipeline.configure(QUIET_HOURS=night_around_now())
    return pipeline


def morning(pipeline) -> None:
    """The recipients' morning: the window `night_around_now` made has ended, and what was
    deferred is due."""
    pipeline.clock.advance(timedelta(hours=2, minutes=2))


def released(pipeline) -> list[dict[str, Any]]:
    """The messages the sweep published to the failed-payment topic (pulled)."""
    return pipeline.published()


def payload(message: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(message["data"]))


def push_all(pipeline, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pipeline.capsys.readouterr()
    for message in messages:
        assert pipeline.push(message).status_code == 200
    return log_lines(pipeline.capsys.readouterr().out)


# --- at night --------------------------------------------------------------------------------


def test_a_failure_at_night_is_deferred_with_its_due_time_and_no_linq_call(night, linq_api):
    night.configure(SLACK_WEBHOOK_URL=f"{night.slack.url}/services/T0/B0/X0")
    invoice = night.customer_with_invoice()
    result = night.result(invoice)
    assert result["action"] == "deferred:quiet_hours"
    assert result["message"] == "deferred: quiet hours at the recipient"
    local = datetime.now(LOS_ANGELES)
    assert result["reason"].startswith(f"{local:%H:}")
    assert " in America/Los_Angeles; due " in result["reason"]
    due = datetime.fromisoformat(result["due_at"].replace("Z", "+00:00"))
    assert timedelta(hours=1) < due - datetime.now(UTC) <= timedelta(hours=2)
    assert due.astimezone(LOS_ANGELES).second == 0
    stored = entry(night, invoice)
    assert (stored.state, stored.zones, stored.due_at) == (
        State.DEFERRED,
        ("America/Los_Angeles",),
        due,
    )
    assert [r for r in linq_api.requests() if r["path"] != "/v3/phone_numbers"] == []
    assert night.slack.notes() == []  # a deferral is only a result line


def test_another_message_for_a_deferred_payment_waits_with_it(night, linq_api):
    invoice = night.customer_with_invoice()
    payment = night.payment(invoice)
    assert night.result(invoice, event_id=payment.event_id)["action"] == "deferred:quiet_hours"
    status, [line] = night.run(invoice, event_id=payment.event_id)
    assert (status, line["message"], line["state"]) == (
        200,
        "duplicate delivery ignored",
        "deferred",
    )
    status, [line] = night.run(invoice, event_id=f"backfill_{invoice['id']}_1")
    assert (status, line["state"]) == (200, "deferred")
    assert line["message"].startswith("deferred for quiet hours until ")
    assert linq_api.messages() == []


def test_a_dry_run_at_night_reports_the_deferral_and_records_nothing(night):
    night.configure(DRY_RUN="true")
    invoice = night.customer_with_invoice()
    result = night.result(invoice)
    assert result["action"] == "dry_run"
    assert result["reason"].startswith("deferred:quiet_hours: ")
    assert "due_at" in result
    assert night.ledger.entry(EntryKey(invoice["id"], 1)) is None


def test_the_attempt_policy_comes_before_the_night(night, linq_api):
    night.configure(TEXT_ON_ATTEMPTS="1")
    invoice = night.customer_with_invoice(attempt_count=2)
    assert night.result(invoice)["action"] == "skipped:policy"


def test_a_backfill_at_night_is_deferred_too(night):
    invoice = night.customer_with_invoice()
    backfill = night.payment(invoice, event_id=f"backfill_{invoice['id']}_1")
    night.capsys.readouterr()
    assert night.recover(backfill).status_code == 200
    [line] = results(night.capsys.readouterr().out)
    assert line["action"] == "deferred:quiet_hours"


# --- in the morning ---------------------------------------------------------------------------


def test_the_sweep_releases_a_due_payment_and_it_is_sent_once(night, linq_api):
    night.configure(SLACK_WEBHOOK_URL=f"{night.slack.url}/services/T0/B0/X0")
    invoice = night.customer_with_invoice()
    payment = night.payment(invoice)
    assert night.result(invoice, event_id=payment.event_id)["action"] == "deferred:quiet_hours"
    night.sweep()
    assert released(night) == []  # not due yet
    morning(night)
    night.capsys.readouterr()
    assert night.sweep().status_code == 200
    [sweep_line] = log_lines(night.capsys.readouterr().out)
    assert (sweep_line["message"], sweep_line["released"]) == ("released 1 deferred payment(s)", 1)
    [message] = released(night)
    assert payload(message)["event_id"] == payment.event_id
    assert message["attributes"]["release"] == payload(message)["release"]
    lines = push_all(night, [message])
    [result] = [line for line in lines if "action" in line]
    assert (result["action"], result["event_id"]) == ("sent", payment.event_id)
    assert [m["parts"][0]["type"] for m in linq_api.messages()] == ["text", "link"]
    [note] = night.slack.notes()
    assert "held for the recipient's quiet hours" in note["text"]
    # The released message again (a redelivery), and the original event again: nothing more.
    lines = push_all(night, [message])
    assert [line.get("action") for line in lines if "action" in line] == ["sent"]  # restated
    night.capsys.readouterr()
    assert night.recover(payment).status_code == 200
    assert len(linq_api.messages()) == 2


def test_a_payment_paid_overnight_is_not_texted_in_the_morning(night, linq_api):
    invoice = night.customer_with_invoice()
    assert night.result(invoice)["action"] == "deferred:quiet_hours"
    night.stripe.update_invoice(invoice["id"], {"status": "paid", "amount_remaining": 0})
    morning(night)
    night.sweep()
    [line] = [entry for entry in push_all(night, released(night)) if "action" in entry]
    assert (line["action"], line["reason"]) == ("skipped:not_open", "invoice is paid")
    assert linq_api.messages() == []


def test_an_older_attempt_deferred_beside_a_newer_one_is_superseded(night, linq_api):
    # Stripe fails the same invoice again during the night: one text in the morning, not two.
    invoice = night.customer_with_invoice(attempt_count=2)
    assert night.result(invoice)["action"] == "deferred:quiet_hours"
    night.stripe.update_invoice(invoice["id"], {"attempt_count": 3})
    assert night.result(invoice, attempt_count=3)["action"] == "deferred:quiet_hours"
    morning(night)
    night.sweep()
    lines = push_all(night, released(night))
    actions = sorted((line["attempt"], line["action"]) for line in lines if "action" in line)
    assert actions == [(2, "skipped:superseded"), (3, "sent")]
    assert [m["idempotency_key"] for m in linq_api.messages()] == [
        f"{invoice['id']}-3-text",
        f"{invoice['id']}-3-link",
    ]


@pytest.mark.parametrize("policy", ["1", "1,4"])
def test_an_older_attempt_deferred_beside_a_newer_one_outside_the_policy_is_texted(
    night, linq_api, policy
):
    # TEXT_ON_ATTEMPTS=1 (or docs/configuration.md's 1,4): attempt 1 fails at night, attempt 2
    # gets no text by policy. In the morning attempt 1 is the only text there is: it goes out.
    night.configure(TEXT_ON_ATTEMPTS=policy)
    invoice = night.customer_with_invoice(attempt_count=1)
    assert night.result(invoice)["action"] == "deferred:quiet_hours"
    night.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert night.result(invoice, attempt_count=2)["action"] == "skipped:policy"
    morning(night)
    night.sweep()
    lines = push_all(night, released(night))
    assert [(line["attempt"], line["action"]) for line in lines if "action" in line] == [
        (1, "sent")
    ]
    assert [m["idempotency_key"] for m in linq_api.messages()] == [
        f"{invoice['id']}-1-text",
        f"{invoice['id']}-1-link",
    ]


def test_a_newer_attempt_skipped_before_the_policy_changed_does_not_supersede(night, linq_api):
    # Attempt 2 ended skipped:policy under TEXT_ON_ATTEMPTS=1; the operator then texts every
    # attempt. Attempt 2 is done and will never be texted: the deferred attempt 1 is.
    night.configure(TEXT_ON_ATTEMPTS="1")
    invoice = night.customer_with_invoice(attempt_count=1)
    assert night.result(invoice)["action"] == "deferred:quiet_hours"
    night.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert night.result(invoice, attempt_count=2)["action"] == "skipped:policy"
    night.configure(TEXT_ON_ATTEMPTS="all")
    morning(night)
    night.sweep()
    lines = push_all(night, released(night))
    assert [(line["attempt"], line["action"]) for line in lines if "action" in line] == [
        (1, "sent")
    ]
    assert len(linq_api.messages()) == 2


def deferred_payments(night, count: int) -> list[dict[str, Any]]:
    invoices = []
    for index in range(count):
        invoice = night.customer_with_invoice(builders.customer(phone=f"+1415555{index:04d}"))
        assert night.result(invoice)["action"] == "deferred:quiet_hours"
        invoices.append(invoice)
    morning(night)
    return invoices


def sweeper(night, ledger: type[Ledger] = Ledger, publish: Any = None) -> Sweep:
    """A release function's sweep, as deployed, on the functions' ledger, topic and clock."""
    queue = publisher.Publisher(night.project, night.topic)
    return Sweep(ledger(night.backend.documents, clock=night.clock), publish or queue, night.clock)


def test_two_overlapping_sweeps_publish_each_payment_once(night, linq_api):
    invoices = deferred_payments(night, 6)
    barrier = threading.Barrier(2)
    done = []

    def sweep() -> None:
        one = sweeper(night)
        barrier.wait()
        done.append(one.run())

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(result.released for result in done) == 6
    messages = released(night)
    assert sorted(payload(m)["invoice_id"] for m in messages) == sorted(i["id"] for i in invoices)
    lines = push_all(night, messages)
    assert [line["action"] for line in lines if "action" in line] == ["sent"] * 6
    assert len(linq_api.messages()) == 12


def test_a_sweep_that_dies_halfway_loses_nothing(night, linq_api, monkeypatch):
    invoices = deferred_payments(night, 3)
    calls: list[str] = []
    queue = publisher.Publisher(night.project, night.topic)

    class DyingPublisher:
        def publish(self, data: bytes, attributes: dict[str, str]) -> str:
            calls.append("publish")
            if calls.count("publish") == 2:
                raise SystemExit("the instance is gone")  # the second: marked, never published
            return queue.publish(data, attributes)

    class DyingLedger(Ledger):
        def release(self, due: Due, token: str, texting_paused: bool = False) -> bool:
            calls.append("mark")
            if calls.count("mark") == 3:
                raise SystemExit("the instance is gone")  # the third: never marked
            return super().release(due, token, texting_paused)

    monkeypatch.setattr(release_module, "WORKERS", 1)
    dying = sweeper(night, DyingLedger, DyingPublisher())
    with pytest.raises(SystemExit):
        dying.run()
    # The pool's thread goes on with the third after the second raised: let it meet its end
    # (its mark raises) before the next sweep.
    dying._pool.shutdown(wait=True)
    assert calls == ["mark", "publish", "mark", "publish", "mark"]
    # The next sweep: the third is still due; the second, marked but never published, is
    # released again once its release is stale (15 minutes on).
    night.clock.advance(STALE_RELEASE)
    again = sweeper(night).run()
    assert (again.released, again.released_again) == (1, 2)
    lines = push_all(night, released(night))
    sent = sorted(line["invoice_id"] for line in lines if line.get("action") == "sent")
    assert sent == sorted(i["id"] for i in invoices)
    assert len(linq_api.messages()) == 6


# --- a plan made by day, carried out after nightfall ------------------------------------------


def test_a_text_decided_by_day_and_retried_after_nightfall_waits_for_the_morning(
    pipeline, linq_api
):
    # The plan is recorded by day, then Linq fails the text and Pub/Sub keeps retrying into the
    # recipient's night: the retry resumes the recorded plan, but sends nothing at night; the
    # text and the link go out once the morning's release comes. (A link whose text went out
    # follows it whatever the hour: test_decide.py::test_a_recorded_plan_is_not_deferred.)
    invoice = pipeline.customer_with_invoice()
    payment = pipeline.payment(invoice)
    linq_api.add_fault(r"^/v3/chats$", status=503)
    assert pipeline.recover(payment, "m-1").status_code == 500
    before = len(linq_api.messages())
    assert before == 0
    pipeline.configure(QUIET_HOURS=night_around_now())
    result = pipeline.result(invoice, message_id="m-1", event_id=payment.event_id)
    assert result["action"] == "deferred:quiet_hours"
    assert len(linq_api.messages()) == before
    morning(pipeline)
    pipeline.sweep()
    lines = push_all(pipeline, released(pipeline))
    assert [line["action"] for line in lines if "action" in line] == ["sent"]
    assert [m["parts"][0]["type"] for m in linq_api.messages()] == ["text", "link"]


def test_a_deferred_plan_beside_a_newer_attempt_deferred_overnight_is_superseded(
    pipeline, linq_api
):
    # Attempt 1's plan is held for the night (its text failed by day); Stripe fails the invoice
    # again overnight. In the morning the newer attempt is texted, the recorded plan is not.
    invoice = pipeline.customer_with_invoice(attempt_count=1)
    payment = pipeline.payment(invoice)
    linq_api.add_fault(r"^/v3/chats$", status=503)
    assert pipeline.recover(payment, "m-1").status_code == 500
    pipeline.configure(QUIET_HOURS=night_around_now())
    result = pipeline.result(invoice, message_id="m-1", event_id=payment.event_id)
    assert result["action"] == "deferred:quiet_hours"
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "deferred:quiet_hours"
    morning(pipeline)
    pipeline.sweep()
    lines = push_all(pipeline, released(pipeline))
    actions = sorted((line["attempt"], line["action"]) for line in lines if "action" in line)
    assert actions == [(1, "skipped:superseded"), (2, "sent")]
    assert [m["idempotency_key"] for m in linq_api.messages()] == [
        f"{invoice['id']}-2-text",
        f"{invoice['id']}-2-link",
    ]
