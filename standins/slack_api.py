"""Slack incoming-webhook stand-in: records notes and answers with Slack's plain-text codes."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from standins.base import Request, Response, StandinServer

_FAULT_TEXT = {
    400: "invalid_payload",
    403: "invalid_token",
    404: "no_service",
    410: "channel_is_archived",
    429: "rate_limited",
}


class SlackStandin(StandinServer):
    """Stand-in for Slack incoming webhooks (any path under /services/)."""

    def _reset_state(self) -> None:
        self._notes: list[dict[str, Any]] = []
        self._no_service: set[str] = set()
        self._archived: set[str] = set()

    def load(self, scenario: Mapping[str, Any]) -> None:
        """Replace `{"no_service": [paths], "archived": [paths]}` (each key optional)."""
        unknown = set(scenario) - {"no_service", "archived"}
        if unknown:
            raise ValueError(f"unknown Slack scenario keys: {sorted(unknown)}")
        with self._lock:
            if "no_service" in scenario:
                self._no_service = set(scenario["no_service"])
            if "archived" in scenario:
                self._archived = set(scenario["archived"])

    def notes(self) -> list[dict[str, Any]]:
        """Accepted webhook posts in order: path, text, full payload, received_at."""
        with self._lock:
            return copy.deepcopy(self._notes)

    def control_routes(self) -> dict[tuple[str, str], Callable[[Request, str], Response]]:
        return {("GET", "notes"): lambda _req, _name: Response(200, self.notes())}

    def _extra_stats(self) -> dict[str, Any]:
        return {"notes": len(self._notes)}

    def endpoint_key(self, method: str, path: str) -> str:
        return f"{method} /services/..." if path.startswith("/services/") else "unrecognized"

    def error_response(self, status: int) -> Response:
        text = _FAULT_TEXT.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))
        return Response(status, text)

    def handle_api(self, request: Request) -> Response:
        path = request.path
        if (
            request.method != "POST"
            or not path.startswith("/services/")
            or path in self._no_service
        ):
            return Response(404, "no_service")
        if path in self._archived:
            return Response(410, "channel_is_archived")
        try:
            payload = request.json()
        except ValueError:
            return Response(400, "invalid_payload")
        if not isinstance(payload, dict):
            return Response(400, "invalid_payload")
        text = payload.get("text")
        # Slack posts blocks or attachments without text, but rejects a post with none of them.
        has_text = isinstance(text, str) and text.strip()
        if not (has_text or payload.get("blocks") or payload.get("attachments")):
            return Response(400, "missing_text_or_fallback_or_attachments")
        self._notes.append(
            {"path": path, "text": text, "payload": payload, "received_at": time.time()}
        )
        return Response(200, "ok")
