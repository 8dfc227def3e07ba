"""The ingest function: verify, publish once confirmed, refuse everything else clearly."""

import base64
import http.client
import json
import select
import socket
import time
import uuid
from dataclasses import dataclass

import pytest
import requests
import stripe

from shared.adapters.request_body import MAX_BODY_BYTES
from standins import builders
from standins.emulator import free_port
from standins.processes import FunctionProcess
from standins.stack import FUNCTIONS, base_env, json_lines, signed_webhook
from tests.harness import CONNECT_SECRET, LINQ_SECRET, WEBHOOK_SECRET, log_lines

ACTION_REQUIRED = "invoice.payment_action_required"


@pytest.fixture
def pipeline(emulated_pipeline):
    """The ingest publishes with the product's own publisher: to the Pub/Sub emulator."""
    return emulated_pipeline


def failed_event(kind: str = "invoice.payment_failed"):
    invoice = builders.invoice("cus_Ingest1", id="in_Ingest1", attempt_count=2)
    return builders.payment_failed_event(invoice, id="evt_Ingest1", created=1795600000, type=kind)


@pytest.mark.parametrize("kind", ["invoice.payment_failed", ACTION_REQUIRED])
def test_failed_payment_is_published_then_acknowledged(pipeline, kind):
    answer = pipeline.post_webhook(failed_event(kind))
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "queued")
    [message] = pipeline.published()
    assert message["attributes"] == {
        "event_id": "evt_Ingest1",
        "invoice_id": "in_Ingest1",
        "event_type": kind,
    }
    assert json.loads(base64.b64decode(message["data"])) == {
        "attempt_count": 2,
        "customer_id": "cus_Ingest1",
        "event_id": "evt_Ingest1",
        "event_type": kind,
        # When Stripe reported the failure (the event's `created`): the surge guard's window.
        "failed_at": 1795600000,
        "invoice_id": "in_Ingest1",
        "livemode": False,
    }


def test_both_events_of_one_3d_secure_attempt_are_queued_as_the_same_payment(pipeline):
    # Stripe sends both for an attempt that needs authentication: each is queued, and the
    # recover function makes them one text (tests/test_decline_flow.py).
    invoice = builders.invoice("cus_Ingest1", id="in_Ingest1", attempt_count=2)
    for kind in (ACTION_REQUIRED, "invoice.payment_failed"):
        answer = pipeline.post_webhook(builders.payment_failed_event(invoice, type=kind))
        assert answer.status_code == 200
    payloads = [json.loads(base64.b64decode(m["data"])) for m in pipeline.published()]
    assert sorted(p["event_type"] for p in payloads) == sorted(
        ["invoice.payment_failed", ACTION_REQUIRED]
    )
    assert {(p["invoice_id"], p["attempt_count"]) for p in payloads} == {("in_Ingest1", 2)}


def test_queued_line_names_the_event_but_holds_no_body(pipeline):
    pipeline.capsys.readouterr()
    pipeline.post_webhook(failed_event())
    [line] = log_lines(pipeline.capsys.readouterr().out)
    assert (line["severity"], line["message"], line["event_id"], line["invoice_id"]) == (
        "INFO",
        "queued",
        "evt_Ingest1",
        "in_Ingest1",
    )
    assert "data" not in line
    assert "jane@example.com" not in json.dumps(line)
    # The Pub/Sub message, by a name of its own: `message_id` is Linq's, in the Linq lines.
    assert line["pubsub_message_id"]
    assert "message_id" not in line


def test_thin_event_is_published(pipeline):
    answer = pipeline.post_webhook(builders.thin_payment_failed_event("in_Thin1", id="evt_Thin1"))
    assert answer.status_code == 200
    [message] = pipeline.published()
    assert message["attributes"]["invoice_id"] == "in_Thin1"


def test_other_event_types_are_acknowledged_and_not_published(pipeline):
    answer = pipeline.post_webhook({"id": "evt_2", "type": "customer.updated", "data": {}})
    assert answer.status_code == 200
    assert pipeline.published() == []


@pytest.mark.parametrize("kind", ["invoice.payment_failed", ACTION_REQUIRED])
@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"secret": "whsec_forged"}, "signature does not match"),
        ({"timestamp": int(time.time()) - 301}, "signature timestamp too old"),
    ],
)
def test_forged_or_stale_webhook_is_refused_and_not_published(pipeline, kwargs, reason, kind):
    answer = pipeline.post_webhook(failed_event(kind), **kwargs)
    assert (answer.status_code, answer.get_data(as_text=True)) == (400, f"rejected: {reason}")
    assert pipeline.published() == []


