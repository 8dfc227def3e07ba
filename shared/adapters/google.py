"""One way to talk to a Google API over REST: an authorised session, or the local emulator."""

from __future__ import annotations

import os

import requests


def rest_session(
    scope: str, emulator_variable: str, service_base: str, emulator_host: str | None = None
) -> tuple[requests.Session, str]:
    """A keep-alive session and the base URL for one Google API.

    With `emulator_variable` set (FIRESTORE_EMULATOR_HOST, PUBSUB_EMULATOR_HOST), or an
    `emulator_host` named, the session goes to that emulator over plain HTTP; otherwise
    google-auth finds the function's service account (imported only then: the emulators need no
    credentials).
    """
    emulator = emulator_host or os.environ.get(emulator_variable)
    if emulator:
        session = requests.Session()
        # The Firestore emulator treats this token as an administrator (security rules bypassed);
        # the Pub/Sub emulator ignores it.
        session.headers["Authorization"] = "Bearer owner"
        return session, f"http://{emulator}"
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=[scope])
    return AuthorizedSession(credentials), service_base
