"""What the product does with what Linq tells it: delivery, replies, STOP, line health.

One event, one line: `handle` returns it (and the team's Slack note, if any) for the entry point
to write. Each webhook id is acted on once: one run at a time owns it through a lease in the
ledger and marks it done once it has acted. A run that fails releases its lease, so the
redelivery acts at once; one that dies leaves a lease that runs out, and the next delivery acts.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.adapters.ledger import Ledger
from shared.core.entry import Entry, EntryKey, Part, PartReport, State
from shared.core.errors import RetryableError
from shared.core.linq_events import (
    Delivery,
    LineChange,
    Reply,
    Word,
    failed_part,
    list_change,
    read_event,
)
from shared.core.log import INFO, WARNING, mask_phone, redact
from shared.core.outcome import Action
from shared.core.phone import region_of
from shared.core.quote import quote


@dataclass(frozen=True)
class Said:
    """The one line an event gets, and the note for the team when there is one."""

    severity: str
    message: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    note: str | None = None


def handle(
    ledger: Ledger,
    webhook_id: str,
    event: Mapping[str, Any],
    forget_lines: Callable[[], None],
    now: dt.datetime,
) -> Said:
    """Act on one Linq event heard at `now`; raises RetryableError when a retry may succeed (and
    while another run holds the event: it may never finish)."""
    claim = ledger.claim_event(webhook_id, uuid.uuid4().hex)
    if claim is None:
        said = Said(INFO, "duplicate Linq event ignored")
    else:
        try:
            said = _act(ledger, event, forget_lines, now)
        except BaseException:
            ledger.end_event_lease(claim)
            raise
        ledger.finish_event(claim)
    if "action" not in said.fields:
        said = replace(said, fields={**said.fields, "action": Action.IGNORED.value})
    return said


def _act(
    ledger: Ledger, event: Mapping[str, Any], forget_lines: Callable[[], None], now: dt.datetime
) -> Said:
    fact = read_event(event)
    if isinstance(fact, Delivery):
        return _delivery(ledger, fact, now)
    if isinstance(fact, Reply):
        return _reply(ledger, fact, now)
    if isinstance(fact, LineChange):
        return _line(fact, forget_lines)
    return Said(INFO, f"ignored: Linq event {event.get('event_type')!r} is not acted upon")


# --- deliveries ---------------------------------------------------------------------------------


def _delivery(ledger: Ledger, fact: Delivery, now: dt.datetime) -> Said:
    said = _delivery_report(ledger, fact, now)
    if not fact.chat_opted_out or fact.chat_id is None:
        return said
    # Linq's mark on the chat rides on every message event: an opt-out whatever the message.
    entries = ledger.entries_of_chat(fact.chat_id)
    if not entries:
        return said
    person = _Person.of(entries, None)
    changed = person.listed(ledger, True, fact.marked_at or now, fact.chat_id)
    note = person.opted_out_note(" (Linq marks the chat opted out)", None) if changed else None
    return replace(said, fields={**said.fields, "opt_out_recorded": changed}, note=note)


def _delivery_report(ledger: Ledger, fact: Delivery, now: dt.datetime) -> Said:
    sent = _sent(ledger, fact)
    if sent is None:
        return Said(INFO, "ignored: a message the product did not send")
    key, part = sent
    if part is None:
        return Said(INFO, "ignored: every message sent into the chat was delivered")
    report = (
        PartReport(True, now) if fact.delivered else PartReport(False, now, fact.code, fact.reason)
    )
    recorded = ledger.record_report(key, part, report)
    where = {"invoice_id": key.invoice_id, "attempt": key.attempt, "part": part.value}
    if recorded is None:
        return Said(INFO, "ignored: no ledger entry for the message's key", where)
    if not recorded:
        return Said(INFO, "ignored: delivered already (a delivery is final)", where)
    if fact.delivered:
        return Said(INFO, "delivered", {**where, "action": Action.DELIVERED.value})
    failure = {"code": fact.code, "reason": fact.reason, "action": Action.DELIVERY_FAILED.value}
    return Said(WARNING, "delivery failed", {**where, **failure})


def _sent(ledger: Ledger, fact: Delivery) -> tuple[EntryKey, Part | None] | None:
    """The ledger entry and part of the message: by the idempotency key the product set when the
    event carries it, else by Linq's message id recorded at send time, else (a `message.failed`
    without a message id) by its chat and the steps the entry recorded."""
    if fact.key is not None and fact.part is not None:
        return fact.key, fact.part
    if fact.message_id is None:
        return _sent_into(ledger, fact.chat_id) if fact.chat_id is not None else None
    found = ledger.sent_message(fact.message_id)
    if (
        found is None
        and fact.chat_id is not None
        and _sending_in(ledger.entries_of_chat(fact.chat_id))
    ):
        # A chat of ours whose run has not recorded the message yet (Linq can report a failure
        # within moments of the send): try again shortly rather than lose it.
        raise RetryableError("the run that sent this message has not recorded it yet")
    return (found[0].key, found[1]) if found is not None else None


def _sent_into(ledger: Ledger, chat_id: str) -> tuple[EntryKey, Part | None] | None:
    """The latest entry whose text went into `chat_id`, and the part a failure without a message
    id must be about (None when all that went out was delivered)."""
    entries = ledger.entries_of_chat(chat_id)
    if not entries:
        return None
    if _sending_in(entries):
        # Its run is still sending: which part failed is known once it has recorded both.
        raise RetryableError("the run sending into this chat has not finished yet")
    latest = max(entries, key=_texted_at)
    went_out = [(part, None if r is None else r.delivered) for part, r in latest.went_out()]
    return latest.key, failed_part(went_out)


def _sending_in(entries: list[Entry]) -> bool:
    return any(entry.state is State.ACTIVE for entry in entries)


def _texted_at(entry: Entry) -> dt.datetime:
    moment = entry.texted_at or entry.created_at
    return moment if moment is not None else dt.datetime.min.replace(tzinfo=dt.UTC)


# --- replies and STOP ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Person:
    """Whom a chat's messages come from, as our ledger knows them: the latest entry that texted
    them, and their handles (the one the message came from, and the numbers we texted in the
    chat)."""

    latest: Entry
    handles: list[str]

    @classmethod
    def of(cls, entries: list[Entry], from_handle: str | None) -> _Person:
        texted = [to for entry in entries if (to := entry.texted_to) is not None]
        handles = list(dict.fromkeys([*([from_handle] if from_handle else []), *texted]))
        return cls(max(entries, key=_texted_at), handles)

    @property
    def where(self) -> dict[str, Any]:
        return {"invoice_id": self.latest.key.invoice_id, "customer_id": self.latest.customer_id}

    @property
    def who(self) -> str:
        name = self.latest.first_name or "the customer"
        return f"{name} ({self.latest.customer_id}, invoice {self.latest.key.invoice_id})"

    @property
    def number(self) -> str | None:
        """The number we texted them at (the latest entry's), else their first handle."""
        return self.latest.texted_to or (self.handles[0] if self.handles else None)

    def listed(self, ledger: Ledger, opted_out: bool, at: dt.datetime, chat_id: str | None) -> bool:
        """Every handle of theirs on our opt-out list (or off it) as of `at`; whether the list
        changed."""
        context = {"chat_id": chat_id, **self.where}
        return any([ledger.set_opt_out(h, opted_out, at, context) for h in self.handles])

    def opted_out_note(self, how: str, said: str | None) -> str:
        quoted = f': "{said}"' if said is not None else ""
        return f"{self.who} opted out{how}, no more texts to {_masked(self.number)}{quoted}"


def _reply(ledger: Ledger, fact: Reply, now: dt.datetime) -> Said:
    where: dict[str, Any] = {"chat_id": fact.chat_id}
    if fact.group:
        return Said(INFO, "ignored: reconciled history or a group chat", where)
    word = list_change(fact)
    if word is None and fact.outbound:
        return Said(INFO, "ignored: a message our own line sent", where)
    # History recovered late is not a reply to quote, but its word for the list still counts
    # (its `sent_at` keeps a later word winning).
    if word is None and fact.reconciled:
        return Said(INFO, "ignored: reconciled history or a group chat", where)
    # Our own line is never one of the person's handles.
    from_handle = None if fact.outbound else fact.from_handle
    entries = _entries_of(ledger, fact.chat_id, from_handle)
    at = (word.at if word else None) or fact.sent_at or now
    if not entries:
        return _stranger(ledger, word, from_handle, at, where)
    person = _Person.of(entries, from_handle)
    where.update(person.where)
    region = region_of(person.number) or region_of(fact.from_handle) or "US"
    said = None if fact.outbound else quote(fact.quote, region)
    if word is not None and word.opted_out:
        changed = person.listed(ledger, True, at, fact.chat_id)
        how = " (Linq marks the chat opted out)" if fact.chat_opted_out else ""
        fields = {**where, "action": Action.OPT_OUT_RECORDED.value, "changed": changed}
        return Said(
            INFO, "opted out", fields, person.opted_out_note(how, said) if changed else None
        )
    if word is not None and person.listed(ledger, False, at, fact.chat_id):
        number = _masked(person.number)
        note = f'{person.who} wrote "{said}": off our opt-out list, {number} may be texted again'
        return Said(INFO, "opted in again", {**where, "action": Action.OPT_OUT_LIFTED.value}, note)
    # Anything else leaves the list as it is: only START or UNSTOP lifts a STOP.
    listed = person.number is not None and ledger.opted_out_at(person.number) is not None
    fields = {
        **where,
        "action": Action.REPLY_RECEIVED.value,
        "length": len(fact.text),
        "opted_out": listed,
    }
    still = " (still opted out: only START or UNSTOP lifts it)" if listed else ""
    # The text goes to the team only, never to a log line.
    return Said(INFO, "reply received", fields, f'Reply from {person.who}: "{said}"{still}')


def _stranger(
    ledger: Ledger,
    word: Word | None,
    from_handle: str | None,
    at: dt.datetime,
    where: dict[str, Any],
) -> Said:
    """A message on a chat no entry of ours texted into, from a handle no entry texted."""
    lifted = (
        word is not None
        and not word.opted_out
        and from_handle is not None
        and ledger.set_opt_out(from_handle, False, at, where)
    )
    if lifted:
        return Said(
            INFO, "wrote START: off our opt-out list", {"action": Action.OPT_OUT_LIFTED.value}
        )
    if word is not None and word.opted_out:
        return Said(INFO, "ignored: STOP on a chat the product did not open", where)
    return Said(INFO, "ignored: a reply on a chat the product did not open", where)


def _entries_of(ledger: Ledger, chat_id: str | None, from_handle: str | None) -> list[Entry]:
    """The entries whose text went into the chat; else those whose plan texts the handle the
    message came from, in any state: a run that sent the text but never recorded its chat
    (Linq's answer was lost, or the run died) may since have been deferred, failed or ended, and
    its chat is ours all the same."""
    entries = ledger.entries_of_chat(chat_id) if chat_id else []
    if not entries and from_handle is not None:
        entries = ledger.entries_to(from_handle)
    return entries


def _masked(handle: str | None) -> str:
    return (
        mask_phone(handle) if handle and handle.startswith("+") else redact(handle or "")
    ) or "?"


# --- line health --------------------------------------------------------------------------------


def _line(fact: LineChange, forget_lines: Callable[[], None]) -> Said:
    change = (
        f"status {fact.status[0]} → {fact.status[1]}, reputation {fact.reputation[0]} → "
        f"{fact.reputation[1]}"
    )
    where = {"line": fact.line, "change": change}
    if not fact.worrying:
        return Said(INFO, "sending line updated", {**where, "action": Action.LINE_HEALTH.value})
    # This instance reads the line list afresh (a reputation now CRITICAL is never chosen).
    forget_lines()
    note = f"Linq line {mask_phone(fact.line)} got worse: {change}"
    return Said(WARNING, "sending line worse", {**where, "action": Action.LINE_HEALTH.value}, note)
