"""The account's Linq lines and a recipient's reachability, as the workflow sees them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    """One of the account's sending lines."""

    number: str
    reputation: str

    @property
    def usable(self) -> bool:
        # Linq's guidance for a CRITICAL line is to pause outbound sends on it.
        return self.reputation != "CRITICAL"


@dataclass(frozen=True)
class Capability:
    """Whether a recipient can be reached from a line, and over which service."""

    imessage: bool
    service: str | None

    @property
    def reachable(self) -> bool:
        return self.imessage or self.service in ("SMS", "RCS")
