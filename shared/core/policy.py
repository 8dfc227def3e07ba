"""The operator's rules of when to text: which failed attempts get one, and the local hours in
which none is sent."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time

from shared.core.errors import ConfigError

ALL = "all"
OFF = "off"
DEFAULT_QUIET_HOURS = "21:00-08:00"
_NUMBERS = re.compile(r"^\s*[1-9][0-9]*\s*(?:,\s*[1-9][0-9]*\s*)*$")
_CLOCK = r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?"
_WINDOW = re.compile(f"{_CLOCK}-{_CLOCK}")


@dataclass(frozen=True)
class AttemptPolicy:
    """`attempts` None means every attempt; build from the variable's text with `parse`."""

    attempts: frozenset[int] | None = None

    @classmethod
    def parse(cls, text: str, variable: str = "TEXT_ON_ATTEMPTS") -> AttemptPolicy:
        """`all`, or positive attempt numbers separated by commas (a startup error otherwise)."""
        if text.strip().lower() == ALL:
            return cls()
        if not _NUMBERS.match(text):
            raise ConfigError(
                f"{variable} must be '{ALL}' or attempt numbers separated by commas, "
                f"such as 1,3 (the first failure and the third), got {text!r}"
            )
        return cls(frozenset(int(part) for part in text.split(",")))

    def allows(self, attempt: int) -> bool:
        return self.attempts is None or attempt in self.attempts

    def __str__(self) -> str:
        if self.attempts is None:
            return ALL
        return ",".join(str(attempt) for attempt in sorted(self.attempts))


@dataclass(frozen=True)
class QuietHours:
    """Local times from `start` (included) to `end` (excluded) at which nothing is sent.

    `start` after `end` means the window crosses midnight (21:00-08:00). It is judged by what the
    recipient's clock reads, so on the night clocks go back a window may be entered twice.
    """

    start: time
    end: time

    def covers(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


def _clock(moment: time) -> str:
    return f"{moment:%H:%M:%S}" if moment.second else f"{moment:%H:%M}"


def parse_quiet_hours(text: str, variable: str = "QUIET_HOURS") -> QuietHours | None:
    """`off` (any case) for no quiet hours, else `HH:MM-HH:MM` in the recipient's local time
    (`HH:MM:SS` where a second matters: the sandbox's short night)."""
    value = text.strip()
    if value.lower() == OFF:
        return None
    match = _WINDOW.fullmatch(value)
    if match is None:
        raise ConfigError(
            f"{variable} must be '{OFF}' or a local-time window HH:MM-HH:MM with hours 00-23, "
            f"such as {DEFAULT_QUIET_HOURS} (which crosses midnight), got {text!r}"
        )
    parts = [int(part or 0) for part in match.groups()]
    window = QuietHours(time(*parts[:3]), time(*parts[3:]))
    # Equal ends read either as "never quiet" or "always quiet": the first is what 'off' says
    # plainly, the second would hold every text forever, so neither is guessed.
    if window.start == window.end:
        raise ConfigError(
            f"{variable} must start and end at different times ('{OFF}' texts at any hour; "
            f"a window of the whole day would never text), got {text!r}"
        )
    return window
