"""Signing secrets made afresh for each run of the sandbox, the stack and the tests.

None is ever written down: a secret committed to the repository verifies anyone's forgery, so the
intakes refuse every value that was (shared/core/signing_secret.py).
"""

from __future__ import annotations

import base64
import secrets
import string


def new_stripe_secret() -> str:
    """As `stripe listen` prints one: whsec_ and 64 hex digits."""
    return "whsec_" + secrets.token_hex(32)


def new_endpoint_secret() -> str:
    """As Stripe gives one with a webhook endpoint it creates: whsec_ and 32 letters and
    digits."""
    alphabet = string.ascii_letters + string.digits
    return "whsec_" + "".join(secrets.choice(alphabet) for _ in range(32))


def new_linq_secret() -> str:
    """As Linq issues one (Standard Webhooks): whsec_ and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
