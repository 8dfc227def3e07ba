"""Stripe adapter: the invoice read the workflow makes, and the event lists the backfill and the
surge guard read at a pace Stripe allows, with Stripe's errors turned into ours."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any
from urllib.parse import quote

import stripe

from shared.core.errors import (
    NotFoundError,
    PermanentError,
    RecoveryError,
    RetryableError,
    vendor_message,
)
from shared.core.invoice import EXPAND, Invoice, parse_invoice

# (connect, read) seconds per attempt. With two retries and the SDK's backoff (at most 5 s each)
# the worst case stays near 30 s, well under the recover function's timeout.
TIMEOUT = (3.05, 8.0)
MAX_NETWORK_RETRIES = 2
# Stripe's largest page.
PAGE_SIZE = 100
# Stripe allows 25 reads a second per endpoint, and the recover function reads every invoice from
# one endpoint: a reader of many pages (the backfill, the surge guard) takes 10 a second and
# leaves it the rest.
READS_PER_SECOND = 10.0
# What the SDK imports on first use: the client. The invoice read makes no typed objects (see
# `StripeGateway.invoice`), so no resource module is needed.
_PRELOADED = ("StripeClient",)


def preload() -> None:
    """Import now what the first invoice read would import between Stripe's answer and ours:
    a new instance pays for it while it starts, not inside its first run."""
    for name in _PRELOADED:
        getattr(stripe, name)


def translate(exc: stripe.StripeError) -> RecoveryError:
    """Our error for a Stripe error: outages and rate limits retry, everything else is final."""
    status = exc.http_status
    detail = {
        "vendor": "stripe",
        "status": status,
        "code": exc.code,
        "request_id": exc.request_id,
    }
    # Bounded and masked like any vendor's: Stripe's message can quote a parameter we sent.
    message = vendor_message(exc.user_message or str(exc) or type(exc).__name__)
    if isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError):
        return RetryableError(f"Stripe: {message}", **detail)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return PermanentError(f"Stripe rejected the API key: {message}", **detail)
    if isinstance(exc, stripe.InvalidRequestError) and status == 404:
        return NotFoundError(f"Stripe: {message}", **detail)
    if status is None or status >= 500 or status == 409:
        return RetryableError(f"Stripe: {message}", **detail)
    return PermanentError(f"Stripe: {message}", **detail)


class StripeGateway:
    """Reads invoices with their customer through one configured `StripeClient` per instance."""

    def __init__(self, api_key: str, api_base: str, read_timeout: float | None = None) -> None:
        """`read_timeout`: seconds to wait for an answer, when not TIMEOUT's."""
        timeout = (TIMEOUT[0], read_timeout or TIMEOUT[1])
        # StripeClient never retries unless told to, and its default timeout is 80 s.
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            http_client=stripe.RequestsClient(timeout=timeout),
            max_network_retries=MAX_NETWORK_RETRIES,
        )

    def invoice(self, invoice_id: str, account: str | None = None) -> Invoice:
        """The invoice as it is now, with its customer and subscription expanded: one request.

        `account` is the connected account it belongs to (Stripe Connect: the `Stripe-Account`
        header), or None for the platform's own.
        """
        options: dict[str, Any] = {"stripe_account": account} if account else {}
        try:
            # The answer as plain JSON, through the same requests, retries and errors as
            # `v1.invoices.retrieve`: stripe-python would otherwise make a typed object of the
            # invoice and of each object expanded in it, importing each one's module on the
            # first run (the PaymentIntent's alone, tens of milliseconds: BENCHMARKS.md, cold
            # start), only for parse_invoice to read them as dicts.
            found = self._client.raw_request(
                "get",
                f"/v1/invoices/{quote(invoice_id, safe='')}",
                expand=list(EXPAND),
                **options,
            )
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        return parse_invoice(found.data)

    def events(
        self,
        kind: str,
        created_since: int,
        account: str | None = None,
        read: Callable[[Callable[[], Page]], Page] = lambda page: page(),
    ) -> Iterator[Mapping[str, Any]]:
        """Every event of type `kind` created at or after `created_since` (unix time), newest
        first, a page at a time, each page's request made through `read` (a pace, retries): the
        platform's, or with `account` that connected account's (the platform's list holds none
        of them)."""
        after: str | None = None
        while True:
            page, more = read(partial(self._events_page, kind, created_since, after, account))
            yield from page
            if not more or not page:
                return
            after = page[-1]["id"]

    def _events_page(
        self, kind: str, created_since: int, starting_after: str | None, account: str | None
    ) -> Page:
        """One page of events, and whether more pages follow."""
        params: dict[str, Any] = {
            "type": kind,
            "created": {"gte": created_since},
            "limit": PAGE_SIZE,
        }
        if starting_after is not None:
            params["starting_after"] = starting_after
        if account:
            params["stripe_account"] = account
        # Read as JSON, not as StripeObjects: the guard only counts the events, and converting a
        # page of 100 invoices into objects and back cost more than asking Stripe for it.
        try:
            page = self._client.raw_request("get", "/v1/events", **params).data
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        return list(page["data"]), bool(page["has_more"])

    def check_key(self) -> None:
        """One invoice listed: Stripe takes the key, and it may read invoices (what the recover
        function does with it). Nothing is changed."""
        try:
            self._client.raw_request("get", "/v1/invoices", limit=1)
        except stripe.StripeError as exc:
            raise translate(exc) from exc


# A page of events, and whether more follow.
Page = tuple[list[Mapping[str, Any]], bool]


class Throttle:
    """Spaces calls evenly at no more than `per_second`."""

    def __init__(
        self,
        per_second: float = READS_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second
        self._clock, self._sleep = clock, sleep
        self._next = 0.0

    def wait(self) -> None:
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self._interval
