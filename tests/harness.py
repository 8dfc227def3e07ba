"""Drives both functions in-process (functions-framework test clients) against the stand-ins.

The send ledger and the topics are in memory by default (`MemoryBackend`), read through the same
ledger code as in production, with a clock the test moves: a workflow test runs in milliseconds.
`EmulatorBackend` puts them in the Pub/Sub and Firestore emulators instead, for what only they can
show (a real publish, the backfill's own publisher)."""

from __future__ import annotations

import base64
import functools
import gc
import importlib.util
import itertools
import json
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any, Protocol
from unittest import mock

import flask
import functions_framework
import pytest
import standardwebhooks
import stripe
from werkzeug.wrappers import Request, Response

from shared.adapters import firestore, publisher
from shared.adapters.documents import Documents
from shared.adapters.firestore import FirestoreDocuments
from shared.adapters.ledger import Ledger
from shared.adapters.memory import MemoryDocuments
from shared.core import clock as clock_module
from shared.core.entry import Entry, EntryKey
from shared.core.event import FailedPayment
from shared.workflow.settings import DEFAULT_FIRESTORE_DATABASE
from standins import LINQ_TOKEN, STRIPE_TEST_KEY, LinqStandin, SlackStandin, StripeStandin, builders
from standins.emulator import DEFAULT_PROJECT, FirestoreEmulator, PubSubEmulator
from standins.serving import Server
from standins.signing_secrets import new_linq_secret, new_stripe_secret
from tests import linq_sdk
from tests.clock import TestClock
from tools import pause

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

ROOT = Path(__file__).resolve().parent.parent
# Made afresh for each test run: the intakes refuse any secret written in the repository.
WEBHOOK_SECRET = new_stripe_secret()
# The Connect endpoint's, which signs connected accounts' events (tests that serve them set it).
CONNECT_SECRET = new_stripe_secret()
LINQ_SECRET = new_linq_secret()
SENDER = "+12025550101"
SECOND_SENDER = "+12025550102"
# The WSGI environ key of the function an instance's test client has its requests served by.
_FUNCTION = "harness.function"
# Held while an instance is loaded: threads of a test may start instances at once, and a load
# patches what every thread sees (functions-framework's registry, gc) and sets sys.modules.
_LOADING = threading.Lock()


@functools.cache
def _served(source: str, target: str, signature: str) -> tuple[flask.Flask, int]:
    """functions-framework's app of one entry point, built once per process by the framework
    itself (~30 ms: Flask, its URL rules, the module's first load, a directory more on sys.path);
    the function its view calls is the one each request's environ names (`_instance`). And
    gc.get_freeze_count() once that first load is over."""

    def function(*args: Any) -> Any:
        return flask.request.environ[_FUNCTION](*args)

    with mock.patch.object(
        functions_framework._function_registry, "get_user_function", return_value=function
    ) as chosen:
        app = functions_framework.create_app(target, str(ROOT / source), signature)
    # Were the framework to find the function another way, every instance would run this load's.
    assert chosen.called, "functions-framework no longer asks get_user_function for the function"
    return app, gc.get_freeze_count()


@functools.cache
def _code(source: str) -> CodeType:
    """A function module's code, compiled once per process (the quick loop may write no
    bytecode)."""
    path = ROOT / source
    return compile(path.read_bytes(), str(path), "exec", dont_inherit=True)


def _instance(source: str, target: str, signature: str) -> Any:
    """A test client of a new instance of an entry point: its module loaded afresh, as
    functions-framework loads it (a new module object, in sys.modules as "main"), with its own
    settings, clients and caches, behind the entry point's app."""
    path = ROOT / source
    with _LOADING:
        app, frozen = _served(source, target, signature)
        spec = importlib.util.spec_from_file_location(
            path.stem, path, submodule_search_locations=[str(path.parent)]
        )
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        # recover_fn freezes the objects alive at its first load in a process, and asks at every
        # load whether that is done: gc.get_freeze_count() walks every frozen object, ~25 ms in
        # a test worker. Its answer is the one counted after the first load: nothing thaws them.
        with app.app_context(), mock.patch.object(gc, "get_freeze_count", return_value=frozen):
            exec(_code(source), module.__dict__)  # noqa: S102 (exec_module, compiled once)
        function = functions_framework._function_registry.get_user_function(
            str(path), module, target
        )
    client = app.test_client()
    client.environ_base[_FUNCTION] = function
    return client


