"""Settings: every variable read through its declaration (a good value, each bad shape and its
error naming the variable, deploy.sh's rules), and each function's settings built from them."""

import base64
import secrets
import string
from datetime import time, timedelta
from typing import Any

import pytest

from shared.adapters.firestore import TIMEOUT as FIRESTORE_TIMEOUT
from shared.adapters.linq import TIMEOUT as LINQ_TIMEOUT
from shared.adapters.secrets import SecretResolver
from shared.adapters.stripe_gateway import TIMEOUT as STRIPE_TIMEOUT
from shared.core.accounts import ConnectedAccounts, EndpointKind
from shared.core.errors import ConfigError
from shared.core.message import (
    BRANDED_ACTION_TEMPLATE,
    BRANDED_TEMPLATE,
    DEFAULT_ACTION_TEMPLATE,
    DEFAULT_TEMPLATE,
    Template,
)
from shared.core.policy import AttemptPolicy, QuietHours
from shared.core.signing_secret import Signing
from shared.workflow.settings import (
    BY_NAME,
    DEFAULT_LINQ_API_BASE,
    DEFAULT_STRIPE_API_BASE,
    READ_TIMEOUT_SECONDS,
    VARIABLES,
    BackfillSettings,
    IngestSettings,
    LinqIntakeSettings,
    Reader,
    RecoverSettings,
    Variable,
    family_of,
)
from standins.signing_secrets import new_linq_secret, new_stripe_secret
from tools.deploy_env import check, prepare

RECOVER = {
    "STRIPE_API_KEY": "sk_test_abc123",
    "LINQ_API_KEY": "linq_token",
    "GOOGLE_CLOUD_PROJECT": "demo-proj",
}
SIGNING_SECRET = new_stripe_secret()
ALNUM = string.ascii_letters + string.digits
INGEST = {"STRIPE_WEBHOOK_SECRET": SIGNING_SECRET, "GOOGLE_CLOUD_PROJECT": "demo-proj"}


def test_recover_defaults():
    settings = RecoverSettings.from_env(RECOVER)
    assert settings.stripe_api_base == DEFAULT_STRIPE_API_BASE
    assert settings.linq_api_base == DEFAULT_LINQ_API_BASE
    assert settings.linq_sender is None
    assert settings.default_region == "US"
    assert settings.templates.default.text == DEFAULT_TEMPLATE
    assert settings.templates.by_language == {}
    assert settings.action_templates.default.text == DEFAULT_ACTION_TEMPLATE
    assert settings.action_templates.by_language == {}
    assert (settings.brand, str(settings.attempts), settings.dry_run) == (None, "all", False)
    assert settings.slack_webhook_url is None
    assert settings.stripe_mode == "test"
    assert (settings.project, settings.firestore_database) == ("demo-proj", "dunning")
    assert settings.read_timeout is None


def test_a_shortened_read_timeout_is_read():
    settings = RecoverSettings.from_env({**RECOVER, "READ_TIMEOUT_SECONDS": "1.5"})
    assert settings.read_timeout == 1.5


def test_the_read_timeout_unset_is_each_adapter_s_own():
    assert STRIPE_TIMEOUT[1] == LINQ_TIMEOUT[1]
    shown = f"{LINQ_TIMEOUT[1]:g} for Stripe and Linq, {FIRESTORE_TIMEOUT[1]:g} for the ledger"
    assert READ_TIMEOUT_SECONDS.when_unset == shown


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
    assert settings.templates.default.fields == ("first_name", "description")


@pytest.mark.parametrize("name", ["STRIPE_API_KEY", "LINQ_API_KEY", "GOOGLE_CLOUD_PROJECT"])
def test_missing_recover_variable_is_named(name):
    env = {k: v for k, v in RECOVER.items() if k != name}
    with pytest.raises(ConfigError, match=f"^{name} is required"):
        RecoverSettings.from_env(env)


# --- every variable, through its declaration alone -----------------------------------------------


def declared(name: str) -> Variable[Any]:
    """The declaration `name` is read through (MESSAGE_TEMPLATE_ES: the language templates')."""
    variable = BY_NAME.get(name) or family_of(name)
    assert variable is not None, f"{name} is not declared"
    return variable


def read(name: str, value: str | None, **others: str) -> Any:
    """`name` set to `value` (None: unset) beside `others`, read as its readers read it."""
    env = others if value is None else {**others, name: value}
    return declared(name).read(Reader(env, SecretResolver()))


def shown(value: Any) -> Any:
    """A parsed value, templates by their text."""
    if isinstance(value, Template):
        return value.text
    if isinstance(value, dict):
        return {language: template.text for language, template in value.items()}
    return value


