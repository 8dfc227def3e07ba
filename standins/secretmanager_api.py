"""Secret Manager stand-in: the REST calls google-cloud-secret-manager makes to read a secret
(`versions:access`), create one and add a version, and those gcloud makes to describe a secret
and list or describe its versions."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

import flask

from standins.base import Reply, Routes, StandinServer, json_body

_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 500: "INTERNAL"}


class SecretManagerError(Exception):
    """An error answer, raised inside handlers: 409 is ALREADY_EXISTS or ABORTED, so the caller
    names the status."""

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code, self.status = code, status or _STATUS.get(code, "UNKNOWN")

    def response(self) -> Reply:
        error = {"code": self.code, "message": str(self), "status": self.status}
        return {"error": error}, self.code, {}


class SecretManagerStandin(StandinServer):
    """Serves `{"secrets": {"projects/P/secrets/S": {"1": "value", ...}}}` (a value in bytes is
    served as it is, text as UTF-8); `latest` is the highest version, and every version is
    ENABLED; `{"denied": ["projects/P/secrets/S"]}` answers PERMISSION_DENIED to every call on
    that secret."""

    vendor = "Secret Manager"
    scenario_keys = frozenset({"secrets", "denied"})

    @classmethod
    def _routes(cls, routes: Routes) -> None:
        path = "/v1/projects/<project>/secrets/<secret>"
        routes.route(
            "GET", f"{path}/versions/<version>:access", cls._access, name="versions:access"
        )
        routes.route("POST", "/v1/projects/<project>/secrets", cls._create)
        routes.route("POST", f"{path}:addVersion", cls._add_version)
        routes.route("GET", path, cls._get)
        routes.route("GET", f"{path}/versions", cls._list_versions)
        routes.route("GET", f"{path}/versions/<version>", cls._get_version)
        routes.api.register_error_handler(SecretManagerError, SecretManagerError.response)

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
        return SecretManagerError(status, "injected fault").response()

    def unrecognized(self) -> Reply:
        return SecretManagerError(
            404, f"Method not found: {flask.request.method} {flask.request.path}"
        ).response()

    def _secret(self, project: str, secret: str, permission: str) -> str:
        """The secret's full name, once the caller may use `permission` on it."""
        name = f"projects/{project}/secrets/{secret}"
        if name in self._denied:
            raise SecretManagerError(
                403, f"Permission 'secretmanager.{permission}' denied on {name}"
            )
        return name

    def _version(
        self, project: str, secret: str, version: str, permission: str
    ) -> tuple[str, bytes]:
        """The version's full name (`latest`: the highest) and its value."""
        name = self._secret(project, secret, f"versions.{permission}")
        versions = self._secrets.get(name)
        if not versions:
            raise SecretManagerError(404, f"Secret [{name}] not found or has no versions.")
        if version == "latest":
            version = max(versions, key=int)
        if version not in versions:
            raise SecretManagerError(404, f"Secret Version [{name}/versions/{version}] not found.")
        return f"{name}/versions/{version}", versions[version]

    def _access(self, project: str, secret: str, version: str) -> Reply:
        name, value = self._version(project, secret, version, "access")
        return {"name": name, "payload": {"data": base64.b64encode(value).decode()}}, 200, {}

    def _get_version(self, project: str, secret: str, version: str) -> Reply:
        name, _ = self._version(project, secret, version, "get")
        return {"name": name, "state": "ENABLED"}, 200, {}

    def _get(self, project: str, secret: str) -> Reply:
        name = self._secret(project, secret, "secrets.get")
        if name not in self._secrets:
            raise SecretManagerError(404, f"Secret [{name}] not found.")
        return {"name": name, "replication": {"automatic": {}}}, 200, {}

    def _list_versions(self, project: str, secret: str) -> Reply:
        """Every version, newest first, as Secret Manager lists them."""
        name = self._secret(project, secret, "versions.list")
        if name not in self._secrets:
            raise SecretManagerError(404, f"Secret [{name}] not found.")
        numbers = sorted(self._secrets[name], key=int, reverse=True)
        versions = [{"name": f"{name}/versions/{n}", "state": "ENABLED"} for n in numbers]
        return {"versions": versions, "totalSize": len(versions)}, 200, {}

    def _create(self, project: str) -> Reply:
        secret_id = flask.request.args.get("secretId", "")
        if not re.fullmatch(r"[\w-]{1,255}", secret_id):
            raise SecretManagerError(400, "secretId must be 1 to 255 letters, digits, - or _")
        name = self._secret(project, secret_id, "secrets.create")
        if name in self._secrets:
            raise SecretManagerError(409, f"Secret [{name}] already exists.", "ALREADY_EXISTS")
        self._secrets[name] = {}
        return {"name": name, "replication": json_body().get("replication", {})}, 200, {}

    def _add_version(self, project: str, secret: str) -> Reply:
        name = self._secret(project, secret, "versions.add")
        if name not in self._secrets:
            raise SecretManagerError(404, f"Secret [{name}] not found.")
        versions = self._secrets[name]
        version = str(max(map(int, versions), default=0) + 1)
        versions[version] = base64.b64decode(json_body()["payload"]["data"])
        return {"name": f"{name}/versions/{version}", "state": "ENABLED"}, 200, {}
