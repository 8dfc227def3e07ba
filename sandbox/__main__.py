"""`./dev sandbox`: run the product on this machine and show what it does for each demo customer.

Default mode: Pub/Sub emulator, both functions and local Stripe/Linq/Slack stand-ins loaded with
demo customers; one signed webhook per customer (one of them while the operator has paused
texting, released on resume); each result line as it arrives; a table; the
report over the run's ledger, kept with its CSV files and chart in `.sandbox/report/` (`./dev
report --from-sandbox` prints it again); then every process is stopped. `--live`: the same two
functions on the emulator against the real Stripe and Linq accounts in your environment, fed by
`stripe listen --forward-to`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.demo import (
    HOLDOUT_PERCENT,
    SENDER_LINE,
    TOKYO,
    DemoCase,
    cases,
    prepare,
    quiet_hours_for_demo,
)
from shared.adapters.linq import LinqClient
from shared.adapters.secrets import SecretResolver
from shared.adapters.stripe_gateway import StripeGateway
from shared.core.control import CACHE_FOR
from shared.core.errors import ConfigError, PermanentError, RecoveryError
from shared.core.log import mask_phone
from shared.core.outcome import Action
from shared.workflow.settings import (
    INGEST,
    LINQ_API_BASE,
    LINQ_API_KEY,
    RECOVER,
    STRIPE_API_BASE,
    STRIPE_API_KEY,
    VARIABLES,
    Reader,
    family_of,
)
from standins import builders
from standins.emulator import DEFAULT_PROJECT
from standins.stack import (
    REPO,
    SANDBOX_WEBHOOK_SECRET,
    JsonLog,
    LocalStack,
    StackError,
    base_env,
    json_lines,
)
from tools.report import SANDBOX_REPORT
from tools.stripe_webhook import EVENTS as STRIPE_EVENTS

# How long the results may take: seconds here, ten times that on a machine busy with other work.
RESULT_TIMEOUT_S = 60.0
# The sandbox ticks the release sweep this often (Cloud Scheduler: every five minutes), and waits
# this long past the window's end for the released text.
SWEEP_EVERY_S = 5.0
LINQ_EVENTS = "delivered, failed, replies, line health"
RELEASE_TIMEOUT_S = 30.0
# What the live sandbox sets itself: the emulators, and the project and topic they hold.
_STACK_SETS = frozenset({"GOOGLE_CLOUD_PROJECT", "PUBSUB_TOPIC"})
# Everything else the two functions read is passed through from your environment, the API bases
# included, so the live sandbox can be pointed at another Stripe or Linq.
LIVE_VARIABLES = tuple(
    v
    for v in VARIABLES
    if (INGEST in v.readers or RECOVER in v.readers) and not v.local and v.name not in _STACK_SETS
)
LIVE_REQUIRED = tuple(v.name for v in LIVE_VARIABLES if v.required)


def _say(text: str = "") -> None:
    print(text, flush=True)


class _Tail:
    """Prints the lines of a function's log that `wanted` picks, as they appear."""

    def __init__(self, log: Path, wanted: Callable[[dict[str, Any]], bool]) -> None:
        self._log, self._wanted, self._seen = JsonLog(log), wanted, 0

    def poll(self) -> list[dict[str, Any]]:
        lines = [entry for entry in self._log.entries() if self._wanted(entry)]
        for entry in lines[self._seen :]:
            _say("  " + _compact(entry))
        self._seen = len(lines)
        return lines


def _is_result(entry: dict[str, Any]) -> bool:
    return "action" in entry


def _worth_seeing(entry: dict[str, Any]) -> bool:
    """In live mode: every result, and every ERROR and WARNING (a `will retry` among them)."""
    return _is_result(entry) or entry.get("severity") in ("ERROR", "WARNING")


def _compact(entry: dict[str, Any]) -> str:
    return json.dumps(entry, ensure_ascii=False)


def _texts_to(case: DemoCase, messages: list[dict[str, Any]]) -> list[str]:
    """The texts (not the links) Linq received for the case's number; an empty one if none."""
    found = [
        m["parts"][0]["value"]
        for m in messages
        if m["to"] == [case.phone] and m["parts"][0]["type"] == "text"
    ]
    return found or [""]


def _post(stack: LocalStack, case: DemoCase, kind: str) -> None:
    """Stripe's event `kind` for the case's failed attempt, signed, to the ingest function."""
    answer = stack.post_webhook(builders.payment_failed_event(case.invoice, type=kind))
    if answer.status_code != 200:
        raise StackError(f"ingest answered {answer.status_code}: {answer.text}")