TEMPLATE = "Hi {first_name}, {description} failed. Reply STOP to opt out."
# (variable, value or None for unset, what its readers get); each variable has one row at least.
GOOD = [
    ("STRIPE_API_KEY", "sk_test_abc123", "sk_test_abc123"),
    ("STRIPE_API_KEY", " rk_live_abc123 ", "rk_live_abc123"),
    ("STRIPE_WEBHOOK_SECRET", SIGNING_SECRET, SIGNING_SECRET),
    ("STRIPE_CONNECT_ACCOUNTS", None, ConnectedAccounts()),
    ("STRIPE_CONNECT_ACCOUNTS", "*", ConnectedAccounts(every=True)),
    (
        "STRIPE_CONNECT_ACCOUNTS",
        "acct_1A, acct_1B",
        ConnectedAccounts(frozenset({"acct_1A", "acct_1B"})),
    ),
    ("STRIPE_CONNECT_WEBHOOK_SECRET", None, None),
    ("STRIPE_CONNECT_WEBHOOK_SECRET", f" {SIGNING_SECRET} ", SIGNING_SECRET),
    ("WEBHOOK_BODY_SECONDS", None, 10.0),
    ("WEBHOOK_BODY_SECONDS", " 2.5 ", 2.5),
    ("LINQ_API_KEY", "linq_token", "linq_token"),
    ("GOOGLE_CLOUD_PROJECT", "demo-proj", "demo-proj"),
    ("STRIPE_API_BASE", None, DEFAULT_STRIPE_API_BASE),
    ("STRIPE_API_BASE", "http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
    ("LINQ_API_BASE", None, DEFAULT_LINQ_API_BASE),
    ("LINQ_API_BASE", "https://linq.example/api/partner/", "https://linq.example/api/partner"),
    ("FIRESTORE_DATABASE", None, "dunning"),
    ("FIRESTORE_DATABASE", "ledger-2", "ledger-2"),
    ("PUBSUB_TOPIC", None, "stripe-payment-failed"),
    ("PUBSUB_TOPIC", "payments.failed", "payments.failed"),
    ("LINQ_SENDER", None, None),
    ("LINQ_SENDER", "+1 (202) 555-0101", "+12025550101"),
    ("LINQ_LINE_DAILY_LIMIT", None, 7000),
    ("LINQ_LINE_DAILY_LIMIT", " 100 ", 100),
    ("LINQ_LINE_DAILY_LIMIT", "700000", 700_000),
    ("DEFAULT_PHONE_REGION", None, "US"),
    ("DEFAULT_PHONE_REGION", "gb", "GB"),
    ("MESSAGE_TEMPLATE", None, DEFAULT_TEMPLATE),
    ("MESSAGE_TEMPLATE", f" {TEMPLATE}", f" {TEMPLATE}"),
    (
        "MESSAGE_TEMPLATE_ES",
        "Hola {first_name}. Responde STOP.",
        {"es": "Hola {first_name}. Responde STOP."},
    ),
    ("MESSAGE_TEMPLATE_FIL", "Kumusta. Reply STOP.", {"fil": "Kumusta. Reply STOP."}),
    ("MESSAGE_TEMPLATE_DE", "", {}),
    ("ACTION_TEMPLATE", None, DEFAULT_ACTION_TEMPLATE),
    ("ACTION_TEMPLATE", f" {TEMPLATE}", f" {TEMPLATE}"),
    (
        "ACTION_TEMPLATE_ES",
        "Hola {first_name}, confirma tu pago. Responde STOP.",
        {"es": "Hola {first_name}, confirma tu pago. Responde STOP."},
    ),
    ("ACTION_TEMPLATE_DE", "", {}),
    ("BRAND_NAME", None, None),
    ("BRAND_NAME", "  Acme  Cloud ", "Acme Cloud"),
    ("TEXT_ON_ATTEMPTS", None, AttemptPolicy()),
    ("TEXT_ON_ATTEMPTS", "3, 1", AttemptPolicy(frozenset({1, 3}))),
    ("DRY_RUN", None, False),
    ("DRY_RUN", "Yes", True),
    ("QUIET_HOURS", None, QuietHours(time(21), time(8))),
    ("QUIET_HOURS", "22:30-06:15", QuietHours(time(22, 30), time(6, 15))),
    ("QUIET_HOURS", "off", None),
    ("HOLDOUT_PERCENT", None, 0),
    ("HOLDOUT_PERCENT", "50", 50),
    ("LEASE_SECONDS", None, timedelta(seconds=180)),
    ("LEASE_SECONDS", "3", timedelta(seconds=3)),
    ("SURGE_MIN", None, 50),
    ("SURGE_MIN", " 200 ", 200),
    ("SURGE_MIN", "OFF", None),
    ("SURGE_WINDOW", None, timedelta(minutes=10)),
    ("SURGE_WINDOW", "90m", timedelta(minutes=90)),
    ("SURGE_WINDOW", "2H", timedelta(hours=2)),
    ("SURGE_WINDOW", "24h", timedelta(hours=24)),
    ("SURGE_SHARE", None, 50),
    ("SURGE_SHARE", "80 %", 80),
    ("SURGE_SHARE", "1", 1),
    ("LINQ_WEBHOOK_SECRET", "whsec_abc", "whsec_abc"),
    ("LINQ_EVENTS_TOPIC", None, "linq-events"),
    ("LINQ_EVENTS_TOPIC", "linq-events-2", "linq-events-2"),
    ("SLACK_WEBHOOK_URL", None, None),
    (
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.com/services/T/B/X/",
        "https://hooks.slack.com/services/T/B/X",
    ),
    ("PUBSUB_EMULATOR_HOST", "127.0.0.1:8681", "127.0.0.1:8681"),
    ("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8682", "127.0.0.1:8682"),
    ("READ_TIMEOUT_SECONDS", None, None),
    ("READ_TIMEOUT_SECONDS", " 1.5 ", 1.5),
    ("SECRET_MANAGER_API_BASE", "http://127.0.0.1:8085", "http://127.0.0.1:8085"),
    ("REGION", "europe-west1", "europe-west1"),
    ("CLOUDSDK_FUNCTIONS_REGION", "europe-west1", "europe-west1"),
    ("CLOUDSDK_CORE_PROJECT", "demo-proj", "demo-proj"),
    ("FIRESTORE_LOCATION", "eur3", "eur3"),
    ("STRIPE_WEBHOOK_SECRET_VERSION", None, None),
    ("STRIPE_CONNECT_WEBHOOK_SECRET_VERSION", "2", "2"),
    ("STRIPE_API_KEY_VERSION", "7", "7"),
    ("LINQ_API_KEY_VERSION", "12", "12"),
    ("SLACK_WEBHOOK_URL_VERSION", "1", "1"),
    ("LINQ_WEBHOOK_SECRET_VERSION", "3", "3"),
    ("SLACK", None, None),
    ("SLACK", "1", True),
    ("SLACK", "0", False),
    ("BUILD_DIR", "staged", "staged"),
    ("PYTHON", "/usr/bin/python3", "/usr/bin/python3"),
]


# The signing secret, made per run, is named by what it is: xdist's workers must collect the
# same test ids.
@pytest.mark.parametrize(
    ("name", "value", "expected"),
    GOOD,
    ids=lambda value: "signing-secret" if value == SIGNING_SECRET else None,
)
def test_each_variable_reads_as_its_readers_use_it(name, value, expected):
    assert shown(read(name, value)) == expected


# (variable, value or None for unset, what the error says after the variable's name)
MALFORMED = [
    ("STRIPE_API_KEY", None, "is required"),
    ("STRIPE_WEBHOOK_SECRET", None, "is required"),
    ("STRIPE_CONNECT_ACCOUNTS", "all", "must be *"),
    ("STRIPE_CONNECT_WEBHOOK_SECRET", "sm://demo", "is not of the form sm://PROJECT/SECRET"),
    ("WEBHOOK_BODY_SECONDS", "0", "must be a number of seconds"),
    ("LINQ_API_KEY", " ", "is required"),
    ("GOOGLE_CLOUD_PROJECT", None, "is required"),
    ("FIRESTORE_DATABASE", "Dunning_Ledger", "must be a Firestore database id"),
    ("FIRESTORE_DATABASE", "projects/p/databases/dunning", "must be a Firestore database id"),
    ("PUBSUB_TOPIC", "projects/p/topics/t", "must be a Pub/Sub topic id"),
    ("PUBSUB_TOPIC", "goog-topic", "must be a Pub/Sub topic id"),
    ("LINQ_EVENTS_TOPIC", "ab", "must be a Pub/Sub topic id"),
    ("STRIPE_API_KEY", "pk_test_abc", "publishable keys"),
    ("STRIPE_API_BASE", "api.stripe.com", "must be an https URL"),
    ("STRIPE_API_BASE", "http://api.stripe.com", "must use https"),
    ("STRIPE_API_BASE", "http://127.0.0.2:9000", "must use https"),
    ("STRIPE_API_BASE", "http://localhost.example.com", "must use https"),
    ("STRIPE_API_BASE", "http://[::1", "must be an https URL"),
    ("LINQ_API_BASE", "http://api.linqapp.com/api/partner", "must use https"),
    ("LINQ_API_BASE", "http://10.0.0.5:8080", "must use https"),
    ("LINQ_API_BASE", "https://api.linqapp.com/api/partner/v3", "must not end in /v3"),
    ("LINQ_SENDER", "202-555-0101", "E.164"),
    ("LINQ_LINE_DAILY_LIMIT", "0", "must be a whole number from 1 to 700000"),
    ("LINQ_LINE_DAILY_LIMIT", "700001", "must be a whole number from 1 to 700000"),
    ("LINQ_LINE_DAILY_LIMIT", "7,000", "must be a whole number from 1 to 700000"),
    ("LINQ_LINE_DAILY_LIMIT", "off", "must be a whole number from 1 to 700000"),
    ("DEFAULT_PHONE_REGION", "USA", "two-letter region"),
    ("SLACK_WEBHOOK_URL", "hooks.slack.com/x", "must be an https URL"),
    ("SLACK_WEBHOOK_URL", "http://hooks.slack.com/services/T/B/X", "must use https"),
    ("MESSAGE_TEMPLATE", "Hi {first_name}", "STOP"),
    ("MESSAGE_TEMPLATE_ES", "Hola {first_name}", "STOP"),
    ("MESSAGE_TEMPLATE_FR", "Bonjour {brand}. STOP", "set BRAND_NAME"),
    ("MESSAGE_TEMPLATE_es", "Hola. STOP", "such as MESSAGE_TEMPLATE_ES"),
    ("MESSAGE_TEMPLATE_SPANISH", "Hola. STOP", "two- or three-letter ISO 639"),
    ("MESSAGE_TEMPLATE_", "Hola. STOP", "two- or three-letter ISO 639"),
    ("MESSAGE_TEMPLATE_PT_BR", "Olá. STOP", "two- or three-letter ISO 639"),
    ("ACTION_TEMPLATE", "Confirm your {amount} payment.", "STOP"),
    ("ACTION_TEMPLATE", "Confirm at {url}. Reply STOP", "must not contain {url}"),
    ("ACTION_TEMPLATE", "Confirm at bank.com. Reply STOP", "contains a URL"),
    ("ACTION_TEMPLATE", "{brand}: confirm. Reply STOP", "set BRAND_NAME"),
    ("ACTION_TEMPLATE", "Confirm {when}. Reply STOP", "unknown placeholder {when}"),
    ("ACTION_TEMPLATE", "x" * 320 + " STOP", "the text must stay under 320"),
    ("ACTION_TEMPLATE", " ", "is empty"),
    ("ACTION_TEMPLATE_ES", "Confirma tu pago.", "STOP"),
    ("ACTION_TEMPLATE_es", "Confirma. STOP", "such as ACTION_TEMPLATE_ES"),
    ("ACTION_TEMPLATE_SPANISH", "Confirma. STOP", "two- or three-letter ISO 639"),
    ("ACTION_TEMPLATE_", "Confirma. STOP", "two- or three-letter ISO 639"),
    ("TEXT_ON_ATTEMPTS", "1 and 3", "such as 1,3"),
    ("TEXT_ON_ATTEMPTS", "0", "such as 1,3"),
    ("DRY_RUN", "maybe", "true or false"),
    ("BRAND_NAME", "A" * 41, "at most 40 characters"),
    ("BRAND_NAME", "acme.com", "must not look like a URL"),
    ("BRAND_NAME", "https://acme.example", "must not look like a URL"),
    ("BRAND_NAME", "pay-here.click", "must not look like a URL"),
    ("BRAND_NAME", "acme\u200b.ca", "must not look like a URL"),
    ("BRAND_NAME", "ａｃｍｅ．ｒｕ", "must not look like a URL"),
    ("BRAND_NAME", "1.2.3.4", "must not look like a URL"),
    ("MESSAGE_TEMPLATE", "Pay at evil.ru/login. Reply STOP", "contains a URL"),
    ("MESSAGE_TEMPLATE_ES", "Paga en mysite.ca. Responde STOP", "contains a URL"),
    ("HOLDOUT_PERCENT", "51", "from 0 to 50"),
    ("HOLDOUT_PERCENT", "10%", "from 0 to 50"),
    ("QUIET_HOURS", "21-08", "QUIET_HOURS"),
    ("QUIET_HOURS", "25:00-08:00", "QUIET_HOURS"),
    ("LEASE_SECONDS", "0", "must be whole seconds from 1 to 3600"),
    ("LEASE_SECONDS", "3601", "must be whole seconds from 1 to 3600"),
    ("LEASE_SECONDS", "3m", "must be whole seconds from 1 to 3600"),
    ("READ_TIMEOUT_SECONDS", "0", "must be a number of seconds above 0 and at most 60"),
    ("READ_TIMEOUT_SECONDS", "61", "must be a number of seconds above 0 and at most 60"),
    ("READ_TIMEOUT_SECONDS", "a second", "must be a number of seconds above 0 and at most 60"),
    ("SURGE_MIN", "0", "must be a whole number from 1 to 100000"),
    ("SURGE_MIN", "fifty", "or off"),
    ("SURGE_MIN", "100001", "from 1 to 100000"),
    ("SURGE_WINDOW", "10", "such as 10m or 1h"),
    ("SURGE_WINDOW", "0m", "from 1m to 24h"),
    ("SURGE_WINDOW", "25h", "from 1m to 24h"),
    ("SURGE_WINDOW", "30s", "such as 10m or 1h"),
    ("SURGE_SHARE", "0", "from 1 to 99"),
    ("SURGE_SHARE", "100%", "from 1 to 99"),
    ("SURGE_SHARE", "0.5", "from 1 to 99"),
    ("LINQ_WEBHOOK_SECRET", None, "is required"),
    ("STRIPE_WEBHOOK_SECRET_VERSION", "latest", "must be a version number"),
    ("STRIPE_CONNECT_WEBHOOK_SECRET_VERSION", "latest", "must be a version number"),
    ("STRIPE_API_KEY_VERSION", "0", "must be a version number"),
    ("LINQ_API_KEY_VERSION", "v2", "must be a version number"),
    ("SLACK_WEBHOOK_URL_VERSION", "1.0", "must be a version number"),
    ("LINQ_WEBHOOK_SECRET_VERSION", "-1", "must be a version number"),
    ("SLACK", "yes", "must be 1, 0 or unset"),
    # deploy.sh reads these two itself, untrimmed.
    ("SLACK", " 1", "must be 1, 0 or unset"),
    ("STRIPE_API_KEY_VERSION", "7 ", "must be a version number"),
]


@pytest.mark.parametrize(("name", "value", "complaint"), MALFORMED)
def test_a_malformed_variable_is_named_with_what_is_wrong(name, value, complaint):
    with pytest.raises(ConfigError) as caught:
        read(name, value)
    assert str(caught.value).startswith(name)
    assert complaint in str(caught.value)


# Read as they are set, checked elsewhere or not at all: a host or path the adapters, gcloud or
# deploy.sh use as given.
AS_SET = {
    "PUBSUB_EMULATOR_HOST",
    "FIRESTORE_EMULATOR_HOST",
    "SECRET_MANAGER_API_BASE",
    "REGION",
    "CLOUDSDK_FUNCTIONS_REGION",
    "CLOUDSDK_CORE_PROJECT",
    "FIRESTORE_LOCATION",
    "BUILD_DIR",
    "PYTHON",
}


def test_every_variable_has_a_good_row_and_every_one_that_can_be_wrong_a_malformed_one():
    everything = {variable.name for variable in VARIABLES}
    assert {declared(name).name for name, _, _ in GOOD} == everything
    assert {declared(name).name for name, _, _ in MALFORMED} == everything - AS_SET


# What deploy.sh always sets: the project, from --project.
DEPLOYING = {"GOOGLE_CLOUD_PROJECT": "demo-proj"}
# (variable, value, the other variables, what deploy.sh says of it)
UNDEPLOYABLE = [
    ("LEASE_SECONDS", "120", {}, "must be longer than the recover function's timeout (120 s)"),
    ("PUBSUB_TOPIC", "t" * 201, {}, "must be at most 200 characters"),
    ("LINQ_EVENTS_TOPIC", "t" * 201, {}, "must be at most 200 characters"),
    (
        "LINQ_EVENTS_TOPIC",
        "payments",
        {"PUBSUB_TOPIC": "payments"},
        "must differ from PUBSUB_TOPIC",
    ),
    ("LINQ_EVENTS_TOPIC", "linq-events", {"PUBSUB_TOPIC": "linq-events"}, "must differ"),
]


@pytest.mark.parametrize(("name", "value", "others", "complaint"), UNDEPLOYABLE)
def test_deploy_holds_a_value_the_function_accepts_to_the_deploy_time_rule(
    name, value, others, complaint
):
    env = {**DEPLOYING, **others, name: value}
    read(name, value, **others)
    with pytest.raises(ConfigError) as caught:
        check(Reader(env, SecretResolver()))
    assert str(caught.value).startswith(f"{name} {complaint}")


@pytest.mark.parametrize(
    ("name", "value", "function"),
    [
        ("LEASE_SECONDS", "121", "recover"),
        ("PUBSUB_TOPIC", "t" * 200, "ingest"),
        ("LINQ_EVENTS_TOPIC", "t" * 200, "linq-intake"),
    ],
)
def test_deploy_passes_a_value_just_inside_its_rule(tmp_path, name, value, function):
    prepare(tmp_path, "demo-proj", "us-central1", {name: value})
    assert f'{name}: "{value}"\n' in (tmp_path / f"{function}.env.yaml").read_text()


def test_deploy_creates_what_the_defaults_name(tmp_path):
    shell = prepare(tmp_path, "demo-proj", "us-central1", {})
    assert shell.splitlines() == [
        "TOPIC=stripe-payment-failed",
        "LINQ_TOPIC=linq-events",
        "FIRESTORE_DATABASE=dunning",
        "FIRESTORE_LOCATION=us-central1",
        "RECOVER_TIMEOUT_S=120",
        "LEDGER_COLLECTION=dunning_sends",
        "LINQ_EVENTS_COLLECTION=dunning_linq_events",
        "SWEEP_TOPIC=dunning-release-sweep",
        "PLACEHOLDER=not-set-yet",
        # No connected account served: no Connect endpoint is made.
        "CONNECT_SERVED=''",
        # Unset, each key is deployed from the secret of that name, at its newest version.
        "STRIPE_KEY_SECRET=stripe-api-key",
        "STRIPE_KEY_GIVEN=''",
        "STRIPE_API_KEY_VERSION=''",
        "LINQ_KEY_SECRET=linq-api-key",
        "LINQ_KEY_GIVEN=''",
        "LINQ_API_KEY_VERSION=''",
    ]


@pytest.mark.parametrize("accounts", ["*", "acct_1A2b3C,acct_4D5e6F"])
def test_deploy_makes_a_connect_endpoint_while_connected_accounts_are_served(tmp_path, accounts):
    shell = prepare(tmp_path, "demo-proj", "us-central1", {"STRIPE_CONNECT_ACCOUNTS": accounts})
    assert "CONNECT_SERVED=1" in shell.splitlines()


@pytest.mark.parametrize(
    ("value", "dry_run"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("0", False),
        ("No", False),
        ("", False),
    ],
)
def test_dry_run_takes_the_usual_spellings(value, dry_run):
    assert RecoverSettings.from_env({**RECOVER, "DRY_RUN": value}).dry_run is dry_run


def test_operator_controls_are_read():
    settings = RecoverSettings.from_env(
        {
            **RECOVER,
            "TEXT_ON_ATTEMPTS": "3, 1",
            "BRAND_NAME": "  Acme  Cloud ",
            "MESSAGE_TEMPLATE_ES": "{brand}: Hola {first_name}, {amount}. Responde STOP.",
            "MESSAGE_TEMPLATE_FIL": "Kumusta {first_name}. Reply STOP.",
            "MESSAGE_TEMPLATE_DE": "",
            "MESSAGE_TEMPLATES_DIR": "ignored: not MESSAGE_TEMPLATE_ followed by anything",
        }
    )
    assert (str(settings.attempts), settings.brand) == ("1,3", "Acme Cloud")
    assert sorted(settings.templates.by_language) == ["es", "fil"]
    assert settings.templates.by_language["es"].fields == ("brand", "first_name", "amount")


def test_brand_name_makes_the_branded_text_the_default():
    settings = RecoverSettings.from_env({**RECOVER, "BRAND_NAME": "Acme"})
    assert settings.templates.default.text == BRANDED_TEMPLATE
    assert settings.action_templates.default.text == BRANDED_ACTION_TEMPLATE


def test_the_3d_secure_texts_of_each_language():
    settings = RecoverSettings.from_env(
        {
            **RECOVER,
            "ACTION_TEMPLATE": "Hi {first_name}, please confirm {amount}. Reply STOP.",
            "ACTION_TEMPLATE_ES": "Hola {first_name}, confirma {amount}. Responde STOP.",
            "MESSAGE_TEMPLATE_ES": "Hola {first_name}, tu pago falló. Responde STOP.",
            "MESSAGE_TEMPLATE_FR": "Bonjour {first_name}, votre paiement a échoué. STOP.",
            "ACTION_TEMPLATE_DE": "",
        }
    )
    action = settings.action_templates
    assert action.default.text == "Hi {first_name}, please confirm {amount}. Reply STOP."
    # Its own Spanish text; French has none and keeps its failure text (the customer's own
    # language); a language with neither gets ACTION_TEMPLATE.
    assert action.for_locales(["es-419"]).text.startswith("Hola {first_name}, confirma")
    assert action.for_locales(["fr"]).text.startswith("Bonjour {first_name}, votre paiement")
    assert action.for_locales(["de"]) == action.default
    assert action.for_locales(["ja"]) == action.default
    # And the failure texts know nothing of the 3-D Secure ones.
    assert settings.templates.for_locales(["es"]).text.startswith("Hola {first_name}, tu pago")
    assert sorted(settings.templates.by_language) == ["es", "fr"]


def test_the_3d_secure_default_fits_with_the_longest_brand_and_amount():
    settings = RecoverSettings.from_env({**RECOVER, "BRAND_NAME": "A" * 40})
    assert settings.action_templates.default.text == BRANDED_ACTION_TEMPLATE


def test_an_own_template_stays_as_written_with_a_brand_name():
    own = "Hi {first_name}, Acme here. Reply STOP to opt out."
    settings = RecoverSettings.from_env({**RECOVER, "BRAND_NAME": "Acme", "MESSAGE_TEMPLATE": own})
    assert settings.templates.default.text == own


def test_template_too_long_with_the_brand_name_names_both():
    template = "{brand} " + "x" * 270 + " Reply STOP"
    assert RecoverSettings.from_env({**RECOVER, "BRAND_NAME": "Acme", "MESSAGE_TEMPLATE": template})
    with pytest.raises(ConfigError, match=r"^MESSAGE_TEMPLATE is .*counting BRAND_NAME"):
        RecoverSettings.from_env({**RECOVER, "BRAND_NAME": "A" * 40, "MESSAGE_TEMPLATE": template})


@pytest.mark.parametrize("url", ["ftp://secret-token", "http://hooks.example/secret-token"])
def test_slack_url_is_never_echoed_in_errors(url):
    with pytest.raises(ConfigError, match="SLACK_WEBHOOK_URL") as caught:
        RecoverSettings.from_env({**RECOVER, "SLACK_WEBHOOK_URL": url})
    assert "secret-token" not in str(caught.value)


@pytest.mark.parametrize("host", ["127.0.0.1:9000", "localhost:9000", "LOCALHOST", "127.0.0.1"])
def test_plain_http_is_allowed_on_this_machine_only(host):
    settings = RecoverSettings.from_env(
        {
            **RECOVER,
            "STRIPE_API_BASE": f"http://{host}",
            "LINQ_API_BASE": f"http://{host}/api/partner",
            "SLACK_WEBHOOK_URL": f"http://{host}/services/T/B/X",
        }
    )
    assert settings.stripe_api_base == f"http://{host}"
    assert settings.linq_api_base == f"http://{host}/api/partner"
    assert settings.slack_webhook_url == f"http://{host}/services/T/B/X"


def test_ingest_defaults():
    settings = IngestSettings.from_env(INGEST)
    assert settings.signing == Signing("STRIPE_WEBHOOK_SECRET", SIGNING_SECRET, None)
    # No connected account served and no Connect secret: the platform's endpoint only.
    assert settings.endpoints == {EndpointKind.ACCOUNT: settings.signing}
    assert (settings.project, settings.topic) == ("demo-proj", "stripe-payment-failed")


@pytest.mark.parametrize(
    "secret",
    [
        SIGNING_SECRET,  # what `stripe listen` prints: 64 hex digits
        # What the Dashboard gives: 32 letters and digits; the shortest accepted: 24.
        *("whsec_" + "".join(secrets.choice(ALNUM) for _ in range(n)) for n in (32, 24)),
    ],
    # Named by kind, not value: the values are made afresh, and xdist's workers must collect
    # the same test ids.
    ids=["stripe-listen", "dashboard", "shortest"],
)
def test_real_signing_secrets_are_used(secret):
    settings = IngestSettings.from_env({**INGEST, "STRIPE_WEBHOOK_SECRET": secret})
    assert settings.signing == Signing("STRIPE_WEBHOOK_SECRET", secret, None)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("whsec_pending", "not 24 or more letters and digits"),
        ("not-set-yet", "does not start with whsec_"),
        ("sk_test_wrong_secret", "does not start with whsec_"),
        ("whsec_" + "a1B2c3D4e5F6g7H8i9J0k1L", "not 24 or more letters and digits"),
        ("whsec_" + "a1B2c3D4e5F6g7H8i9J0k1L2-", "not 24 or more letters and digits"),
        ("whsec_" + "x" * 32, "a placeholder"),
        ("whsec_" + "abcd1234" * 4, "a placeholder"),
        ("whsec_" + "PendingPendingPendingPending", "a placeholder"),
        ("whsec_" + "ReplaceMeWithTheRealSecretPlaceholder", "a placeholder"),
        ("whsec_" + "YourSigningSecretGoesHere1234", "typed by hand"),
        ("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "a published example"),
    ],
)
def test_a_secret_that_is_no_signing_secret_means_the_endpoint_is_not_set_up(secret, problem):
    settings = IngestSettings.from_env({**INGEST, "STRIPE_WEBHOOK_SECRET": secret})
    assert settings.signing.secret is None
    assert problem in settings.signing.problem
    assert secret not in settings.signing.problem
    # The Connect endpoint's secret is held to the same rules.
    connect = IngestSettings.from_env({**INGEST, "STRIPE_CONNECT_WEBHOOK_SECRET": secret}).connect
    assert connect == Signing("STRIPE_CONNECT_WEBHOOK_SECRET", None, settings.signing.problem)


