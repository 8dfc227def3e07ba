"""Secret Manager for the tools that keep a signing secret a vendor shows only once (`./dev
linq-webhook`, deploy.sh's Stripe and Linq steps): the client, the secret made when missing, and
the value stored at once as a new version, or the thing it came with deleted again."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import requests
from google.api_core.exceptions import Conflict, GoogleAPICallError
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import GoogleAuthError
from google.cloud import secretmanager

from shared.core.errors import RecoveryError
from shared.workflow.settings import SECRET_MANAGER_API_BASE, Reader, http_url

LOCAL_EXAMPLE = "http://127.0.0.1:8085"


class Refused(Exception):
    """A vendor or Secret Manager refused a call; the message says which and why."""


def secret_manager(env: Reader) -> secretmanager.SecretManagerServiceClient:
    """A Secret Manager client over REST (a few calls need no gRPC channel) with the caller's
    Google credentials, or, when SECRET_MANAGER_API_BASE is set (local only), one that talks to
    that stand-in without credentials."""
    base = SECRET_MANAGER_API_BASE.read(env)
    if base is None:
        return secretmanager.SecretManagerServiceClient(transport="rest")
    return secretmanager.SecretManagerServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options={
            "api_endpoint": http_url(SECRET_MANAGER_API_BASE.name, base, LOCAL_EXAMPLE)
        },
    )


def ensure_secret(
    client: secretmanager.SecretManagerServiceClient, project: str, secret_id: str
) -> str:
    """The secret's name, the secret created (replicated automatically) if it did not exist.
    Done before the vendor is asked, so a project that refuses it costs nothing there."""
    request = {"parent": f"projects/{project}", "secret_id": secret_id}
    # ALREADY_EXISTS: over REST the client raises it as a bare 409 Conflict.
    with contextlib.suppress(Conflict):
        client.create_secret(request={**request, "secret": {"replication": {"automatic": {}}}})
    return f"projects/{project}/secrets/{secret_id}"


def store(
    client: secretmanager.SecretManagerServiceClient,
    secret: str,
    value: str,
    undo: Callable[[], None],
    thing: str,
    thing_id: str,
    vendor: str,
) -> str:
    """The new version of `secret` holding `value`. The vendor will not show the value again: when
    Secret Manager refuses it, or cannot be reached, or the credentials fail, `undo()` deletes
    `thing` (what the value came with, which could only fail to verify), so the next run starts
    afresh; Refused says what happened."""
    try:
        version = client.add_secret_version(
            request={"parent": secret, "payload": {"data": value.encode()}}
        )
    except (GoogleAPICallError, GoogleAuthError, requests.RequestException) as exc:
        try:
            undo()
        except (RecoveryError, requests.RequestException) as failed:
            raise Refused(
                f"Secret Manager refused the signing secret ({exc}), and deleting {thing} "
                f"{thing_id} failed ({failed}): delete it in {vendor}, then run this again"
            ) from exc
        raise Refused(
            f"Secret Manager refused the signing secret ({exc}); {thing} was deleted"
        ) from exc
    return str(version.name)
