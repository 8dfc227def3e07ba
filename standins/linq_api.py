"""Linq Partner API v3 stand-in: lines, capability checks, chats and messages with Linq's rules,
and the webhooks Linq sends about them."""

from __future__ import annotations

import copy
import json
import mimetypes
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import flask
from werkzeug.exceptions import BadRequest

from standins.base import (
    IdempotencyKeys,
    Reply,
    Routes,
    SlidingLimit,
    StandinServer,
    bearer_token,
    json_body,
)
from standins.builders import (
    linq_event,
    linq_failed,
    linq_handle,
    linq_health,
    linq_line,
    linq_line_change,
    linq_message,
    linq_reputation,
    linq_time,
)
from standins.linkrule import contains_url
from standins.serving import AFTER_ANSWER
from standins.signing_secrets import new_linq_secret
from standins.webhooks import WebhookSender

LINQ_TOKEN = "linqstandintoken0000"  # noqa: S105 -- a public fake for local stand-ins
DEFAULT_PAIR_LIMIT = 30
DEFAULT_PAIR_WINDOW_S = 60.0
DEFAULT_CAPABILITY_LIMIT = 60
DEFAULT_CAPABILITY_WINDOW_S = 60.0
# The events the stand-in sends (Linq has many more), in the 2026-02-03 payload format only,
# each built as standins.builders builds it for the tests.
WEBHOOK_EVENTS = (
    "message.received",
    "message.failed",
    "message.delivered",
    "phone_number.status_updated",
)

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_OPT_OUT_KEYWORDS = frozenset({"STOP", "UNSUBSCRIBE", "OPTOUT", "CANCEL", "END", "QUIT"})
_OPT_OUT_PHRASE = re.compile(r"opt[ -]?out", re.IGNORECASE)
_PART_TYPES = frozenset({"text", "link", "media"})
_SERVICES = frozenset({"iMessage", "SMS", "RCS"})
_REPUTATIONS = frozenset({"HEALTHY", "AT_RISK", "CRITICAL"})
_LINE_TYPES = frozenset({"iMessage", "RCS", None})
_LINE_STATUSES = frozenset({"ACTIVE", "FLAGGED"})
_EFFECT_TYPES = frozenset({"screen", "bubble"})
# What a message event's data takes from the message itself.
_MESSAGE_FIELDS = ("id", "effect", "reply_to", "preferred_service", "idempotency_key")
# Where Linq keeps the attachments it sends and reports (its answers link there).
_ATTACHMENTS = "https://cdn.linqapp.com/attachments"
# How long before its event a reconciled inbound message was sent: it arrives as history.
_RECONCILED_LAG = timedelta(minutes=20)
_MAX_PARTS, _MAX_URL_MEDIA, _MAX_LINK_LEN = 100, 40, 2048
# Codes used when an injected fault gives only a status.
_FAULT_CODES = {400: 1003, 401: 2004, 403: 2005, 404: 2001, 409: 1006, 429: 1007, 503: 4004}


def is_opt_out(text: str) -> bool:
    """Linq's opt-out keywords: exact-case whole message, or "opt out" in any case/spacing."""
    trimmed = text.strip()
    return trimmed in _OPT_OUT_KEYWORDS or _OPT_OUT_PHRASE.fullmatch(trimmed) is not None