LINQ_INTAKE = {"GOOGLE_CLOUD_PROJECT": "demo-proj"}


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("not-set-yet", "does not start with whsec_"),
        # A lenient decode would drop the hyphens and read 26 bytes.
        ("whsec_pending-placeholder-for-the-linq-webhook", "not base64"),
        ("whsec_" + base64.b64encode(b"0123456789").decode(), "too short"),
        ("whsec_" + "A" * 44, "a placeholder"),
        ("whsec_" + "ChangeMeChangeMeChangeMeChangeMe", "a placeholder"),
        ("whsec_" + "PendingPendingPendingPendingPendingPend", "a placeholder"),
        ("whsec_" + base64.b64encode(b"linq-production-signing-secret-1").decode(), "by hand"),
        ("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "a published example"),
    ],
)
def test_a_linq_secret_that_is_no_signing_secret_means_the_intake_is_not_set_up(secret, problem):
    settings = LinqIntakeSettings.from_env({**LINQ_INTAKE, "LINQ_WEBHOOK_SECRET": secret})
    assert settings.signing.secret is None
    assert problem in settings.signing.problem
    assert secret not in settings.signing.problem


def test_a_generated_linq_secret_verifies():
    secret = new_linq_secret()
    settings = LinqIntakeSettings.from_env({**LINQ_INTAKE, "LINQ_WEBHOOK_SECRET": secret})
    assert settings.signing == Signing("LINQ_WEBHOOK_SECRET", secret, None)


