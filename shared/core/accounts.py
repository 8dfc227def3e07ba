"""Which Stripe Connect accounts the product serves besides the platform's own invoices, and
which kind of Stripe endpoint each event comes through."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from shared.core.errors import ConfigError
from shared.core.event import ACCOUNT_ID

EVERY = "*"


class EndpointKind(Enum):
    """Stripe sends an account endpoint the platform's own events only, and a Connect endpoint
    (`connect=true`) its connected accounts' only; each has a signing secret of its own."""

    ACCOUNT = "account"
    CONNECT = "Connect"

    @classmethod
    def sending(cls, account: str | None) -> EndpointKind:
        """The kind Stripe sends an event of `account` (None: the platform's own) through."""
        return cls.ACCOUNT if account is None else cls.CONNECT

    @property
    def crossed(self) -> str:
        """Why an event this kind sends, signed with the other kind's secret, is refused: that
        secret leaked and forged it, or someone sent it by hand."""
        if self is EndpointKind.ACCOUNT:
            return "the platform's own event, signed with the Connect endpoint's secret"
        return "a connected account's event, signed with the platform endpoint's secret"


@dataclass(frozen=True)
class ConnectedAccounts:
    """The connected accounts whose events are served: `every` one, or those in `ids`. Build from
    the variable's text with `parse`; unset, none is (the platform's own events always are)."""

    ids: frozenset[str] = frozenset()
    every: bool = False

    @classmethod
    def parse(
        cls, text: str | None, variable: str = "STRIPE_CONNECT_ACCOUNTS"
    ) -> ConnectedAccounts:
        """`*`, or account ids separated by commas; unset or blank is none (a startup error for
        anything else, naming the variable)."""
        if text is None or not text.strip():
            return cls()
        if text.strip() == EVERY:
            return cls(every=True)
        ids = [part.strip() for part in text.split(",")]
        if not all(ACCOUNT_ID.fullmatch(account) for account in ids):
            raise ConfigError(
                f"{variable} must be {EVERY} (every connected account) or Stripe account ids "
                f"separated by commas, such as acct_1A2b3C,acct_4D5e6F; got {text!r}"
            )
        return cls(frozenset(ids))

    def __bool__(self) -> bool:
        """Whether any connected account is served."""
        return self.every or bool(self.ids)

    def serves(self, account: str | None) -> bool:
        """Whether an event of `account` (None: the platform's own) is served."""
        return account is None or self.every or account in self.ids
