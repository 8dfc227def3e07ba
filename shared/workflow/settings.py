"""Every environment variable the product and its tools read, each declared once: its name, who
reads it, what it means, its default, its parser, whether it is a secret, and what deploy.sh
checks of it beyond that; the one reader of the environment; and each function's settings,
read through the declarations.

deploy.sh (tools/deploy_env.py), `deploy.sh --help`, docs/configuration.md's table
(tools/config_table.py), the local stack and the sandbox all take the variables from `VARIABLES`;
tests/test_settings.py fails when one disagrees.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar
from urllib.parse import urlsplit

from shared.adapters.secrets import SecretResolver
from shared.core.accounts import ConnectedAccounts, EndpointKind
from shared.core.control import SurgeRule
from shared.core.errors import ConfigError
from shared.core.lease import DEFAULT_LEASE, RECOVER_TIMEOUT
from shared.core.phone import is_region, to_e164
from shared.core.policy import ALL, DEFAULT_QUIET_HOURS, OFF, AttemptPolicy, QuietHours
from shared.core.policy import parse_quiet_hours as _parse_quiet_hours
from shared.core.sender import DEFAULT_LINE_DAILY_LIMIT
from shared.core.signing_secret import Signing, linq_secret_problem, stripe_secret_problem
from shared.core.text import clean

if TYPE_CHECKING:
    from shared.core.message import Template, Templates

T = TypeVar("T")
Environ = Mapping[str, str]

# Who reads a variable: the deployed functions, the tools run from a checkout, and deploy.sh.
INGEST, RECOVER, BACKFILL = "ingest", "recover", "backfill"
# The release function (release_deferred): the sweep that hands deferred payments back.
RELEASE = "release"
# `./dev report`: reads the ledger from a checkout.
REPORT = "report"
# `./dev pause` and `./dev resume`: write the control document from a checkout.
PAUSE = "pause"
# Listening to Linq: the HTTP intake (linq_webhook) and its subscriber (linq_event).
LINQ_INTAKE, LINQ_EVENTS = "linq-intake", "linq-events"
# `./dev linq-webhook`: subscribes the Linq intake.
LINQ_WEBHOOK = "linq-webhook"
DEPLOY = "deploy.sh"
# What deploy.sh deploys, each with the variables it reads.
DEPLOYED = (INGEST, RECOVER, RELEASE, LINQ_INTAKE, LINQ_EVENTS)

DEFAULT_STRIPE_API_BASE = "https://api.stripe.com"
DEFAULT_LINQ_API_BASE = "https://api.linqapp.com/api/partner"
DEFAULT_TOPIC = "stripe-payment-failed"
DEFAULT_LINQ_EVENTS_TOPIC = "linq-events"
DEFAULT_FIRESTORE_DATABASE = "dunning"
# Not a variable: the release function is triggered by this topic alone (Cloud Scheduler ticks it
# every five minutes), which deploy.sh and the local stack create.
SWEEP_TOPIC = "dunning-release-sweep"
REQUIRED = "required"
# How a family of variables is named: one per language, `<LANG>` an ISO 639 code.
LANGUAGE = "<LANG>"
# A webhook's body is at most 1 MiB and comes right after its headers: seconds are plenty.
MAX_BODY_SECONDS = 15.0
# A shortened read timeout (READ_TIMEOUT_SECONDS) at most this long.
MAX_READ_TIMEOUT_SECONDS = 60.0
# The brand opens every text and is never shortened, so it has to stay short.
MAX_BRAND_LENGTH = 40
# More than half untexted would cost more recoveries than the measurement is worth.
MAX_HOLDOUT_PERCENT = 50
# Linq recommends about 7,000 messages per line per day: a hundred times that is a typo.
MAX_LINE_DAILY_LIMIT = 700_000
# A dead run holds its payment for as long as its lease: more than an hour is a typo.
MAX_LEASE_SECONDS = 3600
# The surge guard's window: Stripe keeps events 30 days, but a surge is a matter of minutes or
# hours, and a day of `invoice.paid` events is as far as a check should page.
_SURGE_WINDOW = re.compile(r"^([1-9][0-9]*)([mh])$")
MAX_SURGE_WINDOW = timedelta(hours=24)
MAX_SURGE_MIN = 100_000
# The dead-letter topic and subscription deploy.sh makes for a topic add up to 17 characters to
# its id, and Pub/Sub ids stop at 255: 200 leaves them room.
MAX_DEPLOYED_TOPIC = 200
# The only hosts an API base may name with plain http: the stand-ins and the sandbox listen there.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
_STRIPE_KEY = re.compile(r"^(sk|rk)_(test|live)_\S+$")
# Pub/Sub topic ids: 3-255 characters, a letter first, never starting with "goog".
_TOPIC = re.compile(r"^(?!goog)[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")
# Firestore database ids: 4-63 lower-case letters, digits and hyphens, a letter first.
_DATABASE = re.compile(r"^[a-z][a-z0-9-]{2,61}[a-z0-9]$")
# The <LANG> of MESSAGE_TEMPLATE_ES, ACTION_TEMPLATE_FIL: an ISO 639-1 or 639-2/3 language code.
_LANGUAGE_CODE = re.compile(r"[A-Z]{2,3}")
_VERSION = re.compile(r"^[1-9][0-9]*$")
_SLACK_EXAMPLE = "https://hooks.slack.com/services/T000/B000/XXXX"
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


@dataclass(frozen=True)
class Variable(Generic[T]):
    """One environment variable, declared once.

    `default` is the value a reader takes when the variable is unset, written as an operator would
    set it; `when_unset` says what unset means where there is none (`required`, `off`, ...) or adds
    to it. `parse` turns the environment into the value its readers use, or raises a ConfigError
    naming the variable; `deploy` is what deploy.sh checks of that value beyond it (what is wrong,
    or None).
    """

    name: str
    readers: tuple[str, ...]
    meaning: str
    parse: Callable[[Reader, Variable[T]], T]
    default: str | None = None
    when_unset: str = ""
    # A plain value (what `gcloud --set-secrets` injects) or an sm:// reference, deployed through
    # Secret Manager rather than as a plain variable.
    secret: bool = False
    # Only for running on this machine (the emulators): never deployed.
    local: bool = False
    deploy: Callable[[T, Reader], str | None] | None = None

    def read(self, env: Reader) -> T:
        return self.parse(env, self)

    @property
    def required(self) -> bool:
        return self.when_unset == REQUIRED

    @property
    def family(self) -> str | None:
        """The prefix of a family's names (`MESSAGE_TEMPLATE_` of `MESSAGE_TEMPLATE_<LANG>`), or
        None for a variable of one name."""
        return self.name.removesuffix(LANGUAGE) if self.name.endswith(LANGUAGE) else None

    @property
    def shown_default(self) -> str:
        """The default as docs/configuration.md and `deploy.sh --help` show it."""
        if self.default is None:
            return self.when_unset
        return " ".join(filter(None, (f"`{self.default}`", self.when_unset)))


class Reader:
    """One environment, read variable by variable through the declarations' parsers."""

    def __init__(self, env: Environ, secrets: SecretResolver) -> None:
        self._env, self._secrets = env, secrets

    def value(self, name: str) -> str | None:
        """The value with surrounding white space removed; unset and blank are the same."""
        return self._env.get(name, "").strip() or None

    def raw(self, name: str) -> str | None:
        """The value exactly as set (a template's own spacing is the operator's), or None."""
        return self._env.get(name)

    def text(self, variable: Variable[Any]) -> str | None:
        """The value, or the variable's default when it is unset."""
        return self.value(variable.name) or variable.default

    def names(self) -> list[str]:
        return sorted(self._env)

    def resolve(self, name: str, value: str) -> str:
        return self._secrets.resolve(name, value)