@pytest.mark.parametrize("name", ["STRIPE_WEBHOOK_SECRET", "GOOGLE_CLOUD_PROJECT"])
def test_missing_ingest_variable_is_named(name):
    env = {k: v for k, v in INGEST.items() if k != name}
    with pytest.raises(ConfigError, match=f"^{name} is required"):
        IngestSettings.from_env(env)


BACKFILL = {"STRIPE_API_KEY": "rk_live_abc123", "GOOGLE_CLOUD_PROJECT": "demo-proj"}


def test_backfill_defaults():
    settings = BackfillSettings.from_env(BACKFILL)
    assert (settings.stripe_api_base, settings.project, settings.topic) == (
        DEFAULT_STRIPE_API_BASE,
        "demo-proj",
        "stripe-payment-failed",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STRIPE_API_KEY", ""),
        ("GOOGLE_CLOUD_PROJECT", " "),
        ("STRIPE_API_KEY", "pk_live_abc"),
        ("STRIPE_API_BASE", "stripe"),
        ("STRIPE_API_BASE", "http://api.stripe.com"),
        ("PUBSUB_TOPIC", "projects/p/topics/t"),
    ],
)
def test_missing_or_malformed_backfill_variable_is_named(name, value):
    with pytest.raises(ConfigError, match=f"^{name} "):
        BackfillSettings.from_env({**BACKFILL, name: value})


