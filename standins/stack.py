"""The whole product on one machine: Pub/Sub emulator, stand-ins and both functions as processes.

Used by the sandbox, the end-to-end tests and the benchmarks. Everything listens on 127.0.0.1,
every process is started in its own session and stopped by process id, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import flask
import requests

from shared.workflow.settings import (
    DEFAULT_LINQ_EVENTS_TOPIC,
    DEFAULT_TOPIC,
    SWEEP_TOPIC,
    is_product_variable,
    read_by,
)
from standins.client import StandinClient
from standins.emulator import DEFAULT_PROJECT, FirestoreEmulator, PubSubEmulator
from standins.linq_api import LINQ_TOKEN
from standins.processes import REPO, Child, FunctionProcess, free_port, wait_for
from standins.processes import StackError as StackError  # re-exported: the sandbox imports it
from standins.recording_proxy import create_app as recording_proxy
from standins.serving import Server
from standins.signing_secrets import new_linq_secret, new_stripe_secret
from standins.stripe_api import STRIPE_TEST_KEY, signed

# The signing secrets of the sandbox's own webhooks (Stripe's, and the Linq subscription's):
# made afresh by each process that runs a stack, and handed to its functions. A fixed one would
# be in the repository for anyone to sign with, and the intakes refuse such values.
SANDBOX_WEBHOOK_SECRET = new_stripe_secret()
SANDBOX_LINQ_SECRET = new_linq_secret()


# name -> (source, target, signature type) of the product's functions
FUNCTIONS = {
    "ingest": ("ingest_fn/main.py", "stripe_webhook", "http"),
    "recover": ("recover_fn/main.py", "recover_payment", "cloudevent"),
    "release": ("recover_fn/main.py", "release_deferred", "cloudevent"),
    "linq-intake": ("ingest_fn/main.py", "linq_webhook", "http"),
    "linq-events": ("recover_fn/main.py", "linq_event", "cloudevent"),
}


def base_env() -> dict[str, str]:
    """The caller's environment for a process of ours, without the product's variables: a
    sandbox function never inherits a key or a setting from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not is_product_variable(k)}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def signed_webhook(
    event: Mapping[str, Any], secret: str = SANDBOX_WEBHOOK_SECRET, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """What Stripe would send, signed with the sandbox's secret unless told otherwise."""
    return signed(event, secret, timestamp)


def _push_described(request: flask.Request) -> dict[str, Any]:
    """What the push journal keeps of a push: the message's id and attributes (its data, which
    names a customer, stays out)."""
    message = (request.get_json(silent=True) or {}).get("message") or {}
    return {"message_id": message.get("messageId"), "attributes": message.get("attributes") or {}}


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects logged one per line in `path` (other lines are skipped)."""
    return JsonLog(path).entries()


class JsonLog:
    """The JSON objects a growing log holds one per line, each line parsed once: a test that
    polls a log thousands of lines long reads only what was added since it last looked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._read = 0
        self._entries: list[dict[str, Any]] = []

    def entries(self) -> list[dict[str, Any]]:
        """Every entry so far, oldest first; a line not yet ended waits for the next look."""
        try:
            with self.path.open("rb") as log:
                log.seek(self._read)
                added = log.read()
        except FileNotFoundError:
            return []
        whole = added[: added.rfind(b"\n") + 1]
        self._read += len(whole)
        for line in whole.decode(errors="replace").splitlines():
            if line.startswith("{") and line.endswith("}"):
                with contextlib.suppress(ValueError):
                    self._entries.append(json.loads(line))
        return list(self._entries)


class LocalStack:
    """Start with `with LocalStack(...) as stack:`; all processes are gone after the block."""

    def __init__(
        self,
        *,
        standins: bool = True,
        latency_ms: float = 0.0,
        ingest_env: Mapping[str, str] | None = None,
        recover_env: Mapping[str, str] | None = None,
        release: bool = False,
        linq_events: bool = False,
        stripe_args: tuple[str, ...] = (),
        linq_args: tuple[str, ...] = (),
        min_backoff_s: float = 1.0,
        max_backoff_s: float = 5.0,
        max_delivery_attempts: int = 5,
        ingest_port: int = 0,
        slack: bool = False,
        workdir: Path | None = None,
        journal_pushes: bool = False,
    ) -> None:
        self._standins = standins
        self._latency_ms = latency_ms
        self._extra_env: dict[str, dict[str, str]] = {name: {} for name in FUNCTIONS}
        self._extra_env.update(ingest=dict(ingest_env or {}), recover=dict(recover_env or {}))
        self._standin_args = {"stripe": stripe_args, "linq": linq_args, "slack": ()}
        self._retry = (min_backoff_s, max_backoff_s, max_delivery_attempts)
        self._ports = {name: free_port() for name in FUNCTIONS}
        if ingest_port:
            self._ports["ingest"] = ingest_port
        self._release = release
        self._linq_events = linq_events
        self._slack = slack
        # Pub/Sub's pushes to the recover function pass through a recording proxy: `pushes()`.
        self._push_proxy: Server | None = None
        self._journal_pushes = journal_pushes
        # A working directory of its own is removed when the stack stops; the caller's stays.
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="dunning-stack-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.emulator = PubSubEmulator(self.log(PubSubEmulator.name))
        self.firestore = FirestoreEmulator(self.log(FirestoreEmulator.name))
        self._processes: dict[str, Child] = {e.name: e for e in (self.emulator, self.firestore)}
        self.urls: dict[str, str] = {}
        # The topics deploy.sh creates when their variables are unset.
        self.topic = DEFAULT_TOPIC
        self.linq_topic = DEFAULT_LINQ_EVENTS_TOPIC
        self.dead_letter_topic = f"{self.topic}-dead-letter"
        self.dead_letter_subscription = f"{self.topic}-dead-letter-pull"
        self.push_subscription = f"{self.topic}-recover-push"
        # A second, pull subscription on the topic: lets tests see exactly what was published.
        self.audit_subscription = f"{self.topic}-audit"
        self._http = requests.Session()
        self._json_logs: dict[str, JsonLog] = {}

    # --- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> Self:
        try:
            self.emulator.launch()
            self.firestore.launch()
            self.emulator.wait_ready()
            self.firestore.wait_ready()
            if self._standins:
                for name, extra in self._standin_args.items():
                    self._start_standin(name, extra)
            self._create_topics()
            self.start_function("recover")
            if self._journal_pushes:
                # As long as the function's own timeout (deploy.sh): a push is never cut short.
                app = recording_proxy(
                    f"127.0.0.1:{self._ports['recover']}", _push_described, timeout=120
                )
                self._push_proxy = Server(app).start()
            self.create_push_subscription()
            if self._release:
                self.start_function("release")
                self._push_to("release", SWEEP_TOPIC)
            if self._linq_events:
                self.start_function("linq-events")
                self._push_to("linq-events", self.linq_topic)
                self.start_function("linq-intake")
                # The Linq stand-in sends its webhooks to the intake.
                webhook = {"url": self.urls["linq-intake"], "secret": SANDBOX_LINQ_SECRET}
                self.linq.load({"webhook": webhook})
            self.start_function("ingest")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process this stack started, by process group, side by side: the
        emulators last, so that no function meets a missing emulator on its way out. Then
        remove the working directory if the stack made it."""
        emulators = {self.emulator.name, self.firestore.name}
        for last in (False, True):
            group = [p for name, p in self._processes.items() if (name in emulators) == last]
            for process in group:
                process.terminate()
            for process in group:
                process.stop()
        if self._push_proxy is not None:
            self._push_proxy.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def pid(self, name: str) -> int | None:
        """The process id of one of this stack's processes (a function, a stand-in, an
        emulator's name), while it runs."""
        return self._processes[name].pid

    @property
    def pids(self) -> list[int]:
        """Every process id this stack started and that is still running."""
        return [process.pid for process in self._processes.values() if process.pid is not None]

    # --- processes --------------------------------------------------------------------------

    def _start_standin(self, name: str, extra: tuple[str, ...]) -> None:
        def command(port: int) -> list[str]:
            latency = ["--latency-ms", str(self._latency_ms)]
            return [sys.executable, "-m", "standins", name, f"--port={port}", *latency, *extra]

        process = Child(f"{name} stand-in", command, free_port(), self.log(name), base_env())
        self._processes[name] = process
        self.urls[name] = process.start(15).url

    def start_function(self, name: str, **extra_env: str) -> None:
        """Start `ingest`, `recover` or `release` on its port (the same one again after `kill`)."""
        env = {**self.function_env(name), **extra_env}
        process = FunctionProcess(name, FUNCTIONS[name], self._ports[name], self.log(name), env)
        self._processes[name] = process
        self.urls[name] = process.start().url

    def kill(self, name: str) -> None:
        """SIGKILL a process, as a crashed or preempted instance would stop."""
        self._processes.pop(name).kill()

    def function_env(self, name: str) -> dict[str, str]:
        """The environment a function runs with in this stack: of the values below, those it
        reads (the readers in shared.workflow.settings); the stand-ins' secrets and addresses
        only when the stack runs them."""
        offered = {
            "GOOGLE_CLOUD_PROJECT": DEFAULT_PROJECT,
            "PUBSUB_EMULATOR_HOST": self.emulator.host,
            "FIRESTORE_EMULATOR_HOST": self.firestore.host,
            "PUBSUB_TOPIC": self.topic,
            "LINQ_EVENTS_TOPIC": self.linq_topic,
            "LINQ_WEBHOOK_SECRET": SANDBOX_LINQ_SECRET,
        }
        if self._standins:
            offered.update(
                STRIPE_WEBHOOK_SECRET=SANDBOX_WEBHOOK_SECRET,
                STRIPE_API_KEY=STRIPE_TEST_KEY,
                STRIPE_API_BASE=self.urls["stripe"],
                LINQ_API_KEY=LINQ_TOKEN,
                LINQ_API_BASE=self.urls["linq"],
            )
            if self._slack:
                offered["SLACK_WEBHOOK_URL"] = f"{self.urls['slack']}/services/T000/B000/sandbox"
        read = {v.name: offered[v.name] for v in read_by(name) if v.name in offered}
        return {**base_env(), **read, **self._extra_env[name]}

    @property
    def push_endpoint(self) -> str:
        """Where Pub/Sub pushes the topic's messages: the recover function (through the push
        journal when there is one)."""
        if self._push_proxy is not None:
            return f"{self._push_proxy.url}/projects/{DEFAULT_PROJECT}/topics/{self.topic}"
        return self._endpoint("recover", self.topic)

    def _endpoint(self, name: str, topic: str) -> str:
        return f"{self.urls[name]}/projects/{DEFAULT_PROJECT}/topics/{topic}"

    def _push_to(self, name: str, topic: str) -> None:
        self.emulator.create_subscription(
            f"{topic}-push", topic, push_endpoint=self._endpoint(name, topic)
        )

    def create_push_subscription(self) -> None:
        """Push to the recover function with backoff and dead-lettering, as deploy.sh sets up."""
        min_s, max_s, attempts = self._retry
        self.emulator.create_subscription(
            self.push_subscription,
            self.topic,
            push_endpoint=self.push_endpoint,
            min_backoff_s=min_s,
            max_backoff_s=max_s,
            dead_letter_topic=self.dead_letter_topic,
            max_delivery_attempts=attempts,
        )

    def sweep(self) -> None:
        """One tick of the release sweep, as Cloud Scheduler publishes it."""
        self.emulator.publish(SWEEP_TOPIC, b"{}")

    def _create_topics(self) -> None:
        for topic in (self.topic, self.dead_letter_topic, SWEEP_TOPIC, self.linq_topic):
            self.emulator.create_topic(topic)
        self.emulator.create_subscription(self.dead_letter_subscription, self.dead_letter_topic)
        self.emulator.create_subscription(self.audit_subscription, self.topic)

    def restart_emulator(self) -> None:
        """Bring a stopped emulator back on the same port, with the same topics."""
        self.emulator.start()
        self._create_topics()
        self.create_push_subscription()

    # --- using it ---------------------------------------------------------------------------

    def standin(self, name: str) -> StandinClient:
        return StandinClient(self.urls[name])

    @property
    def stripe(self) -> StandinClient:
        return self.standin("stripe")

    @property
    def linq(self) -> StandinClient:
        return self.standin("linq")

    @property
    def slack(self) -> StandinClient:
        return self.standin("slack")

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def post_webhook(
        self,
        event: Mapping[str, Any],
        *,
        secret: str = SANDBOX_WEBHOOK_SECRET,
        timestamp: int | None = None,
        timeout: float = 30.0,
    ) -> requests.Response:
        body, headers = signed_webhook(event, secret, timestamp)
        return self._http.post(self.urls["ingest"], data=body, headers=headers, timeout=timeout)

    def pushes(self) -> list[dict[str, Any]]:
        """Each push Pub/Sub has made to the recover function and had answered, oldest first:
        `message_id`, `attributes` and the function's `status` (2xx acknowledges the message;
        502: the function was not there to answer). Needs `journal_pushes`."""
        if self._push_proxy is None:
            raise StackError("this stack keeps no push journal (journal_pushes=False)")
        answer = self._http.get(f"{self._push_proxy.url}/_journal", timeout=10)
        return list(answer.json())

    def entries(self, name: str) -> list[dict[str, Any]]:
        """The JSON lines one process has logged so far, oldest first."""
        return self._json_logs.setdefault(name, JsonLog(self.log(name))).entries()

    def results(self) -> list[dict[str, Any]]:
        """Result lines the recover function has logged so far, oldest first."""
        return [entry for entry in self.entries("recover") if "action" in entry]

    def wait_until(
        self, condition: Callable[[], bool], timeout: float = 30.0, what: str = "the condition"
    ) -> None:
        wait_for(condition, timeout, lambda: f"timed out after {timeout:.0f} s waiting for {what}")
