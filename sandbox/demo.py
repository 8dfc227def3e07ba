"""Demo customers for the sandbox, one per outcome, and the Linq account they are texted from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def _case(
    label: str,
    expected: str,
    texted: str | None,
    invoice: Any = None,
    subscription_status: str = "past_due",
    **customer: Any,
) -> DemoCase:
    record = builders.customer(**customer)
    subscription = builders.subscription(record, status=subscription_status)
    bill = builders.invoice(record, subscription=subscription, **(invoice or {}))
    return DemoCase(label, expected, record, subscription, bill, texted)


def cases() -> list[DemoCase]:
    """Eight customers: every branch a new user wants to see, with fresh ids each run."""
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
    ]


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
