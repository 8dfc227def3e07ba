"""The closed set of outcomes of one recovery run and the JSON result line that reports it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TextIO

from shared.log import ERROR, INFO, log


class Action(enum.StrEnum):
    """What happened to one failed payment; the only values `action` ever takes."""

    SENT = "sent"
    NO_PHONE = "skipped:no_phone"
    UNREACHABLE = "skipped:unreachable"
    NOT_OPEN = "skipped:not_open"
    OPTED_OUT = "skipped:opted_out"
    FAILED = "failed"


# The log summary an operator sees for each action.
_MESSAGES = {
    Action.SENT: "sent",
    Action.NO_PHONE: "skipped: no phone on file",
    Action.UNREACHABLE: "skipped: unreachable",
    Action.NOT_OPEN: "skipped: invoice not open",
    Action.OPTED_OUT: "skipped: opted out",
    Action.FAILED: "failed",
}


@dataclass(frozen=True)
class Outcome:
    """The end of one run: an action, and either the chat it went to or the reason it did not."""

    action: Action
    reason: str | None = None
    chat_id: str | None = None

    @property
    def message(self) -> str:
        return _MESSAGES[self.action]

    @property
    def severity(self) -> str:
        return ERROR if self.action is Action.FAILED else INFO


def sent(chat_id: str) -> Outcome:
    return Outcome(Action.SENT, chat_id=chat_id)


def skipped(action: Action, reason: str) -> Outcome:
    return Outcome(action, reason=reason)


def failed(reason: str) -> Outcome:
    return Outcome(Action.FAILED, reason=reason)


def log_result(
    outcome: Outcome,
    *,
    invoice_id: str,
    customer_id: str | None,
    event_id: str | None,
    stream: TextIO | None = None,
) -> None:
    """Print the run's one result line; `chat_id` only when sent, `reason` for everything else."""
    log(
        outcome.severity,
        outcome.message,
        stream=stream,
        invoice_id=invoice_id,
        customer_id=customer_id,
        action=outcome.action.value,
        chat_id=outcome.chat_id if outcome.action is Action.SENT else None,
        reason=None if outcome.action is Action.SENT else outcome.reason,
        event_id=event_id,
    )