def _received(case: DemoCase, messages: list[dict[str, Any]]) -> str:
    if case.phone is None:
        return "-"
    parts = [m["parts"][0] for m in messages if m["to"] == [case.phone]]
    if not parts:
        return "nothing"
    described = []
    for part in parts:
        if part["type"] == "text":
            value = part["value"]
            described.append(f'text "{value[:38]}…"' if len(value) > 40 else f'text "{value}"')
        else:
            described.append("link to the hosted invoice")
    return f"{mask_phone(case.phone)}: " + " + ".join(described)


def run_demo(report_dir: Path) -> int:
    demo = cases()
    started = time.monotonic()
    _say("Starting the Pub/Sub and Firestore emulators, the Stripe/Linq/Slack stand-ins and the")
    _say("functions...")
    recover_env = {"QUIET_HOURS": "off", "HOLDOUT_PERCENT": str(HOLDOUT_PERCENT)}
    with LocalStack(release=True, linq_events=True, slack=True, recover_env=recover_env) as stack:
        _say(f"Ready in {time.monotonic() - started:.1f} s: ingest {stack.urls['ingest']}")
        # Stripe's stand-in sends its events (invoice.paid) to the ingest function, signed.
        webhook = {"url": stack.urls["ingest"], "secret": SANDBOX_WEBHOOK_SECRET}
        stack.linq.load({"phone_numbers": [builders.linq_line(SENDER_LINE)]})
        prepare(stack.stripe, stack.linq, demo, webhook=webhook)
        # The night begins as the recover function starts again with it, just before the
        # webhooks, so that it need last only as long as they take to arrive.
        window, morning = quiet_hours_for_demo(datetime.now(UTC))
        stack.kill("recover")
        stack.start_function("recover", QUIET_HOURS=window)
        _say(f"QUIET_HOURS={window}: night in Tokyo now, not in California or London.")
        # The customers who fail while texting is paused come later.
        paused = [case for case in demo if case.paused]
        first = [case for case in demo if not case.paused]
        _say(
            f"Posting {len(first)} signed webhooks (invoice.payment_failed; "
            "invoice.payment_action_required for the 3-D Secure customer); results as they "
            "arrive:"
        )
        # The night owl's first: the night need only last until that one is in.
        for case in sorted(first, key=lambda case: not case.deferred):
            _post(stack, case, case.events[0])
        tail = _Tail(stack.log("recover"), _is_result)
        _await(tail, len(first), RESULT_TIMEOUT_S)
        paused_at = time.monotonic()
        _operator(stack, "pause", "--reason", "checking a new text before it goes out")
        seconds = [(case, kind) for case in demo for kind in case.events[1:]]
        for case, kind in seconds:
            _say(f"Stripe's other event for {case.label.split(',')[0]}'s attempt, {kind}:")
            _post(stack, case, kind)
        done = len(first) + len(seconds)
        _await(tail, done, RESULT_TIMEOUT_S)
        _listen_to_linq(stack, demo, tail, done)
        payers = [case for case in demo if case.pays]
        _say(
            f"{len(payers)} customers pay (two after their text, one held out untexted); Stripe "
            "sends invoice.paid:"
        )
        for case in payers:
            stack.stripe.pay_invoice(case.invoice["id"])
        again = sum(case.fails_again for case in demo)
        done += again + len(payers)
        _await(tail, done, RESULT_TIMEOUT_S)
        # An instance acts on the control document as it read it for up to CACHE_FOR.
        time.sleep(max(0.0, paused_at + CACHE_FOR.total_seconds() - time.monotonic()))
        _say(f"While texting is paused ({CACHE_FOR.total_seconds():g} s on), a payment fails:")
        for case in paused:
            _post(stack, case, case.events[0])
        done += len(paused)
        _await(tail, done, RESULT_TIMEOUT_S)
        _operator(stack, "pause", "--status")
        _operator(stack, "resume")
        done += len(paused)
        deferred = sum(case.deferred for case in demo)
        wait = max(0.0, (morning - datetime.now(UTC)).total_seconds())
        ends = f"{morning.astimezone(TOKYO):%H:%M:%S} local"
        _say(
            (
                f"The night in Tokyo ends at {ends} (in {wait:.0f} s)"
                if wait
                else f"The night in Tokyo ended at {ends}, while texting was paused"
            )
            + f"; the release sweep runs every {SWEEP_EVERY_S:.0f} s here (every 5 minutes when "
            "deployed), and hands back what was held:"
        )
        _await(tail, done + deferred, wait + RELEASE_TIMEOUT_S, stack.sweep)
        lines = tail.poll()
        messages = stack.linq.messages()
        report = _report(stack, report_dir)
        pids = stack.pids
    _say()
    width = max(len(case.label) for case in demo)
    _say(f"{'customer':<{width}}  {'actions':<34} what Linq received")
    wrong = []
    for case in demo:
        actions = [entry["action"] for entry in lines if entry["invoice_id"] == case.invoice["id"]]
        expected = case.expected_actions
        mark = "" if actions == expected else f"   <-- expected {' → '.join(expected)}"
        if case.opens is not None and not _texts_to(case, messages)[0].startswith(case.opens):
            mark += f'   <-- expected a text opening "{case.opens}"'
        if mark:
            wrong.append(case.label)
        shown = " → ".join(actions) or "(none)"
        _say(f"{case.label:<{width}}  {shown:<34} {_received(case, messages)}{mark}")
    _say()
    _say("./dev report, as an operator runs it against the ledger (here: the emulator's):")
    for line in report:
        _say(f"  {line}" if line else "")
    _say(f"Kept in {report_dir}: ./dev report --from-sandbox prints it again.")
    _say()
    stopped = sum(not os.path.exists(f"/proc/{pid}") for pid in pids)
    _say(f"Stopped {stopped} of {len(pids)} processes; done in {time.monotonic() - started:.1f} s.")
    if wrong:
        _say(f"FAILED: unexpected action for {', '.join(wrong)}")
        return 1
    return 0 if stopped == len(pids) else 1


