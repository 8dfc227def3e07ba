"""The ingest function under property-based tests: the right answer to any request, never a 5xx,
no publish without a valid signature."""

import io
import json
import re
import time
import uuid

import functions_framework
import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.adapters.request_body import MAX_BODY_BYTES
from shared.core.accounts import EndpointKind
from shared.core.errors import WebhookRejected
from shared.core.event import InvoicePaid, event_account, from_stripe_event
from standins import builders
from standins.signing_secrets import new_stripe_secret
from tests.harness import ROOT

SECRET = new_stripe_secret()
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# Events that look like Stripe's, with every field allowed to be wrong.
event_like = st.fixed_dictionaries(
    {
        "id": st.one_of(st.text(max_size=30), st.just("evt_1Prop"), st.none()),
        "type": st.sampled_from(
            ["invoice.payment_failed", "v1.invoice.payment_failed", "invoice.paid", "", "x"]
        ),
        "livemode": st.booleans(),
        "data": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {"object": st.fixed_dictionaries({"id": st.one_of(st.text(), st.just("in_1Prop"))})}
            ),
        ),
        "related_object": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {"id": st.sampled_from(["in_1Thin", "cus_1", ""]), "type": st.just("invoice")}
            ),
        ),
        # A connected account's (Stripe Connect), which this ingest's one secret cannot take.
        "account": st.one_of(st.none(), st.just("acct_1Prop"), st.text(max_size=12)),
        "context": st.one_of(st.none(), st.just("acct_1Prop"), st.text(max_size=12)),
    }
)


@pytest.fixture(scope="module")
def ingest(emulator):
    topic = f"props-{uuid.uuid4().hex[:10]}"
    emulator.create_topic(topic)
    emulator.create_subscription(f"{topic}-audit", topic)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "GOOGLE_CLOUD_PROJECT": emulator.project,
            "PUBSUB_TOPIC": topic,
            "PUBSUB_EMULATOR_HOST": emulator.host,
        }.items():
            patch.setenv(name, value)
        app = functions_framework.create_app(
            "stripe_webhook", str(ROOT / "ingest_fn/main.py"), "http"
        )
        yield app.test_client(), f"{topic}-audit"


def published(emulator, subscription):
    return emulator.pull(subscription, max_messages=1000)


# Any character a header value can carry through the WSGI server and more (non-ASCII beyond
# Latin-1, NUL and the other control characters), except the line breaks that end a header.
header_text = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]))
FRESH = int(time.time())
signature_like = st.one_of(
    header_text,
    st.builds(
        "t={},v1={}".format,
        st.one_of(st.integers(min_value=0, max_value=2**40), st.just(FRESH), header_text),
        st.one_of(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), header_text),
    ),
)
declared_length = st.one_of(
    st.integers(min_value=0, max_value=2 * MAX_BODY_BYTES).map(str),
    st.integers(min_value=-5, max_value=5).map(str),
    header_text,
)


def declared_over_limit(content_length: str | None) -> bool:
    """Whether the request declares a body over the limit. HTTP's Content-Length is digits
    only; the server treats anything else as no body."""
    value = (content_length or "").strip(" \t")
    return re.fullmatch("[0-9]+", value) is not None and int(value) > MAX_BODY_BYTES


@SETTINGS
@given(
    method=st.sampled_from(["POST", "GET", "PUT", "PATCH", "DELETE"]),
    body=st.binary(max_size=2048),
    signature=st.one_of(st.none(), signature_like),
    content_length=st.one_of(st.none(), declared_length),
    others=st.dictionaries(
        st.sampled_from(["Content-Type", "Content-Encoding", "User-Agent", "Accept", "X-Extra"]),
        header_text,
    ),
)
def test_unsigned_or_forged_requests_never_publish_and_never_5xx(
    ingest, emulator, method, body, signature, content_length, others
):
    client, subscription = ingest
    headers = dict(others)
    if signature is not None:
        headers["Stripe-Signature"] = signature
    environ = {} if content_length is None else {"CONTENT_LENGTH": content_length}
    answer = client.open("/", method=method, data=body, headers=headers, environ_overrides=environ)
    if method != "POST":
        expected = 405
    elif declared_over_limit(content_length):
        expected = 413
    else:
        expected = 400
    assert answer.status_code == expected, answer.get_data(as_text=True)
    assert published(emulator, subscription) == []


