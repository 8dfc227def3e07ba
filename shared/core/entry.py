"""A failed payment's ledger entry: its states and recovery points, who may move it from which
state to which (one table), the typed entry every reader goes through, and its keys.

The model is Stripe's for its own idempotency keys (brandur.org/idempotency-keys, and its code,
brandur/rocket-rides-atomic): one record per failed payment, owned by one run at a time through a
lease that expires, the decision and the exact requests recorded before the first foreign call,
and each send a recovery point from which the next owner resumes with what was recorded.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.core.errors import LeaseLostError
from shared.core.event import FailedPayment
from shared.core.outcome import Action, Outcome

# Kept past Stripe's longest retry window (Smart Retries: up to two months); a Firestore TTL
# policy on `expire_at` (set by deploy.sh) deletes records after that.
RETENTION = timedelta(days=70)
# A release not taken over in this time lost its message: the next sweep releases it again.
# Longer than Pub/Sub's first redeliveries, so a message merely slow to arrive is not doubled.
STALE_RELEASE = timedelta(minutes=15)


class State(enum.StrEnum):
    """Who may touch the entry now (the table below says how it moves)."""

    # Owned while its lease runs.
    ACTIVE = "active"
    # An outcome was logged: every later message for it is a duplicate.
    DONE = "done"
    # A permanent failure was logged: a later message may take it over and resume.
    FAILED = "failed"
    # Night at the recipient: held until `due_at`.
    DEFERRED = "deferred"
    # Texting was paused when its run would have sent: held until texting resumes.
    PAUSED = "paused"
    # Handed back by the release sweep with a token: only the message carrying it takes it over.
    RELEASED = "released"


class Progress(enum.StrEnum):
    """How far the entry got: the recovery point its next owner resumes from."""

    # Nothing recorded: decide.
    STARTED = "started"
    # The plan is recorded: send its text, exactly as planned.
    PLANNED = "planned"
    # The text went out into a chat: only the link is left.
    TEXTED = "texted"
    # An outcome is recorded for good.
    FINISHED = "finished"


class Role(enum.StrEnum):
    """Who moves an entry."""

    MESSAGE = "a message for the payment"
    OWNER = "the run holding the lease"
    SWEEP = "the release sweep"


class Condition(enum.StrEnum):
    """What must hold for a move."""

    LEASE_RUN_OUT = "its lease has run out"
    ANY_TIME = "at any time"
    CARRIES_THE_RELEASE = "the message carries the entry's release token"
    HOLDS_THE_LEASE = "the entry names the mover's run"
    DUE = "its due time has passed"
    TEXTING_ON = "texting is not paused"
    RELEASE_STALE = "it was released STALE_RELEASE ago or more and never taken over"


@dataclass(frozen=True)
class Transition:
    role: Role
    # None: there is no entry yet.
    source: State | None
    target: State
    condition: Condition


# Every move an entry can make. DONE moves no more; a DEFERRED or PAUSED entry is moved by the
# sweep only.
# Linq's delivery reports are written on an entry in any state and move nothing.
TRANSITIONS: tuple[Transition, ...] = (
    # The first message for the payment claims it.
    Transition(Role.MESSAGE, None, State.ACTIVE, Condition.ANY_TIME),
    # Its owner died (crash, timeout, a write that failed): any message takes over and resumes.
    Transition(Role.MESSAGE, State.ACTIVE, State.ACTIVE, Condition.LEASE_RUN_OUT),
    Transition(Role.MESSAGE, State.FAILED, State.ACTIVE, Condition.ANY_TIME),
    # The morning: the message the sweep published decides again.
    Transition(Role.MESSAGE, State.RELEASED, State.ACTIVE, Condition.CARRIES_THE_RELEASE),
    # The owner records its steps, renews and ends its lease, and ends the entry.
    Transition(Role.OWNER, State.ACTIVE, State.ACTIVE, Condition.HOLDS_THE_LEASE),
    Transition(Role.OWNER, State.ACTIVE, State.DONE, Condition.HOLDS_THE_LEASE),
    Transition(Role.OWNER, State.ACTIVE, State.FAILED, Condition.HOLDS_THE_LEASE),
    Transition(Role.OWNER, State.ACTIVE, State.DEFERRED, Condition.HOLDS_THE_LEASE),
    Transition(Role.OWNER, State.ACTIVE, State.PAUSED, Condition.HOLDS_THE_LEASE),
    Transition(Role.SWEEP, State.DEFERRED, State.RELEASED, Condition.DUE),
    Transition(Role.SWEEP, State.PAUSED, State.RELEASED, Condition.TEXTING_ON),
    # A release whose message was lost (a sweep that died after marking it) is released again.
    Transition(Role.SWEEP, State.RELEASED, State.RELEASED, Condition.RELEASE_STALE),
)


@dataclass(frozen=True)
class Mover:
    """Who wants to move an entry, when, and what they carry: the owner its run token, a message
    the sweep published its release token, the sweep whether texting is paused as it read it."""

    role: Role
    now: datetime
    run: str | None = None
    release: str | None = None
    texting_paused: bool = False


def allowed(entry: Entry | None, mover: Mover, target: State) -> bool:
    """Whether `mover` may move `entry` (None: there is none yet) to `target`."""
    source = entry.state if entry is not None else None
    for move in TRANSITIONS:
        if move.role is mover.role and move.source is source and move.target is target:
            # Only the first claim has no entry, and it may be made at any time.
            return move.condition is Condition.ANY_TIME or (
                entry is not None and _holds(move.condition, entry, mover)
            )
    return False


def _holds(condition: Condition, entry: Entry, mover: Mover) -> bool:
    if condition is Condition.LEASE_RUN_OUT:
        return entry.lease_until is None or entry.lease_until <= mover.now
    if condition is Condition.CARRIES_THE_RELEASE:
        return mover.release is not None and mover.release == entry.release
    if condition is Condition.HOLDS_THE_LEASE:
        return mover.run is not None and mover.run == entry.run
    if condition is Condition.DUE:
        return entry.due_at is not None and entry.due_at <= mover.now
    if condition is Condition.TEXTING_ON:
        return not mover.texting_paused
    # RELEASE_STALE: the sweep that marked it died before its message went out.
    return entry.released_at is not None and entry.released_at <= mover.now - STALE_RELEASE


# --- keys ----------------------------------------------------------------------------------------


class Part(enum.StrEnum):
    """The two messages of a text: the text opens the chat, the link follows."""

    TEXT = "text"
    LINK = "link"


# The last part of the document id of an invoice's payment: `paid` sorts after every attempt's
# number, so a reader of the ledger by name meets it right after the invoice's entries.
PAID = "paid"
# The idempotency keys the product sets on Linq's sends.
_PART_KEY = re.compile(r"(in_[A-Za-z0-9]+)-(\d+)-(text|link)")


@dataclass(frozen=True, order=True)
class EntryKey:
    """One failed payment: an invoice and the attempt that failed. `{invoice_id}-{attempt}` is
    its document id in the ledger and the stem of Linq's idempotency keys."""

    invoice_id: str
    attempt: int

    def __str__(self) -> str:
        return f"{self.invoice_id}-{self.attempt}"

    def idempotency_key(self, part: Part) -> str:
        """The same failed payment always yields the same keys, so Linq sends each part once."""
        return f"{self}-{part}"


