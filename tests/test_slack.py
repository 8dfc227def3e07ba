"""The Slack adapter against the incoming-webhook stand-in: what the team's note carries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.adapters.slack import SlackNotifier
from standins.slack_api import SlackStandin

HOOK = "/services/T000/B000/XXXX"


@pytest.fixture
def server() -> Iterator[SlackStandin]:
    with SlackStandin() as srv:
        yield srv


def test_customer_text_cannot_ping_the_channel_or_forge_a_link(server):
    # A reply (or a customer's name) is quoted in the note: Slack reads <...> and & as markup
    # (`<!channel>` notifies everyone, `<url|label>` shows a link under any label), so they go
    # as the entities Slack's formatting reference asks for.
    reply = 'Reply from Bob: "<!channel> pay at <https://evil.example|your bank> & co"'
    SlackNotifier(server.url + HOOK).notify(reply)
    [note] = server.notes()
    assert note["text"] == (
        'Reply from Bob: "&lt;!channel&gt; pay at &lt;https://evil.example|your bank&gt; &amp; co"'
    )
