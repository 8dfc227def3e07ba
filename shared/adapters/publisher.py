"""Pub/Sub publisher for the ingest function: REST until the gRPC client is ready, then gRPC.

A cold instance answers its first webhooks over a keep-alive REST session (no gRPC import on the
request's path); after its first publish the instance loads the generated gRPC client in a
background thread and switches to its synchronous unary publish, the fastest warm path.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from typing import Any

import requests

from shared.core.errors import RetryableError

# The whole publish, retries included, must end well inside Stripe's webhook timeout so that a
# Pub/Sub outage turns into a 503 (and a Stripe retry) rather than a hung request.
TOTAL_TIMEOUT_S = 4.0
ATTEMPT_TIMEOUT_S = 2.0
_SCOPE = "https://www.googleapis.com/auth/pubsub"
_TRANSIENT_HTTP = frozenset({409, 429, 500, 502, 503, 504})


class _Grpc:
    """The generated client's synchronous publish (imported off the request path)."""

    def __init__(self, topic_path: str) -> None:
        from google.api_core import exceptions, retry
        from google.pubsub_v1 import PublisherClient, PubsubMessage

        options: dict[str, Any] = {}
        emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
        if emulator:
            from google.auth.credentials import AnonymousCredentials

            options = {
                "client_options": {"api_endpoint": emulator},
                "credentials": AnonymousCredentials(),
            }
        self._retry = retry.Retry(
            initial=0.1,
            maximum=1.0,
            multiplier=2.0,
            timeout=TOTAL_TIMEOUT_S,
            predicate=retry.if_exception_type(
                exceptions.ServiceUnavailable,
                exceptions.DeadlineExceeded,
                exceptions.InternalServerError,
                exceptions.Aborted,
                exceptions.Unknown,
                exceptions.ResourceExhausted,
            ),
        )
        self._message = PubsubMessage
        self._client = PublisherClient(**options)
        self._topic_path = topic_path

    def publish(self, data: bytes, attributes: dict[str, str]) -> str:
        answer = self._client.publish(
            topic=self._topic_path,
            messages=[self._message(data=data, attributes=attributes)],
            retry=self._retry,
            timeout=ATTEMPT_TIMEOUT_S,
        )
        return str(answer.message_ids[0])


class Publisher:
    """Publishes to one topic; nothing is created at import."""

    def __init__(self, project: str, topic: str) -> None:
        self._topic = topic
        self._topic_path = f"projects/{project}/topics/{topic}"
        self._session: requests.Session | None = None
        self._url = ""
        self._grpc: _Grpc | None = None
        self._loading = False
        self._lock = threading.Lock()

    def publish(self, data: bytes, attributes: dict[str, str]) -> str:
        """Publish and wait for the server's confirmation; returns the message id."""
        grpc = self._grpc
        if grpc is not None:
            try:
                return grpc.publish(data, attributes)
            except Exception as exc:
                raise self._failed(type(exc).__name__, str(exc)) from exc
        message_id = self._publish_rest(data, attributes)
        self._load_grpc_soon()
        return message_id

    def _failed(self, error: str, detail: str) -> RetryableError:
        """The event is not safely queued: the caller answers 503 so Stripe sends it again."""
        return RetryableError(f"publish to {self._topic} failed: {error}", error=detail[:200])

    def _load_grpc_soon(self) -> None:
        with self._lock:
            if self._loading:
                return
            self._loading = True

        def load() -> None:
            try:
                self._grpc = _Grpc(self._topic_path)
            except Exception:  # REST keeps working; the next cold start tries again
                return

        threading.Thread(target=load, name="pubsub-grpc-loader", daemon=True).start()

    def _rest(self) -> tuple[requests.Session, str]:
        with self._lock:
            if self._session is None:
                emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
                if emulator:
                    self._session = requests.Session()
                    base = f"http://{emulator}"
                else:
                    import google.auth
                    from google.auth.transport.requests import AuthorizedSession

                    credentials, _ = google.auth.default(scopes=[_SCOPE])
                    self._session = AuthorizedSession(credentials)
                    base = "https://pubsub.googleapis.com"
                self._url = f"{base}/v1/{self._topic_path}:publish"
            return self._session, self._url

    def _publish_rest(self, data: bytes, attributes: dict[str, str]) -> str:
        session, url = self._rest()
        body = {"messages": [{"data": base64.b64encode(data).decode(), "attributes": attributes}]}
        deadline = time.monotonic() + TOTAL_TIMEOUT_S
        delay = 0.1
        while True:
            remaining = deadline - time.monotonic()
            try:
                answer = session.post(
                    url, json=body, timeout=min(ATTEMPT_TIMEOUT_S, max(remaining, 0.1))
                )
                if answer.ok:
                    return str(answer.json()["messageIds"][0])
                transient = answer.status_code in _TRANSIENT_HTTP
                error, detail = f"HTTP {answer.status_code}", answer.text[:200]
            except (requests.RequestException, ValueError, KeyError, IndexError) as exc:
                transient, error, detail = True, type(exc).__name__, str(exc)[:200]
            if not transient or time.monotonic() + delay >= deadline:
                raise self._failed(error, detail)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