def test_missing_signature_is_refused(pipeline):
    answer = pipeline.ingest.post("/", data=json.dumps(failed_event()))
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        400,
        "rejected: missing Stripe-Signature header",
    )
    assert pipeline.published() == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_only_post_is_allowed(pipeline, method):
    answer = pipeline.ingest.open("/", method=method)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert pipeline.published() == []


def test_oversized_body_is_refused_before_verification(pipeline):
    answer = pipeline.ingest.post("/", data=b"x" * (1024 * 1024 + 1))
    assert answer.status_code == 413
    assert pipeline.published() == []


def test_pubsub_unavailable_answers_503_within_seconds(pipeline):
    pipeline.configure(PUBSUB_EMULATOR_HOST=f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(failed_event())
    elapsed = time.monotonic() - started
    assert answer.status_code == 503
    [line] = log_lines(pipeline.capsys.readouterr().out)
    assert (line["severity"], line["event_id"]) == ("ERROR", "evt_Ingest1")
    # A hang guard, not a speed check: unbounded, the client would retry for 600 s.
    assert elapsed < 30, elapsed


def test_missing_configuration_is_a_500_naming_the_variable(pipeline):
    pipeline.configure(STRIPE_WEBHOOK_SECRET=None)
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(failed_event())
    assert answer.status_code == 500
    [line] = log_lines(pipeline.capsys.readouterr().out)
    assert line["message"].startswith("configuration error: STRIPE_WEBHOOK_SECRET is required")


def test_non_ascii_signature_header_is_a_400_not_a_500(pipeline):
    # The stripe library's comparison raises TypeError on a non-ASCII signature.
    answer = pipeline.ingest.post(
        "/", data=json.dumps(failed_event()), headers={"Stripe-Signature": "t=1,v1=\xe9"}
    )
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        400,
        "rejected: non-ASCII Stripe-Signature header",
    )
    assert pipeline.published() == []


def test_correctly_signed_deeply_nested_body_is_a_400_not_a_500(pipeline):
    answer = pipeline.post_webhook({"id": "evt_deep", "data": json.loads("[" * 100 + "]" * 100)})
    assert answer.status_code == 200  # deep but readable: not a failed payment, ignored
    body = '{"a":' * 5000 + "1" + "}" * 5000
    header = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET)
    answer = pipeline.ingest.post("/", data=body, headers={"Stripe-Signature": header})
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        400,
        "rejected: body is nested too deeply",
    )
    assert pipeline.published() == []


@pytest.mark.parametrize(
    "placeholder",
    [
        "whsec_pending",
        "not-set-yet",
        "whsec_" + "0" * 32,
        # Letters, digits and both cases, typed by hand.
        "whsec_" + "YourSigningSecretGoesHere1234",
        # Random, but published: the Standard Webhooks test vector.
        "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ],
)
def test_placeholder_secret_verifies_nothing_and_asks_stripe_to_retry(pipeline, placeholder):
    pipeline.configure(STRIPE_WEBHOOK_SECRET=placeholder)
    pipeline.capsys.readouterr()
    # Signed with the placeholder itself: what anyone who read the README could forge.
    answer = pipeline.post_webhook(failed_event(), secret=placeholder)
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        503,
        "endpoint not set up yet, retry later",
    )
    assert pipeline.published() == []
    output = pipeline.capsys.readouterr().out
    [line] = log_lines(output)
    assert line["severity"] == "WARNING"
    assert "STRIPE_WEBHOOK_SECRET is not the endpoint's signing secret yet" in line["message"]
    assert placeholder not in output


def test_unsigned_webhook_is_also_503_while_not_set_up(pipeline):
    pipeline.configure(STRIPE_WEBHOOK_SECRET="not-set-yet")
    answer = pipeline.ingest.post("/", data=json.dumps(failed_event()))
    assert answer.status_code == 503
    assert pipeline.published() == []


