"""Release sweep: what a tick costs when nothing is due, and a morning release of a thousand."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
from cloudevents.conversion import to_binary

from bench import burst, cost, fixtures
from bench.baselines.sync_main import pubsub_event
from bench.env import LATENCY_MS, LINQ_NO_CAPABILITY_LIMIT, NO_SURGE_GUARD, function_process
from bench.load import concurrent
from bench.procs import cpu_seconds, first_answer, with_children
from bench.pusher import Pusher
from bench.report import Headline, Result, Row, markdown_table, section, verdict
from bench.report_ledger import write_ledger
from bench.stats import fmt, median, percentile, ratio
from shared.core.entry import RETENTION, Entry, EntryKey, State
from shared.core.outcome import Action
from shared.workflow.settings import DEFAULT_FIRESTORE_DATABASE, SWEEP_TOPIC
from standins.base import peak_per_second
from standins.emulator import DEFAULT_PROJECT
from standins.stack import LocalStack, base_env, json_lines
from standins.stripe_api import DEFAULT_ENDPOINT_RATE

NAME = "sweep"
# deploy.sh: RELEASE_SCHEDULE "*/5 * * * *".
TICKS_PER_DAY = 24 * 60 // 5
DAYS_PER_MONTH = 30
# deploy.sh: RECOVER_MAX_INSTANCES=4 at concurrency 1, the pushes Pub/Sub keeps in flight.
SLOTS = 4
# The night only makes the deferrals, each reading Stripe once: two slots keep its 429s (retried,
# counted in no target) few.
NIGHT_SLOTS = 2
PUBLISH_TARGET_S = 30.0
# The fixtures' numbers are +1 415: the recipients' quiet hours are Los Angeles's.
RECIPIENTS_ZONE = ZoneInfo("America/Los_Angeles")
NOT_DUE_LABEL = "not due"


@dataclass(frozen=True)
class Counts:
    """How big each part is."""

    not_due: int
    rounds: int
    per_round: int
    cold_ticks: int
    due: int


QUICK = Counts(not_due=1_000, rounds=2, per_round=10, cold_ticks=1, due=60)
FULL = Counts(not_due=10_000, rounds=6, per_round=25, cold_ticks=3, due=1_000)


@dataclass
class Ticks:
    """Ticks answered by one function: client-side wall times and the CPU its processes used."""

    walls: list[float] = field(default_factory=list)
    cpu: float = 0.0

    @property
    def wall_ms(self) -> float:
        return median(self.walls) * 1000

    @property
    def p90_ms(self) -> float:
        return percentile(self.walls, 90) * 1000

    @property
    def cpu_ms(self) -> float:
        return self.cpu * 1000 / len(self.walls) if self.walls else float("nan")

    def request_s(self) -> float:
        """The tick's request time on the deployed size: the time it waited (wall minus CPU)
        plus its CPU time stretched to the fraction of a vCPU the instance gets."""
        cpu_s = self.cpu_ms / 1000
        return max(0.0, self.wall_ms / 1000 - cpu_s) + cpu_s / cost.VCPU

    def cost_per_tick(self) -> float:
        billed = cost.billed_seconds(self.request_s())
        return cost.instance_cost(billed) + cost.PER_MILLION_REQUESTS / 1e6


@dataclass(frozen=True)
class Morning:
    """The night's deferrals, then one tick and the recoveries it releases."""

    due: int
    night_seconds: float
    night_429: int
    released: int
    publish_seconds: float
    drain_seconds: float
    peak_stripe: int
    stripe_429: int
    outcomes: burst.Outcomes

    @property
    def per_second(self) -> float:
        return self.due / self.drain_seconds if self.drain_seconds else 0.0


@dataclass(frozen=True)
class Measured:
    """What the sweep benchmark saw: ticks by ledger, new instances' first ticks, the morning."""

    counts: Counts
    ticks: dict[str, Ticks]
    cold_ms: list[float]
    morning: Morning


