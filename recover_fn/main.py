"""Pub/Sub entry point: recover one failed payment and log its one result line."""

from __future__ import annotations

import functools
import traceback
from dataclasses import dataclass

import functions_framework
from cloudevents.http import CloudEvent

from shared.adapters.ledger import Ledger
from shared.adapters.linq import LinqClient
from shared.adapters.slack import SlackNotifier
from shared.adapters.stripe_gateway import StripeGateway
from shared.core.errors import ConfigError, MalformedMessageError, RetryableError
from shared.core.event import from_pubsub
from shared.core.log import ERROR, INFO, log
from shared.core.outcome import log_result
from shared.workflow.recover_settings import RecoverSettings
from shared.workflow.recovery import Ignored, Recovery, RunResult


@dataclass(frozen=True)
class _Instance:
    recovery: Recovery
    slack: SlackNotifier


@functools.cache
def _instance() -> _Instance:
    settings = RecoverSettings.from_env()
    recovery = Recovery(
        settings,
        StripeGateway(settings.stripe_api_key, settings.stripe_api_base),
        LinqClient(settings.linq_api_key, settings.linq_api_base),
        Ledger(settings.project, settings.firestore_database, settings.lease),
    )
    return _Instance(recovery, SlackNotifier(settings.slack_webhook_url))


def _note(result: RunResult) -> str:
    outcome = result.outcome
    tail = f"chat {outcome.chat_id}" if outcome.chat_id else outcome.reason
    return f"Dunning text {outcome.action} for {result.invoice_id} ({result.customer_id}): {tail}"


@functions_framework.cloud_event
def recover_payment(cloud_event: CloudEvent) -> None:
    message_id = cloud_event["id"]
    try:
        job = from_pubsub(cloud_event.data)
    except MalformedMessageError as exc:
        # Acknowledged: redelivering a message nobody can read would loop until it dead-letters.
        log(ERROR, f"malformed message dropped: {exc.reason}", message_id=message_id)
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
        instance = _instance()
    except ConfigError as exc:
        log(ERROR, f"configuration error: {exc}", **where)
        raise
    try:
        result = instance.recovery.run(job, message_id)
    except RetryableError as exc:
        # ERROR, not WARNING: if this keeps happening the message ends in the dead-letter topic,
        # and these lines are the record of why.
        log(ERROR, f"will retry: {exc.reason}", **where, **exc.detail)
        # Raised afresh without its cause: functions-framework prints the traceback, and a
        # vendor exception's own text is not ours to vouch for.
        raise RetryableError(exc.reason) from None
    except Exception as exc:
        # A bug or an answer nobody expected: the run released its lease, and a retry may pass.
        log(
            ERROR,
            f"will retry: unexpected {type(exc).__name__}: {exc}",
            **where,
            stack_trace=traceback.format_exc(),
        )
        raise RetryableError(f"unexpected {type(exc).__name__}; see the line above") from None
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
    )
    instance.slack.notify(_note(result))
