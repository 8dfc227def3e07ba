"""The recovery decision: every guard in one fixed order, as a pure function of the facts.

The workflow shell gathers the facts (the ledger entry, the invoice as it is now, the account's
lines), calls `decide`, and executes what it returns. Nothing here does I/O, so every outcome is
one row of a table test (tests/test_decide.py).

Order of the guards for a failed payment nobody has planned yet: the operator's attempt policy,
the key's mode, a readable invoice, a newer attempt with its own text, an open invoice, a live
subscription, a decline the customer can fix, a link to send, a customer, a phone, our own
opt-out list, the holdout group, texting paused, the recipient's quiet hours. Which line it goes
out from is the shell's choice (it may have to fall over to another line), recorded with the plan
before the first send. Once a plan is recorded the decision is made: a retry or a takeover only
checks that the invoice still wants paying (and, before the text, that texting is on and it is
not night), and sends what was planned.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from shared.core.attribution import HOLDOUT, TREATED
from shared.core.entry import Entry, Plan, Progress
from shared.core.errors import PermanentError
from shared.core.event import FailedPayment
from shared.core.invoice import Customer, Invoice
from shared.core.message import Templates, placeholder_values
from shared.core.money import format_amount
from shared.core.outcome import Action, Outcome, failed, sent, skipped
from shared.core.phone import to_e164
from shared.core.policy import AttemptPolicy, QuietHours
from shared.core.quiet_hours import candidate_zones, when_to_send


@dataclass(frozen=True)
class Facts:
    """Everything the decision looks at, gathered by the shell."""

    job: FailedPayment
    # The moment of the decision, from the shell's clock: the quiet hours are judged at it.
    now: datetime
    # The invoice as re-read from Stripe now; None when it was not read (see `screen`) or could
    # not be (`read_error`).
    invoice: Invoice | None = None
    read_error: PermanentError | None = None
    # The payment's own ledger entry, as its owner holds it (None: a dry run, which owns none).
    entry: Entry | None = None
    # When the recipient replied STOP, if they are on our own opt-out list (looked up for the
    # number `recipient` gives, or the recorded plan's).
    opted_out_at: datetime | None = None
    # For a message about an older attempt than the invoice's: the ledger entry of the invoice's
    # attempt, None when there is none (yet).
    newest: Entry | None = None
    # Why no new text may go out now (texting paused, or the surge guard holding it), or None.
    paused: str | None = None


class Rules(Protocol):
    """The settings the decision depends on (the recover function's settings satisfy it)."""

    @property
    def attempts(self) -> AttemptPolicy: ...

    @property
    def stripe_mode(self) -> str: ...

    @property
    def default_region(self) -> str: ...

    @property
    def templates(self) -> Templates: ...

    @property
    def action_templates(self) -> Templates: ...

    @property
    def brand(self) -> str | None: ...

    @property
    def quiet_hours(self) -> QuietHours | None: ...

    @property
    def holdout_percent(self) -> int: ...


@dataclass(frozen=True)
class Finish:
    """Nothing (more) to send: end with this outcome."""

    outcome: Outcome
    # The group drawn at the holdout point (TREATED, HOLDOUT), when the decision got that far:
    # the ledger keeps it as the entry's assignment, whatever happens next.
    group: str | None = None


@dataclass(frozen=True)
class Send:
    """Send `plan`: the text, then the link; with `chat_id` set the text already went out."""

    plan: Plan
    chat_id: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Defer:
    """Nothing now: it is night where the recipient is. Hold the payment until `due_at`, then
    decide again on the invoice as it is then."""

    outcome: Outcome
    due_at: datetime
    zones: tuple[str, ...]
    group: str | None = None


@dataclass(frozen=True)
class Hold:
    """Nothing now: texting is paused. Hold the payment until it resumes, then decide again."""

    outcome: Outcome
    group: str | None = None


Decision = Finish | Send | Defer | Hold


def screen(job: FailedPayment, rules: Rules) -> Finish | None:
    """The guards that need nothing but the message: the attempt policy, then the mode.

    The shell reads the invoice only when this returns None: an attempt that never gets a text
    needs no invoice, and a key of the other mode cannot see it.
    """
    if job.attempt_count is not None and not rules.attempts.allows(job.attempt_count):
        return _not_in_policy(job.attempt_count, rules)
    mode = "live" if job.livemode else "test"
    if mode != rules.stripe_mode:
        return Finish(
            failed(
                f"event is {mode}-mode but STRIPE_API_KEY is a {rules.stripe_mode} key; "
                "use the key of the mode the webhook endpoint belongs to"
            )
        )
    return None


def decide(facts: Facts, rules: Rules) -> Decision:
    """What to do for one failed payment, given the facts."""
    if (early := screen(facts.job, rules)) is not None:
        return early
    if facts.read_error is not None:
        return Finish(failed(facts.read_error.reason))
    invoice = facts.invoice
    if invoice is None:
        raise ValueError("decide needs the invoice once screen() lets the message through")
    if facts.entry is not None and facts.entry.progress in (Progress.PLANNED, Progress.TEXTED):
        return _resume(facts, facts.entry, invoice, rules)
    # A thin event names no attempt: the invoice's own count is the one the policy judges.
    if facts.job.attempt_count is None and not rules.attempts.allows(invoice.attempt_count):
        return _not_in_policy(invoice.attempt_count, rules)
    if (stale := _superseded(facts, invoice, rules)) is not None:
        return stale
    if (closed := _closed(invoice)) is not None:
        return Finish(closed)
    if (retried := _processor_error(invoice)) is not None:
        return Finish(retried)
    if invoice.hosted_invoice_url is None:
        return Finish(failed("open invoice has no hosted_invoice_url to link to"))
    customer = invoice.customer
    if customer.deleted:
        return Finish(skipped(Action.NO_PHONE, "customer was deleted"))
    if not customer.phone or not customer.phone.strip():
        return Finish(skipped(Action.NO_PHONE, "no phone on file"))
    phone = recipient(invoice, rules)
    if phone is None:
        return Finish(skipped(Action.NO_PHONE, "phone on file is not a valid number"))
    if facts.opted_out_at is not None:
        return Finish(skipped(Action.OPTED_OUT, _replied_stop(facts.opted_out_at)))
    if in_holdout(invoice.id, rules.holdout_percent):
        return Finish(
            skipped(
                Action.HOLDOUT,
                f"in the holdout group (HOLDOUT_PERCENT={rules.holdout_percent}): kept untexted "
                "to measure what the texts cause",
            ),
            HOLDOUT,
        )
    # Past the draw: treated, whatever happens next (a pause, the night, Linq's check and
    # refusals).
    if facts.paused is not None:
        return Hold(Outcome(Action.PAUSED, reason=facts.paused), group=TREATED)
    if (night := _night(phone, customer, facts.now, rules)) is not None:
        return replace(night, group=TREATED)
    return Send(Plan(phone, render_text(invoice, rules), invoice.hosted_invoice_url), group=TREATED)


def recipient(invoice: Invoice, rules: Rules) -> str | None:
    """The customer's number in E.164, or None when there is none that is valid."""
    customer = invoice.customer
    if customer.deleted or not customer.phone:
        return None
    return to_e164(customer.phone, (customer.country, rules.default_region))


def _replied_stop(at: datetime) -> str:
    return f"replied STOP on {at:%Y-%m-%d %H:%M} UTC (our own opt-out list)"


def render_text(invoice: Invoice, rules: Rules) -> str:
    """The text in the customer's language, with the amount in the invoice's currency: asking
    the customer to confirm the payment when it waits for that (3-D Secure), as the invoice is
    now, whichever event brought it."""
    customer = invoice.customer
    templates = rules.action_templates if invoice.needs_action else rules.templates
    template = templates.for_locales(customer.preferred_locales)
    amount = format_amount(invoice.amount_remaining, invoice.currency)
    return template.render(
        placeholder_values(customer.name, invoice.description, amount, rules.brand)
    )


def in_holdout(invoice_id: str, percent: int) -> bool:
    """Whether the invoice is in the holdout group: a stable hash of its id (not Python's
    `hash`, which changes between processes), so it stays in its group across attempts, replays
    and instances, in hundredths of a percent."""
    bucket = int.from_bytes(hashlib.sha256(invoice_id.encode()).digest()[:8], "big") % 10_000
    return bucket < percent * 100


def _night(phone: str, customer: Customer, now: datetime, rules: Rules) -> Defer | None:
    """A deferral while it is night in any of the recipient's zones (the number's, and its
    address's state or country), else None.

    A deferral already due (a partial one, when no moment suits every zone; a released payment
    being decided again) lets the text go now.
    """
    zones = candidate_zones(phone, customer.country, customer.state)
    deferral = when_to_send(now, rules.quiet_hours, zones)
    if deferral is None or deferral.due_at <= now:
        return None
    outcome = Outcome(Action.DEFERRED, reason=deferral.reason, due_at=_utc(deferral.due_at))
    return Defer(outcome, deferral.due_at, deferral.zones)


def _not_in_policy(attempt: int, rules: Rules) -> Finish:
    return Finish(
        skipped(Action.POLICY, f"attempt {attempt} is not in TEXT_ON_ATTEMPTS={rules.attempts}")
    )


def _superseded(facts: Facts, invoice: Invoice, rules: Rules) -> Finish | None:
    """An event for an older attempt than the invoice's, when the newer attempt has its own text
    (sent, or to be sent): one text, not two. A newer attempt that gets none (outside
    TEXT_ON_ATTEMPTS, or ended without one) leaves the older attempt to be judged as usual."""
    attempt = facts.job.attempt_count
    if attempt is None or attempt >= invoice.attempt_count:
        return None
    if not _texted(invoice, facts.newest, rules):
        return None
    return Finish(
        skipped(
            Action.SUPERSEDED,
            f"attempt {attempt} is superseded: the invoice is at attempt {invoice.attempt_count}",
        )
    )


def _texted(invoice: Invoice, entry: Entry | None, rules: Rules) -> bool:
    """Whether the invoice's own attempt, recorded as `entry` (None: not yet), was or will be
    texted."""
    if entry is not None:
        if entry.chat_id is not None:
            return True
        if entry.ended is not None:
            return entry.ended is Action.SENT
        if entry.plan is not None:
            return True  # decided, and being sent
    # Its own event is on its way, or its run is deciding: the policy is the first thing it
    # asks, and a decline that is not the customer's gets no text either.
    return rules.attempts.allows(invoice.attempt_count) and _processor_error(invoice) is None


def _closed(invoice: Invoice) -> Outcome | None:
    """Why the invoice no longer wants a text, or None while it does."""
    if (why := invoice.why_not_open) is not None:
        return skipped(Action.NOT_OPEN, why)
    if invoice.subscription_ended:
        return skipped(
            Action.CANCELED,
            f"subscription {invoice.subscription_id} is {invoice.subscription_status}",
        )
    return None


def _processor_error(invoice: Invoice) -> Outcome | None:
    """Why the latest payment is not the customer's to fix, while Stripe has a retry of it
    scheduled (its retries get past the processor's and the issuer's troubles); None otherwise.
    Once Stripe has stopped retrying, the customer is the one left to pay: they get the text."""
    payment = invoice.payment
    retry = invoice.next_payment_attempt
    if payment is None or not payment.processor_error or retry is None:
        return None
    return skipped(
        Action.PROCESSOR_ERROR,
        f"decline code {payment.decline_code} is not the customer's to fix; Stripe retries at "
        f"{_utc(datetime.fromtimestamp(retry, UTC))}",
    )


def _utc(moment: datetime) -> str:
    """A moment in UTC as result lines write it: 2026-11-27T14:00:00Z."""
    return moment.isoformat().replace("+00:00", "Z")


def _resume(facts: Facts, entry: Entry, invoice: Invoice, rules: Rules) -> Decision:
    """A recorded plan is carried out as recorded, unless the invoice stopped wanting it or the
    recipient replied STOP since. A text not sent yet is also held to the guards of time: it is
    superseded once the invoice failed again and the newer attempt has its own text (one text,
    not two), it waits while texting is paused, and it waits for the morning when the retry comes
    after nightfall (Pub/Sub retries through a Linq outage for hours). A link whose text went out
    follows it, whatever the attempt, the pause and the hour."""
    assert entry.plan is not None
    closed = _closed(invoice)
    if closed is None and facts.opted_out_at is not None:
        closed = skipped(Action.OPTED_OUT, _replied_stop(facts.opted_out_at))
    if closed is None:
        if entry.progress is Progress.PLANNED:
            if (stale := _superseded(facts, invoice, rules)) is not None:
                return stale
            if facts.paused is not None:
                return Hold(Outcome(Action.PAUSED, reason=facts.paused))
            night = _night(entry.plan.to, invoice.customer, facts.now, rules)
            if night is not None:
                return night
        return Send(entry.plan, entry.chat_id)
    if entry.progress is Progress.PLANNED:
        return Finish(closed)
    # The text went out before the invoice was paid (or its subscription ended, or the recipient
    # said STOP): it counts as sent, and the link is not sent after the fact.
    return Finish(
        replace(sent(entry.chat_id, entry.plan.text), reason=f"link not sent: {closed.reason}")
    )
