"""Standard Webhooks for the stand-ins: the signature, and a sender that retries as Linq does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

# Linq retries 5xx, 429 and network errors with backoff (for ~30 minutes); a few short waits
# keep the stand-in's tests quick while still showing every retry.
RETRY_BACKOFF_S = (0.1, 0.3, 0.9)
TIMEOUT_S = 10.0


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """`v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed with the base64 part
    of `whsec_...`. Written out here, not taken from the `standardwebhooks` library: the product
    verifies with that library, and a shared mistake would pass unnoticed."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, webhook_id: str, body: str) -> dict[str, str]:
    """The headers of a Standard Webhooks POST of `body`, signed now."""
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }


class WebhookSender:
    """Posts signed events from one background thread, in the order they were queued, each once
    the answer to the request that caused it has been written. A connection error, 5xx or 429
    is tried again after each of RETRY_BACKOFF_S; any other answer is final."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhooks")
        self._stopping = threading.Event()
        # Each attempt, oldest first: url, event, attempt (from 1), status (None when the
        # connection failed), error. Only the sending thread appends, and notifies `_attempted`.
        self.attempts: list[dict[str, Any]] = []
        self._attempted = threading.Condition()

    def send(
        self, url: str, secret: str, event: dict[str, Any], answered: threading.Event | None
    ) -> None:
        """Queue `event`, to go once `answered` is set (None: no request caused it). It keeps its
        place: what is queued after it waits for it."""
        self._pool.submit(self._deliver, url, secret, json.dumps(event), answered)

    def wait(self, count: int, timeout_s: float) -> bool:
        """Whether `count` attempts have been made, waiting up to `timeout_s` for them."""
        with self._attempted:
            return self._attempted.wait_for(lambda: len(self.attempts) >= count, timeout_s)

    def close(self) -> None:
        """Drop what is still queued; an attempt under way is not retried."""
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _deliver(self, url: str, secret: str, body: str, answered: threading.Event | None) -> None:
        event = json.loads(body)
        if answered is not None:
            # Set by the request's thread even when the answer could not be written.
            answered.wait()
        for attempt, wait in enumerate((0.0, *RETRY_BACKOFF_S), start=1):
            if self._stopping.wait(wait):
                return
            # Signed at each attempt: receivers reject a timestamp older than five minutes.
            headers = signed_headers(secret, event["event_id"], body)
            try:
                response = requests.post(url, data=body, headers=headers, timeout=TIMEOUT_S)
            except requests.RequestException as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            else:
                status, error = response.status_code, None
            with self._attempted:
                self.attempts.append(
                    {
                        "url": url,
                        "event": event,
                        "attempt": attempt,
                        "status": status,
                        "error": error,
                    }
                )
                self._attempted.notify_all()
            if status is not None and status < 500 and status != 429:
                return
