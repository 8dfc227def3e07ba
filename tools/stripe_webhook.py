"""The ingest function's Stripe webhook endpoints, through Stripe's API (stripe-python): the key
checked for the permission to manage endpoints, the endpoints found by their URL, created (an
account endpoint, or a Connect one), given the events they lack, and deleted. Stripe's refusals
come out as our errors, with Stripe's reason.

Stripe shows an endpoint's signing secret once, in the answer that creates it: `create` hands it
to the caller to store at once, and nothing here prints it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import stripe

from shared.adapters.stripe_gateway import PAGE_SIZE, StripeGateway, translate
from shared.core.event import ACTION_TYPE, PAID_TYPE, SNAPSHOT_TYPE

# What the product reads: the failed payment, the payment after it (measured against the texts),
# and the payment that waits for the customer's bank (3-D Secure).
# One list for the endpoint deploy.sh makes and the `stripe listen` the live sandbox suggests.
EVENTS = (SNAPSHOT_TYPE, PAID_TYPE, ACTION_TYPE)
# The version the code is written for: every event comes in it, whatever the account's default.
API_VERSION = stripe.api_version
DESCRIPTION = "dunning by text: failed payments to the ingest function (deploy.sh)"
# Stripe never shows whether an endpoint was made with `connect`: its metadata records it.
CONNECT = "connect"


@dataclass(frozen=True)
class Endpoint:
    """A webhook endpoint as Stripe lists it; `connect` is what its metadata records (None for
    one made elsewhere, by hand in the Dashboard say)."""

    id: str
    url: str
    events: tuple[str, ...]
    api_version: str | None
    enabled: bool
    connect: bool | None
    livemode: bool
    created: int

    @classmethod
    def of(cls, found: Mapping[str, Any]) -> Endpoint:
        recorded = (found.get("metadata") or {}).get(CONNECT)
        return cls(
            id=found["id"],
            url=found["url"],
            events=tuple(found.get("enabled_events") or ()),
            api_version=found.get("api_version"),
            enabled=found.get("status") == "enabled",
            connect=None if recorded is None else recorded == "true",
            livemode=bool(found.get("livemode")),
            created=int(found.get("created") or 0),
        )

    @property
    def missing(self) -> tuple[str, ...]:
        """The product's events it is not sent (none when it is sent every event)."""
        return () if "*" in self.events else tuple(e for e in EVENTS if e not in self.events)


def endpoint_params(url: str, connect: bool) -> dict[str, Any]:
    """What creates the endpoint of `url`: for the platform's own events, or with `connect` for
    its connected accounts' (Stripe sends a Connect endpoint those only)."""
    params: dict[str, Any] = {
        "url": url,
        "enabled_events": list(EVENTS),
        "api_version": API_VERSION,
        "description": DESCRIPTION,
        "metadata": {CONNECT: "true" if connect else "false"},
    }
    if connect:
        params["connect"] = True
    return params


class Endpoints(StripeGateway):
    """The account's webhook endpoints, through the product's Stripe client (its timeouts, and
    its retries, which send every create with an idempotency key)."""

    def check(self) -> None:
        """Raise unless Stripe takes the key and it may read and create webhook endpoints.

        Stripe checks a restricted key's permissions before the parameters: a create without any
        is refused 403 without the permission and 400 with it, and makes nothing."""
        try:
            self._client.v1.webhook_endpoints.list(params={"limit": 1})
            self._client.v1.webhook_endpoints.create(params={})
        except stripe.InvalidRequestError as exc:
            if exc.code != "parameter_missing":
                raise translate(exc) from exc
        except stripe.StripeError as exc:
            raise translate(exc) from exc

    def find(self, url: str) -> list[Endpoint]:
        """Every endpoint that sends to `url`, read page by page."""
        try:
            listed = self._client.v1.webhook_endpoints.list(params={"limit": PAGE_SIZE})
            return [
                Endpoint.of(found.to_dict())
                for found in listed.auto_paging_iter()
                if found.url == url
            ]
        except stripe.StripeError as exc:
            raise translate(exc) from exc

    def create(self, url: str, connect: bool) -> tuple[Endpoint, str]:
        """The new endpoint and its signing secret."""
        try:
            created = self._client.v1.webhook_endpoints.create(params=endpoint_params(url, connect))
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        return Endpoint.of(created.to_dict()), str(created.secret)

    def complete(self, endpoint: Endpoint) -> Endpoint:
        """The endpoint sent the product's events it lacks, and enabled if it was disabled; its
        secret, URL and version stay as they are."""
        params: dict[str, Any] = {}
        if endpoint.missing:
            params["enabled_events"] = [*endpoint.events, *endpoint.missing]
        if not endpoint.enabled:
            params["disabled"] = False
        if not params:
            return endpoint
        try:
            updated = self._client.v1.webhook_endpoints.update(endpoint.id, params=params)
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        return Endpoint.of(updated.to_dict())

    def delete(self, endpoint_id: str) -> None:
        try:
            self._client.v1.webhook_endpoints.delete(endpoint_id)
        except stripe.StripeError as exc:
            raise translate(exc) from exc
