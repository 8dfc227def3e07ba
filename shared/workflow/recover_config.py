"""The recover function's settings: API access, sender choice, texts and operator controls."""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass

from shared.adapters.secrets import SecretResolver
from shared.core.errors import ConfigError
from shared.core.message import (
    BRANDED_TEMPLATE,
    DEFAULT_TEMPLATE,
    Template,
    Templates,
    contains_url,
)
from shared.core.phone import is_region, to_e164
from shared.core.policy import ALL, AttemptPolicy
from shared.core.text import clean
from shared.workflow.config import (
    DEFAULT_STRIPE_API_BASE,
    Environ,
    base_url,
    env_value,
    flag,
    http_url,
    required,
    secret_value,
    stripe_api_key_from,
    stripe_key_mode,
)

DEFAULT_LINQ_API_BASE = "https://api.linqapp.com/api/partner"
DEFAULT_PHONE_REGION = "US"
DEFAULT_FIRESTORE_DATABASE = "dunning"
# The brand opens every text and is never shortened, so it has to stay short.
MAX_BRAND_LENGTH = 40
TEMPLATE_VARIABLE = "MESSAGE_TEMPLATE"
# The ledger lease must outlast a run (the function's timeout, 120 s in deploy.sh): a shorter one
# could let a second run take over while the first is still sending.
DEFAULT_LEASE_SECONDS = 180
_LEASE_RANGE = range(2, 3601)
# MESSAGE_TEMPLATE_ES, MESSAGE_TEMPLATE_FIL: an ISO 639-1 or 639-2/3 language code.
_LANGUAGE_TEMPLATE = re.compile(rf"^{TEMPLATE_VARIABLE}_([A-Z]{{2,3}})$")


def _brand(env: Environ) -> str | None:
    value = env_value(env, "BRAND_NAME")
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


def _lease(env: Environ) -> dt.timedelta:
    text = env_value(env, "LEASE_SECONDS")
    if text is None:
        return dt.timedelta(seconds=DEFAULT_LEASE_SECONDS)
    if not text.isdigit() or int(text) not in _LEASE_RANGE:
        raise ConfigError(
            f"LEASE_SECONDS must be whole seconds from {_LEASE_RANGE.start} to "
            f"{_LEASE_RANGE.stop - 1}, longer than the function's timeout, got {text!r}"
        )
    return dt.timedelta(seconds=int(text))


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
    lease: dt.timedelta = dt.timedelta(seconds=DEFAULT_LEASE_SECONDS)

    @property
    def stripe_mode(self) -> str:
        return stripe_key_mode(self.stripe_api_key)

    @classmethod
    def from_env(
        cls, env: Environ | None = None, secrets: SecretResolver | None = None
    ) -> RecoverSettings:
        env = os.environ if env is None else env
        secrets = secrets or SecretResolver()
        stripe_api_key = stripe_api_key_from(env, secrets)
        linq_api_key = secret_value(env, "LINQ_API_KEY", "the Linq partner API token", secrets)
        linq_api_base = base_url(env, "LINQ_API_BASE", DEFAULT_LINQ_API_BASE)
        if linq_api_base.endswith("/v3"):
            raise ConfigError(
                f"LINQ_API_BASE must not end in /v3 (every path already starts with it): "
                f"use {linq_api_base.removesuffix('/v3')}"
            )
        region = (env_value(env, "DEFAULT_PHONE_REGION") or DEFAULT_PHONE_REGION).upper()
        if not is_region(region):
            raise ConfigError(
                f"DEFAULT_PHONE_REGION must be a two-letter region code such as US, got {region!r}"
            )
        sender = env_value(env, "LINQ_SENDER")
        if sender is not None:
            normalised = to_e164(sender, []) if sender.startswith("+") else None
            if normalised is None:
                raise ConfigError(
                    f"LINQ_SENDER must be one of your Linq lines in E.164 (+14155550100), "
                    f"got {sender!r}"
                )
            sender = normalised
        slack = env_value(env, "SLACK_WEBHOOK_URL")
        if slack is not None:
            slack = http_url(
                "SLACK_WEBHOOK_URL",
                secrets.resolve("SLACK_WEBHOOK_URL", slack),
                "https://hooks.slack.com/services/T000/B000/XXXX",
                secret=True,
            )
        brand = _brand(env)
        return cls(
            stripe_api_key=stripe_api_key,
            linq_api_key=linq_api_key,
            project=required(env, "GOOGLE_CLOUD_PROJECT", "the project of the send ledger"),
            firestore_database=env_value(env, "FIRESTORE_DATABASE") or DEFAULT_FIRESTORE_DATABASE,
            stripe_api_base=base_url(env, "STRIPE_API_BASE", DEFAULT_STRIPE_API_BASE),
            linq_api_base=linq_api_base,
            linq_sender=sender,
            default_region=region,
            brand=brand,
            templates=_templates(env, brand),
            attempts=AttemptPolicy.parse(env_value(env, "TEXT_ON_ATTEMPTS") or ALL),
            dry_run=flag(env, "DRY_RUN"),
            slack_webhook_url=slack,
            lease=_lease(env),
        )
