"""Secret Manager stand-in: the REST calls google-cloud-secret-manager makes to read a secret
(`versions:access`), create one and add a version."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

import flask

from standins.base import Reply, StandinServer, json_body

_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 500: "INTERNAL"}


def _error(code: int, message: str, status: str | None = None) -> Reply:
    # 409 is ALREADY_EXISTS or ABORTED: the caller names it.
    status = status or _STATUS.get(code, "UNKNOWN")
    return {"error": {"code": code, "message": message, "status": status}}, code, {}


class SecretManagerStandin(StandinServer):
    """Serves `{"secrets": {"projects/P/secrets/S": {"1": "value", ...}}}` (a value in bytes is
    served as it is, text as UTF-8); `latest` is the highest version;
    `{"denied": ["projects/P/secrets/S"]}` answers PERMISSION_DENIED to every call on that
    secret."""

    vendor = "Secret Manager"
    scenario_keys = frozenset({"secrets", "denied"})

    def _routes(self) -> None:
        self.route(
            "GET",
            "/v1/projects/<project>/secrets/<secret>/versions/<version>:access",
            self._access,
            name="versions:access",
        )
        self.route("POST", "/v1/projects/<project>/secrets", self._create)
        self.route("POST", "/v1/projects/<project>/secrets/<secret>:addVersion", self._add_version)

    def _reset_state(self) -> None:
        self._secrets: dict[str, dict[str, bytes]] = {}
        self._denied: set[str] = set()

    def _load(self, scenario: Mapping[str, Any]) -> None:
        for name, versions in scenario.get("secrets", {}).items():
            self._secrets[name] = {
                str(k): v if isinstance(v, bytes) else str(v).encode() for k, v in versions.items()
            }
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
        data = base64.b64encode(versions[version]).decode()
        return {"name": f"{name}/versions/{version}", "payload": {"data": data}}, 200, {}

    def _create(self, project: str) -> Reply:
        secret_id = flask.request.args.get("secretId", "")
        if not re.fullmatch(r"[\w-]{1,255}", secret_id):
            return _error(400, "secretId must be 1 to 255 letters, digits, - or _")
        name = f"projects/{project}/secrets/{secret_id}"
        if name in self._denied:
            return _error(403, f"Permission 'secretmanager.secrets.create' denied on {name}")
        if name in self._secrets:
            return _error(409, f"Secret [{name}] already exists.", "ALREADY_EXISTS")
        self._secrets[name] = {}
        return {"name": name, "replication": json_body().get("replication", {})}, 200, {}

    def _add_version(self, project: str, secret: str) -> Reply:
        name = f"projects/{project}/secrets/{secret}"
        if name in self._denied:
            return _error(403, f"Permission 'secretmanager.versions.add' denied on {name}")
        if name not in self._secrets:
            return _error(404, f"Secret [{name}] not found.")
        versions = self._secrets[name]
        version = str(max(map(int, versions), default=0) + 1)
        versions[version] = base64.b64decode(json_body()["payload"]["data"])
        return {"name": f"{name}/versions/{version}", "state": "ENABLED"}, 200, {}
