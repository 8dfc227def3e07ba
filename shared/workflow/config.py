"""Reading settings from the environment: the shared readers, and the ingest and backfill settings.

Each reader names the variable in its error; secrets may be Secret Manager references.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.adapters.secrets import SecretResolver
from shared.core.errors import ConfigError

DEFAULT_STRIPE_API_BASE = "https://api.stripe.com"
DEFAULT_TOPIC = "stripe-payment-failed"
# The only hosts an API base may name with plain http: the stand-ins and the sandbox listen there.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})

_STRIPE_KEY = re.compile(r"^(sk|rk)_(test|live)_\S+$")
# Pub/Sub topic ids: 3-255 characters, a letter first, never starting with "goog".
_TOPIC = re.compile(r"^(?!goog)[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")
# A signing secret as Stripe issues it: whsec_ and a long random part (32 letters and digits from
# the Dashboard, 64 hex digits from the Stripe CLI). Stripe documents no length, so the bound is
# one no guessable stand-in reaches while every issued secret does.
_SIGNING_SECRET = re.compile(r"whsec_[A-Za-z0-9]{24,}")
# Words of the stand-ins operators type while the endpoint does not exist yet.
_PLACEHOLDER_WORDS = ("pending", "placeholder", "notset", "notyet", "changeme", "example", "dummy")
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})

Environ = Mapping[str, str]


def env_value(env: Environ, name: str) -> str | None:
    """The variable's value with surrounding white space removed; unset and blank are the same."""
    value = env.get(name, "").strip()
    return value or None


def required(env: Environ, name: str, meaning: str) -> str:
    value = env_value(env, name)
    if value is None:
        raise ConfigError(f"{name} is required: {meaning}")
    return value


def secret_value(env: Environ, name: str, meaning: str, secrets: SecretResolver) -> str:
    return secrets.resolve(name, required(env, name, meaning))


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


def base_url(env: Environ, name: str, default: str) -> str:
    return http_url(name, env_value(env, name) or default, default)


def stripe_api_key_from(env: Environ, secrets: SecretResolver) -> str:
    key = secret_value(env, "STRIPE_API_KEY", "a Stripe secret key (sk_...)", secrets)
    if not _STRIPE_KEY.match(key):
        raise ConfigError(
            "STRIPE_API_KEY must be a secret or restricted key (sk_test_..., sk_live_..., "
            "rk_...); publishable keys (pk_...) cannot read invoices"
        )
    return key


def topic_id(env: Environ) -> str:
    topic = env_value(env, "PUBSUB_TOPIC") or DEFAULT_TOPIC
    if not _TOPIC.match(topic):
        raise ConfigError(f"PUBSUB_TOPIC must be a Pub/Sub topic id (not a path), got {topic!r}")
    return topic


def flag(env: Environ, name: str) -> bool:
    """A yes/no variable; unset is no."""
    value = env_value(env, name)
    if value is None or value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    raise ConfigError(f"{name} must be true or false (or 1/0, yes/no), got {value!r}")


def stripe_key_mode(key: str) -> str:
    """`test` or `live`, from the key's prefix."""
    return "live" if "_live_" in key[:8] else "test"


def signing_secret_problem(secret: str) -> str | None:
    """What keeps `secret` from being a Stripe endpoint's signing secret, without quoting it;
    None when it is one."""
    if not secret.startswith("whsec_"):
        return "it does not start with whsec_"
    if not _SIGNING_SECRET.fullmatch(secret):
        return "after whsec_ it is not 24 or more letters and digits"
    random_part = secret.removeprefix("whsec_").lower()
    repeats = any(random_part == random_part[:n] * (len(random_part) // n) for n in range(1, 9))
    if repeats or any(word in random_part for word in _PLACEHOLDER_WORDS):
        return "it is a placeholder"
    return None


@dataclass(frozen=True)
class IngestSettings:
    """What the ingest function needs: the signing secret and where to publish.

    While STRIPE_WEBHOOK_SECRET holds no real signing secret (the first deployment, before the
    Stripe endpoint exists), `webhook_secret` is None and `not_set_up` says what is wrong with
    the value, never quoting it. The function then verifies nothing and answers 503, so Stripe
    retries and nothing is lost.
    """

    webhook_secret: str | None
    not_set_up: str | None
    project: str
    topic: str

    @classmethod
    def from_env(
        cls, env: Environ | None = None, secrets: SecretResolver | None = None
    ) -> IngestSettings:
        env = os.environ if env is None else env
        secrets = secrets or SecretResolver()
        webhook_secret = secret_value(
            env, "STRIPE_WEBHOOK_SECRET", "the whsec_... signing secret of the endpoint", secrets
        )
        problem = signing_secret_problem(webhook_secret)
        topic = topic_id(env)
        project = required(env, "GOOGLE_CLOUD_PROJECT", "the project that owns the topic")
        return cls(
            webhook_secret=None if problem else webhook_secret,
            not_set_up=problem,
            project=project,
            topic=topic,
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
            stripe_api_key=stripe_api_key_from(env, secrets or SecretResolver()),
            stripe_api_base=base_url(env, "STRIPE_API_BASE", DEFAULT_STRIPE_API_BASE),
            project=required(env, "GOOGLE_CLOUD_PROJECT", "the project that owns the topic"),
            topic=topic_id(env),
        )
