"""Push delivery with a chosen concurrency, modelling Pub/Sub in front of n function slots (why
the emulator's own push cannot: the burst section of the report, in bench/burst.py).

The stack's push subscription becomes a pull subscription, delivered from with `slots`
concurrent pushes in the raw Pub/Sub push format. A 2xx is acknowledged; otherwise the message
stays leased and is pushed again after exponential backoff between the retry policy's bounds,
and after `max_attempts` it is published to the dead-letter topic and acknowledged, as Pub/Sub
does. (The emulator's own redelivery after `modifyAckDeadline` proved unreliable under load: a
few messages never came back.)
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Any

import requests

from standins.stack import LocalStack

LEASE_S = 60
# The retry policy's bounds as the stack sets them (LocalStack's defaults).
MIN_BACKOFF_S, MAX_BACKOFF_S = 1.0, 5.0


class Pusher:
    """`slots` threads, each: take a due retry or pull one message, push it, settle it."""

    def __init__(self, stack: LocalStack, slots: int, *, max_attempts: int) -> None:
        self._emulator = stack.emulator
        self._subscription = stack.emulator.subscription_path(stack.push_subscription)
        self._base = f"{stack.emulator.url}/v1/{self._subscription}"
        self._endpoint = stack.push_endpoint
        self._slots = slots
        self._dead_letter_topic = stack.dead_letter_topic
        self._max_attempts = max_attempts
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._retries: list[tuple[float, int, dict[str, Any], int]] = []
        self._sequence = itertools.count()

    def start(self) -> Pusher:
        # No push endpoint: the emulator stops its own push loops and the subscription is pulled.
        requests.post(
            f"{self._base}:modifyPushConfig", json={"pushConfig": {}}, timeout=10
        ).raise_for_status()
        for index in range(self._slots):
            thread = threading.Thread(target=self._work, name=f"pusher-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=130)

    def _next(self, emulator: requests.Session) -> tuple[dict[str, Any], int] | None:
        """A retry that is due, else a message pulled from the subscription, with its attempt."""
        with self._lock:
            if self._retries and self._retries[0][0] <= time.monotonic():
                _, _, item, attempt = heapq.heappop(self._retries)
                return item, attempt
        answer = emulator.post(
            f"{self._base}:pull", json={"maxMessages": 1, "returnImmediately": True}, timeout=10
        ).json()
        received = answer.get("receivedMessages") or []
        return (received[0], 1) if received else None

    def _work(self) -> None:
        emulator, function = requests.Session(), requests.Session()
        while not self._stop.is_set():
            # A failed emulator call leaves the message leased: it comes back when that ends.
            try:
                due = self._next(emulator)
                if due is not None:
                    self._deliver(emulator, function, *due)
            except (requests.RequestException, ValueError):
                time.sleep(0.05)
                continue
            if due is None:
                time.sleep(0.02)

    def _deliver(
        self,
        emulator: requests.Session,
        function: requests.Session,
        item: dict[str, Any],
        attempt: int,
    ) -> None:
        message = item["message"]
        envelope = {
            "message": {
                "data": message.get("data", ""),
                "attributes": message.get("attributes", {}),
                "messageId": message["messageId"],
                "publishTime": message.get("publishTime"),
            },
            "subscription": self._subscription,
            "deliveryAttempt": attempt,
        }
        try:
            status = function.post(self._endpoint, json=envelope, timeout=120).status_code
        except requests.RequestException:
            status = 0
        delivered = 200 <= status < 300
        if not delivered and attempt < self._max_attempts:
            # Keep the lease while backing off: the emulator must not hand the message out again.
            emulator.post(
                f"{self._base}:modifyAckDeadline",
                json={"ackIds": [item["ackId"]], "ackDeadlineSeconds": LEASE_S},
                timeout=10,
            )
            due = time.monotonic() + min(MAX_BACKOFF_S, MIN_BACKOFF_S * 2 ** (attempt - 1))
            with self._lock:
                heapq.heappush(self._retries, (due, next(self._sequence), item, attempt + 1))
            return
        if not delivered:
            self._emulator.publish(
                self._dead_letter_topic,
                b"",
                {**message.get("attributes", {}), "bench_dead_lettered": message["messageId"]},
            )
        emulator.post(
            f"{self._base}:acknowledge", json={"ackIds": [item["ackId"]]}, timeout=10
        ).raise_for_status()
