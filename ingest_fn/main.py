"""HTTP entry points: verify a Stripe webhook and queue a failed payment, or a payment that may
follow a text, for the recover function; verify a Linq webhook and queue it for its subscriber.
Both answer fast: the work happens behind Pub/Sub."""

from __future__ import annotations

import functools

import flask
import functions_framework
from werkzeug.exceptions import ClientDisconnected

from shared.adapters.linq_webhook import parse_linq_webhook
from shared.adapters.publisher import Publisher
from shared.adapters.webhook import MAX_BODY_BYTES, parse_webhook
from shared.core.errors import ConfigError, RetryableError, WebhookRejected
from shared.core.event import InvoicePaid
from shared.core.log import ERROR, INFO, WARNING, log
from shared.workflow.settings import IngestSettings, LinqIntakeSettings

Response = tuple[str, int, dict[str, str]]
TEXT = {"Content-Type": "text/plain; charset=utf-8"}


@functools.cache
def _settings() -> IngestSettings:
    return IngestSettings.from_env()


@functools.cache
def _publisher() -> Publisher:
    settings = _settings()
    return Publisher(settings.project, settings.topic)


def _answer(status: int, text: str) -> Response:
    return text, status, TEXT


def _closing(status: int, text: str, **headers: str) -> flask.Response:
    """An answer given without reading the body (whole)."""
    # Streamed, because functions-framework drains the rest of a request body after a plain
    # response (and fails with a 500 when the body is cut short); and the connection is closed
    # rather than reused with unread bytes in it.
    return flask.Response(
        iter([text.encode()]), status=status, headers={**TEXT, "Connection": "close", **headers}
    )


def _read(request: flask.Request) -> bytes | flask.Response:
    """The body of a POST of at most MAX_BODY_BYTES, or the answer to give instead."""
    if request.method != "POST":
        return _closing(405, "method not allowed", Allow="POST")
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _closing(413, "payload too large")
    try:
        # At most one byte past the limit, so a body without a length is never read whole.
        body = request.stream.read(MAX_BODY_BYTES + 1)
    except ClientDisconnected:
        body = b""
    if len(body) < (request.content_length or 0):
        # The client went away before sending what it declared.
        return _closing(400, "rejected: body shorter than its Content-Length")
    if len(body) > MAX_BODY_BYTES:
        return _closing(413, "payload too large")
    return body


@functions_framework.http
def stripe_webhook(request: flask.Request) -> Response | flask.Response:
    body = _read(request)
    if isinstance(body, flask.Response):
        return body
    try:
        settings = _settings()
    except ConfigError as exc:
        log(ERROR, f"configuration error: {exc}")
        return _answer(500, "misconfigured")
    if settings.webhook_secret is None:
        # The first deployment, before the Stripe endpoint exists: nothing can be verified, and a
        # guessable secret must never verify. Stripe retries a 503 (for up to three days in live
        # mode), so what arrives before the real secret is stored is delivered after.
        log(
            WARNING,
            f"webhook not verified: STRIPE_WEBHOOK_SECRET is not the endpoint's signing secret "
            f"yet ({settings.not_set_up}); store the whsec_... secret Stripe gave for the "
            "endpoint and redeploy",
        )
        return _answer(503, "endpoint not set up yet, retry later")
    try:
        payment = parse_webhook(
            body, request.headers.get("Stripe-Signature"), settings.webhook_secret
        )
    except WebhookRejected as exc:
        log(WARNING, f"webhook rejected: {exc}", bytes=len(body))
        return _answer(400, f"rejected: {exc}")
    if payment is None:
        return _answer(200, "ignored: not a failed payment")
    if isinstance(payment, InvoicePaid) and payment.first_try:
        # The ordinary renewal, paid at its first attempt: nobody was texted about it, so it
        # costs one verified webhook and nothing more.
        return _answer(200, "ignored: paid at its first attempt")
    try:
        message_id = _publisher().publish(payment.to_json(), payment.attributes())
    except RetryableError as exc:
        log(
            ERROR,
            "not queued: Pub/Sub unavailable",
            event_id=payment.event_id,
            invoice_id=payment.invoice_id,
            reason=exc.reason,
        )
        return _answer(503, "queue unavailable, retry later")
    log(
        INFO,
        "queued",
        event_id=payment.event_id,
        invoice_id=payment.invoice_id,
        message_id=message_id,
    )
    return _answer(200, "queued")


@functools.cache
def _linq_settings() -> LinqIntakeSettings:
    return LinqIntakeSettings.from_env()


@functools.cache
def _linq_publisher() -> Publisher:
    settings = _linq_settings()
    return Publisher(settings.project, settings.topic)


@functions_framework.http
def linq_webhook(request: flask.Request) -> Response | flask.Response:
    """Linq's webhooks (delivery, replies, line health): verified, queued, answered 2xx fast.

    Linq retries 5xx and 429 for about 30 minutes and nothing else, so an unavailable queue or a
    secret not set up yet is a 503, and anything a stranger sends a 400."""
    body = _read(request)
    if isinstance(body, flask.Response):
        return body
    try:
        settings = _linq_settings()
    except ConfigError as exc:
        log(ERROR, f"configuration error: {exc}")
        return _answer(500, "misconfigured")
    if settings.webhook_secret is None:
        log(
            WARNING,
            f"Linq webhook not verified: LINQ_WEBHOOK_SECRET is not the subscription's signing "
            f"secret yet ({settings.not_set_up}); run ./dev linq-webhook and redeploy",
        )
        return _answer(503, "endpoint not set up yet, retry later")
    try:
        event = parse_linq_webhook(body, request.headers, settings.webhook_secret)
    except WebhookRejected as exc:
        log(WARNING, f"Linq webhook rejected: {exc}", bytes=len(body))
        return _answer(400, f"rejected: {exc}")
    try:
        message_id = _linq_publisher().publish(event.to_json(), event.attributes())
    except RetryableError as exc:
        log(
            ERROR,
            "Linq event not queued: Pub/Sub unavailable",
            webhook_id=event.webhook_id,
            reason=exc.reason,
        )
        return _answer(503, "queue unavailable, retry later")
    log(
        INFO,
        "Linq event queued",
        webhook_id=event.webhook_id,
        event_type=event.event_type,
        message_id=message_id,
    )
    return _answer(200, "queued")
