"""Quiet hours: whether a failed payment may be texted now, or the UTC moment it becomes due."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time

from shared.core.errors import ConfigError

OFF = "off"
DEFAULT_QUIET_HOURS = "21:00-08:00"

_WINDOW = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")


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
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_quiet_hours(text: str, variable: str = "QUIET_HOURS") -> QuietHours | None:
    """`off` (any case) for no quiet hours, else `HH:MM-HH:MM` in the recipient's local time."""
    value = text.strip()
    if value.lower() == OFF:
        return None
    match = _WINDOW.fullmatch(value)
    if match is None:
        raise ConfigError(
            f"{variable} must be '{OFF}' or a local-time window HH:MM-HH:MM with hours 00-23, "
            f"such as {DEFAULT_QUIET_HOURS} (which crosses midnight), got {text!r}"
        )
    start_hour, start_minute, end_hour, end_minute = (int(part) for part in match.groups())
    window = QuietHours(time(start_hour, start_minute), time(end_hour, end_minute))
    # Equal ends read either as "never quiet" or "always quiet": the first is what 'off' says
    # plainly, the second would hold every text forever, so neither is guessed.
    if window.start == window.end:
        raise ConfigError(
            f"{variable} must start and end at different times ('{OFF}' texts at any hour; "
            f"a window of the whole day would never text), got {text!r}"
        )
    return window
