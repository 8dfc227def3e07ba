"""The send ledger: one document per failed payment, owned by one run at a time; beside it our
own opt-out list, the Linq events acted on, how many messages each line sent each day, and the
control document that says whether texting is on. The only module that knows how they are stored.

Each entry moves as `shared/core/entry.py`'s table says. Every change to a record is one
conditional write (`_conditional`): read (or take what this run last wrote), apply a pure change,
write it conditionally on the version read (Firestore `updateTime` preconditions), and on
contention read again and apply the change again, until the change itself says the record is no
longer this run's (a LeaseLostError), or that nothing is left to write.

An invoice's payment is one document beside its entries, `{invoice_id}-paid`, created once (an
`exists: false` precondition): of any number of deliveries of the payment, one records it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Generic, TypeVar

from shared.adapters.documents import Conflict, Document, Documents, Fields
from shared.core import control as controls
from shared.core import entry as model
from shared.core.clock import Clock, utc_now
from shared.core.control import Check, Control, Pause, SurgeRule, Verdict
from shared.core.entry import (
    RETENTION,
    STALE_RELEASE,
    Entry,
    EntryKey,
    Part,
    PartReport,
    Payment,
    Plan,
    State,
    payment_id,
    read_document_id,
)
from shared.core.errors import LeaseLostError, RetryableError
from shared.core.event import FailedPayment
from shared.core.lease import DEFAULT_LEASE
from shared.core.linq_events import Listing, hear_word
from shared.core.log import mask_phone
from shared.core.outcome import Action, Outcome
from shared.core.sender import utc_day

COLLECTION = "dunning_sends"
# Our own STOP list, one document per handle (`_opt_out_id`): every line and every Linq account.
OPT_OUTS = "dunning_optouts"
# Linq webhook ids, each owned by one run at a time through a lease and marked done once acted on.
LINQ_EVENTS = "dunning_linq_events"
# The messages each line sent each UTC day, one document per line and day (`_line_count_id`).
LINE_COUNTS = "dunning_line_counts"
# Whether texting is on (shared/core/control.py): one document.
CONTROL, TEXTING = "dunning_control", "texting"
# Tries of one conditional write before the run gives up and is retried.
_TRIES = 5
# What the report reads of each document: an entry's outcome, assignment and decline code (of its
# plan only the line, which tells an entry of the previous version that had passed the draw, never
# the recipient), and on the payment's document, `paid_*`.
_REPORT_FIELDS = (
    "state",
    "created_at",
    "attempt",
    "action",
    "group",
    "decline_code",
    "plan.line",
    "due_at",
    "texted_at",
    "paid_at",
    "paid_amount",
    "paid_currency",
)
# States written by an earlier version.
_LEGACY_STATES = {"claimed": State.DONE, "retrying": State.ACTIVE}
# Entry attributes stored under another name.
_STORED_AS = {"text_report": "text_delivery", "link_report": "link_delivery"}
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")

A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True)
class Lease:
    """This run owns `entry` as of `version` (the document's version after its last write)."""

    version: str
    # The entry as this run last wrote or read it.
    entry: Entry
    # The event of the run this lease took over from, when it was not a fresh claim.
    took_over_from: str | None = None
    # This run's own draw at the holdout point, until a write records it: the first draw is the
    # one that counts.
    drawn: str | None = None
    # The decline code this run read on the invoice, until a write records it.
    declined: str | None = None

    @property
    def key(self) -> EntryKey:
        return self.entry.key

    @property
    def run(self) -> str:
        return self.entry.run or ""

    def draw(self, group: str | None) -> Lease:
        """This run's decision drew `group` (None: it did not reach the draw): the owner's next
        write records it, unless the entry already has an assignment."""
        if group is None or self.entry.group is not None:
            return self
        return replace(self, drawn=group)

    def read_decline(self, code: str | None) -> Lease:
        """This run read decline code `code` on the invoice (None: none): the owner's next write
        records it on the entry."""
        return replace(self, declined=code)

    @property
    def assigned(self) -> str | None:
        """The entry's assignment: recorded, or drawn by this run."""
        return self.entry.group or self.drawn


@dataclass(frozen=True)
class EventClaim:
    """This run owns the handling of Linq event `webhook_id` as of `version`."""

    webhook_id: str
    version: str
    run: str


@dataclass(frozen=True)
class Due:
    """A deferred entry the sweep may release, as the sweep's query read it."""

    version: str
    entry: Entry


@dataclass(frozen=True)
class _Write(Generic[A]):
    """What a change writes (no values: nothing changed), and what to answer once written."""

    values: Fields
    then: Callable[[str], A]


@dataclass(frozen=True)
class _Event:
    """A Linq event's record: which run owns it, until when, and whether it was acted on."""

    run: str | None
    done: bool
    lease_until: dt.datetime | None


class Ledger:
    """The ledger over a document store (Firestore, or in memory), with one clock."""

    def __init__(
        self, documents: Documents, lease: dt.timedelta = DEFAULT_LEASE, clock: Clock = utc_now
    ) -> None:
        self._documents = documents
        self._lease = lease
        self._clock = clock

    # --- the one conditional write ----------------------------------------------------------

    def _conditional(
        self,
        collection: str,
        document_id: str,
        read: Callable[[Document], R],
        change: Callable[[R | None], _Write[A] | A],
        what: str,
        known: tuple[str | None, R | None] | None = None,
    ) -> A:
        """Apply `change` to the record and write the result conditionally on the version it was
        applied to; on contention read again and apply it again.

        `known` is the record as the caller last wrote or read it (version None: assumed not to
        exist), so the common case costs no read; None reads it first. `change` answers without
        writing when there is nothing to write, and raises LeaseLostError when the record is no
        longer the caller's to change.
        """
        for _ in range(_TRIES):
            if known is None:
                found = self._documents.read(collection, document_id)
                known = (found.version, read(found)) if found is not None else (None, None)
            version, record = known
            step = change(record)
            if not isinstance(step, _Write):
                return step
            if not step.values and version is not None:
                return step.then(version)
            try:
                written = self._documents.write(collection, document_id, step.values, version)
            except Conflict:
                known = None
                continue
            return step.then(written)
        raise RetryableError(f"{what} keeps changing; try again later")

    def _own(self, lease: Lease, move: Callable[[Entry], Entry]) -> Lease:
        """Change the entry as its owner. The version moves under the owner without a takeover
        too (Linq's delivery report lands while the run is still sending): only the table's
        refusal (a takeover, or the entry ended) ends ownership."""

        def change(current: Entry | None) -> _Write[Lease]:
            if current is None:
                raise LeaseLostError(f"ledger entry {lease.key} is gone")
            after = model.note_decline(model.draw(move(current), lease.drawn), lease.declined)

            def then(version: str) -> Lease:
                return replace(lease, version=version, entry=after, drawn=None, declined=None)

            return _Write(_changed(current, after), then)

        return self._conditional(
            COLLECTION,
            str(lease.key),
            _entry,
            change,
            f"ledger entry {lease.key}",
            (lease.version, lease.entry),
        )

    # --- ownership --------------------------------------------------------------------------

    def claim(
        self, key: EntryKey, job: FailedPayment, pubsub_message_id: str, run: str
    ) -> Lease | Entry:
        """Own `key` for this run (a Lease, carrying what earlier owners recorded), or the entry
        as another run holds it (or finished it).

        A concurrent claim or takeover by another run makes this one read again and decide again.
        """

        def change(current: Entry | None) -> _Write[Lease] | Entry:
            now = self._clock()
            owner = model.claim(current, key, job, run, pubsub_message_id, now, self._lease)
            if owner is None:
                assert current is not None  # nothing stops the first claim
                return current
            previous = current.event_id if current is not None else None
            return _Write(_changed(current, owner), lambda version: Lease(version, owner, previous))

        # A claim first tries to create the entry: the common case costs no read.
        return self._conditional(
            COLLECTION, str(key), _entry, change, f"ledger entry {key}", (None, None)
        )

    def entry(self, key: EntryKey) -> Entry | None:
        """What the ledger holds for `key`, read without owning it; None when there is nothing."""
        found = self._documents.read(COLLECTION, str(key))
        return _entry(found) if found is not None else None

    def record_plan(self, lease: Lease, plan: Plan, first_name: str | None = None) -> Lease:
        """Record what this failed payment will get, before the first send (and whom to name
        when the recipient answers)."""
        now = self._clock()
        return self._own(
            lease, lambda e: model.record_plan(e, lease.run, plan, first_name, now, self._lease)
        )

    def record_text(self, lease: Lease, chat_id: str, message_id: str | None = None) -> Lease:
        """Record that the text went out into `chat_id` (as Linq's message `message_id`): a
        resumed run sends only the link."""
        now = self._clock()
        return self._own(
            lease, lambda e: model.record_text(e, lease.run, chat_id, message_id, now, self._lease)
        )

    def finish(self, lease: Lease, outcome: Outcome, link_message_id: str | None = None) -> None:
        """Record the outcome: `done` for good, or `failed`, which a later message may take over
        (with Linq's id of the link, when one went out)."""
        now = self._clock()
        self._own(lease, lambda e: model.finish(e, lease.run, outcome, link_message_id, now))

    def defer(
        self, lease: Lease, outcome: Outcome, due_at: dt.datetime, zones: tuple[str, ...]
    ) -> None:
        """Hold the payment until `due_at`: the release sweep hands it back then."""
        now = self._clock()
        self._own(lease, lambda e: model.defer(e, lease.run, outcome, due_at, zones, now))

    def pause(self, lease: Lease, outcome: Outcome) -> None:
        """Hold the payment while texting is paused: the release sweep hands it back once it
        resumes."""
        now = self._clock()
        self._own(lease, lambda e: model.pause(e, lease.run, outcome, now))

    def end_lease(self, lease: Lease) -> None:
        """End the lease now, so the redelivery (or another message) need not wait for it."""
        now = self._clock()
        self._own(lease, lambda e: model.end_lease(e, lease.run, now))

    # --- the release sweep ------------------------------------------------------------------

    def due(self, now: dt.datetime, limit: int, texting_paused: bool = False) -> list[Due]:
        """Entries to release: deferred ones whose `due_at` has passed, paused ones once texting
        is on (the oldest failure first), and released ones whose release is STALE_RELEASE old
        and was never taken over (a sweep that died after marking them, a message lost): at most
        `limit` of each, the longest waiting first."""
        found = self._documents.up_to(
            COLLECTION, ("state", State.DEFERRED.value), ("due_at", now), limit
        )
        if not texting_paused:
            found += self._documents.up_to(
                COLLECTION, ("state", State.PAUSED.value), ("created_at", now), limit
            )
        found += self._documents.up_to(
            COLLECTION,
            ("state", State.RELEASED.value),
            ("released_at", now - STALE_RELEASE),
            limit,
        )
        return [Due(document.version, _entry(document)) for document in found]

    def release(self, due: Due, token: str, texting_paused: bool = False) -> bool:
        """Hand `due` back with `token`, unless another sweep got there first, a message took it
        over, or it waits for texting to resume (False then)."""
        now = self._clock()

        def change(current: Entry | None) -> _Write[bool] | bool:
            after = (
                model.release(current, token, now, texting_paused) if current is not None else None
            )
            if after is None:
                return False
            return _Write(_changed(current, after), lambda _: True)

        what = f"ledger entry {due.entry.key}"
        return self._conditional(
            COLLECTION, str(due.entry.key), _entry, change, what, (due.version, due.entry)
        )

    # --- what Linq and Stripe tell us afterwards --------------------------------------------

    def entries(self, invoice_id: str) -> list[Entry]:
        """Every entry of one invoice (one per failed attempt)."""
        return self._find("invoice_id", invoice_id)

    def sent_message(self, message_id: str) -> tuple[Entry, Part] | None:
        """The entry and the part that went out as Linq's message `message_id`."""
        for part in Part:
            found = self._find(f"{part}_message_id", message_id)
            if found:
                return found[0], part
        return None

    def entries_of_chat(self, chat_id: str) -> list[Entry]:
        """The entries whose text opened (or went into) chat `chat_id`."""
        return self._find("chat_id", chat_id)

    def entries_to(self, phone: str) -> list[Entry]:
        """The entries whose recorded plan texts `phone`."""
        return self._find("plan.to", phone)

    def _find(self, path: str, value: Any) -> list[Entry]:
        found = self._documents.find(COLLECTION, path, value)
        return [_entry(document) for document in found if _is_entry(document)]

    def record_report(self, key: EntryKey, part: Part, report: PartReport) -> bool | None:
        """Record Linq's word on `part` of entry `key`: None when there is no such entry, False
        when nothing changed (a delivery is final), True when recorded."""

        def change(current: Entry | None) -> _Write[bool] | bool | None:
            if current is None:
                return None
            after = model.record_report(current, part, report)
            if after is None:
                return False
            return _Write(_changed(current, after), lambda _: True)

        return self._conditional(COLLECTION, str(key), _entry, change, f"ledger entry {key}")

    def record_payment(self, payment: Payment) -> Payment | None:
        """Record the invoice's payment once: its payment document is created unless it exists.
        Returns None when this call recorded it, else the payment recorded first."""
        document_id = payment_id(payment.invoice_id)

        def change(current: Payment | None) -> _Write[None] | Payment:
            if current is not None:
                return current
            now = self._clock()
            stored = replace(payment, recorded_at=now, expire_at=now + RETENTION)
            return _Write(_payment_fields(stored), lambda _: None)

        what = f"the payment of {payment.invoice_id}"
        return self._conditional(COLLECTION, document_id, _payment, change, what, (None, None))

    # --- our own opt-out list ---------------------------------------------------------------

    def opted_out_at(self, handle: str) -> dt.datetime | None:
        """When `handle` (the number a run would text) replied STOP, if it is on our own opt-out
        list now."""
        found = self._documents.read(OPT_OUTS, _opt_out_id(handle))
        listing = _listing(found) if found is not None else None
        return listing.changed_at if listing is not None and listing.opted_out else None

    def set_opt_out(
        self, handle: str, opted_out: bool, at: dt.datetime, context: Mapping[str, Any]
    ) -> bool:
        """Put `handle` on our opt-out list, or take it off, as of its word written `at`: the
        later word wins whatever order the events arrive in (`hear_word`). Returns whether this
        word changed the list; a STOP heard again that is still what put the handle on the list
        says so again (the run that wrote it may have died before its note went out)."""

        def change(current: Listing | None) -> _Write[bool] | bool:
            after = hear_word(current, opted_out, at)
            if after is None:
                return opted_out and current is not None and current == Listing(True, at, at)
            values = {
                **context,
                "handle": handle,
                "opted_out": after.opted_out,
                "changed_at": after.changed_at,
                "heard_at": after.heard_at,
                "updated_at": self._clock(),
            }
            was = current.opted_out if current is not None else False
            return _Write(values, lambda _: after.opted_out != was)

        return self._conditional(
            OPT_OUTS, _opt_out_id(handle), _listing, change, "the opt-out list"
        )

    # --- the Linq events acted on -----------------------------------------------------------

    def claim_event(self, webhook_id: str, run: str) -> EventClaim | None:
        """Own Linq event `webhook_id` for run `run`, or None when a run finished it.

        A claim is not an outcome: it is a lease, as a failed payment's is. While another run's
        lease on the event is live, that run may yet die, fail or time out before it finishes,
        so this raises RetryableError and Pub/Sub redelivers; once the lease has run out (or
        was ended), the next delivery takes the event over. A claim written before leases
        (`claimed_at` only) reads as run out.
        """

        def change(current: _Event | None) -> _Write[EventClaim] | None:
            now = self._clock()
            if current is not None and current.done:
                return None
            lease_until = current.lease_until if current is not None else None
            if lease_until is not None and lease_until > now:
                raise RetryableError(
                    "another run is handling this Linq event; retried until it finishes or "
                    "its lease runs out",
                    lease_until=lease_until.isoformat(),
                )
            values = {
                "webhook_id": webhook_id,
                "run": run,
                "claimed_at": now,
                "lease_until": now + self._lease,
                "done": False,
                "expire_at": now + RETENTION,
            }
            return _Write(values, lambda version: EventClaim(webhook_id, version, run))

        return self._conditional(
            LINQ_EVENTS, _event_id(webhook_id), _event, change, "this Linq event"
        )

    def finish_event(self, claim: EventClaim) -> None:
        """Mark the event handled: every later delivery of it is a duplicate."""
        now = self._clock()
        self._own_event(claim, {"done": True, "lease_until": now, "finished_at": now})

    def end_event_lease(self, claim: EventClaim) -> None:
        """End this run's lease on the event before a retry, so the redelivery acts at once."""
        self._own_event(claim, {"lease_until": self._clock()})

    def _own_event(self, claim: EventClaim, values: Fields) -> None:
        """Write the event's record if this run still owns it: one that outlived its lease
        changes nothing (the run that took the event over finishes it)."""

        def change(current: _Event | None) -> _Write[None] | None:
            if current is None or current.run != claim.run:
                return None
            return _Write(values, lambda _: None)

        mine = _Event(claim.run, done=False, lease_until=None)
        self._conditional(
            LINQ_EVENTS,
            _event_id(claim.webhook_id),
            _event,
            change,
            "this Linq event",
            (claim.version, mine),
        )

    # --- the messages each line sent today ---------------------------------------------------

    def count_sent(self, line: str) -> int:
        """Count one message sent from `line` today (UTC, by the ledger's clock), however many
        runs count at once; returns the line's count for the day so far."""
        now = self._clock()
        day = utc_day(now)
        values = {"line": line, "day": day, "updated_at": now}
        for _ in range(_TRIES):
            try:
                return self._documents.increment(
                    LINE_COUNTS, _line_count_id(day, line), "sent", 1, values
                )
            except Conflict:
                # ABORTED: contention that committed nothing, so the count is made again.
                continue
        raise RetryableError(f"the count of line {mask_phone(line)} keeps meeting contention")

    def sent_today(self) -> dict[str, int]:
        """How many messages each line has sent today (UTC, by the ledger's clock): one query
        of today's documents, so it needs no line list. A line that sent nothing is absent."""
        found = self._documents.find(LINE_COUNTS, "day", utc_day(self._clock()))
        return {
            document.fields["line"]: sent
            for document in found
            if isinstance(sent := document.fields.get("sent"), int)
        }

    # --- whether texting is on, and the surge guard's count ----------------------------------

    def control(self) -> Control:
        """The control document as it is now (none yet: texting on, never checked)."""
        found = self._documents.read(CONTROL, TEXTING)
        return _control(found) if found is not None else Control()

    def _change_control(
        self, change: Callable[[Control, dt.datetime], Control | None]
    ) -> tuple[Control, bool]:
        """Apply `change` to the control document conditionally on the version read; the
        document after, and whether this call changed it."""

        def write(current: Control | None) -> _Write[tuple[Control, bool]] | tuple[Control, bool]:
            before = current or Control()
            after = change(before, self._clock())
            if after is None:
                return before, False
            return _Write(_control_fields(after), lambda _: (after, True))

        return self._conditional(CONTROL, TEXTING, _control, write, "the control document")

    def pause_texting(self, reason: str, by: str) -> tuple[Control, bool]:
        """Pause texting; whether this call paused it (it may be paused already)."""
        return self._change_control(lambda c, now: controls.pause(c, reason, by, now))

    def resume_texting(self, by: str) -> tuple[Control, bool]:
        """Texting on again; whether this call resumed it (it may not have been paused)."""
        return self._change_control(lambda c, now: controls.resume(c, by, now))

    def begin_check(self, failures: int, rule: SurgeRule) -> tuple[Control, bool]:
        """Begin the surge guard's look at Stripe, unless another instance began one within
        the minute; the document, and whether this call began it."""
        return self._change_control(lambda c, now: controls.begin_check(c, failures, now, rule))

    def end_check(
        self,
        began: dt.datetime,
        successes: int,
        complete: bool,
        rule: SurgeRule,
        detail: str | None = None,
    ) -> tuple[Control, bool]:
        """Record the verdict of the check begun at `began` (a surge pauses texting); whether it
        was still the document's check to end."""
        return self._change_control(
            lambda c, now: controls.end_check(c, began, successes, complete, rule, now, detail)
        )

    def failures_since(self, start: dt.datetime) -> int:
        """The failed payments Stripe reported at or after `start`: an aggregation, one read per
        1,000 entries counted."""
        return self._documents.count(COLLECTION, at_least=("failed_at", start))

    def accounts_failed_since(self, start: dt.datetime) -> set[str | None]:
        """The Stripe accounts of those failed payments: None for the platform's own, else each
        connected account's id."""
        found = self._documents.at_least(COLLECTION, ("failed_at", start), ("account",))
        return {document.fields.get("account") for document in found}

    def paused_count(self) -> int:
        """How many failed payments are held while texting is paused."""
        return self._documents.count(COLLECTION, equal=("state", State.PAUSED.value))

    # --- the whole ledger: the report, and a ledger written at once -------------------------

    def count(self) -> int:
        """How many documents the ledger holds (entries and payments)."""
        return self._documents.count(COLLECTION)

    def pages(self, size: int) -> Iterator[list[Entry | Payment]]:
        """Every entry and payment by document id, `size` at a time: an invoice's entries and its
        payment arrive together (invoice ids have no `-`, which sorts before every letter and
        digit; `paid` sorts after every attempt's number). Only what the report reads: a plan's
        line, never its recipient or text."""
        for page in self._documents.pages(COLLECTION, _REPORT_FIELDS, size):
            yield [_entry(d) if _is_entry(d) else _payment(d) for d in page]

    def write_all(
        self, records: Iterable[Entry | Payment], only: Sequence[str] | None = None
    ) -> int:
        """Write whole entries and payments at once (a ledger seeded for a benchmark or a test),
        or with `only`, just those attributes of entries that exist; returns how many."""
        paths = None if only is None else [_STORED_AS.get(name, name) for name in only]

        def document(record: Entry | Payment) -> tuple[str, Fields]:
            if isinstance(record, Payment):
                return payment_id(record.invoice_id), _payment_fields(record)
            return str(record.key), _entry_fields(record)

        return self._documents.put(COLLECTION, map(document, records), paths)


# --- entries and payments as stored --------------------------------------------------------------


def _is_entry(document: Document) -> bool:
    return read_document_id(document.id)[1] is not None


def _entry(document: Document) -> Entry:
    fields = document.fields
    _, key = read_document_id(document.id)
    if key is None:
        raise ValueError(f"{document.id} is not a ledger entry")
    plan = fields.get("plan")
    zones = fields.get("zones")
    paid_at = fields.get("paid_at")
    return Entry(
        key,
        state=_state(fields.get("state")),
        run=fields.get("run"),
        event_id=fields.get("event_id"),
        # An earlier version named the Pub/Sub message `message_id`.
        pubsub_message_id=fields.get("pubsub_message_id") or fields.get("message_id"),
        lease_until=_moment(fields.get("lease_until")),
        customer_id=fields.get("customer_id"),
        account=fields.get("account"),
        livemode=bool(fields.get("livemode")),
        failed_at=_moment(fields.get("failed_at")),
        # The report's projection reads a plan's line alone: the rest reads empty.
        plan=Plan(
            str(plan.get("to") or ""),
            str(plan.get("text") or ""),
            str(plan.get("link") or ""),
            plan.get("line"),
        )
        if isinstance(plan, Mapping)
        else None,
        first_name=fields.get("first_name"),
        chat_id=fields.get("chat_id") or None,
        texted_at=_moment(fields.get("texted_at")),
        text_message_id=fields.get("text_message_id"),
        link_message_id=fields.get("link_message_id"),
        text_report=_report(fields.get("text_delivery")),
        link_report=_report(fields.get("link_delivery")),
        action=_action(fields.get("action")),
        reason=fields.get("reason"),
        group=fields.get("group"),
        decline_code=fields.get("decline_code"),
        due_at=_moment(fields.get("due_at")),
        zones=tuple(zones.split(",")) if isinstance(zones, str) and zones else (),
        release=fields.get("release"),
        released_at=_moment(fields.get("released_at")),
        created_at=_moment(fields.get("created_at")),
        updated_at=_moment(fields.get("updated_at")),
        finished_at=_moment(fields.get("finished_at")),
        expire_at=_moment(fields.get("expire_at")),
        paid=Payment(
            key.invoice_id,
            paid_at,
            fields.get("paid_amount"),
            fields.get("paid_currency"),
        )
        if isinstance(paid_at, dt.datetime)
        else None,
    )


def _entry_fields(entry: Entry) -> Fields:
    """The entry as stored, without the attributes it does not have."""
    fields: Fields = {
        "invoice_id": entry.key.invoice_id,
        "attempt": entry.key.attempt,
        "state": entry.state.value,
        "livemode": entry.livemode,
    }
    for name in (
        "run",
        "event_id",
        "pubsub_message_id",
        "lease_until",
        "customer_id",
        "account",
        "failed_at",
        "first_name",
        "chat_id",
        "texted_at",
        "text_message_id",
        "link_message_id",
        "reason",
        "group",
        "decline_code",
        "due_at",
        "release",
        "released_at",
        "created_at",
        "updated_at",
        "finished_at",
        "expire_at",
    ):
        value = getattr(entry, name)
        if value is not None:
            fields[name] = value
    if entry.plan is not None:
        fields["plan"] = asdict(entry.plan)
    for name in ("text_report", "link_report"):
        report: PartReport | None = getattr(entry, name)
        if report is not None:
            fields[_STORED_AS[name]] = _report_fields(report)
    if entry.action is not None:
        fields["action"] = entry.action.value
    if entry.zones:
        fields["zones"] = ",".join(entry.zones)
    if entry.paid is not None:
        paid = entry.paid
        fields.update(paid_at=paid.paid_at, paid_amount=paid.amount, paid_currency=paid.currency)
    return fields


def _changed(before: Entry | None, after: Entry) -> Fields:
    """The fields to write to turn `before` (None: no entry) into `after`."""
    old = _entry_fields(before) if before is not None else {}
    new = _entry_fields(after)
    changed = {name: value for name, value in new.items() if old.get(name) != value}
    changed.update({name: None for name in old if name not in new})
    return changed


def _report(value: Any) -> PartReport | None:
    if not isinstance(value, Mapping) or value.get("status") not in ("delivered", "failed"):
        return None
    code = value.get("code")
    return PartReport(
        value["status"] == "delivered",
        _moment(value.get("at")),
        code if isinstance(code, int) else None,
        value.get("reason"),
    )


def _report_fields(report: PartReport) -> Fields:
    # Only a failure carries Linq's code and reason.
    fields: Fields = {"status": "delivered" if report.delivered else "failed", "at": report.at}
    if not report.delivered:
        fields.update(code=report.code, reason=report.reason)
    return fields


def _payment(document: Document) -> Payment:
    fields = document.fields
    invoice_id, _ = read_document_id(document.id)
    return Payment(
        invoice_id,
        _moment(fields.get("paid_at")),
        fields.get("paid_amount"),
        fields.get("paid_currency"),
        fields.get("paid_event"),
        fields.get("pubsub_message_id") or fields.get("message_id"),
        fields.get("group"),
        fields.get("attempt"),
        fields.get("minutes_after_text"),
        fields.get("reason"),
        _moment(fields.get("recorded_at")),
        _moment(fields.get("expire_at")),
    )


def _payment_fields(payment: Payment) -> Fields:
    return {
        "paid_at": payment.paid_at,
        "paid_amount": payment.amount,
        "paid_currency": payment.currency,
        "paid_event": payment.event_id,
        "pubsub_message_id": payment.pubsub_message_id,
        "group": payment.group,
        "attempt": payment.attempt,
        "minutes_after_text": payment.minutes_after_text,
        "reason": payment.reason,
        "recorded_at": payment.recorded_at,
        "expire_at": payment.expire_at,
    }


def _state(value: Any) -> State:
    """A state as stored. One this version does not know (a later one wrote it) reads as failed,
    which any message may take over, as the previous code did with it."""
    value = _LEGACY_STATES.get(value, value)
    try:
        return State(value)
    except ValueError:
        return State.FAILED


def _action(value: Any) -> Action | None:
    """A recorded action; None for one this version does not know (a later version wrote it)."""
    try:
        return Action(value)
    except ValueError:
        return None


def _moment(value: Any) -> dt.datetime | None:
    return value if isinstance(value, dt.datetime) else None


# --- the opt-out list and the Linq events as stored ----------------------------------------------


def _opt_out_id(handle: str) -> str:
    """A handle's document id on our opt-out list. An E.164 number is its own id (as every
    entry written so far is); any other handle (an Apple ID email, which may hold `/` or `%`, or
    anything else Linq sends) is hashed, case folded as Apple IDs are, and kept as a field."""
    if _E164.fullmatch(handle):
        return handle
    return "h-" + hashlib.sha256(handle.strip().casefold().encode()).hexdigest()


def _listing(document: Document) -> Listing:
    fields = document.fields
    return Listing(
        bool(fields.get("opted_out")),
        _moment(fields.get("changed_at")),
        _moment(fields.get("heard_at")),
    )


def _line_count_id(day: str, line: str) -> str:
    """A line's count of one day: `2026-11-27_+12025550101` (an E.164 line is safe in an id)."""
    return f"{day}_{line}"


def _event_id(webhook_id: str) -> str:
    """A Linq event's document id: Linq's webhook id may hold `/` or any printable ASCII, which
    a Firestore document id cannot, so the id is hashed (and kept as a field)."""
    return "wh-" + hashlib.sha256(webhook_id.encode()).hexdigest()


def _control(document: Document) -> Control:
    fields = document.fields
    pause = None
    if fields.get("paused"):
        at = _moment(fields.get("paused_at")) or dt.datetime.fromtimestamp(0, dt.UTC)
        pause = Pause(str(fields.get("reason") or ""), str(fields.get("paused_by") or "?"), at)
    check = None
    check_at = _moment(fields.get("check_at"))
    if check_at is not None:
        verdict = fields.get("check_verdict")
        check = Check(
            check_at,
            int(fields.get("check_failures") or 0),
            int(fields.get("check_successes") or 0),
            bool(fields.get("check_complete")),
            Verdict(verdict) if verdict in set(Verdict) else None,
            fields.get("check_detail"),
        )
    return Control(pause, fields.get("resumed_by"), _moment(fields.get("resumed_at")), check)


def _control_fields(control: Control) -> Fields:
    """The whole document, every field written (None where it has no value), so a write leaves
    nothing of what it replaces."""
    pause, check = control.pause, control.check
    return {
        "paused": pause is not None,
        "reason": pause.reason if pause else None,
        "paused_by": pause.by if pause else None,
        "paused_at": pause.at if pause else None,
        "resumed_by": control.resumed_by,
        "resumed_at": control.resumed_at,
        "check_at": check.at if check else None,
        "check_failures": check.failures if check else None,
        "check_successes": check.successes if check else None,
        "check_complete": check.complete if check else None,
        "check_verdict": check.verdict.value if check and check.verdict else None,
        "check_detail": check.detail if check else None,
    }


def _event(document: Document) -> _Event:
    fields = document.fields
    return _Event(fields.get("run"), bool(fields.get("done")), _moment(fields.get("lease_until")))