def nested(depth: int, opening: str) -> str:
    return opening * depth + "1" + ("]" if opening == "[" else "}") * depth


def expected_answer(body: str, stale: bool) -> tuple[int, str]:
    """What the ingest function must answer to `body`, correctly signed."""
    if stale:
        return 400, "rejected: signature timestamp too old"
    try:
        event = json.loads(body)
    except RecursionError:
        return 400, "rejected: body is nested too deeply"
    if not isinstance(event, dict):
        return 400, "rejected: body is not a JSON object"
    if event_account(event) is not None:
        return 400, f"rejected: {EndpointKind.CONNECT.crossed}"
    try:
        payment = from_stripe_event(event)
    except WebhookRejected as exc:
        return 400, f"rejected: {exc}"
    if payment is None:
        return 200, "ignored: not a failed payment"
    if isinstance(payment, InvoicePaid) and payment.first_try:
        return 200, "ignored: paid at its first attempt"
    return 200, "queued"


@SETTINGS
@given(
    body=st.one_of(
        st.one_of(event_like, json_values).map(json.dumps),
        # Shallow enough to read, or far deeper than any parser's recursion limit.
        st.builds(
            nested,
            st.one_of(
                st.integers(min_value=1, max_value=100),
                st.integers(min_value=5000, max_value=50000),
            ),
            st.sampled_from(["[", '{"a":']),
        ),
    ),
    stale=st.booleans(),
    content_type=header_text,
)
def test_signed_bodies_get_the_answer_they_deserve(ingest, emulator, body, stale, content_type):
    client, subscription = ingest
    now = int(time.time())
    header = stripe.WebhookSignature.generate_signature_header(
        body, SECRET, timestamp=now - 400 if stale else now
    )
    answer = client.post(
        "/",
        data=body.encode(),
        headers={"Stripe-Signature": header, "Content-Type": content_type},
    )
    status, text = expected_answer(body, stale)
    assert (answer.status_code, answer.get_data(as_text=True)) == (status, text)
    assert len(published(emulator, subscription)) == (1 if text == "queued" else 0)


def test_a_signed_failed_payment_is_published(ingest, emulator):
    client, subscription = ingest
    body = json.dumps(builders.payment_failed_event(builders.invoice("cus_1", id="in_1Ok")))
    header = stripe.WebhookSignature.generate_signature_header(body, SECRET)
    assert client.post("/", data=body, headers={"Stripe-Signature": header}).status_code == 200
    [message] = published(emulator, subscription)
    assert message["attributes"]["invoice_id"] == "in_1Ok"


class _Unreadable(io.RawIOBase):
    def readable(self):
        return True

    def readinto(self, buffer):
        raise AssertionError("the body was read although its declared length was too large")


class _Endless(io.RawIOBase):
    """An endless body that counts what the server reads from it."""

    def __init__(self):
        self.consumed = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        size = len(buffer)
        buffer[:size] = b"x" * size
        self.consumed += size
        return size


def test_declared_oversized_body_is_refused_unread(ingest):
    client, _ = ingest
    answer = client.post(
        "/",
        environ_overrides={
            "wsgi.input": io.BufferedReader(_Unreadable()),
            "CONTENT_LENGTH": str(50 * 1024 * 1024),
        },
    )
    assert answer.status_code == 413


def test_chunked_oversized_body_is_refused_after_one_mebibyte(ingest):
    client, _ = ingest
    stream = _Endless()
    answer = client.post(
        "/",
        # Well formed and fresh (it verifies nothing): the body is read only past the headers.
        headers={"Stripe-Signature": f"t={int(time.time())},v1={'a' * 64}"},
        environ_overrides={
            "wsgi.input": io.BufferedReader(stream, buffer_size=64 * 1024),
            "wsgi.input_terminated": True,
            "HTTP_TRANSFER_ENCODING": "chunked",
        },
    )
    assert answer.status_code == 413
    assert stream.consumed <= MAX_BODY_BYTES + 64 * 1024
