"""The publisher's one retry policy, against a local server that answers like Pub/Sub's REST."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from shared.adapters import publisher
from shared.adapters.publisher import Publisher
from shared.core.errors import RetryableError
from standins.serving import Server
from tests.clock import TestSeconds


class FakePubsub:
    """Pub/Sub's REST publish on loopback: each body kept, answered with the statuses queued in
    `answers`, then 200 and the message's id."""

    def __init__(self) -> None:
        self.answers: list[int] = []
        self.bodies: list[dict] = []
        self.server = Server(self._publish).start()

    def _publish(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        self.bodies.append({"path": request.path, **json.loads(request.get_data())})
        status = self.answers.pop(0) if self.answers else 200
        reply = {"messageIds": [str(len(self.bodies))]} if status == 200 else {}
        return Response(json.dumps(reply), status)(environ, start_response)


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> TestSeconds:
    """The publisher's time: a backoff moves it on at once."""
    seconds = TestSeconds()
    monkeypatch.setattr(publisher, "time", seconds)
    return seconds


@pytest.fixture
def pubsub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePubsub]:
    fake = FakePubsub()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{fake.server.port}")
    # Stay on REST: the gRPC client is what a warm instance switches to, not what this tests.
    monkeypatch.setattr(Publisher, "_load_grpc_soon", lambda self: None)
    yield fake
    fake.server.stop()


def test_transient_answers_are_retried_then_published(
    pubsub: FakePubsub, clock: TestSeconds
) -> None:
    pubsub.answers = [503, 429, 500]
    message_id = Publisher("p", "t").publish(b"{}", {"invoice_id": "in_1"})
    assert message_id == "4"
    assert len(pubsub.bodies) == 4
    assert clock.slept == [0.1, 0.2, 0.4]
    assert {b["path"] for b in pubsub.bodies} == {"/v1/projects/p/topics/t:publish"}
    assert pubsub.bodies[0]["messages"] == [{"data": "e30=", "attributes": {"invoice_id": "in_1"}}]


def test_a_permanent_answer_is_not_retried(pubsub: FakePubsub) -> None:
    pubsub.answers = [404]
    with pytest.raises(RetryableError, match="publish to t failed: HTTP 404"):
        Publisher("p", "t").publish(b"{}", {})
    assert len(pubsub.bodies) == 1


def test_an_outage_ends_inside_the_budget(pubsub: FakePubsub, clock: TestSeconds) -> None:
    pubsub.answers = [503] * 100
    with pytest.raises(RetryableError, match="HTTP 503"):
        Publisher("p", "t").publish(b"{}", {})
    # Doubling to 1 s, the backoff fits 3.5 s of TOTAL_TIMEOUT_S's 4; one more second would
    # not: seven attempts.
    assert clock.slept == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert len(pubsub.bodies) == 7


def test_a_token_fetch_that_fails_is_a_retryable_error_and_is_retried(
    pubsub: FakePubsub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Google Cloud the REST session fetches its token from the metadata server inside
    post(); google-auth wraps a blip there in its own TransportError (or RefreshError), which is
    no requests error. It must be retried and, failing that, be a RetryableError (503), never an
    unexpected exception (a 500 without the intake's ERROR line)."""
    import google.auth.exceptions
    import requests

    failures = [google.auth.exceptions.TransportError("metadata server unavailable")]
    real_post = requests.Session.post

    def post(self: requests.Session, url: str, **kwargs: object) -> requests.Response:
        if failures:
            raise failures.pop(0)
        return real_post(self, url, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(requests.Session, "post", post)
    assert Publisher("p", "t").publish(b"{}", {}) == "1"
    failures.extend([google.auth.exceptions.RefreshError("no token")] * 100)
    monkeypatch.setattr(publisher, "TOTAL_TIMEOUT_S", 0.3)
    with pytest.raises(RetryableError, match="publish to t failed: RefreshError"):
        Publisher("p", "t").publish(b"{}", {})


def test_credentials_that_cannot_be_found_are_a_retryable_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """google.auth.default() failing on a cold instance answers 503, not 500."""
    import google.auth.exceptions

    def no_credentials(*args: object) -> object:
        raise google.auth.exceptions.DefaultCredentialsError("no credentials")

    monkeypatch.setattr(publisher, "rest_session", no_credentials)
    with pytest.raises(RetryableError, match="publish to t failed: DefaultCredentialsError"):
        Publisher("p", "t").publish(b"{}", {})