@pytest.mark.parametrize(
    "known",
    [
        # The Standard Webhooks test vector, which the Linq tests keep; Svix's documented example.
        "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        # The base64 of a passphrase.
        "whsec_" + base64.b64encode(b"linq-production-signing-secret-1").decode(),
    ],
)
def test_a_linq_secret_anyone_can_know_verifies_nothing(pipeline, known):
    pipeline.configure(LINQ_WEBHOOK_SECRET=known)
    pipeline.capsys.readouterr()
    # Signed with that very value: what anyone who read it could forge.
    answer = pipeline.post_linq({"event_type": "message.delivered", "data": {}}, secret=known)
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        503,
        "endpoint not set up yet, retry later",
    )
    assert pipeline.backend.pull(pipeline.linq_topic) == []
    output = pipeline.capsys.readouterr().out
    [line] = log_lines(output)
    assert line["severity"] == "WARNING"
    assert "LINQ_WEBHOOK_SECRET is not the subscription's signing secret yet" in line["message"]
    assert known.removeprefix("whsec_") not in output


# --- connected accounts (Stripe Connect) --------------------------------------------------------

CONNECTED = "acct_1Connected"


def connected_events(account: str | None) -> dict[str, dict]:
    """A connected account's failed payment as each event kind names it, and its payment after
    a failure (an invoice.paid the ingest would carry); None: the platform's own, which name
    no account."""
    invoice = builders.invoice("cus_Ingest1", id="in_Ingest1", attempt_count=2)
    paid = builders.paid(invoice, at=invoice["status_transitions"]["finalized_at"] + 3600)
    events = {
        "snapshot": failed_event(),
        "action": failed_event(ACTION_REQUIRED),
        "thin": builders.thin_payment_failed_event("in_Ingest1", id="evt_Thin1"),
        "paid": builders.invoice_paid_event(paid, id="evt_Paid1"),
    }
    if account is None:
        return events
    # A thin event names its connected account in `context`, a snapshot one in `account`.
    return {
        kind: {**event, "context" if kind == "thin" else "account": account}
        for kind, event in events.items()
    }


@pytest.mark.parametrize("kind", ["snapshot", "action", "thin", "paid"])
@pytest.mark.parametrize("enabled", [None, "", "acct_1Another", "acct_1Another, acct_1Third"])
def test_a_connected_accounts_event_is_acknowledged_and_never_queued_unless_enabled(
    pipeline, kind, enabled
):
    # A Connect endpoint whose secret the ingest holds (kept after serving stopped, or serving
    # other accounts): its events are verified, then acknowledged.
    pipeline.configure(
        STRIPE_CONNECT_ACCOUNTS=enabled, STRIPE_CONNECT_WEBHOOK_SECRET=CONNECT_SECRET
    )
    event = connected_events(CONNECTED)[kind]
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(event, secret=CONNECT_SECRET)
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        200,
        "ignored: connected account not enabled",
    )
    assert pipeline.published() == []
    [line] = log_lines(pipeline.capsys.readouterr().out)
    assert line == {
        "severity": "INFO",
        "message": "skipped: connected account not enabled",
        "invoice_id": "in_Ingest1",
        **({"customer_id": "cus_Ingest1"} if kind != "thin" else {}),
        **({"attempt": 2} if kind in ("snapshot", "action") else {}),
        "action": "skipped:account_not_enabled",
        "reason": "acct_1Connected is not in STRIPE_CONNECT_ACCOUNTS",
        "event_id": event["id"],
        **({"event_type": event["type"]} if kind != "paid" else {}),
        "account": CONNECTED,
    }


@pytest.mark.parametrize("kind", ["snapshot", "action", "thin", "paid"])
@pytest.mark.parametrize("enabled", ["*", CONNECTED, f" acct_1Another , {CONNECTED} "])
def test_an_enabled_connected_accounts_event_is_queued_with_its_account(pipeline, kind, enabled):
    pipeline.configure(
        STRIPE_CONNECT_ACCOUNTS=enabled, STRIPE_CONNECT_WEBHOOK_SECRET=CONNECT_SECRET
    )
    answer = pipeline.post_webhook(connected_events(CONNECTED)[kind], secret=CONNECT_SECRET)
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "queued")
    [message] = pipeline.published()
    assert message["attributes"]["account"] == CONNECTED
    assert json.loads(base64.b64decode(message["data"]))["account"] == CONNECTED


