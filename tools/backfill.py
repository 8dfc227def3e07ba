"""`./dev backfill`: queue failed payments for the recover function, by invoice id or by age.

`./dev backfill in_123 in_456` re-runs the recovery for those invoices, at their current attempt.
With `--account acct_...` the invoices (or events) are a connected account's (Stripe Connect), read
on its behalf and queued with it, as the ingest function queues that account's events.
`./dev backfill --since 7d` finds the invoices whose payment failed in the last 7 days (from
Stripe's `invoice.payment_failed` events) and queues each open one at its latest failed attempt.
Either way the messages go to the topic the ingest function publishes to, so the recover function
applies every rule: the open check, TEXT_ON_ATTEMPTS, DRY_RUN, the send ledger and Linq's
idempotency keys. Event ids are `backfill_<invoice>_<attempt>`, so a second run, or a failure
the live pipeline already handled, is a duplicate and texts nobody twice.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TextIO, TypeVar

import rich.console
import rich.progress

from shared.adapters.publisher import Publisher
from shared.adapters.stripe_gateway import READS_PER_SECOND, StripeGateway, Throttle
from shared.core.errors import ConfigError, NotFoundError, PermanentError, RetryableError
from shared.core.event import SNAPSHOT_TYPE, FailedPayment
from shared.core.money import format_amount
from shared.workflow.settings import BackfillSettings
from tools.since import parse_age

# Stripe keeps events for 30 days.
MAX_SINCE_S = 30 * 86400
# A 429 can still come from the account's other traffic: wait and try again this many times.
RATE_LIMIT_TRIES = 4

T = TypeVar("T")


def parse_since(text: str) -> int:
    """`7d` or `48h` as seconds, at most 30 days."""
    seconds = parse_age(text)
    if seconds > MAX_SINCE_S:
        raise argparse.ArgumentTypeError(
            f"{text} is too far back: Stripe keeps events for 30 days, so at most 30d"
        )
    return seconds


def backfill_event_id(invoice_id: str, attempt: int) -> str:
    """The same failed payment always gets the same id, so queuing it again is a duplicate."""
    return f"backfill_{invoice_id}_{attempt}"


@dataclass(frozen=True)
class Target:
    """An invoice to queue, at the attempt a failure event reported (None: its current one)."""

    invoice_id: str
    attempt: int | None = None


class Progress:
    """rich's bar on stderr (`[ ━━━━━━╺━━━━━━ ] 120/300`) while lines said meanwhile go to stdout.
    On a terminal the bar steps aside for each line and is drawn again below it; into a file or
    a pipe (with --progress) only the final bar is written."""

    def __init__(self, total: int, enabled: bool, out: TextIO, err: TextIO) -> None:
        self._out = out
        self._bar = rich.progress.Progress(
            rich.progress.TextColumn("["),
            rich.progress.BarColumn(),
            rich.progress.TextColumn("]"),
            rich.progress.MofNCompleteColumn(),
            console=rich.console.Console(file=err),
            # Transient while it runs: stopping erases the bar, which lets a line through untorn.
            transient=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
            disable=not enabled,
        )
        self._task = self._bar.add_task("backfill", total=total)
        self._bar.start()

    def say(self, line: str) -> None:
        # Live's stop, not Progress's, which ends the line in a file or pipe for a final bar.
        self._bar.live.stop()
        self._out.write(line + "\n")
        self._out.flush()
        self._bar.start()

    def step(self) -> None:
        self._bar.advance(self._task)
        self._bar.refresh()

    def close(self) -> None:
        # The final bar stays, as the last line on stderr.
        self._bar.live.transient = False
        self._bar.stop()


class Backfill:
    """Reads Stripe at a safe pace and queues (or, in a dry run, lists) each failed payment."""

    def __init__(
        self,
        stripe: StripeGateway,
        publisher: Publisher | None,
        throttle: Throttle,
        account: str | None = None,
    ) -> None:
        self._stripe, self._publisher, self._throttle = stripe, publisher, throttle
        # The connected account whose payments these are, or None for the platform's own.
        self._account = account
        self.queued = self.skipped = self.missing = 0

    def _read(self, call: Callable[[], T]) -> T:
        """`call` at the throttle's pace, waiting longer after each 429 before the last try."""
        for pause_s in range(1, RATE_LIMIT_TRIES):
            self._throttle.wait()
            try:
                return call()
            except RetryableError as exc:
                if exc.detail.get("status") != 429:
                    raise
            time.sleep(pause_s)
        self._throttle.wait()
        return call()

    def failed_since(self, seconds: int, now: float) -> list[Target]:
        """Each invoice with a payment failure in the last `seconds`, newest first, at its
        latest failed attempt: older attempts are superseded, and texting a customer once per
        past attempt, all at once, would be spam."""
        targets: dict[str, Target] = {}
        events = self._stripe.events(SNAPSHOT_TYPE, int(now) - seconds, self._account, self._read)
        for event in events:
            invoice = event.get("data", {}).get("object", {})
            invoice_id, attempt = invoice.get("id"), invoice.get("attempt_count")
            if isinstance(invoice_id, str) and invoice_id not in targets:
                attempt = attempt if isinstance(attempt, int) else None
                targets[invoice_id] = Target(invoice_id, attempt)
        return list(targets.values())

    def queue(self, target: Target, progress: Progress) -> None:
        """Queue `target` if its invoice is still open and has failed at least once."""
        try:
            invoice = self._read(partial(self._stripe.invoice, target.invoice_id, self._account))
        except NotFoundError as exc:
            self.missing += 1
            progress.say(f"skipped {target.invoice_id}: not found ({exc.reason})")
            return
        attempt = target.attempt if target.attempt is not None else invoice.attempt_count
        # The recover function checks again when it runs; this only saves a message.
        why_not = invoice.why_not_open
        if why_not is None and attempt < 1:
            why_not = "no payment attempt has failed yet"
        if why_not is not None:
            self.skipped += 1
            progress.say(f"skipped {invoice.id}: {why_not}")
            return
        payment = FailedPayment(
            event_id=backfill_event_id(invoice.id, attempt),
            invoice_id=invoice.id,
            customer_id=invoice.customer.id,
            attempt_count=attempt,
            livemode=invoice.livemode,
            account=self._account,
        )
        amount = format_amount(invoice.amount_remaining, invoice.currency)
        what = f"{invoice.id} {invoice.customer.id} attempt {attempt} {amount}"
        if self._publisher is None:
            progress.say(f"would queue {what}")
        else:
            self._publisher.publish(payment.to_json(), payment.attributes())
            progress.say(f"queued {what}")
        self.queued += 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./dev backfill",
        description="Queue failed payments for the recover function: the invoices given, or "
        "those whose payment failed within --since. Reads STRIPE_API_KEY, STRIPE_API_BASE, "
        "GOOGLE_CLOUD_PROJECT and PUBSUB_TOPIC (and PUBSUB_EMULATOR_HOST locally).",
    )
    parser.add_argument("invoice_ids", nargs="*", metavar="INVOICE_ID", help="in_... to re-run")
    parser.add_argument(
        "--since", type=parse_since, help="failures in the last N days or hours: 7d, 48h (max 30d)"
    )
    parser.add_argument(
        "--account",
        help="a connected account's payments (Stripe Connect): acct_..., as a dead letter's "
        "account attribute names it",
    )
    parser.add_argument("--dry-run", action="store_true", help="print what would be queued only")
    parser.add_argument("--progress", action="store_true", help="progress bar even if not a TTY")
    return parser


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if bool(args.invoice_ids) == (args.since is not None):
        parser.error("give invoice ids (in_...) or --since, one of the two")
    wrong = [value for value in args.invoice_ids if not value.startswith("in_")]
    if wrong:
        parser.error(f"not invoice ids (in_...): {', '.join(wrong)}")
    if args.account is not None and not args.account.startswith("acct_"):
        parser.error(f"not a connected account id (acct_...): {args.account}")
    return args


