"""One owner, one decision, one plan, attacked through the recover function in-process: racing
deliveries, retries after the data changed, stale attempts, garbage from Linq, a ledger that fails
at the last write. Each must end with at most one text and one link."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.adapters.linq import LinqClient
from shared.core.entry import EntryKey, Part, PartReport, State
from shared.core.errors import RetryableError
from standins import builders
from tests.harness import SENDER, entry, log_lines, results

PHONE = "+14155550100"


def accepted(linq_api) -> list[tuple[str, str]]:
    """What Linq took, in order: (endpoint, part type); idempotent replays are not counted."""
    return [(m["endpoint"], m["parts"][0]["type"]) for m in linq_api.messages()]


def chat_requests(linq_api) -> int:
    return sum(1 for r in linq_api.requests() if r["endpoint"] == "POST /v3/chats")


def in_background(call: Any) -> tuple[threading.Thread, list[Any]]:
    answer: list[Any] = []
    thread = threading.Thread(target=lambda: answer.append(call()))
    thread.start()
    return thread, answer


def held_in_create_chat(monkeypatch, until: Callable[[], None]) -> threading.Event:
    """Linq's chat call, held until `until()` returns; the event is set once a call reached it."""
    reached = threading.Event()
    real = LinqClient.create_chat

    def slow(self: LinqClient, *args: Any) -> Any:
        reached.set()
        until()
        return real(self, *args)

    monkeypatch.setattr(LinqClient, "create_chat", slow)
    return reached


# --- racing deliveries ------------------------------------------------------------------


def test_a_resend_during_the_owners_slow_redelivery_sends_nothing(pipeline, linq_api, monkeypatch):
    # The sequence: A's first run gets a Linq 503 and raises; A's redelivery is slow on
    # POST /v3/chats; meanwhile B (Stripe resending the event) and C (a backfill of the same
    # payment) arrive. Only A's redelivery may send.
    invoice = pipeline.customer_with_invoice()
    payment = pipeline.payment(invoice)
    linq_api.add_fault(r"/v3/capability/", status=503)
    assert pipeline.recover(payment, "m-A").status_code == 500
    pipeline.capsys.readouterr()
    others_done = threading.Event()
    reached = held_in_create_chat(monkeypatch, lambda: others_done.wait(10))
    thread, answer = in_background(lambda: pipeline.recover(payment, "m-A"))
    assert reached.wait(10)
    assert pipeline.recover(payment, "m-B").status_code == 200
    backfill = pipeline.payment(invoice, event_id=f"backfill_{invoice['id']}_1")
    assert pipeline.recover(backfill, "m-C").status_code == 200
    others_done.set()
    thread.join(10)
    assert answer[0].status_code == 200
    lines = log_lines(pipeline.capsys.readouterr().out)
    assert [line["action"] for line in results_of(lines)] == ["sent"]
    ignored = {line["message"] for line in lines if "action" not in line}
    assert ignored == {"duplicate delivery ignored", "in progress for another event"}
    assert chat_requests(linq_api) == 1
    assert accepted(linq_api) == [("chats", "text"), ("messages", "link")]


def results_of(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "action" in line]


