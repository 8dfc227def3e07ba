"""The ledger entry's life, pure: every move the table allows and every one it refuses, the
recovery points, what a held entry means to a message, and the keys."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.core import entry as model
from shared.core.entry import (
    RETENTION,
    STALE_RELEASE,
    TRANSITIONS,
    Entry,
    EntryKey,
    Holding,
    Mover,
    Part,
    PartReport,
    Plan,
    Progress,
    Role,
    State,
    allowed,
    holding,
    payment_id,
    read_document_id,
    read_idempotency_key,
)
from shared.core.errors import LeaseLostError
from shared.core.event import FailedPayment
from shared.core.outcome import Action, Outcome, failed, sent, skipped

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
LEASE = timedelta(seconds=180)
KEY = EntryKey("in_1", 2)
PLAN = Plan("+14155550100", "Hi Jane. Reply STOP", "https://invoice.stripe.com/i/x", "+1202")
JOB = FailedPayment("evt_2", "in_1", "cus_1", 2, livemode=True, account="acct_1")


def entry(state: State, **changes) -> Entry:
    return replace(Entry(KEY, state, run="run_a", event_id="evt_1"), **changes)


# An entry every condition holds for: its lease ran out, it carries the mover's release token
# and names the mover's run, it is due, and its release is stale.
def permissive(state: State) -> Entry:
    return entry(
        state,
        lease_until=NOW - SECOND,
        release="token",
        due_at=NOW - SECOND,
        released_at=NOW - STALE_RELEASE,
    )


def mover(role: Role) -> Mover:
    return Mover(role, NOW, run="run_a", release="token")


# --- the table ---------------------------------------------------------------------------------

ALLOWED = {(move.role, move.source, move.target) for move in TRANSITIONS}


@pytest.mark.parametrize(
    ("role", "source", "target"),
    list(itertools.product(Role, [None, *State], State)),
    ids=lambda value: str(getattr(value, "name", value)),
)
def test_a_move_is_allowed_only_when_the_table_has_it(role, source, target):
    current = permissive(source) if source is not None else None
    assert allowed(current, mover(role), target) == ((role, source, target) in ALLOWED)


@pytest.mark.parametrize(
    ("who", "current", "target", "expected"),
    [
        # A message claims a payment nobody has claimed, and no other.
        (Mover(Role.MESSAGE, NOW, "run_b"), None, State.ACTIVE, True),
        # ... takes over an active entry once its lease ran out (or it has none), not before.
        (
            Mover(Role.MESSAGE, NOW, "run_b"),
            entry(State.ACTIVE, lease_until=NOW),
            State.ACTIVE,
            True,
        ),
        (Mover(Role.MESSAGE, NOW, "run_b"), entry(State.ACTIVE), State.ACTIVE, True),
        (
            Mover(Role.MESSAGE, NOW, "run_b"),
            entry(State.ACTIVE, lease_until=NOW + SECOND),
            State.ACTIVE,
            False,
        ),
        # ... takes over a failed entry at any time, its lease live or not.
        (
            Mover(Role.MESSAGE, NOW, "run_b"),
            entry(State.FAILED, lease_until=NOW + LEASE),
            State.ACTIVE,
            True,
        ),
        # ... takes over a released entry only carrying its token.
        (
            Mover(Role.MESSAGE, NOW, "run_b", "token"),
            entry(State.RELEASED, release="token"),
            State.ACTIVE,
            True,
        ),
        (
            Mover(Role.MESSAGE, NOW, "run_b", "other"),
            entry(State.RELEASED, release="token"),
            State.ACTIVE,
            False,
        ),
        (
            Mover(Role.MESSAGE, NOW, "run_b"),
            entry(State.RELEASED, release="token"),
            State.ACTIVE,
            False,
        ),
        (Mover(Role.MESSAGE, NOW, "run_b", "token"), entry(State.RELEASED), State.ACTIVE, False),
        # ... never a deferred or a done one.
        (
            Mover(Role.MESSAGE, NOW, "run_b", "token"),
            permissive(State.DEFERRED),
            State.ACTIVE,
            False,
        ),
        (Mover(Role.MESSAGE, NOW, "run_b", "token"), permissive(State.DONE), State.ACTIVE, False),
        # The owner moves its own active entry, whatever its lease says, and nobody else does.
        (
            Mover(Role.OWNER, NOW, "run_a"),
            entry(State.ACTIVE, lease_until=NOW - LEASE),
            State.DONE,
            True,
        ),
        (Mover(Role.OWNER, NOW, "run_b"), entry(State.ACTIVE), State.DONE, False),
        (Mover(Role.OWNER, NOW, None), entry(State.ACTIVE, run=None), State.ACTIVE, False),
        (Mover(Role.OWNER, NOW, "run_a"), entry(State.FAILED), State.ACTIVE, False),
        # The sweep releases a deferred entry once due, not before.
        (Mover(Role.SWEEP, NOW), entry(State.DEFERRED, due_at=NOW), State.RELEASED, True),
        (Mover(Role.SWEEP, NOW), entry(State.DEFERRED, due_at=NOW + SECOND), State.RELEASED, False),
        (Mover(Role.SWEEP, NOW), entry(State.DEFERRED), State.RELEASED, False),
        # ... and a released one again once the release is stale, not before.
        (
            Mover(Role.SWEEP, NOW),
            entry(State.RELEASED, released_at=NOW - STALE_RELEASE),
            State.RELEASED,
            True,
        ),
        (
            Mover(Role.SWEEP, NOW),
            entry(State.RELEASED, released_at=NOW - STALE_RELEASE + SECOND),
            State.RELEASED,
            False,
        ),
        (Mover(Role.SWEEP, NOW), entry(State.RELEASED), State.RELEASED, False),
        # The owner pauses its own active entry; nobody else does.
        (Mover(Role.OWNER, NOW, "run_a"), entry(State.ACTIVE), State.PAUSED, True),
        (Mover(Role.OWNER, NOW, "run_b"), entry(State.ACTIVE), State.PAUSED, False),
        (Mover(Role.OWNER, NOW, "run_a"), permissive(State.DEFERRED), State.PAUSED, False),
        # The sweep releases a paused entry while texting is on, whatever its due time says ...
        (Mover(Role.SWEEP, NOW), entry(State.PAUSED), State.RELEASED, True),
        (
            Mover(Role.SWEEP, NOW, texting_paused=False),
            entry(State.PAUSED, due_at=NOW + LEASE),
            State.RELEASED,
            True,
        ),
        # ... and not while it is paused.
        (
            Mover(Role.SWEEP, NOW, texting_paused=True),
            permissive(State.PAUSED),
            State.RELEASED,
            False,
        ),
        # A message never takes a paused entry over, its token or not: only the sweep's does,
        # once released.
        (
            Mover(Role.MESSAGE, NOW, "run_b", "token"),
            permissive(State.PAUSED),
            State.ACTIVE,
            False,
        ),
        # A deferral due while texting is paused is still released: its run is paused in turn.
        (
            Mover(Role.SWEEP, NOW, texting_paused=True),
            entry(State.DEFERRED, due_at=NOW),
            State.RELEASED,
            True,
        ),
    ],
)
def test_each_condition_of_the_table(who, current, target, expected):
    assert allowed(current, who, target) is expected


def test_every_state_can_be_reached_and_only_done_is_final():
    assert {move.target for move in TRANSITIONS} == set(State)
    assert {move.source for move in TRANSITIONS} == {None, *State} - {State.DONE}


# --- the moves ---------------------------------------------------------------------------------


def test_a_first_claim_makes_the_entry_of_the_message():
    reported = replace(JOB, failed_at=int((NOW - SECOND).timestamp()))
    made = model.claim(None, KEY, reported, "run_b", "m-1", NOW, LEASE)
    assert made == Entry(
        KEY,
        State.ACTIVE,
        run="run_b",
        event_id="evt_2",
        pubsub_message_id="m-1",
        lease_until=NOW + LEASE,
        customer_id="cus_1",
        account="acct_1",
        livemode=True,
        failed_at=NOW - SECOND,
        created_at=NOW,
        updated_at=NOW,
        expire_at=NOW + RETENTION,
    )
    # A backfill is no new failure: it names no time.
    assert model.claim(None, KEY, JOB, "run_b", "m-1", NOW, LEASE).failed_at is None


def test_a_takeover_keeps_what_earlier_owners_recorded_and_names_the_new_run():
    earlier = entry(State.FAILED, plan=PLAN, chat_id="chat_1", group="treated", customer_id="cus_0")
    taken = model.claim(earlier, KEY, JOB, "run_b", "m-2", NOW, LEASE)
    assert taken == replace(
        earlier,
        state=State.ACTIVE,
        run="run_b",
        event_id="evt_2",
        pubsub_message_id="m-2",
        lease_until=NOW + LEASE,
        updated_at=NOW,
        expire_at=NOW + RETENTION,
    )


def test_only_the_message_the_sweep_published_takes_a_released_entry_over():
    released = entry(State.RELEASED, release="token")
    assert model.claim(released, KEY, JOB, "run_b", "m-2", NOW, LEASE) is None
    carrying = replace(JOB, release="token")
    taken = model.claim(released, KEY, carrying, "run_b", "m-2", NOW, LEASE)
    assert taken is not None
    assert (taken.state, taken.run) == (State.ACTIVE, "run_b")


def test_a_held_entry_is_not_claimed():
    live = entry(State.ACTIVE, lease_until=NOW + SECOND)
    assert model.claim(live, KEY, JOB, "run_b", "m-2", NOW, LEASE) is None
    assert model.claim(entry(State.DONE), KEY, JOB, "run_b", "m-2", NOW, LEASE) is None


LATER = NOW + timedelta(minutes=1)


def test_the_owner_records_its_steps():
    mine = entry(State.ACTIVE, lease_until=NOW + LEASE)
    planned = model.record_plan(mine, "run_a", PLAN, "Jane", LATER, LEASE)
    assert planned == replace(
        mine, plan=PLAN, first_name="Jane", lease_until=LATER + LEASE, updated_at=LATER
    )
    assert planned.progress is Progress.PLANNED
    texted = model.record_text(planned, "run_a", "chat_1", "msg_t", LATER + SECOND, LEASE)
    assert texted == replace(
        planned,
        chat_id="chat_1",
        text_message_id="msg_t",
        texted_at=LATER + SECOND,
        lease_until=LATER + SECOND + LEASE,
        updated_at=LATER + SECOND,
    )
    assert texted.progress is Progress.TEXTED
    done = model.finish(texted, "run_a", sent("chat_1"), "msg_l", LATER + 2 * SECOND)
    assert done == replace(
        texted,
        state=State.DONE,
        action=Action.SENT,
        link_message_id="msg_l",
        lease_until=LATER + 2 * SECOND,
        updated_at=LATER + 2 * SECOND,
        finished_at=LATER + 2 * SECOND,
    )
    assert done.progress is Progress.FINISHED


def test_an_outcome_keeps_the_chat_and_the_link_it_does_not_name():
    texted = entry(State.ACTIVE, plan=PLAN, chat_id="chat_1", link_message_id="msg_l")
    ended = model.finish(texted, "run_a", failed("link refused"), None, LATER)
    assert ended == replace(
        texted,
        state=State.FAILED,
        action=Action.FAILED,
        reason="link refused",
        lease_until=LATER,
        updated_at=LATER,
        finished_at=LATER,
    )
    # An outcome that names its chat records it: a text whose chat was never recorded.
    refused = replace(sent("chat_2"), reason="link refused: Linq 403 (code 2024)")
    assert model.finish(entry(State.ACTIVE), "run_a", refused, None, LATER).chat_id == "chat_2"


def test_a_deferral_holds_the_entry_until_its_due_time():
    night = Outcome(Action.DEFERRED, reason="03:12 in America/Chicago")
    mine = entry(State.ACTIVE, lease_until=NOW + LEASE)
    held = model.defer(mine, "run_a", night, NOW + LEASE, ("America/Chicago",), LATER)
    assert held == replace(
        mine,
        state=State.DEFERRED,
        action=Action.DEFERRED,
        reason="03:12 in America/Chicago",
        due_at=NOW + LEASE,
        zones=("America/Chicago",),
        lease_until=LATER,
        updated_at=LATER,
    )


def test_a_pause_holds_the_entry_until_texting_resumes():
    held = Outcome(Action.PAUSED, reason="texting paused by ops at 2026-11-26 12:00 UTC: incident")
    mine = entry(State.ACTIVE, plan=PLAN, lease_until=NOW + LEASE, due_at=NOW - LEASE)
    paused = model.pause(mine, "run_a", held, LATER)
    assert paused == replace(
        mine,
        state=State.PAUSED,
        action=Action.PAUSED,
        reason=held.reason,
        lease_until=LATER,
        updated_at=LATER,
    )
    assert paused.progress is Progress.PLANNED
    # Released once texting is on, and the message the sweep publishes takes it over.
    assert model.release(paused, "token", LATER, texting_paused=True) is None
    released = model.release(paused, "token", LATER)
    assert released == replace(
        paused, state=State.RELEASED, release="token", released_at=LATER, updated_at=LATER
    )
    carrying = replace(JOB, release="token")
    assert model.claim(released, KEY, carrying, "run_b", "m-2", LATER, LEASE) is not None


def test_ending_the_lease_lets_the_next_message_in_at_once():
    mine = entry(State.ACTIVE, plan=PLAN, lease_until=NOW + LEASE)
    ended = model.end_lease(mine, "run_a", LATER)
    assert ended == replace(mine, lease_until=LATER, updated_at=LATER)
    assert allowed(ended, Mover(Role.MESSAGE, LATER, "run_b"), State.ACTIVE)


@pytest.mark.parametrize(
    "write",
    [
        lambda e: model.record_plan(e, "run_a", PLAN, None, NOW, LEASE),
        lambda e: model.record_text(e, "run_a", "chat_1", None, NOW, LEASE),
        lambda e: model.finish(e, "run_a", skipped(Action.NO_PHONE, "none"), None, NOW),
        lambda e: model.defer(e, "run_a", Outcome(Action.DEFERRED), NOW, (), NOW),
        lambda e: model.pause(e, "run_a", Outcome(Action.PAUSED), NOW),
        lambda e: model.end_lease(e, "run_a", NOW),
    ],
    ids=["plan", "text", "finish", "defer", "pause", "end-lease"],
)
@pytest.mark.parametrize(
    "current",
    [
        entry(State.ACTIVE, run="run_b"),
        entry(State.DONE),
        entry(State.DEFERRED),
        entry(State.PAUSED),
    ],
    ids=["taken-over", "done", "deferred", "paused"],
)
def test_a_run_that_lost_the_entry_cannot_write_it(write, current):
    with pytest.raises(LeaseLostError):
        write(current)


def test_the_first_draw_counts():
    assert model.draw(entry(State.ACTIVE), "holdout").group == "holdout"
    assert model.draw(entry(State.ACTIVE, group="treated"), "holdout").group == "treated"
    assert model.draw(entry(State.ACTIVE), None).group is None


def test_the_sweep_releases_with_its_token_once():
    due = entry(State.DEFERRED, due_at=NOW)
    released = model.release(due, "token", NOW)
    assert released == replace(
        due, state=State.RELEASED, release="token", released_at=NOW, updated_at=NOW
    )
    assert model.release(released, "again", NOW) is None
    assert model.release(released, "again", NOW + STALE_RELEASE) is not None
    assert model.release(entry(State.ACTIVE), "token", NOW) is None


def test_a_delivery_is_final():
    failure = PartReport(False, NOW, 4001, "not delivered")
    failed_once = model.record_report(entry(State.DONE), Part.TEXT, failure)
    assert failed_once is not None
    assert failed_once.text_report == failure
    delivered = model.record_report(failed_once, Part.TEXT, PartReport(True, NOW))
    assert delivered is not None
    assert delivered.report(Part.TEXT) == PartReport(True, NOW)
    assert model.record_report(delivered, Part.TEXT, failure) is None
    link_failed = model.record_report(delivered, Part.LINK, failure)
    assert link_failed == replace(delivered, link_report=failure)


# --- what the entry says -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "progress"),
    [
        (entry(State.ACTIVE), Progress.STARTED),
        (entry(State.ACTIVE, plan=PLAN), Progress.PLANNED),
        (entry(State.FAILED, plan=PLAN, chat_id="chat_1"), Progress.TEXTED),
        (entry(State.DEFERRED, plan=PLAN), Progress.PLANNED),
        (entry(State.DONE, plan=PLAN, chat_id="chat_1"), Progress.FINISHED),
        (entry(State.DONE), Progress.FINISHED),
    ],
)
def test_the_recovery_point(current, progress):
    assert current.progress is progress


@pytest.mark.parametrize(
    ("current", "ended", "texted"),
    [
        (entry(State.DONE, action=Action.SENT), Action.SENT, True),
        (entry(State.FAILED, action=Action.FAILED, texted_at=NOW), None, True),
        (entry(State.ACTIVE, texted_at=NOW), None, True),
        (entry(State.DONE, action=Action.NO_PHONE), Action.NO_PHONE, False),
        (entry(State.DEFERRED, action=Action.DEFERRED), None, False),
    ],
)
def test_what_ended_and_whether_it_was_texted(current, ended, texted):
    assert (current.ended, current.texted) == (ended, texted)


def test_the_parts_that_went_out_into_the_chat():
    report = PartReport(True, NOW)
    assert entry(State.DONE).went_out() == [(Part.TEXT, None)]
    linked = entry(State.DONE, text_report=report, link_message_id="msg_l")
    assert linked.went_out() == [(Part.TEXT, report), (Part.LINK, None)]
    reported = entry(State.DONE, link_report=report)
    assert reported.went_out() == [(Part.TEXT, None), (Part.LINK, report)]


def test_an_entry_queues_its_failed_payment_again():
    queued = entry(State.DEFERRED, customer_id="cus_1", livemode=True, account="acct_1").job()
    assert queued == FailedPayment("evt_1", "in_1", "cus_1", 2, True, "acct_1")
    assert Entry(KEY).job() == FailedPayment("", "in_1", None, 2, False)


@pytest.mark.parametrize(
    ("current", "event_id", "message", "meaning"),
    [
        (entry(State.ACTIVE, pubsub_message_id="m-1"), "evt_1", "m-1", Holding.EARLIER_RUN),
        (entry(State.ACTIVE, pubsub_message_id="m-1"), "evt_9", "m-1", Holding.EARLIER_RUN),
        (
            entry(State.DONE, pubsub_message_id="m-1", action=Action.SENT),
            "evt_1",
            "m-1",
            Holding.RESTATE,
        ),
        # An outcome this version cannot read is no restatement.
        (entry(State.DONE, pubsub_message_id="m-1"), "evt_1", "m-1", Holding.DUPLICATE),
        (entry(State.ACTIVE, pubsub_message_id="m-1"), "evt_1", "m-2", Holding.DUPLICATE),
        (entry(State.DEFERRED, pubsub_message_id="m-1"), "evt_1", "m-2", Holding.DUPLICATE),
        (
            entry(State.DONE, pubsub_message_id="m-1", action=Action.SENT),
            "evt_9",
            "m-2",
            Holding.ALREADY_TEXTED,
        ),
        (entry(State.DEFERRED, pubsub_message_id="m-1"), "evt_9", "m-2", Holding.WAITING),
        (entry(State.PAUSED, pubsub_message_id="m-1"), "evt_9", "m-2", Holding.WAITING),
        (entry(State.PAUSED, pubsub_message_id="m-1"), "evt_1", "m-2", Holding.DUPLICATE),
        (entry(State.RELEASED, pubsub_message_id="m-1"), "evt_9", "m-2", Holding.WAITING),
        (
            entry(State.DONE, pubsub_message_id="m-1", action=Action.NO_PHONE),
            "evt_9",
            "m-2",
            Holding.HANDLED,
        ),
        (entry(State.ACTIVE, pubsub_message_id="m-1"), "evt_9", "m-2", Holding.IN_PROGRESS),
    ],
)
def test_what_a_held_entry_means_to_a_message(current, event_id, message, meaning):
    assert holding(current, event_id, message) is meaning


# --- keys --------------------------------------------------------------------------------------


def test_the_keys_of_a_failed_payment():
    assert str(KEY) == "in_1-2"
    assert KEY.idempotency_key(Part.TEXT) == "in_1-2-text"
    assert KEY.idempotency_key(Part.LINK) == "in_1-2-link"
    assert payment_id("in_1") == "in_1-paid"
    # By name, an invoice's payment sorts after its entries.
    assert sorted(["in_1-paid", "in_1-10", "in_1-2"]) == ["in_1-10", "in_1-2", "in_1-paid"]


@pytest.mark.parametrize(
    ("document_id", "read"),
    [
        ("in_1-2", ("in_1", EntryKey("in_1", 2))),
        ("in_1Abc-12", ("in_1Abc", EntryKey("in_1Abc", 12))),
        ("in_1-paid", ("in_1", None)),
        # The attempt is the last part, whatever the invoice id holds.
        ("in_1-x-2", ("in_1-x", EntryKey("in_1-x", 2))),
        ("in_1-²", ("in_1", None)),
    ],
)
def test_a_document_id_names_its_invoice_and_entry(document_id, read):
    assert read_document_id(document_id) == read


@pytest.mark.parametrize(
    ("key", "read"),
    [
        ("in_1Abc-2-text", (EntryKey("in_1Abc", 2), Part.TEXT)),
        ("in_1Abc-10-link", (EntryKey("in_1Abc", 10), Part.LINK)),
        ("in_1Abc-2-photo", None),
        ("in_1Abc-text", None),
        ("someone-elses-key", None),
        ("xin_1-2-text", None),
        ("in_1-2-text ", None),
        ("", None),
    ],
)
def test_an_idempotency_key_names_the_entry_and_the_part(key, read):
    assert read_idempotency_key(key) == read
