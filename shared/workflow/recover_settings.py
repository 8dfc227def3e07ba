"""The recover function's settings: API access, sender choice, texts and operator controls,
read with the one reader of shared/workflow/settings.py."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Self

from shared.core.errors import ConfigError
from shared.core.message import (
    BRANDED_ACTION_TEMPLATE,
    BRANDED_TEMPLATE,
    DEFAULT_ACTION_TEMPLATE,
    DEFAULT_TEMPLATE,
    Template,
    Templates,
    contains_url,
)
from shared.core.phone import is_region, to_e164
from shared.core.policy import ALL, AttemptPolicy
from shared.core.quiet_hours import QuietHours, parse_quiet_hours
from shared.core.text import clean
from shared.workflow.settings import (
    ACTION_LANGUAGE_PREFIX,
    ACTION_TEMPLATE_VARIABLE,
    DEFAULT_FIRESTORE_DATABASE,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_LINQ_API_BASE,
    DEFAULT_PHONE_REGION,
    DEFAULT_QUIET_HOURS,
    DEFAULT_STRIPE_API_BASE,
    LANGUAGE_TEMPLATE_PREFIX,
    TEMPLATE_VARIABLE,
    Reader,
    Settings,
    slack_url,
    stripe_api_key,
    stripe_key_mode,
)

# MESSAGE_TEMPLATE_ES, MESSAGE_TEMPLATE_FIL: an ISO 639-1 or 639-2/3 language code.
_LANGUAGE_CODE = re.compile(r"[A-Z]{2,3}")
_LEASE_RANGE = range(2, 3601)
# The brand opens every text and is never shortened, so it has to stay short.
MAX_BRAND_LENGTH = 40
# More than half untexted would cost more recoveries than the measurement is worth.
MAX_HOLDOUT_PERCENT = 50


@dataclass(frozen=True)
class RecoverSettings(Settings):
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
    # The text asking to confirm a payment that waits for it (3-D Secure).
    action_templates: Templates
    attempts: AttemptPolicy
    dry_run: bool
    slack_webhook_url: str | None
    lease: dt.timedelta = dt.timedelta(seconds=DEFAULT_LEASE_SECONDS)
    quiet_hours: QuietHours | None = None
    holdout_percent: int = 0

    @property
    def stripe_mode(self) -> str:
        return stripe_key_mode(self.stripe_api_key)

    @classmethod
    def read(cls, env: Reader) -> Self:
        brand = _brand(env)
        templates = _templates(env, brand)
        return cls(
            stripe_api_key=stripe_api_key(env),
            linq_api_key=env.secret("LINQ_API_KEY"),
            project=env.required("GOOGLE_CLOUD_PROJECT"),
            firestore_database=env.value("FIRESTORE_DATABASE") or DEFAULT_FIRESTORE_DATABASE,
            stripe_api_base=env.base_url("STRIPE_API_BASE", DEFAULT_STRIPE_API_BASE),
            linq_api_base=_linq_api_base(env),
            linq_sender=_sender(env),
            default_region=_region(env),
            brand=brand,
            templates=templates,
            action_templates=_action_templates(env, brand, templates),
            attempts=AttemptPolicy.parse(env.value("TEXT_ON_ATTEMPTS") or ALL),
            dry_run=env.flag("DRY_RUN"),
            slack_webhook_url=slack_url(env),
            lease=_lease(env),
            quiet_hours=parse_quiet_hours(env.value("QUIET_HOURS") or DEFAULT_QUIET_HOURS),
            holdout_percent=_holdout(env),
        )


def _linq_api_base(env: Reader) -> str:
    base = env.base_url("LINQ_API_BASE", DEFAULT_LINQ_API_BASE)
    if base.endswith("/v3"):
        raise ConfigError(
            f"LINQ_API_BASE must not end in /v3 (every path already starts with it): "
            f"use {base.removesuffix('/v3')}"
        )
    return base


def _region(env: Reader) -> str:
    region = (env.value("DEFAULT_PHONE_REGION") or DEFAULT_PHONE_REGION).upper()
    if not is_region(region):
        raise ConfigError(
            f"DEFAULT_PHONE_REGION must be a two-letter region code such as US, got {region!r}"
        )
    return region


def _sender(env: Reader) -> str | None:
    sender = env.value("LINQ_SENDER")
    if sender is None:
        return None
    normalised = to_e164(sender, []) if sender.startswith("+") else None
    if normalised is None:
        raise ConfigError(
            f"LINQ_SENDER must be one of your Linq lines in E.164 (+14155550100), got {sender!r}"
        )
    return normalised


def _brand(env: Reader) -> str | None:
    value = env.value("BRAND_NAME")
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


def _templates(env: Reader, brand: str | None) -> Templates:
    """MESSAGE_TEMPLATE (by default the branded text when BRAND_NAME is set) and every
    MESSAGE_TEMPLATE_<LANG>, each checked under its own name."""
    default = env.raw(TEMPLATE_VARIABLE) or (BRANDED_TEMPLATE if brand else DEFAULT_TEMPLATE)
    return Templates(
        Template.parse(default, TEMPLATE_VARIABLE, brand),
        _by_language(env, LANGUAGE_TEMPLATE_PREFIX, brand),
    )


def _action_templates(env: Reader, brand: str | None, messages: Templates) -> Templates:
    """ACTION_TEMPLATE (by default the 3-D Secure text, branded when BRAND_NAME is set) and its
    ACTION_TEMPLATE_<LANG>. A language with a MESSAGE_TEMPLATE_<LANG> and no ACTION_TEMPLATE_<LANG>
    keeps its MESSAGE_TEMPLATE_<LANG>: a customer reads their own language, which still sends
    them to the page where they confirm, rather than one they may not read."""
    default = env.raw("ACTION_TEMPLATE") or (
        BRANDED_ACTION_TEMPLATE if brand else DEFAULT_ACTION_TEMPLATE
    )
    return Templates(
        Template.parse(default, ACTION_TEMPLATE_VARIABLE, brand),
        {**messages.by_language, **_by_language(env, ACTION_LANGUAGE_PREFIX, brand)},
    )


def _by_language(env: Reader, prefix: str, brand: str | None) -> dict[str, Template]:
    """Every `<prefix><LANG>` set, by lower-case language code, each checked under its name."""
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


def _lease(env: Reader) -> dt.timedelta:
    text = env.value("LEASE_SECONDS")
    if text is None:
        return dt.timedelta(seconds=DEFAULT_LEASE_SECONDS)
    if not text.isdigit() or int(text) not in _LEASE_RANGE:
        raise ConfigError(
            f"LEASE_SECONDS must be whole seconds from {_LEASE_RANGE.start} to "
            f"{_LEASE_RANGE.stop - 1}, longer than the function's timeout, got {text!r}"
        )
    return dt.timedelta(seconds=int(text))


def _holdout(env: Reader) -> int:
    text = env.value("HOLDOUT_PERCENT")
    if text is None:
        return 0
    if not text.isdigit() or int(text) > MAX_HOLDOUT_PERCENT:
        raise ConfigError(
            f"HOLDOUT_PERCENT must be a whole number from 0 to {MAX_HOLDOUT_PERCENT} (the share "
            f"of failed payments kept untexted), got {text!r}"
        )
    return int(text)
