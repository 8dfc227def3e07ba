"""The project's own error tree: adapters translate vendor errors into these, once."""

from __future__ import annotations

from typing import Any

from shared.core.log import redact, redact_value


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
