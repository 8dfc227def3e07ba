"""Optional internal Slack note per outcome; a Slack problem never fails a run."""

from __future__ import annotations

import requests

from shared.core.log import WARNING, log, redact

TIMEOUT = (2.0, 3.0)
# Slack reads these as markup (`<!channel>` notifies everyone, `<url|label>` is a link under any
# label); a note quotes customer text, so they go as the entities Slack's formatting asks for.
_MARKUP = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


class SlackNotifier:
    """Posts one-line notes to an incoming webhook, or does nothing when none is configured."""

    def __init__(self, webhook_url: str | None, session: requests.Session | None = None) -> None:
        self._url = webhook_url
        self._session = session or requests.Session()

    def notify(self, text: str) -> None:
        if self._url is None:
            return
        try:
            response = self._session.post(
                self._url, json={"text": redact(text).translate(_MARKUP)}, timeout=TIMEOUT
            )
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