def payment_id(invoice_id: str) -> str:
    """The document id of an invoice's payment, beside its entries."""
    return f"{invoice_id}-{PAID}"


def read_document_id(document_id: str) -> tuple[str, EntryKey | None]:
    """The invoice a ledger document belongs to, and its entry's key (None: the invoice's
    payment). Invoice ids hold no `-`."""
    invoice_id, _, last = document_id.rpartition("-")
    attempt = int(last) if last.isascii() and last.isdigit() else None
    return invoice_id, EntryKey(invoice_id, attempt) if attempt is not None else None


def read_idempotency_key(value: str) -> tuple[EntryKey, Part] | None:
    """The entry and the part a Linq idempotency key names, if the product set it."""
    found = _PART_KEY.fullmatch(value)
    if found is None:
        return None
    return EntryKey(found[1], int(found[2])), Part(found[3])


# --- the entry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What the first owner of a failed payment decided to send. It is recorded in the ledger
    before the first send and replayed byte for byte by every retry or takeover, so the requests
    always match their idempotency keys. `line` is None until the shell picks one."""

    to: str
    text: str
    link: str
    line: str | None = None


@dataclass(frozen=True)
class PartReport:
    """Linq's word on one part of the text: delivered (final), or failed with Linq's code."""

    delivered: bool
    at: datetime | None = None
    code: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Payment:
    """An invoice's payment, recorded once beside its entries (or, by the previous version, on an
    entry: then only the amount, currency and time are known)."""

    invoice_id: str
    paid_at: datetime | None
    amount: int | None = None
    currency: str | None = None
    # The `invoice.paid` event, and the Pub/Sub message that recorded it.
    event_id: str | None = None
    pubsub_message_id: str | None = None
    # How the payment relates to the texts, as its `recovered` line said.
    group: str | None = None
    attempt: int | None = None
    minutes_after_text: float | None = None
    reason: str | None = None
    recorded_at: datetime | None = None
    expire_at: datetime | None = None


@dataclass(frozen=True)
class Entry:
    """One failed payment as the ledger holds it."""

    key: EntryKey
    state: State = State.ACTIVE
    # Who holds it: the run token written with the lease (a takeover replaces it, nothing else
    # does), the event and the Pub/Sub message that run handles, and until when.
    run: str | None = None
    event_id: str | None = None
    pubsub_message_id: str | None = None
    lease_until: datetime | None = None
    # The payment as its first message named it, and when Stripe reported the failure.
    customer_id: str | None = None
    account: str | None = None
    livemode: bool = False
    failed_at: datetime | None = None
    # The recovery points: the plan (and whom to name when the recipient answers), then the chat
    # the text opened, and Linq's ids of the messages sent.
    plan: Plan | None = None
    first_name: str | None = None
    chat_id: str | None = None
    texted_at: datetime | None = None
    text_message_id: str | None = None
    link_message_id: str | None = None
    text_report: PartReport | None = None
    link_report: PartReport | None = None
    # The outcome: an action and why; the group drawn at the holdout draw, once it was reached.
    action: Action | None = None
    reason: str | None = None
    group: str | None = None
    # Why the attempt's payment failed: the decline code of the invoice's latest payment, as the
    # last run that read one found it.
    decline_code: str | None = None
    # Night at the recipient, and the sweep's release.
    due_at: datetime | None = None
    zones: tuple[str, ...] = ()
    release: str | None = None
    released_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    expire_at: datetime | None = None
    # A payment the previous version recorded on the entry itself.
    paid: Payment | None = None

    @property
    def progress(self) -> Progress:
        if self.state is State.DONE:
            return Progress.FINISHED
        if self.chat_id is not None:
            return Progress.TEXTED
        return Progress.PLANNED if self.plan is not None else Progress.STARTED

    @property
    def ended(self) -> Action | None:
        """The outcome recorded when the entry is done for good; None while it may still be sent."""
        return self.action if self.state is State.DONE else None

    @property
    def texted(self) -> bool:
        """Whether its text went out: `texted_at` is recorded as it does, and stays when the entry
        then ends `failed` (the link refused) or never ends (a crash after the text)."""
        return self.texted_at is not None or self.action is Action.SENT

    @property
    def texted_to(self) -> str | None:
        """The number its recorded plan texts, if it has one."""
        return self.plan.to if self.plan is not None and self.plan.to else None

    def report(self, part: Part) -> PartReport | None:
        return self.text_report if part is Part.TEXT else self.link_report

    def went_out(self) -> list[tuple[Part, PartReport | None]]:
        """The parts that went out into its chat, in order, each with Linq's word on it so far."""
        parts = [(Part.TEXT, self.text_report)]
        if self.link_message_id is not None or self.link_report is not None:
            parts.append((Part.LINK, self.link_report))
        return parts

    def job(self) -> FailedPayment:
        """The failed payment to queue again for this entry."""
        return FailedPayment(
            event_id=self.event_id or "",
            invoice_id=self.key.invoice_id,
            customer_id=self.customer_id,
            attempt_count=self.key.attempt,
            livemode=self.livemode,
            account=self.account,
        )


