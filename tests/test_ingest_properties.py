"""The ingest function under property-based tests: no 5xx, no publish without a valid signature."""

import io
import json
import time
import uuid

import functions_framework
import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.adapters.webhook import MAX_BODY_BYTES
from shared.core.event import from_stripe_event
from standins import builders
from tests.harness import ROOT

SECRET = "whsec_property_secret"
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


def expected_publish(event):
    try:
        return from_stripe_event(event) is not None
    except ValueError:
        return False


@SETTINGS
@given(
    method=st.sampled_from(["POST", "GET", "PUT", "PATCH", "DELETE"]),
    body=st.binary(max_size=2048),
    signature=st.one_of(
        st.none(),
        # What an HTTP header can carry: Latin-1, no line breaks.
        st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=200),
        st.builds(
            lambda t, v: f"t={t},v1={v}",
            st.integers(min_value=0, max_value=2**40),
            st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        ),
    ),
    content_type=st.sampled_from(["application/json", "text/plain", "", "multipart/form-data"]),
)
def test_unsigned_or_forged_requests_never_publish_and_never_5xx(
    ingest, emulator, method, body, signature, content_type
):
    client, subscription = ingest
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    answer = client.open("/", method=method, data=body, headers=headers)
    assert answer.status_code in (400, 405)
    assert published(emulator, subscription) == []


@SETTINGS
@given(event=st.one_of(event_like, json_values), stale=st.booleans())
def test_signed_bodies_publish_only_failed_payments(ingest, emulator, event, stale):
    client, subscription = ingest
    body = json.dumps(event)
    now = int(time.time())
    header = stripe.WebhookSignature.generate_signature_header(
        body, SECRET, timestamp=now - 400 if stale else now
    )
    answer = client.post("/", data=body.encode(), headers={"Stripe-Signature": header})
    assert answer.status_code < 500
    should_publish = not stale and isinstance(event, dict) and expected_publish(event)
    assert answer.status_code == (200 if should_publish else answer.status_code)
    assert len(published(emulator, subscription)) == (1 if should_publish else 0)


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
        environ_overrides={
            "wsgi.input": io.BufferedReader(stream, buffer_size=64 * 1024),
            "wsgi.input_terminated": True,
            "HTTP_TRANSFER_ENCODING": "chunked",
        },
    )
    assert answer.status_code == 413
    assert stream.consumed <= MAX_BODY_BYTES + 64 * 1024
