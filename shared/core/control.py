"""Whether texting is on: the operator's pause, the surge guard's rule and its last look at
Stripe, held in one control document; each change to it a pure function.

`./dev pause` and `./dev resume` write the document; every recover run reads it beside the invoice
(an instance keeps what it read for at most CACHE_FOR); the release sweep reads it before it hands
paused payments back. The surge guard writes its checks there too, so that instances agree on
when Stripe was last asked.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

# How long an instance may act on the document as it read it.
CACHE_FOR = timedelta(seconds=10)
# The guard asks Stripe at most this often, across instances.
CHECK_EVERY = timedelta(minutes=1)
# A calm verdict stops covering the failures once they have grown this many times since the check:
# a surge that begins after a calm check is held at once rather than texted until the next one.
GROWTH = 2
# Who pauses texting when a surge does.
SURGE_GUARD = "the surge guard"


@dataclass(frozen=True)
class Pause:
    """Texting paused: why, by whom, when."""

    reason: str
    by: str
    at: datetime


class Verdict(enum.StrEnum):
    """What a look at Stripe found."""

    SURGE = "surge"
    CALM = "calm"
    # Stripe could not be asked: no pause on a guess, texting goes on until the next check.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Check:
    """The guard's look at Stripe begun at `at`, with the failed payments counted then; its
    verdict is None while it is under way."""

    at: datetime
    failures: int
    # `invoice.paid` events of the window counted: all of them when `complete`, else at least
    # that many (the count stops once it settles the question).
    successes: int = 0
    complete: bool = False
    verdict: Verdict | None = None
    # Why Stripe could not be asked, for an UNKNOWN verdict.
    detail: str | None = None


@dataclass(frozen=True)
class Control:
    """The control document as read (a missing one: texting on, never paused, never checked)."""

    pause: Pause | None = None
    resumed_by: str | None = None
    resumed_at: datetime | None = None
    check: Check | None = None

    def held(self) -> str | None:
        """Why no new text may go out, or None while texting is on."""
        if self.pause is None:
            return None
        return f"texting paused by {self.pause.by} at {_minute(self.pause.at)}: {self.pause.reason}"


def _minute(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def pause(control: Control, reason: str, by: str, now: datetime) -> Control | None:
    """Texting paused by `by` for `reason`; None when it is paused already (the first pause's
    reason stands)."""
    if control.pause is not None:
        return None
    return replace(control, pause=Pause(reason, by, now))


def resume(control: Control, by: str, now: datetime) -> Control | None:
    """Texting on again, the guard starting afresh: it counts only the failures after the resume
    (the operator has judged those before it) and asks Stripe anew. None when it is not paused."""
    if control.pause is None:
        return None
    return Control(pause=None, resumed_by=by, resumed_at=now, check=None)


# --- the surge guard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SurgeRule:
    """A surge: at least `minimum` failed payments in `window`, and more than `share` percent of
    the payments Stripe attempted in it (the failed ones and the paid ones)."""

    minimum: int
    window: timedelta
    share: int

    def start(self, control: Control, now: datetime) -> datetime:
        """Where the window begins: `window` ago, or at the last resume if that is later."""
        since = now - self.window
        resumed = control.resumed_at
        return resumed if resumed is not None and resumed > since else since

    def is_surge(self, failures: int, successes: int) -> bool:
        return failures >= self.minimum and failures * 100 > self.share * (failures + successes)

    def enough(self, failures: int) -> int:
        """The successes that settle "no surge" for GROWTH times `failures`: where the count of
        Stripe's payments may stop."""
        return math.ceil(GROWTH * failures * (100 - self.share) / self.share)

    def reason(self, failures: int, successes: int) -> str:
        return f"surge: {failures} of {failures + successes} payments failed in {self.span}"

    @property
    def span(self) -> str:
        """The window in words: `10 minutes`, `1 hour`, `90 minutes`."""
        minutes = int(self.window.total_seconds() // 60)
        if minutes % 60 == 0:
            hours = minutes // 60
            return f"{hours} hour{'s' if hours > 1 else ''}"
        return f"{minutes} minute{'s' if minutes > 1 else ''}"


class Gate(enum.StrEnum):
    """What the guard says of a new text about to go out."""

    SEND = "send"
    # Ask Stripe (the run that takes the check does, the others wait for it).
    CHECK = "check"
    # Hold it: a check is under way, or the last one (within the minute) no longer covers the
    # failures counted now.
    WAIT = "wait"
    PAUSED = "paused"


def _covers(check: Check, failures: int, now: datetime, rule: SurgeRule) -> bool:
    """Whether the last check's verdict still lets texts go with `failures` counted now."""
    if check.verdict is None or now - check.at >= CHECK_EVERY:
        return False
    if check.verdict is Verdict.UNKNOWN:
        return True
    if check.verdict is Verdict.SURGE:
        return False
    return failures <= GROWTH * check.failures and not rule.is_surge(failures, check.successes)


def gate(control: Control, failures: int, now: datetime, rule: SurgeRule) -> Gate:
    """The guard's word on a new text, with `failures` counted in the window now."""
    if control.pause is not None:
        return Gate.PAUSED
    if failures < rule.minimum:
        return Gate.SEND
    check = control.check
    if check is not None and _covers(check, failures, now, rule):
        return Gate.SEND
    if check is None or now - check.at >= CHECK_EVERY:
        return Gate.CHECK
    return Gate.WAIT


def waiting(failures: int, rule: SurgeRule) -> str:
    """Why a text is held while the guard has no verdict that covers it."""
    return (
        f"surge check: {failures} payments failed in the last {rule.span}; held until the "
        "surge guard has asked Stripe how many succeeded"
    )


def begin_check(control: Control, failures: int, now: datetime, rule: SurgeRule) -> Control | None:
    """The check begun by this run, or None when the guard has no check to make (another
    instance began one within the minute, or texting is paused)."""
    if gate(control, failures, now, rule) is not Gate.CHECK:
        return None
    return replace(control, check=Check(now, failures))


def end_check(
    control: Control,
    began: datetime,
    successes: int,
    complete: bool,
    rule: SurgeRule,
    now: datetime,
    detail: str | None = None,
) -> Control | None:
    """The verdict of the check begun at `began` recorded: a surge pauses texting (unless it is
    paused already). `detail` set: Stripe could not be asked. None when the check is no longer
    the document's (a resume, or a later check, replaced it)."""
    check = control.check
    if check is None or check.at != began or check.verdict is not None:
        return None
    if detail is not None:
        verdict = Verdict.UNKNOWN
    elif rule.is_surge(check.failures, successes):
        verdict = Verdict.SURGE
    else:
        verdict = Verdict.CALM
    looked = replace(check, successes=successes, complete=complete, verdict=verdict, detail=detail)
    ended = replace(control, check=looked)
    if verdict is Verdict.SURGE and ended.pause is None:
        surge = Pause(rule.reason(check.failures, successes), SURGE_GUARD, now)
        ended = replace(ended, pause=surge)
    return ended
