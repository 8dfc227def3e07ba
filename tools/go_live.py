"""deploy.sh's Stripe and Linq steps: the keys checked before anything is created, then the Stripe
webhook endpoint and the Linq webhook subscription of the deployed intakes, each found by its URL
or created, its signing secret stored straight into Secret Manager as a new version and never
shown. A run that finds both changes nothing and rotates nothing.

    python -m tools.go_live check [--dry-run]
    python -m tools.go_live connect INGEST_URL LINQ_URL --stripe-secret NAME:VERSION \\
        --linq-secret NAME:VERSION [--dry-run]
    python -m tools.go_live undo ENDPOINT_ID

The keys come from STRIPE_API_KEY and LINQ_API_KEY (a value or an sm:// reference), never from
the command line; NAME:VERSION are the signing secrets' names and the versions deploy.sh pins,
which hold the secrets of an endpoint or subscription that exists. `connect` prints, on stdout,
shell assignments of what is live for deploy.sh; everything said to people goes to stderr. An
endpoint `connect` created is deleted again when a later step fails: by `connect` itself (the
Linq steps), or by `undo` (deploy.sh's redeploy). `--dry-run` prints the calls, keys masked, and
makes none. Exit status: 0 done, 1 Stripe, Linq or Secret Manager refused, 2 a wrong variable or
argument, or no Google credentials.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import requests
from google.api_core.exceptions import GoogleAPICallError
from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError
from google.cloud import secretmanager

from shared.adapters.secrets import PREFIX, SecretResolver
from shared.core.errors import ConfigError, RecoveryError
from shared.core.signing_secret import linq_secret_problem, stripe_secret_problem
from shared.workflow.settings import (
    GOOGLE_CLOUD_PROJECT,
    LINQ_API_BASE,
    LINQ_API_KEY,
    STRIPE_API_BASE,
    STRIPE_API_KEY,
    STRIPE_CONNECT_ACCOUNTS,
    Reader,
    Settings,
    stripe_key_mode,
)
from tools.linq_webhook import WEBHOOK_VERSION, Subscriptions, register, subscription_body
from tools.linq_webhook import target_url as linq_target
from tools.secret_store import Refused, ensure_secret, secret_manager, store
from tools.stripe_webhook import API_VERSION, Endpoint, Endpoints, endpoint_params

Say = Callable[[str], None]
_STRIPE_KEY_PREFIX = re.compile(r"(?:sk|rk)_(?:test|live)_")
# A key shorter than this shows no characters of its own when masked.
_MASK_MIN = 16


def serves_connected_accounts(env: Reader) -> bool:
    """Whether STRIPE_CONNECT_ACCOUNTS names any: the endpoint is then a Connect endpoint."""
    accounts = STRIPE_CONNECT_ACCOUNTS.read(env)
    return accounts.every or bool(accounts.ids)


@dataclass(frozen=True)
class GoLiveSettings(Settings):
    """What the steps need: both keys, both APIs, the project that keeps the secrets, and
    whether connected accounts are served (the endpoint is then a Connect endpoint)."""

    stripe_api_key: str
    linq_api_key: str
    stripe_api_base: str
    linq_api_base: str
    project: str
    connect: bool

    @classmethod
    def read(cls, env: Reader) -> Self:
        return cls(
            stripe_api_key=STRIPE_API_KEY.read(env),
            linq_api_key=LINQ_API_KEY.read(env),
            stripe_api_base=STRIPE_API_BASE.read(env),
            linq_api_base=LINQ_API_BASE.read(env),
            project=GOOGLE_CLOUD_PROJECT.read(env),
            connect=serves_connected_accounts(env),
        )


@dataclass(frozen=True)
class Pinned:
    """A signing secret's name and the version deploy.sh pins (NAME:VERSION)."""

    name: str
    version: str

    @classmethod
    def parse(cls, text: str) -> Pinned:
        name, _, version = text.rpartition(":")
        if not name or not version:
            raise argparse.ArgumentTypeError(f"give NAME:VERSION, not {text!r}")
        return cls(name, version)


@dataclass(frozen=True)
class Live:
    """What `connect` leaves live, and what it made (a new version: None when nothing was)."""

    endpoint: Endpoint
    created: bool
    webhook_version: str | None
    subscription: str
    linq_version: str | None

    def assignments(self) -> str:
        values = {
            "STRIPE_ENDPOINT": self.endpoint.id,
            "STRIPE_ENDPOINT_CREATED": self.endpoint.id if self.created else "",
            "STRIPE_MODE": "live" if self.endpoint.livemode else "test",
            "STRIPE_EVENTS": ", ".join(self.endpoint.events),
            "WEBHOOK_NEW_VERSION": _number(self.webhook_version),
            "LINQ_SUBSCRIPTION": self.subscription,
            "LINQ_HOOK_NEW_VERSION": _number(self.linq_version),
        }
        return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())


