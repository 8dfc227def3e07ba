"""Ingest acknowledgement: the warm ingest function (failed payments and first-try payments) and
the Linq intake against the bare floor, and the ingest function against a sync handler."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench import fixtures
from bench.env import BenchEnv
from bench.load import Prepared, Timings, concurrent, sequential
from bench.report import INFO, Headline, Result, Row, markdown_table, section, verdict
from bench.stats import fmt, ratio, summary_ms
from standins.emulator import PubSubEmulator

NAME = "ingest"
CLIENTS = 8
P50_MARGIN_MS, P99_MARGIN_MS, SPEEDUP = 5.0, 25.0, 20.0
# The first-try invoice.paid requests go to an ingest process of their own, publishing to this
# topic, where a pull subscription counts what reaches it: nothing should.
PAID_TOPIC = "bench-ingest-paid"
PAID_SUBSCRIPTION = f"{PAID_TOPIC}-count"
CONTROL_WAIT_S = 10.0

# What each function is called in the table, in the order of the rounds.
LABELS = {
    "bare": "bare function (floor)",
    "ingest": "ingest function",
    "paid": "ingest function, first-try `invoice.paid`",
    "linq": "Linq intake (`message.delivered`)",
    "sync": "synchronous handler",
}
FAST = ("bare", "ingest", "paid", "linq")
# The functions held to the floor's targets, and their figures' names in the summary.
AGAINST_FLOOR = {"ingest": "", "paid": "first-try invoice.paid: ", "linq": "Linq intake: "}


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
    """Sequential latency (summary in ms) and concurrent throughput of each function, and what
    the first-try invoice.paid requests published: `paid_published` of `paid_posted` (all 2xx
    expected to publish nothing), and how many of one control invoice.payment_failed posted to
    the same process after them reached the same subscription (1: the count could see one)."""

    counts: Counts
    latency: dict[str, dict[str, float]]
    throughput: dict[str, Timings]
    paid_posted: int = 0
    paid_published: int = 0
    control_published: int = 1


def _requests(name: str, count: int) -> list[Prepared]:
    """What each function is sent: Stripe's failed payments (the bare function gets the same; the
    ingest function never reads Stripe), first-try invoice.paid webhooks, or Linq deliveries
    signed just now."""
    batch = fixtures.cases(count)
    if name == "paid":
        return fixtures.signed_posts(map(fixtures.first_try_paid, batch))
    if name == "linq":
        return fixtures.linq_signed_posts(map(fixtures.linq_delivered, batch))
    return fixtures.signed_posts(case.event for case in batch)


def _drain(emulator: PubSubEmulator, subscription: str) -> int:
    """How many messages wait on `subscription` (pulled and acknowledged)."""
    total = 0
    while pulled := emulator.pull(subscription, max_messages=1000):
        total += len(pulled)
    return total


def _control(emulator: PubSubEmulator, url: str) -> int:
    """Post one failed payment to the first-try process and count what reaches its topic."""
    timings = sequential(url, _requests("ingest", 1))
    assert timings.ok == 1, f"control answered {timings.statuses}"
    deadline = time.monotonic() + CONTROL_WAIT_S
    seen = 0
    while not seen and time.monotonic() < deadline:
        seen = _drain(emulator, PAID_SUBSCRIPTION)
        time.sleep(0.05)
    return seen


def measure(env: BenchEnv, quick: bool) -> Measured:
    n = QUICK if quick else FULL
    emulator = env.stack.emulator
    emulator.create_topic(PAID_TOPIC)
    emulator.create_subscription(PAID_SUBSCRIPTION, PAID_TOPIC)
    processes = {
        "bare": env.bare,
        "ingest": env.function("ingest").start(),
        "paid": env.function("ingest", topic=PAID_TOPIC).start(),
        "linq": env.function("linq-intake").start(),
    }
    sync = env.function("sync").start()
    # The synchronous handler does a whole recovery per request: each needs its own invoice.
    sync_cases = fixtures.cases(n.sync_sequential + n.sync_warmup + n.sync_concurrent)
    fixtures.load(env.stack.stripe, sync_cases)
    sync_first = n.sync_sequential + n.sync_warmup

    latency: dict[str, list[float]] = {name: [] for name in FAST}
    for _ in range(n.rounds):
        # Alternate the functions in rounds, so drift on a shared machine hits all alike. Each
        # round's requests are made (and the Linq ones signed) just before it is sent.
        for name in FAST:
            timings = sequential(
                processes[name].url, _requests(name, n.per_round + n.warmup), n.warmup
            )
            assert timings.ok == len(timings.statuses), f"{name} answered {set(timings.statuses)}"
            latency[name] += timings.durations
    sync_posts = fixtures.signed_posts(case.event for case in sync_cases[:sync_first])
    sync_seq = sequential(sync.url, sync_posts, n.sync_warmup)
    assert sync_seq.ok == len(sync_seq.statuses), f"sync answered {set(sync_seq.statuses)}"
    latency["sync"] = sync_seq.durations

    throughput = {
        name: concurrent(processes[name].url, _requests(name, n.fast_concurrent), CLIENTS)
        for name in FAST
    }
    throughput["sync"] = concurrent(
        sync.url, fixtures.signed_posts(c.event for c in sync_cases[sync_first:]), CLIENTS
    )
    paid_posted = n.rounds * (n.per_round + n.warmup) + n.fast_concurrent
    paid_published = _drain(emulator, PAID_SUBSCRIPTION)
    control_published = _control(emulator, processes["paid"].url)
    assert control_published == 1, f"the control failed payment published {control_published}"
    for name in ("ingest", "paid", "linq"):
        processes[name].stop()
    sync.stop()
    emulator.delete_subscription(PAID_SUBSCRIPTION)
    summary = {name: summary_ms(durations) for name, durations in latency.items()}
    return Measured(n, summary, throughput, paid_posted, paid_published, control_published)


def run(env: BenchEnv, quick: bool = False) -> Result:
    return render(measure(env, quick), env.latency_ms)


def _against_floor(s: dict[str, dict[str, float]], name: str) -> list[Row]:
    """The p50 and p99 rows of one function against the bare function's."""
    rows = []
    for q, margin in (("p50", P50_MARGIN_MS), ("p99", P99_MARGIN_MS)):
        gap = s[name][q] - s["bare"][q]
        rows.append(
            Row(
                f"{AGAINST_FLOOR[name]}ack {q} (ms)",
                fmt(s[name][q], 2),
                f"bare {fmt(s['bare'][q], 2)}",
                f"{'+' if gap >= 0 else '−'}{fmt(abs(gap), 2)} ms (≤ +{margin:.0f})",
                verdict(gap <= margin),
            )
        )
    return rows


