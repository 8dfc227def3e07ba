"""Shared fixtures: the emulators (one each per session, started only for a test that needs
them), fresh stand-ins per test, and the in-process pipeline over them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import stripe

from standins import LinqStandin, SlackStandin, StripeStandin
from standins.emulator import FirestoreEmulator, PubSubEmulator
from tests.harness import EmulatorBackend, MemoryBackend, Pipeline


@pytest.fixture(scope="session")
def emulators() -> Iterator[tuple[PubSubEmulator, FirestoreEmulator]]:
    pubsub, firestore = PubSubEmulator(), FirestoreEmulator()
    try:
        pubsub.launch()
        firestore.launch()
        yield pubsub.wait_ready(), firestore.wait_ready()
    finally:
        pubsub.stop()
        firestore.stop()


@pytest.fixture(scope="session")
def emulator(emulators: tuple[PubSubEmulator, FirestoreEmulator]) -> PubSubEmulator:
    return emulators[0]


@pytest.fixture(scope="session")
def firestore(emulators: tuple[PubSubEmulator, FirestoreEmulator]) -> FirestoreEmulator:
    return emulators[1]


@pytest.fixture
def stripe_api() -> Iterator[StripeStandin]:
    with StripeStandin() as server:
        yield server


@pytest.fixture
def linq_api() -> Iterator[LinqStandin]:
    with LinqStandin() as server:
        yield server


@pytest.fixture
def slack_api() -> Iterator[SlackStandin]:
    with SlackStandin() as server:
        yield server


@pytest.fixture
def fast_stripe_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """stripe-python sleeps at least 0.5 s between retries; tests need not wait that long."""
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.05)


@pytest.fixture
def pipeline(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stripe_api: StripeStandin,
    linq_api: LinqStandin,
    slack_api: SlackStandin,
) -> Iterator[Pipeline]:
    """Both functions in-process, the ledger and the topics in memory."""
    world = Pipeline(monkeypatch, capsys, stripe_api, linq_api, slack_api, MemoryBackend())
    yield world
    world.linq_inbox.close()


@pytest.fixture
def emulated_pipeline(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulators: tuple[PubSubEmulator, FirestoreEmulator],
    stripe_api: StripeStandin,
    linq_api: LinqStandin,
    slack_api: SlackStandin,
) -> Iterator[Pipeline]:
    """Both functions in-process, the ledger and the topics in the emulators: a real publish."""
    backend = EmulatorBackend(*emulators)
    world = Pipeline(monkeypatch, capsys, stripe_api, linq_api, slack_api, backend)
    yield world
    world.linq_inbox.close()


@pytest.fixture
def fake_gcloud(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A `gcloud` first on PATH whose account is ops@acme.test: who runs `./dev pause` here."""
    account = "ops@acme.test"
    script = tmp_path / "bin" / "gcloud"
    script.parent.mkdir()
    script.write_text('#!/bin/sh\n[ "$*" = "config get-value account" ] && echo ' + account + "\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}:{os.environ['PATH']}")
    return account