def test_the_platforms_own_events_are_queued_whatever_accounts_are_enabled(pipeline):
    pipeline.configure(
        STRIPE_CONNECT_ACCOUNTS="acct_1Another", STRIPE_CONNECT_WEBHOOK_SECRET=CONNECT_SECRET
    )
    assert pipeline.post_webhook(failed_event()).status_code == 200
    [message] = pipeline.published()
    assert "account" not in message["attributes"]


def test_a_connected_accounts_renewal_paid_at_once_costs_no_line(pipeline):
    invoice = builders.invoice("cus_Ingest1", id="in_Ingest1", attempt_count=1)
    event = {**builders.invoice_paid_event(builders.paid(invoice)), "account": CONNECTED}
    pipeline.configure(STRIPE_CONNECT_WEBHOOK_SECRET=CONNECT_SECRET)
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(event, secret=CONNECT_SECRET)
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        200,
        "ignored: paid at its first attempt",
    )
    assert log_lines(pipeline.capsys.readouterr().out) == []


CROSSED_CONNECTED = "a connected account's event, signed with the platform endpoint's secret"
CROSSED_PLATFORM = "the platform's own event, signed with the Connect endpoint's secret"


@pytest.mark.parametrize("kind", ["snapshot", "action", "thin", "paid"])
@pytest.mark.parametrize(
    ("connect", "account", "signed_with", "reason"),
    [
        (True, CONNECTED, WEBHOOK_SECRET, CROSSED_CONNECTED),
        # No Connect endpoint at all: the platform's secret is all there is, and it cannot do.
        (False, CONNECTED, WEBHOOK_SECRET, CROSSED_CONNECTED),
        (True, None, CONNECT_SECRET, CROSSED_PLATFORM),
    ],
)
def test_an_event_signed_with_the_other_kind_of_endpoints_secret_is_refused(
    pipeline, kind, connect, account, signed_with, reason
):
    """Stripe sends a Connect endpoint the connected accounts' events only and the platform's
    endpoint the platform's own only: whoever learnt one secret cannot forge the other kind."""
    pipeline.configure(
        STRIPE_CONNECT_ACCOUNTS="*" if connect else None,
        STRIPE_CONNECT_WEBHOOK_SECRET=CONNECT_SECRET if connect else None,
    )
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(connected_events(account)[kind], secret=signed_with)
    assert (answer.status_code, answer.get_data(as_text=True)) == (400, f"rejected: {reason}")
    assert pipeline.published() == []
    [line] = log_lines(pipeline.capsys.readouterr().out)
    assert (line["severity"], line["message"]) == ("WARNING", f"webhook rejected: {reason}")


def placeholder_for(variable: str) -> dict[str, str]:
    """The ingest's secrets with `variable` still holding deploy.sh's placeholder."""
    secrets = {
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_CONNECT_WEBHOOK_SECRET": CONNECT_SECRET,
    }
    return {**secrets, variable: "not-set-yet"}


@pytest.mark.parametrize(
    ("pending", "waits", "taken"),
    [
        ("STRIPE_CONNECT_WEBHOOK_SECRET", "connected", "platform"),
        ("STRIPE_WEBHOOK_SECRET", "platform", "connected"),
    ],
)
def test_while_one_endpoints_secret_is_a_placeholder_only_its_kind_is_answered_503(
    pipeline, pending, waits, taken
):
    pipeline.configure(STRIPE_CONNECT_ACCOUNTS="*", **placeholder_for(pending))
    events = {"platform": failed_event(), "connected": connected_events(CONNECTED)["snapshot"]}
    secrets = {"platform": WEBHOOK_SECRET, "connected": CONNECT_SECRET}
    pipeline.capsys.readouterr()
    # The kind whose secret is in place is verified and queued.
    answer = pipeline.post_webhook(events[taken], secret=secrets[taken])
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "queued")
    assert len(pipeline.published()) == 1
    # The other kind cannot be verified yet: signed with its endpoint's secret (which the
    # ingest does not hold), or with the one in place, Stripe is asked to retry it.
    for signed_with in (secrets[waits], secrets[taken]):
        answer = pipeline.post_webhook(events[waits], secret=signed_with)
        assert (answer.status_code, answer.get_data(as_text=True)) == (
            503,
            "endpoint not set up yet, retry later",
        )
    assert pipeline.published() == []
    output = pipeline.capsys.readouterr().out
    queued, *waiting = log_lines(output)
    assert queued["message"] == "queued"
    assert len(waiting) == 2
    for line in waiting:
        assert line["severity"] == "WARNING"
        assert line["message"].startswith(
            f"webhook not verified: {pending} is not the endpoint's signing secret yet ("
        )
        # Only the secret not set up is named.
        assert line["message"].count("SECRET is not") == 1
    assert "not-set-yet" not in output