def _number(version: str | None) -> str:
    """`projects/P/secrets/S/versions/3` as `3`."""
    return "" if version is None else version.rsplit("/", 1)[-1]


class Steps:
    """The steps, with the clients they share; `say` tells people what happened."""

    def __init__(
        self,
        settings: GoLiveSettings,
        secrets: Callable[[], secretmanager.SecretManagerServiceClient],
        say: Say,
    ) -> None:
        self.settings, self._secrets, self.say = settings, secrets, say
        self.endpoints = Endpoints(settings.stripe_api_key, settings.stripe_api_base)
        self.linq = Subscriptions(settings.linq_api_key, settings.linq_api_base)

    def check(self) -> None:
        """Both keys taken, the Stripe one allowed to manage webhook endpoints; and Google
        credentials for Secret Manager. Nothing is made."""
        self._secrets()
        try:
            self.endpoints.check()
        except RecoveryError as exc:
            raise Refused(f"STRIPE_API_KEY: {exc.reason}; nothing was created") from exc
        try:
            self.linq.listed()
        except RecoveryError as exc:
            raise Refused(f"LINQ_API_KEY: {exc.reason}; nothing was created") from exc
        mode = stripe_key_mode(self.settings.stripe_api_key)
        self.say(f"Stripe takes the key ({mode} mode), which may manage webhook endpoints")
        self.say("Linq takes the token")

    def connect(self, ingest_url: str, linq_url: str, stripe: Pinned, linq: Pinned) -> Live:
        """The Stripe endpoint, then the Linq subscription; a failure in the Linq steps deletes
        the endpoint this run created, so that the next run starts clean."""
        linq_url = linq_target(linq_url)
        client = self._secrets()
        endpoint, webhook_version = self._endpoint(ingest_url, stripe, client)
        try:
            registered = register(linq_url, self.linq, client, self.settings.project, linq.name)
            self.say(registered.said)
            if registered.version is None:
                self._require_stored(linq, linq_secret_problem, "Linq subscription", linq_url)
        except BaseException:
            if webhook_version is not None:
                self.withdraw(endpoint)
            raise
        return Live(
            endpoint,
            webhook_version is not None,
            webhook_version,
            str(registered.subscription["id"]),
            registered.version,
        )

    def _endpoint(
        self, url: str, pinned: Pinned, client: secretmanager.SecretManagerServiceClient
    ) -> tuple[Endpoint, str | None]:
        """The endpoint of `url`, and the version its new secret went to (None: it existed)."""
        connect = self.settings.connect
        found = self.endpoints.find(url)
        if len(found) > 1:
            raise Refused(
                f"{len(found)} Stripe webhook endpoints send to {url} "
                f"({', '.join(e.id for e in found)}); the ingest function verifies one signing "
                "secret: delete all but one, then run this again"
            )
        if found:
            return self._existing(found[0], pinned, connect), None
        secret_name = ensure_secret(client, self.settings.project, pinned.name)
        endpoint, secret = self.endpoints.create(url, connect)
        try:
            version = store(
                client,
                secret_name,
                secret,
                lambda: self.endpoints.delete(endpoint.id),
                "the endpoint",
                endpoint.id,
                "Stripe",
            )
        except Refused:
            # Secret Manager refused it: `store` deleted the endpoint, or said it could not.
            self.say(missed(endpoint))
            raise
        except BaseException:
            # Anything else (an interrupt) leaves an endpoint whose secret may never be stored.
            self.withdraw(endpoint)
            raise
        kind = "Connect endpoint" if connect else "endpoint"
        said = (
            f"created Stripe {kind} {endpoint.id} for {url} ({', '.join(endpoint.events)}; "
            f"API version {endpoint.api_version})\n"
            f"signing secret stored in {version} (Stripe shows it only once; it is not printed)"
        )
        if connect:
            said += "\nStripe sends it the connected accounts' events only, not the platform's own"
        self.say(said)
        return endpoint, version

    def _existing(self, endpoint: Endpoint, pinned: Pinned, connect: bool) -> Endpoint:
        """An endpoint found by its URL: kept, with its secret, once it is known to be stored."""
        if endpoint.connect is not None and endpoint.connect != connect:
            asked = "asks" if connect else "does not ask"
            raise Refused(
                f"Stripe endpoint {endpoint.id} for {endpoint.url} was created with "
                f"connect={str(endpoint.connect).lower()}, and STRIPE_CONNECT_ACCOUNTS now "
                f"{asked} for connected accounts' events; Stripe cannot change that: delete the "
                "endpoint (Dashboard: Developers > Webhooks), then run this again"
            )
        self._require_stored(pinned, stripe_secret_problem, "Stripe endpoint", endpoint.url)
        completed = self.endpoints.complete(endpoint)
        said = f"Stripe endpoint {endpoint.id} for {endpoint.url} exists; nothing created"
        if endpoint.missing:
            said += f"; it is now sent {', '.join(endpoint.missing)} too"
        if not endpoint.enabled:
            said += "; it was disabled and is enabled again"
        if endpoint.api_version != API_VERSION:
            version = endpoint.api_version or "the account's default"
            said += (
                f"\nits events come in API version {version}, not {API_VERSION} (the version "
                "the code is written for), and Stripe cannot change that: to move, delete the "
                "endpoint and run this again"
            )
        self.say(said)
        return completed

    def _require_stored(
        self, pinned: Pinned, problem_of: Callable[[str], str | None], thing: str, url: str
    ) -> None:
        """The pinned version holds a signing secret as the vendor generates them: else the
        intake would answer 503 forever, the vendor showing the secret only at creation."""
        reference = f"{PREFIX}{self.settings.project}/{pinned.name}#{pinned.version}"
        resolver = SecretResolver(self._secrets)
        problem = problem_of(resolver.resolve(f"{pinned.name}:{pinned.version}", reference))
        if problem is not None:
            raise Refused(
                f"a {thing} for {url} exists, but {pinned.name} version {pinned.version} is not "
                f"its signing secret ({problem}), and the secret is shown only when it is "
                "created: delete it, then run this again (or add its secret as a new version)"
            )

    def withdraw(self, endpoint: Endpoint) -> None:
        """Delete an endpoint this run created, after a later step failed."""
        try:
            self.endpoints.delete(endpoint.id)
        except RecoveryError as exc:
            self.say(
                f"deleting Stripe endpoint {endpoint.id}, made by this run, failed "
                f"({exc.reason}): delete it in the Dashboard (Developers > Webhooks), then run "
                "deploy.sh again"
            )
        else:
            self.say(
                f"deleted Stripe endpoint {endpoint.id}, made by this run, so that the next run "
                "starts clean"
            )
        self.say(missed(endpoint))


