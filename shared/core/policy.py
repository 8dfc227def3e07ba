"""Which failed payment attempts get a text: every one, or the attempt numbers an operator lists."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.core.errors import ConfigError

ALL = "all"
_NUMBERS = re.compile(r"^\s*[1-9][0-9]*\s*(?:,\s*[1-9][0-9]*\s*)*$")


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
