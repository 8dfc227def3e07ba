"""The surge guard, the morning release's twin: a surge of failures pauses texting and loses
none of them; a billing day's ordinary failures pause nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests

from bench import burst, fixtures
from bench.env import LATENCY_MS, LINQ_NO_CAPABILITY_LIMIT
from bench.pusher import Pusher
from bench.report import Headline, Result, Row, markdown_table, section, verdict
from bench.sweep import SLOTS, _post_tick
from shared.core.control import SURGE_GUARD
from shared.workflow.settings import SURGE_MIN
from standins import builders
from standins.stack import LocalStack, json_lines

NAME = "surge"
# The failures and all of Stripe's payments of each run arrive within this many seconds.
SPREAD_S = 60.0
PAUSED = "deferred:paused"
# How the line of a run retried while another run's look is under way begins.
LOOKING = "will retry: surge check"
SURGE_MIN_DEFAULT = int(SURGE_MIN.default or 0)
# A billing day's texts that wait for a look at Stripe: those that come while the first look has
# no verdict yet (later looks begin before the last verdict runs out), at most 1 % of the full
# run's failures; each back within seconds.
RETRIED_MAX, WAIT_MAX_S = 20, 15.0


@dataclass(frozen=True)
class Counts:
    surge_failed: int
    surge_attempts: int
    day_failed: int
    day_attempts: int


QUICK = Counts(200, 220, 200, 3_000)
FULL = Counts(1_000, 1_100, 2_000, 30_000)


@dataclass(frozen=True)
class Run:
    """One run: `failed` failures among `attempts` payments, and what became of them."""

    failed: int
    attempts: int
    sent_before_resume: int
    held: int
    # Payments retried while another run's look at Stripe was under way, and how long each
    # waited from its webhook to its text.
    retried: int
    waits: tuple[float, ...]
    paused_by: str | None
    reason: str | None
    resume_out: str
    released: int
    drain_seconds: float
    outcomes: burst.Outcomes


def _arrive(stack: LocalStack, batch: list[fixtures.Case], attempts: int) -> dict[str, float]:
    """The failures posted as signed webhooks, and Stripe's successful payments added to its
    events list beside them in the same proportion, all within SPREAD_S; when each was posted
    (unix time, by phone)."""
    paid_per_failure = (attempts - len(batch)) / len(batch)
    session = requests.Session()
    began, owed = time.monotonic(), 0.0
    posted: dict[str, float] = {}
    for index, case in enumerate(batch):
        owed += paid_per_failure
        if owed >= 1:
            paid = [
                builders.invoice_paid_event(builders.paid(builders.invoice("cus_bench_paid")))
                for _ in range(int(owed))
            ]
            stack.stripe.load({"events": paid})
            owed -= int(owed)
        method, body, headers = fixtures.signed_posts([case.event])[0]
        posted[case.phone] = time.time()
        answer = session.request(method, stack.urls["ingest"], data=body, headers=headers)
        if not answer.ok:
            raise RuntimeError(f"a webhook was answered {answer.status_code}")
        pace = began + SPREAD_S * (index + 1) / len(batch) - time.monotonic()
        if pace > 0:
            time.sleep(pace)
    return posted


def _waits(stack: LocalStack, posted: dict[str, float], retried: set[str]) -> tuple[float, ...]:
    """Seconds from the webhook to the text of each customer whose payment was retried."""
    texted = {
        message["to"][0]: datetime.fromisoformat(message["created_at"]).timestamp()
        for message in stack.linq.messages()
        if message["parts"] and message["parts"][0]["type"] == "text"
    }
    return tuple(texted[phone] - posted[phone] for phone in retried if phone in texted)


def _one(workdir: Path, name: str, failed: int, attempts: int) -> Run:
    stack = LocalStack(
        latency_ms=LATENCY_MS,
        linq_args=LINQ_NO_CAPABILITY_LIMIT,
        recover_env={"THREADS": str(SLOTS), "QUIET_HOURS": "off"},
        release=True,
        max_delivery_attempts=burst.MAX_DELIVERY_ATTEMPTS,
        workdir=workdir / name,
    )
    with stack:
        fixtures.load_linq_line(stack.linq)
        batch = fixtures.cases(failed)
        fixtures.load(stack.stripe, batch)
        wanted = {case.invoice_id for case in batch}

        def ended() -> dict[str, str]:
            return {
                r["invoice_id"]: r["action"] for r in stack.results() if r["invoice_id"] in wanted
            }

        pusher = Pusher(stack, SLOTS, max_attempts=burst.MAX_DELIVERY_ATTEMPTS).start()
        try:
            posted = _arrive(stack, batch, attempts)
            stack.wait_until(lambda: len(ended()) == failed, 60 + failed, "a result for each")
            status = stack.operator("pause", "--status")
            paused = status.startswith("Texting is paused")
            paused_by = SURGE_GUARD if paused and f"by {SURGE_GUARD}" in status else None
            actions = list(ended().values())
            sent_before = actions.count("sent")
            held = actions.count(PAUSED)
            reason = next((r["reason"] for r in stack.results() if r["action"] == PAUSED), None)
            # What paused it, without who and when (a date and time of day in the figures).
            reason = reason.split(": ", 1)[-1] if reason else None
            resume_out = stack.operator("resume") if paused else ""
            began = time.monotonic()
            _post_tick(requests.Session(), stack.urls["release"])

            def sent() -> int:
                return sum(1 for action in ended().values() if action == "sent")

            drain_seconds = burst.drain(began, failed, sent)
        finally:
            pusher.stop()
        sweeps = [line for line in json_lines(stack.log("release")) if "released" in line]
        logged = json_lines(stack.log("recover"))
        lines = [r for r in logged if r.get("action") != PAUSED]
        outcomes = burst.count_outcomes(stack, batch, lines)
        looking = {r["invoice_id"] for r in logged if str(r.get("message")).startswith(LOOKING)}
        phones = {case.invoice_id: case.phone for case in batch}
        waits = _waits(stack, posted, {phones[i] for i in looking if i in phones})
    return Run(
        failed,
        attempts,
        sent_before,
        held,
        len(looking),
        waits,
        paused_by,
        reason if paused_by else None,
        resume_out,
        released=int(sweeps[-1]["released"]) if sweeps else 0,
        drain_seconds=drain_seconds,
        outcomes=outcomes,
    )


def run(workdir: Path, quick: bool = False) -> Result:
    counts = QUICK if quick else FULL
    surge = _one(workdir, "surge", counts.surge_failed, counts.surge_attempts)
    day = _one(workdir, "billing_day", counts.day_failed, counts.day_attempts)
    return render(surge, day)


def _row(label: str, run: Run) -> dict[str, str]:
    done = run.outcomes
    return {
        "run": label,
        "failed / attempted": f"{run.failed:,} / {run.attempts:,}",
        "paused": run.reason or "no",
        "sent before resume": str(run.sent_before_resume),
        "deferred:paused": str(run.held),
        "retried for a look": str(run.retried),
        "their wait s (max)": f"{max(run.waits):.1f}" if run.waits else "-",
        "released by one tick": str(run.released),
        "tick → all sent s": f"{run.drain_seconds:.1f}",
        "outcome": f"{done.sent} sent, {done}",
    }


def headlines(surge: Run, day: Run) -> list[Headline]:
    """The surge guard: how many texts a surge lets out, that nothing is lost after the resume,
    and that a busy billing day is not taken for a surge."""
    bound = SURGE_MIN_DEFAULT + SLOTS
    return [
        Headline(
            f"Surge guard, {surge.failed:,} of {surge.attempts:,} payments failing in a minute: "
            "texts before it pauses",
            str(surge.sent_before_resume),
            f"at most {bound} (`SURGE_MIN` and the {SLOTS} in flight)",
            "–",
            verdict(surge.paused_by == SURGE_GUARD and surge.sent_before_resume <= bound),
        ),
        Headline(
            "Surge guard: lost, doubled once texting resumes",
            f"{surge.outcomes.lost} lost, {surge.outcomes.doubled} doubled",
            "none lost or doubled",
            "–",
            verdict(surge.outcomes.clean and surge.outcomes.sent == surge.failed),
        ),
        Headline(
            f"Surge guard, a billing day ({day.failed:,} of {day.attempts:,} failing in a "
            "minute): paused?",
            "paused" if day.paused_by or day.reason else "not paused",
            "not paused, none held, none lost",
            "–",
            verdict(
                day.paused_by is None
                and day.held == 0
                and day.outcomes.clean
                and day.outcomes.sent == day.failed
            ),
        ),
        Headline(
            "Surge guard, a billing day: texts that waited for a look at Stripe",
            f"{day.retried} of {day.failed:,}; {_longest(day)}",
            f"at most {RETRIED_MAX}, each within {WAIT_MAX_S:.0f} s",
            "–",
            verdict(day.retried <= RETRIED_MAX and max(day.waits, default=0.0) <= WAIT_MAX_S),
        ),
    ]


def _longest(day: Run) -> str:
    return f"longest {max(day.waits):.1f} s from webhook to text" if day.waits else "none waited"


def render(surge: Run, day: Run) -> Result:
    bound = SURGE_MIN_DEFAULT + SLOTS
    summary = headlines(surge, day)
    rows = [
        Row(
            f"surge of {surge.failed:,} failures among {surge.attempts:,} attempts in a minute: "
            "texts before the pause",
            str(surge.sent_before_resume),
            surge.reason or "not paused",
            f"≤ SURGE_MIN + {SLOTS} in flight = {bound}",
            summary[0].verdict,
        ),
        Row(
            "surge: lost, doubled (each paused payment released on resume)",
            f"{surge.outcomes.lost} lost, {surge.outcomes.doubled} doubled",
            f"{surge.held} deferred:paused, {surge.released} released, "
            f"{surge.outcomes.sent}/{surge.failed} sent",
            "0 and 0",
            summary[1].verdict,
        ),
        Row(
            f"billing day: {day.failed:,} failures among {day.attempts:,} attempts in a minute",
            "paused" if day.paused_by or day.reason else "not paused",
            f"{day.held} deferred:paused, {day.outcomes.sent}/{day.failed} sent, "
            f"{day.outcomes.lost} lost, {day.outcomes.doubled} doubled",
            "not paused, none deferred:paused, 0 lost",
            summary[2].verdict,
        ),
        Row(
            "billing day: texts that waited for a look at Stripe (retried)",
            f"{day.retried} of {day.failed:,}",
            _longest(day),
            f"≤ {RETRIED_MAX}, each ≤ {WAIT_MAX_S:.0f} s",
            summary[3].verdict,
        ),
    ]
    details = section(
        "### 7. Surge guard",
        f"Two stacks of their own, with the defaults (`SURGE_MIN={SURGE_MIN_DEFAULT}`, "
        f"`SURGE_WINDOW=10m`, `SURGE_SHARE=50`), `QUIET_HOURS=off`, the pusher at {SLOTS} slots "
        "and the Stripe stand-in's rate limits. The failures are posted as signed webhooks to the "
        f"ingest function, evenly over {SPREAD_S:.0f} s; Stripe's successful payments of the "
        "same minute are added to the stand-in's events list (`invoice.paid`) in the same "
        "proportion as the failures arrive. Once every failure has its result line: "
        "`./dev pause --status`, `./dev resume` when paused, and one release tick; the clock runs "
        "from the tick's POST until every payment has a `sent` line. Lost: a payment without a "
        "`sent` line, its text or its link; doubled: a second `sent` line, text or link. A "
        "payment that no verdict of the guard covered while another run's look at Stripe was "
        "under way is retried (its run answers 500; the pusher redelivers it after 1-5 s, "
        "Pub/Sub after 10 s and more): `retried for a look` counts those, and their wait runs "
        "from the webhook's POST to the text's `created_at` at the Linq stand-in.",
        markdown_table([_row("surge", surge), _row("billing day", day)]),
    )
    return Result(NAME, rows, details, headlines=summary)
