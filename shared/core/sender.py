"""Which of the account's Linq lines a text goes out from."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from shared.core.errors import PermanentError, RetryableError
from shared.core.lines import Line
from shared.core.log import mask_phone


def pick_sender(
    lines: Sequence[Line], configured: str | None, ineligible: Collection[str] = ()
) -> Line:
    """The configured line when there is one, otherwise the first line not CRITICAL nor
    `ineligible` (refused by Linq as ineligible in this run: 403, code 2027).

    No usable line is a retry, not a failure: a line recovers (Linq's 2027 is "for now"), a
    CRITICAL line's reputation mends, an operator adds one; until then Pub/Sub redelivers the
    payment, and after its last attempt keeps it in the dead-letter subscription.
    """
    if configured is not None:
        for line in lines:
            if line.number == configured:
                return line
        raise PermanentError(
            f"LINQ_SENDER {mask_phone(configured)} is not a line on this Linq account "
            f"({len(lines)} line(s) listed)"
        )
    for line in lines:
        if line.usable and line.number not in ineligible:
            return line
    if not lines:
        raise RetryableError(
            "no usable Linq line: the Linq account has no lines to send from", vendor="linq"
        )
    refused = sum(line.usable and line.number in ineligible for line in lines)
    critical = sum(not line.usable for line in lines)
    raise RetryableError(
        f"no usable Linq line: {len(lines)} line(s), {critical} CRITICAL, {refused} refused as "
        "ineligible (Linq 403, code 2027)",
        vendor="linq",
    )