def _tick() -> tuple[bytes, dict[str, str]]:
    """A Cloud Scheduler tick as the push from the sweep topic delivers it: a binary-mode
    CloudEvent whose message is `{}` (the function reads nothing from it)."""
    headers, body = to_binary(pubsub_event(DEFAULT_PROJECT, SWEEP_TOPIC, b"{}"))
    return body, headers


def _post_tick(session: requests.Session, url: str) -> float:
    """Seconds until `url` answered one tick (with a 2xx: anything else stops the benchmark)."""
    body, headers = _tick()
    began = time.perf_counter()
    answer = session.post(url, data=body, headers=headers, timeout=120)
    seconds = time.perf_counter() - began
    if not answer.ok:
        raise RuntimeError(f"a tick was answered {answer.status_code}: {answer.text[:300]}")
    return seconds


def _tick_rounds(urls: dict[str, tuple[str, int | None]], counts: Counts) -> dict[str, Ticks]:
    """`counts.rounds` rounds of `counts.per_round` ticks to each (url, pid), in turn, so drift
    on a shared machine hits all alike."""
    sessions = {name: requests.Session() for name in urls}
    found = {name: Ticks() for name in urls}
    for name, (url, _) in urls.items():
        _post_tick(sessions[name], url)  # a warm instance and connection before timing
    for _ in range(counts.rounds):
        for name, (url, pid) in urls.items():
            processes = with_children(pid)
            before = cpu_seconds(processes)
            found[name].walls += [_post_tick(sessions[name], url) for _ in range(counts.per_round)]
            found[name].cpu += cpu_seconds(processes) - before
    return found


def _cold_tick(stack: LocalStack, workdir: Path) -> float:
    """Seconds from spawning a release process to its answer to a first tick."""
    process = function_process("release", workdir, stack.function_env("release"))
    return first_answer(process, lambda url: _post_tick(requests.Session(), url))[1]


# --- the ledger, written straight into the emulator as its administrator ----------------------


def _write(stack: LocalStack, entries: Iterable[Entry], only: list[str] | None = None) -> None:
    write_ledger(stack.firestore.host, DEFAULT_PROJECT, DEFAULT_FIRESTORE_DATABASE, entries, only)


def _not_due_entry(index: int, now: datetime) -> Entry:
    """An entry a sweep must leave alone: four in five texted and done, one in five deferred
    to a morning still 1 to 12 hours away."""
    entry = Entry(
        EntryKey(f"in_bench_not_due_{index:06d}", 1),
        event_id=f"evt_bench_not_due_{index:06d}",
        pubsub_message_id=str(10**15 + index),
        customer_id=f"cus_bench_not_due_{index:06d}",
        lease_until=now - timedelta(hours=1),
        created_at=now - timedelta(hours=2),
        updated_at=now - timedelta(hours=1),
        expire_at=now + RETENTION,
    )
    if index % 5:
        return replace(
            entry,
            state=State.DONE,
            action=Action.SENT,
            chat_id=uuid.uuid4().hex,
            finished_at=now - timedelta(hours=1),
        )
    return replace(
        entry,
        state=State.DEFERRED,
        action=Action.DEFERRED,
        reason="quiet hours at the recipient",
        due_at=now + timedelta(hours=1 + index % 12),
        zones=("America/Chicago",),
    )


def _write_not_due(stack: LocalStack, count: int) -> None:
    now = datetime.now(UTC)
    _write(stack, (_not_due_entry(index, now) for index in range(count)))


def _make_due(stack: LocalStack, keys: list[EntryKey]) -> None:
    """The recipients' morning: each entry's `due_at` moved into the past, nothing else."""
    due_at = datetime.now(UTC) - timedelta(minutes=1)
    _write(stack, (Entry(key, due_at=due_at) for key in keys), only=["due_at"])


# --- the night and the morning ---------------------------------------------------------------


