"""Whether texting is on: the operator's pause, the surge guard's rule and its looks at
Stripe, held in one control document; each change to it a pure function.

`./dev pause` and `./dev resume` write the document; every recover run reads it beside the invoice
(an instance keeps what it read for at most CACHE_FOR); the release sweep reads it before it hands
paused payments back. The surge guard writes its looks there too, so that instances agree on
when Stripe was last asked and take turns asking it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

# How long an instance may act on the document as it read it.
CACHE_FOR = timedelta(seconds=10)
# A verdict covers new texts for twice this, and up to GROWTH times the failures it counted
# (a surge that begins after a calm look is held then rather than texted for long). The guard
# looks again once the verdict is half spent: this old, or the failures grown halfway to what it
# covers, so that the next verdict is in before the last runs out and no text waits for it.
CHECK_EVERY = timedelta(minutes=1)
GROWTH = 2
# A look stops counting after this long (Stripe's paging is slow): what it counted is its answer.
LOOK_FOR = timedelta(seconds=20)
# A look under way this long has lost its checker (a crash, a timeout): another run takes over.
TAKEOVER = LOOK_FOR + timedelta(seconds=10)
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
class Look:
    """The guard's look at Stripe under way: begun at `at`, with the failed payments counted
    then."""

    at: datetime
    failures: int


@dataclass(frozen=True)
class Check:
    """The guard's last finished look at Stripe: begun at `at`, with the failures counted then."""

    at: datetime
    failures: int
    # `invoice.paid` events of the window counted: all of them when `complete`, else at least
    # that many (the count stops once it settles the question).
    successes: int
    complete: bool
    verdict: Verdict
    # Why Stripe could not be asked, for an UNKNOWN verdict.
    detail: str | None = None


@dataclass(frozen=True)
class Control:
    """The control document as read (a missing one: texting on, never paused, never checked)."""

    pause: Pause | None = None
    resumed_by: str | None = None
    resumed_at: datetime | None = None
    check: Check | None = None
    look: Look | None = None

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
    return Control(pause=None, resumed_by=by, resumed_at=now)


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
    # Ask Stripe first (the run that begins the look does; the others go by the last verdict).
    CHECK = "check"
    # Not yet: no verdict covers it and another run's look is under way (its verdict is seconds
    # away).
    WAIT = "wait"
    PAUSED = "paused"


def reach(check: Check, rule: SurgeRule) -> int | None:
    """The most failures the verdict lets texts go with (None: any number, Stripe could not be
    asked; 0: none, a surge): up to GROWTH times those it counted, and no more than the
    successes it counted keep under the share."""
    if check.verdict is Verdict.UNKNOWN:
        return None
    if check.verdict is Verdict.SURGE:
        return 0
    return min(GROWTH * check.failures, check.successes * rule.share // (100 - rule.share))


def _covers(check: Check, failures: int, now: datetime, rule: SurgeRule) -> bool:
    """Whether the last verdict still lets texts go with `failures` counted now."""
    most = reach(check, rule)
    return now - check.at < 2 * CHECK_EVERY and (most is None or failures <= most)


def _spent(check: Check, failures: int, now: datetime, rule: SurgeRule) -> bool:
    """Whether the verdict is half spent, so that the guard looks again."""
    most = reach(check, rule)
    grown = most is not None and 2 * failures > check.failures + most
    return grown or now - check.at >= CHECK_EVERY


def gate(control: Control, failures: int, now: datetime, rule: SurgeRule) -> Gate:
    """The guard's word on a new text, with `failures` counted in the window now."""
    if control.pause is not None:
        return Gate.PAUSED
    if failures < rule.minimum:
        return Gate.SEND
    check, look = control.check, control.look
    covered = check is not None and _covers(check, failures, now, rule)
    if look is not None and now - look.at < TAKEOVER:
        return Gate.SEND if covered else Gate.WAIT
    if check is None or not covered or _spent(check, failures, now, rule):
        return Gate.CHECK
    return Gate.SEND


def waiting(failures: int, rule: SurgeRule) -> str:
    """Why a text waits for a look under way."""
    return (
        f"surge check: {failures} payments failed in the last {rule.span}; retried once the "
        "surge guard has asked Stripe how many succeeded"
    )


def begin_check(control: Control, failures: int, now: datetime, rule: SurgeRule) -> Control | None:
    """The look begun by this run, or None when the guard has none to make (another run's is
    under way, the last verdict is fresh, or texting is paused)."""
    if gate(control, failures, now, rule) is not Gate.CHECK:
        return None
    return replace(control, look=Look(now, failures))


def end_check(
    control: Control,
    began: datetime,
    successes: int,
    complete: bool,
    rule: SurgeRule,
    now: datetime,
    detail: str | None = None,
) -> Control | None:
    """The verdict of the look begun at `began` recorded: a surge pauses texting (unless it is
    paused already). `detail` set: Stripe could not be asked. None when the look is no longer
    the document's (a resume, or a takeover, replaced it)."""
    look = control.look
    if look is None or look.at != began:
        return None
    surge = rule.is_surge(look.failures, successes)
    if detail is None and surge and not complete:
        # The count stopped for time before it settled the question: no pause on a guess.
        detail = f"only {successes} payments counted in {LOOK_FOR.seconds} s of paging"
    if detail is not None:
        verdict = Verdict.UNKNOWN
    elif surge:
        verdict = Verdict.SURGE
    else:
        verdict = Verdict.CALM
    check = Check(look.at, look.failures, successes, complete, verdict, detail)
    ended = replace(control, check=check, look=None)
    if verdict is Verdict.SURGE and ended.pause is None:
        surge = Pause(rule.reason(look.failures, successes), SURGE_GUARD, now)
        ended = replace(ended, pause=surge)
    return ended
