"""Stripe API stand-in: invoices, customers, events and webhook endpoints with Stripe's auth,
restricted-key permissions, errors, idempotency and limits."""

from __future__ import annotations

import ipaddress
import json
import operator
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, get_args
from urllib.parse import urlsplit

import flask
import requests
import stripe
from stripe.params import WebhookEndpointCreateParams

from standins import builders
from standins.base import (
    UNRECOGNIZED,
    IdempotencyKeys,
    Reply,
    Routes,
    SlidingLimit,
    StandinServer,
    bearer_token,
    json_body,
    mask_secret,
)
from standins.signing_secrets import new_endpoint_secret

STRIPE_TEST_KEY = "sk_test_standin0000"
STRIPE_LIVE_KEY = "sk_live_standin0000"
STRIPE_API_VERSION = "2026-10-28.endive"
# The account the stand-in's keys belong to, as Stripe names it in a permission error.
PLATFORM_ACCOUNT = "acct_1StandIn"
DEFAULT_ENDPOINT_RATE = 25
DEFAULT_GLOBAL_RATE_TEST = 25
DEFAULT_GLOBAL_RATE_LIVE = 100

_KEY_RE = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9]{4,}$")
_RATE_WINDOW_S = 1.0
_KINDS = ("customer", "subscription", "invoice", "event", "payment_intent", "webhook_endpoint")
# An invoice's subscription (basil and later): expandable like `customer`.
SUBSCRIPTION_PATH = "parent.subscription_details.subscription"
# The PaymentIntent of each of an invoice's payments (InvoicePayment objects, in `payments`).
PAYMENT_INTENT_PATH = "payments.data.payment.payment_intent"
# The paths `expand[]` may name in each kind of object; the last part of a path names the kind of
# object it holds, or an includable field. None: the endpoint takes no `expand` at all.
_EXPANDABLE: dict[str, Collection[str] | None] = {
    "invoice": ("customer", SUBSCRIPTION_PATH, "payments", PAYMENT_INTENT_PATH),
    "customer": (),
    "event": None,
    "webhook_endpoint": (),
}
# Stripe refuses a path of more parts than this, a list's `data` counted, before anything else.
MAX_EXPAND_DEPTH = 4
# Parameters every list takes, besides the fields it filters on (webhook endpoints take no
# `created`).
_PAGING = ("created", "limit", "starting_after")
_ENDPOINT_PAGING = ("limit", "starting_after")
# The values a list filter accepts, where Stripe checks them.
_CHOICES = {"status": ("draft", "open", "paid", "uncollectible", "void")}
_CREATED_FILTERS: dict[str, Callable[[int, int], bool]] = {
    "": operator.eq,
    "[gte]": operator.ge,
    "[gt]": operator.gt,
    "[lte]": operator.le,
    "[lt]": operator.lt,
}
_NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)
_RATE_LIMIT_MESSAGE = (
    "Request rate limit exceeded. You can learn more about rate limits here "
    "https://stripe.com/docs/rate-limits."
)
# The error of a bare status (an injected fault, a stand-in bug, a rate limit): message, type, code.
_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    401: ("Invalid API Key provided", "invalid_request_error", None),
    402: ("Your card was declined.", "card_error", "card_declined"),
    409: (
        "This object cannot be accessed right now because another API request or Stripe "
        "process is currently accessing it.",
        "invalid_request_error",
        "lock_timeout",
    ),
    429: (_RATE_LIMIT_MESSAGE, "invalid_request_error", "rate_limit"),
}
_METADATA_MAX_KEYS, _METADATA_MAX_KEY_LEN, _METADATA_MAX_VALUE_LEN = 50, 40, 500
# A restricted key holds permissions per resource (`rak_invoice_read`, `rak_webhook_write`, ...):
# a GET needs the resource's read permission, anything else its write one, which includes read.
_PERMISSION_RESOURCES = {
    "invoices": "invoice",
    "customers": "customer",
    "events": "event",
    "webhook_endpoints": "webhook",
}
# The event types and API versions a webhook endpoint accepts: those of the OpenAPI spec the SDK
# is generated from (`*` is every event).
_ENDPOINT_CREATE = WebhookEndpointCreateParams.__annotations__
ENDPOINT_EVENTS = frozenset(get_args(get_args(_ENDPOINT_CREATE["enabled_events"])[0]))
ENDPOINT_API_VERSIONS = frozenset(get_args(get_args(_ENDPOINT_CREATE["api_version"])[0]))
# Stripe's limit on an account's webhook endpoints, in each mode.
MAX_WEBHOOK_ENDPOINTS = 16
_ENDPOINT_FIELDS = ("url", "enabled_events", "description", "metadata")
_NOT_PUBLIC_MESSAGE = (
    "Invalid URL: URL must be publicly accessible. Consider using a tool like the Stripe CLI to "
    "test webhooks locally: https://github.com/stripe/stripe-cli"
)