def _operator(stack: LocalStack, *argv: str) -> None:
    """`./dev ARGV` as the operator runs it, what it prints, and what the team's Slack heard."""
    notes = len(stack.slack.notes())
    _say(f"The operator runs ./dev {shlex.join(argv)}:")
    for line in stack.operator(*argv).splitlines():
        _say(f"  {line}")
    for note in stack.slack.notes()[notes:]:
        _say(f"  Slack: {note['text']}")


def _report(stack: LocalStack, directory: Path) -> list[str]:
    """What `./dev report --out DIR` prints for the sandbox's ledger; the text and the files go
    to `directory`."""
    env = {
        **base_env(),
        "GOOGLE_CLOUD_PROJECT": DEFAULT_PROJECT,
        "FIRESTORE_EMULATOR_HOST": stack.firestore.host,
    }
    done = subprocess.run(
        [sys.executable, "-m", "tools.report", "--out", str(directory)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise StackError(f"./dev report failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.rstrip("\n").splitlines()


def _listen_to_linq(stack: LocalStack, demo: list[DemoCase], tail: _Tail, done: int) -> None:
    """Linq's webhooks, as the product hears them: the deliveries of the texts just sent, two
    replies (one for the team, one STOP) and the STOP-sayer's next failed payment (after the
    `done` result lines so far)."""
    texted = [c for c in demo if c.expected == "sent" and not (c.deferred or c.paused)]
    _say(
        f"Linq reports each message delivered (signed webhooks to the Linq intake: {LINQ_EVENTS}):"
    )
    linq = stack.log("linq-events")
    delivered = _linq_lines(linq, Action.DELIVERED, 2 * len(texted))
    _say("  " + _compact(delivered[0]))
    _say(f"  ... {len(delivered)} delivered: the text and the link of each of {len(texted)} texts")
    for heard, case in enumerate((c for c in demo if c.replies), start=1):
        _say(f'{case.label.split(",")[0]} answers "{case.replies}":')
        notes = len(stack.slack.notes())
        stack.linq.inbound(case.phone, case.replies)
        _say("  " + _compact(_linq_lines(linq, _HEARD, heard)[heard - 1]))
        stack.wait_until(lambda n=notes: len(stack.slack.notes()) > n, 10, "the team's note")
        for note in stack.slack.notes()[notes:]:
            _say(f"  Slack: {note['text']}")
    for case in (c for c in demo if c.fails_again):
        before = len(stack.linq.requests())
        _say(f"{case.label.split(',')[0]}'s next payment attempt fails too:")
        stack.stripe.update_invoice(case.invoice["id"], {"attempt_count": 2})
        answer = stack.post_webhook(
            builders.payment_failed_event({**case.invoice, "attempt_count": 2})
        )
        if answer.status_code != 200:
            raise StackError(f"ingest answered {answer.status_code}: {answer.text}")
        _await(tail, done + 1, RESULT_TIMEOUT_S)
        _say(
            f"  Linq requests for it: {len(stack.linq.requests()) - before} (our own list said no)"
        )


_HEARD = (Action.REPLY_RECEIVED, Action.OPT_OUT_RECORDED)


def _linq_lines(
    log: Path, actions: Action | tuple[Action, ...], count: int
) -> list[dict[str, Any]]:
    """The Linq event lines of `log` with one of `actions`, once there are `count` of them."""
    wanted = {a.value for a in (actions if isinstance(actions, tuple) else (actions,))}
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while True:
        lines = [e for e in json_lines(log) if "webhook_id" in e and e.get("action") in wanted]
        if len(lines) >= count:
            return lines
        if time.monotonic() > deadline:
            raise StackError(f"only {len(lines)} of {count} Linq events after {RESULT_TIMEOUT_S} s")
        time.sleep(0.05)


def _await(tail: _Tail, count: int, timeout: float, tick: Callable[[], None] | None = None) -> None:
    """Print result lines until there are `count`, calling `tick` every SWEEP_EVERY_S."""
    deadline = time.monotonic() + timeout
    next_tick = time.monotonic()
    while len(tail.poll()) < count:
        if time.monotonic() > deadline:
            raise StackError(f"only {len(tail.poll())} of {count} results after {timeout:.0f} s")
        if tick is not None and time.monotonic() >= next_tick:
            tick()
            next_tick = time.monotonic() + SWEEP_EVERY_S
        time.sleep(0.05)


def check_keys(env: Reader) -> str | None:
    """One cheap authenticated request to each of Stripe and Linq, before anything starts: None
    when both take their key, else one line naming the key refused (or not checked). A key or
    base malformed is a ConfigError."""
    stripe = StripeGateway(STRIPE_API_KEY.read(env), STRIPE_API_BASE.read(env))
    linq = LinqClient(LINQ_API_KEY.read(env), LINQ_API_BASE.read(env))
    for key, check in ((STRIPE_API_KEY, stripe.check_key), (LINQ_API_KEY, linq.lines)):
        try:
            check()
        except PermanentError as exc:
            return f"--live: {key.name} refused: {exc.reason}"
        except RecoveryError as exc:
            return f"--live: {key.name} could not be checked: {exc.reason}"
    return None


def run_live(port: int) -> int:
    missing = [name for name in LIVE_REQUIRED if not os.environ.get(name)]
    if missing:
        needs = ", ".join(missing)
        _say(f"--live needs {needs} in the environment (see docs/sandbox.md, 'Live sandbox')")
        return 2
    refused = check_keys(Reader(os.environ, SecretResolver()))
    if refused is not None:
        _say(refused)
        return 1
    passed = {v.name for v in LIVE_VARIABLES}
    env = {
        name: value
        for name, value in os.environ.items()
        if value and (name in passed or family_of(name) is not None)
    }
    ingest_env = {"STRIPE_WEBHOOK_SECRET": env.pop("STRIPE_WEBHOOK_SECRET")}
    with LocalStack(
        standins=False, ingest_env=ingest_env, recover_env=env, ingest_port=port
    ) as stack:
        _say(
            f"Ingest listening on {stack.urls['ingest']} (Pub/Sub emulator {stack.emulator.host})."
        )
        _say("In another terminal:")
        _say(
            f"  stripe listen --events {','.join(STRIPE_EVENTS)} --latest "
            f"--forward-to {stack.urls['ingest']}/"
        )
        _say("Result lines, errors and warnings appear below; Ctrl-C stops every process.")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        tails = [_Tail(stack.log(name), _worth_seeing) for name in ("ingest", "recover")]
        try:
            while not stop.wait(0.2):
                for tail in tails:
                    tail.poll()
        except KeyboardInterrupt:
            pass
    _say("Stopped.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--live", action="store_true", help="use real Stripe and Linq accounts")
    parser.add_argument("--port", type=int, default=8080, help="ingest port in --live mode")
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=SANDBOX_REPORT,
        metavar="DIR",
        help="where the demo keeps its report (default: .sandbox/report in the checkout)",
    )
    args = parser.parse_args(argv)
    try:
        return run_live(args.port) if args.live else run_demo(args.report_dir.resolve())
    except StackError as exc:
        _say(f"sandbox failed: {exc}")
        return 1
    except ConfigError as exc:
        _say(f"--live: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