class Backend(Protocol):
    """Where the functions keep the ledger and queue their messages in a test."""

    project: str
    documents: Documents
    # Variables the functions need to reach it.
    env: dict[str, str]

    def add_topic(self, topic: str) -> None: ...

    def pull(self, topic: str) -> list[dict[str, Any]]:
        """The messages published to `topic` since the last pull, as Pub/Sub delivers them."""
        ...

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Have the functions built after this use it."""
        ...


class MemoryTopics:
    """Pub/Sub as the functions' publishers see it: each message kept in order, per topic, with
    the id Pub/Sub would give it, until the test pulls it."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, topic: str) -> None:
        with self._lock:
            self._waiting.setdefault(topic, [])

    def publisher(self, project: str, topic: str) -> _MemoryPublisher:
        return _MemoryPublisher(self, topic)

    def publish(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:
        with self._lock:
            if topic not in self._waiting:
                raise AssertionError(f"no topic {topic!r}: the functions publish to another")
            message_id = str(next(self._ids))
            self._waiting[topic].append(
                {
                    "data": base64.b64encode(data).decode(),
                    "attributes": dict(attributes),
                    "messageId": message_id,
                }
            )
            return message_id

    def pull(self, topic: str) -> list[dict[str, Any]]:
        with self._lock:
            taken, self._waiting[topic] = self._waiting[topic], []
            return taken


class _MemoryPublisher:
    def __init__(self, topics: MemoryTopics, topic: str) -> None:
        self._topics, self._topic = topics, topic

    def publish(self, data: bytes, attributes: dict[str, str]) -> str:
        return self._topics.publish(self._topic, data, attributes)


class MemoryBackend:
    """The ledger and the topics in this process."""

    def __init__(self) -> None:
        self.project = DEFAULT_PROJECT
        self.documents = MemoryDocuments()
        self.topics = MemoryTopics()
        self.env: dict[str, str] = {}

    def add_topic(self, topic: str) -> None:
        self.topics.add(topic)

    def pull(self, topic: str) -> list[dict[str, Any]]:
        return self.topics.pull(topic)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(firestore, "FirestoreDocuments", lambda *_, **__: self.documents)
        monkeypatch.setattr(publisher, "Publisher", self.topics.publisher)


class EmulatorBackend:
    """The ledger in the Firestore emulator (emptied first: our own opt-out list is keyed by
    phone, which tests share) and the topics in the Pub/Sub emulator."""

    def __init__(self, pubsub: PubSubEmulator, store: FirestoreEmulator) -> None:
        self.project = pubsub.project
        self._pubsub = pubsub
        store.clear(pubsub.project, DEFAULT_FIRESTORE_DATABASE)
        self.documents = FirestoreDocuments(
            pubsub.project, DEFAULT_FIRESTORE_DATABASE, emulator_host=store.host
        )
        self.env = {"PUBSUB_EMULATOR_HOST": pubsub.host, "FIRESTORE_EMULATOR_HOST": store.host}

    def add_topic(self, topic: str) -> None:
        self._pubsub.create_topic(topic)
        self._pubsub.create_subscription(f"{topic}-pull", topic)

    def pull(self, topic: str) -> list[dict[str, Any]]:
        return self._pubsub.pull(f"{topic}-pull")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # The functions' ledger is this one's: a test that breaks its store breaks theirs.
        monkeypatch.setattr(firestore, "FirestoreDocuments", lambda *_, **__: self.documents)


class LinqInbox:
    """Where Linq's stand-in sends its webhooks in these tests: each request is kept as it came
    (headers and raw body, signed by the stand-in) for the harness to hand to the intake."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._arrived = threading.Condition()
        self._server = Server(self._keep).start()
        self.url = f"{self._server.url}/linq"

    def _keep(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        with self._arrived:
            self.received.append((dict(request.headers.items()), request.get_data()))
            self._arrived.notify_all()
        return Response(status=200)(environ, start_response)

    def take(self, count: int, timeout: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        """The next `count` webhooks, waiting for them (the stand-in sends a moment later)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"Linq sent {len(self.received)} webhook(s), not {count}")
            taken, self.received = self.received[:count], self.received[count:]
            return taken

    def close(self) -> None:
        self._server.stop()