# --- what a held entry means to a message that could not claim it --------------------------------


class Holding(enum.StrEnum):
    """What an entry another run holds (or has finished) means for a message about it."""

    # An earlier run of this very message may still be going, or died without ending its lease.
    EARLIER_RUN = "earlier_run"
    # This message's own run recorded the outcome; its result line may not have gone out.
    RESTATE = "restate"
    DUPLICATE = "duplicate"
    # Another event for an attempt already texted.
    ALREADY_TEXTED = "already_texted"
    # Deferred for the recipient's night or while texting is paused, or released to the sweep's
    # message.
    WAITING = "waiting"
    HANDLED = "handled"
    IN_PROGRESS = "in_progress"


def holding(entry: Entry, event_id: str, pubsub_message_id: str) -> Holding:
    """What `entry`, which the message `pubsub_message_id` of event `event_id` could not claim,
    means for it."""
    own_message = entry.pubsub_message_id == pubsub_message_id
    if entry.state is State.ACTIVE and own_message:
        return Holding.EARLIER_RUN
    if entry.state is State.DONE and own_message and entry.action is not None:
        return Holding.RESTATE
    if entry.event_id == event_id:
        return Holding.DUPLICATE
    if entry.state is State.DONE and entry.action is Action.SENT:
        return Holding.ALREADY_TEXTED
    if entry.state in (State.DEFERRED, State.PAUSED, State.RELEASED):
        return Holding.WAITING
    return Holding.HANDLED if entry.state is State.DONE else Holding.IN_PROGRESS