class LinqApiError(Exception):
    """A Linq error response, raised inside handlers and turned into Linq's envelope."""

    def __init__(
        self, status: int, code: int, message: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def response(self) -> Reply:
        error: dict[str, Any] = {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "doc_url": f"https://docs.linqapp.com/error/codes/{str(self.code)[0]}xxx/{self.code}/",
        }
        headers = {}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
            headers["Retry-After"] = str(self.retry_after)
        body = {"success": False, "error": error, "trace_id": uuid.uuid4().hex}
        return body, self.status, headers


def _bad_request(code: int, message: str) -> LinqApiError:
    return LinqApiError(400, code, message)


@dataclass
class _Chat:
    id: str
    sender: str
    to: tuple[str, ...]
    service: str
    handles: list[dict[str, Any]]
    created_at: str

    @property
    def is_group(self) -> bool:
        return len(self.to) > 1

    @property
    def own_handle(self) -> dict[str, Any]:
        return next(handle for handle in self.handles if handle["is_me"])


def _field(
    obj: Mapping[str, Any], name: str, kind: type, where: str = "", *, required: bool = True
) -> Any:
    """`obj[name]` if it is a `kind`: 1001 when a required one is missing or empty, 1005 when
    it is of another type."""
    value = obj.get(name)
    if value in (None, "", []):
        if required:
            raise _bad_request(1001, f"Missing required field: {where}{name}")
        return None
    if not isinstance(value, kind):
        raise _bad_request(1005, f"Invalid type for {where}{name}")
    return value


def _check_address(value: Any, field_name: str, *, email: bool = False) -> None:
    """An E.164 phone number (or, where `email`, an email address), else 1002."""
    if isinstance(value, str) and (_E164.fullmatch(value) or (email and _EMAIL.fullmatch(value))):
        return
    expected = "or an email address" if email else "(e.g. +12223334444)"
    raise _bad_request(1002, f"{field_name} must be an E.164 phone number {expected}")


def _check_parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    if "experience" in message and "parts" in message:
        raise _bad_request(1004, "A message carries either parts or an experience, not both")
    parts = _field(message, "parts", list, "message.")
    if len(parts) > _MAX_PARTS:
        raise _bad_request(1004, f"A message can have at most {_MAX_PARTS} parts")
    previous = None
    for index, part in enumerate(parts):
        where = f"message.parts[{index}]."
        if not isinstance(part, dict) or part.get("type") not in _PART_TYPES:
            raise _bad_request(1004, f"{where}type must be one of {sorted(_PART_TYPES)}")
        kind = part["type"]
        if kind in ("text", "link"):
            value = _field(part, "value", str, where)
            if not value.strip():
                raise _bad_request(1004, f"{where}value must not be blank")
        if kind == "text" and previous == "text":
            raise _bad_request(1004, "Two text parts cannot be adjacent")
        if kind == "link":
            if len(parts) != 1:
                raise _bad_request(1004, "A link part must be the only part of its message")
            if len(value) > _MAX_LINK_LEN or not re.fullmatch(r"https?://\S+", value):
                raise _bad_request(
                    1004, f"A link part must be an http(s) URL of at most {_MAX_LINK_LEN} chars"
                )
        if kind == "media" and not (part.get("url") or part.get("attachment_id")):
            raise _bad_request(1001, f"Missing required field: {where}url")
        previous = kind
    if sum(1 for p in parts if p["type"] == "media" and p.get("url")) > _MAX_URL_MEDIA:
        raise _bad_request(1004, f"At most {_MAX_URL_MEDIA} media parts may use a url")
    if message.get("preferred_service") not in (None, *_SERVICES):
        raise _bad_request(1005, f"preferred_service must be one of {sorted(_SERVICES)}")
    _check_effect_and_reply(message)
    _field(message, "idempotency_key", str, "message.", required=False)
    return parts


def _check_effect_and_reply(message: Mapping[str, Any]) -> None:
    """An effect is `{name, type}` (type screen or bubble) and a reply `{message_id,
    part_index}`, as the SDK's params define them: anything else is 1005, never echoed into an
    answer or a webhook."""
    effect, reply_to = message.get("effect"), message.get("reply_to")
    if effect is not None and not (
        isinstance(effect, dict)
        and set(effect) <= {"name", "type"}
        and isinstance(effect.get("name", ""), str)
        and effect.get("type", "screen") in _EFFECT_TYPES
    ):
        raise _bad_request(1005, "message.effect must be {name, type: screen or bubble}")
    index = reply_to.get("part_index", 0) if isinstance(reply_to, dict) else None
    if reply_to is not None and not (
        isinstance(reply_to, dict)
        and set(reply_to) <= {"message_id", "part_index"}
        and isinstance(reply_to.get("message_id"), str)
        and isinstance(index, int)
        and not isinstance(index, bool)
        and index >= 0
    ):
        raise _bad_request(1005, "message.reply_to must be {message_id, part_index}")


def _render_part(part: Mapping[str, Any]) -> dict[str, Any]:
    """A part as Linq answers and reports it (the SDK's response parts). A media part becomes
    the attachment Linq stored: its id, file name, type, size (0 here: the stand-in fetches
    nothing) and Linq's own link to it."""
    if part["type"] != "media":
        return {"type": part["type"], "value": part["value"]}
    attachment = part.get("attachment_id") or str(uuid.uuid4())
    name = PurePosixPath(urlsplit(part.get("url") or "").path).name or "attachment"
    return {
        "type": "media",
        "id": attachment,
        "filename": name,
        "mime_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
        "size_bytes": 0,
        "url": f"{_ATTACHMENTS}/{attachment}/{name}",
    }


class LinqStandin(StandinServer):
    """Stand-in for the Linq Partner API v3 endpoints the product uses."""

    vendor = "Linq"
    # `webhook`: `{"url": ..., "secret": "whsec_..."}` replaces the account's webhook
    # subscriptions with one to every event. `undeliverable`: addresses whose
    # messages get `message.failed`; `delivery_flaps`: `message.failed`, then `delivered`.
    scenario_keys = frozenset(
        {"phone_numbers", "ineligible", "capabilities", "refused", "opted_out", "blocked"}
        | {"webhook", "undeliverable", "delivery_flaps"}
    )

    def __init__(
        self,
        port: int = 0,
        *,
        tokens: Iterable[str] = (LINQ_TOKEN,),
        pair_limit: int = DEFAULT_PAIR_LIMIT,
        pair_window_s: float = DEFAULT_PAIR_WINDOW_S,
        capability_limit: int = DEFAULT_CAPABILITY_LIMIT,
        capability_window_s: float = DEFAULT_CAPABILITY_WINDOW_S,
        **common: Any,
    ) -> None:
        self.tokens = frozenset(tokens)
        self.pair_limit, self.pair_window_s = pair_limit, pair_window_s
        self.capability_limit, self.capability_window_s = capability_limit, capability_window_s
        self._sender = WebhookSender()
        super().__init__(port, **common)

    @classmethod
    def _routes(cls, routes: Routes) -> None:
        routes.route("GET", "/v3/phone_numbers", cls._lines)
        routes.route("POST", "/v3/capability/check_imessage", cls._check_imessage)
        routes.route("POST", "/v3/chats", cls._idempotent(cls._create_chat))
        routes.route("POST", "/v3/chats/<chat_id>/messages", cls._idempotent(cls._send_message))
        routes.route("POST", "/v3/webhook-subscriptions", cls._create_subscription)
        routes.route("GET", "/v3/webhook-subscriptions", cls._list_subscriptions)
        routes.route("DELETE", "/v3/webhook-subscriptions/<id>", cls._delete_subscription)
        routes.before_request(cls._authenticate)
        routes.api.register_error_handler(LinqApiError, LinqApiError.response)
        routes.api.register_error_handler(
            BadRequest,
            lambda _: _bad_request(1003, "Request body must be valid JSON").response(),
        )
        routes.control_route("POST", "/inbound", cls._inbound_control)
        routes.control_route("GET", "/messages", cls.messages)
        routes.control_route("GET", "/webhooks", cls.webhooks)
        routes.control_route(
            "POST", "/line_status", lambda server: server.set_line_status(**json_body())
        )

    # Scenario and Python controls ----------------------------------------------------------

    def _reset_state(self) -> None:
        self._phone_numbers: dict[str, dict[str, Any]] = {}
        self._ineligible: set[str] = set()
        self._capabilities: dict[str, dict[str, Any]] = {}
        self._refused: set[str] = set()
        self._opted_out: set[str] = set()
        self._blocked: set[str] = set()
        self._chats: dict[str, _Chat] = {}
        self._chat_keys: dict[tuple[str, frozenset[str]], str] = {}
        self._keys = IdempotencyKeys()
        self._messages: list[dict[str, Any]] = []
        self._pair_limit = SlidingLimit(self.pair_limit, self.pair_window_s)
        self._capability_limit = SlidingLimit(self.capability_limit, self.capability_window_s)
        self._rate_limited = 0
        # Subscription id -> the subscription as listed, and its signing secret.
        self._subscriptions: dict[str, tuple[dict[str, Any], str]] = {}
        self._undeliverable: set[str] = set()
        self._delivery_flaps: set[str] = set()
        self._line_status: dict[str, str] = {}
        # Events queued before a reset are dropped with their sender.
        self._sender.close()
        self._sender = WebhookSender()

    def stop(self) -> None:
        super().stop()
        self._sender.close()

    def _load(self, scenario: Mapping[str, Any]) -> None:
        """Replace each part of the account state named in `scenario` (`scenario_keys`)."""
        if "phone_numbers" in scenario:
            lines = [self._normalize_line(line) for line in scenario["phone_numbers"]]
            self._phone_numbers = {line["phone_number"]: line for line in lines}
        if "capabilities" in scenario:
            self._capabilities = {
                address: {
                    "imessage": bool(cap.get("imessage", True)),
                    "selected_service": cap.get("selected_service"),
                }
                for address, cap in scenario["capabilities"].items()
            }
        if "webhook" in scenario:
            self._subscriptions.clear()
            hook = scenario["webhook"]
            self._subscribe(hook["url"], WEBHOOK_EVENTS, [], hook["secret"])
        names = ("ineligible", "refused", "opted_out", "blocked", "undeliverable", "delivery_flaps")
        for name in names:
            if name in scenario:
                values = scenario[name]
                if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                    raise ValueError(f"{name} must be a list of strings")
                setattr(self, f"_{name}", set(values))

    @staticmethod
    def _normalize_line(line: Mapping[str, Any]) -> dict[str, Any]:
        number = line.get("phone_number")
        if not isinstance(number, str) or not _E164.fullmatch(number):
            raise ValueError(f"line phone_number must be E.164: {number!r}")
        given = line.get("reputation") or {"status": "HEALTHY"}
        reputation = given.get("status") if isinstance(given, Mapping) else None
        if reputation not in _REPUTATIONS:
            raise ValueError(f"reputation.status must be one of {sorted(_REPUTATIONS)}")
        line_type = line.get("line_type", "iMessage")
        if line_type not in _LINE_TYPES:
            raise ValueError("line_type must be iMessage, RCS or null")
        built = linq_line(
            number,
            reputation=reputation,
            line_type=line_type,
            forwarding_number=line.get("forwarding_number"),
        )
        return {**built, "id": line.get("id") or built["id"]}

    def inbound(
        self, sender: str, text: str, *, chat_id: str | None = None, reconciled: bool = False
    ) -> bool:
        """Simulate a text from `sender`; returns whether the sender is now opted out. Sent as
        `message.received` from `chat_id` (direct or group) or else the sender's latest direct
        chat, if any; `reconciled`: recovered late (`reconciled_at`, an old `sent_at`)."""
        with self._lock:
            direct = [chat for chat in self._chats.values() if chat.to == (sender,)]
            chat = self._chats[chat_id] if chat_id else (direct or [None])[-1]
            if chat is not None and sender not in chat.to:
                raise ValueError(f"{sender} is not in chat {chat.id}")
            if is_opt_out(text):
                self._opted_out.add(sender)
            else:
                # Any later non-keyword message lifts the opt-out at once (no START needed).
                self._opted_out.discard(sender)
            if chat is not None:
                handle = next(h for h in chat.handles if h["handle"] == sender)
                message = {"id": str(uuid.uuid4()), "parts": [{"type": "text", "value": text}]}
                lag = _RECONCILED_LAG if reconciled else timedelta()
                times = {"reconciled_at": linq_time()} if reconciled else {}
                data = self._message_data(chat, message, handle, sent_at=linq_time(lag), **times)
                self._publish(chat.sender, linq_event("message.received", data))
            return sender in self._opted_out

    def set_line_status(
        self, phone_number: str, status: str | None = None, reputation: str | None = None
    ) -> dict[str, Any]:
        """Change a line's status (not shown by GET /v3/phone_numbers) and reputation (shown),
        and send `phone_number.status_updated`; returns its data. FLAGGED does not make the line
        ineligible (how it relates to 2027 is undocumented): the `ineligible` key does that."""
        if status not in (None, *_LINE_STATUSES) or reputation not in (None, *_REPUTATIONS):
            raise ValueError(f"status: {set(_LINE_STATUSES)}, reputation: {set(_REPUTATIONS)}")
        with self._lock:
            line = self._phone_numbers[phone_number]
            before = (self._line_status.get(phone_number, "ACTIVE"), line["reputation"]["status"])
            after = (status or before[0], reputation or before[1])
            self._line_status[phone_number] = after[0]
            line["reputation"] = linq_reputation(after[1])
            event = linq_line_change(
                phone_number,
                previous_status=before[0],
                new_status=after[0],
                previous_reputation=before[1],
                new_reputation=after[1],
            )
            self._publish(phone_number, event)
            return copy.deepcopy(event["data"])

    def webhooks(self) -> list[dict[str, Any]]:
        """Every webhook delivery attempt (WebhookSender.attempts), as it is now."""
        return copy.deepcopy(list(self._sender.attempts))

    def wait_for_webhooks(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """`webhooks()` once `count` delivery attempts have been made; TimeoutError if they
        are not made within `timeout_s`."""
        if not self._sender.wait(count, timeout_s):
            raise TimeoutError(f"{len(self._sender.attempts)} webhook attempt(s), not {count}")
        return self.webhooks()

    def messages(self) -> list[dict[str, Any]]:
        """Accepted outbound messages in order (idempotent replays excluded)."""
        with self._lock:
            return copy.deepcopy(self._messages)

    def _inbound_control(self) -> dict[str, bool]:
        body = json_body()
        options = {"chat_id": body.get("chat_id"), "reconciled": bool(body.get("reconciled"))}
        return {"opted_out": self.inbound(body["from"], body["text"], **options)}

    def _extra_stats(self) -> dict[str, Any]:
        return {
            "rate_limited": self._rate_limited,
            "messages_accepted": len(self._messages),
            "idempotent_replays": self._keys.replays,
            "chats": len(self._chats),
            "opted_out": sorted(self._opted_out),
        }

    # Request plumbing ----------------------------------------------------------------------

    def error_response(self, status: int) -> Reply:
        code = _FAULT_CODES.get(status, 3006 if status >= 500 else 1005)
        retry_after = 1 if status == 429 else None
        phrase = HTTPStatus(status).phrase
        return LinqApiError(status, code, phrase, retry_after=retry_after).response()

    def unrecognized(self) -> Reply:
        # Linq's code for an unknown route is undocumented; 1000 is the stand-in's own.
        method, path = flask.request.method, flask.request.path
        return LinqApiError(404, 1000, f"No route for {method} {path}").response()

    def _authenticate(self) -> None:
        """Linq checks the token before it looks at the route."""
        if bearer_token() not in self.tokens:
            raise LinqApiError(401, 2004, "Unauthorized: missing or invalid API token")

    @staticmethod
    def _json_object() -> dict[str, Any]:
        body = json_body()
        if not isinstance(body, dict):
            raise _bad_request(1003, "Request body must be a JSON object")
        return body

    def _line(self, number: str) -> dict[str, Any]:
        line = self._phone_numbers.get(number)
        if line is None:
            raise LinqApiError(403, 2006, f"You do not have permission to send from {number}")
        return line

    def _capability(self, address: str) -> dict[str, Any]:
        # Unlisted phone numbers default to iMessage; unlisted email handles to "unknown".
        default = {"imessage": _E164.fullmatch(address) is not None, "selected_service": None}
        return self._capabilities.get(address, default)

    def _service(self, line: Mapping[str, Any], recipient: str, preferred: str | None) -> str:
        cap = self._capability(recipient)
        # An RCS line never sends iMessage; SMS/RCS preference means "never iMessage".
        if cap["imessage"] and line["line_type"] != "RCS" and preferred in (None, "iMessage"):
            return "iMessage"
        return cap["selected_service"] if cap["selected_service"] in ("RCS", "SMS") else "SMS"

    # Idempotency ---------------------------------------------------------------------------

    @staticmethod
    def _idempotent(send: Callable[..., Reply]) -> Callable[..., Reply]:
        """A send endpoint (`send(stand_in, body, **params)`) that answers a repeated
        `message.idempotency_key` with the answer it got first, without sending again
        (IdempotencyKeys)."""

        def view(server: LinqStandin, **params: str) -> Reply:
            body = server._json_object()
            message = body.get("message")
            key = message.get("idempotency_key") if isinstance(message, dict) else None
            reused = f"idempotency_key '{key}' was already used for a different request"
            reply, _ = server._keys.answer(
                key if isinstance(key, str) else None,
                f"{flask.request.path} {json.dumps(body, sort_keys=True)}",
                lambda: send(server, body, **params),
                lambda: LinqApiError(409, 1005, f"{reused}; use a new key for a new message"),
            )
            return reply

        return view

    # What both send endpoints do ----------------------------------------------------------

    def _send(
        self,
        body: Mapping[str, Any],
        message: Mapping[str, Any],
        sender: str,
        recipients: tuple[str, ...],
        chat: _Chat | None,
        endpoint: str,
    ) -> tuple[_Chat, dict[str, Any]]:
        """Check and accept a message into `chat`, or into a new chat when None."""
        parts = _check_parts(message)
        override_optout = _field(body, "override_optout", bool, required=False)
        line = self._line(sender)
        # The first message of a new chat may not carry a link, a URL, an effect or a reply.
        if chat is None and any(
            p["type"] == "link" or (p["type"] == "text" and contains_url(p["value"])) for p in parts
        ):
            raise _bad_request(1005, "The first message of a new chat cannot contain a link or URL")
        if chat is None and (message.get("effect"), message.get("reply_to")) != (None, None):
            raise _bad_request(
                1005, "effect and reply_to are not allowed on the first message of a chat"
            )
        if sender in self._ineligible:
            raise LinqApiError(
                403, 2027, f"The line {sender} is not eligible to send messages right now"
            )
        for recipient in recipients:
            if recipient in self._blocked:
                raise LinqApiError(403, 2026, f"{recipient} is on your block list")
        # Opt-out blocks direct chats only; group threads are never blocked.
        if len(recipients) == 1 and recipients[0] in self._opted_out and not override_optout:
            raise LinqApiError(403, 2024, f"{recipients[0]} has opted out of messages")
        self._spend(self._pair_limit, [(sender, recipient) for recipient in recipients])
        if chat is None:
            chat = self._new_chat(line, recipients, message.get("preferred_service"))
        rendered = {
            "id": str(uuid.uuid4()),
            "created_at": linq_time(),
            "delivery_status": "queued",
            "is_read": False,
            "parts": [_render_part(part) for part in parts],
            "sent_at": None,
            "delivered_at": None,
            "effect": message.get("effect"),
            "from_handle": chat.own_handle,
            "preferred_service": message.get("preferred_service"),
            "reply_to": message.get("reply_to"),
            "service": chat.service,
            "idempotency_key": message.get("idempotency_key"),
        }
        accepted = {"chat_id": chat.id, "message_id": rendered["id"], "from": chat.sender}
        accepted.update(to=list(chat.to), endpoint=endpoint)
        accepted["parts"] = parts  # as the request gave them
        for name in ("idempotency_key", "service", "created_at"):
            accepted[name] = rendered[name]
        self._messages.append(copy.deepcopy(accepted))
        self._publish_delivery(chat, rendered)
        # The key comes back in the message webhooks only: Linq's answer (the SDK's
        # SentMessage) does not carry it.
        answer = {name: value for name, value in rendered.items() if name != "idempotency_key"}
        return chat, copy.deepcopy(answer)

    def _spend(self, limit: SlidingLimit, keys: list[Any]) -> None:
        """Count the request against `limit`, or answer Linq's 429 (code 1007) with its
        Retry-After when a key has no room (counted for the tests, not against the limit)."""
        now = self._clock.monotonic()
        retry_after = limit.retry_after(keys, now)
        if retry_after is not None:
            self._rate_limited += 1
            message = f"Rate limited. Try again in {retry_after} seconds."
            raise LinqApiError(429, 1007, message, retry_after=retry_after)
        limit.add(keys, now)

    def _health(self, chat: _Chat) -> dict[str, Any]:
        opted_out = not chat.is_group and chat.to[0] in self._opted_out
        return linq_health("OPTED_OUT" if opted_out else "HEALTHY", updated_at=chat.created_at)

    def _render_chat(self, chat: _Chat) -> dict[str, Any]:
        return {
            "id": chat.id,
            "display_name": ", ".join(chat.to),
            "is_group": chat.is_group,
            "service": chat.service,
            "handles": copy.deepcopy(chat.handles),
            "health_status": self._health(chat),
        }

    # Webhooks ------------------------------------------------------------------------------

    def _message_data(
        self, chat: _Chat, message: Mapping[str, Any], sender: dict[str, Any], **times: str
    ) -> dict[str, Any]:
        """A message event's data in the 2026-02-03 format (the SDK's MessageEventV2)."""
        return linq_message(
            chat.id,
            owner=chat.own_handle,
            sender=sender,
            parts=message["parts"],
            service=chat.service,
            is_group=chat.is_group,
            health=self._health(chat),
            **{name: message.get(name) for name in _MESSAGE_FIELDS},
            **times,
        )

    def _publish(self, line: str, event: dict[str, Any]) -> None:
        """Queue `event` for every subscription to its type that covers `line`. Linq sends it
        once the answer to the request that caused it has been written (a call from Python:
        at once)."""
        answered = None
        if flask.has_request_context():
            answered = threading.Event()
            flask.request.environ[AFTER_ANSWER](answered.set)
        for subscription, secret in self._subscriptions.values():
            lines = subscription["phone_numbers"] or [line]
            if event["event_type"] in subscription["subscribed_events"] and line in lines:
                self._sender.send(subscription["target_url"], secret, event, answered)

    def _publish_delivery(self, chat: _Chat, sent: Mapping[str, Any]) -> None:
        """What Linq reports a moment after accepting `sent`: delivered, or failed (for an
        `undeliverable` recipient), or (`delivery_flaps`) failed and then delivered."""
        undeliverable = not self._undeliverable.isdisjoint(chat.to)
        if undeliverable or not self._delivery_flaps.isdisjoint(chat.to):
            failed = linq_failed(
                message_id=sent["id"],
                chat_id=chat.id,
                service=chat.service,
                preferred_service=sent["preferred_service"],
            )
            self._publish(chat.sender, failed)
        if not undeliverable:
            times = {"sent_at": sent["created_at"], "delivered_at": linq_time()}
            data = self._message_data(chat, sent, chat.own_handle, **times)
            self._publish(chat.sender, linq_event("message.delivered", data))

    def _subscribe(
        self, target_url: str, events: Iterable[str], phone_numbers: list[str], secret: str
    ) -> dict[str, Any]:
        subscription = {"id": str(uuid.uuid4()), "target_url": target_url, "is_active": True}
        subscription.update(subscribed_events=list(events), phone_numbers=phone_numbers)
        subscription["created_at"] = subscription["updated_at"] = linq_time()
        self._subscriptions[subscription["id"]] = (subscription, secret)
        return copy.deepcopy(subscription)

    # Endpoints -----------------------------------------------------------------------------

    def _lines(self) -> dict[str, Any]:
        return {"phone_numbers": copy.deepcopy(list(self._phone_numbers.values()))}

    def _check_imessage(self) -> dict[str, Any]:
        body = self._json_object()
        address = _field(body, "address", str)
        _check_address(address, "address", email=True)
        sender = body.get("from")
        if sender is not None:
            _check_address(str(sender), "from")
            self._line(sender)
        self._spend(self._capability_limit, ["account"])
        if address in self._refused:
            raise _bad_request(1005, "address not supported in this region")
        cap = self._capability(address)
        answer: dict[str, Any] = {"address": address, "available": cap["imessage"]}
        if not cap["imessage"]:
            answer["reason"] = "not_supported"
        service = cap["selected_service"] or ("iMessage" if cap["imessage"] else None)
        # Linq omits selected_service (rather than sending null) when it cannot tell.
        if service is not None:
            answer["selected_service"] = service
        return answer

    def _create_chat(self, body: dict[str, Any]) -> Reply:
        sender = _field(body, "from", str)
        to = _field(body, "to", list)
        message = _field(body, "message", dict)
        _check_address(sender, "from")
        for index, handle in enumerate(to):
            _check_address(handle, f"to[{index}]", email=True)
        recipients = tuple(dict.fromkeys(to))
        chat_id = self._chat_keys.get((sender, frozenset(recipients)))
        chat = None if chat_id is None else self._chats[chat_id]
        chat, sent = self._send(body, message, sender, recipients, chat, "chats")
        return {"chat": {**self._render_chat(chat), "message": sent}}, 201, {}

    def _send_message(self, body: dict[str, Any], chat_id: str) -> Reply:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise LinqApiError(404, 2001, f"Chat {chat_id} not found")
        message = _field(body, "message", dict)
        chat, sent = self._send(body, message, chat.sender, chat.to, chat, "messages")
        return {"chat_id": chat.id, "message": sent}, 202, {}

    def _new_chat(
        self, line: Mapping[str, Any], recipients: tuple[str, ...], preferred: str | None
    ) -> _Chat:
        service = self._service(line, recipients[0], preferred)
        joined = linq_time()
        handles = [linq_handle(r, service=service, joined_at=joined) for r in recipients] + [
            linq_handle(
                line["phone_number"],
                is_me=True,
                service=service,
                line_type=line["line_type"],
                joined_at=joined,
            )
        ]
        chat = _Chat(str(uuid.uuid4()), line["phone_number"], recipients, service, handles, joined)
        self._chats[chat.id] = chat
        self._chat_keys[(chat.sender, frozenset(recipients))] = chat.id
        return chat

    def _create_subscription(self) -> Reply:
        body = self._json_object()
        target_url = _field(body, "target_url", str)
        events = _field(body, "subscribed_events", list)
        phone_numbers = _field(body, "phone_numbers", list, required=False) or []
        unknown = [event for event in events if event not in WEBHOOK_EVENTS]
        if unknown:
            raise _bad_request(1005, f"Unknown event types: {unknown}")
        for index, number in enumerate(phone_numbers):
            _check_address(number, f"phone_numbers[{index}]")
        url = urlsplit(target_url)
        # Linq requires HTTPS; plain http is let through to this machine, where tests listen.
        loopback = url.scheme == "http" and url.hostname in ("127.0.0.1", "localhost")
        if not ((url.scheme == "https" and url.hostname) or loopback):
            raise _bad_request(1005, "target_url must be an HTTPS URL")
        # Linq allows each target_url once per account; its code for it is undocumented.
        if any(s["target_url"] == target_url for s, _ in self._subscriptions.values()):
            raise LinqApiError(409, 1005, f"target_url {target_url} already has a subscription")
        secret = new_linq_secret()
        subscription = self._subscribe(target_url, events, phone_numbers, secret)
        # The only answer that ever carries the signing secret.
        return {**subscription, "signing_secret": secret}, 201, {}

    def _list_subscriptions(self) -> dict[str, Any]:
        return {"subscriptions": copy.deepcopy([s for s, _ in self._subscriptions.values()])}

    def _delete_subscription(self, id: str) -> Reply:
        if self._subscriptions.pop(id, None) is None:
            raise LinqApiError(404, 1000, f"Webhook subscription {id} not found")
        return "", 204, {}