Params = dict[str, list[str]]


class StripeApiError(Exception):
    """A Stripe error response, raised inside handlers and turned into the Stripe envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error: dict[str, Any] = {"message": message, "type": type_}
        if code is not None:
            self.error["code"] = code
            self.error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param is not None:
            self.error["param"] = param
        self.headers = dict(headers or {})

    def response(self) -> Reply:
        return {"error": dict(self.error)}, self.status, dict(self.headers)


def _status_error(status: int, headers: Mapping[str, str] | None = None) -> StripeApiError:
    if status >= 500:
        return StripeApiError(status, "An unknown error occurred", type_="api_error")
    message, type_, code = _STATUS_ERRORS.get(
        status, ("The request could not be processed.", "invalid_request_error", None)
    )
    return StripeApiError(status, message, type_=type_, code=code, headers=headers)


def _missing(kind: str, object_id: str, param: str = "id") -> StripeApiError:
    name = kind.replace("_", " ")
    return StripeApiError(
        404, f"No such {name}: '{object_id}'", code="resource_missing", param=param
    )


def _parameter_missing(param: str) -> StripeApiError:
    return StripeApiError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def _params() -> Params:
    """The request's query and form parameters, as Stripe reads them."""
    params = flask.request.args.to_dict(flat=False)
    params.update(flask.request.form.to_dict(flat=False))
    return params


def _stamp(response: flask.Response) -> flask.Response:
    """Headers every Stripe answer carries, errors and injected faults included."""
    response.headers["Request-Id"] = f"req_{secrets.token_hex(7)}"
    response.headers["Stripe-Version"] = flask.request.headers.get(
        "Stripe-Version", STRIPE_API_VERSION
    )
    return response


def _single(params: Params, key: str) -> str | None:
    values = params.get(key)
    return values[-1] if values else None


def _expansions(
    params: Params, taken: Iterable[str], expandable: Collection[str] | None
) -> set[str]:
    """Refuse a parameter the endpoint does not take (by its name before any `[`); the paths
    `expand[]` names, each one the endpoint can expand."""
    taken = {*taken, "expand"} if expandable is not None else set(taken)
    for key in params:
        if key.split("[", 1)[0] not in taken:
            raise StripeApiError(400, f"Received unknown parameter: {key}", param=key)
    expand = []
    for key, values in params.items():
        if key.split("[", 1)[0] == "expand":
            # Stripe decodes expand only as an array: expand[]=x or expand[0]=x.
            if not re.fullmatch(r"expand\[\d*\]", key):
                raise StripeApiError(400, "Invalid array", param=key)
            expand.extend(values)
    for path in expand:
        if len(path.split(".")) > MAX_EXPAND_DEPTH:
            raise StripeApiError(
                400,
                f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property. "
                f"Property: {path}",
                code="property_expansion_max_depth",
            )
        if path not in (expandable or ()):
            raise StripeApiError(400, f"This property cannot be expanded ({path}).", param="expand")
    return set(expand)


def _int_param(params: Params, key: str) -> int | None:
    value = _single(params, key)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise StripeApiError(400, f"Invalid integer: {value}", param=key) from None


