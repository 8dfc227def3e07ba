"""The send ledger: one Firestore document per failed payment, so each is handled once.

Linq's idempotency keys already stop a repeated send, but how long Linq keeps them is not
documented, and they cannot tell a duplicate delivery from a first one. The ledger can: the first
Pub/Sub message to claim `{invoice_id}-{attempt}` owns it; a redelivery of that same message
(same message id) carries on, because the owner's message is redelivered until it is acknowledged
or dead-lettered; any other message for the same failed payment is a duplicate and is dropped.
An owner whose run failed, or gave up for now, lets a later message (a replay) take over.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from shared.core.errors import RetryableError

COLLECTION = "dunning_sends"
TIMEOUT = (3.05, 5.0)
# Kept past Stripe's longest retry window (Smart Retries: up to two months); a Firestore TTL
# policy on `expire_at` (set by deploy.sh) deletes records after that.
RETENTION = dt.timedelta(days=70)
CLAIMED, FAILED, RETRYING = "claimed", "failed", "retrying"
_TAKEOVER_STATES = frozenset({FAILED, RETRYING})
_SCOPE = "https://www.googleapis.com/auth/datastore"


@dataclass(frozen=True)
class Duplicate:
    """Another message already owns this failed payment."""

    key: str
    event_id: str
    state: str


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _fields(values: dict[str, str | dt.datetime]) -> dict[str, Any]:
    return {
        name: {"timestampValue": _stamp(v)} if isinstance(v, dt.datetime) else {"stringValue": v}
        for name, v in values.items()
    }


def _read(document: dict[str, Any], name: str) -> str:
    return str((document.get("fields", {}).get(name) or {}).get("stringValue", ""))


def _authorized_session() -> requests.Session:
    # Imported only in production: google-auth finds the function's service account.
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=[_SCOPE])
    return AuthorizedSession(credentials)


class Ledger:
    """Firestore over REST: one keep-alive session, no gRPC stack to import at cold start."""

    def __init__(
        self, project: str, database: str, session: requests.Session | None = None
    ) -> None:
        emulator = os.environ.get("FIRESTORE_EMULATOR_HOST")
        if emulator:
            base = f"http://{emulator}/v1"
            self._session = session or requests.Session()
            # The emulator accepts this token as an administrator, bypassing security rules.
            self._session.headers["Authorization"] = "Bearer owner"
        else:
            base = "https://firestore.googleapis.com/v1"
            self._session = session or _authorized_session()
        self._documents = f"{base}/projects/{project}/databases/{database}/documents"

    def _call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._session.request(method, url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise RetryableError(
                f"Firestore unreachable: {type(exc).__name__}", vendor="firestore"
            ) from exc
        if response.status_code >= 500 or response.status_code in (401, 403, 429):
            # Access problems are retried too: fixing IAM should not lose the payment.
            raise RetryableError(
                f"Firestore {response.status_code}: {response.text[:200]}",
                vendor="firestore",
                status=response.status_code,
            )
        return response

    def _url(self, key: str) -> str:
        return f"{self._documents}/{COLLECTION}/{quote(key, safe='')}"

    def claim(self, key: str, event_id: str, message_id: str) -> Duplicate | None:
        """Own `key` for this message (None), or the Duplicate that already owns it."""
        now = _now()
        record = _fields(
            {
                "message_id": message_id,
                "event_id": event_id,
                "state": CLAIMED,
                "updated_at": now,
                "expire_at": now + RETENTION,
            }
        )
        created = self._call(
            "POST",
            f"{self._documents}/{COLLECTION}",
            params={"documentId": key},
            json={"fields": record},
        )
        if created.ok:
            return None
        if created.status_code != 409:
            raise RetryableError(
                f"Firestore {created.status_code}: {created.text[:200]}",
                vendor="firestore",
                status=created.status_code,
            )
        existing = self._call("GET", self._url(key))
        if existing.status_code == 404:
            # Deleted (expired) between the two calls: claim again.
            return self.claim(key, event_id, message_id)
        document = existing.json()
        if _read(document, "message_id") == message_id:
            return None
        if _read(document, "state") not in _TAKEOVER_STATES:
            return Duplicate(key, _read(document, "event_id"), _read(document, "state"))
        # A write with a precondition on the version read: of two messages taking over at
        # once, exactly one succeeds (the other gets FAILED_PRECONDITION).
        taken = self._call(
            "POST",
            f"{self._documents}:commit",
            json={
                "writes": [
                    {
                        "update": {"name": document["name"], "fields": record},
                        "currentDocument": {"updateTime": document["updateTime"]},
                    }
                ]
            },
        )
        if taken.ok:
            return None
        return Duplicate(key, _read(document, "event_id"), _read(document, "state"))

    def settle(self, key: str, state: str, message_id: str) -> None:
        """Record that the owner failed or will retry, so a later message may take over."""
        values = {"state": state, "message_id": message_id, "updated_at": _now()}
        self._call(
            "PATCH",
            self._url(key),
            params=[("updateMask.fieldPaths", name) for name in values],
            json={"fields": _fields(values)},
        )
