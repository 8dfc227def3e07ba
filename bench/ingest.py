"""Ingest acknowledgement: the warm ingest function against the bare floor and a sync handler."""

from __future__ import annotations

from bench import fixtures
from bench.env import BenchEnv
from bench.load import Prepared, Timings, concurrent, sequential
from bench.report import INFO, Result, Row, markdown_table, verdict
from bench.stats import fmt, ratio, summary_ms
from standins import builders

NAME = "ingest"
CLIENTS = 8
P50_MARGIN_MS, P99_MARGIN_MS, SPEEDUP = 5.0, 25.0, 20.0


def _webhooks(count: int) -> list[Prepared]:
    """Signed invoice.payment_failed webhooks (the ingest function never reads Stripe)."""
    customer = builders.customer(phone=fixtures.next_phone())
    prepared: list[Prepared] = []
    for _ in range(count):
        body, headers = fixtures.signed_webhook(
            builders.payment_failed_event(builders.invoice(customer))
        )
        prepared.append(("POST", body, headers))
    return prepared


def _signed(cases: list[fixtures.Case]) -> list[Prepared]:
    out: list[Prepared] = []
    for case in cases:
        body, headers = fixtures.signed_webhook(case.event)
        out.append(("POST", body, headers))
    return out


def run(env: BenchEnv, quick: bool = False) -> Result:
    rounds = 1 if quick else 3
    per_round, warmup = (80, 20) if quick else (250, 50)
    sync_sequential, sync_warmup = (10, 2) if quick else (60, 5)
    fast_concurrent = 200 if quick else 2000
    sync_concurrent = 32 if quick else 240

    ingest = env.function("ingest").start()
    sync = env.function("sync").start()
    bare = env.bare

    # The synchronous handler does a whole recovery per request: each needs its own invoice.
    sync_cases = fixtures.cases(sync_sequential + sync_warmup + sync_concurrent)
    fixtures.load(env.stack.stripe, sync_cases)

    latency: dict[str, list[float]] = {"bare": [], "ingest": []}
    for _ in range(rounds):
        # Alternate the two in rounds, so drift on a shared machine hits both alike.
        for name, process in (("bare", bare), ("ingest", ingest)):
            timings = sequential(process.url, _webhooks(per_round + warmup), warmup=warmup)
            assert timings.ok == len(timings.statuses), f"{name} answered {set(timings.statuses)}"
            latency[name] += timings.durations
    sync_seq = sequential(
        sync.url, _signed(sync_cases[: sync_sequential + sync_warmup]), sync_warmup
    )
    assert sync_seq.ok == len(sync_seq.statuses), f"sync answered {set(sync_seq.statuses)}"

    throughput: dict[str, Timings] = {}
    throughput["bare"] = concurrent(bare.url, _webhooks(fast_concurrent), CLIENTS)
    throughput["ingest"] = concurrent(ingest.url, _webhooks(fast_concurrent), CLIENTS)
    throughput["sync"] = concurrent(
        sync.url, _signed(sync_cases[sync_sequential + sync_warmup :]), CLIENTS
    )
    ingest.stop()
    sync.stop()

    rate = {name: t.per_second for name, t in throughput.items()}
    s = {name: summary_ms(values) for name, values in latency.items()}
    s["sync"] = summary_ms(sync_seq.durations)
    gaps = {q: s["ingest"][q] - s["bare"][q] for q in ("p50", "p99")}
    speedup = ratio(s["sync"]["p50"], s["ingest"]["p50"])
    rows = [
        Row(
            NAME,
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
            NAME,
            "ack p50 vs synchronous handler",
            fmt(s["ingest"]["p50"], 2),
            f"sync {fmt(s['sync']['p50'], 1)}",
            f"{fmt(speedup, 0)}× faster (≥ {SPEEDUP:.0f}×)",
            verdict(speedup >= SPEEDUP),
        ),
        Row(
            NAME,
            f"requests/s, {CLIENTS} clients",
            fmt(throughput["ingest"].per_second, 0),
            f"bare {fmt(rate['bare'], 0)}; sync {fmt(rate['sync'], 1)}",
            f"{fmt(ratio(rate['ingest'], rate['bare']), 2)}× bare; "
            f"{fmt(ratio(rate['ingest'], rate['sync']), 0)}× sync",
            INFO,
        ),
    ]
    table = []
    for name in ("bare", "ingest", "sync"):
        t = throughput[name]
        table.append(
            [
                {
                    "bare": "bare function (floor)",
                    "ingest": "ingest function",
                    "sync": "synchronous handler",
                }[name],
                fmt(s[name]["p50"], 2),
                fmt(s[name]["p90"], 2),
                fmt(s[name]["p99"], 2),
                f"{s[name]['n']:.0f}",
                fmt(t.per_second, 1),
                f"{t.ok}/{len(t.statuses)}",
                fmt(summary_ms(t.durations)["p50"], 1),
            ]
        )
    details = [
        "### 1. Ingest acknowledgement",
        "",
        "Sequential POSTs of signed `invoice.payment_failed` webhooks over one keep-alive "
        f"connection after {warmup} warm-up requests ({rounds} alternating rounds of {per_round} "
        f"for the bare and ingest functions; {sync_sequential} for the synchronous handler), then "
        f"{CLIENTS} concurrent keep-alive clients for requests/s. The bare function gets the "
        "same bodies. The ingest "
        f"function publishes to the Pub/Sub emulator (a topic without subscribers, so no recovery "
        "competes for the two CPUs); the synchronous handler (`bench/baselines/sync_main.py`) "
        "verifies the signature with the product's code, then calls the recover function's "
        "entry point in-process with the CloudEvent the ingest function would publish (ledger, "
        f"Stripe and Linq at {env.latency_ms:.0f} ms per call) and answers when it returns. "
        "Client-side times, in ms.",
        "",
        *markdown_table(
            ["function", "p50", "p90", "p99", "n", "req/s", "2xx", "p50 under load"],
            table,
        ),
    ]
    return Result(
        NAME,
        rows,
        details,
        {"latency": s, "throughput": {k: v.per_second for k, v in throughput.items()}},
    )
