"""The shared bench environment: LocalStack with stand-ins at a known latency, a ledger journal,
the bare baseline, and warmed-up emulators."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from bench.fixtures import load_linq_line
from bench.procs import FunctionProcess, base_env, port_open
from standins.emulator import die_with_parent, free_port, stop_process
from standins.stack import REPO, LocalStack

LATENCY_MS = 50.0
# The stand-in models Linq's unpublished capability-check limit as 60 per minute per account;
# left on, every benchmark would measure that limit instead of the product (see BENCHMARKS.md).
LINQ_NO_CAPABILITY_LIMIT = ("--capability-limit", "0")
STRIPE_NO_RATE_LIMIT = ("--endpoint-rate", "0", "--global-rate", "0")
WARMUP_TOPIC = "bench-warmup"
WARMUP_CALLS = 60
INGEST_TOPIC = "bench-ingest"


class JournalProxy:
    """`python -m bench.journal_proxy` as a process of its own, and its journal."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None
        self._http = requests.Session()

    def start(self, target: str) -> None:
        with (self._workdir / "journal-proxy.log").open("ab") as log:
            self._process = subprocess.Popen(
                die_with_parent(
                    [
                        sys.executable,
                        "-m",
                        "bench.journal_proxy",
                        f"--port={self.port}",
                        f"--target={target}",
                    ]
                ),
                cwd=REPO,
                env=base_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError("journal proxy did not start")
            time.sleep(0.02)

    def journal(self) -> list[dict[str, Any]]:
        return list(self._http.get(f"http://{self.host}/_journal", timeout=10).json())

    def reset(self) -> None:
        self._http.post(f"http://{self.host}/_journal", timeout=10)

    def stop(self) -> None:
        stop_process(self._process)


class BenchEnv:
    """Started once for the ingest, webhook-to-text and cold-start benchmarks."""

    def __init__(self, workdir: Path, latency_ms: float = LATENCY_MS) -> None:
        self.workdir = workdir
        self.latency_ms = latency_ms
        self.proxy = JournalProxy(workdir)
        self.stack = LocalStack(
            latency_ms=latency_ms,
            linq_args=LINQ_NO_CAPABILITY_LIMIT,
            stripe_args=STRIPE_NO_RATE_LIMIT,
            recover_env={"FIRESTORE_EMULATOR_HOST": self.proxy.host},
            workdir=workdir / "stack",
        )
        self.bare = FunctionProcess("bare", {}, workdir)
        self._started: list[FunctionProcess] = []

    @property
    def latency_s(self) -> float:
        return self.latency_ms / 1000.0

    def start(self) -> BenchEnv:
        try:
            self.proxy.start(self.stack.firestore.host)
            self.stack.start()
            self.bare.start()
            load_linq_line(self.stack.linq)
            self.stack.emulator.create_topic(INGEST_TOPIC)
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
        base = f"http://{self.proxy.host}/v1/projects/demo-proj/databases/bench/documents/warmup"
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

    def function(self, name: str, env: dict[str, str] | None = None) -> FunctionProcess:
        """A function process of our own wired to this stack (not started)."""
        wired = {**self.function_env(name), **(env or {})}
        process = FunctionProcess(name, wired, self.workdir)
        self._started.append(process)
        return process

    def function_env(self, name: str) -> dict[str, str]:
        from standins.emulator import DEFAULT_PROJECT
        from standins.linq_api import LINQ_TOKEN
        from standins.stack import SANDBOX_WEBHOOK_SECRET
        from standins.stripe_api import STRIPE_TEST_KEY

        env: dict[str, str] = {"GOOGLE_CLOUD_PROJECT": DEFAULT_PROJECT}
        if name in ("ingest", "sync"):
            env["STRIPE_WEBHOOK_SECRET"] = SANDBOX_WEBHOOK_SECRET
        if name == "ingest":
            env.update(PUBSUB_EMULATOR_HOST=self.stack.emulator.host, PUBSUB_TOPIC=INGEST_TOPIC)
        if name in ("recover", "sync"):
            env.update(
                STRIPE_API_KEY=STRIPE_TEST_KEY,
                STRIPE_API_BASE=self.stack.urls["stripe"],
                LINQ_API_KEY=LINQ_TOKEN,
                LINQ_API_BASE=self.stack.urls["linq"],
                FIRESTORE_EMULATOR_HOST=self.proxy.host,
            )
        return env

    def set_latency(self, latency_s: float) -> None:
        for name in ("stripe", "linq", "slack"):
            self.stack.standin(name).set_latency(latency_s)

    def stop(self) -> None:
        for process in self._started:
            process.stop()
        self.bare.stop()
        self.stack.stop()
        self.proxy.stop()
