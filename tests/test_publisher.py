"""The publisher's one retry policy, against a local server that answers like Pub/Sub's REST."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.adapters import publisher
from shared.adapters.publisher import Publisher
from shared.core.errors import RetryableError


class FakePubsub(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: list[int] = []
        self.bodies: list[dict] = []


class _Handler(BaseHTTPRequestHandler):
    server: FakePubsub

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append({"path": self.path, **body})
        status = self.server.answers.pop(0) if self.server.answers else 200
        reply = {"messageIds": [str(len(self.server.bodies))]} if status == 200 else {}
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def pubsub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePubsub]:
    server = FakePubsub()
    # shutdown() waits out one poll: the default 0.5 s would be spent at every test's end.
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{server.server_port}")
    # Stay on REST: the gRPC client is what a warm instance switches to, not what this tests.
    monkeypatch.setattr(Publisher, "_load_grpc_soon", lambda self: None)
    yield server
    server.shutdown()
    server.server_close()


def test_transient_answers_are_retried_then_published(pubsub: FakePubsub) -> None:
    pubsub.answers = [503, 429, 500]
    message_id = Publisher("p", "t").publish(b"{}", {"invoice_id": "in_1"})
    assert message_id == "4"
    assert len(pubsub.bodies) == 4
    assert {b["path"] for b in pubsub.bodies} == {"/v1/projects/p/topics/t:publish"}
    assert pubsub.bodies[0]["messages"] == [{"data": "e30=", "attributes": {"invoice_id": "in_1"}}]


def test_a_permanent_answer_is_not_retried(pubsub: FakePubsub) -> None:
    pubsub.answers = [404]
    with pytest.raises(RetryableError, match="publish to t failed: HTTP 404"):
        Publisher("p", "t").publish(b"{}", {})
    assert len(pubsub.bodies) == 1


def test_an_outage_ends_inside_the_budget(
    pubsub: FakePubsub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publisher, "TOTAL_TIMEOUT_S", 0.5)
    pubsub.answers = [503] * 100
    with pytest.raises(RetryableError, match="HTTP 503"):
        Publisher("p", "t").publish(b"{}", {})
    # 0.1 + 0.2 s of backoff fit in 0.5 s, 0.4 more would not: three attempts.
    assert len(pubsub.bodies) == 3


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
