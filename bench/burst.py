"""Burst: thousands of failed payments at once through the emulator, at several concurrencies."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import fixtures
from bench.env import LATENCY_MS, LINQ_NO_CAPABILITY_LIMIT, NO_SURGE_GUARD
from bench.load import concurrent
from bench.procs import cpu_seconds, peak_rss_mib, with_children
from bench.pusher import Pusher
from bench.report import INFO, Headline, Result, Row, markdown_table, section, verdict
from bench.stats import fmt
from standins.stack import LocalStack, json_lines
from standins.stripe_api import DEFAULT_ENDPOINT_RATE

NAME = "burst"
POST_CLIENTS = 8
# Keep peak Stripe traffic this far under its documented 25 requests/s per endpoint: the
# account's other traffic shares the limit (and, in a sandbox, the global 25/s as well).
SAFE_RATE = 20
# Redelivery as deploy.sh configures it (10 attempts), with backoff scaled down 10x (1-5 s
# instead of 10-600 s) so a rate-limited run finishes inside the bench's time budget.
MAX_DELIVERY_ATTEMPTS = 10
# functions-framework's own default on this machine (4 per CPU), for the emulator-push run.
EMULATOR_THREADS = 8


@dataclass(frozen=True)
class Outcomes:
    """What became of a batch of failed payments."""

    sent: int
    lost: int
    doubled: int
    retries: int
    dead_letters: int

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.doubled == 0

    def __str__(self) -> str:
        return f"{self.lost} lost, {self.doubled} doubled, {self.dead_letters} DLQ"


def count_outcomes(
    stack: LocalStack,
    batch: list[fixtures.Case],
    lines: list[dict[str, Any]],
    only_sent: bool = False,
) -> Outcomes:
    """What became of each payment of `batch`, by the recover function's log `lines`, the texts
    and links the Linq stand-in took and the dead-letter topic. Lost: no `sent` result line
    (`only_sent`: or a result other than sent), or a text or link never sent; doubled: a second
    result line, text or link."""
    wanted = {case.invoice_id for case in batch}
    results = [line for line in lines if "action" in line and line["invoice_id"] in wanted]
    sent = {line["invoice_id"] for line in results if line["action"] == "sent"}
    unsent = {line["invoice_id"] for line in results if line["action"] != "sent"}
    texts = Counter(
        (m["to"][0], m["parts"][0]["type"]) for m in stack.linq.messages() if m["parts"]
    )
    settled = sent - unsent if only_sent else sent
    doubled = len(results) - len({line["invoice_id"] for line in results})
    lost = 0
    for case in batch:
        counts = [texts[(case.phone, part)] for part in ("text", "link")]
        doubled += sum(max(0, n - 1) for n in counts)
        lost += case.invoice_id not in settled or 0 in counts
    return Outcomes(
        sent=len(sent),
        lost=lost,
        doubled=doubled,
        retries=sum(1 for line in lines if str(line.get("message", "")).startswith("will retry")),
        dead_letters=len(stack.emulator.pull(stack.dead_letter_subscription, 1000)),
    )


def drain(began: float, events: int, results: Callable[[], int]) -> float:
    """Seconds from `began` until `results()` reached `events` (or 60 s + 0.5 s an event went
    by); then half a second more, for late duplicates (if any) to show up before counting."""
    deadline = time.monotonic() + 60 + events * 0.5
    while results() < events and time.monotonic() < deadline:
        time.sleep(0.1)
    seconds = time.monotonic() - began
    time.sleep(0.5)
    return seconds


@dataclass(frozen=True)
class Run:
    """One burst at one concurrency setting (`slots` None: the emulator's own push)."""

    slots: int | None
    events: int
    posted_ok: int
    post_seconds: float
    seconds: float
    peak_stripe: int
    stripe_429: int
    outcomes: Outcomes
    cpu: dict[str, float]
    rss: dict[str, float]

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def safe(self) -> bool:
        return self.outcomes.clean and self.stripe_429 == 0 and self.peak_stripe <= SAFE_RATE

    @property
    def label(self) -> str:
        return "emulator push (2 loops)" if self.slots is None else f"{self.slots} slots"


def _count_results(log: Path) -> int:
    try:
        return log.read_text(errors="replace").count('"action": ')
    except FileNotFoundError:
        return 0


def burst(workdir: Path, slots: int | None, events: int) -> Run:
    """Post `events` webhooks as fast as 8 clients can and wait for every result line. `slots`
    pushes at most that many messages at once to a recover function with as many threads (max
    instances x concurrency); None leaves delivery to the emulator's push loops."""
    stack = LocalStack(
        latency_ms=LATENCY_MS,
        linq_args=LINQ_NO_CAPABILITY_LIMIT,
        recover_env={
            "THREADS": str(slots or EMULATOR_THREADS),
            "QUIET_HOURS": "off",
            **NO_SURGE_GUARD,
        },
        max_delivery_attempts=MAX_DELIVERY_ATTEMPTS,
        workdir=workdir / f"burst-{slots or 'emulator'}-{events}",
    )
    pusher: Pusher | None = None
    with stack:
        if slots is not None:
            pusher = Pusher(stack, slots, max_attempts=MAX_DELIVERY_ATTEMPTS).start()
        fixtures.load_linq_line(stack.linq)
        batch = fixtures.cases(events)
        fixtures.load(stack.stripe, batch)
        processes = {name: with_children(stack.pid(name)) for name in ("ingest", "recover")}
        cpu_before = {name: cpu_seconds(p) for name, p in processes.items()}
        webhooks = fixtures.signed_posts(case.event for case in batch)
        began = time.monotonic()
        posted = concurrent(stack.urls["ingest"], webhooks, POST_CLIENTS)
        seconds = drain(began, events, lambda: _count_results(stack.log("recover")))
        if pusher is not None:
            pusher.stop()
        stats = stack.stripe.stats()
        return Run(
            slots,
            events,
            posted_ok=posted.ok,
            post_seconds=posted.elapsed,
            seconds=seconds,
            peak_stripe=int(stats["peak_per_second"]["overall"]),
            stripe_429=int(stats["by_status"].get("429", 0)),
            cpu={name: cpu_seconds(p) - cpu_before[name] for name, p in processes.items()},
            rss={name: peak_rss_mib(p) for name, p in processes.items()},
            outcomes=count_outcomes(stack, batch, json_lines(stack.log("recover")), only_sent=True),
        )


def measure(workdir: Path, quick: bool) -> tuple[list[Run], int]:
    """Short probes at several settings, then the full burst at the most slots that were safe
    (the last run), and that number of slots."""
    if quick:
        # A smoke run: one short burst at four slots stands in for the probes and the full run.
        return [burst(workdir, 4, 60)], 4
    runs = [burst(workdir, None, 120)]
    runs += [burst(workdir, slots, 250) for slots in (4, 8, 16)]
    safe = [r.slots for r in runs[1:] if r.safe and r.slots is not None]
    recommended = max(safe, default=4)
    return [*runs, burst(workdir, recommended, 2000)], recommended


def run(workdir: Path, quick: bool = False) -> Result:
    return render(*measure(workdir, quick))


def _row(run: Run) -> dict[str, str]:
    return {
        "delivery": run.label,
        "events": str(run.events),
        "webhooks 200": f"{run.posted_ok}/{run.events}",
        "webhooks/s": fmt(run.events / run.post_seconds if run.post_seconds else 0.0, 0),
        "drain s": fmt(run.seconds, 1),
        "events/s": fmt(run.per_second, 1),
        "peak Stripe/s": str(run.peak_stripe),
        "Stripe 429": str(run.stripe_429),
        "redeliveries": str(run.outcomes.retries),
        "outcome": str(run.outcomes),
        "recover CPU ms/event": fmt(run.cpu["recover"] * 1000 / run.events, 1),
        "ingest CPU ms/event": fmt(run.cpu["ingest"] * 1000 / run.events, 1),
        "peak RSS MiB recover / ingest": f"{run.rss['recover']:.0f} / {run.rss['ingest']:.0f}",
    }


def headlines(final: Run) -> list[Headline]:
    """The full burst: how fast it drains, what it lost or doubled, how hard it asked Stripe."""
    done = final.outcomes
    return [
        Headline(
            f"A burst of {final.events:,} failed payments: texted per second, lost, doubled",
            f"{fmt(final.per_second, 1)}/s; {done.lost} lost, {done.doubled} doubled; "
            f"{final.posted_ok:,} webhooks answered in {fmt(final.post_seconds, 1)} s",
            "none lost, none doubled, every webhook answered",
            "–",
            verdict(done.clean and final.posted_ok == final.events),
        ),
        Headline(
            "A burst: Stripe requests per second at the peak",
            f"{final.peak_stripe}/s, {final.stripe_429} refused",
            f"within Stripe's documented {DEFAULT_ENDPOINT_RATE}/s",
            "–",
            verdict(final.stripe_429 == 0 and final.peak_stripe <= DEFAULT_ENDPOINT_RATE),
        ),
    ]


def render(runs: list[Run], recommended: int) -> Result:
    """The summary rows, the report section and what the cost benchmark reads."""
    final = runs[-1]
    summary = headlines(final)
    rows = [
        Row(
            f"{final.events} events at {recommended} slots: events/s end to end",
            fmt(final.per_second, 1),
            f"{final.posted_ok}/{final.events} webhooks got 200 in {fmt(final.post_seconds, 1)} s",
            f"{final.outcomes.lost} lost, {final.outcomes.doubled} doubled (0 and 0)",
            summary[0].verdict,
        ),
        Row(
            f"peak Stripe requests/s at {recommended} slots",
            str(final.peak_stripe),
            f"{final.stripe_429} × 429",
            f"≤ {DEFAULT_ENDPOINT_RATE}/s documented (aim ≤ {SAFE_RATE})",
            summary[1].verdict,
        ),
    ]
    rows += [
        Row(
            f"{probe.label}, {probe.events} events",
            f"{fmt(probe.per_second, 1)} ev/s",
            f"peak Stripe {probe.peak_stripe}/s, {probe.stripe_429} × 429",
            f"lost {probe.outcomes.lost}, {probe.outcomes.retries} redelivered",
            INFO,
        )
        for probe in runs[:-1]
    ]
    details = section(
        "### 4. Burst",
        "Each row runs on a fresh stack: the Stripe stand-in enforces the documented 25 requests/s "
        "per endpoint (and 25/s global in test mode) and answers 429 above it; stand-ins at "
        f"{LATENCY_MS:.0f} ms per call; redelivery as in deploy.sh ({MAX_DELIVERY_ATTEMPTS} "
        "attempts, then the dead-letter topic) with the backoff scaled to 1-5 s. Webhooks are "
        f"posted by {POST_CLIENTS} keep-alive clients as fast as the ingest function takes them; "
        "the clock runs from the first POST to the last result line.",
        "The Pub/Sub emulator pushes with exactly two loops per subscription, one message at a "
        "time each (`PushLoop`, started twice in `FakePubsubServer$SubscriptionData`), so through "
        "its own push at most two runs are ever in flight, whatever the function's concurrency "
        "(first row). Production Pub/Sub keeps as many pushes outstanding as the function accepts, "
        "i.e. max instances × concurrency. The other rows model that with `bench/pusher.py`: the "
        "stack's push subscription is switched to pull (same retry and dead-letter policy) and the "
        "bench delivers from it with *n slots* concurrent raw Pub/Sub pushes to a recover function "
        "started with `THREADS=n`, acknowledging a 2xx and backing off otherwise. Short probes "
        f"choose the setting (the most slots whose peak Stripe rate stays ≤ {SAFE_RATE}/s with no "
        "429 and nothing lost); the full burst then runs at that setting. The Linq stand-in's "
        "capability-check limit is off (see the method below). CPU is user+system time of each "
        "function's gunicorn master and worker over the burst; RSS is the sum of their peaks.",
        markdown_table([_row(r) for r in runs]),
        f"**Recommended:** {recommended} slots, i.e. max instances × concurrency = {recommended} "
        "for the recover function (deploy.sh runs concurrency 1, so "
        f"`RECOVER_MAX_INSTANCES={recommended}`).",
    )
    # The cost benchmark prices the full burst's CPU time and memory.
    return Result(NAME, rows, details, {"run": final}, summary)