# --- parsers: the environment -> the value a reader uses ----------------------------------------


def _as_set(env: Reader, variable: Variable[Any]) -> str | None:
    """The text as set, or the default (a setting whose checks are elsewhere: deploy.sh's own, the
    emulator hosts the adapters read)."""
    return env.text(variable)


def _required(env: Reader, variable: Variable[Any]) -> str:
    value = env.text(variable)
    if value is None:
        raise ConfigError(f"{variable.name} is required: {variable.meaning}")
    return value


def _secret(env: Reader, variable: Variable[Any]) -> str:
    return env.resolve(variable.name, _required(env, variable))


def _optional_secret(env: Reader, variable: Variable[Any]) -> str | None:
    value = env.value(variable.name)
    return None if value is None else env.resolve(variable.name, value)


def _flag(env: Reader, variable: Variable[Any]) -> bool:
    """A yes/no variable."""
    value = _required(env, variable).lower()
    if value in _FALSE:
        return False
    if value in _TRUE:
        return True
    raise ConfigError(
        f"{variable.name} must be true or false (or 1/0, yes/no), got {env.value(variable.name)!r}"
    )


def http_url(name: str, value: str, example: str, *, is_secret: bool = False) -> str:
    """An https URL without a trailing slash (plain http only on this machine, for the stand-ins
    and the sandbox); a secret URL is never echoed in the error."""
    value = value.rstrip("/")
    found = "" if is_secret else f", got {value!r}"
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


def _base_url(env: Reader, variable: Variable[Any]) -> str:
    return http_url(variable.name, _required(env, variable), variable.default or "")


def _linq_api_base(env: Reader, variable: Variable[Any]) -> str:
    base = _base_url(env, variable)
    if base.endswith("/v3"):
        raise ConfigError(
            f"{variable.name} must not end in /v3 (every path already starts with it): "
            f"use {base.removesuffix('/v3')}"
        )
    return base


def _slack_url(env: Reader, variable: Variable[Any]) -> str | None:
    """A secret URL, never echoed in an error; None when unset."""
    slack = _optional_secret(env, variable)
    return None if slack is None else http_url(variable.name, slack, _SLACK_EXAMPLE, is_secret=True)


def stripe_key_mode(key: str) -> str:
    """`test` or `live`, from the key's prefix."""
    return "live" if "_live_" in key[:8] else "test"


def _stripe_api_key(env: Reader, variable: Variable[Any]) -> str:
    key = _secret(env, variable)
    if not _STRIPE_KEY.match(key):
        raise ConfigError(
            f"{variable.name} must be a secret or restricted key (sk_test_..., sk_live_..., "
            "rk_...); publishable keys (pk_...) cannot read invoices"
        )
    return key


def _connected_accounts(env: Reader, variable: Variable[Any]) -> ConnectedAccounts:
    return ConnectedAccounts.parse(env.value(variable.name), variable.name)


def _seconds(text: str, variable: Variable[Any], maximum: float) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= maximum:
        raise ConfigError(
            f"{variable.name} must be a number of seconds above 0 and at most {maximum:g}, "
            f"got {text!r}"
        )
    return seconds


def _body_seconds(env: Reader, variable: Variable[Any]) -> float:
    return _seconds(_required(env, variable), variable, MAX_BODY_SECONDS)


def _read_timeout(env: Reader, variable: Variable[Any]) -> float | None:
    text = env.value(variable.name)
    return None if text is None else _seconds(text, variable, MAX_READ_TIMEOUT_SECONDS)


def _topic(env: Reader, variable: Variable[Any]) -> str:
    topic = _required(env, variable)
    if not _TOPIC.match(topic):
        raise ConfigError(f"{variable.name} must be a Pub/Sub topic id (not a path), got {topic!r}")
    return topic


def _database(env: Reader, variable: Variable[Any]) -> str:
    database = _required(env, variable)
    if not _DATABASE.match(database):
        raise ConfigError(
            f"{variable.name} must be a Firestore database id such as "
            f"{DEFAULT_FIRESTORE_DATABASE}, got {database!r}"
        )
    return database


def _sender(env: Reader, variable: Variable[Any]) -> str | None:
    sender = env.value(variable.name)
    if sender is None:
        return None
    normalised = to_e164(sender, []) if sender.startswith("+") else None
    if normalised is None:
        raise ConfigError(
            f"{variable.name} must be one of your Linq lines in E.164 (+14155550100), "
            f"got {sender!r}"
        )
    return normalised


