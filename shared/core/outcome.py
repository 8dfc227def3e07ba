"""The closed set of outcomes of one recovery run and the JSON result line that reports it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TextIO

from shared.core.decline import LatestPayment
from shared.core.log import ERROR, INFO, WARNING, log, mask_phone
from shared.core.sms import SmsCost, sms_cost


class Action(enum.StrEnum):
    """What happened to one failed payment; the only values `action` ever takes."""

    SENT = "sent"
    NO_PHONE = "skipped:no_phone"
    UNREACHABLE = "skipped:unreachable"
    NOT_OPEN = "skipped:not_open"
    CANCELED = "skipped:canceled"
    OPTED_OUT = "skipped:opted_out"
    POLICY = "skipped:policy"
    SUPERSEDED = "skipped:superseded"
    ALREADY_TEXTED = "skipped:already_texted"
    HOLDOUT = "skipped:holdout"
    # A decline that is the processor's or the issuer's, not the customer's: Stripe retries it.
    PROCESSOR_ERROR = "skipped:processor_error"
    # A connected account's event that STRIPE_CONNECT_ACCOUNTS does not name (the ingest's line).
    ACCOUNT_NOT_ENABLED = "skipped:account_not_enabled"
    DEFERRED = "deferred:quiet_hours"
    # Texting is paused (`./dev pause`, or the surge guard): held until it resumes.
    PAUSED = "deferred:paused"
    # Not an end of a failed payment but a later fact about it: the invoice was paid.
    RECOVERED = "recovered"
    # What Linq told us afterwards (the linq_event subscriber's lines).
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"
    REPLY_RECEIVED = "reply_received"
    OPT_OUT_RECORDED = "opt_out_recorded"
    OPT_OUT_LIFTED = "opt_out_lifted"
    LINE_HEALTH = "line_health"
    # A Linq event with nothing to act on (a duplicate, history, a message we did not send).
    IGNORED = "ignored"
    FAILED = "failed"
    DRY_RUN = "dry_run"


# The log summary an operator sees for each action.
_MESSAGES = {
    Action.SENT: "sent",
    Action.NO_PHONE: "skipped: no phone on file",
    Action.UNREACHABLE: "skipped: unreachable",
    Action.NOT_OPEN: "skipped: invoice not open",
    Action.CANCELED: "skipped: subscription canceled",
    Action.OPTED_OUT: "skipped: opted out",
    Action.POLICY: "skipped: attempt not in TEXT_ON_ATTEMPTS",
    Action.SUPERSEDED: "skipped: a newer attempt superseded it",
    Action.ALREADY_TEXTED: "skipped: already texted for this attempt",
    Action.HOLDOUT: "skipped: holdout group",
    Action.PROCESSOR_ERROR: "skipped: not the customer's to fix",
    Action.ACCOUNT_NOT_ENABLED: "skipped: connected account not enabled",
    Action.DEFERRED: "deferred: quiet hours at the recipient",
    Action.PAUSED: "deferred: texting is paused",
    Action.RECOVERED: "recovered",
    Action.DELIVERED: "delivered",
    Action.DELIVERY_FAILED: "delivery failed",
    Action.REPLY_RECEIVED: "reply received",
    Action.OPT_OUT_RECORDED: "replied STOP: on our own opt-out list",
    Action.OPT_OUT_LIFTED: "wrote again: off our own opt-out list",
    Action.LINE_HEALTH: "sending line worse",
    Action.IGNORED: "ignored",
    Action.FAILED: "failed",
    Action.DRY_RUN: "dry run",
}


@dataclass(frozen=True)
class Outcome:
    """The end of one run: an action, and either the chat it went to or the reason it did not.

    A dry run also says what a live run would have done (`would_be`), and, once it found a
    usable number, the text it would have sent to it. A text sent, or a dry run's text, comes
    with its `cost` on SMS.
    """

    action: Action
    reason: str | None = None
    chat_id: str | None = None
    would_be: Action | None = None
    text: str | None = None
    phone: str | None = None
    # When a deferred payment becomes due (UTC, ISO 8601).
    due_at: str | None = None
    cost: SmsCost | None = None

    @property
    def message(self) -> str:
        if self.would_be is not None:
            return f"{_MESSAGES[self.action]}: {self.would_be}"
        return _MESSAGES[self.action]

    @property
    def severity(self) -> str:
        if self.action is Action.FAILED:
            return ERROR
        # A dry run that would fail is worth noticing, but nothing has failed yet.
        return WARNING if self.would_be is Action.FAILED else INFO


def sent(chat_id: str, text: str | None = None) -> Outcome:
    """The text went out in `chat_id`; given `text`, the outcome carries its cost on SMS (the
    text itself stays out of a live run's log)."""
    return Outcome(Action.SENT, chat_id=chat_id, cost=sms_cost(text) if text is not None else None)


def skipped(action: Action, reason: str) -> Outcome:
    return Outcome(action, reason=reason)


def failed(reason: str) -> Outcome:
    return Outcome(Action.FAILED, reason=reason)


def dry_run(would_be: Outcome) -> Outcome:
    """A dry run's outcome: the action a live run would have taken and why, as the reason, with
    the text it would have sent and its cost on SMS; the number is kept masked only."""
    reason = would_be.action.value
    if would_be.reason is not None:
        reason = f"{reason}: {would_be.reason}"
    return Outcome(
        Action.DRY_RUN,
        reason=reason,
        would_be=would_be.action,
        text=would_be.text,
        phone=mask_phone(would_be.phone),
        due_at=would_be.due_at,
        cost=sms_cost(would_be.text) if would_be.text is not None else None,
    )


def log_result(
    outcome: Outcome,
    *,
    invoice_id: str,
    customer_id: str | None,
    event_id: str | None,
    attempt: int | None = None,
    account: str | None = None,
    group: str | None = None,
    payment: LatestPayment | None = None,
    event_type: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Print the run's one result line: `chat_id` only when sent, `reason` for everything else
    (and for a text whose link did not follow), for a dry run that got as far as a usable
    number, the masked `phone` and the `text`, with a text its SMS `segments` and `encoding`,
    once the payment reached the holdout draw, the `group` it was assigned (treated or
    holdout), and once the invoice was read, its latest payment's `decline_code` and
    `payment_status` (its PaymentIntent's), and the Stripe `event_type` that brought it."""
    cost = outcome.cost
    log(
        outcome.severity,
        outcome.message,
        stream=stream,
        invoice_id=invoice_id,
        customer_id=customer_id,
        attempt=attempt,
        action=outcome.action.value,
        chat_id=outcome.chat_id if outcome.action is Action.SENT else None,
        reason=outcome.reason,
        phone=outcome.phone,
        text=outcome.text,
        segments=cost.segments if cost is not None else None,
        encoding=cost.encoding if cost is not None else None,
        due_at=outcome.due_at,
        group=group,
        decline_code=payment.decline_code if payment is not None else None,
        payment_status=payment.status if payment is not None else None,
        event_id=event_id,
        event_type=event_type,
        account=account,
    )


def log_recovery(
    *,
    invoice_id: str,
    customer_id: str | None,
    attempt: int | None,
    amount: int,
    currency: str,
    minutes_after_text: float | None,
    group: str,
    reason: str | None,
    event_id: str,
    account: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """The result line of a paid invoice the ledger knows: what was paid, and how it relates to
    the texts (`group` as assigned at the holdout draw: treated, holdout, or not_assigned when
    none of its failed payments reached it)."""
    log(
        INFO,
        _MESSAGES[Action.RECOVERED],
        stream=stream,
        invoice_id=invoice_id,
        customer_id=customer_id,
        attempt=attempt,
        action=Action.RECOVERED.value,
        amount=amount,
        currency=currency,
        minutes_after_text=minutes_after_text,
        group=group,
        reason=reason,
        event_id=event_id,
        account=account,
    )
