"""Tests for the Slack incoming-webhook stand-in over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from standins.slack_api import SlackStandin

REPO = Path(__file__).resolve().parents[1]
HOOK = "/services/T000/B000/XXXX"


@pytest.fixture
def server() -> Iterator[SlackStandin]:
    with SlackStandin() as srv:
        yield srv


def test_text_post_is_ok_and_recorded(server):
    resp = requests.post(f"{server.url}{HOOK}", json={"text": "Texted in_123"}, timeout=5)
    assert (resp.status_code, resp.text, resp.headers["Content-Type"]) == (
        200,
        "ok",
        "text/plain; charset=utf-8",
    )
    assert [(n["path"], n["text"]) for n in server.notes()] == [(HOOK, "Texted in_123")]


def test_notes_control_endpoint(server):
    requests.post(f"{server.url}{HOOK}", json={"text": "hello"}, timeout=5)
    notes = requests.get(f"{server.url}/_control/notes", timeout=5).json()
    assert notes[0]["text"] == "hello"


@pytest.mark.parametrize("body", [b"", b"not json", b"[1]"])
def test_malformed_body_is_invalid_payload(server, body):
    resp = requests.post(f"{server.url}{HOOK}", data=body, timeout=5)
    assert (resp.status_code, resp.text) == (400, "invalid_payload")


def test_json_without_text_is_rejected(server):
    resp = requests.post(f"{server.url}{HOOK}", json={"channel": "#ops"}, timeout=5)
    assert (resp.status_code, resp.text) == (400, "missing_text_or_fallback_or_attachments")
    assert server.notes() == []


def test_archived_hook_is_410(server):
    server.load({"archived": [HOOK]})
    resp = requests.post(f"{server.url}{HOOK}", json={"text": "x"}, timeout=5)
    assert (resp.status_code, resp.text) == (410, "channel_is_archived")


def test_removed_hook_is_404_no_service(server):
    server.load({"no_service": [HOOK]})
    resp = requests.post(f"{server.url}{HOOK}", json={"text": "x"}, timeout=5)
    assert (resp.status_code, resp.text) == (404, "no_service")


def test_path_outside_services_is_404(server):
    resp = requests.post(f"{server.url}/hooks/x", json={"text": "x"}, timeout=5)
    assert resp.status_code == 404


def test_injected_500_then_recovers(server):
    server.add_fault("/services/", status=500)
    first = requests.post(f"{server.url}{HOOK}", json={"text": "x"}, timeout=5)
    second = requests.post(f"{server.url}{HOOK}", json={"text": "x"}, timeout=5)
    assert (first.status_code, second.status_code) == (500, 200)


def test_latency_applies(server):
    requests.post(f"{server.url}/_control/latency", json={"latency_s": 0.15}, timeout=5)
    started = time.monotonic()
    requests.post(f"{server.url}{HOOK}", json={"text": "x"}, timeout=5)
    assert time.monotonic() - started >= 0.15


def test_reset_clears_notes(server):
    requests.post(f"{server.url}{HOOK}", json={"text": "x"}, timeout=5)
    requests.post(f"{server.url}/_control/reset", timeout=5)
    assert server.notes() == []
    assert server.stats()["requests"] == 0
