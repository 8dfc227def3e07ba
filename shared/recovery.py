"""The recovery workflow: from one failed payment to one outcome, guards in a fixed order."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from shared.config import RecoverSettings
from shared.errors import (
    LineIneligibleError,
    NotFoundError,
    OptedOutError,
    PermanentError,
    RecoveryError,
    RetryableError,
    UnreachableError,
)
from shared.event import FailedPayment
from shared.invoice import Invoice
from shared.ledger import FAILED, RETRYING, Duplicate, Ledger
from shared.linq import LinqClient
from shared.log import WARNING, log
from shared.message import placeholder_values
from shared.outcome import Action, Outcome, failed, sent, skipped
from shared.phone import to_e164
from shared.sender import pick_sender
from shared.stripe_gateway import StripeGateway


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
        claim: Future[Duplicate | None] | None = None
        key: str | None = None
        if job.attempt_count is not None:
            key = payment_key(job.invoice_id, job.attempt_count)
            claim = self._pool.submit(self._ledger.claim, key, job.event_id, message_id)
        self._pool.submit(self._linq.lines)
        invoice: Invoice | None = None
        error: RecoveryError | None = None
        try:
            invoice = self._read_invoice(job)
        except RecoveryError as exc:
            error = exc
        if claim is None:
            # A thin event does not say which attempt failed: the invoice does.
            if invoice is None:
                return self._finish(job, None, None, message_id, error)
            key = payment_key(job.invoice_id, invoice.attempt_count)
            duplicate = self._ledger.claim(key, job.event_id, message_id)
        else:
            duplicate = claim.result()
        if duplicate is not None:
            return duplicate
        return self._finish(job, invoice, key, message_id, error)

    def _finish(
        self,
        job: FailedPayment,
        invoice: Invoice | None,
        key: str | None,
        message_id: str,
        error: RecoveryError | None,
    ) -> Result:
        customer_id = (invoice.customer.id if invoice else None) or job.customer_id
        try:
            if error is not None:
                raise error
            assert invoice is not None
            outcome = self._recover(job, invoice)
        except RetryableError:
            self._settle(key, RETRYING, message_id)
            raise
        except PermanentError as exc:
            outcome = failed(exc.reason)
        if outcome.action is Action.FAILED:
            self._settle(key, FAILED, message_id)
        return Result(invoice_id=job.invoice_id, customer_id=customer_id, outcome=outcome)

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

    def _recover(self, job: FailedPayment, invoice: Invoice) -> Outcome:
        if not invoice.collectable:
            why = f"invoice is {invoice.status}" if invoice.status != "open" else "nothing is due"
            return skipped(Action.NOT_OPEN, why)
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
        attempt = job.attempt_count if job.attempt_count is not None else invoice.attempt_count
        text = self._settings.template.render(
            placeholder_values(customer.name, invoice.description)
        )
        return self._send(phone, text, invoice.hosted_invoice_url, invoice.id, attempt)

    def _send(self, phone: str, text: str, url: str, invoice_id: str, attempt: int) -> Outcome:
        """Text from the first line that will take it, then the link into the same chat."""
        configured = self._settings.linq_sender
        ineligible: list[str] = []
        try:
            while True:
                line = pick_sender(self._linq.lines(), configured, exclude=ineligible)
                try:
                    if not self._linq.check_imessage(phone, line.number).reachable:
                        return skipped(Action.UNREACHABLE, "no iMessage, SMS or RCS for the number")
                except UnreachableError as exc:
                    return skipped(Action.UNREACHABLE, exc.reason)
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