@pytest.mark.parametrize("racers", [2, 10])
def test_many_messages_for_one_failed_payment_at_once_text_once(
    pipeline, linq_api, monkeypatch, racers
):
    invoice = pipeline.customer_with_invoice()
    payment = pipeline.payment(invoice)
    # The owner is kept busy in Linq's chat call until every other message has been answered.
    answered = threading.Semaphore(0)

    def the_rest_answered() -> None:
        for _ in range(racers - 1):
            assert answered.acquire(timeout=10)

    held_in_create_chat(monkeypatch, the_rest_answered)
    barrier = threading.Barrier(racers)

    def deliver(index: int) -> int:
        barrier.wait()
        status = pipeline.recover(payment, f"m-{index}").status_code
        answered.release()
        return status

    pipeline.capsys.readouterr()
    threads = [threading.Thread(target=deliver, args=(index,)) for index in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    lines = log_lines(pipeline.capsys.readouterr().out)
    assert [line["action"] for line in results_of(lines)] == ["sent"]
    assert len([line for line in lines if line["message"] == "duplicate delivery ignored"]) == (
        racers - 1
    )
    assert accepted(linq_api) == [("chats", "text"), ("messages", "link")]


# --- a retry after the data changed sends what was decided --------------------------------


def test_link_retried_after_the_customer_and_the_line_changed_sends_only_the_link(
    pipeline, linq_api
):
    invoice = pipeline.customer_with_invoice()
    payment = pipeline.payment(invoice)
    linq_api.add_fault(r"/messages$", status=503)
    assert pipeline.recover(payment, "m-1").status_code == 500
    pipeline.stripe.update_customer(invoice["customer"], {"name": "Renamed Person"})
    linq_api.load({"phone_numbers": [builders.linq_line(SENDER, reputation="CRITICAL")]})
    result = pipeline.result(invoice, message_id="m-1", event_id=payment.event_id)
    assert result["action"] == "sent"
    assert accepted(linq_api) == [("chats", "text"), ("messages", "link")]
    assert linq_api.messages()[0]["parts"][0]["value"].startswith("Hi Jane,")
    assert all(r["status"] != 409 for r in linq_api.requests())


def test_text_retried_after_the_customer_changed_is_the_recorded_text(pipeline, linq_api):
    # The plan was recorded, then the text failed before Linq took it: the retry sends the text
    # as decided, not one rebuilt from the customer's new name.
    invoice = pipeline.customer_with_invoice()
    payment = pipeline.payment(invoice)
    linq_api.add_fault(r"^/v3/chats$", status=503)
    assert pipeline.recover(payment, "m-1").status_code == 500
    pipeline.stripe.update_customer(invoice["customer"], {"name": "Renamed Person"})
    assert pipeline.result(invoice, message_id="m-1", event_id=payment.event_id)["action"] == "sent"
    [text, _] = linq_api.messages()
    assert text["parts"][0]["value"].startswith("Hi Jane, your payment")
    assert text["idempotency_key"] == f"{invoice['id']}-1-text"


def test_a_takeover_by_another_event_resumes_with_the_first_plan(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice()
    linq_api.add_fault(r"/messages$", status=503)
    assert pipeline.recover(pipeline.payment(invoice), "m-1").status_code == 500
    pipeline.stripe.update_customer(invoice["customer"], {"name": "Renamed Person"})
    backfill = pipeline.payment(invoice, event_id=f"backfill_{invoice['id']}_1")
    pipeline.capsys.readouterr()
    assert pipeline.recover(backfill, "m-2").status_code == 200
    [line] = results(pipeline.capsys.readouterr().out)
    assert (line["action"], line["event_id"]) == ("sent", backfill.event_id)
    assert accepted(linq_api) == [("chats", "text"), ("messages", "link")]


def test_opt_out_between_the_text_and_the_link_ends_sent_with_the_refusal(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice()
    payment = pipeline.payment(invoice)
    linq_api.add_fault(r"/messages$", status=503)
    assert pipeline.recover(payment, "m-1").status_code == 500
    linq_api.inbound(PHONE, "STOP")
    result = pipeline.result(invoice, message_id="m-1", event_id=payment.event_id)
    assert result["action"] == "sent"
    assert result["reason"].startswith("link refused: Linq 403 (code 2024)")
    assert (result["segments"], result["encoding"]) == (1, "GSM-7")
    assert accepted(linq_api) == [("chats", "text")]


def test_invoice_paid_between_the_text_and_the_link_gets_no_link(pipeline, linq_api):
    invoice = pipeline.customer_with_invoice()
    payment = pipeline.payment(invoice)
    linq_api.add_fault(r"/messages$", status=503)
    assert pipeline.recover(payment, "m-1").status_code == 500
    pipeline.stripe.update_invoice(invoice["id"], {"status": "paid", "amount_remaining": 0})
    result = pipeline.result(invoice, message_id="m-1", event_id=payment.event_id)
    assert (result["action"], result["reason"]) == ("sent", "link not sent: invoice is paid")
    assert (result["segments"], result["encoding"]) == (1, "GSM-7")  # the recorded text's cost
    assert accepted(linq_api) == [("chats", "text")]


# --- the invoice decides which attempt this is ---------------------------------------------


def test_an_event_for_an_older_attempt_after_a_newer_one_was_texted_is_superseded(
    pipeline, linq_api
):
    invoice = pipeline.customer_with_invoice(attempt_count=2)
    assert pipeline.result(invoice)["action"] == "sent"
    before = len(linq_api.requests())
    late = pipeline.result(invoice, attempt_count=1)
    assert (late["action"], late["reason"]) == (
        "skipped:superseded",
        "attempt 1 is superseded: the invoice is at attempt 2",
    )
    assert len(linq_api.requests()) == before
    assert accepted(linq_api) == [("chats", "text"), ("messages", "link")]


# --- garbage from Linq, a ledger that fails at the end --------------------------------------


@pytest.mark.parametrize(
    "garbage", ["<html>gateway</html>", {"chat": {"no": "id"}}], ids=["not-json", "no-chat-id"]
)
def test_linq_garbage_on_every_delivery_then_a_replay_texts_once(pipeline, linq_api, garbage):
    # Three deliveries end in a retry each (the lease released every time); then the message is
    # dead-lettered, and a backfill replay takes the payment over and sends it.
    invoice = pipeline.customer_with_invoice()
    payment = pipeline.payment(invoice)
    linq_api.add_fault(r"^/v3/chats$", status=200, body=garbage, times=3)
    for _ in range(3):
        assert pipeline.recover(payment, "m-1").status_code == 500
    replay = pipeline.payment(invoice, event_id=f"backfill_{invoice['id']}_1")
    pipeline.capsys.readouterr()
    assert pipeline.recover(replay, "m-replay").status_code == 200
    assert [line["action"] for line in results(pipeline.capsys.readouterr().out)] == ["sent"]
    assert accepted(linq_api) == [("chats", "text"), ("messages", "link")]


def test_ledger_failing_at_the_last_write_ends_with_one_text_and_one_link(
    pipeline, linq_api, monkeypatch
):
    # Firestore is unreachable from the moment the link went out: the outcome cannot be written
    # and the lease cannot be ended. The redelivery waits for the lease to run out, resumes from
    # the recorded chat and sends only the link (a replay for Linq), then writes the outcome.
    pipeline.configure(LEASE_SECONDS="2")
    invoice = pipeline.customer_with_invoice()
    payment = pipeline.payment(invoice)
    documents = pipeline.backend.documents
    real_write = documents.write
    outage = threading.Event()

    def write(collection: str, key: str, values: dict[str, Any], version: str | None) -> str:
        if "finished_at" in values:
            outage.set()
        if outage.is_set():
            raise RetryableError("Firestore unreachable: ConnectionError", vendor="firestore")
        return real_write(collection, key, values, version)

    monkeypatch.setattr(documents, "write", write)
    status, lines = pipeline.run(invoice, message_id="m-1", event_id=payment.event_id)
    assert status == 500
    assert any(line["message"].startswith("lease not ended") for line in lines)
    monkeypatch.setattr(documents, "write", real_write)
    status, lines = pipeline.run(invoice, message_id="m-1", event_id=payment.event_id)
    assert status == 500  # the dead run's lease still holds: retried, not acknowledged
    pipeline.clock.advance(timedelta(seconds=2))
    assert pipeline.result(invoice, message_id="m-1", event_id=payment.event_id)["action"] == "sent"
    assert accepted(linq_api) == [("chats", "text"), ("messages", "link")]


# --- other writers of the owner's entry ----------------------------------------------------


@pytest.mark.parametrize("part", ["text", "link"])
def test_a_delivery_heard_while_the_owner_sends_does_not_lose_the_outcome(
    pipeline, linq_api, monkeypatch, part
):
    # Linq reports a delivery within moments, with the idempotency key, so the Linq subscriber
    # writes `{part}_delivery` on the entry while its owner is still sending. That write is not a
    # takeover: the owner must still record the chat and its outcome, and log its result line.
    invoice = pipeline.customer_with_invoice()
    key = EntryKey(invoice["id"], 1)
    method = "create_chat" if part == "text" else "send_link"
    real = getattr(LinqClient, method)

    def sent_then_heard(self: LinqClient, *args: Any) -> Any:
        answer = real(self, *args)
        # What linq_event does with `message.delivered` for this part.
        report = PartReport(True, pipeline.clock())
        assert pipeline.ledger.record_report(key, Part(part), report)
        return answer

    monkeypatch.setattr(LinqClient, method, sent_then_heard)
    result = pipeline.result(invoice)
    assert result["action"] == "sent"
    recorded = entry(pipeline, invoice)
    delivered = recorded.report(Part(part))
    assert (recorded.state, delivered is not None and delivered.delivered) == (State.DONE, True)
    assert recorded.chat_id == result["chat_id"]
    assert accepted(linq_api) == [("chats", "text"), ("messages", "link")]


def test_an_untexted_plan_replayed_after_the_invoice_failed_again_is_superseded(pipeline, linq_api):
    # Attempt 1's plan is recorded but Linq never takes its text, and its message ends in the
    # dead-letter topic. Stripe fails the invoice again: attempt 2 is texted. Replaying attempt
    # 1's dead letter afterwards must not text the customer a second time.
    invoice = pipeline.customer_with_invoice(attempt_count=1)
    first = pipeline.payment(invoice)
    linq_api.add_fault(r"^/v3/chats$", status=503)
    assert pipeline.recover(first, "m-1").status_code == 500
    pipeline.stripe.update_invoice(invoice["id"], {"attempt_count": 2})
    assert pipeline.result(invoice, attempt_count=2)["action"] == "sent"
    replayed = pipeline.result(invoice, message_id="m-1", event_id=first.event_id)
    assert (replayed["action"], replayed["attempt"]) == ("skipped:superseded", 1)
    assert [m["idempotency_key"] for m in linq_api.messages()] == [
        f"{invoice['id']}-2-text",
        f"{invoice['id']}-2-link",
    ]
