"""Every variable the product reads, in one place: its name, who reads it, what it means, its
default; the one reader of the environment; the ingest and backfill settings (the recover
function's, which need the templates and phonenumbers, are in recover_settings.py).

deploy.sh (through tools/stage.py), the local stack, the sandbox and the README's Configuration
table all take the names from `VARIABLES`; tests/test_settings.py fails when one disagrees.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

from shared.adapters.secrets import SecretResolver
from shared.core.accounts import ConnectedAccounts
from shared.core.errors import ConfigError
from shared.core.signing_secret import linq_secret_problem, stripe_secret_problem

INGEST, RECOVER, BACKFILL = "ingest", "recover", "backfill"
# The release function (release_deferred): the sweep that hands deferred payments back.
RELEASE = "release"
# `./dev report`: reads the ledger from a checkout.
REPORT = "report"
# Listening to Linq: the HTTP intake (linq_webhook) and its subscriber (linq_event).
LINQ_INTAKE, LINQ_EVENTS = "linq-intake", "linq-events"
DEFAULT_STRIPE_API_BASE = "https://api.stripe.com"
DEFAULT_LINQ_API_BASE = "https://api.linqapp.com/api/partner"
DEFAULT_TOPIC = "stripe-payment-failed"
DEFAULT_LINQ_EVENTS_TOPIC = "linq-events"
DEFAULT_FIRESTORE_DATABASE = "dunning"
DEFAULT_PHONE_REGION = "US"
# The ledger lease must outlast a run (the function's timeout, 120 s in deploy.sh): a shorter one
# could let a second run take over while the first is still sending.
DEFAULT_LEASE_SECONDS = 180
DEFAULT_QUIET_HOURS = "21:00-08:00"
# A webhook's body is at most 1 MiB and comes right after its headers: seconds are plenty.
DEFAULT_BODY_SECONDS = 10.0
MAX_BODY_SECONDS = 15.0
TEMPLATE_VARIABLE = "MESSAGE_TEMPLATE"
LANGUAGE_TEMPLATE_PREFIX = f"{TEMPLATE_VARIABLE}_"
# The text for a payment that waits for the customer to confirm it (3-D Secure), and its own
# language variants.
ACTION_TEMPLATE_VARIABLE = "ACTION_TEMPLATE"
ACTION_LANGUAGE_PREFIX = f"{ACTION_TEMPLATE_VARIABLE}_"


@dataclass(frozen=True)
class Variable:
    """One environment variable: who reads it, what it means, what it is when unset."""

    name: str
    readers: tuple[str, ...]
    meaning: str
    default: str
    # A secret: a plain value (what `gcloud --set-secrets` injects) or an sm:// reference, and
    # deployed through Secret Manager rather than as a plain variable.
    secret: bool = False
    # Only for running on this machine (the emulators): never deployed.
    local: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "STRIPE_API_KEY",
        (RECOVER, BACKFILL),
        "Stripe secret or restricted key (`sk_...`, `rk_...`)",
        "required",
        secret=True,
    ),
    Variable(
        "STRIPE_WEBHOOK_SECRET",
        (INGEST,),
        "`whsec_...` signing secret of the webhook endpoint (`whsec_` and at least 24 letters and "
        'digits, as Stripe generated them). Anything else means "not set up yet": a placeholder '
        "such as `not-set-yet` (before the endpoint exists), a value published or committed to a "
        "repository, or one typed by hand (a repeated or sequential run, words). Every webhook is "
        "then answered 503 without being verified, and a WARNING line per request names the "
        "problem",
        "required",
        secret=True,
    ),
    Variable(
        "STRIPE_CONNECT_ACCOUNTS",
        (INGEST,),
        "the Stripe Connect accounts whose failed payments are texted, besides the platform's "
        "own: `*` for every connected account, or account ids separated by commas "
        "(`acct_1A2b3C,acct_4D5e6F`). Any other connected account's event is acknowledged, "
        "never queued, with a `skipped:account_not_enabled` result line",
        "none: the platform's own invoices only",
    ),
    Variable(
        "WEBHOOK_BODY_SECONDS",
        (INGEST, LINQ_INTAKE),
        "how long an intake waits for a webhook's body once its headers are in, in seconds "
        "(more than 0, at most 15: the body, the secret and the publish fit the intake's 30 s); a "
        "body not whole by then is answered 408 and its connection closed",
        f"`{DEFAULT_BODY_SECONDS:g}`",
    ),
    Variable("LINQ_API_KEY", (RECOVER,), "Linq partner API token", "required", secret=True),
    Variable(
        "GOOGLE_CLOUD_PROJECT",
        (INGEST, RECOVER, BACKFILL, RELEASE, REPORT, LINQ_INTAKE, LINQ_EVENTS),
        "project of the topic (ingest, backfill) and of the send ledger (recover)",
        "required",
    ),
    Variable(
        "STRIPE_API_BASE",
        (RECOVER, BACKFILL),
        "Stripe API base URL; `https://` (plain `http://` only for `127.0.0.1` and `localhost`, "
        "where the stand-ins run)",
        f"`{DEFAULT_STRIPE_API_BASE}`",
    ),
    Variable(
        "LINQ_API_BASE",
        (RECOVER,),
        "Linq API base URL, without a trailing `/v3`; `https://` (plain `http://` only for "
        "`127.0.0.1` and `localhost`)",
        f"`{DEFAULT_LINQ_API_BASE}`",
    ),
    Variable(
        "FIRESTORE_DATABASE",
        (RECOVER, RELEASE, REPORT, LINQ_EVENTS),
        "Firestore database (native mode) holding the send ledger",
        f"`{DEFAULT_FIRESTORE_DATABASE}`",
    ),
    Variable(
        "PUBSUB_TOPIC",
        (INGEST, BACKFILL, RELEASE),
        "topic id failed payments are published to (and deferred ones re-published to)",
        f"`{DEFAULT_TOPIC}`",
    ),
    Variable(
        "LINQ_SENDER",
        (RECOVER,),
        "E.164 line to send from when the account has several",
        "first usable line",
    ),
    Variable(
        "DEFAULT_PHONE_REGION",
        (RECOVER,),
        "region for numbers written without a country code",
        f"`{DEFAULT_PHONE_REGION}` (the customer's address country wins)",
    ),
    Variable(
        TEMPLATE_VARIABLE,
        (RECOVER,),
        "the text; placeholders `{first_name}` `{description}` `{amount}` `{brand}`; must contain "
        "`STOP`, no `{url}`, no URL, and fit in 319 characters with `BRAND_NAME` and the longest "
        "amount Stripe accepts in any currency (`IDR 9,999,999,999.99`, 20 characters)",
        "the default above (the branded one when `BRAND_NAME` is set)",
    ),
    Variable(
        f"{LANGUAGE_TEMPLATE_PREFIX}<LANG>",
        (RECOVER,),
        "the text for customers whose first preferred locale is in language `<LANG>`, a two- or "
        "three-letter ISO 639 code in upper case (`MESSAGE_TEMPLATE_ES`); checked like "
        "`MESSAGE_TEMPLATE`",
        "`MESSAGE_TEMPLATE`",
    ),
    Variable(
        ACTION_TEMPLATE_VARIABLE,
        (RECOVER,),
        "the text when the invoice's latest payment waits for the customer to confirm it (3-D "
        "Secure: its PaymentIntent is `requires_action`); the same placeholders and checks as "
        "`MESSAGE_TEMPLATE`",
        "the 3-D Secure default above (the branded one when `BRAND_NAME` is set)",
    ),
    Variable(
        f"{ACTION_LANGUAGE_PREFIX}<LANG>",
        (RECOVER,),
        "the 3-D Secure text for customers whose first preferred locale is in language `<LANG>` "
        "(`ACTION_TEMPLATE_ES`); checked like `MESSAGE_TEMPLATE`",
        "`MESSAGE_TEMPLATE_<LANG>` of that language, else `ACTION_TEMPLATE`",
    ),
    Variable(
        "BRAND_NAME",
        (RECOVER,),
        "who is writing, for `{brand}`: at most 40 characters, not a URL or a domain (Linq's "
        "first-message rule)",
        "none; a template with `{brand}` then fails to start",
    ),
    Variable(
        "TEXT_ON_ATTEMPTS",
        (RECOVER,),
        "which failed attempts get a text: `all`, or attempt numbers such as `1,3`; the others "
        "end as `skipped:policy`",
        "`all` (one text per failed payment)",
    ),
    Variable(
        "DRY_RUN",
        (RECOVER,),
        "`true`: decide everything, send nothing, record nothing, log `dry_run` lines "
        "(`true`/`false`, `1`/`0`, `yes`/`no`)",
        "`false`",
    ),
    Variable(
        "QUIET_HOURS",
        (RECOVER,),
        "the window, in the recipient's local time, in which nothing is sent: `HH:MM-HH:MM` "
        "(may cross midnight), or `off`; a failure inside it is deferred to the window's end "
        "(`deferred:quiet_hours`) and sent then if it still should be",
        f"`{DEFAULT_QUIET_HOURS}` (US rules for such messages: 08:00-21:00 local)",
    ),
    Variable(
        "HOLDOUT_PERCENT",
        (RECOVER,),
        "the share of failed payments kept untexted to measure what the texts cause "
        "(`skipped:holdout`), 0 to 50; chosen by a stable hash of the invoice id, so an invoice "
        "stays in its group across attempts and replays",
        "`0`",
    ),
    Variable(
        "LEASE_SECONDS",
        (RECOVER,),
        "how long a run owns a failed payment before another may take it over (the ledger "
        "lease); must be longer than the function's timeout (120 s in `deploy.sh`)",
        f"`{DEFAULT_LEASE_SECONDS}`",
    ),
    Variable(
        "LINQ_WEBHOOK_SECRET",
        (LINQ_INTAKE,),
        "`whsec_...` signing secret of the Linq webhook subscription (`./dev linq-webhook` stores "
        "it in Secret Manager): the base64 of at least 24 random bytes. Until it is one (a "
        "placeholder, a published or committed value, a passphrase), every Linq webhook is "
        "answered 503 without being verified, and Linq retries it for about 30 minutes",
        "required",
        secret=True,
    ),
    Variable(
        "LINQ_EVENTS_TOPIC",
        (LINQ_INTAKE,),
        "topic id verified Linq webhooks are published to",
        f"`{DEFAULT_LINQ_EVENTS_TOPIC}`",
    ),
    Variable(
        "SLACK_WEBHOOK_URL",
        (RECOVER, LINQ_EVENTS),
        "Slack incoming webhook for an internal note per outcome (dry runs included); "
        "`https://` (plain `http://` only for `127.0.0.1` and `localhost`)",
        "off",
        secret=True,
    ),
    Variable(
        "PUBSUB_EMULATOR_HOST",
        (INGEST, BACKFILL, RELEASE, LINQ_INTAKE),
        "send the Pub/Sub client to the emulator (`./dev` and the tests set it)",
        "unset",
        local=True,
    ),
    Variable(
        "FIRESTORE_EMULATOR_HOST",
        (RECOVER, RELEASE, REPORT, LINQ_EVENTS),
        "send the ledger to the Firestore emulator (`./dev` and the tests set it)",
        "unset",
        local=True,
    ),
)
BY_NAME = {variable.name: variable for variable in VARIABLES}


def read_by(reader: str) -> tuple[Variable, ...]:
    """The variables one function (or tool) reads."""
    return tuple(variable for variable in VARIABLES if reader in variable.readers)


def is_language_template(name: str) -> bool:
    """Whether `name` is of a family of language templates (MESSAGE_TEMPLATE_ES,
    ACTION_TEMPLATE_ES, or the families' own entries in VARIABLES)."""
    return name.startswith((LANGUAGE_TEMPLATE_PREFIX, ACTION_LANGUAGE_PREFIX))


def is_product_variable(name: str) -> bool:
    """Whether `name` is a variable the product reads (language templates included)."""
    return name in BY_NAME or is_language_template(name)


def plain_names(reader: str) -> tuple[str, ...]:
    """The plain (not secret, not local-only) variables `reader` reads, by name; the language
    templates, families of names, are matched with `is_language_template`."""
    return tuple(
        v.name
        for v in read_by(reader)
        if not v.secret and not v.local and not is_language_template(v.name)
    )


# --- reading --------------------------------------------------------------------------------

Environ = Mapping[str, str]
# The only hosts an API base may name with plain http: the stand-ins and the sandbox listen there.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
_STRIPE_KEY = re.compile(r"^(sk|rk)_(test|live)_\S+$")
# Pub/Sub topic ids: 3-255 characters, a letter first, never starting with "goog".
_TOPIC = re.compile(r"^(?!goog)[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")
_SLACK_EXAMPLE = "https://hooks.slack.com/services/T000/B000/XXXX"
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


class Reader:
    """One environment, read variable by variable; every error names the variable."""

    def __init__(self, env: Environ, secrets: SecretResolver) -> None:
        self._env, self._secrets = env, secrets

    def value(self, name: str) -> str | None:
        """The value with surrounding white space removed; unset and blank are the same."""
        return self._env.get(name, "").strip() or None

    def raw(self, name: str) -> str | None:
        """The value exactly as set (a template's own spacing is the operator's), or None."""
        return self._env.get(name)

    def required(self, name: str) -> str:
        value = self.value(name)
        if value is None:
            raise ConfigError(f"{name} is required: {BY_NAME[name].meaning}")
        return value

    def secret(self, name: str) -> str:
        return self._secrets.resolve(name, self.required(name))

    def optional_secret(self, name: str) -> str | None:
        value = self.value(name)
        return None if value is None else self._secrets.resolve(name, value)

    def flag(self, name: str) -> bool:
        """A yes/no variable; unset is no."""
        value = self.value(name)
        if value is None or value.lower() in _FALSE:
            return False
        if value.lower() in _TRUE:
            return True
        raise ConfigError(f"{name} must be true or false (or 1/0, yes/no), got {value!r}")

    def base_url(self, name: str, default: str) -> str:
        return http_url(name, self.value(name) or default, default)

    def names(self) -> list[str]:
        return sorted(self._env)


def http_url(name: str, value: str, example: str, *, secret: bool = False) -> str:
    """An https URL without a trailing slash (plain http only on this machine, for the stand-ins
    and the sandbox); a secret URL is never echoed in the error."""
    value = value.rstrip("/")
    found = "" if secret else f", got {value!r}"
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # an unbalanced [ in the host
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"{name} must be an https URL such as {example}{found}")
    # API keys and customer data travel in these requests: never in clear over a network.
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"{name} must use https (http:// is allowed only for "
            f"{' and '.join(sorted(LOOPBACK_HOSTS))}){found}"
        )
    return value