@pytest.mark.parametrize(
    ("value", "served", "not_served"),
    [
        (None, [None], ["acct_1A"]),
        ("  ", [None], ["acct_1A"]),
        ("*", [None, "acct_1A", "acct_1Zz9"], []),
        (" * ", [None, "acct_1A"], []),
        ("acct_1A", [None, "acct_1A"], ["acct_1B", "acct_1a", "acct_1A2"]),
        ("acct_1A, acct_1B ,acct_1C", [None, "acct_1A", "acct_1B", "acct_1C"], ["acct_1D"]),
    ],
)
def test_connected_accounts_are_served_only_when_the_platform_says_so(value, served, not_served):
    env = {**INGEST} if value is None else {**INGEST, "STRIPE_CONNECT_ACCOUNTS": value}
    accounts = IngestSettings.from_env(env).accounts
    assert [account for account in served if not accounts.serves(account)] == []
    assert [account for account in not_served if accounts.serves(account)] == []


CONNECT_SECRET = new_stripe_secret()
UNSET_WHILE_SERVED = "it is unset, and STRIPE_CONNECT_ACCOUNTS names connected accounts"


@pytest.mark.parametrize(
    ("accounts", "secret", "connect"),
    [
        # No Connect endpoint: a connected account's event can only be refused.
        (None, None, None),
        ("", None, None),
        # Served, the secret given: the Connect endpoint's events are verified with it.
        ("*", CONNECT_SECRET, Signing("STRIPE_CONNECT_WEBHOOK_SECRET", CONNECT_SECRET)),
        ("acct_1A", CONNECT_SECRET, Signing("STRIPE_CONNECT_WEBHOOK_SECRET", CONNECT_SECRET)),
        # Given while none is served (a Connect endpoint kept after serving stopped): verified,
        # then acknowledged as an account not enabled.
        (None, CONNECT_SECRET, Signing("STRIPE_CONNECT_WEBHOOK_SECRET", CONNECT_SECRET)),
        # Served without the secret: not set up yet, so those events wait (503), never refused.
        ("*", None, Signing("STRIPE_CONNECT_WEBHOOK_SECRET", None, UNSET_WHILE_SERVED)),
        ("acct_1A", " ", Signing("STRIPE_CONNECT_WEBHOOK_SECRET", None, UNSET_WHILE_SERVED)),
    ],
)
def test_the_connect_endpoints_secret_is_held_when_given_and_awaited_when_accounts_are_served(
    accounts, secret, connect
):
    env = {**INGEST, "STRIPE_CONNECT_ACCOUNTS": accounts, "STRIPE_CONNECT_WEBHOOK_SECRET": secret}
    settings = IngestSettings.from_env({k: v for k, v in env.items() if v is not None})
    assert settings.connect == connect
    expected = {EndpointKind.ACCOUNT: settings.signing}
    if connect is not None:
        expected[EndpointKind.CONNECT] = connect
    assert settings.endpoints == expected
    assert settings.signings == tuple(expected.values())