def _region(env: Reader, variable: Variable[Any]) -> str:
    region = _required(env, variable).upper()
    if not is_region(region):
        raise ConfigError(
            f"{variable.name} must be a two-letter region code such as US, got {region!r}"
        )
    return region


def _brand(env: Reader, variable: Variable[Any]) -> str | None:
    value = env.value(variable.name)
    if value is None:
        return None
    brand = clean(value)
    if len(brand) > MAX_BRAND_LENGTH:
        raise ConfigError(
            f"{variable.name} must be at most {MAX_BRAND_LENGTH} characters (it is never "
            f"shortened), got {len(brand)}"
        )
    # Imported here, as in the template parsers: the intakes, which import this module, read no
    # text, and the message module is a good part of their cold start.
    from shared.core.message import contains_url

    if contains_url(brand):
        raise ConfigError(
            f"{variable.name} must not look like a URL or a domain, got {brand!r}: Linq rejects a "
            "URL in the first message of a new chat; use the name customers know, such as Acme"
        )
    return brand


def _template(env: Reader, variable: Variable[Any]) -> Template:
    """MESSAGE_TEMPLATE: see `_text`."""
    from shared.core.message import BRANDED_TEMPLATE, DEFAULT_TEMPLATE

    return _text(env, variable, DEFAULT_TEMPLATE, BRANDED_TEMPLATE)


def _action_template(env: Reader, variable: Variable[Any]) -> Template:
    """ACTION_TEMPLATE, the 3-D Secure text: see `_text`."""
    from shared.core.message import BRANDED_ACTION_TEMPLATE, DEFAULT_ACTION_TEMPLATE

    return _text(env, variable, DEFAULT_ACTION_TEMPLATE, BRANDED_ACTION_TEMPLATE)


def _text(env: Reader, variable: Variable[Any], default: str, branded: str) -> Template:
    """The text as written (its own spacing kept), else the default text (the branded one when
    BRAND_NAME is set), checked with BRAND_NAME counted in."""
    # Imported here: the intakes, which import this module, read no text, and the message module
    # is a good part of their cold start.
    from shared.core.message import Template

    brand = BRAND_NAME.read(env)
    text = env.raw(variable.name) or (branded if brand else default)
    return Template.parse(text, variable.name, brand)


def _language_templates(env: Reader, variable: Variable[Any]) -> dict[str, Template]:
    """Every variable of the family (MESSAGE_TEMPLATE_<LANG>, ACTION_TEMPLATE_<LANG>) that is set,
    by lower-case language, each checked under its own name."""
    from shared.core.message import Template

    prefix = variable.name.removesuffix(LANGUAGE)
    brand = BRAND_NAME.read(env)
    by_language = {}
    for name in env.names():
        if not name.startswith(prefix):
            continue
        code = name.removeprefix(prefix)
        if not _LANGUAGE_CODE.fullmatch(code):
            raise ConfigError(
                f"{name} is not a language template: the name must end in a two- or three-letter "
                f"ISO 639 language code in upper case, such as {prefix}ES"
            )
        text = env.raw(name)
        if text:
            by_language[code.lower()] = Template.parse(text, name, brand)
    return by_language


def _attempts(env: Reader, variable: Variable[Any]) -> AttemptPolicy:
    return AttemptPolicy.parse(_required(env, variable), variable.name)


def _quiet_hours(env: Reader, variable: Variable[Any]) -> QuietHours | None:
    return _parse_quiet_hours(_required(env, variable), variable.name)


def _whole(env: Reader, variable: Variable[Any], unit: str, low: int, high: int, why: str) -> int:
    text = _required(env, variable)
    if not text.isdigit() or not low <= int(text) <= high:
        raise ConfigError(f"{variable.name} must be {unit} from {low} to {high}{why}, got {text!r}")
    return int(text)


def _holdout(env: Reader, variable: Variable[Any]) -> int:
    why = " (the share of failed payments kept untexted)"
    return _whole(env, variable, "a whole number", 0, MAX_HOLDOUT_PERCENT, why)


def _line_daily_limit(env: Reader, variable: Variable[Any]) -> int:
    why = " (messages one line sends in a UTC day before new texts go out from another)"
    return _whole(env, variable, "a whole number", 1, MAX_LINE_DAILY_LIMIT, why)


def _lease(env: Reader, variable: Variable[Any]) -> timedelta:
    seconds = _whole(env, variable, "whole seconds", 1, MAX_LEASE_SECONDS, "")
    return timedelta(seconds=seconds)


def _surge_min(env: Reader, variable: Variable[Any]) -> int | None:
    """None: `off`, the guard disabled."""
    text = _required(env, variable)
    if text.lower() == OFF:
        return None
    why = " (failed payments in SURGE_WINDOW before the guard asks Stripe), or off"
    return _whole(env, variable, "a whole number", 1, MAX_SURGE_MIN, why)


def _surge_window(env: Reader, variable: Variable[Any]) -> timedelta:
    text = _required(env, variable)
    match = _SURGE_WINDOW.match(text.lower())
    window = timedelta()
    if match is not None:
        window = timedelta(**{"minutes" if match.group(2) == "m" else "hours": int(match.group(1))})
    if not timedelta(minutes=1) <= window <= MAX_SURGE_WINDOW:
        raise ConfigError(
            f"{variable.name} must be minutes or hours such as 10m or 1h, from 1m to 24h, "
            f"got {text!r}"
        )
    return window


def _surge_share(env: Reader, variable: Variable[Any]) -> int:
    text = _required(env, variable).removesuffix("%").strip()
    if not text.isdigit() or not 1 <= int(text) <= 99:
        raise ConfigError(
            f"{variable.name} must be a percentage from 1 to 99 (of the payments Stripe "
            f"attempted that failed), got {env.value(variable.name)!r}"
        )
    return int(text)


# deploy.sh itself uses the next two as they are set: white space is not trimmed away.