def test_connected_accounts_served_without_the_connect_secret_wait_for_it(pipeline):
    pipeline.configure(STRIPE_CONNECT_ACCOUNTS=CONNECTED)
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(connected_events(CONNECTED)["snapshot"], secret=CONNECT_SECRET)
    assert answer.status_code == 503
    [line] = log_lines(pipeline.capsys.readouterr().out)
    assert (
        "STRIPE_CONNECT_WEBHOOK_SECRET is not the endpoint's signing secret yet (it is unset, and "
        "STRIPE_CONNECT_ACCOUNTS names connected accounts)"
    ) in line["message"]
    assert pipeline.post_webhook(failed_event()).status_code == 200
    assert len(pipeline.published()) == 1


@pytest.mark.parametrize("value", ["acct_1A;acct_1B", "acct_1A,,acct_1B", "all", "acct_1A *"])
def test_a_malformed_account_list_is_a_500_naming_the_variable(pipeline, value):
    pipeline.configure(STRIPE_CONNECT_ACCOUNTS=value)
    pipeline.capsys.readouterr()
    answer = pipeline.post_webhook(failed_event())
    assert answer.status_code == 500
    [line] = log_lines(pipeline.capsys.readouterr().out)
    assert line["severity"] == "ERROR"
    assert line["message"].startswith("configuration error: STRIPE_CONNECT_ACCOUNTS must be *")
    assert pipeline.published() == []


# --- a slow body, against the real server ---------------------------------------------------------

# The deadline the served intakes run with: short, so that a trickle meets it quickly.
BODY_SECONDS = "1"
# A hang guard, not a speed check: past this the intake has held the connection for good.
HELD_FOR_GOOD_S = 30.0
# How often the trickling client sends its next byte (and looks for an answer meanwhile).
TRICKLE_EVERY_S = 0.05


@dataclass
class Served:
    """Both intakes under functions-framework (gunicorn, one thread: an instance serves one request
    at a time, as deployed), publishing to their own topics."""

    processes: dict[str, FunctionProcess]
    topic: str

    def url(self, intake: str) -> str:
        return self.processes[intake].url


@pytest.fixture(scope="module")
def served(emulator, tmp_path_factory):
    topic = f"slow-{uuid.uuid4().hex[:10]}"
    for name in (topic, f"{topic}-linq"):
        emulator.create_topic(name)
    emulator.create_subscription(f"{topic}-pull", topic)
    env = {
        **base_env(),
        "GOOGLE_CLOUD_PROJECT": emulator.project,
        "PUBSUB_EMULATOR_HOST": emulator.host,
        "PUBSUB_TOPIC": topic,
        "LINQ_EVENTS_TOPIC": f"{topic}-linq",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LINQ_WEBHOOK_SECRET": LINQ_SECRET,
        "WEBHOOK_BODY_SECONDS": BODY_SECONDS,
        "THREADS": "1",
    }
    logs = tmp_path_factory.mktemp("served")
    processes = {
        name: FunctionProcess(name, FUNCTIONS[name], free_port(), logs / f"{name}.log", env)
        for name in ("ingest", "linq-intake")
    }
    try:
        for process in processes.values():
            process.start()
        yield Served(processes, topic)
    finally:
        for process in processes.values():
            process.stop()


def stripe_headers() -> dict[str, str]:
    """Well-formed and fresh: they pass every check made before the body is read."""
    return {"Stripe-Signature": f"t={int(time.time())},v1={'a' * 64}"}


def linq_headers() -> dict[str, str]:
    return {
        "webhook-id": "msg_slow",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode(),
    }


