"""Whether this instance may send a new text: the control document, kept at most CACHE_FOR, and
the surge guard, which asks Stripe how many payments succeeded once the failures of its window
reach SURGE_MIN (shared/core/control.py has the rule).

Every recover run reads the control document (through the cache) and counts the window's
failures beside the invoice, so neither costs a step on the way to the text. Only a run about to
send a new text with SURGE_MIN failures counted consults the guard, which reads the document
afresh: a pause the guard wrote on another instance is seen at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from shared.adapters.ledger import Ledger
from shared.adapters.stripe_gateway import StripeGateway, Throttle
from shared.core.clock import Clock
from shared.core.control import (
    CACHE_FOR,
    SURGE_GUARD,
    Control,
    Gate,
    SurgeRule,
    Verdict,
    gate,
    waiting,
)
from shared.core.errors import RecoveryError
from shared.core.event import PAID_TYPE

T = TypeVar("T")
RESUME = "./dev resume"


@dataclass(frozen=True)
class Word:
    """The guard's word on a new text: why it may not go now (None: it may), and what the team
    must hear."""

    held: str | None
    alerts: tuple[str, ...] = ()


class Texting:
    """The control document and the surge guard of one instance."""

    def __init__(
        self,
        ledger: Ledger,
        stripe: StripeGateway,
        rule: SurgeRule | None,
        clock: Clock,
        throttle: Throttle | None = None,
    ) -> None:
        self._ledger, self._stripe, self.rule, self._clock = ledger, stripe, rule, clock
        self._throttle = throttle or Throttle()
        self._lock = threading.Lock()
        self._cached: tuple[Control, datetime] | None = None

    def control(self, fresh: bool = False) -> Control:
        """The control document, as read at most CACHE_FOR ago (`fresh`: now)."""
        now = self._clock()
        with self._lock:
            if not fresh and self._cached is not None and now - self._cached[1] < CACHE_FOR:
                return self._cached[0]
        return self._fresh()

    def _fresh(self) -> Control:
        read_at = self._clock()
        control = self._ledger.control()
        self._remember(control, read_at)
        return control

    def _remember(self, control: Control, read_at: datetime) -> None:
        with self._lock:
            self._cached = (control, read_at)

    def failures(self) -> int:
        """The failed payments of the guard's window, as Stripe reported them (0 when it is
        off)."""
        if self.rule is None:
            return 0
        return self._ledger.failures_since(self._clock() - self.rule.window)

    def guard(self, failures: int) -> Word:
        """The guard's word on a new text, `failures` counted in the window beside the invoice."""
        rule = self.rule
        if rule is None or failures < rule.minimum:
            return Word(None)
        control = self._fresh()
        now = self._clock()
        start = rule.start(control, now)
        if start > now - rule.window:
            # Resumed within the window: only the failures since count.
            failures = self._ledger.failures_since(start)
        word = gate(control, failures, now, rule)
        if word is Gate.CHECK:
            control, began = self._ledger.begin_check(failures, rule)
            if began:
                return self._check(control, rule, start, failures)
            word = gate(control, failures, self._clock(), rule)
        if word is Gate.SEND:
            return Word(None)
        return Word(control.held() if word is Gate.PAUSED else waiting(failures, rule))

    def _check(self, control: Control, rule: SurgeRule, start: datetime, failures: int) -> Word:
        """Ask Stripe how many payments of the window succeeded and record the verdict: a surge
        pauses texting. Stripe unable to answer: no pause on a guess, texting goes on."""
        assert control.check is not None
        began = control.check.at
        detail = None
        try:
            successes, complete = self._successes(start, rule.enough(failures))
        except RecoveryError as exc:
            successes, complete, detail = 0, False, exc.reason
        control, ended = self._ledger.end_check(began, successes, complete, rule, detail)
        self._remember(control, self._clock())
        check = control.check
        alerts: tuple[str, ...] = ()
        if ended and check is not None and check.verdict is Verdict.SURGE:
            alerts = (_surge_alert(control, rule),)
        elif ended and detail is not None:
            alerts = (_unknown_alert(failures, rule, detail),)
        return Word(control.held(), alerts)

    def _successes(self, start: datetime, enough: int) -> tuple[int, bool]:
        """The `invoice.paid` events of the window, on every Stripe account among its failures,
        counted until there are `enough` (False: it stopped there) or none is left (True)."""
        accounts = self._ledger.accounts_failed_since(start) or {None}
        since = int(start.timestamp())
        counted = 0
        for account in sorted(accounts, key=lambda account: account or ""):
            for _ in self._stripe.events(PAID_TYPE, since, account, self._paced):
                counted += 1
                if counted >= enough:
                    return counted, False
        return counted, True

    def _paced(self, call: Callable[[], T]) -> T:
        self._throttle.wait()
        return call()


def _surge_alert(control: Control, rule: SurgeRule) -> str:
    assert control.pause is not None
    return (
        f"Texting paused by {SURGE_GUARD}: {control.pause.reason} (SURGE_MIN={rule.minimum}, "
        f"SURGE_SHARE={rule.share} %). No new text goes out; failed payments are kept "
        f"(deferred:paused) and handed back, oldest first, after `{RESUME}`."
    )


def _unknown_alert(failures: int, rule: SurgeRule, detail: str) -> str:
    return (
        f"Surge guard: {failures} payments failed in the last {rule.span} and Stripe could not "
        f"be asked how many succeeded ({detail}). Not pausing on a guess: texting goes on. "
        "`./dev pause` stops it."
    )
