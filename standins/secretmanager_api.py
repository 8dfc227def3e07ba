"""Secret Manager stand-in: the REST `versions:access` call google-cloud-secret-manager makes."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import flask

from standins.base import Reply, StandinServer

_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 500: "INTERNAL"}


def _error(code: int, message: str) -> Reply:
    status = _STATUS.get(code, "UNKNOWN")
    return {"error": {"code": code, "message": message, "status": status}}, code, {}


class SecretManagerStandin(StandinServer):
    """Serves `{"secrets": {"projects/P/secrets/S": {"1": "value", ...}}}`; `latest` is the
    highest version; `{"denied": ["projects/P/secrets/S"]}` answers PERMISSION_DENIED."""

    vendor = "Secret Manager"
    scenario_keys = frozenset({"secrets", "denied"})

    def _routes(self) -> None:
        self.route(
            "GET",
            "/v1/projects/<project>/secrets/<secret>/versions/<version>:access",
            self._access,
            name="versions:access",
        )

    def _reset_state(self) -> None:
        self._secrets: dict[str, dict[str, str]] = {}
        self._denied: set[str] = set()

    def _load(self, scenario: Mapping[str, Any]) -> None:
        for name, versions in scenario.get("secrets", {}).items():
            self._secrets[name] = {str(k): str(v) for k, v in versions.items()}
        self._denied |= set(scenario.get("denied", []))

    def error_response(self, status: int) -> Reply:
        return _error(status, "injected fault")

    def unrecognized(self) -> Reply:
        return _error(404, f"Method not found: {flask.request.method} {flask.request.path}")

    def _access(self, project: str, secret: str, version: str) -> Reply:
        name = f"projects/{project}/secrets/{secret}"
        if name in self._denied:
            return _error(403, f"Permission 'secretmanager.versions.access' denied on {name}")
        versions = self._secrets.get(name)
        if not versions:
            return _error(404, f"Secret [{name}] not found or has no versions.")
        if version == "latest":
            version = max(versions, key=int)
        if version not in versions:
            return _error(404, f"Secret Version [{name}/versions/{version}] not found.")
        data = base64.b64encode(versions[version].encode()).decode()
        return {"name": f"{name}/versions/{version}", "payload": {"data": data}}, 200, {}
