"""Resolve `sm://PROJECT/SECRET#VERSION` references (the Berglas convention) with Secret Manager."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from shared.core.errors import ConfigError, SecretUnavailable

PREFIX = "sm://"
_REFERENCE = re.compile(
    r"^sm://(?P<project>[^/#\s]+)/(?P<secret>[A-Za-z0-9_-]+)(?:#(?P<version>\w+))?$"
)
# One read, retries included, ends well inside the time Stripe and Linq wait for an intake's
# answer (and the intake's own 30 s): the client's default retries for 60 s. An intake that
# cannot read its secret answers 503, and the sender tries again later.
ATTEMPT_TIMEOUT_S = 3.0
TOTAL_TIMEOUT_S = 8.0

ClientFactory = Callable[[], Any]


class Reference(NamedTuple):
    """`sm://PROJECT/SECRET#VERSION`, taken apart (version None: latest)."""

    project: str
    secret: str
    version: str | None


def parse_reference(variable: str, value: str) -> Reference | None:
    """The reference `value` holds, or None when it is a plain value; a ConfigError naming
    `variable` when it starts like one and is not."""
    if not value.startswith(PREFIX):
        return None
    match = _REFERENCE.match(value)
    if match is None:
        raise ConfigError(
            f"{variable} looks like a Secret Manager reference but is not of the form "
            "sm://PROJECT/SECRET#VERSION"
        )
    return Reference(match["project"], match["secret"], match["version"])


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
        reference = parse_reference(variable, value)
        if reference is None:
            return value
        name = (
            f"projects/{reference.project}/secrets/{reference.secret}"
            f"/versions/{reference.version or 'latest'}"
        )
        secret = self._read(variable, name).strip()
        if not secret:
            raise ConfigError(f"{variable}: {name} is empty")
        return secret

    def _read(self, variable: str, name: str) -> str:
        """The secret version's value; SecretUnavailable for every way Secret Manager (or the
        credentials to reach it) can fail, which the library raises as several unrelated trees."""
        import requests
        from google.api_core import exceptions, retry
        from google.auth.exceptions import GoogleAuthError

        transient = retry.if_exception_type(
            exceptions.ServiceUnavailable, exceptions.ResourceExhausted
        )
        try:
            if self._client is None:
                self._client = self._client_factory()
            response = self._client.access_secret_version(
                name=name,
                retry=retry.Retry(predicate=transient, initial=0.2, timeout=TOTAL_TIMEOUT_S),
                timeout=ATTEMPT_TIMEOUT_S,
            )
            data: bytes = response.payload.data
        except (exceptions.GoogleAPIError, GoogleAuthError, requests.RequestException) as exc:
            # The first line only: the rest is the library's advice and call details.
            first_line = next(iter(str(exc).strip().splitlines()), "")
            reason = f"{type(exc).__name__}: {first_line[:200]}"
            raise SecretUnavailable(
                f"{variable}: cannot read {name} from Secret Manager ({reason})"
            ) from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            # The decoder's message would quote a byte of the secret.
            raise SecretUnavailable(f"{variable}: {name} is not UTF-8 text") from None
