"""Tests for the Slack incoming-webhook stand-in over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from standins.slack_api import SlackStandin
from tests.clock import TestSeconds

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


def test_latency_applies():
    clock = TestSeconds()
    with SlackStandin(clock=clock) as srv:
        requests.post(f"{srv.url}/_control/latency", json={"latency_s": 0.15}, timeout=5)
        requests.post(f"{srv.url}{HOOK}", json={"text": "x"}, timeout=5)
        assert clock.slept == [0.15]


def test_reset_clears_notes(server):
    requests.post(f"{server.url}{HOOK}", json={"text": "x"}, timeout=5)
    requests.post(f"{server.url}/_control/reset", timeout=5)
    assert server.notes() == []
    assert server.stats()["requests"] == 0


def section(text: str, kind: str = "plain_text", **extra: object) -> dict[str, object]:
    return {"type": "section", "text": {"type": kind, "text": text, **extra}}


@pytest.mark.parametrize(
    "blocks",
    [
        "not a list",
        [],
        [section("x")] * 51,
        [{"text": {"type": "plain_text", "text": "no type"}}],
        [{"type": "section"}],
        [section("")],
        [section("x" * 3001)],
        [section("x", kind="markdown")],
        [section("x", kind="mrkdwn", emoji=True)],
        [section("x", verbatim=True)],
        [{"type": "section", "fields": "not a list"}],
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": ""}]}],
    ],
    ids=[
        "not a list",
        "empty",
        "51 blocks",
        "no type",
        "section without text",
        "empty text",
        "3001 characters",
        "unknown text type",
        "emoji on mrkdwn",
        "verbatim on plain_text",
        "fields not a list",
        "empty context element",
    ],
)
def test_blocks_slack_refuses_are_invalid_blocks(server, blocks):
    resp = requests.post(f"{server.url}{HOOK}", json={"text": "x", "blocks": blocks}, timeout=5)
    assert (resp.status_code, resp.text) == (400, "invalid_blocks")
    assert server.notes() == []


def test_a_text_note_records_what_mrkdwn_draws_and_the_links_slack_fetches(server):
    text = "ok\n*bold* _it_ ~no~ `x` <!channel> :tada: https://evil.example/p.png"
    requests.post(f"{server.url}{HOOK}", json={"text": text}, timeout=5)
    [note] = server.notes()
    assert sorted(note["rendered"]) == sorted(
        ["line break", "bold", "italic", "strike", "code", "link or mention", "emoji"]
    )
    # An app's message unfurls media unless told not to.
    assert note["unfurls"] == ["https://evil.example/p.png"]


def test_plain_text_draws_only_line_breaks_and_emoji_codes(server):
    blocks = [section("a\nb *c* :tada:"), section(":tada:", emoji=False)]
    requests.post(f"{server.url}{HOOK}", json={"text": "x", "blocks": blocks}, timeout=5)
    [note] = server.notes()
    assert sorted(note["rendered"]) == ["emoji", "line break"]


@pytest.mark.parametrize(
    ("flags", "fetched"),
    [
        ({}, True),
        ({"unfurl_links": False}, True),
        ({"unfurl_media": False}, False),
        ({"unfurl_media": False, "unfurl_links": True}, True),
        ({"unfurl_media": False, "unfurl_links": False}, False),
    ],
)
def test_links_are_fetched_unless_both_unfurls_are_off(server, flags, fetched):
    payload = {"text": "x", "blocks": [section("see www.evil.example/a.png")], **flags}
    requests.post(f"{server.url}{HOOK}", json=payload, timeout=5)
    [note] = server.notes()
    assert note["unfurls"] == (["www.evil.example/a.png"] if fetched else [])
