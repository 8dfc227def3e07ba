"""What the product does with what Linq tells it: delivery, replies, STOP, line health.

One event, one line: `handle` returns it (and the team's Slack note, if any) for the entry point
to write. Each webhook id is acted on once (the ledger records the ids handled); a retryable
failure forgets the claim first, so the redelivery acts on it at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.adapters.ledger import ACTIVE, Ledger
from shared.core.errors import RetryableError
from shared.core.linq_events import Delivery, LineChange, Reply, is_opt_out, read_event
from shared.core.log import INFO, WARNING, mask_phone
from shared.core.outcome import Action
from shared.core.phone import region_of
from shared.core.quote import quote

# A claim on an event this old that never finished (its run died) is taken over.
STALE_CLAIM = dt.timedelta(minutes=5)


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
    """Act on one Linq event; raises RetryableError when a retry may succeed."""
    if not ledger.claim_event(webhook_id, STALE_CLAIM):
        said = Said(INFO, "duplicate Linq event ignored")
    else:
        try:
            said = _act(ledger, event, forget_lines, now)
        except BaseException:
            ledger.release_event(webhook_id)
            raise
        ledger.finish_event(webhook_id)
    if "action" not in said.fields:
        said = replace(said, fields={**said.fields, "action": Action.IGNORED.value})
    return said


def _act(
    ledger: Ledger, event: Mapping[str, Any], forget_lines: Callable[[], None], now: dt.datetime
) -> Said:
    fact = read_event(event)
    if isinstance(fact, Delivery):
        return _delivery(ledger, fact)
    if isinstance(fact, Reply):
        return _reply(ledger, fact, now)
    if isinstance(fact, LineChange):
        return _line(fact, forget_lines)
    return Said(INFO, f"ignored: Linq event {event.get('event_type')!r} is not acted upon")


def _delivery(ledger: Ledger, fact: Delivery) -> Said:
    sent = _sent(ledger, fact)
    if sent is None:
        return Said(INFO, "ignored: a message the product did not send")
    entry, part = sent
    recorded = ledger.record_delivery(entry, part, fact.delivered, fact.code, fact.reason)
    invoice_id, attempt = entry.rsplit("-", 1)
    where = {"invoice_id": invoice_id, "attempt": int(attempt), "part": part}
    if recorded is None:
        return Said(INFO, "ignored: no ledger entry for the message's key", where)
    if not recorded:
        return Said(INFO, "ignored: delivered already (a delivery is final)", where)
    if fact.delivered:
        return Said(INFO, "delivered", {**where, "action": Action.DELIVERED.value})
    failure = {"code": fact.code, "reason": fact.reason, "action": Action.DELIVERY_FAILED.value}
    return Said(WARNING, "delivery failed", {**where, **failure})


def _sent(ledger: Ledger, fact: Delivery) -> tuple[str, str] | None:
    """The ledger entry and part of the message: by the idempotency key the product set when the
    event carries it, else by the message id recorded at send time."""
    if fact.entry is not None and fact.part is not None:
        return fact.entry, fact.part
    if fact.message_id is None:
        return None
    found = ledger.sent_message(fact.message_id)
    if found is None and fact.chat_id is not None and _sending_in(ledger, fact.chat_id):
        # A chat of ours whose run has not recorded the message yet (Linq can report a failure
        # within moments of the send): try again shortly rather than lose it.
        raise RetryableError("the run that sent this message has not recorded it yet")
    return found


def _sending_in(ledger: Ledger, chat_id: str) -> bool:
    return any(fields.get("state") == ACTIVE for _, _, fields in ledger.entries_of_chat(chat_id))


def _reply(ledger: Ledger, fact: Reply, now: dt.datetime) -> Said:
    # A STOP recovered late is still the person's word (its `sent_at` keeps a later word winning).
    if fact.group or (fact.reconciled and not is_opt_out(fact.text)):
        return Said(INFO, "ignored: reconciled history or a group chat", {"chat_id": fact.chat_id})
    if fact.sender is None:
        return Said(INFO, "ignored: a message without a sender")
    sent_at = fact.sent_at or now
    entries = ledger.entries_of_chat(fact.chat_id) if fact.chat_id else []
    if not entries:
        # A run may have sent the text without recording the chat yet (it is between the send and
        # the write, or died there and waits for a takeover): its chat is ours all the same.
        entries = [
            found
            for found in ledger.entries_to(fact.sender)
            if found[2].get("state") == ACTIVE and not found[2].get("chat_id")
        ]
    latest = max(entries, key=lambda e: e[2].get("created_at") or now, default=None)
    ours = latest[2] if latest is not None else {}
    where = {
        "invoice_id": ours.get("invoice_id"),
        "customer_id": ours.get("customer_id"),
        "chat_id": fact.chat_id,
    }
    name = ours.get("first_name") or "the customer"
    who = f"{name} ({ours.get('customer_id')}, invoice {ours.get('invoice_id')})"
    if is_opt_out(fact.text):
        # The person may answer from another handle than the number we texted (an iMessage reply
        # from their Apple ID email) or one written otherwise: the chat's texted numbers count too.
        handles = _handles(fact.sender, entries)
        if latest is None:
            return Said(INFO, "ignored: STOP on a chat the product did not open", where)
        context = {"chat_id": fact.chat_id, **{k: v for k, v in where.items() if k != "chat_id"}}
        changed = any([ledger.set_opt_out(h, True, sent_at, context) for h in handles])
        action = Action.OPT_OUT_RECORDED.value
        note = (
            f"{who} replied STOP: no more texts to {mask_phone(fact.sender)}" if changed else None
        )
        return Said(INFO, "replied STOP", {**where, "action": action, "changed": changed}, note)
    # Any other word from the person lifts the STOP, as Linq does: no START needed.
    # Only the sender's own handle: the chat's other numbers stay as they are, so a message that is
    # not the person's (our own line's, should Linq report one) never lifts their STOP.
    lifted = ledger.set_opt_out(fact.sender, False, sent_at, {"chat_id": fact.chat_id})
    if latest is None:
        if lifted:
            return Said(
                INFO, "wrote again: off our opt-out list", {"action": Action.OPT_OUT_LIFTED.value}
            )
        return Said(INFO, "ignored: a reply on a chat the product did not open")
    # A number written the national way is read as the texted number's country writes it.
    said = quote(fact.text, region_of(_texted_to(ours)) or region_of(fact.sender) or "US")
    fields = {
        **where,
        "action": Action.REPLY_RECEIVED.value,
        "length": len(fact.text),
        "opt_out_lifted": lifted,
    }
    # The text goes to the team only, never to a log line.
    return Said(INFO, "reply received", fields, f'Reply from {who}: "{said}"')


def _handles(sender: str, entries: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """The sender's handle and the numbers the product texted in the chat (its entries' plans)."""
    texted = [to for _, _, fields in entries if (to := _texted_to(fields)) is not None]
    return list(dict.fromkeys([sender, *texted]))


def _texted_to(fields: Mapping[str, Any]) -> str | None:
    """The number an entry's recorded plan texts, if it has one."""
    plan = fields.get("plan")
    to = plan.get("to") if isinstance(plan, Mapping) else None
    return to if isinstance(to, str) else None


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
