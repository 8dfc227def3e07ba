"""Paused in ten seconds, through the functions in-process: `./dev pause` and `./dev resume` on
the functions' own ledger and clock, the pause racing sends, the night, the release afterwards
(oldest first, every rule judged again), and the command's bad input."""

from __future__ import annotations

import base64
import json
import re
import threading
from datetime import timedelta
from typing import Any

import pytest

from shared.core.control import CACHE_FOR
from shared.core.entry import EntryKey, Progress, State
from shared.workflow import release as release_module
from standins import builders
from tests.harness import entry, results
from tests.test_ownership import held_in_create_chat, in_background
from tests.test_quiet_hours_flow import morning, night_around_now
from tools import pause

SECOND = timedelta(seconds=1)
WHO = "ops@acme.test (gcloud account)"


@pytest.fixture
def world(pipeline, fake_gcloud):
    """The pipeline with the team's Slack on, and `./dev pause` run by ops@acme.test."""
    pipeline.configure(SLACK_WEBHOOK_URL=f"{pipeline.slack.url}/services/T0/B0/X0")
    return pipeline


def paused(world, reason: str = "processor incident", settle: bool = True) -> str:
    """`./dev pause --reason REASON`; its output. `settle`: then CACHE_FOR passes, after which
    every instance acts on it (the tests of the bound itself do not wait)."""
    status, out, err = world.control("pause", "--reason", reason)
    assert (status, err) == (0, ""), out
    if settle:
        world.clock.advance(CACHE_FOR)
    return out


def resumed(world) -> str:
    """`./dev resume`; its output. Paused payments go back through the sweep, whose messages
    read the control document afresh: no waiting for the instances' CACHE_FOR."""
    status, out, err = world.control("resume")
    assert (status, err) == (0, ""), out
    return out


def texts(linq_api) -> list[tuple[str, str]]:
    """(recipient, part) of each message Linq took."""
    return [(m["to"][0], m["parts"][0]["type"]) for m in linq_api.messages()]


def customer(index: int) -> dict[str, Any]:
    return builders.customer(phone=f"+1415555{index:04d}")


def sweep_and_push(world) -> list[dict[str, Any]]:
    """One tick of the release sweep, and every message it published pushed; the result lines."""
    assert world.sweep().status_code == 200
    world.capsys.readouterr()
    for message in world.published():
        assert world.push(message).status_code == 200
    return results(world.capsys.readouterr().out)


# --- a pause -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_pause_holds_every_new_failure_and_tells_the_team_who_why_and_when(world, linq_api):
    at = f"{world.clock():%Y-%m-%d %H:%M} UTC"
    out = paused(world, settle=False)
    assert out.splitlines()[0] == f"Texting paused by {WHO} at {at}: processor incident."
    [note] = world.slack.notes()
    assert note["text"] == (
        f"Texting paused by {WHO} at {at}: processor incident. Failed payments are kept "
        "(deferred:paused) until `./dev resume`."
    )
    invoice = world.customer_with_invoice()
    result = world.result(invoice)
    assert (result["action"], result["message"], result["group"]) == (
        "deferred:paused",
        "deferred: texting is paused",
        "treated",
    )
    # The log masks the operator's address, as it masks every address.
    assert result["reason"] == (
        f"texting paused by ***@acme.test (gcloud account) at {at}: processor incident"
    )
    stored = entry(world, invoice)
    assert (stored.state, stored.plan) == (State.PAUSED, None)
    assert [r for r in linq_api.requests() if r["path"] != "/v3/phone_numbers"] == []
    assert len(world.slack.notes()) == 1  # a held payment is only a result line


@pytest.mark.integration
def test_within_ten_seconds_of_a_pause_no_instance_decides_a_new_text(world, linq_api):
    # An instance keeps what it read of the control document for at most 10 s: the bound is
    # exact, measured on the functions' clock.
    warm = world.instance()
    assert world.result(world.customer_with_invoice(customer(1)), instance=warm)["action"] == (
        "sent"
    )
    world.clock.advance(SECOND)
    paused(world, settle=False)
    # A new instance reads the document: held at once.
    assert world.result(world.customer_with_invoice(customer(2)))["action"] == "deferred:paused"
    # The warm instance read it 1 s before the pause: until 10 s after that read, it still
    # decides on what it read.
    world.clock.advance(CACHE_FOR - SECOND - timedelta(microseconds=1))
    late = world.result(world.customer_with_invoice(customer(3)), instance=warm)
    assert late["action"] == "sent"
    world.clock.advance(timedelta(microseconds=1))
    held = world.result(world.customer_with_invoice(customer(4)), instance=warm)
    assert held["action"] == "deferred:paused"
    assert [to for to, part in texts(linq_api) if part == "text"] == [
        "+14155550001",
        "+14155550003",
    ]