def run(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    args = _arguments(argv)
    settings = BackfillSettings.from_env()
    stripe = StripeGateway(settings.stripe_api_key, settings.stripe_api_base)
    publisher = None if args.dry_run else Publisher(settings.project, settings.topic)
    backfill = Backfill(stripe, publisher, Throttle(READS_PER_SECOND), args.account)
    if args.since is None:
        targets = [Target(invoice_id) for invoice_id in dict.fromkeys(args.invoice_ids)]
    else:
        targets = backfill.failed_since(args.since, time.time())
        out.write(f"{len(targets)} invoice(s) with a failed payment in that time, newest first\n")
    progress = Progress(len(targets), args.progress or err.isatty(), out, err)
    try:
        for target in targets:
            backfill.queue(target, progress)
            progress.step()
    finally:
        progress.close()
    verb = "would be queued (dry run: nothing published)" if args.dry_run else "queued"
    out.write(
        f"{backfill.queued} {verb}, {backfill.skipped} skipped, {backfill.missing} not found\n"
    )
    return 1 if backfill.missing else 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv, sys.stdout, sys.stderr)
    except ConfigError as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return 2
    except (PermanentError, RetryableError) as exc:
        # What was queued before stays queued; a second run finds it a duplicate in the ledger.
        print(f"backfill stopped: {exc.reason}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
