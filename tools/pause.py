"""`./dev pause [--reason TEXT]`, `./dev pause --status` and `./dev resume`: texting stopped and
started again by hand, in one control document beside the send ledger.

Read as `./dev report` reads the ledger (GOOGLE_CLOUD_PROJECT, FIRESTORE_DATABASE, and
FIRESTORE_EMULATOR_HOST locally), and SLACK_WEBHOOK_URL to tell the team. Within 10 s of a pause
no recover run decides a new text (an instance acts on what it read at most 10 s before): the
failed payments end `deferred:paused` and are kept; a link whose text went out still follows.
After a resume, the release sweep (every 5 minutes) hands them back, the oldest failure first.

Who paused is the gcloud account (`gcloud config get-value account`) when there is one, else the
user at this machine, and the record says which.

Exit status: 0 done, also when texting was already as asked (it says so); 1 the ledger could not
be read or written (running it again is safe); 2 a wrong argument or variable.
"""

from __future__ import annotations

import argparse
import getpass
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

from shared.adapters.ledger import Ledger
from shared.adapters.slack import SlackNotifier
from shared.core.control import CACHE_FOR, Control
from shared.core.errors import ConfigError, RetryableError
from shared.core.log import redact
from shared.core.text import clean
from shared.workflow.settings import ControlSettings
from tools.report import open_ledger

NO_REASON = "no reason given"
# A reason is one line for the team: the pause's note and every held payment's result line say it.
MAX_REASON = 200
# The sweep's schedule (deploy.sh): when paused payments go back after a resume.
SWEEP_EVERY = "5 minutes"


def _reason(text: str) -> str:
    reason = clean(text)
    if not reason:
        raise argparse.ArgumentTypeError("give a reason in words, or leave --reason out")
    if len(reason) > MAX_REASON:
        raise argparse.ArgumentTypeError(
            f"a reason is at most {MAX_REASON} characters (one line for the team), "
            f"got {len(reason)}"
        )
    return reason


def who() -> str:
    """Who is pausing or resuming: the gcloud account, else the user at this machine; the answer
    says which it is."""
    gcloud = shutil.which("gcloud")
    if gcloud is not None:
        try:
            found = subprocess.run(
                [gcloud, "config", "get-value", "account"],
                capture_output=True,
                text=True,
                timeout=15,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            found = None
        account = found.stdout.strip() if found is not None and found.returncode == 0 else ""
        if "@" in account and " " not in account:
            return f"{account} (gcloud account)"
    return f"{getpass.getuser()}@{socket.gethostname()} (user at this machine)"


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    reads = (
        "Reads GOOGLE_CLOUD_PROJECT and FIRESTORE_DATABASE (and FIRESTORE_EMULATOR_HOST locally), "
        "as ./dev report does; with SLACK_WEBHOOK_URL set, the team's Slack hears it."
    )
    pause = argparse.ArgumentParser(
        prog="./dev pause",
        description="Stop texting: within 10 s no new text goes out; failed payments end "
        "deferred:paused and are kept until ./dev resume (a link whose text went out still "
        f"follows). {reads}",
    )
    pause.add_argument("--reason", type=_reason, help="why, in a line: the team and the log see it")
    pause.add_argument(
        "--status", action="store_true", help="print whether texting is paused, and change nothing"
    )
    resume = argparse.ArgumentParser(
        prog="./dev resume",
        description="Texting on again: the release sweep (every 5 minutes) hands the paused "
        "payments back, the oldest failure first, and each is decided again (paid since, "
        f"superseded, night). {reads}",
    )
    return pause, resume


def status(control: Control, held: int) -> list[str]:
    """What `--status` prints."""
    lines = []
    if control.pause is not None:
        pause = control.pause
        lines.append(f"Texting is paused, by {pause.by} since {_when(pause.at)}: {pause.reason}.")
        lines.append(f"{held} failed payment(s) held (deferred:paused). `./dev resume` ends it.")
    else:
        lines.append("Texting is on.")
        if control.resumed_at is not None:
            lines.append(f"Last resumed by {control.resumed_by} at {_when(control.resumed_at)}.")
    check = control.check
    if check is not None and check.verdict is not None:
        found = f"{check.failures} failed, {check.successes}{'' if check.complete else '+'} paid"
        lines.append(
            f"Surge guard: last asked Stripe at {_when(check.at)}: {found}, {check.verdict}."
        )
    return lines


def pause(ledger: Ledger, slack: SlackNotifier, reason: str, by: str, out: TextIO) -> None:
    control, changed = ledger.pause_texting(reason, by)
    paused = control.pause
    assert paused is not None
    if not changed:
        out.write(
            f"Texting is already paused, by {paused.by} since {_when(paused.at)}: "
            f"{paused.reason}. Nothing changed.\n"
        )
        return
    seconds = f"{CACHE_FOR.total_seconds():g} s"
    out.write(
        f"Texting paused by {by} at {_when(paused.at)}: {reason}.\n"
        f"Within {seconds} no new text goes out: failed payments end deferred:paused and are "
        "kept in the ledger (a link whose text already went out still follows).\n"
        "`./dev resume` turns texting on again.\n"
    )
    # The operator is named by their address; only the reason they typed is masked.
    slack.notify(
        f"Texting paused by {by} at {_when(paused.at)}: {redact(reason)}. Failed payments are "
        "kept (deferred:paused) until `./dev resume`.",
        mask=False,
    )


def resume(ledger: Ledger, slack: SlackNotifier, by: str, out: TextIO) -> None:
    before = ledger.control()
    control, changed = ledger.resume_texting(by)
    if not changed:
        out.write("Texting is not paused. Nothing changed.\n")
        return
    held = ledger.paused_count()
    was = before.pause
    since = ""
    if was is not None:
        since = f" (paused by {was.by} at {_when(was.at)}: {redact(was.reason)})"
    assert control.resumed_at is not None
    back = (
        f"{held} paused payment(s) go back at the next release sweep (within {SWEEP_EVERY}), "
        "the oldest first"
    )
    out.write(
        f"Texting resumed by {by} at {_when(control.resumed_at)}{since}.\n"
        f"{back}; each is decided again (paid since, superseded, night).\n"
    )
    slack.notify(
        f"Texting resumed by {by} at {_when(control.resumed_at)}{since}. {back}.", mask=False
    )


def run(command: str, argv: Sequence[str], out: TextIO) -> int:
    pause_parser, resume_parser = _parsers()
    if command == "resume":
        resume_parser.parse_args(argv)
    else:
        args = pause_parser.parse_args(argv)
        if args.status and args.reason is not None:
            pause_parser.error("--status changes nothing: it takes no --reason")
    settings = ControlSettings.from_env()
    ledger, _ = open_ledger(settings.project, settings.firestore_database)
    slack = SlackNotifier(settings.slack_webhook_url)
    if command == "resume":
        resume(ledger, slack, who(), out)
    elif args.status:
        control = ledger.control()
        held = ledger.paused_count()
        out.write("\n".join(status(control, held)) + "\n")
    else:
        pause(ledger, slack, args.reason or NO_REASON, who(), out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args and args[0] in ("pause", "resume") else "pause"
    try:
        return run(command, args, sys.stdout)
    except ConfigError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    except RetryableError as exc:
        print(f"{command} stopped: {exc.reason}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
