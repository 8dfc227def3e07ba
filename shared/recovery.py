"""The recovery workflow: from one failed payment to one outcome, guards in a fixed order."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import RecoverSettings
from shared.errors import (
    LineIneligibleError,
    NotFoundError,
    OptedOutError,
    PermanentError,
    UnreachableError,
)
from shared.event import FailedPayment
from shared.invoice import Invoice
from shared.linq import LinqClient
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


def idempotency_key(invoice_id: str, attempt: int, part: str) -> str:
    """The same failed payment always yields the same keys, so Linq sends each part once."""
    return f"{invoice_id}-{attempt}-{part}"


class Recovery:
    """Runs the workflow with one instance's settings and clients."""

    def __init__(self, settings: RecoverSettings, stripe: StripeGateway, linq: LinqClient) -> None:
        self._settings = settings
        self._stripe = stripe
        self._linq = linq

    def run(self, job: FailedPayment) -> Result:
        """The outcome for `job`; raises RetryableError when a retry may succeed."""
        customer_id = job.customer_id
        try:
            invoice = self._read_invoice(job)
            customer_id = invoice.customer.id or customer_id
            outcome = self._recover(job, invoice)
        except PermanentError as exc:
            outcome = failed(exc.reason)
        return Result(invoice_id=job.invoice_id, customer_id=customer_id, outcome=outcome)

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
