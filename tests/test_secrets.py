"""Secret Manager references (sm://PROJECT/SECRET#VERSION), resolved once per instance."""

from collections.abc import Iterator

import pytest
from google.api_core import exceptions
from google.api_core.retry import retry_base, retry_unary
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager

from shared.adapters import secrets as secrets_module
from shared.adapters.secrets import SecretResolver
from shared.core.errors import ConfigError, SecretUnavailable
from shared.workflow.settings import RecoverSettings
from standins import builders
from standins.processes import free_port
from standins.secretmanager_api import SecretManagerStandin
from tests.clock import TestSeconds
from tests.harness import log_lines


@pytest.fixture
def secret_manager() -> Iterator[SecretManagerStandin]:
    with SecretManagerStandin() as server:
        server.load(
            {
                "secrets": {
                    "projects/acme/secrets/stripe-key": {
                        "1": "sk_test_fromsm1",
                        "2": "sk_test_fromsm2",
                    },
                    "projects/acme/secrets/linq-key": {"3": "linq_from_sm"},
                },
                "denied": ["projects/acme/secrets/locked"],
            }
        )
        yield server


@pytest.fixture
def client_factory(secret_manager):
    def factory():
        return secretmanager.SecretManagerServiceClient(
            transport="rest",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": secret_manager.url},
        )

    return factory


def test_plain_values_need_no_call(secret_manager, client_factory):
    assert SecretResolver(client_factory).resolve("X", "plain-value") == "plain-value"
    assert secret_manager.requests() == []


@pytest.mark.parametrize(
    ("reference", "value"),
    [
        ("sm://acme/stripe-key#1", "sk_test_fromsm1"),
        ("sm://acme/stripe-key", "sk_test_fromsm2"),
        ("sm://acme/stripe-key#latest", "sk_test_fromsm2"),
    ],
)
def test_reference_is_read_at_the_version_given(client_factory, reference, value):
    assert SecretResolver(client_factory).resolve("STRIPE_API_KEY", reference) == value


@pytest.mark.parametrize(
    ("reference", "complaint"),
    [
        ("sm://acme/missing#1", "not found"),
        ("sm://acme/locked#1", "denied"),
        ("sm://acme", "not of the form sm://PROJECT/SECRET#VERSION"),
    ],
)
def test_unreadable_reference_names_the_variable(client_factory, reference, complaint):
    with pytest.raises(ConfigError, match=r"^LINQ_API_KEY") as caught:
        SecretResolver(client_factory).resolve("LINQ_API_KEY", reference)
    assert complaint in str(caught.value)


def test_settings_resolve_references_once(secret_manager, client_factory):
    settings = RecoverSettings.from_env(
        {
            "STRIPE_API_KEY": "sm://acme/stripe-key#2",
            "LINQ_API_KEY": "sm://acme/linq-key#3",
            "GOOGLE_CLOUD_PROJECT": "acme",
        },
        SecretResolver(client_factory),
    )
    assert (settings.stripe_api_key, settings.linq_api_key) == ("sk_test_fromsm2", "linq_from_sm")
    assert len(secret_manager.requests()) == 2


def test_recover_function_resolves_secrets_once_per_instance(
    pipeline, secret_manager, client_factory, monkeypatch
):
    monkeypatch.setattr(secrets_module, "_default_client", client_factory)
    secret_manager.load(
        {"secrets": {"projects/acme/secrets/stripe": {"1": pipeline.env["STRIPE_API_KEY"]}}}
    )
    pipeline.configure(STRIPE_API_KEY="sm://acme/stripe#1")
    assert pipeline.result(pipeline.customer_with_invoice())["action"] == "sent"
    assert pipeline.result(pipeline.customer_with_invoice())["action"] == "sent"
    assert len(secret_manager.requests()) == 1


def test_a_secret_can_be_created_and_given_versions(secret_manager, client_factory):
    client = client_factory()
    secret = {"replication": {"automatic": {}}}
    client.create_secret(request={"parent": "projects/acme", "secret_id": "new", "secret": secret})
    with pytest.raises(exceptions.Conflict):
        client.create_secret(
            request={"parent": "projects/acme", "secret_id": "new", "secret": secret}
        )
    for value in ("first", "second"):
        version = client.add_secret_version(
            request={"parent": "projects/acme/secrets/new", "payload": {"data": value.encode()}}
        )
    assert version.name == "projects/acme/secrets/new/versions/2"
    assert SecretResolver(client_factory).resolve("X", "sm://acme/new") == "second"
    with pytest.raises(exceptions.NotFound):
        client.add_secret_version(
            request={"parent": "projects/acme/secrets/gone", "payload": {"data": b"x"}}
        )


# --- a secret Secret Manager cannot serve -------------------------------------------------------

# A value that is not UTF-8, with a Stripe-shaped secret behind the bad byte.
NOT_TEXT = b"\xff\xfewhsec_" + b"9f2c" * 16


