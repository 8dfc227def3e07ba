"""The demo customers, one per outcome: the one list the sandbox shows and the tests run through
the pipeline (tests/test_pipeline.py in-process, tests/test_e2e.py over the emulator)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.core.decide import in_holdout
from shared.core.event import ACTION_TYPE, SNAPSHOT_TYPE
from standins import builders

SENDER_LINE = "+12025550100"


@dataclass(frozen=True)
class DemoCase:
    """One demo customer, their failed invoice, and the action the product should take."""

    label: str
    expected: str
    customer: dict[str, Any]
    subscription: dict[str, Any]
    invoice: dict[str, Any]
    phone: str | None  # the E.164 number Linq should see, when a text is expected to go out
    # At night where the customer is: deferred first, then released by the sweep.
    deferred: bool = False
    # Fails while the operator has paused texting: held, then released by the sweep on resume.
    paused: bool = False
    # Pays after the text (or, held out, untexted): Stripe sends invoice.paid.
    pays: bool = False
    # Answers the text (Linq sends message.received); `fails_again`: a second attempt fails.
    replies: str | None = None
    fails_again: bool = False
    # Stripe's events for the failed attempt, in the order they are posted: both of an attempt
    # that needs 3-D Secure, one text between them.
    events: tuple[str, ...] = (SNAPSHOT_TYPE,)
    # How the text must start, where the case is about its wording.
    opens: str | None = None

    @property
    def event_actions(self) -> list[str]:
        """The result line of each of `events`, posted one after the other: the first decides,
        any other finds the attempt texted."""
        return [self.expected] + ["skipped:already_texted"] * (len(self.events) - 1)

    @property
    def expected_actions(self) -> list[str]:
        """Every result line the invoice should get, in order."""
        actions = ["deferred:quiet_hours"] if self.deferred else []
        actions += ["deferred:paused"] if self.paused else []
        actions += self.event_actions
        actions += ["skipped:opted_out"] if self.fails_again else []
        actions += ["recovered"] if self.pays else []
        return actions


def _case(
    label: str,
    expected: str,
    texted: str | None,
    invoice: Any = None,
    subscription_status: str = "past_due",
    deferred: bool = False,
    paused: bool = False,
    pays: bool = False,
    replies: str | None = None,
    fails_again: bool = False,
    payment: dict[str, Any] | None = None,
    events: tuple[str, ...] = (SNAPSHOT_TYPE,),
    opens: str | None = None,
    **customer: Any,
) -> DemoCase:
    record = builders.customer(**customer)
    subscription = builders.subscription(record, status=subscription_status)
    invoice = dict(invoice or {})
    # An id that puts the invoice in the holdout group exactly when the case says so.
    holdout = expected == "skipped:holdout"
    while in_holdout(invoice_id := builders.new_id("in_1", 23), HOLDOUT_PERCENT) != holdout:
        continue
    if pays:
        # Finalized an hour ago, when its first attempt failed: a payment now is not a first try.
        invoice["created"] = int(time.time()) - 3600
    if payment is not None:
        invoice["payment"] = {**payment, "customer": record["id"]}
    bill = builders.invoice(record, id=invoice_id, subscription=subscription, **invoice)
    return DemoCase(
        label,
        expected,
        record,
        subscription,
        bill,
        texted,
        deferred,
        paused,
        pays,
        replies,
        fails_again,
        events,
        opens,
    )


def cases() -> list[DemoCase]:
    """Fourteen customers: every branch a new user wants to see, with fresh ids each run."""
    return [
        _case(
            "Ada Lovelace, pays after the text",
            "sent",
            "+14155550101",
            pays=True,
            name="Ada Lovelace",
            phone="+1 415 555 0101",
        ),
        _case(
            "(no name), pays too",
            "sent",
            "+14155550102",
            pays=True,
            name=None,
            phone="+14155550102",
        ),
        _case("Grace Hopper, no phone", "skipped:no_phone", None, name="Grace Hopper", phone=None),
        _case(
            "Alan Turing, UK number without +44, fails while paused",
            "sent",
            "+447911123456",
            paused=True,
            name="Alan Turing",
            phone="07911 123456",
            country="GB",
        ),
        _case(
            "Edsger Dijkstra, unreachable",
            "skipped:unreachable",
            "+14155550105",
            name="Edsger Dijkstra",
            phone="+14155550105",
        ),
        _case(
            "Barbara Liskov, opted out",
            "skipped:opted_out",
            "+14155550106",
            name="Barbara Liskov",
            phone="+14155550106",
        ),
        _case(
            "Donald Knuth, already paid",
            "skipped:not_open",
            "+14155550107",
            {"status": "paid"},
            name="Donald Knuth",
            phone="+14155550107",
        ),
        _case(
            "Frances Allen, subscription canceled",
            "skipped:canceled",
            "+14155550108",
            subscription_status="canceled",
            name="Frances Allen",
            phone="+14155550108",
        ),
        _case(
            "Radia Perlman, holdout group, pays",
            "skipped:holdout",
            "+14155550109",
            pays=True,
            name="Radia Perlman",
            phone="+14155550109",
        ),
        _case(
            "Katalin Kariko, her bank asks her to confirm (3-D Secure)",
            "sent",
            "+14155550114",
            payment=builders.payment_intent(status="requires_action", code=None),
            events=(ACTION_TYPE, SNAPSHOT_TYPE),
            opens="Hi Katalin, your bank asks you to confirm your $25.00 payment",
            name="Katalin Kariko",
            phone="+14155550114",
        ),
        _case(
            "John Backus, the card processor failed",
            "skipped:processor_error",
            "+14155550115",
            payment=builders.payment_intent(code="processing_error", decline_code=None),
            name="John Backus",
            phone="+14155550115",
        ),
        _case(
            "Ken Thompson, replies",
            "sent",
            "+14155550110",
            replies=REPLY,
            name="Ken Thompson",
            phone="+14155550110",
        ),
        _case(
            "Margaret Hamilton, says stop in a sentence, fails again",
            "sent",
            "+14155550111",
            # A sentence, not Linq's lone keyword: Linq does not opt her out, our list does.
            replies="Stop texting me",
            fails_again=True,
            name="Margaret Hamilton",
            phone="+14155550111",
        ),
        _case(
            "Yukihiro Matsumoto, at night in Tokyo",
            "sent",
            NIGHT_OWL,
            deferred=True,
            name="Yukihiro Matsumoto",
            phone="090-1234-5678",
            country="JP",
        ),
    ]


def quiet_hours_for_demo(now: datetime) -> tuple[str, datetime]:
    """A QUIET_HOURS window in which it is night in Tokyo right now, ending NIGHT from now, to
    the second; the other demo customers, in California and London, are 9 and 17 hours away
    from it. Returns the window and when it ends (UTC)."""
    local = now.astimezone(TOKYO)
    end = (local + NIGHT).replace(microsecond=0)
    return f"{local - timedelta(minutes=30):%H:%M}-{end:%H:%M:%S}", end.astimezone(now.tzinfo)


def prepare(stripe: Any, linq: Any, demo: list[DemoCase], **stripe_extra: Any) -> None:
    """Load the cases into the Stripe and Linq stand-ins (in-process or a client of a process):
    their customers, subscriptions and invoices, Linq knowing no service for the unreachable
    ones, and a STOP from each opted-out one. The Linq line is the caller's."""
    stripe.load(
        {
            "customers": [case.customer for case in demo],
            "subscriptions": [case.subscription for case in demo],
            "invoices": [case.invoice for case in demo],
            **stripe_extra,
        }
    )
    unreachable = [case.phone for case in demo if case.expected == "skipped:unreachable"]
    linq.load(
        {"capabilities": {p: {"imessage": False, "selected_service": None} for p in unreachable}}
    )
    for case in demo:
        if case.expected == "skipped:opted_out" and case.phone is not None:
            linq.inbound(case.phone, "STOP")


REPLY = "I'll pay on Friday"
# The share kept untexted in the demo; one demo customer is in it, on purpose (its id is chosen so).
HOLDOUT_PERCENT = 10
NIGHT_OWL = "+819012345678"
TOKYO = ZoneInfo("Asia/Tokyo")
# How long the demo's night in Tokyo lasts from the moment the recover function has it: the
# webhooks are in within a second or two (several times that on a busy machine), and the night
# ends while texting is paused, so that the first sweep after the resume hands back both.
NIGHT = timedelta(seconds=14)
