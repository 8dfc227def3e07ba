"""The recovery workflow: from one failed payment to one outcome, guards in a fixed order."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from shared.adapters.ledger import FAILED, RETRYING, Duplicate, Ledger
from shared.adapters.linq import LinqClient
from shared.adapters.stripe_gateway import StripeGateway
from shared.core.errors import (
    LineIneligibleError,
    NotFoundError,
    OptedOutError,
    PermanentError,
    RecoveryError,
    RetryableError,
    UnreachableError,
)
from shared.core.event import FailedPayment
from shared.core.invoice import Invoice
from shared.core.log import WARNING, log
from shared.core.message import placeholder_values
from shared.core.money import format_amount
from shared.core.outcome import Action, Outcome, failed, rehearsed, sent, skipped
from shared.core.phone import to_e164
from shared.core.sender import pick_sender
from shared.workflow.recover_config import RecoverSettings


@dataclass(frozen=True)
class Result:
    """What one run did, for the result line."""

    invoice_id: str
    customer_id: str | None
    outcome: Outcome


def payment_key(invoice_id: str, attempt: int) -> str:
    """One failed payment: the ledger's document id and the stem of Linq's idempotency keys."""
    return f"{invoice_id}-{attempt}"


def idempotency_key(invoice_id: str, attempt: int, part: str) -> str:
    """The same failed payment always yields the same keys, so Linq sends each part once."""
    return f"{payment_key(invoice_id, attempt)}-{part}"


class Recovery:
    """Runs the workflow with one instance's settings and clients."""

    def __init__(
        self, settings: RecoverSettings, stripe: StripeGateway, linq: LinqClient, ledger: Ledger
    ) -> None:
        self._settings = settings
        self._stripe = stripe
        self._linq = linq
        self._ledger = ledger
        # Independent first calls run side by side: the ledger claim, the invoice read and (on a
        # cold instance) the Linq line list, so a warm run waits for four calls in a row, not five.
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="recover")

    def run(self, job: FailedPayment, message_id: str) -> Result | Duplicate:
        """The outcome for `job`, or the Duplicate it turned out to be.

        Raises RetryableError when a retry may succeed.
        """
        # A dry run never claims: the ledger would otherwise keep the later live run from sending.
        live = not self._settings.dry_run
        claim: Future[Duplicate | None] | None = None
        if live and job.attempt_count is not None:
            claim = self._pool.submit(
                self._ledger.claim,
                payment_key(job.invoice_id, job.attempt_count),
                job.event_id,
                message_id,
            )
        self._pool.submit(self._linq.lines)
        invoice: Invoice | None = None
        error: RecoveryError | None = None
        try:
            invoice = self._read_invoice(job)
        except RecoveryError as exc:
            error = exc
        # A thin event does not say which attempt failed: the invoice does.
        attempt = job.attempt_count
        if attempt is None and invoice is not None:
            attempt = invoice.attempt_count
        if not live or attempt is None:
            return self._finish(job, invoice, attempt, None, message_id, error)
        key = payment_key(job.invoice_id, attempt)
        duplicate = claim.result() if claim else self._ledger.claim(key, job.event_id, message_id)
        if duplicate is not None:
            return duplicate
        return self._finish(job, invoice, attempt, key, message_id, error)

    def _finish(
        self,
        job: FailedPayment,
        invoice: Invoice | None,
        attempt: int | None,
        key: str | None,
        message_id: str,
        error: RecoveryError | None,
    ) -> Result:
        customer_id = (invoice.customer.id if invoice else None) or job.customer_id
        try:
            outcome = self._decide(invoice, attempt, error)
        except RetryableError:
            self._settle(key, RETRYING, message_id)
            raise
        except PermanentError as exc:
            outcome = failed(exc.reason)
        if outcome.action is Action.FAILED:
            self._settle(key, FAILED, message_id)
        if self._settings.dry_run:
            outcome = rehearsed(outcome)
        return Result(invoice_id=job.invoice_id, customer_id=customer_id, outcome=outcome)

    def _decide(
        self, invoice: Invoice | None, attempt: int | None, error: RecoveryError | None
    ) -> Outcome:
        # The operator's policy first: an attempt that never gets a text needs nothing else,
        # not even a readable invoice.
        policy = self._settings.attempts
        if attempt is not None and not policy.allows(attempt):
            return skipped(
                Action.SKIPPED_POLICY, f"attempt {attempt} is not in TEXT_ON_ATTEMPTS={policy}"
            )
        if error is not None:
            raise error
        assert invoice is not None
        assert attempt is not None
        return self._recover(invoice, attempt)

    def _settle(self, key: str | None, state: str, message_id: str) -> None:
        """Let a later message take over; best effort, since the outcome is logged either way."""
        if key is None:
            return
        try:
            self._ledger.settle(key, state, message_id)
        except RetryableError as exc:
            log(WARNING, f"ledger not updated: {exc.reason}", key=key, state=state)

    def _read_invoice(self, job: FailedPayment) -> Invoice:
        mode = "live" if job.livemode else "test"
        if mode != self._settings.stripe_mode:
            raise PermanentError(
                f"event is {mode}-mode but STRIPE_API_KEY is a {self._settings.stripe_mode} key; "
                "use the key of the mode the webhook endpoint belongs to"
            )
        try:
            return self._stripe.invoice(job.invoice_id)
        except NotFoundError as exc:
            raise PermanentError(f"invoice not found in {mode} mode: {exc.reason}") from exc

    def _recover(self, invoice: Invoice, attempt: int) -> Outcome:
        if (why := invoice.why_not_collectable) is not None:
            return skipped(Action.NOT_OPEN, why)
        if invoice.subscription_ended:
            return skipped(
                Action.CANCELED,
                f"subscription {invoice.subscription_id} is {invoice.subscription_status}",
            )
        if invoice.hosted_invoice_url is None:
            return failed("open invoice has no hosted_invoice_url to link to")
        customer = invoice.customer
        if customer.deleted:
            return skipped(Action.NO_PHONE, "customer was deleted")
        if not customer.phone or not customer.phone.strip():
            return skipped(Action.NO_PHONE, "no phone on file")
        phone = to_e164(customer.phone, (customer.country, self._settings.default_region))
        if phone is None:
            return skipped(Action.NO_PHONE, "phone on file is not a valid number")
        text = self._text(invoice)
        if self._settings.dry_run:
            return self._rehearse(phone, text)
        return self._send(phone, text, invoice.hosted_invoice_url, invoice.id, attempt)

    def _text(self, invoice: Invoice) -> str:
        """The text in the customer's language, with the amount in the invoice's currency."""
        customer = invoice.customer
        template = self._settings.templates.for_locales(customer.preferred_locales)
        amount = format_amount(invoice.amount_remaining, invoice.currency)
        return template.render(
            placeholder_values(customer.name, invoice.description, amount, self._settings.brand)
        )

    def _unreachable(self, phone: str, line: str) -> Outcome | None:
        """The skip when `line` cannot reach `phone` at all, else None."""
        try:
            if self._linq.check_imessage(phone, line).reachable:
                return None
            return skipped(Action.UNREACHABLE, "no iMessage, SMS or RCS for the number")
        except UnreachableError as exc:
            return skipped(Action.UNREACHABLE, exc.reason)

    def _rehearse(self, phone: str, text: str) -> Outcome:
        """What a live send would do, from the lookups it makes first; nothing is sent."""
        line = pick_sender(self._linq.lines(), self._settings.linq_sender)
        would_be = self._unreachable(phone, line.number) or Outcome(Action.SENT)
        return replace(would_be, text=text, phone=phone)

    def _send(self, phone: str, text: str, url: str, invoice_id: str, attempt: int) -> Outcome:
        """Text from the first line that will take it, then the link into the same chat."""
        configured = self._settings.linq_sender
        ineligible: list[str] = []
        try:
            while True:
                line = pick_sender(self._linq.lines(), configured, exclude=ineligible)
                unreachable = self._unreachable(phone, line.number)
                if unreachable is not None:
                    return unreachable
                try:
                    # Linq rejects a URL in the first message of a new chat (400, code 1005):
                    # the text opens the chat and the link follows in a second message.
                    chat_id = self._linq.create_chat(
                        line.number, phone, text, idempotency_key(invoice_id, attempt, "text")
                    )
                    break
                except LineIneligibleError:
                    # Linq refuses before creating anything, so another line may take the same
                    # key. A configured line is the operator's choice: wait for it instead.
                    if configured is not None:
                        raise
                    ineligible.append(line.number)
            self._linq.send_link(chat_id, url, idempotency_key(invoice_id, attempt, "link"))
        except OptedOutError as exc:
            return skipped(Action.OPTED_OUT, f"recipient opted out: {exc.reason}")
        return sent(chat_id)
