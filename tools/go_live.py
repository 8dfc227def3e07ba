"""deploy.sh's Stripe and Linq steps: the keys checked before anything is created, then the Stripe
webhook endpoints and the Linq webhook subscription of the deployed intakes, each found by its URL
(an endpoint by its URL and by whether it is a Connect endpoint) or created, its signing secret
stored straight into Secret Manager as a new version and never shown. A run that finds them all
changes nothing and rotates nothing.

    python -m tools.go_live check [--dry-run]
    python -m tools.go_live connect INGEST_URL LINQ_URL --stripe-secret NAME:VERSION \\
        [--connect-secret NAME:VERSION] --linq-secret NAME:VERSION [--dry-run]

The keys come from STRIPE_API_KEY and LINQ_API_KEY (a value or an sm:// reference), never from
the command line; NAME:VERSION are the signing secrets' names and the versions deploy.sh pins,
which hold the secrets of an endpoint or subscription that exists. The platform's own events come
through an account endpoint; with STRIPE_CONNECT_ACCOUNTS set, the connected accounts' come through
a Connect endpoint of the same URL, whose secret is --connect-secret. `connect` prints, on stdout,
shell assignments of what is live for deploy.sh; everything said to people goes to stderr. An
endpoint whose secret could not be stored is deleted again (nothing could verify it); once its
secret is stored, it is kept whatever fails next, and the next run finds it and pins the intake
to that secret. `--dry-run` prints the calls, keys masked, and makes none. Exit status: 0 done,
1 Stripe, Linq or Secret Manager refused, 2 a wrong variable or argument, or no Google
credentials.
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
from enum import Enum
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
from tools.backfill import MAX_SINCE_S
from tools.deploy_env import PLACEHOLDER
from tools.linq_webhook import WEBHOOK_VERSION, Subscriptions, register, subscription_body
from tools.linq_webhook import target_url as linq_target
from tools.secret_store import Refused, ensure_secret, secret_manager, store
from tools.stripe_webhook import API_VERSION, Endpoint, Endpoints, endpoint_params

Say = Callable[[str], None]
_STRIPE_KEY_PREFIX = re.compile(r"(?:sk|rk)_(?:test|live)_")
# A key shorter than this shows no characters of its own when masked.
_MASK_MIN = 16


@dataclass(frozen=True)
class GoLiveSettings(Settings):
    """What the steps need: both keys, both APIs, the project that keeps the secrets, and
    whether connected accounts are served (a Connect endpoint is then wanted too)."""

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
            connect=bool(STRIPE_CONNECT_ACCOUNTS.read(env)),
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
class Kind:
    """One kind of Stripe endpoint for the ingest URL: an account endpoint (the platform's own
    events) or a Connect one (`connect`: its connected accounts'), the signing secret deploy.sh
    pins for it (None: there is none), and whether this run wants one."""

    connect: bool
    pinned: Pinned | None
    wanted: bool

    @property
    def noun(self) -> str:
        return "Connect endpoint" if self.connect else "endpoint"


class Move(Enum):
    """What a run does about one kind of endpoint, decided before anything changes at Stripe."""

    KEEP = "keep"
    MAKE = "make"
    # Made by deploy.sh, its secret never stored (a run killed between the two): Stripe shows a
    # secret only in the answer that creates the endpoint and has no API to roll one, so the
    # endpoint is deleted and made again.
    REMAKE = "remake"
    # The same, of a kind no longer wanted: deleted.
    DROP = "drop"
    NOTHING = "nothing"


def by_kind(found: Sequence[Endpoint], served: bool) -> dict[bool, list[Endpoint]]:
    """The endpoints found for the URL, as Connect (True) or account (False) ones. Stripe shows
    `connect` nowhere: deploy.sh records it in the metadata of those it makes, and one made
    elsewhere counts as an account endpoint, unless connected accounts are served."""
    unknown = [endpoint for endpoint in found if endpoint.connect is None]
    if served and unknown:
        raise Refused(
            f"Stripe endpoint {unknown[0].id} for {unknown[0].url} was made elsewhere, and Stripe "
            "does not say whether it is a Connect endpoint; with STRIPE_CONNECT_ACCOUNTS set the "
            "ingest function has one of each kind: give it the metadata connect=true or "
            "connect=false (Dashboard: Developers > Webhooks), then run this again"
        )
    return {kind: [e for e in found if bool(e.connect) == kind] for kind in (False, True)}


def decide(kind: Kind, found: Sequence[Endpoint], held: str | None) -> Move:
    """What to do about `kind`'s endpoints `found` for the ingest URL, the value of its pinned
    secret being `held` (None: there is no secret). Refused: what stops the run, and what to do."""
    if len(found) > 1:
        raise Refused(
            f"{len(found)} Stripe webhook {kind.noun}s send to {found[0].url} "
            f"({', '.join(e.id for e in found)}); the ingest function verifies one signing secret "
            "of each kind: delete all but one, then run this again"
        )
    if not found:
        return Move.MAKE if kind.wanted else Move.NOTHING
    [endpoint] = found
    problem = "there is none" if held is None else stripe_secret_problem(held)
    if problem is None:
        return Move.KEEP
    if endpoint.connect is not None and held in (None, PLACEHOLDER):
        return Move.REMAKE if kind.wanted else Move.DROP
    # Made elsewhere, or its secret replaced by another value: what to do is the operator's call.
    assert kind.pinned is not None  # an endpoint of a kind without a secret is deploy.sh's own
    raise not_its_secret(f"Stripe {kind.noun}", endpoint.url, kind.pinned, problem)


def not_its_secret(thing: str, url: str, pinned: Pinned, problem: str) -> Refused:
    """The refusal of a `thing` for `url` that exists, whose pinned secret is not its own: the
    intake would answer 503 forever, the vendor showing the secret only at creation."""
    return Refused(
        f"a {thing} for {url} exists, but {pinned.name} version {pinned.version} is not its "
        f"signing secret ({problem}), and the secret is shown only when it is created: delete "
        "it, then run this again (or add its secret as a new version)"
    )


@dataclass(frozen=True)
class Made:
    """An endpoint this run made, and the version its signing secret went to."""

    endpoint: Endpoint
    secret: str
    version: str


@dataclass(frozen=True)
class Live:
    """What `connect` leaves live (a Connect endpoint: None when there is none), what it made
    (a new version: None when nothing was), and what a failure from here on leaves."""

    endpoint: Endpoint
    connect_endpoint: Endpoint | None
    webhook_version: str | None
    connect_version: str | None
    subscription: str
    linq_version: str | None
    kept: str

    def assignments(self) -> str:
        connect = self.connect_endpoint
        values = {
            "STRIPE_ENDPOINT": self.endpoint.id,
            "STRIPE_CONNECT_ENDPOINT": "" if connect is None else connect.id,
            "STRIPE_MODE": "live" if self.endpoint.livemode else "test",
            "STRIPE_EVENTS": ", ".join(self.endpoint.events),
            "STRIPE_CONNECT_EVENTS": "" if connect is None else ", ".join(connect.events),
            "WEBHOOK_NEW_VERSION": _number(self.webhook_version),
            "CONNECT_WEBHOOK_NEW_VERSION": _number(self.connect_version),
            "LINQ_SUBSCRIPTION": self.subscription,
            "LINQ_HOOK_NEW_VERSION": _number(self.linq_version),
            "KEPT_NOTE": self.kept,
        }
        return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())


def _number(version: str | None) -> str:
    """`projects/P/secrets/S/versions/3` as `3`."""
    return "" if version is None else version.rsplit("/", 1)[-1]


def kept(made: Sequence[Made]) -> str:
    """What a failure after the endpoints were made leaves: nothing lost, and what the next run
    does about it ("" when this run made none)."""
    if not made:
        return ""
    each = "\n".join(
        f"Stripe {'Connect endpoint' if m.endpoint.connect else 'endpoint'} {m.endpoint.id}, "
        f"made by this run, is kept: its signing secret is stored ({m.secret} version "
        f"{_number(m.version)})"
        for m in made
    )
    return (
        f"{each}\nNothing is lost: until the ingest function is deployed pinned to it, it answers "
        "503 and Stripe retries each webhook for up to three days. Run deploy.sh again: it finds "
        "the endpoint by its URL and deploys the ingest function pinned to that version"
    )


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

    def connect(
        self,
        ingest_url: str,
        linq_url: str,
        stripe: Pinned,
        connect: Pinned | None,
        linq: Pinned,
    ) -> Live:
        """The Stripe endpoints (an account one, and a Connect one while connected accounts are
        served), then the Linq subscription. Every kind is judged before anything changes at
        Stripe, so a refusal leaves it as it was; an endpoint whose secret is stored is kept
        whatever fails next."""
        if self.settings.connect and connect is None:
            raise ConfigError(
                "STRIPE_CONNECT_ACCOUNTS names connected accounts: give --connect-secret, the "
                "Connect endpoint's signing secret"
            )
        linq_url = linq_target(linq_url)
        client = self._secrets()
        kinds = (Kind(False, stripe, True), Kind(True, connect, self.settings.connect))
        found = by_kind(self.endpoints.find(ingest_url), self.settings.connect)
        moves = [
            (kind, found[kind.connect], decide(kind, found[kind.connect], self._held(kind, found)))
            for kind in kinds
        ]
        made: list[Made] = []
        try:
            live = [self._carry_out(ingest_url, *move, client, made) for move in moves]
            registered = register(linq_url, self.linq, client, self.settings.project, linq.name)
            self.say(registered.said)
            if registered.version is None:
                self._require_linq_stored(linq, linq_url)
        except BaseException:
            if made:
                self.say(kept(made))
            raise
        (account, webhook_version), (connect_endpoint, connect_version) = live
        assert account is not None  # an account endpoint is always wanted
        return Live(
            account,
            connect_endpoint,
            webhook_version,
            connect_version,
            str(registered.subscription["id"]),
            registered.version,
            kept(made),
        )

    def _held(self, kind: Kind, found: dict[bool, list[Endpoint]]) -> str | None:
        """The value of `kind`'s pinned secret, read only when an endpoint of that kind exists
        (None: there is no secret)."""
        if kind.pinned is None or not found[kind.connect]:
            return None
        return self._value(kind.pinned)

    def _value(self, pinned: Pinned) -> str:
        reference = f"{PREFIX}{self.settings.project}/{pinned.name}#{pinned.version}"
        resolver = SecretResolver(self._secrets)
        return resolver.resolve(f"{pinned.name}:{pinned.version}", reference)

    def _carry_out(
        self,
        url: str,
        kind: Kind,
        found: list[Endpoint],
        move: Move,
        client: secretmanager.SecretManagerServiceClient,
        made: list[Made],
    ) -> tuple[Endpoint | None, str | None]:
        """`move` made: the endpoint of `kind` left live (None: none), and the version its new
        secret went to (None: nothing was stored)."""
        if move is Move.NOTHING:
            return None, None
        if move is Move.KEEP:
            return self._existing(found[0], kind), None
        old = found[0] if found else None
        if old is not None:
            self.endpoints.delete(old.id)
            self.say(
                f"deleted Stripe {kind.noun} {old.id}, whose signing secret was never stored "
                "(a run stopped between making it and storing it), so nothing could verify it"
                + ("; it is made again" if move is Move.REMAKE else "")
                + f"\n{missed(old)}"
            )
        if move is Move.DROP:
            return None, None
        assert kind.pinned is not None  # a wanted kind has a secret
        endpoint, version = self._make(url, kind, kind.pinned, client)
        made.append(Made(endpoint, kind.pinned.name, version))
        return endpoint, version

    def _make(
        self,
        url: str,
        kind: Kind,
        pinned: Pinned,
        client: secretmanager.SecretManagerServiceClient,
    ) -> tuple[Endpoint, str]:
        """A new endpoint of `kind`, and the version its secret went to."""
        secret_name = ensure_secret(client, self.settings.project, pinned.name)
        endpoint, secret = self.endpoints.create(url, kind.connect)
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
        said = (
            f"created Stripe {kind.noun} {endpoint.id} for {url} ({', '.join(endpoint.events)}; "
            f"API version {endpoint.api_version})\n"
            f"signing secret stored in {version} (Stripe shows it only once; it is not printed)"
        )
        if kind.connect:
            said += "\nStripe sends it the connected accounts' events only, not the platform's own"
        self.say(said)
        return endpoint, version

    def _existing(self, endpoint: Endpoint, kind: Kind) -> Endpoint:
        """An endpoint found by its URL and kind, its secret stored: kept, with its secret."""
        if not kind.wanted:
            self.say(
                f"Stripe Connect endpoint {endpoint.id} for {endpoint.url} is kept: no connected "
                "account is served now (STRIPE_CONNECT_ACCOUNTS), so its events are verified and "
                "acknowledged, never texted (skipped:account_not_enabled); delete it (Dashboard: "
                "Developers > Webhooks) to stop them"
            )
            return endpoint
        completed = self.endpoints.complete(endpoint)
        said = f"Stripe {kind.noun} {endpoint.id} for {endpoint.url} exists; nothing created"
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

    def _require_linq_stored(self, pinned: Pinned, url: str) -> None:
        """The subscription found keeps the secret deploy.sh pins."""
        problem = linq_secret_problem(self._value(pinned))
        if problem is not None:
            raise not_its_secret("Linq subscription", url, pinned, problem)

    def withdraw(self, endpoint: Endpoint) -> None:
        """Delete an endpoint this run created, whose secret could not be stored."""
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
    does not send its events anywhere else, and keeps them 30 days."""
    age = (time.time() if now is None else now) - endpoint.created
    since = f"{max(1, math.ceil(min(age, MAX_SINCE_S) / 3600))}h"
    if endpoint.connect:
        return (
            "Stripe sends a deleted Connect endpoint's events nowhere else: for each connected "
            f"account served, ./dev backfill --account acct_... --since {since} queues any of "
            "its payments that failed meanwhile"
        )
    return (
        "Stripe sends a deleted endpoint's events nowhere else: ./dev backfill --since "
        f"{since} queues any payment that failed meanwhile"
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
        self._connect = bool(STRIPE_CONNECT_ACCOUNTS.read(env))

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

    def connect(
        self, ingest_url: str, linq_url: str, stripe: Pinned, connect: Pinned | None, linq: Pinned
    ) -> None:
        """Every call of a first run: nothing found, everything created."""
        self._stripe_call("-G", params={"limit": 100})
        self._stripe_call(params=endpoint_params(ingest_url, connect=False))
        self._store(stripe)
        if self._connect and connect is not None:
            self._stripe_call(params=endpoint_params(ingest_url, connect=True))
            self._store(connect)
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
    connect = steps.add_parser("connect", help="the Stripe endpoints and the Linq subscription")
    connect.add_argument("ingest_url", metavar="INGEST_URL")
    connect.add_argument("linq_url", metavar="LINQ_URL")
    for secret, required in (("stripe", True), ("connect", False), ("linq", True)):
        connect.add_argument(
            f"--{secret}-secret", type=Pinned.parse, required=required, metavar="NAME:VERSION"
        )
    connect.add_argument("--dry-run", action="store_true", help="print the calls only")
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
            plan.connect(*_connect_arguments(args))
        return 0
    steps = Steps(GoLiveSettings.read(env), client, say)
    if args.step == "check":
        steps.check()
    else:
        sys.stdout.write(steps.connect(*_connect_arguments(args)).assignments())
    return 0


def _connect_arguments(args: argparse.Namespace) -> tuple[str, str, Pinned, Pinned | None, Pinned]:
    return args.ingest_url, args.linq_url, args.stripe_secret, args.connect_secret, args.linq_secret


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
