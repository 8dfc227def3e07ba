"""Shared fixtures: the emulators (one each per session, started only for a test that needs
them), fresh stand-ins per test, and the in-process pipeline over them; the `integration` marker
on every test that starts a process or an emulator; how pytest-xdist shares the tests out."""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from typing import Any

import pytest
import stripe
from xdist.scheduler import LoadScopeScheduling

from standins import LinqStandin, SlackStandin, StripeStandin
from standins.emulator import FirestoreEmulator, PubSubEmulator
from tests.harness import EmulatorBackend, MemoryBackend, Pipeline

INTEGRATION = "integration"
# Asking for any of these starts the emulators: such a test is an integration test, marked or not.
EMULATOR_FIXTURES = frozenset({"emulators"})
# The audit events (sys.addaudithook) of everything that starts a program.
PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec", "os.fork"}
)
# The test running now that may not start one (None: any test that may, or none at all).
_may_not_start: str | None = None
# The modules that run the product as processes (standins.stack), slowest first. Each runs on
# one worker, which starts its stack once (a module-scoped fixture), and they are handed out
# before anything else: they wait on processes more than they use a CPU.
STACK_MODULES = (
    "tests/test_faults.py",
    "tests/test_sandbox.py",
    "tests/test_load.py",
    "tests/test_e2e.py",
)


def _refuse_processes(event: str, args: tuple[Any, ...]) -> None:
    if event in PROCESS_EVENTS and _may_not_start is not None:
        raise RuntimeError(
            f"{_may_not_start} starts a process ({event}) but is not marked `{INTEGRATION}`: "
            "mark it (pytest.mark.integration), or keep it in-process for the quick loop"
        )


# Installed once per interpreter (an audit hook cannot be removed); it acts only while a test
# without the marker runs, so `-m "not integration"` can be trusted to start nothing.
sys.addaudithook(_refuse_processes)


@pytest.hookimpl(tryfirst=True)
def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A signing secret the run made for itself is named by what it is, not by its value: xdist's
    workers must collect the same test ids, and a secret has no place in a test's name."""
    if isinstance(val, str) and "whsec_" in val:
        return f"{argname}-whsec"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Before `-m` selects: a test that asks for the emulators is marked integration. The stack
    modules come first, each whole and in the order of STACK_MODULES."""
    for item in items:
        if EMULATOR_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(INTEGRATION)
    rank = {module: index for index, module in enumerate(STACK_MODULES)}
    items.sort(key=lambda item: rank.get(_module(item.nodeid), len(rank)))


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


class _StackModulesOnOneWorker(LoadScopeScheduling):
    """pytest-xdist's scheduling by scope, where a stack module is one scope and every other
    test a scope of its own; scopes go out in the collection's order."""

    def _split_scope(self, nodeid: str) -> str:
        module = _module(nodeid)
        return module if module in STACK_MODULES else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: a worker per CPU and one more. The integration tests spend much of their time
    waiting on processes (a redelivery's backoff, a lease running out, the emulators), and a
    third worker on two CPUs fills those waits: the whole suite took 189 s on two workers and
    120 to 145 s on three on the 2-CPU machine."""
    return (os.cpu_count() or 1) + 1


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    """`-n` with the default `--dist load`: stack modules stay whole."""
    if config.getvalue("dist") != "load":
        return None
    # The collection's order is the priority: no reordering by the number of tests.
    config.option.loadscopereorder = False
    return _StackModulesOnOneWorker(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Setup, call and teardown of a test without the marker may start no process."""
    global _may_not_start
    if item.get_closest_marker(INTEGRATION) is None:
        _may_not_start = item.nodeid
    try:
        return (yield)
    finally:
        _may_not_start = None


@pytest.fixture(scope="session")
def emulators(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PubSubEmulator, FirestoreEmulator]]:
    logs = tmp_path_factory.mktemp("emulators")
    pubsub = PubSubEmulator(logs / f"{PubSubEmulator.name}.log")
    firestore = FirestoreEmulator(logs / f"{FirestoreEmulator.name}.log")
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