def send_slowly(url: str, headers: dict[str, str], body: bytes, chunked: bool = False):
    """POST `body` a byte at a time until the server answers, as a client that wants to hold the
    instance would; the answer (status, text) and how many body bytes went out before it."""
    port = int(url.rsplit(":", 1)[1])
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(len(body))}
    head = {"Host": "127.0.0.1", "Content-Type": "application/json", **framing, **headers}
    lines = "".join(f"{name}: {value}\r\n" for name, value in head.items())
    sent, started = 0, time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(f"POST / HTTP/1.1\r\n{lines}\r\n".encode())
        if chunked:
            connection.sendall(b"%x\r\n" % len(body))
        # Wait on the server's answer between bytes: it is what ends the trickle.
        while not select.select([connection], [], [], TRICKLE_EVERY_S)[0]:
            assert time.monotonic() - started < HELD_FOR_GOOD_S, "the intake held the connection"
            connection.sendall(body[sent : sent + 1])
            sent += 1
        answer = http.client.HTTPResponse(connection)
        answer.begin()
        return answer.status, answer.read().decode(), sent


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    answer = requests.post(url, data=body, headers=headers, timeout=HELD_FOR_GOOD_S)
    return answer.status_code, answer.text


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_stripe_webhook_whose_body_trickles_in_gets_408_and_the_instance_serves_on(
    served, emulator, chunked
):
    status, text, sent = send_slowly(
        served.url("ingest"), stripe_headers(), b"x" * MAX_BODY_BYTES, chunked
    )
    assert (status, text) == (408, f"request timeout: the body took over {BODY_SECONDS} s")
    assert 0 < sent < MAX_BODY_BYTES
    # One request at a time, and the next one is served: nothing holds the instance.
    body, headers = signed_webhook(failed_event(), WEBHOOK_SECRET)
    assert post(served.url("ingest"), body, headers) == (200, "queued")
    [message] = emulator.pull(f"{served.topic}-pull")
    assert message["attributes"]["invoice_id"] == "in_Ingest1"
    log = served.processes["ingest"].log
    rejected = [line for line in json_lines(log) if line["severity"] == "WARNING"]
    assert rejected[-1]["message"] == (f"webhook rejected: the body took over {BODY_SECONDS} s")


def test_a_linq_webhook_whose_body_trickles_in_gets_408(served):
    status, text, _ = send_slowly(served.url("linq-intake"), linq_headers(), b"x" * MAX_BODY_BYTES)
    assert (status, text) == (408, f"request timeout: the body took over {BODY_SECONDS} s")


def headers_only(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """The answer to a request that declares a 1 MiB body (unless `headers` says otherwise) and
    never sends it. A server that read the body first would answer 408 at the deadline."""
    port = int(url.rsplit(":", 1)[1])
    head = {"Host": "127.0.0.1", "Content-Length": str(MAX_BODY_BYTES), **headers}
    lines = "".join(f"{name}: {value}\r\n" for name, value in head.items())
    with socket.create_connection(("127.0.0.1", port), timeout=HELD_FOR_GOOD_S) as connection:
        connection.sendall(f"POST / HTTP/1.1\r\n{lines}\r\n".encode())
        answer = http.client.HTTPResponse(connection)
        answer.begin()
        return answer.status, answer.read().decode()


# intake, the headers sent (made when the test runs: timestamps are fresh), the answer.
JUDGED_ON_HEADERS = {
    "no Stripe-Signature": ("ingest", dict, (400, "rejected: missing Stripe-Signature header")),
    "a malformed Stripe-Signature": (
        "ingest",
        lambda: {"Stripe-Signature": "t=1,v1"},
        (400, "rejected: malformed Stripe-Signature header"),
    ),
    "a stale Stripe-Signature": (
        "ingest",
        lambda: {"Stripe-Signature": f"t={int(time.time()) - 301},v1={'a' * 64}"},
        (400, "rejected: signature timestamp too old"),
    ),
    "a length over the limit": (
        "ingest",
        lambda: {**stripe_headers(), "Content-Length": str(MAX_BODY_BYTES + 1)},
        (413, "payload too large"),
    ),
    "no Standard Webhooks headers": (
        "linq-intake",
        dict,
        (400, "rejected: missing webhook-id, webhook-timestamp, webhook-signature header"),
    ),
    "a malformed webhook-signature": (
        "linq-intake",
        lambda: {**linq_headers(), "webhook-signature": "v1,!"},
        (400, "rejected: malformed webhook-signature header"),
    ),
}


@pytest.mark.parametrize("case", JUDGED_ON_HEADERS)
def test_headers_are_judged_before_a_byte_of_the_body_is_read(served, case):
    intake, headers, answer = JUDGED_ON_HEADERS[case]
    assert headers_only(served.url(intake), headers()) == answer
