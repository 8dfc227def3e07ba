"""What deploy.sh sets on each function, from the one list (shared/workflow/settings.py).

Before anything is created, every plain variable deploy.sh or a deployed function reads is read
here as that function will read it, and held to its deploy-time rule: a value a function would
refuse stops the deploy (exit 2), rather than every message it serves. Then each deployed
function gets BUILD_DIR/<function>.env.yaml with the plain variables it reads, and deploy.sh gets,
on stdout, the shell assignments of the names it creates resources with.

    python -m tools.deploy_env BUILD_DIR PROJECT REGION   (deploy.sh runs it)
    python -m tools.deploy_env --help-text                deploy.sh --help's list of variables
                                                          (tests/test_settings.py: deploy.sh
                                                          holds it as printed)
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.adapters.ledger import COLLECTION, LINQ_EVENTS
from shared.adapters.secrets import SecretResolver, parse_reference
from shared.core.errors import ConfigError
from shared.core.lease import RECOVER_TIMEOUT
from shared.workflow.settings import (
    BY_NAME,
    DEPLOY,
    DEPLOYED,
    FIRESTORE_DATABASE,
    FIRESTORE_LOCATION,
    GOOGLE_CLOUD_PROJECT,
    LINQ_API_KEY,
    LINQ_EVENTS_TOPIC,
    PUBSUB_TOPIC,
    STRIPE_API_KEY,
    STRIPE_CONNECT_ACCOUNTS,
    SWEEP_TOPIC,
    VARIABLES,
    Reader,
    Variable,
)

# Variables that name what deploy.sh creates: a function that reads one always gets it, so the
# function and the resource agree whatever its default says.
RESOURCES = (GOOGLE_CLOUD_PROJECT, PUBSUB_TOPIC, LINQ_EVENTS_TOPIC, FIRESTORE_DATABASE)
# The keys deploy.sh deploys and checks, each from a secret: the one an sm:// reference names, or
# the one here, which deploy.sh makes from the key's value when it is missing. Each entry: the
# variable, the prefix of the shell names deploy.sh gets for it, and that secret's id.
KEYS = ((STRIPE_API_KEY, "STRIPE", "stripe-api-key"), (LINQ_API_KEY, "LINQ", "linq-api-key"))
# deploy.sh --help: names padded to this column, lines cut at this width.
HELP_COLUMN, HELP_WIDTH = 32, 100
# What a signing secret holds until the vendor's own is stored: the intake answers 503 meanwhile
# and verifies nothing, so the sender retries.
PLACEHOLDER = "not-set-yet"


def deployed(variable: Variable[Any]) -> bool:
    """Whether deploy.sh reads `variable` or sets it on a function (secrets go through Secret
    Manager, local-only variables nowhere)."""
    readers = set(variable.readers)
    return not variable.secret and not variable.local and bool(readers & {DEPLOY, *DEPLOYED})


def check(env: Reader) -> None:
    """Each deployed variable read as its reader will, and held to its deploy-time rule."""
    for variable in filter(deployed, VARIABLES):
        value = variable.read(env)
        problem = variable.deploy(value, env) if variable.deploy else None
        if problem:
            raise ConfigError(f"{variable.name} {problem}, got {env.text(variable)!r}")


def function_env(env: Reader, function: str) -> dict[str, str]:
    """The plain variables `function` reads, as set: the ones naming a resource always, the
    others when set."""
    values = {}
    for variable in VARIABLES:
        if function not in variable.readers or not deployed(variable):
            continue
        family = variable.family
        if family is not None:
            names = [name for name in env.names() if name.startswith(family)]
        else:
            names = [variable.name]
        for name in names:
            if variable in RESOURCES:
                values[name] = variable.read(env)
            elif env.value(name) is not None:
                values[name] = env.raw(name) or ""
    return values


def quoted(value: str) -> str:
    """A YAML double-quoted scalar that reads back as exactly `value`."""
    text = json.dumps(value, ensure_ascii=False)
    # json.dumps escaped quotes, backslashes and control characters; escape what YAML would not
    # keep verbatim either (line separators and other non-printables).
    return "".join(
        c if c.isprintable() else f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"
        for c in text
    )


def env_file(values: Mapping[str, str]) -> str:
    """An --env-vars-file: YAML reads each value back unchanged (`NO` stays a string, and a
    template's commas and braces stay its own, which --set-env-vars would split)."""
    return "".join(f"{name}: {quoted(value)}\n" for name, value in values.items())


def key_source(env: Reader, variable: Variable[str], prefix: str, default: str) -> dict[str, str]:
    """Where deploy.sh takes a key from: `<prefix>_KEY_SECRET`, the secret it deploys;
    `<prefix>_KEY_GIVEN`, how the variable gives the key (`value`, `reference` or empty); and the
    `_VERSION` variable to pin, the one set or the reference's version. A reference must name a
    secret of the project deployed to, which is where the functions read it from."""
    version_variable = BY_NAME[f"{variable.name}_VERSION"]
    pinned = version_variable.read(env) or ""
    value = env.value(variable.name)
    reference = None if value is None else parse_reference(variable.name, value)
    given, secret = ("value" if value else ""), default
    if reference is not None:
        project = GOOGLE_CLOUD_PROJECT.read(env)
        if reference.project != project:
            raise ConfigError(
                f"{variable.name} must name a secret of project {project}, which the functions "
                f"read it from, got a secret of {reference.project!r}"
            )
        version = "" if reference.version in (None, "latest") else reference.version
        if version and not version.isdigit():
            raise ConfigError(
                f"{variable.name} must name a version number or none, got #{reference.version}"
            )
        if pinned and version and pinned != version:
            raise ConfigError(
                f"{variable.name} names version {version} and {version_variable.name} version "
                f"{pinned}: give one of them"
            )
        given, secret, pinned = "reference", reference.secret, pinned or version
    elif value is not None:
        variable.read(env)  # a value's own checks: a Stripe key's prefix
    return {
        f"{prefix}_KEY_SECRET": secret,
        f"{prefix}_KEY_GIVEN": given,
        version_variable.name: pinned,
    }


def shell_names(env: Reader, region: str) -> dict[str, str]:
    """The names deploy.sh creates resources with, checked, and what it makes them with."""
    names = {
        "TOPIC": PUBSUB_TOPIC.read(env),
        "LINQ_TOPIC": LINQ_EVENTS_TOPIC.read(env),
        "FIRESTORE_DATABASE": FIRESTORE_DATABASE.read(env),
        "FIRESTORE_LOCATION": FIRESTORE_LOCATION.read(env) or region,
        "RECOVER_TIMEOUT_S": f"{RECOVER_TIMEOUT.total_seconds():g}",
        "LEDGER_COLLECTION": COLLECTION,
        # The Linq webhook ids acted on: kept as long as the ledger's entries, then expired.
        "LINQ_EVENTS_COLLECTION": LINQ_EVENTS,
        "SWEEP_TOPIC": SWEEP_TOPIC,
        "PLACEHOLDER": PLACEHOLDER,
        # Connected accounts served: the ingest function gets a Connect endpoint too.
        "CONNECT_SERVED": "1" if STRIPE_CONNECT_ACCOUNTS.read(env) else "",
    }
    for variable, prefix, default in KEYS:
        names.update(key_source(env, variable, prefix, default))
    return names


def prepare(build: Path, project: str, region: str, environ: Mapping[str, str]) -> str:
    """Check every deployed variable, write each function's env file into `build`, and return
    the shell assignments for deploy.sh."""
    # Secrets are deployed from Secret Manager and never read here.
    env = Reader({**environ, GOOGLE_CLOUD_PROJECT.name: project}, SecretResolver())
    check(env)
    build.mkdir(parents=True, exist_ok=True)
    for function in DEPLOYED:
        (build / f"{function}.env.yaml").write_text(
            env_file(function_env(env, function)), encoding="utf-8"
        )
    return "".join(
        f"{name}={shlex.quote(value)}\n" for name, value in shell_names(env, region).items()
    )


def plain(text: str) -> str:
    """Markdown's code spans, as a terminal shows them."""
    return text.replace("`", "")


def documented(variable: Variable[Any]) -> bool:
    """Whether deploy.sh --help lists `variable`: every one it checks or passes, and the keys it
    reads itself."""
    return deployed(variable) or (variable.secret and DEPLOY in variable.readers)


def help_text() -> str:
    """deploy.sh --help's list of variables: what each means, which deployed function (or
    deploy.sh) reads it, and its default."""
    lines = []
    for variable in filter(documented, VARIABLES):
        readers = ", ".join(r for r in variable.readers if r in {DEPLOY, *DEPLOYED})
        about = f"{variable.meaning} ({readers}; default: {variable.shown_default})"
        lines += textwrap.wrap(
            plain(about),
            HELP_WIDTH,
            initial_indent=f"  {variable.name} ".ljust(HELP_COLUMN),
            subsequent_indent=" " * HELP_COLUMN,
            break_on_hyphens=False,
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv == ["--help-text"]:
        print(help_text())
        return 0
    build, project, region = argv
    try:
        sys.stdout.write(prepare(Path(build), project, region, os.environ))
    except ConfigError as exc:
        print(f"deploy.sh: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
