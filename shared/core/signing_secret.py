"""Whether a webhook signing secret is one its sender generated, or a value anyone can know.

A secret verifies forged events as well as real ones once someone else knows it, so the intakes
refuse (answer 503, verify nothing) any value that is published, was ever committed to this
repository, or was typed by hand. Every rule below is one a generated secret meets by a margin
of billions to one, so a real secret is never refused:

- known: the value is a published example or was committed here (compared by SHA-256);
- periodic: it repeats a run of at most half its length (`xxxx`, `abcd1234abcd1234`);
- sequential: at least half of its neighbouring characters repeat or count up (`abc123def456`);
  random, each pair does so with a chance of 2 in 62 (Stripe's letters and digits), 2 in 16
  (the Stripe CLI's hex digits), 2 in 64 or 2 in 256 (a Standard Webhooks key and its bytes);
- words: English words cover at least half of it (`YourSigningSecretGoesHere1234`);
- text: a Standard Webhooks key that decodes to printable ASCII (the base64 of a passphrase);
  24 random bytes all fall there with a chance of 5 in 10^11.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PREFIX = "whsec_"
# What Stripe issues: whsec_ and 32 letters and digits (the Dashboard) or 64 hex digits (the
# Stripe CLI). Stripe documents no length; every issued secret reaches this bound.
_STRIPE_RANDOM = re.compile(r"[A-Za-z0-9]{24,}")
# Standard Webhooks: the base64 of 24 to 64 random bytes.
_MIN_KEY_BYTES = 24
# Far above any issued secret (Standard Webhooks' longest, 64 bytes, is 88 characters of base64),
# and a bound on the work the rules below do with a value pasted in by mistake.
_MAX_RANDOM_CHARS = 256
# SHA-256 of values anyone can read. Published: the Standard Webhooks specification's test
# vector and Svix's API reference example. Committed to this repository before its secrets were
# generated per run: the sandbox's, the test harness's and the tests' fixed secrets.
_KNOWN = frozenset(
    {
        "96ad2ccd81462a766178ae09a71df55f548a3f66da11606f9cdf40b391e22dd0",
        "2dd745ff991276aed56826de4e41d9d81b006c671a1491c08e9fc74e9362d95a",
        "3c70d33911b016eb46ddb789e979735ae0c23d1a3fb61cb1f3e1fe042e7c2e03",
        "2f74c8ecfd105801e52943831a2eb35eec5465f8b0cdf60be3cbe2ec1f14fd5f",
        "25221867a95cffcb9de35ed9b8d42f412eb7d2406b1aac2ce32a4b6c07d6da36",
        "6e6d2d9f5007f749e78dc4a8e9df272843a6318eea05e65c6b810910db5b604b",
        "bcd05640ca78323a0cb3b4b0e1e980736594396e47910fcaa08ec378955d7537",
        "75fa0121a3d9bd1a4ad10817f8a8ba10ddb658dc8df9350ce6cf0f6ffff50f6e",
        "6bff3e756a136715820af1efd1663fbd2e7a3b0fff2847e6702aff461cdd0901",
        "8053f10c95f2805d93cd6937dba01db10733acc5e31ad95d4fe90c680a6fff5c",
        "fe78ddb5d9f0b1cdd9f493576350b968442002e93530f0beb5cd9e34256e99c7",
        "3dc9950b2c1a50375364162ce13f7490dbf9a262d696c3c0bd82c13ad1cbe0d9",
        "1f3fa672216a2cda2ade9e58249647378cdae57f92512822a74af852ff509db1",
        "f1de145cadd92909320f8a1a6a2b822a9bc0c572f6ac796f2e74e0b26219f632",
    }
)
# Words people type into a placeholder secret, longest first (at each position the longest
# counts); three letters or more, as two-letter words would turn up in random text too often.
_WORDS = re.compile(
    "placeholder|generated|changeme|endpoint|password|property|default|example|harness"
    "|pending|replace|sandbox|signing|staging|testing|webhook|change|forged|insert|notset"
    "|notyet|qwerty|random|sample|secret|secure|string|stripe|dummy|ipsum|local|lorem|other"
    "|paste|token|value|whsec|demo|fake|goes|here|hook|linq|live|mock|only|prod|real|sign"
    "|stub|temp|test|todo|with|your|abc|api|bar|baz|dev|foo|key|not|our|put|set|the|xyz|yet",
    re.IGNORECASE,
)

KNOWN = "it is a published example, or was committed to a repository: a placeholder"
TYPED = "it looks typed by hand, not generated: a placeholder"
TOO_LONG = f"it is longer than any signing secret ({_MAX_RANDOM_CHARS} characters after whsec_)"


@dataclass(frozen=True)
class Signing:
    """A signing secret as an intake holds it: `secret` when it is one its sender generated;
    else None, and `problem` says what keeps the value from being one, without quoting it (the
    secret is not set up yet, and verifies nothing)."""

    variable: str
    secret: str | None
    problem: str | None = None

    @classmethod
    def of(cls, variable: str, value: str, problem_of: Callable[[str], str | None]) -> Signing:
        problem = problem_of(value)
        return cls(variable, None if problem else value, problem)


def stripe_secret_problem(secret: str) -> str | None:
    """What keeps `secret` from being a Stripe endpoint's signing secret, without quoting it;
    None when it is one."""
    if not secret.startswith(PREFIX):
        return "it does not start with whsec_"
    random_part = secret.removeprefix(PREFIX)
    if len(random_part) > _MAX_RANDOM_CHARS:
        return TOO_LONG
    if not _STRIPE_RANDOM.fullmatch(random_part):
        return "after whsec_ it is not 24 or more letters and digits"
    if _known(secret):
        return KNOWN
    return TYPED if _typed(random_part) else None


def linq_secret_problem(secret: str) -> str | None:
    """What keeps `secret` from being a Standard Webhooks signing secret (whsec_ and the base64
    of at least 24 random bytes), without quoting it; None when it is one."""
    if not secret.startswith(PREFIX):
        return "it does not start with whsec_"
    random_part = secret.removeprefix(PREFIX)
    if len(random_part) > _MAX_RANDOM_CHARS:
        return TOO_LONG
    try:
        # Strictly: a lenient decode drops what is not base64, and "whsec_pending-placeholder-..."
        # would pass as 26 bytes.
        key = base64.b64decode(random_part + "=" * (-len(random_part) % 4), validate=True)
    except ValueError:  # not base64, or not even ASCII
        return "after whsec_ it is not base64"
    if len(key) < _MIN_KEY_BYTES:
        return "it is too short to be a signing secret (a placeholder?)"
    if _known(secret):
        return KNOWN
    typed = _typed(random_part) or _periodic(key) or _sequential(key)
    return TYPED if typed or _text(key) else None


def _known(secret: str) -> bool:
    return hashlib.sha256(secret.encode()).hexdigest() in _KNOWN


def _typed(text: str) -> bool:
    return _periodic(text) or _sequential(text) or _words_cover_half(text)


def _periodic(run: Sequence[object]) -> bool:
    """Whether `run` repeats a prefix of at most half its length (its shortest period, from
    the Knuth-Morris-Pratt failure function: linear, however long the value)."""
    border = [0] * len(run)
    for i in range(1, len(run)):
        k = border[i - 1]
        while k and run[i] != run[k]:
            k = border[k - 1]
        border[i] = k + 1 if run[i] == run[k] else 0
    return bool(run) and 2 * (len(run) - border[-1]) <= len(run)


def _sequential(run: str | bytes) -> bool:
    """Whether at least half of the neighbouring pairs repeat or count up by one."""
    codes = run.encode() if isinstance(run, str) else run
    steps = [b - a for a, b in itertools.pairwise(codes)]
    return 2 * sum(step in (0, 1) for step in steps) >= len(steps) > 0


def _words_cover_half(text: str) -> bool:
    covered: set[int] = set()
    for start in range(len(text)):
        found = _WORDS.match(text, start)
        if found:
            covered.update(range(start, found.end()))
    return 2 * len(covered) >= len(text)


def _text(key: bytes) -> bool:
    """Whether a decoded key is printable ASCII: a passphrase, not random bytes."""
    return all(0x20 <= byte <= 0x7E for byte in key)
