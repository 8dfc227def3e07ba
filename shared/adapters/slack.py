"""Optional internal Slack note per outcome; a Slack problem never fails a run."""

from __future__ import annotations

from typing import Any

import requests

from shared.core.log import WARNING, log, redact
from shared.core.text import clean, shorten

TIMEOUT = (2.0, 3.0)
# Slack refuses a text object longer than this (invalid_blocks). Notes are far shorter; the cut
# is a bound, and it comes first so the masking never reads more than a note's worth.
MAX_NOTE = 3000
# Slack reads these as markup (`<!channel>` notifies everyone, `<url|label>` is a link under any
# label), in the notification text too: they go as the entities Slack's formatting asks for.
_MARKUP = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def note_payload(text: str, mask: bool = True) -> dict[str, Any]:
    """The incoming-webhook payload of a one-line note that Slack shows exactly as written, every
    number and address in it masked (`mask` False: the caller masked what is not its own).

    A note quotes customers (a reply, a name), and mrkdwn has no escape for `*`, `_`, `~` or a
    backtick, so no note is mrkdwn: it goes as a `plain_text` section (Slack's text object that
    is never formatted), on one line (a line break in a reply could draw a line that looks like
    ours), and with both unfurls off, so that no link in it makes Slack fetch a preview or an
    image into the channel. `text` is only the notification's fallback.
    """
    cut = text[: 2 * MAX_NOTE]
    line = shorten(clean(redact(cut) if mask else cut), MAX_NOTE)
    return {
        "text": line.translate(_MARKUP),
        "blocks": [
            {"type": "section", "text": {"type": "plain_text", "text": line, "emoji": False}}
        ],
        "unfurl_links": False,
        "unfurl_media": False,
    }


class SlackNotifier:
    """Posts one-line notes to an incoming webhook, or does nothing when none is configured."""

    def __init__(self, webhook_url: str | None, session: requests.Session | None = None) -> None:
        self._url = webhook_url
        self._session = session or requests.Session()

    def notify(self, text: str, mask: bool = True) -> None:
        """Post `text`, masked (`mask` False: the caller masked what needs it, and names the
        operator by their address)."""
        if self._url is None:
            return
        try:
            payload = note_payload(text, mask)
            response = self._session.post(self._url, json=payload, timeout=TIMEOUT)
        except requests.RequestException as exc:
            log(WARNING, "slack note not delivered", error=type(exc).__name__)
            return
        if not response.ok:
            # Slack answers with a short code such as `invalid_payload` or `no_service`.
            log(
                WARNING,
                "slack note not delivered",
                status=response.status_code,
                error=response.text[:100],
            )
