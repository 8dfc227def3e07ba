"""Pub/Sub entry points: recover one failed payment and log its one result line; release the
payments deferred for quiet hours whose morning has come; act on what Linq tells us."""

from __future__ import annotations

import gc

# Start-up (BENCHMARKS.md, cold start): the imports below create ~50,000 objects that live as long
# as the instance. The collector stays out of the way while they are created, and once the module
# is loaded they are frozen, so that no later collection walks them again (the pattern the `gc`
# documentation gives for a process that forks, as gunicorn does: the instance's worker inherits
# them). Re-enabled at the end of this module.
_COLLECTING = gc.isenabled()
gc.disable()

import base64
import functools
import json
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import functions_framework
from cloudevents.http import CloudEvent

from shared.adapters.firestore import TIMEOUT as FIRESTORE_TIMEOUT
from shared.adapters.firestore import FirestoreDocuments
from shared.adapters.ledger import Ledger
from shared.adapters.linq import LinqClient
from shared.adapters.slack import SlackNotifier
from shared.adapters.stripe_gateway import StripeGateway, preload
from shared.core.clock import utc_now
from shared.core.errors import ConfigError, MalformedMessageError, RetryableError
from shared.core.event import InvoicePaid, from_pubsub
from shared.core.log import ERROR, INFO, log
from shared.core.money import format_amount
from shared.core.outcome import Action, log_recovery, log_result
from shared.workflow.recovery import Ignored, Recovery, RunResult
from shared.workflow.settings import LinqEventSettings, RecoverSettings, ReleaseSettings

# Each entry point is deployed as a function of its own (deploy.sh), and a new instance of one
# should not pay for the others' modules before it answers: what only the release sweep, the Linq
# listener or a paid invoice needs is imported where it is used (BENCHMARKS.md, cold start).
if TYPE_CHECKING:
    from shared.workflow.release import Sweep

# At import, before the function serves: the SDK's lazy imports would otherwise land in the first
# run, after Stripe answers (BENCHMARKS.md, cold start).
preload()


@dataclass(frozen=True)
class _Services:
    """What a recovery on this instance talks to, built once per instance."""

    recovery: Recovery
    ledger: Ledger
    linq: LinqClient
    slack: SlackNotifier


@functools.cache
def _services() -> _Services:
    settings = RecoverSettings.from_env()
    read = settings.read_timeout
    documents = FirestoreDocuments(
        settings.project,
        settings.firestore_database,
        timeout=(FIRESTORE_TIMEOUT[0], read or FIRESTORE_TIMEOUT[1]),
    )
    ledger = Ledger(documents, settings.lease, utc_now)
    linq = LinqClient(settings.linq_api_key, settings.linq_api_base, read_timeout=read)
    stripe = StripeGateway(settings.stripe_api_key, settings.stripe_api_base, read)
    recovery = Recovery(settings, stripe, linq, ledger, utc_now)
    return _Services(recovery, ledger, linq, SlackNotifier(settings.slack_webhook_url))


def _note(result: RunResult, released: bool) -> str:
    outcome = result.outcome
    tail = f"chat {outcome.chat_id}" if outcome.chat_id else outcome.reason
    held = " (held for the recipient's quiet hours or a pause)" if released else ""
    # The team can tell a payment the bank wants confirmed from a declined card.
    waiting = result.payment is not None and result.payment.needs_action
    confirm = " (3-D Secure: the bank asks the customer to confirm)" if waiting else ""
    return (
        f"Dunning text {outcome.action}{held}{confirm} for {result.invoice_id} "
        f"({result.customer_id}): {tail}"
    )


@functions_framework.cloud_event
def recover_payment(cloud_event: CloudEvent) -> None:
    pubsub_message_id = cloud_event["id"]
    try:
        job = from_pubsub(cloud_event.data)
    except MalformedMessageError as exc:
        # Acknowledged: redelivering a message nobody can read would loop until it dead-letters.
        log(ERROR, f"malformed message dropped: {exc.reason}", pubsub_message_id=pubsub_message_id)
        return
    # Present in production when the subscription has a dead-letter policy; not in the emulator.
    attempt = (cloud_event.data or {}).get("deliveryAttempt")
    where = {
        "event_id": job.event_id,
        "invoice_id": job.invoice_id,
        "account": job.account,
        "delivery_attempt": attempt,
    }
    try:
        services = _services()
    except ConfigError as exc:
        log(ERROR, f"configuration error: {exc}", **where)
        raise
    try:
        if isinstance(job, InvoicePaid):
            _recovered(services, job, pubsub_message_id)
            return
        result = services.recovery.run(job, pubsub_message_id)
    except Exception as exc:
        # A bug or an answer nobody expected too: the run released its lease, and a retry may pass.
        raise _will_retry(exc, where) from None
    if isinstance(result, Ignored):
        log(
            INFO,
            result.message,
            **where,
            key=result.key,
            owner_event=result.owner_event,
            state=result.state,
        )
        return
    log_result(
        result.outcome,
        invoice_id=result.invoice_id,
        customer_id=result.customer_id,
        attempt=result.attempt,
        event_id=job.event_id,
        account=job.account,
        group=result.group,
        payment=result.payment,
        event_type=job.event_type,
    )
    # A deferral is only a result line: its note comes with the send or skip that ends it.
    if result.outcome.action not in (Action.DEFERRED, Action.PAUSED):
        services.slack.notify(_note(result, released=job.release is not None))
    for alert in result.alerts:
        services.slack.notify(alert)


