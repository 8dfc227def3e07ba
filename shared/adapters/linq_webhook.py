"""Linq webhook checks for the intake: the Standard Webhooks signature, its age, the shape.

Verified with the `standardwebhooks` library (the one Linq's own SDK uses). The headers are
classified first, by our own rules, so that a stranger's malformed header gets a short reason
and a 400, never the library's unexpected error (it splits `v1,<base64>` by unpacking and
base64-decodes without checking, which raise other errors than its own).
"""

from __future__ import annotations

import binascii
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.adapters.webhook import body_text, load_json
from shared.core.errors import WebhookRejected

# Linq retries for about 30 minutes; the specification's tolerance is five minutes either way.
TOLERANCE_SECONDS = 300
_ID = re.compile(r"[\x21-\x7e]{1,256}")
_SIGNATURE = re.compile(r"v\d+,[A-Za-z0-9+/]+={0,2}")
# Unix seconds; twelve digits last until the year 33658, and a longer run is no timestamp (and
# past 4,300 digits not even an int Python will parse).
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class LinqWebhook:
    """A verified Linq event: its webhook id (the deduplication key) and the event itself."""

    webhook_id: str
    event_type: str
    event: Mapping[str, Any]

    def to_json(self) -> bytes:
        return json.dumps(self.event, separators=(",", ":"), sort_keys=True).encode()

    def attributes(self) -> dict[str, str]:
        return {"webhook_id": self.webhook_id, "event_type": self.event_type}


def check_headers(headers: Mapping[str, str], now: float) -> None:
    """The three Standard Webhooks headers are there, readable, and recent."""
    found = {
        name: headers.get(name) for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    }
    missing = [name for name, value in found.items() if not value]
    if missing:
        raise WebhookRejected(f"missing {', '.join(missing)} header")
    if not all(str(value).isascii() for value in found.values()):
        raise WebhookRejected("non-ASCII webhook header")
    if not _ID.fullmatch(str(found["webhook-id"])):
        raise WebhookRejected("malformed webhook-id header")
    timestamp = str(found["webhook-timestamp"])
    if not _TIMESTAMP.fullmatch(timestamp):
        raise WebhookRejected("malformed webhook-timestamp header")
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise WebhookRejected("webhook timestamp too old or too new")
    signatures = str(found["webhook-signature"]).split(" ")
    if not all(_SIGNATURE.fullmatch(entry) for entry in signatures):
        raise WebhookRejected("malformed webhook-signature header")
    if not any(entry.startswith("v1,") for entry in signatures):
        raise WebhookRejected("no v1 signature")


def parse_linq_webhook(body: bytes, headers: Mapping[str, str], secret: str) -> LinqWebhook:
    """The event in a verified Linq webhook; raises WebhookRejected with a short reason."""
    check_headers(headers, time.time())
    text = body_text(body)
    wanted = {
        name: str(headers.get(name))
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    }
    try:
        Webhook(secret).verify(text, wanted, json_parse=False)
    except (WebhookVerificationError, binascii.Error, ValueError):
        raise WebhookRejected("signature does not match") from None
    event = load_json(text)
    if not isinstance(event, dict) or not isinstance(event.get("event_type"), str):
        raise WebhookRejected("body is not a Linq event (no event_type)")
    return LinqWebhook(wanted["webhook-id"], event["event_type"], event)
