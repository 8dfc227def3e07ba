"""Pub/Sub publisher for the ingest function: one client per instance, bounded in time."""

from __future__ import annotations

import threading
from typing import Any

from shared.errors import RetryableError

# The whole publish, retries included, must end well inside Stripe's webhook timeout so that a
# Pub/Sub outage turns into a 503 (and a Stripe retry) rather than a hung request.
TOTAL_TIMEOUT_S = 4.0
ATTEMPT_TIMEOUT_S = 2.0
# A 1 ms batch window: awaited publishes go out almost at once, and a burst still shares batches.
MAX_LATENCY_S = 0.001


class Publisher:
    """Publishes to one topic; the gRPC client is created on first use, never at import."""

    def __init__(self, project: str, topic: str) -> None:
        self._project, self._topic = project, topic
        self._client: Any = None
        self._topic_path = ""
        self._lock = threading.Lock()

    def _ensure_client(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.api_core import exceptions, retry
                from google.cloud import pubsub_v1

                transient = retry.if_exception_type(
                    exceptions.ServiceUnavailable,
                    exceptions.DeadlineExceeded,
                    exceptions.InternalServerError,
                    exceptions.Aborted,
                    exceptions.Unknown,
                    exceptions.ResourceExhausted,
                )
                self._client = pubsub_v1.PublisherClient(
                    batch_settings=pubsub_v1.types.BatchSettings(max_latency=MAX_LATENCY_S),
                    publisher_options=pubsub_v1.types.PublisherOptions(
                        retry=retry.Retry(
                            initial=0.1,
                            maximum=1.0,
                            multiplier=2.0,
                            timeout=TOTAL_TIMEOUT_S,
                            predicate=transient,
                        ),
                        timeout=ATTEMPT_TIMEOUT_S,
                    ),
                )
                self._topic_path = self._client.topic_path(self._project, self._topic)
            return self._client

    def publish(self, data: bytes, attributes: dict[str, str]) -> str:
        """Publish and wait for the server's confirmation; returns the message id."""
        client = self._ensure_client()
        future = client.publish(self._topic_path, data, **attributes)
        try:
            return str(future.result(timeout=TOTAL_TIMEOUT_S + ATTEMPT_TIMEOUT_S))
        except Exception as exc:
            # Any failure here (RetryError, TimeoutError, NotFound for a missing topic) means
            # the event is not safely queued; the caller answers 503 so Stripe sends it again.
            raise RetryableError(
                f"publish to {self._topic} failed: {type(exc).__name__}", error=str(exc)[:200]
            ) from exc
