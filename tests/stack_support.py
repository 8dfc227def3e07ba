"""Helpers for tests that drive the whole product as processes (standins.stack.LocalStack)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from standins import LINQ_TOKEN, STRIPE_TEST_KEY, builders
from standins.stack import SANDBOX_WEBHOOK_SECRET, LocalStack

SENDER = "+12025550100"
SECRETS = (STRIPE_TEST_KEY, LINQ_TOKEN, SANDBOX_WEBHOOK_SECRET, "T000/B000/sandbox")


@contextmanager
def running_stack(workdir: Path, **options: Any) -> Iterator[LocalStack]:
    """A stack for one test module, its logs in `workdir` (pytest's: kept when a test fails);
    afterwards every process it started must be gone."""
    # Quiet hours are tested on purpose; elsewhere a run at night in California must not defer.
    options["recover_env"] = {"QUIET_HOURS": "off", **options.get("recover_env", {})}
    with LocalStack(workdir=workdir, **options) as stack:
        try:
            yield stack
        finally:
            pids = stack.pids
    assert [pid for pid in pids if os.path.exists(f"/proc/{pid}")] == []


@contextmanager
def clean_run(stack: LocalStack, *lines: str) -> Iterator[None]:
    """Fresh stand-ins for one test; after it, no log line or Slack note may hold a secret or a
    full phone number of a customer the test used."""
    reset(stack, *lines)
    yield
    leaks = find_leaks(stack)
    assert leaks == [], leaks


def reset(stack: LocalStack, *lines: str) -> None:
    for name in ("stripe", "linq", "slack"):
        stack.standin(name).reset()
    stack.linq.load({"phone_numbers": [builders.linq_line(n) for n in lines or (SENDER,)]})
    stack.emulator.pull(stack.audit_subscription)


def store(
    stack: LocalStack, invoice_changes: dict[str, Any] | None = None, **customer: Any
) -> dict[str, Any]:
    record = builders.customer(**customer)
    invoice = builders.invoice(record, **(invoice_changes or {}))
    stack.stripe.load({"customers": [record], "invoices": [invoice]})
    return invoice


def results_for(stack: LocalStack, invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in stack.results() if r["invoice_id"] == invoice["id"]]


def lines_for(stack: LocalStack, invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for line in stack.entries("recover") if line.get("invoice_id") == invoice["id"]]


def wait_for_result(
    stack: LocalStack, invoice: dict[str, Any], count: int = 1, timeout: float = 60.0
) -> list[dict[str, Any]]:
    stack.wait_until(
        lambda: len(results_for(stack, invoice)) >= count, timeout, f"{count} result(s)"
    )
    return results_for(stack, invoice)


def acknowledged(stack: LocalStack, **attributes: str) -> list[int]:
    """The function's answer to each push of the messages with these attributes, once one was
    acknowledged (2xx): the run that answered it had written all its lines and its note, and
    Pub/Sub will not deliver the message again. Needs a stack with `journal_pushes`."""

    def answers() -> list[int]:
        return [
            push["status"]
            for push in stack.pushes()
            if attributes.items() <= push["attributes"].items()
        ]

    stack.wait_until(
        lambda: any(200 <= status < 300 for status in answers()), what=f"an ack of {attributes}"
    )
    return answers()


def messages_to(stack: LocalStack, phone: str) -> list[dict[str, Any]]:
    return [m for m in stack.linq.messages() if m["to"] == [phone]]


def parts_sent_to(stack: LocalStack, phone: str) -> list[str]:
    return [m["parts"][0]["type"] for m in messages_to(stack, phone)]


def _emails_seen(stack: LocalStack) -> set[str]:
    """Every customer email address Stripe returned."""
    emails = set()
    for request in stack.stripe.requests():
        customer = (request.get("response") or {}).get("customer")
        if isinstance(customer, dict) and customer.get("email"):
            emails.add(customer["email"])
    return emails


def _phones_seen(stack: LocalStack) -> set[str]:
    """The last ten digits of every customer phone Stripe returned and every number texted."""
    raw = [m["to"][0] for m in stack.linq.messages() if m["to"]]
    for request in stack.stripe.requests():
        customer = (request.get("response") or {}).get("customer")
        if isinstance(customer, dict) and customer.get("phone"):
            raw.append(customer["phone"])
    digits = (re.sub(r"\D", "", number) for number in raw)
    return {d[-10:] for d in digits if len(d) >= 10}


def find_leaks(
    stack: LocalStack, extra_numbers: Iterable[str] = (), extra_emails: Iterable[str] = ()
) -> list[str]:
    """Secrets, full customer numbers and email addresses found in every byte the functions
    wrote (tracebacks included) and in the Slack notes."""
    numbers = _phones_seen(stack) | {n[-10:] for n in extra_numbers}
    emails = _emails_seen(stack) | set(extra_emails)
    texts = [stack.log(name).read_text(errors="replace") for name in ("ingest", "recover")]
    # The whole payload: the fallback `text` and the blocks the channel shows.
    texts += [json.dumps(note["payload"], ensure_ascii=False) for note in stack.slack.notes()]
    leaks = []
    for index, text in enumerate(texts):
        leaks += [f"secret {s[:6]}... in text {index}" for s in SECRETS if s in text]
        digits = re.sub(r"[\s().-]", "", text)
        leaks += [f"number ...{n[-4:]} in text {index}" for n in numbers if n in digits]
        leaks += [f"email {e[:3]}... in text {index}" for e in emails if e in text]
    return leaks


def one_note(stack: LocalStack) -> list[dict[str, Any]]:
    """The Slack notes once there is one: the recover function posts its note after the result
    line, so the line alone does not prove the note has arrived."""
    stack.wait_until(lambda: len(stack.slack.notes()) >= 1, what="a Slack note")
    return stack.slack.notes()