def night_around(now: datetime) -> str:
    """A QUIET_HOURS window holding `now` for the recipients, for two hours yet."""
    local = now.astimezone(RECIPIENTS_ZONE)
    return f"{local - timedelta(hours=1):%H:%M}-{local + timedelta(hours=2):%H:%M}"


def _stripe_calls(stack: LocalStack, since: float) -> list[dict[str, Any]]:
    return [e for e in stack.stripe.requests() if e["t_wall"] >= since]


def _night(stack: LocalStack, batch: list[fixtures.Case]) -> tuple[float, int]:
    """The failures arrive at night, through the ingest function; each recovery defers. The
    seconds that took and Stripe's 429s meanwhile."""
    since = time.time()
    pusher = Pusher(stack, NIGHT_SLOTS, max_attempts=burst.MAX_DELIVERY_ATTEMPTS).start()
    began = time.monotonic()
    wanted = {case.invoice_id for case in batch}
    try:
        posted = concurrent(
            stack.urls["ingest"], fixtures.signed_posts(c.event for c in batch), burst.POST_CLIENTS
        )
        if posted.ok != len(batch):
            raise RuntimeError(f"only {posted.ok} of {len(batch)} webhooks were taken at night")

        def deferred() -> bool:
            actions = {
                r["invoice_id"]: r["action"] for r in stack.results() if r["invoice_id"] in wanted
            }
            others = {a for a in actions.values() if a != "deferred:quiet_hours"}
            if others:
                raise RuntimeError(f"at night a recovery ended {sorted(others)}, not deferred")
            return len(actions) == len(wanted)

        stack.wait_until(deferred, 60 + len(batch) * 0.5, "every night-time failure deferred")
    finally:
        pusher.stop()
    seconds = time.monotonic() - began
    return seconds, sum(1 for e in _stripe_calls(stack, since) if e["status"] == 429)


def _morning(stack: LocalStack, batch: list[fixtures.Case], night: tuple[float, int]) -> Morning:
    """Morning: the deferred entries are due and it is day; one tick releases them all."""
    stack.kill("recover")
    stack.start_function("recover", QUIET_HOURS="off")
    _make_due(stack, [EntryKey(c.invoice_id, int(c.invoice["attempt_count"])) for c in batch])
    offset = len(json_lines(stack.log("recover")))
    wanted = {case.invoice_id for case in batch}

    def results() -> int:
        lines = json_lines(stack.log("recover"))[offset:]
        return len({r["invoice_id"] for r in lines if "action" in r and r["invoice_id"] in wanted})

    pusher = Pusher(stack, SLOTS, max_attempts=burst.MAX_DELIVERY_ATTEMPTS).start()
    since = time.time()
    began = time.monotonic()
    try:
        # The function returns once every due entry is marked and published (Sweep.run).
        _post_tick(requests.Session(), stack.urls["release"])
        publish_seconds = time.monotonic() - began
        drain_seconds = burst.drain(began, len(batch), results)
    finally:
        pusher.stop()
    sweeps = [line for line in json_lines(stack.log("release")) if "released" in line]
    calls = _stripe_calls(stack, since)
    night_seconds, night_429 = night
    return Morning(
        len(batch),
        night_seconds,
        night_429,
        released=int(sweeps[-1]["released"]) if sweeps else 0,
        publish_seconds=publish_seconds,
        drain_seconds=drain_seconds,
        peak_stripe=peak_per_second([e["t_wall"] for e in calls]),
        stripe_429=sum(1 for e in calls if e["status"] == 429),
        outcomes=burst.count_outcomes(stack, batch, json_lines(stack.log("recover"))[offset:]),
    )


