"""The release sweep: deferred payments whose morning has come, and paused ones once texting is on
again, go back to the recover function.

Run every five minutes (Cloud Scheduler -> its own topic -> release_deferred). It reads the
control document first: while texting is paused, paused payments stay. Each due entry is
first marked `released` with a fresh token, conditionally on the version the sweep read, so of
two overlapping sweeps exactly one marks it; then the payment is published again with that
token, which lets its recover run (and no other message) take the entry over and decide again on
the invoice as it is then. A sweep that dies before marking loses nothing (the entry is still
due); one that dies between marking and publishing leaves a release nobody takes over, which a
later sweep finds once it is STALE_RELEASE old (shared/core/entry.py) and releases again.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial

from shared.adapters.ledger import Due, Ledger
from shared.adapters.publisher import Publisher
from shared.core.clock import Clock, utc_now
from shared.core.entry import State

# Entries handled per query; a sweep queries again until nothing is due.
BATCH = 500
# Marks and publishes in flight at once: a morning release of a thousand takes seconds.
WORKERS = 8


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did: released (due for the first time), released again (stale), and
    skipped (another sweep got there first)."""

    released: int = 0
    released_again: int = 0
    skipped: int = 0


class Sweep:
    """Releases what is due, with one ledger, one publisher and one clock per instance."""

    def __init__(self, ledger: Ledger, publisher: Publisher, clock: Clock = utc_now) -> None:
        self._ledger, self._publisher, self._clock = ledger, publisher, clock
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="release")

    def run(self) -> SweepResult:
        now = self._clock()
        paused = self._ledger.control().pause is not None
        total = SweepResult()
        seen: set[str] = set()
        while True:
            found = self._ledger.due(now, BATCH, paused)
            due = [d for d in found if str(d.entry.key) not in seen]
            if not due:
                return total
            seen.update(str(d.entry.key) for d in due)
            outcomes = list(self._pool.map(partial(self._release, paused=paused), due))
            total = SweepResult(
                total.released + sum(1 for o in outcomes if o == "released"),
                total.released_again + sum(1 for o in outcomes if o == "again"),
                total.skipped + sum(1 for o in outcomes if o == "skipped"),
            )

    def _release(self, due: Due, paused: bool) -> str:
        """Mark, then publish: a crash between the two is caught by the STALE_RELEASE rule."""
        token = uuid.uuid4().hex
        again = due.entry.state is State.RELEASED
        if not self._ledger.release(due, token, paused):
            return "skipped"
        payment = replace(due.entry.job(), release=token)
        self._publisher.publish(payment.to_json(), payment.attributes())
        return "again" if again else "released"