def _recovered(services: _Services, paid: InvoicePaid, pubsub_message_id: str) -> None:
    """An invoice was paid: one `recovered` line if the ledger saw it, none otherwise (a payment
    the ledger never saw, or one another delivery recorded)."""
    from shared.workflow.recovered import attribute_payment

    found = attribute_payment(services.ledger, paid, pubsub_message_id, utc_now)
    if found is None:
        return
    log_recovery(
        invoice_id=paid.invoice_id,
        customer_id=paid.customer_id,
        attempt=found.attempt,
        amount=paid.amount,
        currency=paid.currency,
        minutes_after_text=found.minutes_after_text,
        group=found.group,
        reason=found.reason,
        event_id=paid.event_id,
        account=paid.account,
    )
    after = f", {found.minutes_after_text:g} min after the text" if found.minutes_after_text else ""
    services.slack.notify(
        f"Recovered {format_amount(paid.amount, paid.currency)} for {paid.invoice_id} "
        f"({paid.customer_id}): group {found.group}{after}"
    )


@functools.cache
def _sweep() -> Sweep:
    from shared.adapters.publisher import Publisher
    from shared.workflow.release import Sweep

    settings = ReleaseSettings.from_env()
    documents = FirestoreDocuments(settings.project, settings.firestore_database)
    return Sweep(
        Ledger(documents, clock=utc_now), Publisher(settings.project, settings.topic), utc_now
    )


@functions_framework.cloud_event
def release_deferred(cloud_event: CloudEvent) -> None:
    """Triggered every five minutes (Cloud Scheduler, through its own topic): what the message
    says does not matter, only that it is time to look."""
    try:
        sweep = _sweep()
    except ConfigError as exc:
        log(ERROR, f"configuration error: {exc}")
        raise
    try:
        done = sweep.run()
    except RetryableError as exc:
        # Whatever it marked and did not publish is released again by a later sweep.
        log(ERROR, f"sweep stopped: {exc.reason}", **exc.detail)
        raise RetryableError(exc.reason) from None
    log(
        INFO,
        f"released {done.released} deferred payment(s)",
        released=done.released,
        released_again=done.released_again,
        taken_by_another_sweep=done.skipped,
    )


@functools.cache
def _listener() -> tuple[Ledger, SlackNotifier]:
    settings = LinqEventSettings.from_env()
    documents = FirestoreDocuments(settings.project, settings.firestore_database)
    return Ledger(documents, clock=utc_now), SlackNotifier(settings.slack_webhook_url)


def _forget_lines() -> None:
    """Drop the line list cached on this instance, if it has recovered anything yet."""
    if _services.cache_info().currsize:
        _services().linq.forget_lines()


def _will_retry(exc: Exception, where: dict[str, Any]) -> RetryableError:
    """Log why a run will be retried, and the exception to raise for it, `from None`.

    ERROR, not WARNING: if this keeps happening the message ends in the dead-letter topic, and
    these lines are the record of why. The exception raised is a fresh one without its cause:
    functions-framework prints its traceback, and a vendor exception's own text (or the event's:
    a customer's words and number) is not ours to vouch for; the line here is masked.
    """
    if isinstance(exc, RetryableError):
        log(ERROR, f"will retry: {exc.reason}", **where, **exc.detail)
        return RetryableError(exc.reason)
    name = type(exc).__name__
    log(ERROR, f"will retry: unexpected {name}: {exc}", **where, stack_trace=traceback.format_exc())
    return RetryableError(f"unexpected {name}; see the line above")


@functions_framework.cloud_event
def linq_event(cloud_event: CloudEvent) -> None:
    """One Linq webhook event (queued by linq_webhook): one line, and a note when the team
    should know (a reply, a STOP, a line getting worse)."""
    message = (
        (cloud_event.data or {}).get("message") if isinstance(cloud_event.data, dict) else None
    )
    try:
        if not isinstance(message, dict):
            raise MalformedMessageError("not a Pub/Sub message")
        attributes = message.get("attributes")
        webhook_id = attributes.get("webhook_id") if isinstance(attributes, dict) else None
        event = json.loads(base64.b64decode(message.get("data") or "", validate=True))
        if not webhook_id or not isinstance(event, dict):
            raise MalformedMessageError("no webhook_id, or data is not a JSON object")
    # RecursionError: data nested past the parser's limit is as unreadable as bad JSON.
    except (MalformedMessageError, ValueError, TypeError, RecursionError) as exc:
        log(
            ERROR,
            f"malformed Linq event dropped: {type(exc).__name__}",
            pubsub_message_id=cloud_event["id"],
        )
        return
    where = {"webhook_id": webhook_id, "event_type": event.get("event_type")}
    try:
        ledger, slack = _listener()
    except ConfigError as exc:
        log(ERROR, f"configuration error: {exc}", **where)
        raise
    from shared.workflow.linq_events import handle

    try:
        said = handle(ledger, webhook_id, event, _forget_lines, utc_now())
    except Exception as exc:
        raise _will_retry(exc, where) from None
    log(said.severity, said.message, **where, **said.fields)
    if said.note is not None:
        slack.notify(said.note)


# Once per process: a test session loads this module many times, and a freeze keeps whatever
# garbage is waiting for the collector at that moment.
if not gc.get_freeze_count():
    gc.freeze()
if _COLLECTING:
    gc.enable()