def log_lines(text: str) -> list[dict[str, Any]]:
    """Every JSON line in captured output (functions-framework may add plain text lines)."""
    entries = []
    for line in text.splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def results(text: str) -> list[dict[str, Any]]:
    """The result lines: those that carry an action."""
    return [entry for entry in log_lines(text) if "action" in entry]


def entry(pipeline: Pipeline, invoice: dict[str, Any], attempt: int = 1) -> Entry:
    """A failed payment's ledger entry."""
    found = pipeline.ledger.entry(EntryKey(invoice["id"], attempt))
    assert found is not None, f"no ledger entry for {invoice['id']}-{attempt}"
    return found


def rewrite(pipeline: Pipeline, invoice: dict[str, Any], attempt: int = 1, **changes: Any) -> None:
    """Change a failed payment's ledger entry as a run in mid-flight would have left it."""
    pipeline.ledger.write_all([replace(entry(pipeline, invoice, attempt), **changes)])


class Pipeline:
    """One test's world: stand-ins, environment and both functions, built on demand."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        stripe_api: StripeStandin,
        linq_api: LinqStandin,
        slack_api: SlackStandin,
        backend: Backend,
    ) -> None:
        self.monkeypatch, self.capsys, self.backend = monkeypatch, capsys, backend
        self.stripe, self.linq, self.slack = stripe_api, linq_api, slack_api
        self.project = backend.project
        # The functions' clock: it stands still until the test moves it (a lease running out,
        # the morning), and starts at the real time, which the signatures are checked against.
        self.clock = TestClock(datetime.now(UTC))
        monkeypatch.setattr(clock_module, "utc_now", self.clock)
        backend.install(monkeypatch)
        # The ledger as the functions keep it, for the test to look at and set up.
        self.ledger = Ledger(backend.documents, clock=self.clock)
        self.topic = f"failed-{uuid.uuid4().hex[:12]}"
        self.linq_topic = f"{self.topic}-linq"
        backend.add_topic(self.topic)
        backend.add_topic(self.linq_topic)
        self.env = {
            "STRIPE_API_KEY": STRIPE_TEST_KEY,
            "STRIPE_API_BASE": stripe_api.url,
            "LINQ_API_KEY": LINQ_TOKEN,
            "LINQ_API_BASE": linq_api.url,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "GOOGLE_CLOUD_PROJECT": backend.project,
            "PUBSUB_TOPIC": self.topic,
            **backend.env,
            "LINQ_WEBHOOK_SECRET": LINQ_SECRET,
            "LINQ_EVENTS_TOPIC": self.linq_topic,
            # Quiet hours are tested on purpose (tests/test_quiet_hours_flow.py); elsewhere a test
            # run at night in California must not defer.
            "QUIET_HOURS": "off",
        }
        self.linq_inbox = LinqInbox()
        linq_api.load(
            {
                "phone_numbers": [builders.linq_line(SENDER)],
                "webhook": {"url": self.linq_inbox.url, "secret": LINQ_SECRET},
            }
        )
        self._ingest: Any = None
        self._recover: Any = None
        self._release: Any = None
        self._apps: dict[str, Any] = {}

    # --- scenario -------------------------------------------------------------------------

    def configure(self, **env: str | None) -> None:
        """Change environment variables before the functions first serve (None unsets)."""
        self.env.update(env)
        self._ingest = self._recover = self._release = None
        self._apps = {}

    def customer_with_invoice(
        self, customer: dict[str, Any] | None = None, **invoice: Any
    ) -> dict[str, Any]:
        """Store a customer and an open invoice for them; returns the invoice."""
        customer = customer or builders.customer()
        data = builders.invoice(customer, **invoice)
        self.stripe.load({"customers": [customer], "invoices": [data]})
        return data

    # --- the functions --------------------------------------------------------------------

    def _app(self, source: str, target: str, signature: str) -> Any:
        for name, value in self.env.items():
            if value is None:
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.monkeypatch.setenv(name, value)
        return _instance(source, target, signature)

    @property
    def ingest(self) -> Any:
        if self._ingest is None:
            self._ingest = self._app("ingest_fn/main.py", "stripe_webhook", "http")
        return self._ingest

    @property
    def recover_client(self) -> Any:
        if self._recover is None:
            self._recover = self._app("recover_fn/main.py", "recover_payment", "cloudevent")
        return self._recover

    def instance(self) -> Any:
        """Another instance of the recover function (its module loaded afresh: its own clients
        and caches), for `push(..., instance=)`."""
        return self._app("recover_fn/main.py", "recover_payment", "cloudevent")

    def app(self, source: str, target: str, signature: str) -> Any:
        """A test client of one entry point, built once per configuration."""
        if target not in self._apps:
            self._apps[target] = self._app(source, target, signature)
        return self._apps[target]

    def post_linq(
        self,
        event: dict[str, Any],
        *,
        secret: str = LINQ_SECRET,
        webhook_id: str | None = None,
        timestamp: int | None = None,
    ) -> Any:
        """A Linq webhook, signed as Linq signs (Standard Webhooks), to the Linq intake."""
        body = json.dumps(event)
        webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
        stamp = timestamp or int(time.time())
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signature = standardwebhooks.Webhook(key).sign(
            webhook_id, datetime.fromtimestamp(stamp, UTC), body
        )
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signature,
            "Content-Type": "application/json",
        }
        intake = self.app("ingest_fn/main.py", "linq_webhook", "http")
        return intake.post("/", data=body, headers=headers)

    def hear(self, event: dict[str, Any], **signing: Any) -> list[dict[str, Any]]:
        """A Linq event through the intake and the subscriber; every log line of both. The event
        must be one Linq sends (its SDK's model): what the product is seen to do with a sample
        Linq would never send proves nothing (bad input goes to `post_linq`)."""
        linq_sdk.check(event)
        self.capsys.readouterr()
        answer = self.post_linq(event, **signing)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        self._run_linq_subscriber()
        return log_lines(self.capsys.readouterr().out)

    def _run_linq_subscriber(self) -> None:
        subscriber = self.app("recover_fn/main.py", "linq_event", "cloudevent")
        for message in self.backend.pull(self.linq_topic):
            subscriber.post(
                "/",
                headers={
                    "ce-id": message["messageId"],
                    "ce-specversion": "1.0",
                    "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
                    "ce-source": "//pubsub.googleapis.com/projects/demo-proj/topics/linq",
                },
                json={"message": message},
            )

    def relay(self, count: int) -> list[dict[str, Any]]:
        """The next `count` webhooks Linq's stand-in sent, as it signed them, through the intake
        and the subscriber; every log line of both. Each must be one Linq sends (`hear`)."""
        self.capsys.readouterr()
        intake = self.app("ingest_fn/main.py", "linq_webhook", "http")
        for headers, body in self.linq_inbox.take(count):
            linq_sdk.check(body)
            answer = intake.post("/", data=body, headers=headers)
            assert answer.status_code == 200, answer.get_data(as_text=True)
        self._run_linq_subscriber()
        return log_lines(self.capsys.readouterr().out)

    def sweep(self) -> Any:
        """Run the release function once, as Cloud Scheduler's tick through its topic would."""
        if self._release is None:
            self._release = self._app("recover_fn/main.py", "release_deferred", "cloudevent")
        return self._release.post(
            "/",
            headers={
                "ce-id": uuid.uuid4().hex,
                "ce-specversion": "1.0",
                "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
                "ce-source": "//pubsub.googleapis.com/projects/demo-proj/topics/release-sweep",
            },
            json={"message": {"data": "", "messageId": uuid.uuid4().hex[:12]}},
        )

    def post_webhook(
        self, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
    ) -> Any:
        body = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(
            body, secret, timestamp=timestamp or int(time.time())
        )
        return self.ingest.post(
            "/", data=body, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
        )

    def published(self) -> list[dict[str, Any]]:
        """Messages the functions put on the failed-payment topic (pulled and acknowledged)."""
        return self.backend.pull(self.topic)

    def push(self, message: dict[str, Any], instance: Any = None) -> Any:
        """Hand one Pub/Sub message to the recover function (or to `instance`) as Eventarc
        would."""
        return (instance or self.recover_client).post(
            "/",
            headers={
                "ce-id": message.get("messageId", uuid.uuid4().hex),
                "ce-specversion": "1.0",
                "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
                "ce-source": f"//pubsub.googleapis.com/projects/demo-proj/topics/{self.topic}",
            },
            json={
                "message": message,
                "subscription": f"projects/demo-proj/subscriptions/{self.topic}",
            },
        )

    def recover(
        self, payment: FailedPayment, message_id: str | None = None, instance: Any = None
    ) -> Any:
        """Run the recover function (or `instance`) on `payment` as if it had come through
        Pub/Sub.

        Reuse a `message_id` to model Pub/Sub redelivering the same message; a new one models
        another message (a duplicate publish) for the same event.
        """
        return self.push(
            {
                "data": base64.b64encode(payment.to_json()).decode(),
                "attributes": payment.attributes(),
                "messageId": message_id or uuid.uuid4().hex[:12],
            },
            instance,
        )

    def deliver(
        self, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET
    ) -> list[dict[str, Any]]:
        """Webhook in (signed with `secret`: the Connect endpoint's for a connected account's
        event), every published message pushed to recover; returns the result lines."""
        self.capsys.readouterr()
        answer = self.post_webhook(event, secret=secret)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        for message in self.published():
            self.push(message)
        return results(self.capsys.readouterr().out)

    def control(self, *argv: str) -> tuple[int, str, str]:
        """`./dev pause ...` or `./dev resume` (argv starts with which) on this world's ledger and
        clock; its exit status, stdout and stderr. Who runs it is the gcloud account of a
        `gcloud` on PATH (see `fake_gcloud`)."""
        for name, value in self.env.items():
            if value is not None:
                self.monkeypatch.setenv(name, value)
        self.monkeypatch.setattr(pause, "open_ledger", lambda *_: (self.ledger, "here"))
        self.capsys.readouterr()
        status = pause.main(list(argv))
        captured = self.capsys.readouterr()
        return status, captured.out, captured.err

    def payment(self, invoice: dict[str, Any], **changes: Any) -> FailedPayment:
        fields = {
            "event_id": builders.new_id("evt_1", 23),
            "invoice_id": invoice["id"],
            "customer_id": invoice["customer"],
            "attempt_count": invoice["attempt_count"],
            "livemode": invoice["livemode"],
        }
        fields.update(changes)
        return FailedPayment(**fields)

    def run(
        self,
        invoice: dict[str, Any],
        message_id: str | None = None,
        instance: Any = None,
        **changes: Any,
    ) -> tuple[int, list[dict[str, Any]]]:
        """Recover `invoice` once; returns the HTTP status and every JSON log line."""
        self.capsys.readouterr()
        status = self.recover(self.payment(invoice, **changes), message_id, instance).status_code
        return status, log_lines(self.capsys.readouterr().out)

    def result(
        self,
        invoice: dict[str, Any],
        message_id: str | None = None,
        instance: Any = None,
        **changes: Any,
    ) -> dict[str, Any]:
        """Recover `invoice` once, expecting an acknowledged run with exactly one result line."""
        status, lines = self.run(invoice, message_id, instance, **changes)
        found = [entry for entry in lines if "action" in entry]
        assert status == 200, lines
        assert len(found) == 1, lines
        return found[0]


def customer_calls(linq: Any) -> list[dict[str, Any]]:
    """Linq requests about a customer: everything but the line list, which a cold instance
    fetches ahead of need, in parallel with the invoice read."""
    return [r for r in linq.requests() if r["path"] != "/v3/phone_numbers"]