def _version(env: Reader, variable: Variable[Any]) -> str | None:
    value = env.raw(variable.name) or None
    if value is not None and not _VERSION.match(value):
        raise ConfigError(
            f"{variable.name} must be a version number, got {value!r}: versions are pinned, "
            "never 'latest'"
        )
    return value


def _slack_choice(env: Reader, variable: Variable[Any]) -> bool | None:
    value = env.raw(variable.name) or None
    if value is None:
        return None
    if value not in ("1", "0"):
        raise ConfigError(f"{variable.name} must be 1, 0 or unset, got {value!r}")
    return value == "1"


# --- deploy-time rules: what deploy.sh checks beyond the parsers --------------------------------


def _deployed_topic(topic: str, env: Reader) -> str | None:
    if len(topic) > MAX_DEPLOYED_TOPIC:
        return (
            f"must be at most {MAX_DEPLOYED_TOPIC} characters (its dead-letter topic and "
            "subscription add to it)"
        )
    return None


def _linq_events_topic(topic: str, env: Reader) -> str | None:
    if topic == PUBSUB_TOPIC.read(env):
        return f"must differ from {PUBSUB_TOPIC.name}"
    return _deployed_topic(topic, env)


def _outlives_a_run(lease: timedelta, env: Reader) -> str | None:
    if lease <= RECOVER_TIMEOUT:
        return (
            "must be longer than the recover function's timeout "
            f"({RECOVER_TIMEOUT.total_seconds():g} s)"
        )
    return None


# --- the declarations ---------------------------------------------------------------------------

