"""Structured log lines for Cloud Logging: one JSON object per line on stdout."""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TextIO

# Cloud Logging lifts `severity` and `message` out of a JSON line; every other key stays queryable
# as jsonPayload.KEY.
INFO = "INFO"
NOTICE = "NOTICE"
WARNING = "WARNING"
ERROR = "ERROR"


# An E.164 number anywhere in a logged string, such as inside a vendor's error message.
_E164 = re.compile(r"\+\d{6,15}\b")


def log(severity: str, message: str, stream: TextIO | None = None, **fields: Any) -> None:
    """Write one JSON line; fields that are None are left out, phone numbers are masked."""
    entry: dict[str, Any] = {"severity": severity, "message": redact(message)}
    entry.update(
        (key, redact(value) if isinstance(value, str) else value)
        for key, value in fields.items()
        if value is not None
    )
    out = stream if stream is not None else sys.stdout
    out.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
    out.flush()


def redact(text: str) -> str:
    """`text` with every E.164 number masked."""
    return _E164.sub(lambda match: mask_phone(match.group()) or "", text)


def mask_phone(number: str | None) -> str | None:
    """Keep the country prefix and the last four digits: `+14155550100` -> `+1******0100`."""
    if not number:
        return number
    digits = number.lstrip("+")
    keep_head = 1 if number.startswith("+") else 0
    if len(digits) <= 6:
        return "*" * len(number)
    head, tail = number[: keep_head + 1], number[-4:]
    return head + "*" * (len(number) - len(head) - len(tail)) + tail
