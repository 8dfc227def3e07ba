"""What Linq tells us (webhook events, 2026-02-03 format), read into plain facts; the STOP rule."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DELIVERED, FAILED = "message.delivered", "message.failed"
RECEIVED, LINE_STATUS = "message.received", "phone_number.status_updated"
SUBSCRIBED_EVENTS = (RECEIVED, FAILED, DELIVERED, LINE_STATUS)
# Linq's opt-out keywords, the whole trimmed message. Linq honours them in upper case only (and
# "opt out" in any case); we take every case, as carriers do: a customer who wrote "stop" meant it.
_KEYWORDS = frozenset({"stop", "unsubscribe", "optout", "cancel", "end", "quit"})
_OPT_OUT = re.compile(r"opt[ -]?out", re.IGNORECASE)
# The idempotency keys the product sets: `{invoice_id}-{attempt}-text` and `-link`.
_KEY = re.compile(r"(?P<entry>in_[A-Za-z0-9]+-\d+)-(?P<part>text|link)")
_WORRYING_REPUTATIONS = frozenset({"AT_RISK", "CRITICAL"})


def is_opt_out(text: str) -> bool:
    """Whether a reply opts the sender out: a keyword as the whole trimmed message, any case.

    Read as the person meant it: full-width letters as plain ones (NFKC), invisible format
    characters dropped, and punctuation around the word ignored ("Stop.", "STOP!!").
    """
    normal = unicodedata.normalize("NFKC", text)
    visible = "".join(c for c in normal if unicodedata.category(c) != "Cf")
    trimmed = _strip_punctuation(visible.strip()).strip()
    return trimmed.lower() in _KEYWORDS or _OPT_OUT.fullmatch(trimmed) is not None


def _strip_punctuation(text: str) -> str:
    start, end = 0, len(text)
    while start < end and unicodedata.category(text[start]).startswith("P"):
        start += 1
    while end > start and unicodedata.category(text[end - 1]).startswith("P"):
        end -= 1
    return text[start:end]


@dataclass(frozen=True)
class Delivery:
    """Linq's word on one message the product may have sent."""

    delivered: bool
    # The ledger entry and the part, from the idempotency key the product set, when the event
    # carries it (`message.delivered` does; `message.failed` names only the message and chat).
    entry: str | None
    part: str | None
    message_id: str | None
    chat_id: str | None
    code: int | None
    reason: str | None


@dataclass(frozen=True)
class Reply:
    """A message a recipient sent."""

    chat_id: str | None
    sender: str | None
    text: str
    sent_at: datetime | None
    # Reconciled history (recovered after the fact): only a STOP in it is acted upon.
    reconciled: bool
    # A group chat: never acted upon (Linq never marks a group thread opted out).
    group: bool


@dataclass(frozen=True)
class LineChange:
    """A sending line's status or reputation changed; `worrying` when it got worse."""

    line: str
    status: tuple[str | None, str | None]
    reputation: tuple[str | None, str | None]

    @property
    def worrying(self) -> bool:
        flagged = self.status[1] == "FLAGGED" and self.status[0] != "FLAGGED"
        worse = (
            self.reputation[1] in _WORRYING_REPUTATIONS and self.reputation[0] != self.reputation[1]
        )
        return flagged or worse


LinqFact = Delivery | Reply | LineChange


def read_event(event: Mapping[str, Any]) -> LinqFact | None:
    """The fact an event states, or None for an event type the product does not act on."""
    kind, data = event.get("event_type"), _mapping(event.get("data"))
    if kind in (DELIVERED, FAILED):
        key = _KEY.fullmatch(str(data.get("idempotency_key") or ""))
        code = data.get("code")
        # `message.delivered` is a message (`id`, `chat.id`); `message.failed` names them.
        return Delivery(
            delivered=kind == DELIVERED,
            entry=key["entry"] if key else None,
            part=key["part"] if key else None,
            message_id=_str(data.get("message_id")) or _str(data.get("id")),
            chat_id=_str(data.get("chat_id")) or _str(_mapping(data.get("chat")).get("id")),
            code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            reason=_str(data.get("reason")),
        )
    if kind == RECEIVED:
        chat = _mapping(data.get("chat"))
        parts = data.get("parts") if isinstance(data.get("parts"), list) else []
        text = " ".join(
            str(part.get("value"))
            for part in parts
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
        return Reply(
            chat_id=_str(chat.get("id")),
            sender=_handle(data.get("sender_handle")),
            text=text,
            sent_at=_moment(data.get("sent_at")),
            reconciled=bool(data.get("reconciled_at")),
            group=bool(chat.get("is_group")),
        )
    if kind == LINE_STATUS:
        return LineChange(
            line=str(data.get("phone_number") or ""),
            status=(_str(data.get("previous_status")), _str(data.get("new_status"))),
            reputation=(_str(data.get("previous_reputation")), _str(data.get("new_reputation"))),
        )
    return None


def _handle(value: Any) -> str | None:
    """The address of a `sender_handle`: a handle object (`{"handle": "+1...", ...}`) in the
    2026-02-03 format, a plain string in older ones."""
    return _str(value.get("handle")) if isinstance(value, Mapping) else _str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
