"""HTTP entry points: verify a Stripe webhook and queue a failed payment, or a payment that may
follow a text, for the recover function; verify a Linq webhook and queue it for its subscriber.
Both answer fast: the work happens behind Pub/Sub.

Each request is judged on its headers first (method, declared length, the secret, the signature
headers), and only then is its body read, within WEBHOOK_BODY_SECONDS: a stranger can hold an
instance no longer than that."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import flask
import functions_framework

from shared.adapters.linq_webhook import check_headers, parse_linq_webhook
from shared.adapters.publisher import Publisher
from shared.adapters.request_body import BodyNotRead, declared_too_large, read_body
from shared.adapters.webhook import check_signature_header, parse_webhook
from shared.core.errors import (
    ConfigError,
    NotSetUp,
    RetryableError,
    SecretUnavailable,
    WebhookRejected,
)
from shared.core.event import FailedPayment, InvoicePaid
from shared.core.log import ERROR, INFO, WARNING, log
from shared.core.outcome import Action, log_result, skipped
from shared.core.signing_secret import Signing
from shared.workflow.settings import IngestSettings, IntakeSettings, LinqIntakeSettings

Response = tuple[str, int, dict[str, str]]
Intake = TypeVar("Intake", bound=IntakeSettings)
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
NOT_SET_UP = "endpoint not set up yet, retry later"


@dataclass(frozen=True)
class _Sender:
    """Who sends an intake its webhooks, as its log lines and answers name them."""

    label: str
    owner: str
    fix: str


STRIPE = _Sender(
    "webhook",
    "endpoint's",
    "store the whsec_... secret Stripe gave for the endpoint and redeploy",
)
LINQ = _Sender("Linq webhook", "subscription's", "run ./dev linq-webhook and redeploy")


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


def _receive(
    request: flask.Request,
    sender: _Sender,
    settings_of: Callable[[], Intake],
    check: Callable[[Mapping[str, str], float], None],
) -> tuple[Intake, bytes] | flask.Response:
    """The intake's settings and the request's body, or the answer to give instead. Everything
    that can be judged from the headers is, before a byte of the body is read."""
    if request.method != "POST":
        return _closing(405, "method not allowed", Allow="POST")
    if declared_too_large(request):
        return _closing(413, "payload too large")
    settings = _settings_or_answer(settings_of, sender)
    if isinstance(settings, flask.Response):
        return settings
    try:
        check(request.headers, time.time())
    except WebhookRejected as exc:
        log(WARNING, f"{sender.label} rejected: {exc}", declared_bytes=request.content_length)
        return _closing(400, f"rejected: {exc}")
    try:
        body = read_body(request, settings.body_seconds)
    except BodyNotRead as exc:
        log(WARNING, f"{sender.label} rejected: {exc}", declared_bytes=request.content_length)
        return _closing(exc.status, exc.answer)
    return settings, body


def _settings_or_answer(
    settings_of: Callable[[], Intake], sender: _Sender
) -> Intake | flask.Response:
    """The intake's settings with a real signing secret, or the answer to give instead."""
    try:
        settings = settings_of()
    except SecretUnavailable as exc:
        # Nothing can be verified without the secret; both senders retry a 503, and the next
        # request asks Secret Manager again.
        log(WARNING, f"{sender.label} not verified: {exc}")
        return _closing(503, "signing secret unavailable, retry later")
    except ConfigError as exc:
        log(ERROR, f"configuration error: {exc}")
        return _closing(500, "misconfigured")
    if not any(signing.secret for signing in settings.signings):
        # The first deployment, before the sender's endpoint exists: nothing can be verified,
        # and a guessable secret must never verify.
        _not_set_up(sender, settings.signings)
        return _closing(503, NOT_SET_UP)
    return settings


def _not_set_up(sender: _Sender, signings: tuple[Signing, ...]) -> None:
    """Say why a webhook only a secret not set up yet could verify is answered 503. Both senders
    retry a 503 (Stripe for up to three days, Linq for about 30 minutes), so what arrives
    meanwhile is delivered once the secret is in place."""
    pending = "; ".join(
        f"{signing.variable} is not the {sender.owner} signing secret yet ({signing.problem})"
        for signing in signings
        if signing.secret is None
    )
    log(WARNING, f"{sender.label} not verified: {pending}; {sender.fix}")


def _queue(
    publisher: Publisher, data: bytes, attributes: dict[str, str], what: str, **ids: str | None
) -> Response:
    """Publish and answer: 200 once Pub/Sub has it, 503 (the sender retries) when it cannot."""
    try:
        pubsub_message_id = publisher.publish(data, attributes)
    except RetryableError as exc:
        log(ERROR, f"{what}not queued: Pub/Sub unavailable", reason=exc.reason, **ids)
        return _answer(503, "queue unavailable, retry later")
    log(INFO, f"{what}queued", pubsub_message_id=pubsub_message_id, **ids)
    return _answer(200, "queued")


def _check_stripe_signature(headers: Mapping[str, str], now: float) -> None:
    check_signature_header(headers.get("Stripe-Signature"), now)


@functions_framework.http
def stripe_webhook(request: flask.Request) -> Response | flask.Response:
    received = _receive(request, STRIPE, _settings, _check_stripe_signature)
    if isinstance(received, flask.Response):
        return received
    settings, body = received
    try:
        payment = parse_webhook(body, request.headers.get("Stripe-Signature"), settings.endpoints)
    except NotSetUp as exc:
        _not_set_up(STRIPE, exc.signings)
        return _answer(503, NOT_SET_UP)
    except WebhookRejected as exc:
        log(WARNING, f"webhook rejected: {exc}", bytes=len(body))
        return _answer(400, f"rejected: {exc}")
    if payment is None:
        return _answer(200, "ignored: not a failed payment")
    if isinstance(payment, InvoicePaid) and payment.first_try:
        # The ordinary renewal, paid at its first attempt: nobody was texted about it, so it
        # costs one verified webhook and nothing more.
        return _answer(200, "ignored: paid at its first attempt")
    if not settings.accounts.serves(payment.account):
        # A connected account the platform has not enabled: its customers must not get a text
        # from the platform's line under the platform's brand.
        log_result(
            skipped(
                Action.ACCOUNT_NOT_ENABLED, f"{payment.account} is not in STRIPE_CONNECT_ACCOUNTS"
            ),
            invoice_id=payment.invoice_id,
            customer_id=payment.customer_id,
            event_id=payment.event_id,
            attempt=payment.attempt_count if isinstance(payment, FailedPayment) else None,
            account=payment.account,
            event_type=payment.event_type if isinstance(payment, FailedPayment) else None,
        )
        return _answer(200, "ignored: connected account not enabled")
    return _queue(
        _publisher(),
        payment.to_json(),
        payment.attributes(),
        "",
        event_id=payment.event_id,
        invoice_id=payment.invoice_id,
    )


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
    received = _receive(request, LINQ, _linq_settings, check_headers)
    if isinstance(received, flask.Response):
        return received
    settings, body = received
    try:
        event = parse_linq_webhook(body, request.headers, settings.signing.secret)
    except WebhookRejected as exc:
        log(WARNING, f"Linq webhook rejected: {exc}", bytes=len(body))
        return _answer(400, f"rejected: {exc}")
    return _queue(
        _linq_publisher(),
        event.to_json(),
        event.attributes(),
        "Linq event ",
        webhook_id=event.webhook_id,
        event_type=event.event_type,
    )