def slack_url(env: Reader) -> str | None:
    """SLACK_WEBHOOK_URL (a secret: never echoed in an error), or None when unset."""
    slack = env.optional_secret("SLACK_WEBHOOK_URL")
    return (
        None if slack is None else http_url("SLACK_WEBHOOK_URL", slack, _SLACK_EXAMPLE, secret=True)
    )


def stripe_key_mode(key: str) -> str:
    """`test` or `live`, from the key's prefix."""
    return "live" if "_live_" in key[:8] else "test"


def stripe_api_key(env: Reader) -> str:
    key = env.secret("STRIPE_API_KEY")
    if not _STRIPE_KEY.match(key):
        raise ConfigError(
            "STRIPE_API_KEY must be a secret or restricted key (sk_test_..., sk_live_..., "
            "rk_...); publishable keys (pk_...) cannot read invoices"
        )
    return key


def _body_seconds(env: Reader) -> float:
    value = env.value("WEBHOOK_BODY_SECONDS")
    if value is None:
        return DEFAULT_BODY_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_BODY_SECONDS:
        raise ConfigError(
            "WEBHOOK_BODY_SECONDS must be a number of seconds above 0 and at most "
            f"{MAX_BODY_SECONDS:g}, got {value!r}"
        )
    return seconds


def _topic(env: Reader, name: str, default: str) -> str:
    topic = env.value(name) or default
    if not _TOPIC.match(topic):
        raise ConfigError(f"{name} must be a Pub/Sub topic id (not a path), got {topic!r}")
    return topic


