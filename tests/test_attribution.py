"""The holdout groups and how a payment relates to the texts, as pure functions of an invoice's
ledger entries: one row per rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.core.attribution import (
    HOLDOUT,
    NOT_ASSIGNED,
    TREATED,
    Attribution,
    assigned,
    assignment,
    attribute,
    minutes_after,
)
from shared.core.entry import Entry, EntryKey, Plan, State
from shared.core.outcome import Action

T0 = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
T1, T2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
PLAN = Plan("+14155550100", "Hi Jane ...", "https://pay", "+1")


def entry(
    attempt: int = 1, state: str = "active", action: str | None = None, **fields: Any
) -> Entry:
    """An invoice's entry for one attempt, with the fields the rules read."""
    outcome = Action(action) if action is not None else None
    return Entry(EntryKey("in_1", attempt), State(state), action=outcome, **fields)


@pytest.mark.parametrize(
    ("case", "entry", "group"),
    [
        ("recorded treated", entry(group="treated", action="skipped:unreachable"), TREATED),
        ("recorded holdout", entry(group="holdout", action="skipped:holdout"), HOLDOUT),
        # A recorded assignment is the only word, even beside an outcome past the draw.
        ("recorded, not a group", entry(group="not_assigned", action="sent"), None),
        # Entries written before the ledger recorded the assignment: read from what followed.
        ("held out", entry(action="skipped:holdout"), HOLDOUT),
        ("sent", entry(action="sent"), TREATED),
        ("texted, then failed", entry(action="failed", texted_at=T0), TREATED),
        ("deferred", entry(action="deferred:quiet_hours"), TREATED),
        ("unreachable", entry(action="skipped:unreachable"), TREATED),
        ("a plan recorded", entry(action="failed", plan=PLAN), TREATED),
        ("a deferral recorded", entry(state="deferred", due_at=T1), TREATED),
        ("no phone", entry(action="skipped:no_phone"), None),
        ("failed before the draw", entry(action="failed"), None),
        ("nothing yet", entry(), None),
    ],
)
def test_an_entry_is_assigned_at_the_draw_or_not_at_all(case, entry, group):
    assert assigned(entry) == group


@pytest.mark.parametrize(
    ("case", "entries", "group"),
    [
        ("no entry", [], NOT_ASSIGNED),
        ("none reached the draw", [entry(attempt=1, action="skipped:no_phone")], NOT_ASSIGNED),
        (
            "the earliest attempt that reached the draw",
            [
                entry(attempt=3, group="holdout"),
                entry(attempt=1, action="skipped:no_phone"),
                entry(attempt=2, group="treated"),
            ],
            TREATED,
        ),
        (
            "a later attempt's draw when the earlier one did not reach it",
            [entry(attempt=1, action="skipped:no_phone"), entry(attempt=2, group="holdout")],
            HOLDOUT,
        ),
    ],
)
def test_the_invoice_is_in_the_group_of_its_earliest_draw(case, entries, group):
    assert assignment(entries) == group


TEXTED_1 = entry(attempt=1, action="sent", group="treated", texted_at=T0)
TEXTED_2 = entry(attempt=2, action="sent", group="treated", texted_at=T2)


@pytest.mark.parametrize(
    ("case", "entries", "paid_at", "expected"),
    [
        ("the ledger never saw it", [], T1, None),
        ("paid after the text", [TEXTED_1], T1, Attribution(TREATED, 1, T0, None)),
        # A text that went out after the payment, racing it, did not bring it.
        (
            "a later text raced the payment",
            [TEXTED_2, TEXTED_1],
            T1,
            Attribution(TREATED, 1, T0, None),
        ),
        ("paid as the text went out", [TEXTED_1, TEXTED_2], T2, Attribution(TREATED, 2, T2, None)),
        ("every text after the payment", [TEXTED_2], T1, Attribution(TREATED, 2, T2, None)),
        ("no moment of payment", [TEXTED_1, TEXTED_2], None, Attribution(TREATED, 2, T2, None)),
        # Sent, by an entry of the previous version that kept no `texted_at`.
        (
            "a text without its moment",
            [entry(attempt=1, action="sent")],
            T1,
            Attribution(TREATED, 1, None, None),
        ),
        (
            "no text: the latest entry says why",
            [
                entry(attempt=2, action="skipped:holdout", reason="in the holdout group"),
                entry(attempt=1, action="skipped:no_phone", reason="no phone on file"),
            ],
            T1,
            Attribution(HOLDOUT, 2, None, "skipped:holdout: in the holdout group"),
        ),
        (
            "no text, an outcome without a reason",
            [entry(attempt=1, action="skipped:no_phone")],
            T1,
            Attribution(NOT_ASSIGNED, 1, None, "skipped:no_phone"),
        ),
        (
            "no outcome yet: its state",
            [entry(attempt=1, state="released", reason="handed back by the sweep")],
            T1,
            Attribution(NOT_ASSIGNED, 1, None, "released: handed back by the sweep"),
        ),
        ("neither", [entry(attempt=1)], T1, Attribution(NOT_ASSIGNED, 1, None, "active")),
    ],
)
def test_a_payment_is_told_against_the_last_text_before_it(case, entries, paid_at, expected):
    assert attribute(entries, paid_at) == expected


@pytest.mark.parametrize(
    ("texted_at", "minutes"),
    [(None, None), (T0, 90.0), (T1 - timedelta(seconds=30), 30.5)],
)
def test_minutes_from_the_text_to_the_payment(texted_at, minutes):
    found = Attribution(TREATED, 1, texted_at, None)
    assert minutes_after(found, T0 + timedelta(minutes=90)) == minutes