STRIPE_API_KEY: Variable[str] = Variable(
    "STRIPE_API_KEY",
    (RECOVER, BACKFILL, DEPLOY),
    "Stripe secret or restricted key (`sk_...`, `rk_...`). `deploy.sh` deploys it from a "
    "secret: the one an `sm://` reference names, else `stripe-api-key`, made from the value when "
    "missing; it checks the key with Stripe before anything is created and manages the webhook "
    "endpoint with it, so a restricted key needs the Webhook Endpoints write permission too",
    _stripe_api_key,
    when_unset=REQUIRED,
    secret=True,
)
STRIPE_WEBHOOK_SECRET: Variable[str] = Variable(
    "STRIPE_WEBHOOK_SECRET",
    (INGEST,),
    "`whsec_...` signing secret of the webhook endpoint Stripe sends the platform's own events "
    "(`whsec_` and at least 24 letters and digits, as Stripe generated them). Anything else "
    'means "not set up yet": a placeholder such as `not-set-yet` (before the endpoint exists), a '
    "value published or committed to a repository, or one typed by hand (a repeated or "
    "sequential run, words). The platform's own events, and any webhook no secret verifies, are "
    "then answered 503, and a WARNING line per request names the problem",
    _secret,
    when_unset=REQUIRED,
    secret=True,
)
STRIPE_CONNECT_ACCOUNTS: Variable[ConnectedAccounts] = Variable(
    "STRIPE_CONNECT_ACCOUNTS",
    (INGEST, DEPLOY),
    "the Stripe Connect accounts whose failed payments are texted, besides the platform's "
    "own: `*` for every connected account, or account ids separated by commas "
    "(`acct_1A2b3C,acct_4D5e6F`). Any other connected account's event is acknowledged, "
    "never queued, with a `skipped:account_not_enabled` result line. Set, `deploy.sh` makes a "
    "Connect endpoint (`connect=true`) for the ingest function beside the platform's own",
    _connected_accounts,
    when_unset="none: the platform's own invoices only",
)
STRIPE_CONNECT_WEBHOOK_SECRET: Variable[str | None] = Variable(
    "STRIPE_CONNECT_WEBHOOK_SECRET",
    (INGEST,),
    "`whsec_...` signing secret of the Connect webhook endpoint, which Stripe sends the "
    "connected accounts' events only; held to the rules of `STRIPE_WEBHOOK_SECRET`. An event "
    "that names a connected account is taken only when this secret verifies it, the platform's "
    "own only when `STRIPE_WEBHOOK_SECRET` does: signed with the other one, it is refused (400). "
    "Until it is a signing secret (a placeholder such as `not-set-yet`), a connected account's "
    "event and any webhook `STRIPE_WEBHOOK_SECRET` does not verify are answered 503 unverified",
    _optional_secret,
    when_unset="none: a connected account's event is refused; with `STRIPE_CONNECT_ACCOUNTS` set, "
    "not set up yet (503)",
    secret=True,
)
WEBHOOK_BODY_SECONDS: Variable[float] = Variable(
    "WEBHOOK_BODY_SECONDS",
    (INGEST, LINQ_INTAKE),
    "how long an intake waits for a webhook's body once its headers are in, in seconds "
    f"(more than 0, at most {MAX_BODY_SECONDS:g}: the body, the secret and the publish fit the "
    "intake's 30 s); a body not whole by then is answered 408 and its connection closed",
    _body_seconds,
    default="10",
)
LINQ_API_KEY: Variable[str] = Variable(
    "LINQ_API_KEY",
    (RECOVER, LINQ_WEBHOOK, DEPLOY),
    "Linq partner API token. `deploy.sh` deploys it from a secret: the one an `sm://` reference "
    "names, else `linq-api-key`, made from the value when missing; it checks the token with "
    "Linq before anything is created and subscribes the Linq intake with it",
    _secret,
    when_unset=REQUIRED,
    secret=True,
)
GOOGLE_CLOUD_PROJECT: Variable[str] = Variable(
    "GOOGLE_CLOUD_PROJECT",
    (
        INGEST,
        RECOVER,
        BACKFILL,
        RELEASE,
        REPORT,
        PAUSE,
        LINQ_INTAKE,
        LINQ_EVENTS,
        LINQ_WEBHOOK,
        DEPLOY,
    ),
    "project of the topic (ingest, backfill) and of the send ledger (recover); `deploy.sh`'s "
    "project when `--project` is not given",
    _required,
    when_unset=REQUIRED,
)
STRIPE_API_BASE: Variable[str] = Variable(
    "STRIPE_API_BASE",
    (RECOVER, BACKFILL, DEPLOY),
    "Stripe API base URL; `https://` (plain `http://` only for `127.0.0.1` and `localhost`, "
    "where the stand-ins run)",
    _base_url,
    default=DEFAULT_STRIPE_API_BASE,
)
LINQ_API_BASE: Variable[str] = Variable(
    "LINQ_API_BASE",
    (RECOVER, LINQ_WEBHOOK, DEPLOY),
    "Linq API base URL, without a trailing `/v3`; `https://` (plain `http://` only for "
    "`127.0.0.1` and `localhost`)",
    _linq_api_base,
    default=DEFAULT_LINQ_API_BASE,
)
FIRESTORE_DATABASE: Variable[str] = Variable(
    "FIRESTORE_DATABASE",
    (RECOVER, RELEASE, REPORT, PAUSE, LINQ_EVENTS, DEPLOY),
    "Firestore database (native mode) holding the send ledger",
    _database,
    default=DEFAULT_FIRESTORE_DATABASE,
)
PUBSUB_TOPIC: Variable[str] = Variable(
    "PUBSUB_TOPIC",
    (INGEST, BACKFILL, RELEASE, DEPLOY),
    "topic id failed payments are published to (and deferred ones re-published to)",
    _topic,
    default=DEFAULT_TOPIC,
    deploy=_deployed_topic,
)
LINQ_SENDER: Variable[str | None] = Variable(
    "LINQ_SENDER",
    (RECOVER,),
    "E.164 line every text goes out from, whatever its health or count (`LINQ_LINE_DAILY_LIMIT` "
    "does not apply to it)",
    _sender,
    when_unset="each customer's own line: a stable hash of their number over the usable lines",
)
LINQ_LINE_DAILY_LIMIT: Variable[int] = Variable(
    "LINQ_LINE_DAILY_LIMIT",
    (RECOVER,),
    "how many messages a line may send in a UTC day (each text and each link is one, counted "
    "in Firestore) before new texts go out from the customer's next line; the link of a text "
    "already sent and a resumed plan keep their line. 1 to "
    f"{MAX_LINE_DAILY_LIMIT:,}",
    _line_daily_limit,
    default=str(DEFAULT_LINE_DAILY_LIMIT),
    when_unset="(Linq's recommended ceiling per line per day, inbound and outbound)",
)
DEFAULT_PHONE_REGION: Variable[str] = Variable(
    "DEFAULT_PHONE_REGION",
    (RECOVER,),
    "region for numbers written without a country code",
    _region,
    default="US",
    when_unset="(the customer's address country wins)",
)
MESSAGE_TEMPLATE: Variable[Template] = Variable(
    "MESSAGE_TEMPLATE",
    (RECOVER,),
    "the text; placeholders `{first_name}` `{description}` `{amount}` `{brand}`; must contain "
    "`STOP`, no `{url}`, no URL, and fit in 319 characters with `BRAND_NAME` and the longest "
    "amount Stripe accepts in any currency (`IDR 9,999,999,999.99`, 20 characters)",
    _template,
    when_unset="the built-in text (the branded one when `BRAND_NAME` is set)",
)
LANGUAGE_TEMPLATES: Variable[dict[str, Template]] = Variable(
    f"MESSAGE_TEMPLATE_{LANGUAGE}",
    (RECOVER,),
    "the text for customers whose first preferred locale is in language `<LANG>`, a two- or "
    "three-letter ISO 639 code in upper case (`MESSAGE_TEMPLATE_ES`); checked like "
    "`MESSAGE_TEMPLATE`",
    _language_templates,
    when_unset="`MESSAGE_TEMPLATE`",
)
ACTION_TEMPLATE: Variable[Template] = Variable(
    "ACTION_TEMPLATE",
    (RECOVER,),
    "the text when the invoice's latest payment waits for the customer to confirm it (3-D "
    "Secure: its PaymentIntent is `requires_action`); the same placeholders and checks as "
    "`MESSAGE_TEMPLATE`",
    _action_template,
    when_unset="the built-in 3-D Secure text (the branded one when `BRAND_NAME` is set)",
)
ACTION_LANGUAGE_TEMPLATES: Variable[dict[str, Template]] = Variable(
    f"ACTION_TEMPLATE_{LANGUAGE}",
    (RECOVER,),
    "the 3-D Secure text for customers whose first preferred locale is in language `<LANG>` "
    "(`ACTION_TEMPLATE_ES`); checked like `MESSAGE_TEMPLATE`",
    _language_templates,
    when_unset="`MESSAGE_TEMPLATE_<LANG>` of that language, else `ACTION_TEMPLATE`",
)
BRAND_NAME: Variable[str | None] = Variable(
    "BRAND_NAME",
    (RECOVER,),
    f"who is writing, for `{{brand}}`: at most {MAX_BRAND_LENGTH} characters, not a URL or a "
    "domain (Linq's first-message rule)",
    _brand,
    when_unset="none; a template with `{brand}` then fails to start",
)
TEXT_ON_ATTEMPTS: Variable[AttemptPolicy] = Variable(
    "TEXT_ON_ATTEMPTS",
    (RECOVER,),
    "which failed attempts get a text: `all`, or attempt numbers such as `1,3`; the others "
    "end as `skipped:policy`",
    _attempts,
    default=ALL,
    when_unset="(one text per failed payment)",
)
DRY_RUN: Variable[bool] = Variable(
    "DRY_RUN",
    (RECOVER,),
    "`true`: decide everything, send nothing, record nothing, log `dry_run` lines "
    "(`true`/`false`, `1`/`0`, `yes`/`no`)",
    _flag,
    default="false",
)
QUIET_HOURS: Variable[QuietHours | None] = Variable(
    "QUIET_HOURS",
    (RECOVER,),
    "the window, in the recipient's local time, in which nothing is sent: `HH:MM-HH:MM` "
    "(may cross midnight; `HH:MM:SS` to the second), or `off`; a failure inside it is "
    "deferred to the window's end "
    "(`deferred:quiet_hours`) and sent then if it still should be",
    _quiet_hours,
    default=DEFAULT_QUIET_HOURS,
    when_unset="(US rules for such messages: 08:00-21:00 local)",
)
HOLDOUT_PERCENT: Variable[int] = Variable(
    "HOLDOUT_PERCENT",
    (RECOVER,),
    "the share of failed payments kept untexted to measure what the texts cause "
    f"(`skipped:holdout`), 0 to {MAX_HOLDOUT_PERCENT}; chosen by a stable hash of the invoice "
    "id, so an invoice stays in its group across attempts and replays",
    _holdout,
    default="0",
)
LEASE_SECONDS: Variable[timedelta] = Variable(
    "LEASE_SECONDS",
    (RECOVER,),
    "how long a run owns a failed payment before another may take it over (the ledger "
    f"lease), in whole seconds up to {MAX_LEASE_SECONDS}; `deploy.sh` refuses one that is not "
    "longer than the recover function's timeout "
    f"({RECOVER_TIMEOUT.total_seconds():g} s), so no run outlives its lease",
    _lease,
    default=f"{DEFAULT_LEASE.total_seconds():g}",
    deploy=_outlives_a_run,
)
SURGE_MIN: Variable[int | None] = Variable(
    "SURGE_MIN",
    (RECOVER,),
    "the surge guard: how many failed payments within `SURGE_WINDOW` make it ask Stripe how "
    "many payments succeeded meanwhile; when the failed ones are more than `SURGE_SHARE` of all, "
    "texting pauses itself as `./dev pause` would (`deferred:paused`), and Slack is told. A "
    f"whole number up to {MAX_SURGE_MIN:,}, or `off`",
    _surge_min,
    default="50",
)
SURGE_WINDOW: Variable[timedelta] = Variable(
    "SURGE_WINDOW",
    (RECOVER,),
    "the surge guard's window: minutes or hours such as `10m` or `1h`, from 1m to 24h",
    _surge_window,
    default="10m",
)
SURGE_SHARE: Variable[int] = Variable(
    "SURGE_SHARE",
    (RECOVER,),
    "the surge guard's share: a surge is when more than this percentage of the payments Stripe "
    "attempted in `SURGE_WINDOW` failed (1 to 99)",
    _surge_share,
    default="50",
)
LINQ_WEBHOOK_SECRET: Variable[str] = Variable(
    "LINQ_WEBHOOK_SECRET",
    (LINQ_INTAKE,),
    "`whsec_...` signing secret of the Linq webhook subscription (`./dev linq-webhook` stores "
    "it in Secret Manager): the base64 of at least 24 random bytes. Until it is one (a "
    "placeholder, a published or committed value, a passphrase), every Linq webhook is "
    "answered 503 without being verified, and Linq retries it for about 30 minutes",
    _secret,
    when_unset=REQUIRED,
    secret=True,
)
LINQ_EVENTS_TOPIC: Variable[str] = Variable(
    "LINQ_EVENTS_TOPIC",
    (LINQ_INTAKE, DEPLOY),
    "topic id verified Linq webhooks are published to",
    _topic,
    default=DEFAULT_LINQ_EVENTS_TOPIC,
    deploy=_linq_events_topic,
)
SLACK_WEBHOOK_URL: Variable[str | None] = Variable(
    "SLACK_WEBHOOK_URL",
    (RECOVER, LINQ_EVENTS, PAUSE),
    "Slack incoming webhook for an internal note per outcome (dry runs included), and for each "
    "pause and resume; `https://` (plain `http://` only for `127.0.0.1` and `localhost`)",
    _slack_url,
    when_unset="off",
    secret=True,
)
PUBSUB_EMULATOR_HOST: Variable[str | None] = Variable(
    "PUBSUB_EMULATOR_HOST",
    (INGEST, BACKFILL, RELEASE, LINQ_INTAKE),
    "send the Pub/Sub client to the emulator (`./dev` and the tests set it)",
    _as_set,
    when_unset="unset",
    local=True,
)
FIRESTORE_EMULATOR_HOST: Variable[str | None] = Variable(
    "FIRESTORE_EMULATOR_HOST",
    (RECOVER, RELEASE, REPORT, PAUSE, LINQ_EVENTS),
    "send the ledger to the Firestore emulator (`./dev` and the tests set it)",
    _as_set,
    when_unset="unset",
    local=True,
)
READ_TIMEOUT_SECONDS: Variable[float | None] = Variable(
    "READ_TIMEOUT_SECONDS",
    (RECOVER,),
    "how long a call to Stripe, Linq or the ledger waits for its answer before it counts as "
    f"timed out (and is retried), in seconds (more than 0, at most "
    f"{MAX_READ_TIMEOUT_SECONDS:g}): the tests shorten it to show timeouts without waiting "
    "for the deployed ones",
    _read_timeout,
    when_unset="8 for Stripe and Linq, 5 for the ledger",
    local=True,
)
SECRET_MANAGER_API_BASE: Variable[str | None] = Variable(
    "SECRET_MANAGER_API_BASE",
    (LINQ_WEBHOOK, DEPLOY),
    "send the Secret Manager calls of `./dev linq-webhook` and of `deploy.sh`'s Stripe and Linq "
    "steps to that stand-in, without credentials (the tests set it)",
    _as_set,
    when_unset="unset",
    local=True,
)
SECRETS = (
    STRIPE_WEBHOOK_SECRET,
    STRIPE_CONNECT_WEBHOOK_SECRET,
    STRIPE_API_KEY,
    LINQ_API_KEY,
    SLACK_WEBHOOK_URL,
    LINQ_WEBHOOK_SECRET,
)