@pytest.mark.integration
@pytest.mark.parametrize("in_flight", [1, 3])
def test_a_pause_racing_sends_lets_out_only_the_texts_already_decided(
    world, linq_api, monkeypatch, in_flight
):
    # Each run read the control document and decided before the pause; the pause lands while
    # they wait in Linq's chat call. Those texts, and their links, go out: the promise is about
    # texts decided after the pause (at most CACHE_FOR after it), not those already decided.
    instances = [world.instance() for _ in range(in_flight)]
    go = threading.Event()
    reached = threading.Semaphore(0)

    def held_until_paused() -> None:
        reached.release()
        assert go.wait(10)

    held_in_create_chat(monkeypatch, held_until_paused)
    invoices = [world.customer_with_invoice(customer(i)) for i in range(in_flight)]
    world.capsys.readouterr()
    runs = [
        in_background(lambda i=i: world.recover(world.payment(invoices[i]), None, instances[i]))
        for i in range(in_flight)
    ]
    for _ in range(in_flight):
        assert reached.acquire(timeout=10)
    paused(world, settle=False)
    go.set()
    for thread, answer in runs:
        thread.join(10)
        assert answer[0].status_code == 200
    assert sorted(texts(linq_api)) == sorted(
        (f"+1415555{i:04d}", part) for i in range(in_flight) for part in ("text", "link")
    )
    # CACHE_FOR after the pause, none of these instances decides another.
    world.clock.advance(CACHE_FOR)
    for index, instance in enumerate(instances):
        late = world.customer_with_invoice(customer(100 + index))
        assert world.result(late, instance=instance)["action"] == "deferred:paused"
    assert len(linq_api.messages()) == 2 * in_flight


@pytest.mark.integration
def test_a_link_whose_text_went_out_still_follows_during_a_pause(world, linq_api):
    invoice = world.customer_with_invoice()
    payment = world.payment(invoice)
    linq_api.add_fault(r"/messages$", status=503)
    assert world.recover(payment, "m-1").status_code == 500
    assert entry(world, invoice).progress is Progress.TEXTED
    paused(world)
    result = world.result(invoice, "m-1", event_id=payment.event_id)
    assert result["action"] == "sent"
    assert texts(linq_api) == [("+14155550100", "text"), ("+14155550100", "link")]


@pytest.mark.integration
def test_a_text_planned_before_the_pause_waits_and_goes_as_planned_after_the_resume(
    world, linq_api
):
    invoice = world.customer_with_invoice()
    payment = world.payment(invoice)
    linq_api.add_fault(r"^/v3/chats$", status=503)
    assert world.recover(payment, "m-1").status_code == 500
    planned = entry(world, invoice).plan
    assert planned is not None
    paused(world)
    held = world.result(invoice, "m-1", event_id=payment.event_id)
    assert held["action"] == "deferred:paused"
    assert linq_api.messages() == []
    world.stripe.update_customer(invoice["customer"], {"name": "Someone Else"})
    resumed(world)
    [result] = sweep_and_push(world)
    assert result["action"] == "sent"
    [text, link] = linq_api.messages()
    assert (text["parts"][0]["value"], link["parts"][0]["value"]) == (planned.text, planned.link)


@pytest.mark.integration
def test_a_message_for_a_paused_payment_waits_with_it(world, linq_api):
    paused(world)
    invoice = world.customer_with_invoice()
    payment = world.payment(invoice)
    assert world.result(invoice, event_id=payment.event_id)["action"] == "deferred:paused"
    status, [line] = world.run(invoice, event_id=payment.event_id)
    assert (status, line["message"], line["state"]) == (200, "duplicate delivery ignored", "paused")
    status, [line] = world.run(invoice, event_id=f"backfill_{invoice['id']}_1")
    assert (status, line["message"], line["state"]) == (
        200,
        "deferred while texting is paused",
        "paused",
    )
    assert linq_api.messages() == []


