"""Pub/Sub and Firestore emulators on loopback ports: one Java process each, driven over REST."""

from __future__ import annotations

import base64
import glob
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import requests

from standins.processes import Child, free_port

DEFAULT_PROJECT = "demo-proj"


def find_jar(pattern: str, component: str) -> Path:
    """An emulator jar of the installed Google Cloud CLI."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise RuntimeError("gcloud is not on PATH: install the Google Cloud CLI and its emulators")
    found = sorted(glob.glob(str(Path(os.path.realpath(gcloud)).parent.parent / pattern)))
    if not found:
        sdk_root = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        found = sorted(glob.glob(str(Path(sdk_root) / pattern)))
    if not found:
        raise RuntimeError(f"an emulator is missing: gcloud components install {component}")
    return Path(found[-1])


# Both emulators bind IPv6 [::1] or "localhost" by default: the IPv4 loopback is given explicitly.
_JVM = ("java", "-Xmx256m", "-XX:TieredStopAtLevel=1")


class Emulator(Child):
    """A Google Cloud emulator run as one Java process (faster than `gcloud beta emulators`,
    and a single process id to stop). `launch` several, then `wait_ready` on each: they start
    in ~1-2 s, so launching all before waiting on any saves that much."""

    name = "emulator"
    # The jar (a glob below the Cloud SDK's root), the gcloud component that installs it, and
    # the java arguments that run it ("{jar}" stands for its path).
    jar = ""
    component = ""
    java_args: tuple[str, ...] = ()

    def __init__(self, log: Path, project: str = DEFAULT_PROJECT) -> None:
        """`log`: where its output goes (the caller's to remove)."""
        self.project = project
        self._http = requests.Session()
        jar = str(find_jar(self.jar, self.component))
        java = [*_JVM, *(arg.format(jar=jar) for arg in self.java_args), "--host=127.0.0.1"]
        super().__init__(self.name, lambda port: [*java, f"--port={port}"], free_port(), log)

    @property
    def host(self) -> str:
        """The value for PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST."""
        return f"127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            return self._http.get(self.url + "/", timeout=1).text.strip() == "Ok"
        except requests.RequestException:
            return False


class FirestoreEmulator(Emulator):
    """The Firestore emulator (native mode), for the send ledger."""

    name = "firestore-emulator"
    jar = "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
    component = "cloud-firestore-emulator"
    java_args = (
        "-Duser.language=en",
        "-cp",
        "{jar}",
        "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
        "start",
    )

    def clear(self, project: str = DEFAULT_PROJECT, database: str = "(default)") -> None:
        """Delete every document of one database (the emulator's own endpoint)."""
        path = f"/emulator/v1/projects/{project}/databases/{database}/documents"
        self._http.delete(self.url + path, timeout=10).raise_for_status()


class PubSubEmulator(Emulator):
    """The Pub/Sub emulator, with the admin calls the stack and tests need."""

    name = "pubsub-emulator"
    jar = "platform/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar"
    component = "pubsub-emulator"
    java_args = ("-jar", "{jar}")

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def subscription_path(self, subscription: str) -> str:
        return f"projects/{self.project}/subscriptions/{subscription}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, f"{self.url}/v1/{path}", json=body, timeout=10)
        if response.status_code == 409 and method == "PUT":
            return None  # already exists: creating is idempotent for our purposes
        response.raise_for_status()
        return response.json() if response.content else None

    def create_topic(self, topic: str) -> None:
        self._call("PUT", self.topic_path(topic), {})

    def create_subscription(
        self,
        subscription: str,
        topic: str,
        *,
        push_endpoint: str | None = None,
        min_backoff_s: float | None = None,
        max_backoff_s: float | None = None,
        dead_letter_topic: str | None = None,
        max_delivery_attempts: int = 5,
    ) -> None:
        body: dict[str, Any] = {"topic": self.topic_path(topic), "ackDeadlineSeconds": 60}
        if push_endpoint is not None:
            body["pushConfig"] = {"pushEndpoint": push_endpoint}
        if min_backoff_s is not None and max_backoff_s is not None:
            body["retryPolicy"] = {
                "minimumBackoff": f"{min_backoff_s}s",
                "maximumBackoff": f"{max_backoff_s}s",
            }
        if dead_letter_topic is not None:
            body["deadLetterPolicy"] = {
                "deadLetterTopic": self.topic_path(dead_letter_topic),
                "maxDeliveryAttempts": max_delivery_attempts,
            }
        self._call("PUT", self.subscription_path(subscription), body)

    def delete_subscription(self, subscription: str) -> None:
        self._call("DELETE", self.subscription_path(subscription))

    def publish(self, topic: str, data: bytes, attributes: dict[str, str] | None = None) -> str:
        message: dict[str, Any] = {"data": base64.b64encode(data).decode()}
        if attributes:
            message["attributes"] = attributes
        answer = self._call("POST", f"{self.topic_path(topic)}:publish", {"messages": [message]})
        return str(answer["messageIds"][0])

    def pull(self, subscription: str, max_messages: int = 100) -> list[dict[str, Any]]:
        """Pull and acknowledge what is waiting; each item is a PubsubMessage as JSON."""
        answer = self._call(
            "POST",
            f"{self.subscription_path(subscription)}:pull",
            {"maxMessages": max_messages, "returnImmediately": True},
        )
        received = (answer or {}).get("receivedMessages") or []
        if received:
            self._call(
                "POST",
                f"{self.subscription_path(subscription)}:acknowledge",
                {"ackIds": [item["ackId"] for item in received]},
            )
        return [item["message"] for item in received]
