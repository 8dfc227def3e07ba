"""The usual webhook template: verify the signature, run the whole recovery inline, then answer.

It runs the product's own code: the ingest function's signature check, then the recover
function's entry point called in-process with the CloudEvent the ingest function would have
published, so the only difference from the product is where (and when) the recovery happens.
"""

from __future__ import annotations

import base64
import functools
import importlib
import os
import traceback
import uuid
from datetime import UTC, datetime
from types import ModuleType

import flask
import functions_framework
from cloudevents.http import CloudEvent

from shared.adapters.webhook import parse_webhook
from shared.core.accounts import EndpointKind
from shared.core.errors import ConfigError, WebhookRejected
from shared.core.event import FailedPayment
from shared.core.signing_secret import Signing
from shared.workflow.settings import IngestSettings


@functools.cache
def _secrets() -> dict[EndpointKind, Signing]:
    settings = IngestSettings.from_env()
    if settings.signing.secret is None:
        raise ConfigError(f"STRIPE_WEBHOOK_SECRET is no signing secret: {settings.signing.problem}")
    return settings.endpoints


@functools.cache
def _recover() -> ModuleType:
    # Imported on first use: the bench process imports this module for pubsub_event alone.
    return importlib.import_module("recover_fn.main")


def pubsub_event(
    project: str, topic: str, data: bytes, attributes: dict[str, str] | None = None
) -> CloudEvent:
    """The CloudEvent in which a push subscription delivers a message published to `topic`."""
    message_id = str(uuid.uuid4().int % 10**16)
    source = {
        "id": message_id,
        "source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "specversion": "1.0",
        "datacontenttype": "application/json",
    }
    message = {
        "data": base64.b64encode(data).decode(),
        "attributes": attributes or {},
        "messageId": message_id,
        "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    subscription = f"projects/{project}/subscriptions/{topic}-push"
    return CloudEvent(source, {"message": message, "subscription": subscription})


def payment_event(payment: FailedPayment, project: str) -> CloudEvent:
    """What the ingest function publishes about `payment`, as its push arrives."""
    return pubsub_event(project, "stripe-payment-failed", payment.to_json(), payment.attributes())


@functions_framework.http
def sync_webhook(request: flask.Request) -> tuple[str, int]:
    try:
        payment = parse_webhook(
            request.get_data(), request.headers.get("Stripe-Signature"), _secrets()
        )
    except WebhookRejected as exc:
        return f"rejected: {exc}", 400
    if payment is None:
        return "ignored", 200
    try:
        _recover().recover_payment(payment_event(payment, os.environ["GOOGLE_CLOUD_PROJECT"]))
    except Exception:
        # What the recover function raises is what Pub/Sub would retry: tell Stripe to retry.
        traceback.print_exc()
        return "retry later", 503
    return "done", 200
