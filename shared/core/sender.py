"""Which of the account's Linq lines a text goes out from: the configured line, or else the
recipient's own line by rendezvous hashing, passing over lines that cannot take a new text."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.core.errors import PermanentError, RetryableError
from shared.core.lines import Line
from shared.core.log import mask_phone

# Linq's recommended ceiling: about 7,000 inbound and outbound messages per line per day, with no
# hard cap in production (docs.linqapp.com/guides/platform/rate-limits; linq-api.md, section 6).
DEFAULT_LINE_DAILY_LIMIT = 7000


@dataclass(frozen=True)
class LineLoad:
    """How many messages each line has sent today (UTC), against the daily limit."""

    limit: int
    sent_today: Mapping[str, int] = field(default_factory=dict)

    def full(self, number: str) -> bool:
        """Whether line `number` has reached the limit: it takes no new text until midnight
        UTC, when its count starts again."""
        return self.sent_today.get(number, 0) >= self.limit


def utc_day(moment: datetime) -> str:
    """The day a line's count belongs to (`2026-11-27`): counts start again at midnight UTC."""
    return moment.astimezone(UTC).date().isoformat()


def line_order(lines: Iterable[Line], to: str) -> list[Line]:
    """`lines` in recipient `to`'s own order of preference (highest random weight, or
    rendezvous, hashing): each line weighs the hash of the pair (line, recipient), and the
    heaviest comes first. Two lines' order for a recipient never depends on the other lines, so
    a line that leaves (or turns CRITICAL, or fills up) moves only the recipients it was first
    for, each to their own next line, and a line that comes back takes back exactly those; and
    each line is first for an even share of recipients."""
    return sorted(lines, key=lambda line: (_weight(line.number, to), line.number), reverse=True)


def _weight(line: str, to: str) -> bytes:
    # sha256, never hash(): Python salts the hash of a str per process, and a recipient's order
    # must be the same on every instance and after every deploy. Changing this moves everyone.
    return hashlib.sha256(f"{line}|{to}".encode()).digest()


def pick_sender(
    lines: Sequence[Line],
    to: str,
    load: LineLoad,
    configured: str | None = None,
    ineligible: Collection[str] = (),
) -> Line:
    """The line a new text to `to` goes out from: the configured line when there is one (its
    count and health notwithstanding), otherwise the first line in `to`'s order that is not
    CRITICAL, not `ineligible` (refused by Linq as ineligible in this run: 403, code 2027) and
    not at its daily limit.

    No usable line is a retry, not a failure: a line recovers (Linq's 2027 is "for now"), a
    CRITICAL line's reputation mends, a full line's count starts again at midnight UTC, an
    operator adds one; until then Pub/Sub redelivers the payment, and after its last attempt
    keeps it in the dead-letter subscription.
    """
    if configured is not None:
        for line in lines:
            if line.number == configured:
                return line
        raise PermanentError(
            f"LINQ_SENDER {mask_phone(configured)} is not a line on this Linq account "
            f"({len(lines)} line(s) listed)"
        )
    for line in line_order(lines, to):
        if line.usable and line.number not in ineligible and not load.full(line.number):
            return line
    if not lines:
        raise RetryableError(
            "no usable Linq line: the Linq account has no lines to send from", vendor="linq"
        )
    critical = sum(not line.usable for line in lines)
    refused = sum(line.usable and line.number in ineligible for line in lines)
    full = len(lines) - critical - refused
    at_limit = (
        f", {full} at the daily limit (LINQ_LINE_DAILY_LIMIT={load.limit} messages, until "
        "00:00 UTC)"
        if full
        else ""
    )
    raise RetryableError(
        f"no usable Linq line: {len(lines)} line(s), {critical} CRITICAL, {refused} refused as "
        f"ineligible (Linq 403, code 2027){at_limit}",
        vendor="linq",
    )
