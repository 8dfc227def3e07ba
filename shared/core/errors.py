"""The project's own error tree: adapters translate vendor errors into these, once."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from shared.core.log import redact, redact_value
from shared.core.quote import cut_window
from shared.core.signing_secret import Signing
from shared.core.text import ELLIPSIS, clean, shorten

# What of a vendor's error message our errors keep (their reason, the log line, the team's
# note): the vendor's own sentences are short ("Rate limited. Try again in 45 seconds.").
MAX_VENDOR_MESSAGE = 200
# A value we sent that is at least this long is looked for in the vendor's answer, whole or cut
# short from its start: a text or a link, not a `to` or a `type`.
_ECHO_MIN = 16
_OUR_WORDS = "[what we sent]"
_OUR_BODY = "[request body dropped]"
# A JSON object that carries a message's content: from there on, the vendor is quoting a request.
_OBJECT = re.compile(r"\{\s*\"")
_CONTENT_KEY = re.compile(r'"(?:parts|value|idempotency_key)"\s*:')


def vendor_message(message: Any, request: Any = None, limit: int = MAX_VENDOR_MESSAGE) -> str:
    """A vendor's error message as our errors may carry it: on one line, at most `limit`
    characters, masked, and without the request it may quote back.

    Vendors echo what they were sent (`Invalid body: {"to": [...], "message": {...}}`, `text
    "Hi Jane, ..." contains a link`), and what we send is a customer's text and payment link:
    every string of `request` (the JSON body we sent) that is long enough to be content is
    replaced wherever it shows, whole, JSON-escaped or cut short; and from a JSON object that
    carries a message's content on, the rest is dropped. Only a window of the message is read.
    """
    text = message if isinstance(message, str) else json.dumps(message, default=str)
    window, cut = cut_window(text, 4 * limit)
    for value in _content(request):
        window = _without_echo(window, value)
    body = _OBJECT.search(window)
    if body is not None and _CONTENT_KEY.search(window, body.start()):
        window = window[: body.start()] + _OUR_BODY
    said = clean(redact(window))
    return shorten(said + ELLIPSIS if cut else said, limit)


def _content(request: Any) -> list[str]:
    """The strings of a request body long enough to be content, longest first (a link inside
    a text is replaced with the text)."""
    found: list[str] = []
    pending = [request]
    while pending:
        value = pending.pop()
        if isinstance(value, str) and len(value) >= _ECHO_MIN:
            found.append(value)
        elif isinstance(value, Mapping):
            pending.extend(value.values())
        elif isinstance(value, list | tuple):
            pending.extend(value)
    return sorted(found, key=len, reverse=True)


def _without_echo(text: str, value: str) -> str:
    """`text` with `value` replaced wherever it starts, as written or JSON-escaped, however much
    of it follows (a vendor may cut a quoted text short)."""
    for form in dict.fromkeys(
        [value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]]
    ):
        head = form[:_ECHO_MIN]
        start = text.find(head)
        while start != -1:
            end = start + len(head)
            while end < len(text) and end - start < len(form) and text[end] == form[end - start]:
                end += 1
            text = text[:start] + _OUR_WORDS + text[end:]
            start = text.find(head, start + len(_OUR_WORDS))
    return text


class DunningError(Exception):
    """Base of every error the project raises on purpose; anything else is a bug."""


class ConfigError(DunningError):
    """A setting is missing or malformed; the message names the variable and what was expected."""


class SecretUnavailable(ConfigError):
    """Secret Manager could not serve a secret just now (no credentials, an outage, a timeout, a
    value that is not text); the message names the variable and the secret, never the value."""


class WebhookRejected(DunningError):
    """The request is not an authentic, readable Stripe event; the message says why, briefly.

    The message is the ingest function's 400 answer, so it never echoes the request back.
    """


class NotSetUp(DunningError):
    """A webhook that only a signing secret not set up yet could verify (`signings`, which name
    their variables and problems, never their values): the intake answers 503, and the sender
    retries until that secret is in place."""

    def __init__(self, signings: tuple[Signing, ...]) -> None:
        super().__init__(", ".join(signing.variable for signing in signings))
        self.signings = signings


class MalformedEventError(WebhookRejected):
    """A Stripe event that reports a failed payment but lacks its invoice id or its own id."""


class RecoveryError(DunningError):
    """Base of every error the recovery workflow understands.

    ``detail`` carries operator-facing facts (vendor, status, code, retry_after...) for the log
    line; it never holds secrets, message bodies or full phone numbers.
    """

    def __init__(self, reason: str, **detail: Any) -> None:
        # Masked here, at the source: the text also reaches tracebacks, which no logger redacts.
        reason = redact(reason)
        super().__init__(reason)
        self.reason = reason
        self.detail = {k: redact_value(v) for k, v in detail.items() if v is not None}


class RetryableError(RecoveryError):
    """A transient failure (outage, timeout, rate limit): raise so Pub/Sub redelivers the event."""


class PermanentError(RecoveryError):
    """A failure that a retry cannot fix: log it once with its cause and acknowledge the event."""


class NotFoundError(PermanentError):
    """The object asked for does not exist (in this mode, for this key)."""


class OptedOutError(PermanentError):
    """The recipient has opted out of texts from this account (Linq 403, code 2024)."""


class UnreachableError(PermanentError):
    """The provider refuses to route to this recipient at all (an unsupported region, say)."""


class LineIneligibleError(RetryableError):
    """The sending line may not start new activity right now (Linq 403, code 2027)."""


class MalformedMessageError(PermanentError):
    """A Pub/Sub message this function cannot read: not base64, not JSON, or missing fields."""


class LeaseLostError(RecoveryError):
    """Another run took this failed payment over (or it was finished meanwhile): this run stops
    without sending anything more, and its message is acknowledged."""
