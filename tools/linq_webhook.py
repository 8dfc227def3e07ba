"""`./dev linq-webhook URL`: subscribe the product's Linq intake at URL to the events it handles,
and keep the subscription's signing secret in Secret Manager without ever showing it.

Linq gives a subscription's signing secret once, in the answer that creates it, so the command
stores it at once as a new version of the secret `linq-webhook-secret` (created the first time)
and prints only where it went. Linq takes each target URL once per account: run again, the
command finds the subscription for URL, says so and creates nothing. The payload format the
intake reads is chosen by `version=2026-02-03` in the URL's query, which the command adds.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self, TextIO
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from google.api_core.exceptions import GoogleAPICallError
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import secretmanager

from shared.adapters.linq import TIMEOUT, LinqClient
from shared.adapters.secrets import SecretResolver
from shared.core.errors import ConfigError, RecoveryError
from shared.workflow.settings import (
    GOOGLE_CLOUD_PROJECT,
    LINQ_API_BASE,
    LINQ_API_KEY,
    Reader,
    Settings,
    http_url,
)
from tools.secret_store import Refused, ensure_secret, secret_manager, store

EVENTS = ("message.received", "message.failed", "message.delivered", "phone_number.status_updated")
WEBHOOK_VERSION = "2026-02-03"
SECRET_ID = "linq-webhook-secret"  # noqa: S105 -- the secret's name, not its value
EXAMPLE_URL = "https://us-central1-my-project.cloudfunctions.net/dunning-linq-intake"


@dataclass(frozen=True)
class LinqWebhookSettings(Settings):
    """What the command needs: Linq's key and address, and the project that keeps the secret."""

    linq_api_key: str
    linq_api_base: str
    project: str

    @classmethod
    def read(cls, env: Reader) -> Self:
        return cls(
            linq_api_key=LINQ_API_KEY.read(env),
            linq_api_base=LINQ_API_BASE.read(env),
            project=GOOGLE_CLOUD_PROJECT.read(env),
        )


def target_url(url: str) -> str:
    """`url` (https; plain http only for this machine) with `version=2026-02-03` added to its
    query, whatever else the query holds."""
    http_url("URL", url, EXAMPLE_URL)
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    versions = [value for name, value in query if name == "version"]
    if versions == [WEBHOOK_VERSION]:
        return url
    if versions or parts.fragment:
        raise ConfigError(
            f"URL must carry no #fragment and no other version than {WEBHOOK_VERSION}, "
            f"the payload format the intake reads; got {url!r}"
        )
    version = f"version={WEBHOOK_VERSION}"
    return urlunsplit(parts._replace(query=f"{parts.query}&{version}" if parts.query else version))


def subscription_body(url: str) -> dict[str, Any]:
    """What creates the subscription of `url` to the events the intake handles."""
    return {"target_url": url, "subscribed_events": list(EVENTS)}


class Subscriptions(LinqClient):
    """The account's webhook subscriptions, through the product's Linq client."""

    def listed(self) -> list[dict[str, Any]]:
        return self._call("GET", "/webhook-subscriptions").get("subscriptions") or []

    def find(self, url: str) -> dict[str, Any] | None:
        return next((one for one in self.listed() if one.get("target_url") == url), None)

    def create(self, url: str) -> dict[str, Any]:
        """The new subscription, with its `signing_secret`."""
        return self._call("POST", "/webhook-subscriptions", subscription_body(url))

    def delete(self, subscription_id: str) -> None:
        # Linq answers 204 without a body, which LinqClient's JSON calls take for an error.
        path = f"{self._base}/webhook-subscriptions/{subscription_id}"
        self._session.delete(path, timeout=TIMEOUT).raise_for_status()


@dataclass(frozen=True)
class Registered:
    """The subscription of a URL, and the version of the secret its signing secret went to
    (None: it existed already, and nothing was stored)."""

    subscription: dict[str, Any]
    version: str | None
    said: str


def register(
    url: str,
    linq: Subscriptions,
    client: secretmanager.SecretManagerServiceClient,
    project: str,
    secret_id: str = SECRET_ID,
) -> Registered:
    """Subscribe `url` unless it is already, the signing secret stored in `secret_id`."""
    existing = linq.find(url)
    if existing is not None:
        events = ", ".join(existing.get("subscribed_events") or [])
        said = f"subscription {existing['id']} for {url} already exists ({events}); nothing created"
        missing = set(EVENTS) - set(existing.get("subscribed_events") or [])
        if missing:
            said += f"\nit does not receive {', '.join(sorted(missing))}: delete it in Linq, then"
            said += " run this again"
        return Registered(existing, None, said)
    secret = ensure_secret(client, project, secret_id)
    created = linq.create(url)
    # A subscription whose secret is lost could only fail to verify: it goes too.
    version = store(
        client,
        secret,
        created["signing_secret"],
        lambda: linq.delete(created["id"]),
        "the subscription",
        created["id"],
        "Linq",
    )
    events = ", ".join(created.get("subscribed_events", EVENTS))
    said = (
        f"created subscription {created['id']} for {url} ({events})\n"
        f"signing secret stored in {version} (Linq shows it only once; it is not printed)"
    )
    subscription = {key: value for key, value in created.items() if key != "signing_secret"}
    return Registered(subscription, version, said)


def run(argv: Sequence[str] | None, out: TextIO) -> int:
    parser = argparse.ArgumentParser(
        prog="./dev linq-webhook",
        description="Subscribe the Linq intake at URL to message.received, message.failed, "
        "message.delivered and phone_number.status_updated, storing the signing secret in "
        f"Secret Manager ({SECRET_ID}). Reads LINQ_API_KEY, LINQ_API_BASE and "
        "GOOGLE_CLOUD_PROJECT.",
    )
    parser.add_argument("url", metavar="URL", help=f"the intake's https URL, e.g. {EXAMPLE_URL}")
    url = target_url(parser.parse_args(argv).url)
    # One client, made when first needed: a wrong variable is reported before missing credentials.
    client = functools.cache(lambda: secret_manager(env))
    env = Reader(os.environ, SecretResolver(client))
    settings = LinqWebhookSettings.read(env)
    linq = Subscriptions(settings.linq_api_key, settings.linq_api_base)
    out.write(register(url, linq, client(), settings.project).said + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv, sys.stdout)
    except ConfigError as exc:
        print(f"linq-webhook: {exc}", file=sys.stderr)
        return 2
    except DefaultCredentialsError:
        print(
            "linq-webhook: no Google credentials for Secret Manager "
            "(gcloud auth application-default login)",
            file=sys.stderr,
        )
        return 2
    except RecoveryError as exc:
        print(f"linq-webhook: Linq refused: {exc.reason}", file=sys.stderr)
        return 1
    except GoogleAPICallError as exc:
        print(f"linq-webhook: Secret Manager refused: {exc}", file=sys.stderr)
        return 1
    except Refused as exc:
        print(f"linq-webhook: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