@pytest.fixture
def quick_reads(monkeypatch):
    """The resolver's read timeout shortened (a timeout in the test costs a fraction of a
    second), and the library's retries backing off on a clock of the test's: an outage outlasts
    the resolver's bound without waiting for it."""
    monkeypatch.setattr(secrets_module, "ATTEMPT_TIMEOUT_S", 0.2)
    clock = TestSeconds()
    monkeypatch.setattr(retry_unary, "time", clock)
    monkeypatch.setattr(retry_base, "time", clock)


def no_credentials(monkeypatch, secret_manager, client_factory):
    # What a function without a service account, or a checkout without `gcloud auth`, meets:
    # the real client, which finds no credentials.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/credentials.json")
    return secrets_module._default_client


def too_slow(monkeypatch, secret_manager, client_factory):
    secret_manager.add_fault("versions", delay_s=2.0)
    return client_factory


def unavailable(monkeypatch, secret_manager, client_factory):
    # Retried inside the bound, then given up on: the library's RetryError.
    secret_manager.add_fault("versions", status=503, times=1000)
    return client_factory


def unreachable(monkeypatch, secret_manager, client_factory):
    def factory():
        return secretmanager.SecretManagerServiceClient(
            transport="rest",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{free_port()}"},
        )

    return factory


def not_text(monkeypatch, secret_manager, client_factory):
    secret_manager.load({"secrets": {"projects/acme/secrets/whsec": {"2": NOT_TEXT}}})
    return client_factory


FAILURES = {
    "no credentials": (no_credentials, "DefaultCredentialsError"),
    "a timeout": (too_slow, "ReadTimeout"),
    "an outage outlasting the retries": (unavailable, "RetryError"),
    "no connection": (unreachable, "ConnectionError"),
    "a value that is not UTF-8": (not_text, "is not UTF-8 text"),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_secret_that_cannot_be_read_is_a_short_error_naming_the_variable(
    monkeypatch, secret_manager, client_factory, quick_reads, failure
):
    make, reason = FAILURES[failure]
    factory = make(monkeypatch, secret_manager, client_factory)
    with pytest.raises(SecretUnavailable) as caught:
        SecretResolver(factory).resolve("STRIPE_WEBHOOK_SECRET", "sm://acme/whsec#2")
    message = str(caught.value)
    assert message.startswith("STRIPE_WEBHOOK_SECRET: ")
    assert "projects/acme/secrets/whsec/versions/2" in message
    assert reason in message
    assert "9f2c" not in message
    assert "\\xff" not in message
    # Raised afresh: no vendor exception chained behind it, whose traceback would say more.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize(
    ("target", "variable", "label"),
    [
        ("stripe_webhook", "STRIPE_WEBHOOK_SECRET", "webhook"),
        ("linq_webhook", "LINQ_WEBHOOK_SECRET", "Linq webhook"),
    ],
)
def test_an_intake_whose_secret_cannot_be_read_answers_503_with_one_masked_warning(
    pipeline,
    monkeypatch,
    capsys,
    secret_manager,
    client_factory,
    quick_reads,
    failure,
    target,
    variable,
    label,
):
    make, reason = FAILURES[failure]
    monkeypatch.setattr(
        secrets_module, "_default_client", make(monkeypatch, secret_manager, client_factory)
    )
    pipeline.configure(**{variable: "sm://acme/whsec#2"})
    capsys.readouterr()
    intake = pipeline.app("ingest_fn/main.py", target, "http")
    answer = intake.post("/", data=b"{}", headers={"Stripe-Signature": "t=1,v1=aa"})
    assert (answer.status_code, answer.get_data(as_text=True)) == (
        503,
        "signing secret unavailable, retry later",
    )
    out, err = capsys.readouterr()
    [line] = log_lines(out)
    assert line["severity"] == "WARNING"
    assert line["message"].startswith(f"{label} not verified: {variable}: ")
    assert reason in line["message"]
    assert "Traceback" not in out + err
    assert "9f2c" not in out + err
    assert pipeline.published() == []


def test_the_webhook_stripe_retries_is_queued_once_secret_manager_serves_again(
    pipeline, monkeypatch, secret_manager, client_factory, quick_reads
):
    secret = pipeline.env["STRIPE_WEBHOOK_SECRET"]
    monkeypatch.setattr(secrets_module, "_default_client", client_factory)
    pipeline.configure(STRIPE_WEBHOOK_SECRET="sm://acme/whsec#2")
    secret_manager.add_fault("versions", status=503, times=1000)
    event = builders.payment_failed_event(builders.invoice("cus_1", id="in_1SecretBack"))
    assert pipeline.post_webhook(event, secret=secret).status_code == 503
    # The outage ends; Stripe sends the same webhook again.
    secret_manager.reset()
    secret_manager.load({"secrets": {"projects/acme/secrets/whsec": {"2": secret}}})
    answer = pipeline.post_webhook(event, secret=secret)
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "queued")
    [message] = pipeline.published()
    assert message["attributes"]["invoice_id"] == "in_1SecretBack"