@pytest.mark.parametrize(
    "value",
    ["acct_1A;acct_1B", "acct_1A,", ",acct_1A", "acct_1A acct_1B", "all", "*,acct_1A", "cus_1A"],
)
def test_a_malformed_connected_account_list_is_named(value):
    with pytest.raises(ConfigError, match=r"^STRIPE_CONNECT_ACCOUNTS must be \* ") as caught:
        IngestSettings.from_env({**INGEST, "STRIPE_CONNECT_ACCOUNTS": value})
    assert value in str(caught.value)


@pytest.mark.parametrize("settings", [IngestSettings, LinqIntakeSettings])
@pytest.mark.parametrize(
    ("value", "seconds"), [(None, 10.0), ("2", 2.0), (" 0.5 ", 0.5), ("15", 15.0)]
)
def test_both_intakes_wait_for_a_body_as_long_as_webhook_body_seconds_says(
    settings, value, seconds
):
    env = {**INGEST, "LINQ_WEBHOOK_SECRET": new_linq_secret()}
    if value is not None:
        env["WEBHOOK_BODY_SECONDS"] = value
    assert settings.from_env(env).body_seconds == seconds


@pytest.mark.parametrize("value", ["0", "-1", "15.5", "60", "ten", "nan", "inf"])
def test_a_body_deadline_out_of_bounds_is_named(value):
    with pytest.raises(ConfigError, match=r"^WEBHOOK_BODY_SECONDS must be a number of seconds"):
        IngestSettings.from_env({**INGEST, "WEBHOOK_BODY_SECONDS": value})
