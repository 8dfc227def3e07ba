"""Settings for both functions, read from the environment once per instance and validated."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.errors import ConfigError
from shared.message import BRANDED_TEMPLATE, DEFAULT_TEMPLATE, Template, Templates, contains_url
from shared.phone import is_region, to_e164
from shared.policy import ALL, AttemptPolicy
from shared.secrets import SecretResolver
from shared.text import clean

DEFAULT_STRIPE_API_BASE = "https://api.stripe.com"
DEFAULT_LINQ_API_BASE = "https://api.linqapp.com/api/partner"
DEFAULT_TOPIC = "stripe-payment-failed"
DEFAULT_PHONE_REGION = "US"
DEFAULT_FIRESTORE_DATABASE = "dunning"
# The brand opens every text and is never shortened, so it has to stay short.
MAX_BRAND_LENGTH = 40
TEMPLATE_VARIABLE = "MESSAGE_TEMPLATE"

_STRIPE_KEY = re.compile(r"^(sk|rk)_(test|live)_\S+$")
# Pub/Sub topic ids: 3-255 characters, a letter first, never starting with "goog".
_TOPIC = re.compile(r"^(?!goog)[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")
# MESSAGE_TEMPLATE_ES, MESSAGE_TEMPLATE_FIL: an ISO 639-1 or 639-2/3 language code.
_LANGUAGE_TEMPLATE = re.compile(rf"^{TEMPLATE_VARIABLE}_([A-Z]{{2,3}})$")
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})

Environ = Mapping[str, str]


def _value(env: Environ, name: str) -> str | None:
    """The variable's value with surrounding white space removed; unset and blank are the same."""
    value = env.get(name, "").strip()
    return value or None


def _required(env: Environ, name: str, meaning: str) -> str:
    value = _value(env, name)
    if value is None:
        raise ConfigError(f"{name} is required: {meaning}")
    return value


def _secret(env: Environ, name: str, meaning: str, secrets: SecretResolver) -> str:
    return secrets.resolve(name, _required(env, name, meaning))


def _http_url(name: str, value: str, example: str, *, secret: bool = False) -> str:
    """An http(s) URL without a trailing slash; a secret URL is never echoed in the error."""
    value = value.rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        found = "" if secret else f", got {value!r}"
        raise ConfigError(f"{name} must be an http(s) URL such as {example}{found}")
    return value


def _base_url(env: Environ, name: str, default: str) -> str:
    return _http_url(name, _value(env, name) or default, default)


def _stripe_api_key(env: Environ, secrets: SecretResolver) -> str:
    key = _secret(env, "STRIPE_API_KEY", "a Stripe secret key (sk_...)", secrets)
    if not _STRIPE_KEY.match(key):
        raise ConfigError(
            "STRIPE_API_KEY must be a secret or restricted key (sk_test_..., sk_live_..., "
            "rk_...); publishable keys (pk_...) cannot read invoices"
        )
    return key


def _topic(env: Environ) -> str:
    topic = _value(env, "PUBSUB_TOPIC") or DEFAULT_TOPIC
    if not _TOPIC.match(topic):
        raise ConfigError(f"PUBSUB_TOPIC must be a Pub/Sub topic id (not a path), got {topic!r}")
    return topic


def _flag(env: Environ, name: str) -> bool:
    """A yes/no variable; unset is no."""
    value = _value(env, name)
    if value is None or value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    raise ConfigError(f"{name} must be true or false (or 1/0, yes/no), got {value!r}")


def _brand(env: Environ) -> str | None:
    value = _value(env, "BRAND_NAME")
    if value is None:
        return None
    brand = clean(value)
    if len(brand) > MAX_BRAND_LENGTH:
        raise ConfigError(
            f"BRAND_NAME must be at most {MAX_BRAND_LENGTH} characters (it is never shortened), "
            f"got {len(brand)}"
        )
    if contains_url(brand):
        raise ConfigError(
            f"BRAND_NAME must not look like a URL or a domain, got {brand!r}: Linq rejects a URL "
            "in the first message of a new chat; use the name customers know, such as Acme"
        )
    return brand


def _templates(env: Environ, brand: str | None) -> Templates:
    """MESSAGE_TEMPLATE (by default the branded text when BRAND_NAME is set) and every
    MESSAGE_TEMPLATE_<LANG>, each checked under its own name."""
    default = env.get(TEMPLATE_VARIABLE) or (BRANDED_TEMPLATE if brand else DEFAULT_TEMPLATE)
    by_language = {}
    for name in sorted(env):
        if not name.startswith(f"{TEMPLATE_VARIABLE}_"):
            continue
        match = _LANGUAGE_TEMPLATE.match(name)
        if match is None:
            raise ConfigError(
                f"{name} is not a language template: the name must end in a two- or three-letter "
                f"ISO 639 language code in upper case, such as {TEMPLATE_VARIABLE}_ES"
            )
        if env[name]:
            by_language[match.group(1).lower()] = Template.parse(env[name], name, brand)
    return Templates(Template.parse(default, TEMPLATE_VARIABLE, brand), by_language)