# --- each function's settings ------------------------------------------------------------------


class Settings:
    """Read and validated once per instance, lazily (never at import)."""

    @classmethod
    def from_env(cls, env: Environ | None = None, secrets: SecretResolver | None = None) -> Self:
        return cls.read(Reader(os.environ if env is None else env, secrets or SecretResolver()))

    @classmethod
    def read(cls, env: Reader) -> Self:
        raise NotImplementedError


@dataclass(frozen=True)
class IntakeSettings(Settings):
    """What a webhook intake needs: the sender's signing secret and where to publish.

    While the secret is no real signing secret (the first deployment, before the sender's
    endpoint exists), `webhook_secret` is None and `not_set_up` says what is wrong with the value,
    never quoting it. The intake then verifies nothing and answers 503, so the sender retries and
    nothing is lost.
    """

    webhook_secret: str | None
    not_set_up: str | None
    project: str
    topic: str
    # How long the body may take to arrive once the headers are in.
    body_seconds: float

    @classmethod
    def _of(cls, secret: str, problem_of: Callable[[str], str | None], **fields: Any) -> Self:
        problem = problem_of(secret)
        return cls(None if problem else secret, problem, **fields)


@dataclass(frozen=True)
class IngestSettings(IntakeSettings):
    """The Stripe intake: STRIPE_WEBHOOK_SECRET, publishing to PUBSUB_TOPIC the events of the
    platform and of the connected accounts STRIPE_CONNECT_ACCOUNTS names."""

    accounts: ConnectedAccounts

    @classmethod
    def read(cls, env: Reader) -> Self:
        return cls._of(
            env.secret("STRIPE_WEBHOOK_SECRET"),
            stripe_secret_problem,
            project=env.required("GOOGLE_CLOUD_PROJECT"),
            topic=_topic(env, "PUBSUB_TOPIC", DEFAULT_TOPIC),
            body_seconds=_body_seconds(env),
            accounts=ConnectedAccounts.parse(env.value("STRIPE_CONNECT_ACCOUNTS")),
        )