# --- the moves -----------------------------------------------------------------------------------


def claim(
    entry: Entry | None,
    key: EntryKey,
    job: FailedPayment,
    run: str,
    pubsub_message_id: str,
    now: datetime,
    lease: timedelta,
) -> Entry | None:
    """The entry once run `run` of `job` owns it: a new one, or `entry` taken over with what
    earlier owners recorded. None when the table lets no message move it: it is held."""
    if not allowed(entry, Mover(Role.MESSAGE, now, release=job.release), State.ACTIVE):
        return None
    if entry is None:
        entry = Entry(
            key,
            customer_id=job.customer_id,
            account=job.account,
            livemode=job.livemode,
            failed_at=datetime.fromtimestamp(job.failed_at, UTC) if job.failed_at else None,
            created_at=now,
        )
    return replace(
        entry,
        state=State.ACTIVE,
        run=run,
        event_id=job.event_id,
        pubsub_message_id=pubsub_message_id,
        lease_until=now + lease,
        updated_at=now,
        expire_at=now + RETENTION,
    )


def _as_owner(entry: Entry, run: str, target: State, now: datetime, **changes: Any) -> Entry:
    """`entry` moved to `target` by its owner, run `run`, with `changes`; raises LeaseLostError
    when the entry is no longer that run's to move (taken over, or ended)."""
    if not allowed(entry, Mover(Role.OWNER, now, run), target):
        raise LeaseLostError(f"ledger entry {entry.key} is no longer this run's ({entry.state})")
    return replace(entry, state=target, updated_at=now, **changes)


