"""The surge guard, the morning release's twin: a surge of failures pauses texting and loses
none of them; a billing day's ordinary failures pause nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
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
from standins.stack import REPO, LocalStack, json_lines

NAME = "surge"
# The failures and all of Stripe's payments of each run arrive within this many seconds.
SPREAD_S = 60.0
PAUSED = "deferred:paused"
SURGE_MIN_DEFAULT = int(SURGE_MIN.default or 0)


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
    paused_by: str | None
    reason: str | None
    resume_out: str
    released: int
    drain_seconds: float
    outcomes: burst.Outcomes


def _arrive(stack: LocalStack, batch: list[fixtures.Case], attempts: int) -> None:
    """The failures posted as signed webhooks, and Stripe's successful payments added to its
    events list beside them in the same proportion, all within SPREAD_S."""
    paid_per_failure = (attempts - len(batch)) / len(batch)
    session = requests.Session()
    began, owed = time.monotonic(), 0.0
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
        answer = session.request(method, stack.urls["ingest"], data=body, headers=headers)
        if not answer.ok:
            raise RuntimeError(f"a webhook was answered {answer.status_code}")
        pace = began + SPREAD_S * (index + 1) / len(batch) - time.monotonic()
        if pace > 0:
            time.sleep(pace)


def _control(stack: LocalStack, command: str) -> str:
    """`./dev <command>` against the stack's ledger, as an operator runs it."""
    env = {**stack.function_env("release"), "PYTHONPATH": str(REPO)}
    found = subprocess.run(
        [sys.executable, "-m", "tools.pause", *command.split()],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return found.stdout.strip()


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
            _arrive(stack, batch, attempts)
            stack.wait_until(lambda: len(ended()) == failed, 60 + failed, "a result for each")
            status = _control(stack, "pause --status")
            paused = status.startswith("Texting is paused")
            paused_by = SURGE_GUARD if paused and f"by {SURGE_GUARD}" in status else None
            actions = list(ended().values())
            sent_before = actions.count("sent")
            held = actions.count(PAUSED)
            reason = next((r["reason"] for r in stack.results() if r["action"] == PAUSED), None)
            resume_out = _control(stack, "resume") if paused else ""
            began = time.monotonic()
            _post_tick(requests.Session(), stack.urls["release"])

            def sent() -> int:
                return sum(1 for action in ended().values() if action == "sent")

            drain_seconds = burst.drain(began, failed, sent)
        finally:
            pusher.stop()
        sweeps = [line for line in json_lines(stack.log("release")) if "released" in line]
        lines = [r for r in json_lines(stack.log("recover")) if r.get("action") != PAUSED]
        outcomes = burst.count_outcomes(stack, batch, lines)
    return Run(
        failed,
        attempts,
        sent_before,
        held,
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
            "not paused, none lost",
            "–",
            verdict(
                day.paused_by is None and day.outcomes.clean and day.outcomes.sent == day.failed
            ),
        ),
    ]


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
            f"{day.held} held for a check, {day.outcomes.sent}/{day.failed} sent, "
            f"{day.outcomes.lost} lost, {day.outcomes.doubled} doubled",
            "not paused, 0 lost",
            summary[2].verdict,
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
        "payment held while a check of the guard was under way is `deferred:paused` too, and "
        "the tick releases it whether or not texting was paused.",
        markdown_table([_row("surge", surge), _row("billing day", day)]),
    )
    return Result(NAME, rows, details, headlines=summary)