@dataclass(frozen=True)
class BackfillSettings(Settings):
    """What `./dev backfill` needs: Stripe read access and the topic the recover function reads."""

    stripe_api_key: str
    stripe_api_base: str
    project: str
    topic: str

    @classmethod
    def read(cls, env: Reader) -> Self:
        return cls(
            stripe_api_key=stripe_api_key(env),
            stripe_api_base=env.base_url("STRIPE_API_BASE", DEFAULT_STRIPE_API_BASE),
            project=env.required("GOOGLE_CLOUD_PROJECT"),
            topic=_topic(env, "PUBSUB_TOPIC", DEFAULT_TOPIC),
        )


@dataclass(frozen=True)
class ReleaseSettings(Settings):
    """What the release function needs: the ledger, and the topic deferred payments go back to."""

    project: str
    firestore_database: str
    topic: str

    @classmethod
    def read(cls, env: Reader) -> Self:
        return cls(
            project=env.required("GOOGLE_CLOUD_PROJECT"),
            firestore_database=env.value("FIRESTORE_DATABASE") or DEFAULT_FIRESTORE_DATABASE,
            topic=_topic(env, "PUBSUB_TOPIC", DEFAULT_TOPIC),
        )


@dataclass(frozen=True)
class ReportSettings(Settings):
    """What `./dev report` needs: where the ledger is."""

    project: str
    firestore_database: str

    @classmethod
    def read(cls, env: Reader) -> Self:
        return cls(
            project=env.required("GOOGLE_CLOUD_PROJECT"),
            firestore_database=env.value("FIRESTORE_DATABASE") or DEFAULT_FIRESTORE_DATABASE,
        )


@dataclass(frozen=True)
class LinqIntakeSettings(IntakeSettings):
    """The Linq intake: LINQ_WEBHOOK_SECRET, publishing to LINQ_EVENTS_TOPIC."""

    @classmethod
    def read(cls, env: Reader) -> Self:
        return cls._of(
            env.secret("LINQ_WEBHOOK_SECRET"),
            linq_secret_problem,
            project=env.required("GOOGLE_CLOUD_PROJECT"),
            topic=_topic(env, "LINQ_EVENTS_TOPIC", DEFAULT_LINQ_EVENTS_TOPIC),
            body_seconds=_body_seconds(env),
        )


@dataclass(frozen=True)
class LinqEventSettings(Settings):
    """What the Linq event subscriber needs: the ledger, and the team's Slack."""

    project: str
    firestore_database: str
    slack_webhook_url: str | None

    @classmethod
    def read(cls, env: Reader) -> Self:
        return cls(
            project=env.required("GOOGLE_CLOUD_PROJECT"),
            firestore_database=env.value("FIRESTORE_DATABASE") or DEFAULT_FIRESTORE_DATABASE,
            slack_webhook_url=slack_url(env),
        )
