"""Which of the account's Linq lines a text goes out from."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from shared.core.errors import PermanentError
from shared.core.lines import Line
from shared.core.log import mask_phone


def pick_sender(
    lines: Sequence[Line], configured: str | None, exclude: Collection[str] = ()
) -> Line:
    """The configured line when there is one, otherwise the first line not CRITICAL or excluded."""
    if configured is not None:
        for line in lines:
            if line.number == configured:
                return line
        raise PermanentError(
            f"LINQ_SENDER {mask_phone(configured)} is not a line on this Linq account "
            f"({len(lines)} line(s) listed)"
        )
    for line in lines:
        if line.usable and line.number not in exclude:
            return line
    if not lines:
        raise PermanentError("the Linq account has no lines to send from")
    raise PermanentError(f"no usable Linq line: {len(lines)} line(s), all CRITICAL or ineligible")