def headlines(s: dict[str, dict[str, float]]) -> list[Headline]:
    """How long Stripe waits for its answer, against a function that does nothing and against
    a handler that recovers before it answers."""
    floor = "a function that does nothing"
    rows = [
        Headline(
            f"Stripe's webhook answered, {label}",
            f"{fmt(s['ingest'][q], 2)} ms",
            f"at most {margin:.0f} ms more than the baseline",
            f"{floor}: {fmt(s['bare'][q], 2)} ms",
            verdict(s["ingest"][q] - s["bare"][q] <= margin),
        )
        for q, label, margin in (
            ("p50", "median", P50_MARGIN_MS),
            ("p99", "99th percentile", P99_MARGIN_MS),
        )
    ]
    speedup = ratio(s["sync"]["p50"], s["ingest"]["p50"])
    rows.append(
        Headline(
            "Stripe's webhook answered, against texting first",
            f"{fmt(speedup, 0)}× faster",
            f"at least {SPEEDUP:.0f}× faster",
            f"a handler that recovers before it answers: {fmt(s['sync']['p50'], 0)} ms",
            verdict(speedup >= SPEEDUP),
        )
    )
    return rows


def render(measured: Measured, latency_ms: float) -> Result:
    """The summary rows and the report section."""
    s, throughput, n = measured.latency, measured.throughput, measured.counts
    rate = {name: t.per_second for name, t in throughput.items()}
    speedup = ratio(s["sync"]["p50"], s["ingest"]["p50"])
    rows = _against_floor(s, "ingest")
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
            fmt(rate["ingest"], 0),
            f"bare {fmt(rate['bare'], 0)}; sync {fmt(rate['sync'], 1)}",
            f"{fmt(ratio(rate['ingest'], rate['bare']), 2)}× bare; "
            f"{fmt(ratio(rate['ingest'], rate['sync']), 0)}× sync",
            INFO,
        ),
    ]
    rows += _against_floor(s, "paid")
    rows.append(
        Row(
            "first-try invoice.paid: messages published",
            str(measured.paid_published),
            f"{measured.paid_posted} posted; control payment_failed: "
            f"{measured.control_published} published",
            "0",
            verdict(measured.paid_published == 0),
        )
    )
    rows += _against_floor(s, "linq")
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
        "Sequential POSTs over one keep-alive connection after "
        f"{n.warmup} warm-up requests, in {n.rounds} alternating rounds of {n.per_round} for each "
        "of four functions (bare, ingest with signed `invoice.payment_failed` webhooks, ingest "
        "with signed first-try `invoice.paid` webhooks, the Linq intake with signed "
        f"`message.delivered` webhooks; {n.sync_sequential} for the synchronous handler), then "
        f"{CLIENTS} concurrent keep-alive clients for requests/s. The bare function gets the "
        "failed payments' bodies. The ingest function publishes to the Pub/Sub emulator (a topic "
        "without subscribers, so no recovery competes for the two CPUs); the synchronous handler "
        "(`bench/baselines/sync_main.py`) verifies the signature with the product's code, then "
        "calls the recover function's entry point in-process with the CloudEvent the ingest "
        f"function would publish (ledger, Stripe and Linq at {latency_ms:.0f} ms per call) and "
        "answers when it returns. Client-side times, in ms.",
        "**First-try `invoice.paid`**: the invoice of each failed payment as Stripe has it once "
        "paid at attempt 1 as it was finalized (`paid_at_first_try` in shared/core/event.py), "
        "posted to an ingest process of its own publishing to a topic with one pull "
        f"subscription: {measured.paid_published} of the {measured.paid_posted} requests "
        "published a message (the function answers 200 before its publisher is touched); one "
        "`invoice.payment_failed` posted to the same process afterwards, as a control, reached "
        f"the subscription {measured.control_published}×. **Linq intake** "
        "(`linq_webhook`): `message.delivered` events in the Linq stand-in's shape, each signed "
        "as Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) just "
        "before its round, so every timestamp is well inside the five-minute tolerance; the "
        "intake verifies them with `standardwebhooks` and publishes each to a topic without "
        "subscribers.",
        markdown_table(table),
    )
    return Result(NAME, rows, details, headlines=headlines(s))
