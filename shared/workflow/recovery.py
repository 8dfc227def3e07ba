"""The recovery shell: gather the facts, ask `decide`, carry out the decision step by step.

One failed payment is one ledger entry. A run claims it (a lease), reads the invoice, whether
texting is on, the surge guard's count and today's count of each line in parallel, asks the pure
decision what to do (and, for a new text, the surge guard), and then either records an outcome or
carries out a plan: record the plan ∥ check the recipient, send the text, send the link ∥ record
the chat, record the outcome. Each send is a recovery point, so a retry or a takeover resumes
where the last owner stopped, with the recorded plan; each message sent is counted against its
line's daily limit beside the step that follows it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import TypeVar

from shared.adapters.ledger import Lease, Ledger
from shared.adapters.linq import LinqClient, Sent
from shared.adapters.stripe_gateway import StripeGateway
from shared.core.clock import Clock, utc_now
from shared.core.decide import Decision, Defer, Facts, Finish, Hold, Send, decide, recipient, screen
from shared.core.decline import LatestPayment
from shared.core.entry import Entry, EntryKey, Holding, Part, Plan, holding
from shared.core.errors import (
    LeaseLostError,
    LineIneligibleError,
    NotFoundError,
    OptedOutError,
    PermanentError,
    RetryableError,
    UnreachableError,
)
from shared.core.event import FailedPayment
from shared.core.invoice import Invoice
from shared.core.log import WARNING, log, mask_phone
from shared.core.message import first_name
from shared.core.outcome import Action, Outcome, dry_run, failed, sent, skipped
from shared.core.sender import LineLoad, pick_sender
from shared.core.sms import sms_cost
from shared.workflow.settings import RecoverSettings
from shared.workflow.texting import Texting

U = TypeVar("U")


@dataclass(frozen=True)
class RunResult:
    """What one run did, for its result line."""

    invoice_id: str
    customer_id: str | None
    attempt: int | None
    outcome: Outcome
    # The entry's assignment at the holdout draw, once it reached it.
    group: str | None = None
    # The invoice's latest payment as read (why it failed), when the invoice was read.
    payment: LatestPayment | None = None
    # What the team must hear beside the outcome's note (the surge guard's alerts).
    alerts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ignored:
    """A message that gets no result line: another run owns, or has finished, its payment."""

    message: str
    key: str
    owner_event: str | None = None
    state: str | None = None


class Recovery:
    """Runs the workflow with one instance's settings, clients and clock."""

    def __init__(
        self,
        settings: RecoverSettings,
        stripe: StripeGateway,
        linq: LinqClient,
        ledger: Ledger,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._stripe = stripe
        self._linq = linq
        self._ledger = ledger
        self._clock = clock
        self.texting = Texting(ledger, stripe, settings.surge, clock)
        # Independent calls run side by side: the claim, the invoice read, the control document,
        # the surge guard's count, today's line counts and (on a cold instance) the line list;
        # later the plan record and the recipient check, the link and its record, and the count
        # of each message sent.
        self._pool = ThreadPoolExecutor(max_workers=7, thread_name_prefix="recover")

    def run(self, job: FailedPayment, pubsub_message_id: str) -> RunResult | Ignored:
        """The outcome for `job`, delivered as Pub/Sub message `pubsub_message_id`, or why this
        message gets none.

        Raises RetryableError when a retry may succeed (having ended its lease first).
        """
        if self._settings.dry_run:
            return self._dry_run(job)
        return self._recover(job, pubsub_message_id)

    # --- facts ------------------------------------------------------------------------------

    def _read_invoice(self, job: FailedPayment) -> tuple[Invoice | None, PermanentError | None]:
        """The invoice as it is now, or the permanent reason it cannot be read."""
        try:
            return self._stripe.invoice(job.invoice_id, job.account), None
        except NotFoundError as exc:
            mode = "live" if job.livemode else "test"
            return None, PermanentError(f"invoice not found in {mode} mode: {exc.reason}")
        except PermanentError as exc:
            return None, exc

    def _facts(
        self, job: FailedPayment, count: bool
    ) -> tuple[Facts, Callable[[], LineLoad], Future[int] | None]:
        """The invoice and whether texting is paused, unless the message alone already decides
        (policy, mode); read beside them, how many messages each line has sent today and, with
        `count`, the surge guard's count of the window's failures."""
        self._pool.submit(self._linq.lines)  # warms the line cache while Stripe answers
        if screen(job, self._settings) is not None:
            # Nothing will be sent: no count is read.
            unread = partial(LineLoad, self._settings.line_daily_limit)
            return Facts(job, self._clock()), unread, None
        # A payment the sweep released reads it afresh: it was released because texting is on,
        # and an instance that still holds a pause it read before the resume would hold it again.
        control = self._pool.submit(self.texting.control, job.release is not None)
        failures = self._pool.submit(self.texting.failures) if count else None
        load = self._line_load()
        invoice, error = self._read_invoice(job)
        paused = control.result().held()
        return Facts(job, self._clock(), invoice, error, paused=paused), load, failures

    def _line_load(self) -> Callable[[], LineLoad]:
        """Today's count of each line, read from now on in the background, for when a new plan
        picks its line. LINQ_SENDER is used whatever its count: with it nothing is read."""
        limit = self._settings.line_daily_limit
        if self._settings.linq_sender is not None:
            return partial(LineLoad, limit)
        counts = self._pool.submit(self._ledger.sent_today)
        return lambda: LineLoad(limit, counts.result())

    # --- live -------------------------------------------------------------------------------

    def _recover(self, job: FailedPayment, pubsub_message_id: str) -> RunResult | Ignored:
        run = uuid.uuid4().hex
        # The message's attempt is claimed while Stripe is read: the common case costs no extra
        # round trip. A thin event names no attempt, so it claims once the invoice has said.
        speculative: Future[Lease | Entry] | None = None
        if job.attempt_count is not None:
            speculative = self._pool.submit(
                self._claim, job, job.attempt_count, pubsub_message_id, run
            )
        try:
            facts, load, failures = self._facts(job, count=self.texting.rule is not None)
        except RetryableError:
            # A payment another run holds (or has finished) needs no invoice: say so, and only
            # retry what this run owns, or an earlier run of this message may.
            held = self._abandon(speculative)
            if held is not None:
                meaning = holding(held, job.event_id, pubsub_message_id)
                if meaning is not Holding.EARLIER_RUN:
                    return self._held(job, held, meaning, None)
            raise
        except BaseException:
            self._abandon(speculative)
            raise
        attempt = self._attempt(job, facts.invoice)
        claim = speculative.result() if speculative is not None else None
        if isinstance(claim, Lease) and attempt is not None and attempt < (job.attempt_count or 0):
            # The invoice decides which attempt this is: it has not reached the message's.
            self._end_lease(claim)
            claim = None
        if claim is None and attempt is not None:
            claim = self._claim(job, attempt, pubsub_message_id, run)
        if isinstance(claim, Entry):
            meaning = holding(claim, job.event_id, pubsub_message_id)
            return self._held(job, claim, meaning, facts.invoice)
        if claim is not None:
            # The entry's own attempt: the invoice's, or an older one this message superseded.
            attempt = claim.key.attempt
        owner = _Owner(self._ledger, self._pool, claim) if claim is not None else None
        try:
            facts = replace(facts, entry=owner.lease.entry) if owner is not None else facts
            facts = self._recorded(facts)
            decision = decide(facts, self._settings)
            alerts: tuple[str, ...] = ()
            if isinstance(decision, Send) and decision.chat_id is None and failures is not None:
                # A new text: the surge guard has its word once the window's failures are many.
                word = self.texting.guard(failures.result())
                alerts = word.alerts
                if word.held is not None:
                    decision = decide(replace(facts, paused=word.held), self._settings)
            group = None
            if owner is not None:
                payment = _payment(facts.invoice)
                code = payment.decline_code if payment is not None else None
                owner.lease = owner.lease.draw(decision.group).read_decline(code)
                group = owner.lease.assigned
            outcome = self._execute(decision, owner, load, _name(facts.invoice))
        except LeaseLostError as exc:
            key = str(owner.lease.key) if owner is not None else job.invoice_id
            return Ignored(f"stopped: {exc.reason}; another run carries on", key)
        except BaseException:
            self._end_lease(owner.lease if owner is not None else None)
            raise
        customer_id = _customer_id(job, facts.invoice)
        return RunResult(
            job.invoice_id,
            customer_id,
            attempt,
            outcome,
            group,
            payment=_payment(facts.invoice),
            alerts=alerts,
        )

    def _recorded(self, facts: Facts) -> Facts:
        """The facts with what else the ledger knows: our own STOP list and, for a message older
        than the invoice, the entry of the invoice's attempt (read beside the STOP list)."""
        newest: Future[Entry | None] | None = None
        job, invoice = facts.job, facts.invoice
        older = job.attempt_count
        if invoice is not None and older is not None and older < invoice.attempt_count:
            key = EntryKey(job.invoice_id, invoice.attempt_count)
            newest = self._pool.submit(self._ledger.entry, key)
        opted_out_at = self._opted_out(facts)
        return replace(
            facts,
            opted_out_at=opted_out_at,
            newest=newest.result() if newest is not None else None,
        )

    def _opted_out(self, facts: Facts) -> datetime | None:
        """Our own STOP list, for the number this run would text: checked before any Linq call,
        on every line and every Linq account."""
        phone = facts.entry.texted_to if facts.entry is not None else None
        if phone is None and facts.invoice is not None:
            phone = recipient(facts.invoice, self._settings)
        return self._ledger.opted_out_at(phone) if phone is not None else None

    def _claim(
        self, job: FailedPayment, attempt: int, pubsub_message_id: str, run: str
    ) -> Lease | Entry:
        return self._ledger.claim(EntryKey(job.invoice_id, attempt), job, pubsub_message_id, run)

    @staticmethod
    def _attempt(job: FailedPayment, invoice: Invoice | None) -> int | None:
        # The invoice decides which attempt this is; without it, the message is all there is.
        return invoice.attempt_count if invoice is not None else job.attempt_count

    def _held(
        self, job: FailedPayment, held: Entry, meaning: Holding, invoice: Invoice | None
    ) -> RunResult | Ignored:
        """What to say about a failed payment another run holds or has finished."""
        attempt = held.key.attempt
        if meaning is Holding.EARLIER_RUN:
            # An earlier run of this very message may still be going (or died without ending its
            # lease): retry once its lease has run out, rather than acknowledge and perhaps lose it.
            raise RetryableError(
                f"an earlier run of this message holds {held.key} until {held.lease_until}; "
                "retrying after that"
            )
        if meaning is Holding.RESTATE and held.action is not None:
            # Pub/Sub redelivers only a message whose run did not finish: that run's outcome
            # reached the ledger, but its result line may not have (a write that timed out yet
            # committed, a crash). Restate it; nothing is sent.
            outcome = Outcome(held.action, reason=held.reason, chat_id=held.chat_id)
            customer_id = _customer_id(job, invoice)
            return RunResult(
                job.invoice_id, customer_id, attempt, outcome, held.group, _payment(invoice)
            )
        if meaning is Holding.ALREADY_TEXTED:
            # Another event for an attempt already texted: a customer's manual retry that failed
            # too, a backfill, a thin event beside a snapshot one. Not a redelivery.
            return RunResult(
                job.invoice_id,
                _customer_id(job, invoice),
                attempt,
                skipped(
                    Action.ALREADY_TEXTED,
                    f"attempt {attempt} was already texted for event {held.event_id}",
                ),
                payment=_payment(invoice),
            )
        return Ignored(_IGNORED[meaning](held), str(held.key), held.event_id, held.state.value)

    def _execute(
        self,
        decision: Decision,
        owner: _Owner | None,
        load: Callable[[], LineLoad],
        name: str | None = None,
    ) -> Outcome:
        if isinstance(decision, Finish):
            return owner.finish(decision.outcome) if owner is not None else decision.outcome
        if isinstance(decision, Defer):
            # A deferral needs its entry: the release sweep finds it there.
            assert owner is not None
            self._ledger.defer(owner.lease, decision.outcome, decision.due_at, decision.zones)
            return decision.outcome
        if isinstance(decision, Hold):
            assert owner is not None
            self._ledger.pause(owner.lease, decision.outcome)
            return decision.outcome
        # A plan is only made for a claimed key.
        assert owner is not None
        tally = _Tally(self._ledger, self._pool)
        try:
            return self._send(decision, owner, load, name, tally)
        finally:
            tally.settle()

    def _send(
        self,
        decision: Send,
        owner: _Owner,
        load: Callable[[], LineLoad],
        name: str | None,
        tally: _Tally,
    ) -> Outcome:
        """Send what `decision` still has to: the text (unless it went out), then the link."""
        key = owner.lease.key
        plan, chat_id = decision.plan, decision.chat_id
        texted_now = chat_id is None
        text_id: str | None = None
        if chat_id is None:
            try:
                plan, texted = self._text(plan, key.idempotency_key(Part.TEXT), owner, name, load)
                chat_id, text_id = texted.chat_id, texted.message_id
            except (OptedOutError, UnreachableError) as exc:
                action = Action.OPTED_OUT if isinstance(exc, OptedOutError) else Action.UNREACHABLE
                prefix = "recipient opted out: " if action is Action.OPTED_OUT else ""
                return owner.finish(skipped(action, prefix + exc.reason))
            except PermanentError as exc:
                return owner.finish(failed(exc.reason))
            tally.sent(plan.line)
        record = partial(self._ledger.record_text, owner.lease, chat_id, text_id)
        try:
            link_id = owner.alongside(
                partial(self._linq.send_link, chat_id, plan.link, key.idempotency_key(Part.LINK)),
                record if texted_now else None,
            )
        except OptedOutError as exc:
            # The text went out; the recipient said STOP before the link followed.
            refused = replace(sent(chat_id, plan.text), reason=f"link refused: {exc.reason}")
            return owner.finish(refused)
        except PermanentError as exc:
            refused = failed(f"text sent, link refused: {exc.reason}")
            return owner.finish(replace(refused, chat_id=chat_id, cost=sms_cost(plan.text)))
        tally.sent(plan.line)
        return owner.finish(sent(chat_id, plan.text), link_id)

    def _text(
        self, plan: Plan, key: str, owner: _Owner, name: str | None, load: Callable[[], LineLoad]
    ) -> tuple[Plan, Sent]:
        """Send the text from the planned line (a new plan picks one and records it first);
        returns the plan as sent and the chat."""
        recorded = plan.line is not None
        configured = self._settings.linq_sender
        ineligible: list[str] = []
        while True:
            line = plan.line
            if line is None:
                lines = self._linq.lines()
                line = pick_sender(lines, plan.to, load(), configured, ineligible).number
            planned = replace(plan, line=line)
            owner.alongside(
                partial(self._check, plan.to, line),
                None if recorded else partial(self._ledger.record_plan, owner.lease, planned, name),
            )
            try:
                # Linq rejects a URL in the first message of a new chat (400, code 1005): the text
                # opens the chat and the link follows in a second message.
                return planned, self._linq.create_chat(line, plan.to, plan.text, key)
            except LineIneligibleError:
                # Linq refuses before creating anything. A line this run picked may give way to
                # the next (none left: a retry); a configured line, or one an earlier run may
                # already have sent from, is waited for instead.
                if recorded or configured is not None:
                    raise
                ineligible.append(line)

    def _check(self, to: str, line: str) -> None:
        """Raises UnreachableError when `line` cannot reach `to` at all."""
        if not self._linq.capability(to, line).reachable:
            raise UnreachableError("no iMessage, SMS or RCS for the number")

    def _end_lease(self, lease: Lease | Entry | None) -> None:
        """End the lease before a retry; best effort, since it runs out anyway."""
        if not isinstance(lease, Lease):
            return
        try:
            self._ledger.end_lease(lease)
        except (RetryableError, LeaseLostError) as exc:
            log(WARNING, f"lease not ended: {exc.reason}", key=str(lease.key))

    def _abandon(self, speculative: Future[Lease | Entry] | None) -> Entry | None:
        """Give back a claim made while the run could not go on; returns the entry when another
        run held it."""
        if speculative is None:
            return None
        try:
            claim = speculative.result()
        except (RetryableError, LeaseLostError):
            return None
        if isinstance(claim, Entry):
            return claim
        self._end_lease(claim)
        return None

    # --- dry run ----------------------------------------------------------------------------

    def _dry_run(self, job: FailedPayment) -> RunResult:
        """Every lookup and decision a live run makes, nothing sent and nothing recorded."""
        facts, load, _ = self._facts(job, count=False)
        facts = self._recorded(facts)
        decision = decide(facts, self._settings)
        attempt = self._attempt(job, facts.invoice)
        would_be = (
            decision.outcome
            if not isinstance(decision, Send)
            else self._would_send(decision, load())
        )
        return RunResult(
            job.invoice_id,
            _customer_id(job, facts.invoice),
            attempt,
            dry_run(would_be),
            payment=_payment(facts.invoice),
        )

    def _would_send(self, decision: Send, load: LineLoad) -> Outcome:
        plan = decision.plan
        try:
            line = pick_sender(self._linq.lines(), plan.to, load, self._settings.linq_sender)
            self._check(plan.to, line.number)
        except UnreachableError as exc:
            return replace(skipped(Action.UNREACHABLE, exc.reason), text=plan.text, phone=plan.to)
        except PermanentError as exc:
            return failed(exc.reason)
        return Outcome(Action.SENT, text=plan.text, phone=plan.to)


# What an Ignored line says of each entry a message could not claim that is not its to restate.
_IGNORED: dict[Holding, Callable[[Entry], str]] = {
    Holding.DUPLICATE: lambda _: "duplicate delivery ignored",
    Holding.WAITING: lambda held: (
        "deferred while texting is paused"
        if held.action is Action.PAUSED
        else f"deferred for quiet hours until {held.due_at}"
    ),
    Holding.HANDLED: lambda _: "already handled",
    Holding.IN_PROGRESS: lambda _: "in progress for another event",
}


def _name(invoice: Invoice | None) -> str | None:
    """The customer's first name, for the team's note when they answer; None without one."""
    if invoice is None or not invoice.customer.name:
        return None
    return first_name(invoice.customer.name)


def _customer_id(job: FailedPayment, invoice: Invoice | None) -> str | None:
    return (invoice.customer.id if invoice is not None else None) or job.customer_id


def _payment(invoice: Invoice | None) -> LatestPayment | None:
    return invoice.payment if invoice is not None else None


class _Owner:
    """The lease of one run, kept current across its writes (some run beside a Linq call)."""

    def __init__(self, ledger: Ledger, pool: ThreadPoolExecutor, lease: Lease) -> None:
        self._ledger, self._pool, self.lease = ledger, pool, lease

    def alongside(self, call: Callable[[], U], write: Callable[[], Lease] | None) -> U:
        """Run `call` while the ledger `write` runs; the write's failure wins (a lost lease stops
        everything), otherwise the call's failure is raised, the new version kept either way.
        Returns what `call` returned."""
        pending = self._pool.submit(write) if write is not None else None
        try:
            return call()
        finally:
            if pending is not None:
                self.lease = pending.result()

    def finish(self, outcome: Outcome, link_id: str | None = None) -> Outcome:
        self._ledger.finish(self.lease, outcome, link_id)
        return outcome


class _Tally:
    """The messages one run sends, each counted against its line's daily limit beside the step
    that follows the send (the link and the chat's record, the outcome): no stage is added.

    A count that cannot be written is a WARNING line, never a retry: the message went out, and a
    retry would not send it again. A run that dies right after a send may leave the message
    uncounted (its record written, its count not) or counted twice (its count written, its record
    not: the resume sends it again, a replay for Linq, and counts it again)."""

    def __init__(self, ledger: Ledger, pool: ThreadPoolExecutor) -> None:
        self._ledger, self._pool = ledger, pool
        self._pending: list[Future[None]] = []

    def sent(self, line: str | None) -> None:
        if line is not None:
            self._pending.append(self._pool.submit(self._count, line))

    def _count(self, line: str) -> None:
        try:
            self._ledger.count_sent(line)
        except RetryableError as exc:
            log(WARNING, f"line count not recorded: {exc.reason}", line=mask_phone(line))

    def settle(self) -> None:
        """Wait for the counts: an instance may lose its CPU once the run has answered."""
        for pending in self._pending:
            pending.result()