def _created_filter(params: Params) -> Callable[[Mapping[str, Any]], bool]:
    """`created`, `created[gte]`, ... as one test on an object's `created`."""
    bounds = [
        (compare, bound)
        for suffix, compare in _CREATED_FILTERS.items()
        if (bound := _int_param(params, f"created{suffix}")) is not None
    ]
    return lambda obj: all(compare(obj.get("created", 0), bound) for compare, bound in bounds)


def _boolean(params: Params, key: str) -> bool | None:
    value = _single(params, key)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise StripeApiError(400, f"Invalid boolean: {value}", param=key)
    return value == "true"


def _metadata(params: Params, current: Mapping[str, str]) -> dict[str, str]:
    """`current` with `metadata[key]=value` set (an empty value unsets the key) and `metadata=`
    clearing it all, as Stripe applies them."""
    metadata = dict(current)
    for key, values in params.items():
        value = values[-1]
        if key == "metadata":
            if value:
                raise StripeApiError(400, "Invalid object", param="metadata")
            metadata.clear()
        elif key.startswith("metadata["):
            name = key[len("metadata[") : -1]
            if len(name) > _METADATA_MAX_KEY_LEN or len(value) > _METADATA_MAX_VALUE_LEN:
                raise StripeApiError(
                    400,
                    f"Metadata keys can be at most {_METADATA_MAX_KEY_LEN} characters and "
                    f"values at most {_METADATA_MAX_VALUE_LEN} characters.",
                    param=key,
                )
            if value:
                metadata[name] = value
            else:
                metadata.pop(name, None)
    if len(metadata) > _METADATA_MAX_KEYS:
        raise StripeApiError(
            400, f"Metadata can have at most {_METADATA_MAX_KEYS} keys.", param="metadata"
        )
    return metadata


def _endpoint_url(value: str, mode: str) -> str:
    """A URL Stripe can deliver to: http(s) with a host that is not this machine or a private
    network, and https in live mode."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise StripeApiError(
            400,
            f"Invalid URL: {value}. An explicit scheme (such as https) and a host are required.",
            code="url_invalid",
            param="url",
        )
    try:
        private = not ipaddress.ip_address(host).is_global
    except ValueError:
        private = host == "localhost" or host.endswith(".localhost")
    if private:
        raise StripeApiError(400, _NOT_PUBLIC_MESSAGE, code="url_invalid", param="url")
    if mode == "live" and parts.scheme != "https":
        raise StripeApiError(
            400,
            "Invalid URL: webhook endpoints in live mode must use HTTPS.",
            code="url_invalid",
            param="url",
        )
    return value


def _enabled_events(params: Params) -> list[str] | None:
    """The `enabled_events` array (`enabled_events[]=...` or `enabled_events[0]=...`), each a
    known event type; None when not sent."""
    if "enabled_events" in params:
        raise StripeApiError(400, "Invalid array", param="enabled_events")
    indexed = []
    for key, values in params.items():
        match = re.fullmatch(r"enabled_events\[(\d*)\]", key)
        if match is None:
            if key.startswith("enabled_events["):
                raise StripeApiError(400, "Invalid array", param="enabled_events")
            continue
        position = int(match.group(1)) if match.group(1) else -1
        indexed.extend((position, order, value) for order, value in enumerate(values))
    if not indexed:
        return None
    events = [value for _, _, value in sorted(indexed)]
    for index, event in enumerate(events):
        if event not in ENDPOINT_EVENTS:
            raise StripeApiError(
                400,
                f"Invalid enabled_events[{index}]: must be one of the event types of API "
                f"version {STRIPE_API_VERSION}, or *; got {event!r}",
                param=f"enabled_events[{index}]",
            )
    return events


def signed(
    event: Mapping[str, Any], secret: str, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Stripe sends an endpoint: `Stripe-Signature: t=...,v1=...` over the
    exact body (signed now unless `timestamp` says otherwise; valid for five minutes)."""
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(
        body, secret, timestamp=timestamp or int(time.time())
    )
    return body.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