FIRESTORE_LOCATION: Variable[str | None] = Variable(
    "FIRESTORE_LOCATION",
    (DEPLOY,),
    "where the send ledger's database is created",
    _as_set,
    when_unset="the functions' region",
)


def _version_of(secret_variable: Variable[Any]) -> Variable[str | None]:
    return Variable(
        f"{secret_variable.name}_VERSION",
        (DEPLOY,),
        f"the version of the secret deployed as `{secret_variable.name}` to pin",
        _version,
        when_unset="the newest `ENABLED` one, never `latest`",
    )


DEPLOY_ONLY: tuple[Variable[Any], ...] = (
    Variable(
        "REGION",
        (DEPLOY,),
        "the functions' region when `--region` is not given",
        _as_set,
        when_unset="`CLOUDSDK_FUNCTIONS_REGION`",
    ),
    Variable(
        "CLOUDSDK_FUNCTIONS_REGION",
        (DEPLOY,),
        "gcloud's region of functions: the region when neither `--region` nor `REGION` is given",
        _as_set,
        when_unset="unset",
    ),
    Variable(
        "CLOUDSDK_CORE_PROJECT",
        (DEPLOY,),
        "gcloud's project: the project when neither `--project` nor `GOOGLE_CLOUD_PROJECT` is "
        "given",
        _as_set,
        when_unset="unset",
    ),
    FIRESTORE_LOCATION,
    *(_version_of(variable) for variable in SECRETS),
    Variable(
        "SLACK",
        (DEPLOY,),
        "`1`: the recover and Linq event functions get `SLACK_WEBHOOK_URL` from the secret "
        "`slack-webhook-url`, which must exist; `0`: never",
        _slack_choice,
        when_unset="when the secret exists",
    ),
    Variable(
        "BUILD_DIR",
        (DEPLOY,),
        "where the functions are staged",
        _as_set,
        when_unset="`build` in the checkout",
    ),
    Variable(
        "PYTHON",
        (DEPLOY,),
        "the checkout's environment, whose pinned packages are shipped",
        _as_set,
        when_unset="`.venv/bin/python` (`./dev setup` makes it)",
    ),
)
VARIABLES: tuple[Variable[Any], ...] = (
    STRIPE_API_KEY,
    STRIPE_WEBHOOK_SECRET,
    STRIPE_CONNECT_ACCOUNTS,
    STRIPE_CONNECT_WEBHOOK_SECRET,
    WEBHOOK_BODY_SECONDS,
    LINQ_API_KEY,
    GOOGLE_CLOUD_PROJECT,
    STRIPE_API_BASE,
    LINQ_API_BASE,
    FIRESTORE_DATABASE,
    PUBSUB_TOPIC,
    LINQ_SENDER,
    LINQ_LINE_DAILY_LIMIT,
    DEFAULT_PHONE_REGION,
    MESSAGE_TEMPLATE,
    LANGUAGE_TEMPLATES,
    ACTION_TEMPLATE,
    ACTION_LANGUAGE_TEMPLATES,
    BRAND_NAME,
    TEXT_ON_ATTEMPTS,
    DRY_RUN,
    QUIET_HOURS,
    HOLDOUT_PERCENT,
    LEASE_SECONDS,
    SURGE_MIN,
    SURGE_WINDOW,
    SURGE_SHARE,
    LINQ_WEBHOOK_SECRET,
    LINQ_EVENTS_TOPIC,
    SLACK_WEBHOOK_URL,
    PUBSUB_EMULATOR_HOST,
    FIRESTORE_EMULATOR_HOST,
    READ_TIMEOUT_SECONDS,
    SECRET_MANAGER_API_BASE,
    *DEPLOY_ONLY,
)
BY_NAME = {variable.name: variable for variable in VARIABLES}
# The variables of many names, one per language.
FAMILIES = tuple(variable for variable in VARIABLES if variable.family)