def measure(workdir: Path, quick: bool) -> Measured:
    counts = QUICK if quick else FULL
    stack = LocalStack(
        latency_ms=LATENCY_MS,
        linq_args=LINQ_NO_CAPABILITY_LIMIT,
        recover_env={
            "THREADS": str(SLOTS),
            "QUIET_HOURS": night_around(datetime.now(UTC)),
            **NO_SURGE_GUARD,
        },
        release=True,
        max_delivery_attempts=burst.MAX_DELIVERY_ATTEMPTS,
        workdir=workdir / "sweep",
    )
    bare = function_process("bare", workdir, base_env())
    with stack:
        bare.start()
        try:
            urls = {
                "release": (stack.urls["release"], stack.pid("release")),
                "bare": (bare.url, bare.pid),
            }
            empty = _tick_rounds(urls, counts)
            _write_not_due(stack, counts.not_due)
            full = _tick_rounds(urls, counts)
            cold_ms = [_cold_tick(stack, workdir) * 1000 for _ in range(counts.cold_ticks)]
            fixtures.load_linq_line(stack.linq)
            batch = fixtures.cases(counts.due)
            fixtures.load(stack.stripe, batch)
            morning = _morning(stack, batch, _night(stack, batch))
        finally:
            bare.stop()
    ticks = {"bare": full["bare"], "empty": empty["release"], NOT_DUE_LABEL: full["release"]}
    return Measured(counts, ticks, cold_ms, morning)


def run(workdir: Path, earlier: dict[str, Result], quick: bool = False) -> Result:
    return render(measure(workdir, quick), earlier)


def _per_day(ticks: Ticks) -> float:
    return TICKS_PER_DAY * ticks.cost_per_tick()


def _tick_row(label: str, entries: str, ticks: Ticks) -> dict[str, str]:
    return {
        "function": label,
        "ledger": entries,
        "wall p50 (ms)": fmt(ticks.wall_ms, 1),
        "p90": fmt(ticks.p90_ms, 1),
        "CPU ms/tick": fmt(ticks.cpu_ms, 2),
        "n": str(len(ticks.walls)),
        f"request ms at {cost.VCPU} vCPU": fmt(ticks.request_s() * 1000, 0),
        "billed ms": fmt(cost.billed_seconds(ticks.request_s()) * 1000, 0),
        "per day": f"${_per_day(ticks):.5f}",
        f"per {DAYS_PER_MONTH} days": f"${_per_day(ticks) * DAYS_PER_MONTH:.4f}",
    }


def headlines(morning: Morning, day: float, bare_day: float) -> list[Headline]:
    """The morning release (how soon it is out, what it lost or doubled, how hard it asked
    Stripe) and what the sweep costs when nothing is due."""
    done = morning.outcomes
    return [
        Headline(
            f"Morning release of {morning.due:,} texts held for the night: all published",
            f"{fmt(morning.publish_seconds, 1)} s after the tick; all texted after "
            f"{fmt(morning.drain_seconds, 1)} s",
            f"published within {PUBLISH_TARGET_S:.0f} s",
            "–",
            verdict(
                morning.publish_seconds <= PUBLISH_TARGET_S and morning.released == morning.due
            ),
        ),
        Headline(
            "Morning release: lost, doubled; Stripe requests per second at the peak",
            f"{done.lost} lost, {done.doubled} doubled; {morning.peak_stripe}/s, "
            f"{morning.stripe_429} refused",
            f"none lost or doubled; under Stripe's {DEFAULT_ENDPOINT_RATE}/s",
            "–",
            verdict(
                done.clean
                and done.dead_letters == 0
                and done.sent == morning.due
                and morning.peak_stripe < DEFAULT_ENDPOINT_RATE
                and morning.stripe_429 == 0
            ),
        ),
        Headline(
            f"The release sweep with nothing due, per {DAYS_PER_MONTH} days "
            f"({TICKS_PER_DAY} ticks a day)",
            f"${day * DAYS_PER_MONTH:.4f}",
            "–",
            f"a function that does nothing: ${bare_day * DAYS_PER_MONTH:.4f}",
        ),
    ]


