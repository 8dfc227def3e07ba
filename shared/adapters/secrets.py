"""Resolve `sm://PROJECT/SECRET#VERSION` references (the Berglas convention) with Secret Manager."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from shared.core.errors import ConfigError

PREFIX = "sm://"
_REFERENCE = re.compile(
    r"^sm://(?P<project>[^/#\s]+)/(?P<secret>[A-Za-z0-9_-]+)(?:#(?P<version>\w+))?$"
)

ClientFactory = Callable[[], Any]


def _default_client() -> Any:
    # Imported here: plain values (what `gcloud --set-secrets` injects) never pay for the import.
    from google.cloud import secretmanager

    return secretmanager.SecretManagerServiceClient()


class SecretResolver:
    """Turns a variable's value into the secret, reading Secret Manager only for references."""

    def __init__(self, client_factory: ClientFactory | None = None) -> None:
        self._client_factory = client_factory or _default_client
        self._client: Any = None

    def resolve(self, variable: str, value: str) -> str:
        if not value.startswith(PREFIX):
            return value
        match = _REFERENCE.match(value)
        if match is None:
            raise ConfigError(
                f"{variable} looks like a Secret Manager reference but is not of the form "
                "sm://PROJECT/SECRET#VERSION"
            )
        name = (
            f"projects/{match['project']}/secrets/{match['secret']}"
            f"/versions/{match['version'] or 'latest'}"
        )
        from google.api_core import exceptions

        try:
            if self._client is None:
                self._client = self._client_factory()
            response = self._client.access_secret_version(name=name)
        except exceptions.GoogleAPICallError as exc:
            raise ConfigError(
                f"{variable}: cannot read {name} from Secret Manager: {exc}"
            ) from None
        secret = response.payload.data.decode("utf-8").strip()
        if not secret:
            raise ConfigError(f"{variable}: {name} is empty")
        return secret
