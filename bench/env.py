"""The shared bench environment: LocalStack with stand-ins at a known latency, a ledger journal,
the bare baseline, and warmed-up emulators."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import requests

from bench.chain import Call, proxy_calls, standin_calls
from bench.fixtures import load_linq_line
from standins.processes import Child, FunctionProcess, free_port
from standins.stack import FUNCTIONS, SANDBOX_WEBHOOK_SECRET, LocalStack, base_env

LATENCY_MS = 50.0
# The stand-in models Linq's unpublished capability-check limit as 60 per minute per account;
# left on, every benchmark would measure that limit instead of the product (see BENCHMARKS.md).
LINQ_NO_CAPABILITY_LIMIT = ("--capability-limit", "0")
STRIPE_NO_RATE_LIMIT = ("--endpoint-rate=0", "--global-rate-test=0", "--global-rate-live=0")
# A benchmark's payments all fail and Stripe's stand-in has no successful one: a surge by the
# guard's rule, which would pause the texts. The guard has a benchmark of its own (surge.py);
# every other one measures the send path with it off.
NO_SURGE_GUARD = {"SURGE_MIN": "off"}
WARMUP_TOPIC = "bench-warmup"
WARMUP_CALLS = 60
INGEST_TOPIC = "bench-ingest"
LINQ_INTAKE_TOPIC = "bench-linq-intake"
# The product's functions and the baselines they are compared against.
BENCH_FUNCTIONS = {
    **FUNCTIONS,
    "bare": ("bench/baselines/bare_main.py", "bare", "http"),
    "sync": ("bench/baselines/sync_main.py", "sync_webhook", "http"),
}


def function_process(name: str, workdir: Path, env: dict[str, str]) -> FunctionProcess:
    """A process of the function `name` on a free port, logging into `workdir` (not started)."""
    port = free_port()
    return FunctionProcess(name, BENCH_FUNCTIONS[name], port, workdir / f"{name}-{port}.log", env)


class JournalProxy(Child):
    """`python -m bench.journal_proxy` as a process of its own, and its journal."""

    def __init__(self, port: int, target: str, log: Path) -> None:
        command = [sys.executable, "-m", "bench.journal_proxy", f"--port={port}"]
        super().__init__("journal proxy", [*command, f"--target={target}"], port, log, base_env())
        self._http = requests.Session()

    def journal(self) -> list[dict[str, Any]]:
        return list(self._http.get(f"{self.url}/_journal", timeout=10).json())

    def reset(self) -> None:
        self._http.post(f"{self.url}/_journal", timeout=10)


class BenchEnv:
    """Started once for the ingest, webhook-to-text and cold-start benchmarks."""

    def __init__(self, workdir: Path, latency_ms: float = LATENCY_MS) -> None:
        self.workdir = workdir
        self.latency_ms = latency_ms
        proxy_port = free_port()
        self.stack = LocalStack(
            latency_ms=latency_ms,
            linq_args=LINQ_NO_CAPABILITY_LIMIT,
            stripe_args=STRIPE_NO_RATE_LIMIT,
            # QUIET_HOURS off: the figures are the send path's, whatever the hour of the run.
            recover_env={
                "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{proxy_port}",
                "QUIET_HOURS": "off",
                **NO_SURGE_GUARD,
            },
            workdir=workdir / "stack",
        )
        target = self.stack.firestore.host
        self.proxy = JournalProxy(proxy_port, target, workdir / "journal-proxy.log")
        self._started: list[FunctionProcess] = []
        self.bare = self.function("bare")

    def start(self) -> BenchEnv:
        try:
            self.proxy.start(10)
            self.stack.start()
            self.bare.start()
            load_linq_line(self.stack.linq)
            for topic in (INGEST_TOPIC, LINQ_INTAKE_TOPIC):
                self.stack.emulator.create_topic(topic)
            self._warm_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _warm_up(self) -> None:
        """Let both JVM emulators compile their hot paths before anything is timed: a document
        write and a push delivery are ~10x slower on the first hundred calls."""
        session = requests.Session()
        session.headers["Authorization"] = "Bearer owner"
        base = f"{self.proxy.url}/v1/projects/demo-proj/databases/bench/documents/warmup"
        for i in range(WARMUP_CALLS):
            session.post(base, params={"documentId": f"w{i}"}, json={"fields": {}}, timeout=10)
        self.proxy.reset()
        emulator = self.stack.emulator
        emulator.create_topic(WARMUP_TOPIC)
        emulator.create_subscription(
            f"{WARMUP_TOPIC}-push", WARMUP_TOPIC, push_endpoint=self.bare.url
        )
        for i in range(WARMUP_CALLS):
            emulator.publish(WARMUP_TOPIC, b'{"warm": %d}' % i)
        time.sleep(0.5)
        emulator.delete_subscription(f"{WARMUP_TOPIC}-push")

    def calls(self) -> list[Call]:
        """Every external call the stand-ins and the ledger proxy have seen so far."""
        latency_s = self.latency_ms / 1000
        return [
            *standin_calls("stripe", self.stack.stripe.requests(), latency_s),
            *standin_calls("linq", self.stack.linq.requests(), latency_s),
            *proxy_calls("ledger", self.proxy.journal()),
        ]

    def function(self, name: str, topic: str | None = None) -> FunctionProcess:
        """A function process of our own wired to this stack, on a free port (not started): the
        bare function with no settings; ingest and the Linq intake as in the stack but publishing
        to `topic` (by default one without subscribers); the synchronous handler checks webhooks
        like ingest and recovers like recover."""
        env = base_env()
        if name != "bare":
            env.update(self.stack.function_env("recover" if name == "sync" else name))
        if name == "sync":
            env["STRIPE_WEBHOOK_SECRET"] = SANDBOX_WEBHOOK_SECRET
        if name == "ingest":
            env["PUBSUB_TOPIC"] = topic or INGEST_TOPIC
        if name == "linq-intake":
            env["LINQ_EVENTS_TOPIC"] = topic or LINQ_INTAKE_TOPIC
        process = function_process(name, self.workdir, env)
        self._started.append(process)
        return process

    def stop(self) -> None:
        for process in self._started:
            process.stop()
        self.stack.stop()
        self.proxy.stop()