@pytest.mark.integration
def test_a_dry_run_while_paused_says_so_and_records_nothing(world):
    paused(world)
    world.configure(DRY_RUN="true")
    invoice = world.customer_with_invoice()
    result = world.result(invoice)
    assert result["action"] == "dry_run"
    assert result["reason"].startswith("deferred:paused: texting paused by ")
    assert world.ledger.entry(EntryKey(invoice["id"], 1)) is None


# --- the night, and the release after the resume -------------------------------------------------


@pytest.mark.integration
def test_a_pause_while_payments_wait_for_the_night_holds_them_in_the_morning(world, linq_api):
    world.configure(QUIET_HOURS=night_around_now())
    invoices = [world.customer_with_invoice(customer(i)) for i in range(2)]
    for invoice in invoices:
        assert world.result(invoice)["action"] == "deferred:quiet_hours"
    paused(world)
    morning(world)
    # Their morning comes while texting is paused: released, decided again, held.
    assert [r["action"] for r in sweep_and_push(world)] == ["deferred:paused"] * 2
    # Sweeps while paused hand nothing back.
    assert sweep_and_push(world) == []
    resumed(world)
    assert [r["action"] for r in sweep_and_push(world)] == ["sent"] * 2
    assert len(linq_api.messages()) == 4


@pytest.mark.integration
def test_the_resume_hands_payments_back_oldest_first_and_every_rule_applies_again(
    world, linq_api, monkeypatch
):
    paused(world)
    # Held a minute apart: one paid since, an older attempt of an invoice that failed again
    # (superseded by the newer one), one whose recipient's night has begun, one plain.
    paid = world.customer_with_invoice(customer(1))
    stale = world.customer_with_invoice(customer(2), attempt_count=1)
    night = world.customer_with_invoice(customer(3))
    plain = world.customer_with_invoice(customer(4))
    order = []
    for invoice in (paid, stale, night, plain):
        assert world.result(invoice)["action"] == "deferred:paused"
        order.append(invoice["id"])
        world.clock.advance(timedelta(minutes=1))
    world.stripe.update_invoice(stale["id"], {"attempt_count": 2})
    assert world.result(stale, attempt_count=2)["action"] == "deferred:paused"
    order.append(stale["id"])
    world.stripe.update_invoice(paid["id"], {"status": "paid", "amount_remaining": 0})
    out = resumed(world)
    assert "5 paused payment(s) go back at the next release sweep" in out
    resume_note = world.slack.notes()[-1]["text"]
    assert resume_note.startswith(f"Texting resumed by {WHO} at ")
    assert "(paused by ops@acme.test (gcloud account) at " in resume_note
    assert "5 paused payment(s) go back at the next release sweep" in resume_note
    # Night has come for +1 415 by the time the sweep runs (every customer's, in fact; only one
    # is left to be judged by it).
    world.configure(QUIET_HOURS=night_around_now())
    monkeypatch.setattr(release_module, "WORKERS", 1)
    assert world.sweep().status_code == 200
    published = world.published()
    assert [json.loads(base64.b64decode(m["data"]))["invoice_id"] for m in published] == order
    world.capsys.readouterr()
    for message in published:
        assert world.push(message).status_code == 200
    outcomes = {
        (line["invoice_id"], line["attempt"]): line["action"]
        for line in results(world.capsys.readouterr().out)
    }
    assert outcomes == {
        (paid["id"], 1): "skipped:not_open",
        (stale["id"], 1): "skipped:superseded",
        (stale["id"], 2): "deferred:quiet_hours",
        (night["id"], 1): "deferred:quiet_hours",
        (plain["id"], 1): "deferred:quiet_hours",
    }
    assert linq_api.messages() == []


@pytest.mark.integration
def test_the_payments_held_while_paused_are_sent_once_each_after_the_resume(world, linq_api):
    paused(world)
    invoices = [world.customer_with_invoice(customer(i)) for i in range(5)]
    for invoice in invoices:
        assert world.result(invoice)["action"] == "deferred:paused"
    resumed(world)
    # Two overlapping sweeps, and a redelivery of every released message: once each.
    assert world.sweep().status_code == 200
    assert world.sweep().status_code == 200
    published = world.published()
    assert len(published) == 5
    world.capsys.readouterr()
    for message in published + published:
        assert world.push(message).status_code == 200
    lines = results(world.capsys.readouterr().out)
    assert sorted(line["invoice_id"] for line in lines if line["action"] == "sent") == sorted(
        [i["id"] for i in invoices] * 2  # the redelivery restates its outcome
    )
    assert sorted(texts(linq_api)) == sorted(
        (f"+1415555{i:04d}", part) for i in range(5) for part in ("text", "link")
    )
    # Each note says the payment was held (a restated outcome is noted again, as ever).
    notes = [n["text"] for n in world.slack.notes()[2:]]
    assert all("(held for the recipient's quiet hours or a pause)" in n for n in notes)
    assert {i["id"] for i in invoices} == {re.search(r" for (in_\w+) ", n)[1] for n in notes}


