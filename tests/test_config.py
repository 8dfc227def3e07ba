"""Settings: defaults, and a clear error naming each missing or malformed variable."""

import pytest

from shared.config import (
    DEFAULT_LINQ_API_BASE,
    DEFAULT_STRIPE_API_BASE,
    IngestSettings,
    RecoverSettings,
)
from shared.errors import ConfigError
from shared.message import DEFAULT_TEMPLATE

RECOVER = {
    "STRIPE_API_KEY": "sk_test_abc123",
    "LINQ_API_KEY": "linq_token",
    "GOOGLE_CLOUD_PROJECT": "demo-proj",
}
INGEST = {"STRIPE_WEBHOOK_SECRET": "whsec_abc", "GOOGLE_CLOUD_PROJECT": "demo-proj"}


def test_recover_defaults():
    settings = RecoverSettings.from_env(RECOVER)
    assert settings.stripe_api_base == DEFAULT_STRIPE_API_BASE
    assert settings.linq_api_base == DEFAULT_LINQ_API_BASE
    assert settings.linq_sender is None
    assert settings.default_region == "US"
    assert settings.template.text == DEFAULT_TEMPLATE
    assert settings.slack_webhook_url is None
    assert settings.stripe_mode == "test"
    assert (settings.project, settings.firestore_database) == ("demo-proj", "dunning")


def test_recover_overrides_are_normalised():
    settings = RecoverSettings.from_env(
        {
            **RECOVER,
            "STRIPE_API_KEY": "rk_live_abc123",
            "STRIPE_API_BASE": "http://127.0.0.1:9000/",
            "LINQ_API_BASE": "http://127.0.0.1:9001",
            "LINQ_SENDER": "+1 (202) 555-0101",
            "DEFAULT_PHONE_REGION": "gb",
            "SLACK_WEBHOOK_URL": "http://127.0.0.1:9002/services/T/B/X",
            "MESSAGE_TEMPLATE": "{first_name}: {description} failed. Reply STOP to opt out.",
        }
    )
    assert settings.stripe_api_base == "http://127.0.0.1:9000"
    assert settings.linq_sender == "+12025550101"
    assert settings.default_region == "GB"
    assert settings.stripe_mode == "live"
    assert settings.template.fields == ("first_name", "description")


@pytest.mark.parametrize("name", ["STRIPE_API_KEY", "LINQ_API_KEY", "GOOGLE_CLOUD_PROJECT"])
def test_missing_recover_variable_is_named(name):
    env = {k: v for k, v in RECOVER.items() if k != name}
    with pytest.raises(ConfigError, match=f"^{name} is required"):
        RecoverSettings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("STRIPE_API_KEY", "pk_test_abc", "publishable keys"),
        ("STRIPE_API_BASE", "api.stripe.com", "must be an http(s) URL"),
        ("LINQ_API_BASE", "https://api.linqapp.com/api/partner/v3", "must not end in /v3"),
        ("LINQ_SENDER", "202-555-0101", "E.164"),
        ("DEFAULT_PHONE_REGION", "USA", "two-letter region"),
        ("SLACK_WEBHOOK_URL", "hooks.slack.com/x", "must be an http(s) URL"),
        ("MESSAGE_TEMPLATE", "Hi {first_name}", "STOP"),
    ],
)
def test_malformed_recover_variable_is_named(name, value, complaint):
    with pytest.raises(ConfigError, match=name) as caught:
        RecoverSettings.from_env({**RECOVER, name: value})
    assert complaint in str(caught.value)


def test_slack_url_is_never_echoed_in_errors():
    with pytest.raises(ConfigError) as caught:
        RecoverSettings.from_env({**RECOVER, "SLACK_WEBHOOK_URL": "ftp://secret-token"})
    assert "secret-token" not in str(caught.value)


def test_ingest_defaults():
    settings = IngestSettings.from_env(INGEST)
    assert (settings.webhook_secret, settings.project, settings.topic) == (
        "whsec_abc",
        "demo-proj",
        "stripe-payment-failed",
    )


@pytest.mark.parametrize("name", ["STRIPE_WEBHOOK_SECRET", "GOOGLE_CLOUD_PROJECT"])
def test_missing_ingest_variable_is_named(name):
    env = {k: v for k, v in INGEST.items() if k != name}
    with pytest.raises(ConfigError, match=f"^{name} is required"):
        IngestSettings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STRIPE_WEBHOOK_SECRET", "sk_test_wrong_secret"),
        ("PUBSUB_TOPIC", "projects/p/topics/t"),
        ("PUBSUB_TOPIC", "goog-topic"),
    ],
)
def test_malformed_ingest_variable_is_named(name, value):
    with pytest.raises(ConfigError, match=name):
        IngestSettings.from_env({**INGEST, name: value})
