"""Secret Manager stand-in: the REST `versions:access` call google-cloud-secret-manager makes."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

from standins.base import Request, Response, StandinServer

_ACCESS = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/:]+):access$")
_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 500: "INTERNAL"}


def _error(code: int, message: str) -> Response:
    return Response(
        code, {"error": {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN")}}
    )


class SecretManagerStandin(StandinServer):
    """Serves `{"secrets": {"projects/P/secrets/S": {"1": "value", ...}}}`; `latest` is the
    highest version; `{"denied": ["projects/P/secrets/S"]}` answers PERMISSION_DENIED."""

    def _reset_state(self) -> None:
        self._secrets: dict[str, dict[str, str]] = {}
        self._denied: set[str] = set()

    def load(self, scenario: Mapping[str, Any]) -> None:
        unknown = set(scenario) - {"secrets", "denied"}
        if unknown:
            raise ValueError(f"unknown Secret Manager scenario keys: {sorted(unknown)}")
        with self._lock:
            for name, versions in scenario.get("secrets", {}).items():
                self._secrets[name] = {str(k): str(v) for k, v in versions.items()}
            self._denied |= set(scenario.get("denied", []))

    def control_routes(self) -> dict[tuple[str, str], Callable[[Request, str], Response]]:
        return {}

    def _extra_stats(self) -> dict[str, Any]:
        return {}

    def endpoint_key(self, method: str, path: str) -> str:
        return f"{method} versions:access" if _ACCESS.match(path) else "unrecognized"

    def error_response(self, status: int) -> Response:
        return _error(status, "injected fault")

    def handle_api(self, request: Request) -> Response:
        match = _ACCESS.match(request.path)
        if request.method != "GET" or match is None:
            return _error(404, f"Method not found: {request.method} {request.path}")
        project, secret, version = match.groups()
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
        return Response(200, {"name": f"{name}/versions/{version}", "payload": {"data": data}})