def record_plan(
    entry: Entry, run: str, plan: Plan, first_name: str | None, now: datetime, lease: timedelta
) -> Entry:
    """The plan recorded, before the first send."""
    return _as_owner(
        entry, run, State.ACTIVE, now, plan=plan, first_name=first_name, lease_until=now + lease
    )


def record_text(
    entry: Entry, run: str, chat_id: str, message_id: str | None, now: datetime, lease: timedelta
) -> Entry:
    """The text went out into `chat_id`, as Linq's message `message_id`: a resumed run sends
    only the link."""
    return _as_owner(
        entry,
        run,
        State.ACTIVE,
        now,
        chat_id=chat_id,
        text_message_id=message_id,
        texted_at=now,
        lease_until=now + lease,
    )


def finish(
    entry: Entry, run: str, outcome: Outcome, link_message_id: str | None, now: datetime
) -> Entry:
    """The outcome recorded: `done` for good, or `failed`, which a later message may take over
    (with Linq's id of the link, when one went out)."""
    target = State.FAILED if outcome.action is Action.FAILED else State.DONE
    return _as_owner(
        entry,
        run,
        target,
        now,
        action=outcome.action,
        reason=outcome.reason,
        chat_id=outcome.chat_id if outcome.chat_id is not None else entry.chat_id,
        link_message_id=link_message_id if link_message_id is not None else entry.link_message_id,
        lease_until=now,
        finished_at=now,
    )


def defer(
    entry: Entry,
    run: str,
    outcome: Outcome,
    due_at: datetime,
    zones: tuple[str, ...],
    now: datetime,
) -> Entry:
    """Held until `due_at`, the end of the night: the release sweep hands it back then."""
    return _as_owner(
        entry,
        run,
        State.DEFERRED,
        now,
        action=outcome.action,
        reason=outcome.reason,
        due_at=due_at,
        zones=zones,
        lease_until=now,
    )


def pause(entry: Entry, run: str, outcome: Outcome, now: datetime) -> Entry:
    """Held while texting is paused: the release sweep hands it back once texting resumes."""
    return _as_owner(
        entry, run, State.PAUSED, now, action=outcome.action, reason=outcome.reason, lease_until=now
    )


def end_lease(entry: Entry, run: str, now: datetime) -> Entry:
    """The lease ended now, so the redelivery (or another message) need not wait for it."""
    return _as_owner(entry, run, State.ACTIVE, now, lease_until=now)


def draw(entry: Entry, drawn: str | None) -> Entry:
    """The entry with the group its owner drew, unless it has one: the first draw counts."""
    return entry if drawn is None or entry.group is not None else replace(entry, group=drawn)


def note_decline(entry: Entry, code: str | None) -> Entry:
    """The entry with the decline code its owner read on the invoice; one that read none (the
    invoice unread, a payment without an error) leaves what an earlier run read."""
    return entry if code is None else replace(entry, decline_code=code)


def release(entry: Entry, token: str, now: datetime, texting_paused: bool = False) -> Entry | None:
    """The entry handed back by the sweep with `token` (`texting_paused`: as the sweep read the
    control), or None when the sweep may not move it (another sweep released it first, a
    message took it over, or it waits for texting to resume)."""
    if not allowed(entry, Mover(Role.SWEEP, now, texting_paused=texting_paused), State.RELEASED):
        return None
    return replace(entry, state=State.RELEASED, release=token, released_at=now, updated_at=now)


def record_report(entry: Entry, part: Part, report: PartReport) -> Entry | None:
    """Linq's word on `part` recorded, or None when nothing changes: a delivery is final, and a
    `failed` after it (Linq can send them out of order) changes nothing."""
    current = entry.report(part)
    if current is not None and current.delivered:
        return None
    field = "text_report" if part is Part.TEXT else "link_report"
    return replace(entry, **{field: report})
