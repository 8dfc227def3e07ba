"""Demo customers for the sandbox, one per outcome, and the Linq account they are texted from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

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


def _case(
    label: str,
    expected: str,
    texted: str | None,
    invoice: Any = None,
    subscription_status: str = "past_due",
    deferred: bool = False,
    **customer: Any,
) -> DemoCase:
    record = builders.customer(**customer)
    subscription = builders.subscription(record, status=subscription_status)
    bill = builders.invoice(record, subscription=subscription, **(invoice or {}))
    return DemoCase(label, expected, record, subscription, bill, texted, deferred)


def cases() -> list[DemoCase]:
    """Nine customers: every branch a new user wants to see, with fresh ids each run."""
    return [
        _case("Ada Lovelace", "sent", "+14155550101", name="Ada Lovelace", phone="+1 415 555 0101"),
        _case("(no name)", "sent", "+14155550102", name=None, phone="+14155550102"),
        _case("Grace Hopper, no phone", "skipped:no_phone", None, name="Grace Hopper", phone=None),
        _case(
            "Alan Turing, UK number without +44",
            "sent",
            "+447911123456",
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
    """A QUIET_HOURS window in which it is night in Tokyo right now, ending at the next minute
    (at least 40 s away, so the webhook is in first); the other demo customers, in California
    and London, are 9 and 17 hours away from it. Returns the window and when it ends (UTC)."""
    local = now.astimezone(TOKYO)
    end = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if end - local < timedelta(seconds=40):
        end += timedelta(minutes=1)
    return f"{local - timedelta(minutes=30):%H:%M}-{end:%H:%M}", end.astimezone(now.tzinfo)


def stripe_scenario(demo: list[DemoCase]) -> dict[str, Any]:
    return {
        "customers": [case.customer for case in demo],
        "subscriptions": [case.subscription for case in demo],
        "invoices": [case.invoice for case in demo],
    }


def linq_scenario() -> dict[str, Any]:
    return {
        "phone_numbers": [builders.linq_line(SENDER_LINE)],
        "capabilities": {"+14155550105": {"imessage": False, "selected_service": None}},
    }


OPTED_OUT = "+14155550106"
NIGHT_OWL = "+819012345678"
TOKYO = ZoneInfo("Asia/Tokyo")
