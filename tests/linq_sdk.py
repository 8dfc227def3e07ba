"""Linq's own SDK (linq-python, a development dependency) as the judge of every Linq webhook the
stand-in sends and the tests build. The product keeps its own small parser; its samples must
still be what Linq sends."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pydantic
from linq.types import (
    MessageDeliveredWebhookEvent,
    MessageFailedWebhookEvent,
    MessageReceivedWebhookEvent,
    PhoneNumberStatusUpdatedWebhookEvent,
)

# The payload format the product subscribes to (`?version=`), the one the message models describe.
FORMAT = "2026-02-03"
# The SDK's model of each event the product subscribes to, in that format. Its own
# union (UnwrapWebhookEvent) cannot pick the model: every model types event_type as any type.
MODELS: dict[str, type[pydantic.BaseModel]] = {
    "message.received": MessageReceivedWebhookEvent,
    "message.delivered": MessageDeliveredWebhookEvent,
    "message.failed": MessageFailedWebhookEvent,
    "phone_number.status_updated": PhoneNumberStatusUpdatedWebhookEvent,
}


def problems(event: Mapping[str, Any] | str | bytes) -> list[str]:
    """Why `event` (a dict, or a webhook's raw JSON body) is not the webhook Linq's SDK
    defines for its type, one line each; empty when it is (`answer_problems`)."""
    body = event if isinstance(event, str | bytes) else json.dumps(event)
    decoded = json.loads(body)
    event_type = decoded.get("event_type") if isinstance(decoded, dict) else None
    if event_type not in MODELS:
        return [f"event_type {event_type!r} is none of {sorted(MODELS)}"]
    found = answer_problems(MODELS[event_type], body)
    if decoded.get("webhook_version") != FORMAT:
        found.append(f"webhook_version: {decoded.get('webhook_version')!r}, not {FORMAT}")
    return found


def answer_problems(model: type[pydantic.BaseModel], body: str | bytes) -> list[str]:
    """Why the JSON `body` is not `model` of the SDK, one line each; empty when it is. The
    model is read strictly (a number is not a string, null is not a string), and every field it
    does not define (which the SDK's models let through silently) is named too."""
    found = []
    try:
        model.model_validate_json(body, strict=True)
    except pydantic.ValidationError as exc:
        found = [f"{_path(error['loc'])}: {error['msg']}" for error in exc.errors()]
    decoded = json.loads(body)
    if not isinstance(decoded, dict):
        return found
    # Read as the SDK's own webhooks.unwrap reads an event (built without validation), each
    # field it does not define is kept aside, whatever else is wrong.
    read = model.model_construct(**decoded)
    return found + [f"{path}: a field the SDK does not define" for path in _undefined(read, ())]


def check(event: Mapping[str, Any] | str | bytes) -> None:
    """Fail with every problem when `event` is not the SDK's webhook for its type."""
    found = problems(event)
    assert not found, "not a Linq webhook as the SDK defines it:\n  " + "\n  ".join(found)


def _undefined(value: Any, at: tuple[str | int, ...]) -> Iterator[str]:
    if isinstance(value, pydantic.BaseModel):
        for name in value.model_extra or {}:
            yield _path((*at, name))
        for name in type(value).model_fields:
            yield from _undefined(getattr(value, name), (*at, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _undefined(item, (*at, index))


def _path(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(step) for step in loc)
