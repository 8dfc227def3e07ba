"""Secret Manager references (sm://PROJECT/SECRET#VERSION), resolved once per instance."""

from collections.abc import Iterator

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager

from shared.adapters import secrets as secrets_module
from shared.adapters.secrets import SecretResolver
from shared.core.errors import ConfigError
from shared.workflow.recover_settings import RecoverSettings
from standins.secretmanager_api import SecretManagerStandin


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