def stripe_key_mode(key: str) -> str:
    """`test` or `live`, from the key's prefix."""
    return "live" if "_live_" in key[:8] else "test"


@dataclass(frozen=True)
class IngestSettings:
    """What the ingest function needs: the signing secret and where to publish."""

    webhook_secret: str
    project: str
    topic: str

    @classmethod
    def from_env(
        cls, env: Environ | None = None, secrets: SecretResolver | None = None
    ) -> IngestSettings:
        env = os.environ if env is None else env
        secrets = secrets or SecretResolver()
        webhook_secret = _secret(
            env, "STRIPE_WEBHOOK_SECRET", "the whsec_... signing secret of the endpoint", secrets
        )
        if not webhook_secret.startswith("whsec_"):
            raise ConfigError(
                "STRIPE_WEBHOOK_SECRET must be the endpoint's signing secret (whsec_...)"
            )
        topic = _topic(env)
        project = _required(env, "GOOGLE_CLOUD_PROJECT", "the project that owns the topic")
        return cls(webhook_secret=webhook_secret, project=project, topic=topic)


@dataclass(frozen=True)
class RecoverSettings:
    """What the recover function needs: API access, sender choice, the texts and the operator's
    controls (which attempts get a text, dry run)."""

    stripe_api_key: str
    linq_api_key: str
    project: str
    firestore_database: str
    stripe_api_base: str
    linq_api_base: str
    linq_sender: str | None
    default_region: str
    brand: str | None
    templates: Templates
    attempts: AttemptPolicy
    dry_run: bool
    slack_webhook_url: str | None

    @property
    def stripe_mode(self) -> str:
        return stripe_key_mode(self.stripe_api_key)

    @classmethod
    def from_env(
        cls, env: Environ | None = None, secrets: SecretResolver | None = None
    ) -> RecoverSettings:
        env = os.environ if env is None else env
        secrets = secrets or SecretResolver()
        stripe_api_key = _stripe_api_key(env, secrets)
        linq_api_key = _secret(env, "LINQ_API_KEY", "the Linq partner API token", secrets)
        linq_api_base = _base_url(env, "LINQ_API_BASE", DEFAULT_LINQ_API_BASE)
        if linq_api_base.endswith("/v3"):
            raise ConfigError(
                f"LINQ_API_BASE must not end in /v3 (every path already starts with it): "
                f"use {linq_api_base.removesuffix('/v3')}"
            )
        region = (_value(env, "DEFAULT_PHONE_REGION") or DEFAULT_PHONE_REGION).upper()
        if not is_region(region):
            raise ConfigError(
                f"DEFAULT_PHONE_REGION must be a two-letter region code such as US, got {region!r}"
            )
        sender = _value(env, "LINQ_SENDER")
        if sender is not None:
            normalised = to_e164(sender, []) if sender.startswith("+") else None
            if normalised is None:
                raise ConfigError(
                    f"LINQ_SENDER must be one of your Linq lines in E.164 (+14155550100), "
                    f"got {sender!r}"
                )
            sender = normalised
        slack = _value(env, "SLACK_WEBHOOK_URL")
        if slack is not None:
            slack = _http_url(
                "SLACK_WEBHOOK_URL",
                secrets.resolve("SLACK_WEBHOOK_URL", slack),
                "https://hooks.slack.com/services/T000/B000/XXXX",
                secret=True,
            )
        brand = _brand(env)
        return cls(
            stripe_api_key=stripe_api_key,
            linq_api_key=linq_api_key,
            project=_required(env, "GOOGLE_CLOUD_PROJECT", "the project of the send ledger"),
            firestore_database=_value(env, "FIRESTORE_DATABASE") or DEFAULT_FIRESTORE_DATABASE,
            stripe_api_base=_base_url(env, "STRIPE_API_BASE", DEFAULT_STRIPE_API_BASE),
            linq_api_base=linq_api_base,
            linq_sender=sender,
            default_region=region,
            brand=brand,
            templates=_templates(env, brand),
            attempts=AttemptPolicy.parse(_value(env, "TEXT_ON_ATTEMPTS") or ALL),
            dry_run=_flag(env, "DRY_RUN"),
            slack_webhook_url=slack,
        )


@dataclass(frozen=True)
class BackfillSettings:
    """What `./dev backfill` needs: Stripe read access and the topic the recover function reads."""

    stripe_api_key: str
    stripe_api_base: str
    project: str
    topic: str

    @classmethod
    def from_env(
        cls, env: Environ | None = None, secrets: SecretResolver | None = None
    ) -> BackfillSettings:
        env = os.environ if env is None else env
        return cls(
            stripe_api_key=_stripe_api_key(env, secrets or SecretResolver()),
            stripe_api_base=_base_url(env, "STRIPE_API_BASE", DEFAULT_STRIPE_API_BASE),
            project=_required(env, "GOOGLE_CLOUD_PROJECT", "the project that owns the topic"),
            topic=_topic(env),
        )