def _own_payment_intents(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    """The PaymentIntents written inside `invoice`'s payments, each left there as its id."""
    intents = []
    for payment in (invoice.get("payments") or {}).get("data") or []:
        details = payment.get("payment") or {}
        intent = details.get("payment_intent")
        if isinstance(intent, dict):
            intents.append(intent)
            details["payment_intent"] = intent.get("id")
    return intents


def _key_mode(key: str) -> str:
    match = _KEY_RE.fullmatch(key)
    if match is None:
        raise ValueError(f"not a Stripe secret or restricted key: {mask_secret(key)}")
    return match.group(2)


class StripeStandin(StandinServer):
    """Stand-in for the Stripe v1 invoice, customer, event and webhook endpoint endpoints used by
    the product and deploy.sh."""

    vendor = "Stripe"
    # `accounts`: connected accounts (Stripe Connect), each `{"id": "acct_...", "customers": [...],
    # "invoices": [...], ...}`: its objects are seen only with `Stripe-Account: acct_...`.
    # `webhook`: `{"url": ..., "secret": "whsec_..."}`, the endpoint events are sent to, signed.
    # `webhook_endpoints`: endpoints that exist already (builders.webhook_endpoint), secretless.
    scenario_keys = frozenset({*(f"{kind}s" for kind in _KINDS), "accounts", "webhook"})

    def __init__(
        self,
        port: int = 0,
        *,
        api_keys: Iterable[str] = (STRIPE_TEST_KEY,),
        restricted_keys: Mapping[str, Iterable[str]] | None = None,
        endpoint_rate: int | None = DEFAULT_ENDPOINT_RATE,
        global_rate_test: int | None = DEFAULT_GLOBAL_RATE_TEST,
        global_rate_live: int | None = DEFAULT_GLOBAL_RATE_LIVE,
        **common: Any,
    ) -> None:
        """`api_keys` may do everything; each of `restricted_keys` (`rk_...`) only what its
        permissions (`rak_webhook_read`, ...) allow."""
        restricted = dict(restricted_keys or {})
        self.api_keys = {key: _key_mode(key) for key in (*api_keys, *restricted)}
        self.permissions = {key: frozenset(held) for key, held in restricted.items()}
        self.endpoint_rate = endpoint_rate
        self.global_rates = {"test": global_rate_test, "live": global_rate_live}
        super().__init__(port, **common)

    @classmethod
    def _routes(cls, routes: Routes) -> None:
        routes.route(
            "GET", "/v1/invoices", lambda server: server._list("invoice", "status", "customer")
        )
        routes.route("GET", "/v1/invoices/<id>", lambda server, id: server._retrieve("invoice", id))
        routes.route("POST", "/v1/invoices/<id>", cls._update_invoice)
        routes.route(
            "GET", "/v1/customers/<id>", lambda server, id: server._retrieve("customer", id)
        )
        routes.route("GET", "/v1/events", lambda server: server._list("event", "type"))
        routes.route(
            "GET",
            "/v1/webhook_endpoints",
            lambda server: server._list("webhook_endpoint", paging=_ENDPOINT_PAGING),
        )
        routes.route("POST", "/v1/webhook_endpoints", cls._create_endpoint)
        routes.route(
            "GET",
            "/v1/webhook_endpoints/<id>",
            lambda server, id: server._retrieve("webhook_endpoint", id),
        )
        routes.route("POST", "/v1/webhook_endpoints/<id>", cls._update_endpoint)
        routes.route("DELETE", "/v1/webhook_endpoints/<id>", cls._delete_endpoint)
        routes.before_request(cls._authenticate)
        routes.api.after_request(_stamp)
        routes.api.register_error_handler(StripeApiError, StripeApiError.response)
        for kind in ("invoice", "customer", "payment_intent"):
            routes.control_route(
                "POST",
                f"/{kind}s/<id>",
                lambda server, id, kind=kind: server._patch(kind, id, json_body()),
            )
        routes.control_route(
            "POST", "/invoices/<id>/pay", lambda server, id: server.pay_invoice(id)
        )

    # Scenario and Python controls ----------------------------------------------------------

    def _reset_state(self) -> None:
        self._stores: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in _KINDS}
        # Object id -> the connected account it belongs to; the platform's own are absent.
        self._owners: dict[str, str] = {}
        self._accounts: set[str] = set()
        self._webhook: dict[str, str] | None = None
        self._keys = IdempotencyKeys()
        self._endpoint_limit = SlidingLimit(self.endpoint_rate or 0, _RATE_WINDOW_S)
        self._global_limits = {
            mode: SlidingLimit(rate or 0, _RATE_WINDOW_S)
            for mode, rate in self.global_rates.items()
        }
        self._rate_limited: Counter[str] = Counter()

    def _load(self, scenario: Mapping[str, Any]) -> None:
        """Upsert `{"customers": [...], "subscriptions": [...], "invoices": [...],
        "payment_intents": [...], "events": [...], "webhook_endpoints": [...]}` (Stripe-shaped
        dicts) by id, the platform's or, under `accounts`, a connected account's. A PaymentIntent
        inside an invoice's payments (as builders.invoice makes them) is kept as an object of its
        own."""
        if "webhook" in scenario:
            self._webhook = {
                "url": scenario["webhook"]["url"],
                "secret": scenario["webhook"]["secret"],
            }
        for account in scenario.get("accounts", []):
            if not str(account.get("id", "")).startswith("acct_"):
                raise ValueError(f"a connected account needs an acct_ id: {account!r:.80}")
            self._accounts.add(account["id"])
            self._owners.update((object_id, account["id"]) for object_id in self._store(account))
        self._store(scenario)

    def _store(self, scenario: Mapping[str, Any]) -> list[str]:
        """Store the objects of `scenario`; returns their ids."""
        objects = {
            kind: [builders.copy_json(o) for o in scenario.get(f"{kind}s", [])] for kind in _KINDS
        }
        for invoice in objects["invoice"]:
            objects["payment_intent"] += _own_payment_intents(invoice)
        for kind, found in objects.items():
            for obj in found:
                if obj.get("object") != kind or not obj.get("id"):
                    raise ValueError(f"not a Stripe {kind} object with an id: {obj!r:.80}")
                self._stores[kind][obj["id"]] = obj
        return [obj["id"] for found in objects.values() for obj in found]

    def pay_invoice(self, invoice_id: str) -> dict[str, Any]:
        """The customer pays a stored invoice now. As Stripe does, `invoice.paid` is stored and,
        when a webhook endpoint is set, sent to it signed (once: the stand-in does not retry).
        Returns the event and the endpoint's status (None without an endpoint)."""
        with self._lock:
            invoice = self._stores["invoice"][invoice_id]
            invoice.update(builders.paid(invoice))
            for payment in (invoice.get("payments") or {}).get("data", [])[:1]:
                intent = self._stores["payment_intent"].get(payment["payment"]["payment_intent"])
                if intent is not None:
                    intent.update(builders.settled(intent))
            event = builders.invoice_paid_event(invoice)
            self._stores["event"][event["id"]] = builders.copy_json(event)
            endpoint = self._webhook
        status = None
        if endpoint is not None:
            body, headers = signed(event, endpoint["secret"])
            status = requests.post(
                endpoint["url"], data=body, headers=headers, timeout=30
            ).status_code
        return {"event": event, "delivered": status}

    def update_invoice(self, invoice_id: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return self._patch("invoice", invoice_id, patch)

    def update_customer(self, customer_id: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return self._patch("customer", customer_id, patch)

    def update_payment_intent(self, intent_id: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return self._patch("payment_intent", intent_id, patch)

    def _patch(self, kind: str, object_id: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Shallow-merge `patch` into a stored object (raises KeyError if unknown); new
        PaymentIntents in an invoice's payments are kept as their own, as `_load` keeps them."""
        with self._lock:
            changes = builders.copy_json(dict(patch))
            owner = self._owners.get(object_id)
            for intent in _own_payment_intents(changes) if kind == "invoice" else []:
                self._stores["payment_intent"][intent["id"]] = intent
                if owner is not None:
                    self._owners[intent["id"]] = owner
            self._stores[kind][object_id].update(changes)
            return builders.copy_json(self._stores[kind][object_id])

    def _extra_stats(self) -> dict[str, Any]:
        return {
            "rate_limited": sum(self._rate_limited.values()),
            "rate_limited_by_reason": dict(self._rate_limited),
            "idempotent_replays": self._keys.replays,
        }

    # Request plumbing ----------------------------------------------------------------------

    def journal_body(self) -> Any:
        # The form, parsed by the handler already: the raw body has been read by then.
        return flask.request.form.to_dict(flat=False) or None

    def error_response(self, status: int) -> Reply:
        return _status_error(status).response()

    def unrecognized(self) -> Reply:
        method, path = flask.request.method, flask.request.path
        return StripeApiError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
        ).response()

    def _authenticate(self) -> None:
        """Stripe checks the key, then the rate limits, before it looks at the route."""
        token = bearer_token()
        if not token:
            raise StripeApiError(401, _NO_KEY_MESSAGE)
        mode = self.api_keys.get(token)
        if mode is None:
            raise StripeApiError(401, f"Invalid API Key provided: {mask_secret(token)}")
        flask.g.mode = mode
        self._check_permission(token)
        account = flask.request.headers.get("Stripe-Account")
        if account is not None and account not in self._accounts:
            raise StripeApiError(
                403,
                f"The provided key '{mask_secret(token)}' does not have access to account "
                f"'{account}' (or that account does not exist). Application access may have been "
                "revoked.",
            )
        flask.g.account = account
        with self._lock:
            self._check_rate(mode, flask.request.endpoint or UNRECOGNIZED)

    def _check_permission(self, key: str) -> None:
        """A restricted key may call an endpoint only with the permission its resource needs."""
        held = self.permissions.get(key)
        endpoint = flask.request.endpoint
        if held is None or endpoint is None:
            return
        method, path = endpoint.split(" ", 1)
        resource = _PERMISSION_RESOURCES[path.split("/")[2]]
        needed = f"rak_{resource}_{'read' if method == 'GET' else 'write'}"
        if needed in held or f"rak_{resource}_write" in held:
            return
        raise StripeApiError(
            403,
            f"The provided key '{mask_secret(key)}' does not have the required permissions for "
            f"this endpoint on account '{PLATFORM_ACCOUNT}'. Having the '{needed}' permission "
            "would allow this request to continue.",
        )

    def _check_rate(self, mode: str, endpoint: str) -> None:
        """A request counts against both limits only when both have room for it."""
        now = self._clock.monotonic()
        buckets = (
            ("endpoint-rate", self._endpoint_limit, (mode, endpoint)),
            ("global-rate", self._global_limits[mode], mode),
        )
        for reason, limit, key in buckets:
            if limit.retry_after([key], now) is not None:
                self._rate_limited[reason] += 1
                raise _status_error(429, {"Stripe-Rate-Limited-Reason": reason})
        for _, limit, key in buckets:
            limit.add([key], now)

    # Objects -------------------------------------------------------------------------------

    def _visible(self, obj: Mapping[str, Any], mode: str) -> bool:
        # Test and live data are separate: a key never sees the other mode's objects. A connected
        # account's objects are seen only on its behalf (Stripe-Account), and only they are then.
        same_mode = bool(obj.get("livemode")) == (mode == "live")
        return same_mode and self._owners.get(obj["id"]) == flask.g.get("account")

    def _get(self, kind: str, object_id: str, mode: str) -> dict[str, Any]:
        obj = self._stores[kind].get(object_id)
        if obj is None or not self._visible(obj, mode):
            raise _missing(kind, object_id)
        return obj

    def _render(
        self, kind: str, obj: Mapping[str, Any], mode: str, expand: Iterable[str] = ()
    ) -> dict[str, Any]:
        """The object as the API returns it: a deleted customer as its stub, an includable field
        only when a path to expand starts with it, and each path to expand holding the object it
        names (as in Stripe, an id it cannot resolve stays an id)."""
        if kind == "customer" and obj.get("deleted"):
            return {"id": obj["id"], "object": "customer", "deleted": True}
        out = builders.copy_json(dict(obj))
        # A list's paths start with its `data`: each object in it is rendered with the rest.
        paths = [path.removeprefix("data.").split(".") for path in expand]
        for field in builders.INCLUDABLE.get(kind, ()):
            if not any(parts[0] == field for parts in paths):
                out.pop(field, None)
        for parts in paths:
            self._expand(out, parts, mode)
        return out

    def _expand(self, holder: Any, parts: list[str], mode: str) -> None:
        """Follow `parts` down from `holder` (into every object of a list), and put in place of
        the id the last part names the object of that kind."""
        if isinstance(holder, list):
            for item in holder:
                self._expand(item, parts, mode)
            return
        if not isinstance(holder, dict):
            return
        name, *rest = parts
        if rest:
            self._expand(holder.get(name), rest, mode)
            return
        linked = self._stores[name].get(str(holder.get(name))) if name in self._stores else None
        if linked is not None and self._visible(linked, mode):
            holder[name] = self._render(name, linked, mode)

    # Endpoints -----------------------------------------------------------------------------

    def _retrieve(self, kind: str, id: str) -> dict[str, Any]:
        mode, expand = flask.g.mode, _expansions(_params(), (), _EXPANDABLE[kind])
        return self._render(kind, self._get(kind, id, mode), mode, expand)

    def _list(self, kind: str, *filters: str, paging: Iterable[str] = _PAGING) -> dict[str, Any]:
        """One page of the mode's objects, newest first, from after `starting_after`: those
        within the `created` bounds whose `filters` fields equal the parameters of that name."""
        mode, params, expandable = flask.g.mode, _params(), _EXPANDABLE[kind]
        listed = None if expandable is None else [f"data.{path}" for path in expandable]
        expand = _expansions(params, (*filters, *paging), listed)
        limit = _int_param(params, "limit")
        limit = 10 if limit is None else limit
        if not 1 <= limit <= 100:
            raise StripeApiError(
                400, "This value must be between 1 and 100 (inclusive).", param="limit"
            )
        equal = {name: _single(params, name) for name in filters}
        for name, choices in _CHOICES.items():
            if equal.get(name) not in (None, *choices):
                raise StripeApiError(
                    400, f"Invalid {name}: must be one of {', '.join(choices)}", param=name
                )
        created = _created_filter(params)
        found = [
            obj
            for obj in self._stores[kind].values()
            if self._visible(obj, mode)
            and all(value is None or obj.get(name) == value for name, value in equal.items())
            and created(obj)
        ]
        found.sort(key=lambda obj: (obj.get("created", 0), obj["id"]), reverse=True)
        starting_after = _single(params, "starting_after")
        if starting_after is not None:
            ids = [obj["id"] for obj in found]
            if starting_after not in ids:
                raise _missing(kind, starting_after, param="starting_after")
            found = found[ids.index(starting_after) + 1 :]
        return {
            "object": "list",
            "data": [self._render(kind, obj, mode, expand) for obj in found[:limit]],
            "has_more": len(found) > limit,
            "url": flask.request.path,
        }

    def _idempotent(self, run: Callable[[str, Params], dict[str, Any]]) -> Reply:
        """A POST's answer, `run(mode, params)`, replayed for a repeated Idempotency-Key with the
        same path and parameters."""
        mode, params = flask.g.mode, _params()
        key = flask.request.headers.get("Idempotency-Key")
        fingerprint = (flask.request.path, tuple(sorted((k, tuple(v)) for k, v in params.items())))
        body, replayed = self._keys.answer(
            (mode, key) if key else None,
            fingerprint,
            lambda: run(mode, params),
            lambda: StripeApiError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                type_="idempotency_error",
            ),
        )
        headers = {"Idempotency-Key": key} if key else {}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return body, 200, headers

    def _update_invoice(self, id: str) -> Reply:
        return self._idempotent(lambda mode, params: self._apply_update(id, mode, params))

    def _apply_update(self, invoice_id: str, mode: str, params: Params) -> dict[str, Any]:
        expand = _expansions(params, ("metadata", "description"), _EXPANDABLE["invoice"])
        invoice = self._get("invoice", invoice_id, mode)
        invoice["metadata"] = _metadata(params, invoice.get("metadata") or {})
        description = _single(params, "description")
        if description is not None:
            invoice["description"] = description or None
        return self._render("invoice", invoice, mode, expand)

    # Webhook endpoints -----------------------------------------------------------------------

    def _create_endpoint(self) -> Reply:
        return self._idempotent(self._new_endpoint)

    def _new_endpoint(self, mode: str, params: Params) -> dict[str, Any]:
        """The endpoint as created: the only answer that carries its signing `secret`."""
        expand = _expansions(
            params, (*_ENDPOINT_FIELDS, "api_version", "connect"), _EXPANDABLE["webhook_endpoint"]
        )
        url = _single(params, "url")
        if url is None:
            raise _parameter_missing("url")
        url = _endpoint_url(url, mode)
        events = _enabled_events(params)
        if events is None:
            raise _parameter_missing("enabled_events")
        api_version = _single(params, "api_version")
        if api_version is not None and api_version not in ENDPOINT_API_VERSIONS:
            raise StripeApiError(400, f"Invalid api_version: {api_version}", param="api_version")
        _boolean(params, "connect")
        store = self._stores["webhook_endpoint"]
        if sum(self._visible(endpoint, mode) for endpoint in store.values()) >= (
            MAX_WEBHOOK_ENDPOINTS
        ):
            raise StripeApiError(
                400,
                f"You have reached the maximum of {MAX_WEBHOOK_ENDPOINTS} {mode} webhook "
                "endpoints.",
            )
        endpoint = builders.webhook_endpoint(
            url,
            events,
            api_version=api_version,
            description=_single(params, "description") or None,
            metadata=_metadata(params, {}),
            livemode=mode == "live",
        )
        store[endpoint["id"]] = endpoint
        return {
            **self._render("webhook_endpoint", endpoint, mode, expand),
            "secret": new_endpoint_secret(),
        }

    def _update_endpoint(self, id: str) -> Reply:
        return self._idempotent(lambda mode, params: self._change_endpoint(id, mode, params))

    def _change_endpoint(self, endpoint_id: str, mode: str, params: Params) -> dict[str, Any]:
        """Stripe lets the URL, the events, the description, the metadata and `disabled` change;
        an endpoint's API version and `connect` are fixed at its creation."""
        expand = _expansions(
            params, (*_ENDPOINT_FIELDS, "disabled"), _EXPANDABLE["webhook_endpoint"]
        )
        endpoint = self._get("webhook_endpoint", endpoint_id, mode)
        url = _single(params, "url")
        events = _enabled_events(params)
        disabled = _boolean(params, "disabled")
        changed = {
            "url": None if url is None else _endpoint_url(url, mode),
            "enabled_events": events,
            "status": None if disabled is None else ("disabled" if disabled else "enabled"),
        }
        endpoint.update((field, value) for field, value in changed.items() if value is not None)
        description = _single(params, "description")
        if description is not None:
            endpoint["description"] = description or None
        endpoint["metadata"] = _metadata(params, endpoint["metadata"])
        return self._render("webhook_endpoint", endpoint, mode, expand)

    def _delete_endpoint(self, id: str) -> dict[str, Any]:
        _expansions(_params(), (), None)
        self._get("webhook_endpoint", id, flask.g.mode)
        del self._stores["webhook_endpoint"][id]
        return {"id": id, "object": "webhook_endpoint", "deleted": True}
