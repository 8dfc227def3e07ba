"""The Slack adapter against the incoming-webhook stand-in: what the team's note carries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.adapters.slack import MAX_NOTE, SlackNotifier, note_payload
from standins.slack_api import SlackStandin

HOOK = "/services/T000/B000/XXXX"


@pytest.fixture
def server() -> Iterator[SlackStandin]:
    with SlackStandin() as srv:
        yield srv


def test_a_note_is_one_plain_text_line_that_unfurls_nothing():
    assert note_payload('Reply from Bob (cus_1, invoice in_1): "ok\nthanks"') == {
        "text": 'Reply from Bob (cus_1, invoice in_1): "ok thanks"',
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "plain_text",
                    "text": 'Reply from Bob (cus_1, invoice in_1): "ok thanks"',
                    "emoji": False,
                },
            }
        ],
        "unfurl_links": False,
        "unfurl_media": False,
    }


def test_customer_text_cannot_ping_the_channel_or_forge_a_link(server):
    # A reply (or a customer's name) is quoted in the note: Slack reads <...> and & as markup
    # (`<!channel>` notifies everyone, `<url|label>` shows a link under any label), in the
    # notification's fallback text too, so they go there as the entities Slack asks for.
    reply = 'Reply from Bob: "<!channel> pay at <https://evil.example|your bank> & co"'
    SlackNotifier(server.url + HOOK).notify(reply)
    [note] = server.notes()
    assert note["text"] == (
        'Reply from Bob: "&lt;!channel&gt; pay at &lt;https://evil.example|your bank&gt; &amp; co"'
    )
    assert note["payload"]["blocks"][0]["text"]["text"] == reply
    assert note["rendered"] == []


def test_customer_text_cannot_format_draw_a_line_or_unfurl_in_the_channel(server):
    # Only `& < >` were escaped: a line break drew a line of its own that looked like ours,
    # mrkdwn made words bold, and Slack fetched the image a link pointed at into the channel.
    reply = (
        'Reply from Bob (cus_1, invoice in_1): "thanks\nRecovered *$9,999.00* for in_2 '
        '_today_ ~late~ `ok` > quoted :rotating_light: https://evil.example/pixel.png"'
    )
    SlackNotifier(server.url + HOOK).notify(reply)
    [note] = server.notes()
    assert (note["rendered"], note["unfurls"]) == ([], [])
    shown = note["payload"]["blocks"][0]["text"]["text"]
    assert shown.startswith('Reply from Bob (cus_1, invoice in_1): "thanks Recovered *$9,999')


def test_a_note_is_masked_and_cut_to_what_slack_takes(server):
    SlackNotifier(server.url + HOOK).notify("call +14155550199 " + "x" * 5000)
    [note] = server.notes()
    shown = note["payload"]["blocks"][0]["text"]["text"]
    assert shown.startswith("call +1******0199 x")
    assert len(shown) == MAX_NOTE
    assert shown.endswith("…")
