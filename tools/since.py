"""`--since 7d` / `--since 48h`: how far back a tool looks, read the same way by every tool."""

from __future__ import annotations

import argparse
import re

_SINCE = re.compile(r"^([1-9][0-9]*)([hd])$")


def parse_age(text: str) -> int:
    """`7d` or `48h` as seconds."""
    match = _SINCE.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"give hours or days, such as 48h or 7d, not {text!r}")
    return int(match.group(1)) * (3600 if match.group(2) == "h" else 86400)