def render(measured: Measured, earlier: dict[str, Result]) -> Result:
    """The summary rows and the report section."""
    counts, ticks, morning = measured.counts, measured.ticks, measured.morning
    done = morning.outcomes
    idle, bare, empty = ticks[NOT_DUE_LABEL], ticks["bare"], ticks["empty"]
    day, bare_day = _per_day(idle), _per_day(bare)
    burst_run = earlier["burst"].data["run"] if "burst" in earlier else None
    burst_rate = (
        f"; burst at {SLOTS} slots {fmt(burst_run.per_second, 1)} ev/s"
        if burst_run is not None and burst_run.slots == SLOTS
        else ""
    )
    summary = headlines(morning, day, bare_day)
    rows = [
        Row(
            f"tick, nothing due among {counts.not_due:,} entries: wall p50 (ms)",
            fmt(idle.wall_ms, 1),
            f"bare {fmt(bare.wall_ms, 1)}; empty ledger {fmt(empty.wall_ms, 1)}",
            f"+{fmt(idle.wall_ms - bare.wall_ms, 1)} ms over bare",
        ),
        Row(
            "tick, nothing due: CPU ms per tick",
            fmt(idle.cpu_ms, 2),
            f"bare {fmt(bare.cpu_ms, 2)}",
            f"{fmt(ratio(idle.cpu_ms, bare.cpu_ms), 1)}× bare",
        ),
        Row(
            f"idle ticks ({TICKS_PER_DAY} a day): cost per day; per {DAYS_PER_MONTH} days (USD)",
            f"${day:.5f}; ${day * DAYS_PER_MONTH:.4f}",
            f"bare ${bare_day:.5f}; ${bare_day * DAYS_PER_MONTH:.4f}",
            f"billed {cost.billed_seconds(idle.request_s()) * 1000:.0f} ms a tick; list prices of "
            f"{cost.PRICES_AS_OF}, free tier not applied",
        ),
        Row(
            f"morning release of {morning.due:,}: tick → all published (s)",
            fmt(morning.publish_seconds, 1),
            f"{morning.released} released; all results after {fmt(morning.drain_seconds, 1)} s",
            f"≤ {PUBLISH_TARGET_S:.0f} s",
            summary[0].verdict,
        ),
        Row(
            f"morning release: peak Stripe requests/s at {SLOTS} slots",
            str(morning.peak_stripe),
            f"{morning.stripe_429} × 429",
            f"< {DEFAULT_ENDPOINT_RATE}/s, 0 × 429",
            verdict(morning.peak_stripe < DEFAULT_ENDPOINT_RATE and morning.stripe_429 == 0),
        ),
        Row(
            "morning release: lost, doubled",
            f"{done.lost} lost, {done.doubled} doubled",
            f"{done.sent}/{morning.due} sent, {done.dead_letters} DLQ; "
            f"{fmt(morning.per_second, 1)} ev/s{burst_rate}",
            "0 and 0",
            verdict(done.clean and done.dead_letters == 0 and done.sent == morning.due),
        ),
    ]
    tick_table = [
        _tick_row("bare function (floor)", "–", bare),
        _tick_row("release", "empty", empty),
        _tick_row("release", f"{counts.not_due:,} not due", idle),
    ]
    morning_table = [
        {
            "due": f"{morning.due:,}",
            "deferred at night in s": fmt(morning.night_seconds, 1),
            "Stripe 429 at night": str(morning.night_429),
            "tick → published s": fmt(morning.publish_seconds, 2),
            "released": str(morning.released),
            "tick → all results s": fmt(morning.drain_seconds, 1),
            "events/s": fmt(morning.per_second, 1),
            "peak Stripe/s": str(morning.peak_stripe),
            "Stripe 429": str(morning.stripe_429),
            "redeliveries": str(done.retries),
            "outcome": f"{done.sent} sent, {done}",
        }
    ]
    cold = ", ".join(f"{ms:.0f}" for ms in measured.cold_ms)
    details = section(
        "### 6. Release sweep",
        "The release function (`release_deferred`, Cloud Scheduler every 5 minutes, so "
        f"{TICKS_PER_DAY} ticks a day) on a stack of its own. A tick is the binary-mode CloudEvent "
        "the push from the sweep topic delivers, POSTed straight to the function over a keep-alive "
        "connection (the emulator's push loop would add up to 100 ms of polling); the function "
        "answers once every due entry is marked and published (`Sweep.run`).",
        f"**Nothing due.** {counts.rounds} alternating rounds of {counts.per_round} ticks to the "
        "release function and to the bare function (the same request; it answers 200 and does "
        "nothing), after one warm-up tick each; first on an empty ledger, then with "
        f"{counts.not_due:,} entries written straight into the Firestore emulator (four in five "
        "texted and done, one in five deferred to a morning 1 to 12 hours away), none due. Each "
        "tick makes the two queries of `Ledger.due` and finds nothing. CPU is user+system time of "
        "the function's gunicorn master and worker over each round, per tick. Cost: the tick's "
        f"request time on the deployed size (256 MiB, {cost.VCPU} vCPU as deploy.sh) is the time "
        f"it waited (wall − CPU) plus its CPU time ÷ {cost.VCPU}, billed in "
        f"{cost.BILLING_GRANULARITY_S * 1000:.0f} ms steps at the prices of benchmark 5 "
        f"(${cost.CPU_PER_VCPU_S:.6f} per vCPU-s, ${cost.MEMORY_PER_GIB_S:.7f} per GiB-s at "
        f"{cost.MEMORY_GIB:.2f} GiB, ${cost.PER_MILLION_REQUESTS:.2f} per million requests; list "
        f"prices of {cost.PRICES_AS_OF}, free tier not applied). Not included: Cloud Scheduler's "
        "job, the Pub/Sub messages, and Firestore's reads (each query is billed at least one "
        "document read, so 576 a day). The emulator has no indexes and scans the collection for "
        "each query; production Firestore answers from the sweep's composite indexes (deploy.sh), "
        "so the empty-ledger row is the closer guide to production's wall time.",
        markdown_table(tick_table),
        f"A new instance's first tick (process spawned, then the tick retried every 5 ms until "
        f"answered; {counts.not_due:,} entries in the ledger): {cold} ms. Whether an "
        "instance stays warm between ticks 5 minutes apart is Cloud Run's choice; a tick that "
        "meets a new instance pays its start as well.",
        f"**Morning release.** {morning.due:,} failures posted as signed webhooks to the ingest "
        "function while `QUIET_HOURS` held a window around the present moment for the "
        "recipients (+1 415, America/Los_Angeles), delivered by the bench's pusher at "
        f"{NIGHT_SLOTS} slots: each recovery deferred its payment (`deferred:quiet_hours`). Then "
        "morning, as tests/test_quiet_hours_flow.py makes it: each entry's `due_at` moved into "
        "the past with one masked write, and the recover function restarted with "
        f"`QUIET_HOURS=off`; the {counts.not_due:,} entries above stay in the ledger. One tick; "
        "the recoveries it releases are delivered by `bench/pusher.py` at "
        f"{SLOTS} slots (deploy.sh: `RECOVER_MAX_INSTANCES={SLOTS}`, concurrency 1) with the "
        f"Stripe stand-in enforcing its documented {DEFAULT_ENDPOINT_RATE} requests/s and "
        "redelivery as in benchmark 4. The "
        "clock runs from the tick's POST; peak Stripe requests/s is the most requests the "
        "stand-in's journal holds in any one-second window after it. Lost: a payment without a "
        "`sent` result line after the tick, or without its text or its link; doubled: a second "
        "result line, text or link.",
        markdown_table(morning_table),
    )
    return Result(NAME, rows, details, headlines=summary)