def missed(endpoint: Endpoint, now: float | None = None) -> str:
    """What to do about the payments that failed while a deleted endpoint existed: Stripe
    does not send its events anywhere else."""
    age = (time.time() if now is None else now) - endpoint.created
    hours = max(1, math.ceil(age / 3600))
    return (
        "Stripe sends a deleted endpoint's events nowhere else: ./dev backfill --since "
        f"{hours}h queues any payment that failed meanwhile"
    )


# --- dry run: the calls, printed -------------------------------------------------------------


def masked(key: str) -> str:
    """A key as a dry run prints it: an sm:// reference as it is; a Stripe key as Stripe masks
    it (its prefix and last four characters); any other value as ****."""
    if key.startswith(PREFIX):
        return key
    prefix = _STRIPE_KEY_PREFIX.match(key)
    if prefix is None or len(key) < _MASK_MIN:
        return "****"
    return f"{prefix.group()}****{key[-4:]}"


def form(params: dict[str, Any]) -> Iterable[str]:
    """Stripe's form encoding, as `-d` takes it: lists as `name[]`, objects as `name[key]`."""
    for name, value in params.items():
        if isinstance(value, list):
            yield from (f"{name}[]={item}" for item in value)
        elif isinstance(value, dict):
            yield from (f"{name}[{key}]={item}" for key, item in value.items())
        elif isinstance(value, bool):
            yield f"{name}={str(value).lower()}"
        else:
            yield f"{name}={value}"


