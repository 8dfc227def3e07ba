"""Slack incoming-webhook stand-in: checks blocks as Slack does, records each note with what
Slack would draw of it and the links it would fetch, and answers with Slack's plain-text codes."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import flask
from werkzeug.exceptions import BadRequest

from standins.base import Reply, Routes, StandinServer

_FAULT_TEXT = {
    400: "invalid_payload",
    403: "invalid_token",
    404: "no_service",
    410: "channel_is_archived",
    429: "rate_limited",
}

# Block Kit's limits (docs.slack.dev, reference/block-kit): at most 50 blocks in a message, and a
# text object of 1 to 3000 characters whose `emoji` goes with plain_text only and `verbatim`
# with mrkdwn only. Slack refuses anything else with `invalid_blocks`.
MAX_BLOCKS = 50
MAX_TEXT_OBJECT = 3000
_TEXT_TYPES = {"plain_text": "emoji", "mrkdwn": "verbatim"}
# What mrkdwn draws instead of the characters written (a message's `text` without blocks is
# mrkdwn too): each starts at its marker and reads to the closing one on the same line.
_MRKDWN = {
    "bold": re.compile(r"(?<!\w)\*[^*\n]+\*(?!\w)"),
    "italic": re.compile(r"(?<!\w)_[^_\n]+_(?!\w)"),
    "strike": re.compile(r"(?<!\w)~[^~\n]+~(?!\w)"),
    "code": re.compile(r"`[^`]+`"),
    "link or mention": re.compile(r"<[^<>\n]+>"),
    "quote": re.compile(r"^>", re.MULTILINE),
}
# Drawn in plain_text too: a line break, and an emoji code unless `emoji` is false.
_EMOJI_CODE = re.compile(r":[a-z0-9_+'-]+:")
# Slack turns these into links, and fetches a preview of a link unless told not to.
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>|]+")


class SlackStandin(StandinServer):
    """Stand-in for Slack incoming webhooks (any path under /services/)."""

    vendor = "Slack"
    scenario_keys = frozenset({"no_service", "archived"})

    @classmethod
    def _routes(cls, routes: Routes) -> None:
        routes.route("POST", "/services/<path:hook>", cls._post, name="/services/...")
        routes.api.register_error_handler(BadRequest, lambda _: ("invalid_payload", 400))
        routes.control_route("GET", "/notes", cls.notes)

    def _reset_state(self) -> None:
        self._notes: list[dict[str, Any]] = []
        self._no_service: set[str] = set()
        self._archived: set[str] = set()

    def _load(self, scenario: Mapping[str, Any]) -> None:
        """Replace `{"no_service": [paths], "archived": [paths]}` (each key optional)."""
        for name, paths in scenario.items():
            setattr(self, f"_{name}", set(paths))

    def notes(self) -> list[dict[str, Any]]:
        """Accepted webhook posts in order: path, text, full payload, received_at, and what the
        channel would show: `rendered` (the formatting Slack would draw: bold, a line break, a
        link...) and `unfurls` (the links Slack may fetch a preview or an image of)."""
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
        blocks = payload.get("blocks")
        if not (has_text or blocks or payload.get("attachments")):
            return "missing_text_or_fallback_or_attachments", 400, {}
        if blocks is not None and not _valid_blocks(blocks):
            return "invalid_blocks", 400, {}
        # With blocks, `text` is only the notification's fallback: the blocks are what shows.
        # Without, `text` is mrkdwn unless the message says `"mrkdwn": false`.
        kind = "plain_text" if payload.get("mrkdwn") is False else "mrkdwn"
        shown = _block_texts(blocks) if blocks else [{"type": kind, "text": text or ""}]
        self._notes.append(
            {
                "path": path,
                "text": text,
                "payload": payload,
                "received_at": time.time(),
                "rendered": [drawn for piece in shown for drawn in _rendered(piece)],
                "unfurls": _unfurls(payload, shown),
            }
        )
        return "ok", 200, {}


def _valid_text_object(value: Any) -> bool:
    if not isinstance(value, dict) or value.get("type") not in _TEXT_TYPES:
        return False
    other = set(_TEXT_TYPES.values()) - {_TEXT_TYPES[value["type"]]}
    text = value.get("text")
    return isinstance(text, str) and 1 <= len(text) <= MAX_TEXT_OBJECT and not other & set(value)


def _valid_blocks(blocks: Any) -> bool:
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= MAX_BLOCKS:
        return False
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return False
        if block["type"] == "section" and not ("text" in block or "fields" in block):
            return False
        if not isinstance(block.get("fields", []), list):
            return False
        if not isinstance(block.get("elements", []), list):
            return False
        if any(not _valid_text_object(piece) for piece in _text_objects(block)):
            return False
    return True


def _text_objects(block: dict[str, Any]) -> list[Any]:
    """The text objects of a section (its text and fields) or a context block (its elements)."""
    found = [block["text"]] if "text" in block else []
    found += block.get("fields") or []
    if block.get("type") == "context":
        found += [
            e
            for e in block.get("elements") or []
            if isinstance(e, dict) and e.get("type") in _TEXT_TYPES
        ]
    return found


def _block_texts(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [piece for block in blocks for piece in _text_objects(block)]


def _rendered(piece: dict[str, Any]) -> list[str]:
    """What Slack draws of a text object beyond the characters written."""
    text, mrkdwn = piece["text"], piece["type"] == "mrkdwn"
    drawn = ["line break"] * text.count("\n")
    if mrkdwn or piece.get("emoji", True):
        drawn += ["emoji"] * len(_EMOJI_CODE.findall(text))
    if mrkdwn:
        drawn += [name for name, pattern in _MRKDWN.items() for _ in pattern.findall(text)]
    return drawn


def _unfurls(payload: dict[str, Any], shown: list[dict[str, Any]]) -> list[str]:
    """The links Slack may fetch: an app's message unfurls media unless `unfurl_media` is false,
    and other pages when `unfurl_links` is true; which a link is, only fetching it tells."""
    if payload.get("unfurl_media", True) is False and payload.get("unfurl_links") is not True:
        return []
    return [url for piece in shown for url in _URL.findall(piece["text"])]
