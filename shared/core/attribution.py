"""Which group a paid invoice belongs to, from its ledger entries: texted, holdout, or neither."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.core.outcome import Action

TEXTED, HOLDOUT, NOT_TEXTED = "texted", "holdout", "not_texted"


@dataclass(frozen=True)
class Attribution:
    """The group of a paid invoice and the entry its payment is recorded on."""

    group: str
    # Index into the entries given: the last text's entry, the holdout entry, or the latest one.
    entry: int
    attempt: int | None
    texted_at: datetime | None
    # Why it was not texted (not_texted only): the entry's outcome and its reason.
    reason: str | None


def attribute(
    entries: Sequence[Mapping[str, Any]], paid_at: datetime | None = None
) -> Attribution | None:
    """The group of an invoice whose ledger entries (one per failed attempt) are `entries`, or
    None when it has none (the ledger never saw it: nothing to say).

    Texted wins over everything (any attempt whose text went out; the latest such one before
    the payment at `paid_at`, when known, is the text the payment followed: a text that went out
    after it, racing the payment, did not bring it), then the holdout (an invoice is in it for
    all its attempts), then neither: the latest attempt says why it was not texted.
    """
    if not entries:
        return None

    def latest(indexes: list[int]) -> int:
        return max(indexes, key=lambda i: entries[i].get("attempt") or 0)

    texted = [i for i, entry in enumerate(entries) if entry.get("texted_at") is not None]
    if texted:
        before = [i for i in texted if paid_at is not None and entries[i]["texted_at"] <= paid_at]
        chosen = latest(before or texted)
        return Attribution(
            TEXTED, chosen, entries[chosen].get("attempt"), entries[chosen]["texted_at"], None
        )
    held = [i for i, entry in enumerate(entries) if entry.get("action") == Action.HOLDOUT.value]
    if held:
        chosen = latest(held)
        return Attribution(HOLDOUT, chosen, entries[chosen].get("attempt"), None, None)
    chosen = latest(list(range(len(entries))))
    entry = entries[chosen]
    action = entry.get("action") or str(entry.get("state") or "unknown")
    why = f"{action}: {entry['reason']}" if entry.get("reason") else action
    return Attribution(NOT_TEXTED, chosen, entry.get("attempt"), None, why)