class Plan:
    """What the steps would call, one shell line each: Stripe's and Linq's as curl, Secret
    Manager's as gcloud. Nothing is called and no reference is read."""

    def __init__(self, env: Reader, out: Say) -> None:
        self._out = out
        self._stripe_key = masked(env.text(STRIPE_API_KEY) or "")
        self._linq_key = masked(env.text(LINQ_API_KEY) or "")
        self._stripe = STRIPE_API_BASE.read(env) + "/v1/webhook_endpoints"
        self._linq = LINQ_API_BASE.read(env) + "/v3/webhook-subscriptions"
        self._project = GOOGLE_CLOUD_PROJECT.read(env)
        self._connect = serves_connected_accounts(env)

    def _show(self, *argv: str) -> None:
        self._out("+ " + shlex.join(argv))

    def _stripe_call(self, *options: str, params: dict[str, Any] | None = None) -> None:
        data = [arg for item in form(params or {}) for arg in ("-d", item)]
        self._show("curl", *options, self._stripe, "-u", f"{self._stripe_key}:", *data)

    def _linq_call(self, body: dict[str, Any] | None = None) -> None:
        data = ["--json", json.dumps(body)] if body is not None else []
        self._show("curl", self._linq, "-H", f"Authorization: Bearer {self._linq_key}", *data)

    def check(self) -> None:
        self._stripe_call("-G", params={"limit": 1})
        self._stripe_call("-X", "POST")
        self._linq_call()

    def connect(self, ingest_url: str, linq_url: str, stripe: Pinned, linq: Pinned) -> None:
        """Every call of a first run: nothing found, everything created."""
        self._stripe_call("-G", params={"limit": 100})
        self._stripe_call(params=endpoint_params(ingest_url, self._connect))
        self._store(stripe)
        self._linq_call()
        self._linq_call(subscription_body(f"{linq_url}?version={WEBHOOK_VERSION}"))
        self._store(linq)

    def _store(self, pinned: Pinned) -> None:
        self._show(
            "gcloud",
            "secrets",
            "versions",
            "add",
            pinned.name,
            f"--project={self._project}",
            "--data-file=-",
        )


# --- the command ----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.go_live",
        description="deploy.sh's Stripe and Linq steps (deploy.sh runs them).",
    )
    steps = parser.add_subparsers(dest="step", required=True)
    check = steps.add_parser("check", help="the keys, before anything is created")
    check.add_argument("--dry-run", action="store_true", help="print the calls only")
    connect = steps.add_parser("connect", help="the Stripe endpoint and the Linq subscription")
    connect.add_argument("ingest_url", metavar="INGEST_URL")
    connect.add_argument("linq_url", metavar="LINQ_URL")
    for vendor in ("stripe", "linq"):
        connect.add_argument(
            f"--{vendor}-secret", type=Pinned.parse, required=True, metavar="NAME:VERSION"
        )
    connect.add_argument("--dry-run", action="store_true", help="print the calls only")
    undo = steps.add_parser("undo", help="delete an endpoint `connect` created")
    undo.add_argument("endpoint_id", metavar="ENDPOINT_ID")
    return parser


def say(text: str) -> None:
    print(text, file=sys.stderr)


def run(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    # One client, made when first needed: a wrong variable is reported before missing credentials.
    client = functools.cache(lambda: secret_manager(env))
    env = Reader(os.environ, SecretResolver(client))
    if getattr(args, "dry_run", False):
        plan = Plan(env, print)
        if args.step == "check":
            plan.check()
        else:
            plan.connect(args.ingest_url, args.linq_url, args.stripe_secret, args.linq_secret)
        return 0
    steps = Steps(GoLiveSettings.read(env), client, say)
    if args.step == "check":
        steps.check()
    elif args.step == "connect":
        live = steps.connect(args.ingest_url, args.linq_url, args.stripe_secret, args.linq_secret)
        sys.stdout.write(live.assignments())
    else:
        steps.withdraw(steps.endpoints.retrieve(args.endpoint_id))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except ConfigError as exc:
        say(f"deploy.sh: {exc}")
        return 2
    except DefaultCredentialsError:
        say(
            "deploy.sh: no Google credentials for Secret Manager "
            "(gcloud auth application-default login)"
        )
        return 2
    except RecoveryError as exc:
        say(f"deploy.sh: refused: {exc.reason}")
        return 1
    except GoogleAPICallError as exc:
        say(f"deploy.sh: Secret Manager refused: {exc}")
        return 1
    except (requests.RequestException, GoogleAuthError) as exc:
        # Stripe's and Linq's are ours by now: this is Secret Manager, or Google's credentials.
        first_line = next(iter(str(exc).strip().splitlines()), "")
        say(f"deploy.sh: Secret Manager unreachable ({type(exc).__name__}: {first_line[:200]})")
        return 1
    except Refused as exc:
        say(f"deploy.sh: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
