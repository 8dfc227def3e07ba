"""Which signing secrets the intakes accept: generated ones only, never one anyone can know."""

import ast
import base64
import random
import re
import string
import subprocess
from pathlib import Path

import pytest

from shared.core.signing_secret import (
    KNOWN,
    TOO_LONG,
    TYPED,
    linq_secret_problem,
    stripe_secret_problem,
)
from shared.workflow.settings import IngestSettings, LinqIntakeSettings
from standins.signing_secrets import new_linq_secret, new_stripe_secret

# A fixed seed: the same thousands of secrets each run, so a failure can be reproduced.
GENERATOR = random.Random(20261126)
ALNUM = string.ascii_letters + string.digits


def b64(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


def random_bytes(size: int) -> bytes:
    return bytes(GENERATOR.getrandbits(8) for _ in range(size))


# What Stripe issues: 32 letters and digits (the Dashboard), 64 hex digits (the Stripe CLI).
STRIPE_ISSUED = [
    *("whsec_" + "".join(GENERATOR.choices(ALNUM, k=32)) for _ in range(3000)),
    *("whsec_" + random_bytes(32).hex() for _ in range(3000)),
]
# What Standard Webhooks senders issue: the base64 of 24 to 64 random bytes.
LINQ_ISSUED = [b64(random_bytes(GENERATOR.choice([24, 32, 48, 64]))) for _ in range(3000)]


def test_no_generated_stripe_secret_is_refused():
    assert [secret for secret in STRIPE_ISSUED if stripe_secret_problem(secret)] == []
    assert stripe_secret_problem(new_stripe_secret()) is None


def test_no_generated_linq_secret_is_refused():
    assert [secret for secret in LINQ_ISSUED if linq_secret_problem(secret)] == []
    assert linq_secret_problem(new_linq_secret()) is None


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("not-set-yet", "it does not start with whsec_"),
        ("whsec_", "after whsec_ it is not 24 or more letters and digits"),
        ("whsec_pending", "after whsec_ it is not 24 or more letters and digits"),
        ("whsec_" + "a1B2c3D4e5F6g7H8i9J0k1L2-", "after whsec_ it is not 24 or more letters"),
        ("whsec_" + "é" * 30, "after whsec_ it is not 24 or more letters and digits"),
        ("whsec_" + "a" * 257, TOO_LONG),
        # The example the issue gives: letters, digits, both cases, and still typed by hand.
        ("whsec_" + "YourSigningSecretGoesHere1234", TYPED),
        ("whsec_" + "ReplaceMeWithTheRealSecretPlaceholder", TYPED),
        ("whsec_" + "x" * 32, TYPED),
        ("whsec_" + "abcd1234" * 4, TYPED),
        ("whsec_" + "PendingPendingPendingPendingPendingPend", TYPED),
        ("whsec_" + "abcdefghijklmnopqrstuvwxyz123456", TYPED),
        ("whsec_" + "abc123def456ghi789jkl012mno345", TYPED),
        ("whsec_" + "0123456789abcdef" * 4, KNOWN),  # committed here as a "real" secret
        ("whsec_" + "F" * 32, TYPED),
    ],
)
def test_a_stripe_secret_anyone_could_know_is_refused(secret, problem):
    assert stripe_secret_problem(secret).startswith(problem)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("not-set-yet", "it does not start with whsec_"),
        # A lenient decode would drop the hyphens and read 26 bytes.
        ("whsec_pending-placeholder-for-the-linq-webhook", "after whsec_ it is not base64"),
        ("whsec_" + "é" * 44, "after whsec_ it is not base64"),
        (b64(b"0123456789"), "it is too short to be a signing secret"),
        ("whsec_" + "A" * 300, TOO_LONG),
        ("whsec_" + "A" * 44, TYPED),
        ("whsec_" + "ChangeMeChangeMeChangeMeChangeMe", TYPED),
        ("whsec_" + "PendingPendingPendingPendingPendingPend", TYPED),
        # The base64 of a passphrase: it decodes to text, not random bytes.
        (b64(b"linq-production-signing-secret-1"), TYPED),
        (b64(b"correct horse battery staple!!!!"), TYPED),
        (b64(bytes(range(40, 80))), TYPED),  # counts up
        (b64(bytes(range(7, 39))), KNOWN),  # committed here as a "generated" secret
        (b64(random_bytes(8) * 4), TYPED),  # one random run, repeated
    ],
)
def test_a_linq_secret_anyone_could_know_is_refused(secret, problem):
    assert linq_secret_problem(secret).startswith(problem)


def test_the_published_examples_are_refused_by_both_rules():
    # The Standard Webhooks specification's test vector; Svix's API reference example. Both are
    # random bytes, so only the list of known values refuses them.
    for secret in (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    ):
        assert linq_secret_problem(secret) == KNOWN
    assert stripe_secret_problem("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == KNOWN


def test_no_problem_quotes_the_secret():
    for secret in ("whsec_" + "YourSigningSecretGoesHere1234", "whsec_pending", "not-set-yet"):
        assert secret.removeprefix("whsec_") not in stripe_secret_problem(secret)
        assert secret.removeprefix("whsec_") not in linq_secret_problem(secret)


def test_a_megabyte_pasted_as_a_secret_is_refused_at_once():
    # The rules look at no more than 256 characters: a value pasted by mistake costs nothing.
    assert stripe_secret_problem("whsec_" + "7f3c" * 262144) == TOO_LONG
    assert linq_secret_problem("whsec_" + "QUJD" * 262144) == TOO_LONG


# --- nothing in the repository signs for a deployed intake ---------------------------------------

ROOT = Path(__file__).resolve().parent.parent
# A whsec_ value written out (in any file), and its random part as far as either sender's
# alphabet goes.
WRITTEN = re.compile(r"whsec_[A-Za-z0-9+/=]*")


def repository_files() -> list[Path]:
    """Every file of the checkout that git tracks or would (ignored ones, like .venv, aside)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [ROOT / name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def folded(node: ast.AST) -> object:
    """The value of an expression built from constants with + and * (`"whsec_" + "x" * 32`),
    or None when it is anything else."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
        left, right = folded(node.left), folded(node.right)
        try:
            return left + right if isinstance(node.op, ast.Add) else left * right
        except TypeError:
            return None
    return None


def written_secrets() -> dict[str, str]:
    """Each whsec_ value the repository holds, and one file it is in."""
    found: dict[str, str] = {}
    for path in repository_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        values = set(WRITTEN.findall(text))
        if path.suffix == ".py":
            tree = ast.parse(text, str(path))
            constants = (folded(node) for node in ast.walk(tree) if isinstance(node, ast.BinOp))
            values |= {v for v in constants if isinstance(v, str) and v.startswith("whsec_")}
        for value in values:
            found.setdefault(value, str(path.relative_to(ROOT)))
    return found


@pytest.mark.integration
def test_every_whsec_value_in_the_repository_is_refused_by_both_intakes():
    found = written_secrets()
    # The scan sees what it should: the Standard Webhooks test vector the Linq tests keep, and
    # the constants the tests build with + and *.
    assert "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" in found
    assert "whsec_" + "x" * 32 in found
    env = {"GOOGLE_CLOUD_PROJECT": "demo-proj"}
    accepted = {
        value: where
        for value, where in found.items()
        if IngestSettings.from_env({**env, "STRIPE_WEBHOOK_SECRET": value}).signing.secret
        or LinqIntakeSettings.from_env({**env, "LINQ_WEBHOOK_SECRET": value}).signing.secret
    }
    assert accepted == {}