# --- the command ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_status_says_whether_texting_is_paused_and_changes_nothing(world):
    status, out, _ = world.control("pause", "--status")
    assert (status, out) == (0, "Texting is on.\n")
    at = f"{world.clock():%Y-%m-%d %H:%M} UTC"
    paused(world, "carrier outage", settle=False)
    world.result(world.customer_with_invoice())
    status, out, _ = world.control("pause", "--status")
    assert (status, out) == (
        0,
        f"Texting is paused, by {WHO} since {at}: carrier outage.\n"
        "1 failed payment(s) held (deferred:paused). `./dev resume` ends it.\n",
    )
    resumed(world)
    status, out, _ = world.control("pause", "--status")
    resumed_at = f"{world.clock():%Y-%m-%d %H:%M} UTC"
    assert (status, out) == (0, f"Texting is on.\nLast resumed by {WHO} at {resumed_at}.\n")


@pytest.mark.integration
def test_pausing_twice_keeps_the_first_reason_and_resuming_twice_changes_nothing(world):
    at = f"{world.clock():%Y-%m-%d %H:%M} UTC"
    paused(world, "first", settle=False)
    status, out, _ = world.control("pause", "--reason", "second")
    assert (status, out) == (
        0,
        f"Texting is already paused, by {WHO} since {at}: first. Nothing changed.\n",
    )
    resumed(world)
    assert world.control("resume") == (0, "Texting is not paused. Nothing changed.\n", "")
    assert len(world.slack.notes()) == 2


@pytest.mark.integration
def test_a_pause_without_a_reason_says_none_was_given(world):
    out = paused_without_reason(world)
    assert out.splitlines()[0].endswith(": no reason given.")


def paused_without_reason(world) -> str:
    status, out, err = world.control("pause")
    assert (status, err) == (0, "")
    return out


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["pause", "--reason", "  "], "give a reason in words"),
        (["pause", "--reason", "x" * 201], "a reason is at most 200 characters"),
        (["pause", "--status", "--reason", "x"], "--status changes nothing"),
        (["pause", "--until", "noon"], "unrecognized arguments: --until noon"),
        (["resume", "--reason", "x"], "unrecognized arguments: --reason x"),
        (["pause", "resume"], "unrecognized arguments: resume"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_changes_nothing(world, argv, complaint):
    with pytest.raises(SystemExit) as exited:
        world.control(*argv)
    assert exited.value.code == 2
    assert complaint in world.capsys.readouterr().err
    assert world.ledger.control().pause is None


def test_a_missing_variable_is_named_with_exit_2(world, monkeypatch):
    world.env["GOOGLE_CLOUD_PROJECT"] = None
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    status, out, err = world.control("pause")
    assert (status, out) == (2, "")
    assert err.startswith("pause: GOOGLE_CLOUD_PROJECT is required")


@pytest.mark.parametrize("command", ["pause", "resume"])
def test_every_command_answers_help_without_running(command, monkeypatch, capsys):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with pytest.raises(SystemExit) as exited:
        pause.main([command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: ./dev {command} ")


@pytest.mark.integration
def test_who_is_the_gcloud_account_else_the_user_at_this_machine(fake_gcloud, monkeypatch):
    assert pause.who() == f"{fake_gcloud} (gcloud account)"
    monkeypatch.setattr(pause.shutil, "which", lambda _: None)
    assert pause.who().endswith(" (user at this machine)")
    assert "@" in pause.who()


@pytest.mark.integration
def test_who_without_a_gcloud_account_is_the_user_at_this_machine(tmp_path, monkeypatch):
    unset = tmp_path / "gcloud"
    unset.write_text("#!/bin/sh\necho '(unset)' >&2\n")
    unset.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert pause.who().endswith(" (user at this machine)")


@pytest.mark.integration
def test_a_ledger_that_cannot_be_reached_is_exit_1(fake_gcloud, monkeypatch, capsys):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-proj")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")  # nothing listens there
    assert pause.main(["pause", "--reason", "test"]) == 1
    assert capsys.readouterr().err.startswith("pause stopped: Firestore unreachable")
