"""Linq Partner API v3 adapter: lines, capability, chats; Linq's errors turned into ours."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from shared.core.errors import (
    LineIneligibleError,
    OptedOutError,
    PermanentError,
    RecoveryError,
    RetryableError,
    UnreachableError,
    vendor_message,
)
from shared.core.lines import Capability, Line

# (connect, read) seconds. Linq is not retried in-process: the whole run is redelivered by
# Pub/Sub, and idempotency keys make the repeated sends harmless.
TIMEOUT = (3.05, 8.0)
# The line list changes rarely; re-reading it every few minutes keeps a warm run at one call less.
LINES_TTL_SECONDS = 300.0

CODE_OPTED_OUT = 2024
CODE_LINE_INELIGIBLE = 2027
# Codes with which the capability check refuses an address outright (unsupported region, format).
# Elsewhere 1005 means something else (a link in a chat's first message), hence the path.
_CAPABILITY_PATH = "/capability/check_imessage"
_REFUSED_ADDRESS_CODES = frozenset({1002, 1005})
# Linq's trace ids are 32 hexadecimal digits.
_MAX_ID = 64


@dataclass(frozen=True)
class Sent:
    """A text that went out: the chat it opened (or went into) and its message id, which Linq's
    `message.failed` webhook names it by (it carries no idempotency key)."""

    chat_id: str
    message_id: str | None


def _message_id(message: Any) -> str | None:
    found = message.get("id") if isinstance(message, dict) else None
    return found if isinstance(found, str) and found else None


def _error(path: str, response: requests.Response, request: Any = None) -> RecoveryError:
    """Our error for a Linq error response to `path` (the envelope is documented in linq-api.md
    section 6): the one place Linq's statuses and codes are read. Linq's code is kept as it is;
    its message, bounded, masked and without any of `request` (the body we sent) it quotes."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    status = response.status_code
    code = _short(error.get("code"))
    message = vendor_message(error.get("message") or response.reason or "no message", request)
    detail = {
        "vendor": "linq",
        "status": status,
        "code": code,
        "linq_message": message,
        "retry_after": _short(error.get("retry_after") or response.headers.get("Retry-After")),
        "trace_id": _short(body.get("trace_id") if isinstance(body, dict) else None),
    }
    reason = f"Linq {status} (code {code}): {message}"
    if status == 429 or status >= 500:
        return RetryableError(reason, **detail)
    if status == 403 and code == CODE_OPTED_OUT:
        return OptedOutError(reason, **detail)
    if status == 403 and code == CODE_LINE_INELIGIBLE:
        return LineIneligibleError(reason, **detail)
    if path == _CAPABILITY_PATH and status == 400 and code in _REFUSED_ADDRESS_CODES:
        return UnreachableError(reason, **detail)
    return PermanentError(reason, **detail)


def _short(value: Any) -> Any:
    """A code, a delay or an id from Linq as we keep it: a number as it is, anything else as
    short masked text (a vendor's answer is not always the shape its documentation gives)."""
    if value is None or isinstance(value, int | float):
        return value
    return vendor_message(value, limit=_MAX_ID)


class LinqClient:
    """One keep-alive HTTP session per instance against `{api_base}/v3/...`."""

    def __init__(
        self,
        api_key: str,
        api_base: str,
        session: requests.Session | None = None,
        read_timeout: float | None = None,
    ) -> None:
        """`read_timeout`: seconds to wait for an answer, when not TIMEOUT's."""
        self._timeout = (TIMEOUT[0], read_timeout or TIMEOUT[1])
        self._base = api_base.rstrip("/") + "/v3"
        self._session = session or requests.Session()
        self._session.headers.update(
            {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        )
        self._lines: tuple[Line, ...] | None = None
        self._lines_read_at = 0.0
        self._lines_lock = threading.Lock()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            url = self._base + path
            response = self._session.request(method, url, json=body, timeout=self._timeout)
        except requests.Timeout as exc:
            raise RetryableError(f"Linq {method} {path} timed out", vendor="linq") from exc
        except requests.RequestException as exc:
            raise RetryableError(
                f"Linq {method} {path} unreachable: {type(exc).__name__}", vendor="linq"
            ) from exc
        if not response.ok:
            raise _error(path, response, body)
        try:
            return response.json()
        except ValueError as exc:
            # A 2xx that is not JSON comes from something in between (a proxy page): try again.
            raise RetryableError(
                f"Linq {method} {path} answered {response.status_code} without JSON",
                vendor="linq",
                status=response.status_code,
            ) from exc

    def lines(self) -> tuple[Line, ...]:
        """The account's lines, re-read at most every few minutes."""
        with self._lines_lock:
            fresh = time.monotonic() - self._lines_read_at < LINES_TTL_SECONDS
            if self._lines is None or not fresh:
                listed = self._call("GET", "/phone_numbers").get("phone_numbers") or []
                self._lines = tuple(
                    Line(
                        number=item["phone_number"],
                        reputation=(item.get("reputation") or {}).get("status") or "HEALTHY",
                    )
                    for item in listed
                )
                self._lines_read_at = time.monotonic()
            return self._lines

    def forget_lines(self) -> None:
        """Read the line list afresh next time (Linq said a line's status changed)."""
        with self._lines_lock:
            self._lines = None

    def capability(self, address: str, sender: str) -> Capability:
        """Which service (iMessage, RCS or SMS) would carry a text to `address` from `sender`;
        UnreachableError when Linq refuses the address outright."""
        answer = self._call("POST", _CAPABILITY_PATH, {"address": address, "from": sender})
        return Capability(
            imessage=bool(answer.get("available")), service=answer.get("selected_service")
        )

    def create_chat(self, sender: str, to: str, text: str, idempotency_key: str) -> Sent:
        """Open (or reuse) the chat with `to` and send `text` in it."""
        answer = self._call(
            "POST",
            "/chats",
            {
                "from": sender,
                "to": [to],
                "message": {
                    "parts": [{"type": "text", "value": text}],
                    "idempotency_key": idempotency_key,
                },
            },
        )
        chat = answer["chat"]
        return Sent(str(chat["id"]), _message_id(chat.get("message")))

    def send_link(self, chat_id: str, url: str, idempotency_key: str) -> str | None:
        """Post `url` as a link part (a rich preview card where the service supports one);
        returns the message's id."""
        answer = self._call(
            "POST",
            f"/chats/{chat_id}/messages",
            {
                "message": {
                    "parts": [{"type": "link", "value": url}],
                    "idempotency_key": idempotency_key,
                }
            },
        )
        return _message_id(answer.get("message"))
