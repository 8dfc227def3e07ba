"""Ingest acknowledgement: the warm ingest function against the bare floor and a sync handler."""

from __future__ import annotations

from dataclasses import dataclass

from bench import fixtures
from bench.env import BenchEnv
from bench.load import Prepared, Timings, concurrent, sequential
from bench.report import INFO, Result, Row, markdown_table, section, verdict
from bench.stats import fmt, ratio, summary_ms

NAME = "ingest"
CLIENTS = 8
P50_MARGIN_MS, P99_MARGIN_MS, SPEEDUP = 5.0, 25.0, 20.0


# What each function is called in the table.
LABELS = {
    "bare": "bare function (floor)",
    "ingest": "ingest function",
    "sync": "synchronous handler",
}


@dataclass(frozen=True)
class Counts:
    """How many requests each part sends."""

    rounds: int
    per_round: int
    warmup: int
    sync_sequential: int
    sync_warmup: int
    fast_concurrent: int
    sync_concurrent: int


QUICK = Counts(1, 80, 20, 10, 2, 200, 32)
FULL = Counts(3, 250, 50, 60, 5, 2000, 240)


@dataclass(frozen=True)
class Measured:
    """Sequential latency (summary in ms) and concurrent throughput of each function."""

    counts: Counts
    latency: dict[str, dict[str, float]]
    throughput: dict[str, Timings]


def _webhooks(count: int) -> list[Prepared]:
    """Signed invoice.payment_failed webhooks (the ingest function never reads Stripe)."""
    return fixtures.signed_posts(case.event for case in fixtures.cases(count))


def measure(env: BenchEnv, quick: bool) -> Measured:
    n = QUICK if quick else FULL
    ingest = env.function("ingest").start()
    sync = env.function("sync").start()
    # The synchronous handler does a whole recovery per request: each needs its own invoice.
    sync_cases = fixtures.cases(n.sync_sequential + n.sync_warmup + n.sync_concurrent)
    fixtures.load(env.stack.stripe, sync_cases)
    sync_first = n.sync_sequential + n.sync_warmup

    latency: dict[str, list[float]] = {"bare": [], "ingest": []}
    for _ in range(n.rounds):
        # Alternate the two in rounds, so drift on a shared machine hits both alike.
        for name, process in (("bare", env.bare), ("ingest", ingest)):
            timings = sequential(process.url, _webhooks(n.per_round + n.warmup), n.warmup)
            assert timings.ok == len(timings.statuses), f"{name} answered {set(timings.statuses)}"
            latency[name] += timings.durations
    sync_posts = fixtures.signed_posts(case.event for case in sync_cases[:sync_first])
    sync_seq = sequential(sync.url, sync_posts, n.sync_warmup)
    assert sync_seq.ok == len(sync_seq.statuses), f"sync answered {set(sync_seq.statuses)}"
    latency["sync"] = sync_seq.durations

    throughput = {
        "bare": concurrent(env.bare.url, _webhooks(n.fast_concurrent), CLIENTS),
        "ingest": concurrent(ingest.url, _webhooks(n.fast_concurrent), CLIENTS),
        "sync": concurrent(
            sync.url, fixtures.signed_posts(c.event for c in sync_cases[sync_first:]), CLIENTS
        ),
    }
    ingest.stop()
    sync.stop()
    return Measured(n, {k: summary_ms(v) for k, v in latency.items()}, throughput)


def run(env: BenchEnv, quick: bool = False) -> Result:
    return render(measure(env, quick), env.latency_ms)


def render(measured: Measured, latency_ms: float) -> Result:
    """The summary rows and the report section."""
    s, throughput, n = measured.latency, measured.throughput, measured.counts
    rate = {name: t.per_second for name, t in throughput.items()}
    gaps = {q: s["ingest"][q] - s["bare"][q] for q in ("p50", "p99")}
    speedup = ratio(s["sync"]["p50"], s["ingest"]["p50"])
    rows = [
        Row(
            f"ack {q} (ms)",
            fmt(s["ingest"][q], 2),
            f"bare {fmt(s['bare'][q], 2)}",
            f"+{fmt(gaps[q], 2)} ms (≤ +{margin:.0f})",
            verdict(gaps[q] <= margin),
        )
        for q, margin in (("p50", P50_MARGIN_MS), ("p99", P99_MARGIN_MS))
    ]
    rows += [
        Row(
            "ack p50 vs synchronous handler",
            fmt(s["ingest"]["p50"], 2),
            f"sync {fmt(s['sync']['p50'], 1)}",
            f"{fmt(speedup, 0)}× faster (≥ {SPEEDUP:.0f}×)",
            verdict(speedup >= SPEEDUP),
        ),
        Row(
            f"requests/s, {CLIENTS} clients",
            fmt(throughput["ingest"].per_second, 0),
            f"bare {fmt(rate['bare'], 0)}; sync {fmt(rate['sync'], 1)}",
            f"{fmt(ratio(rate['ingest'], rate['bare']), 2)}× bare; "
            f"{fmt(ratio(rate['ingest'], rate['sync']), 0)}× sync",
            INFO,
        ),
    ]
    table = [
        {
            "function": LABELS[name],
            "p50": fmt(s[name]["p50"], 2),
            "p90": fmt(s[name]["p90"], 2),
            "p99": fmt(s[name]["p99"], 2),
            "n": f"{s[name]['n']:.0f}",
            "req/s": fmt(t.per_second, 1),
            "2xx": f"{t.ok}/{len(t.statuses)}",
            "p50 under load": fmt(summary_ms(t.durations)["p50"], 1),
        }
        for name, t in throughput.items()
    ]
    details = section(
        "### 1. Ingest acknowledgement",
        "Sequential POSTs of signed `invoice.payment_failed` webhooks over one keep-alive "
        f"connection after {n.warmup} warm-up requests ({n.rounds} alternating rounds of "
        f"{n.per_round} for the bare and ingest functions; {n.sync_sequential} for the synchronous "
        f"handler), then {CLIENTS} concurrent keep-alive clients for requests/s. The bare function "
        "gets the same bodies. The ingest function publishes to the Pub/Sub emulator (a topic "
        "without subscribers, so no recovery competes for the two CPUs); the synchronous handler "
        "(`bench/baselines/sync_main.py`) verifies the signature with the product's code, then "
        "calls the recover function's entry point in-process with the CloudEvent the ingest "
        f"function would publish (ledger, Stripe and Linq at {latency_ms:.0f} ms per call) and "
        "answers when it returns. Client-side times, in ms.",
        markdown_table(table),
    )
    return Result(NAME, rows, details)
