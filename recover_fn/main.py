"""Pub/Sub entry point: recover one failed payment and log its one result line."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import functions_framework
from cloudevents.http import CloudEvent

from shared.config import RecoverSettings
from shared.errors import ConfigError, MalformedMessageError, RetryableError
from shared.event import from_pubsub
from shared.linq import LinqClient
from shared.log import ERROR, WARNING, log
from shared.outcome import log_result
from shared.recovery import Recovery, Result
from shared.slack import SlackNotifier
from shared.stripe_gateway import StripeGateway


@dataclass(frozen=True)
class _Instance:
    recovery: Recovery
    slack: SlackNotifier


@functools.cache
def _instance() -> _Instance:
    settings = RecoverSettings.from_env()
    linq = LinqClient(settings.linq_api_key, settings.linq_api_base)
    stripe = StripeGateway(settings.stripe_api_key, settings.stripe_api_base)
    return _Instance(Recovery(settings, stripe, linq), SlackNotifier(settings.slack_webhook_url))


def _note(result: Result) -> str:
    outcome = result.outcome
    tail = f"chat {outcome.chat_id}" if outcome.chat_id else outcome.reason
    return f"Dunning text {outcome.action} for {result.invoice_id} ({result.customer_id}): {tail}"


@functions_framework.cloud_event
def recover_payment(cloud_event: CloudEvent) -> None:
    try:
        job = from_pubsub(cloud_event.data)
    except MalformedMessageError as exc:
        # Acknowledged: redelivering a message nobody can read would loop until it dead-letters.
        log(ERROR, f"malformed message dropped: {exc.reason}", message_id=cloud_event["id"])
        return
    try:
        instance = _instance()
    except ConfigError as exc:
        log(ERROR, f"configuration error: {exc}", event_id=job.event_id, invoice_id=job.invoice_id)
        raise
    try:
        result = instance.recovery.run(job)
    except RetryableError as exc:
        log(
            WARNING,
            f"will retry: {exc.reason}",
            event_id=job.event_id,
            invoice_id=job.invoice_id,
            **exc.detail,
        )
        raise
    log_result(
        result.outcome,
        invoice_id=result.invoice_id,
        customer_id=result.customer_id,
        event_id=job.event_id,
    )
    instance.slack.notify(_note(result))
