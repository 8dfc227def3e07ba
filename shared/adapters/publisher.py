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

from shared.adapters.google import rest_session
from shared.core.errors import RetryableError

# The whole publish, retries included, must end well inside Stripe's webhook timeout so that a
# Pub/Sub outage turns into a 503 (and a Stripe retry) rather than a hung request.
TOTAL_TIMEOUT_S = 4.0
ATTEMPT_TIMEOUT_S = 2.0
_SCOPE = "https://www.googleapis.com/auth/pubsub"
_TRANSIENT_HTTP = frozenset({409, 429, 500, 502, 503, 504})
_TRANSIENT_AUTH = frozenset({"TransportError", "RefreshError"})
_TRANSIENT_GRPC = frozenset(
    {"ServiceUnavailable", "DeadlineExceeded", "InternalServerError", "Aborted", "Unknown"}
    | {"ResourceExhausted"}
)


class _Attempt(Exception):
    """One publish attempt failed; `transient` says whether another attempt may succeed."""

    def __init__(self, error: str, detail: str, transient: bool) -> None:
        super().__init__(error)
        self.error, self.detail, self.transient = error, detail[:200], transient


class _Grpc:
    """The generated client's synchronous publish (imported off the request path)."""

    def __init__(self, topic_path: str) -> None:
        from google.pubsub_v1 import PublisherClient, PubsubMessage

        options: dict[str, Any] = {}
        emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
        if emulator:
            from google.auth.credentials import AnonymousCredentials

            options = {
                "client_options": {"api_endpoint": emulator},
                "credentials": AnonymousCredentials(),
            }
        self._message = PubsubMessage
        self._client = PublisherClient(**options)
        self._topic_path = topic_path

    def publish(self, data: bytes, attributes: dict[str, str], timeout: float) -> str:
        try:
            answer = self._client.publish(
                topic=self._topic_path,
                messages=[self._message(data=data, attributes=attributes)],
                retry=None,  # Publisher.publish retries, over either transport
                timeout=timeout,
            )
            return str(answer.message_ids[0])
        except Exception as exc:
            error = type(exc).__name__
            raise _Attempt(error, str(exc), error in _TRANSIENT_GRPC) from exc


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
        """Publish and wait for the server's confirmation; returns the message id.

        The one retry policy of both transports: transient failures are tried again with
        backoff (0.1 s doubling to 1 s) inside TOTAL_TIMEOUT_S; anything else, or the budget
        spent, is a RetryableError: the event is not safely queued, so the caller answers 503
        and Stripe (or Linq) sends it again.
        """
        deadline = time.monotonic() + TOTAL_TIMEOUT_S
        delay = 0.1
        while True:
            timeout = min(ATTEMPT_TIMEOUT_S, max(deadline - time.monotonic(), 0.1))
            try:
                return self._attempt(data, attributes, timeout)
            except _Attempt as failed:
                if not failed.transient or time.monotonic() + delay >= deadline:
                    raise RetryableError(
                        f"publish to {self._topic} failed: {failed.error}", error=failed.detail
                    ) from failed
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _attempt(self, data: bytes, attributes: dict[str, str], timeout: float) -> str:
        grpc = self._grpc
        if grpc is not None:
            return grpc.publish(data, attributes, timeout)
        message_id = self._publish_rest(data, attributes, timeout)
        self._load_grpc_soon()
        return message_id

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
                self._session, base = rest_session(
                    _SCOPE, "PUBSUB_EMULATOR_HOST", "https://pubsub.googleapis.com"
                )
                self._url = f"{base}/v1/{self._topic_path}:publish"
            return self._session, self._url

    def _publish_rest(self, data: bytes, attributes: dict[str, str], timeout: float) -> str:
        body = {"messages": [{"data": base64.b64encode(data).decode(), "attributes": attributes}]}
        try:
            session, url = self._rest()
            answer = session.post(url, json=body, timeout=timeout)
            if answer.ok:
                return str(answer.json()["messageIds"][0])
        except (requests.RequestException, ValueError, KeyError, IndexError) as exc:
            raise _Attempt(type(exc).__name__, str(exc), transient=True) from exc
        except Exception as exc:
            # google-auth's own errors, which are no requests errors: finding the credentials
            # (DefaultCredentialsError) or fetching a token inside post() from the metadata
            # server (TransportError, RefreshError: a blip there is worth another attempt).
            error = type(exc).__name__
            raise _Attempt(error, str(exc), error in _TRANSIENT_AUTH) from exc
        transient = answer.status_code in _TRANSIENT_HTTP
        raise _Attempt(f"HTTP {answer.status_code}", answer.text, transient)
