"""Slack incoming-webhook stand-in: records notes and answers with Slack's plain-text codes."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import flask
from werkzeug.exceptions import BadRequest

from standins.base import Reply, StandinServer

_FAULT_TEXT = {
    400: "invalid_payload",
    403: "invalid_token",
    404: "no_service",
    410: "channel_is_archived",
    429: "rate_limited",
}


class SlackStandin(StandinServer):
    """Stand-in for Slack incoming webhooks (any path under /services/)."""

    vendor = "Slack"
    scenario_keys = frozenset({"no_service", "archived"})

    def _routes(self) -> None:
        self.route("POST", "/services/<path:hook>", self._post, name="/services/...")
        self.api.register_error_handler(BadRequest, lambda _: ("invalid_payload", 400))
        self.control_route("GET", "/notes", self.notes)

    def _reset_state(self) -> None:
        self._notes: list[dict[str, Any]] = []
        self._no_service: set[str] = set()
        self._archived: set[str] = set()

    def _load(self, scenario: Mapping[str, Any]) -> None:
        """Replace `{"no_service": [paths], "archived": [paths]}` (each key optional)."""
        for name, paths in scenario.items():
            setattr(self, f"_{name}", set(paths))

    def notes(self) -> list[dict[str, Any]]:
        """Accepted webhook posts in order: path, text, full payload, received_at."""
        with self._lock:
            return copy.deepcopy(self._notes)

    def _extra_stats(self) -> dict[str, Any]:
        return {"notes": len(self._notes)}

    def error_response(self, status: int) -> Reply:
        text = _FAULT_TEXT.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))
        return text, status, {}

    def unrecognized(self) -> Reply:
        return "no_service", 404, {}

    def _post(self, hook: str) -> Reply:
        path = flask.request.path
        if path in self._no_service:
            return self.unrecognized()
        if path in self._archived:
            return "channel_is_archived", 410, {}
        payload = flask.request.get_json(force=True)
        if not isinstance(payload, dict):
            return "invalid_payload", 400, {}
        text = payload.get("text")
        # Slack posts blocks or attachments without text, but rejects a post with none of them.
        has_text = isinstance(text, str) and text.strip()
        if not (has_text or payload.get("blocks") or payload.get("attachments")):
            return "missing_text_or_fallback_or_attachments", 400, {}
        self._notes.append(
            {"path": path, "text": text, "payload": payload, "received_at": time.time()}
        )
        return "ok", 200, {}