def read_by(reader: str) -> tuple[Variable[Any], ...]:
    """The variables one function (or tool) reads."""
    return tuple(variable for variable in VARIABLES if reader in variable.readers)


def family_of(name: str) -> Variable[Any] | None:
    """The family `name` is one of (`MESSAGE_TEMPLATE_ES`: MESSAGE_TEMPLATE_<LANG>), or None."""
    return next((v for v in FAMILIES if v.family and name.startswith(v.family)), None)


def is_product_variable(name: str) -> bool:
    """Whether `name` is a variable the product or one of its tools reads (language templates
    included); deploy.sh's own are not."""
    variable = BY_NAME.get(name) or family_of(name)
    return variable is not None and variable.readers != (DEPLOY,)


# --- each function's settings -------------------------------------------------------------------


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
    endpoint exists), `signing.secret` is None and `signing.problem` says what is wrong with the
    value, never quoting it. The intake then verifies nothing and answers 503, so the sender
    retries and nothing is lost.
    """

    signing: Signing
    project: str
    topic: str
    # How long the body may take to arrive once the headers are in.
    body_seconds: float

    @property
    def signings(self) -> tuple[Signing, ...]:
        """Every signing secret the intake verifies with."""
        return (self.signing,)


@dataclass(frozen=True)
class IngestSettings(IntakeSettings):
    """The Stripe intake: the signing secrets of the platform's account endpoint
    (STRIPE_WEBHOOK_SECRET) and of its Connect endpoint (STRIPE_CONNECT_WEBHOOK_SECRET; None when
    there is none), publishing to PUBSUB_TOPIC the events of the platform and of the connected
    accounts STRIPE_CONNECT_ACCOUNTS names."""

    connect: Signing | None
    accounts: ConnectedAccounts

    @property
    def endpoints(self) -> dict[EndpointKind, Signing]:
        """The signing secret of each kind of endpoint the intake hears from."""
        kinds = {EndpointKind.ACCOUNT: self.signing}
        if self.connect is not None:
            kinds[EndpointKind.CONNECT] = self.connect
        return kinds

    @property
    def signings(self) -> tuple[Signing, ...]:
        return tuple(self.endpoints.values())

    @classmethod
    def read(cls, env: Reader) -> Self:
        accounts = STRIPE_CONNECT_ACCOUNTS.read(env)
        connect_secret = STRIPE_CONNECT_WEBHOOK_SECRET.read(env)
        connect = None
        if connect_secret is not None:
            connect = Signing.of(
                STRIPE_CONNECT_WEBHOOK_SECRET.name, connect_secret, stripe_secret_problem
            )
        elif accounts:
            # The accounts' events come, and nothing can verify them: Stripe retries them.
            connect = Signing(
                STRIPE_CONNECT_WEBHOOK_SECRET.name,
                None,
                f"it is unset, and {STRIPE_CONNECT_ACCOUNTS.name} names connected accounts",
            )
        return cls(
            Signing.of(
                STRIPE_WEBHOOK_SECRET.name, STRIPE_WEBHOOK_SECRET.read(env), stripe_secret_problem
            ),
            project=GOOGLE_CLOUD_PROJECT.read(env),
            topic=PUBSUB_TOPIC.read(env),
            body_seconds=WEBHOOK_BODY_SECONDS.read(env),
            connect=connect,
            accounts=accounts,
        )


@dataclass(frozen=True)
class LinqIntakeSettings(IntakeSettings):
    """The Linq intake: LINQ_WEBHOOK_SECRET, publishing to LINQ_EVENTS_TOPIC."""

    @classmethod
    def read(cls, env: Reader) -> Self:
        return cls(
            Signing.of(
                LINQ_WEBHOOK_SECRET.name, LINQ_WEBHOOK_SECRET.read(env), linq_secret_problem
            ),
            project=GOOGLE_CLOUD_PROJECT.read(env),
            topic=LINQ_EVENTS_TOPIC.read(env),
            body_seconds=WEBHOOK_BODY_SECONDS.read(env),
        )


@dataclass(frozen=True)
class RecoverSettings(Settings):
    """What the recover function needs: API access, the line choice, the texts and the operator's
    controls (which attempts get a text, dry run, quiet hours, holdout, the lease)."""

    stripe_api_key: str
    linq_api_key: str
    project: str
    firestore_database: str
    stripe_api_base: str
    linq_api_base: str
    linq_sender: str | None
    line_daily_limit: int
    default_region: str
    brand: str | None
    templates: Templates
    # The text asking to confirm a payment that waits for it (3-D Secure).
    action_templates: Templates
    attempts: AttemptPolicy
    dry_run: bool
    slack_webhook_url: str | None
    lease: timedelta
    quiet_hours: QuietHours | None
    holdout_percent: int
    # None: each adapter's own read timeout.
    read_timeout: float | None
    # None: SURGE_MIN=off.
    surge: SurgeRule | None

    @property
    def stripe_mode(self) -> str:
        return stripe_key_mode(self.stripe_api_key)

    @classmethod
    def read(cls, env: Reader) -> Self:
        from shared.core.message import Templates

        templates = Templates(MESSAGE_TEMPLATE.read(env), LANGUAGE_TEMPLATES.read(env))
        # A language with a MESSAGE_TEMPLATE_<LANG> and no ACTION_TEMPLATE_<LANG> keeps its own:
        # the customer reads their language, and the link still opens the page where they
        # confirm, rather than a text in a language they may not read.
        action_by_language = {**templates.by_language, **ACTION_LANGUAGE_TEMPLATES.read(env)}
        return cls(
            stripe_api_key=STRIPE_API_KEY.read(env),
            linq_api_key=LINQ_API_KEY.read(env),
            project=GOOGLE_CLOUD_PROJECT.read(env),
            firestore_database=FIRESTORE_DATABASE.read(env),
            stripe_api_base=STRIPE_API_BASE.read(env),
            linq_api_base=LINQ_API_BASE.read(env),
            linq_sender=LINQ_SENDER.read(env),
            line_daily_limit=LINQ_LINE_DAILY_LIMIT.read(env),
            default_region=DEFAULT_PHONE_REGION.read(env),
            brand=BRAND_NAME.read(env),
            templates=templates,
            action_templates=Templates(ACTION_TEMPLATE.read(env), action_by_language),
            attempts=TEXT_ON_ATTEMPTS.read(env),
            dry_run=DRY_RUN.read(env),
            slack_webhook_url=SLACK_WEBHOOK_URL.read(env),
            lease=LEASE_SECONDS.read(env),
            quiet_hours=QUIET_HOURS.read(env),
            holdout_percent=HOLDOUT_PERCENT.read(env),
            read_timeout=READ_TIMEOUT_SECONDS.read(env),
            surge=_surge_rule(env),
        )


def _surge_rule(env: Reader) -> SurgeRule | None:
    minimum = SURGE_MIN.read(env)
    window, share = SURGE_WINDOW.read(env), SURGE_SHARE.read(env)
    return None if minimum is None else SurgeRule(minimum, window, share)


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
            stripe_api_key=STRIPE_API_KEY.read(env),
            stripe_api_base=STRIPE_API_BASE.read(env),
            project=GOOGLE_CLOUD_PROJECT.read(env),
            topic=PUBSUB_TOPIC.read(env),
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
            project=GOOGLE_CLOUD_PROJECT.read(env),
            firestore_database=FIRESTORE_DATABASE.read(env),
            topic=PUBSUB_TOPIC.read(env),
        )


@dataclass(frozen=True)
class ReportSettings(Settings):
    """What `./dev report` needs: where the ledger is."""

    project: str
    firestore_database: str

    @classmethod
    def read(cls, env: Reader) -> Self:
        return cls(
            project=GOOGLE_CLOUD_PROJECT.read(env),
            firestore_database=FIRESTORE_DATABASE.read(env),
        )


@dataclass(frozen=True)
class ControlSettings(Settings):
    """What `./dev pause` and `./dev resume` need: where the ledger is, and the team's Slack."""

    project: str
    firestore_database: str
    slack_webhook_url: str | None

    @classmethod
    def read(cls, env: Reader) -> Self:
        return cls(
            project=GOOGLE_CLOUD_PROJECT.read(env),
            firestore_database=FIRESTORE_DATABASE.read(env),
            slack_webhook_url=SLACK_WEBHOOK_URL.read(env),
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
            project=GOOGLE_CLOUD_PROJECT.read(env),
            firestore_database=FIRESTORE_DATABASE.read(env),
            slack_webhook_url=SLACK_WEBHOOK_URL.read(env),
        )
