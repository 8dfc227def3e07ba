"""The one list of variables (shared/workflow/settings.py) and everything derived from it: what each
function's settings read, docs/configuration.md's table, deploy.sh (what it checks, passes
and documents in --help), the local stack and the live sandbox."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sandbox.__main__ import LIVE_VARIABLES
from shared.adapters.secrets import SecretResolver
from shared.workflow.settings import (
    BACKFILL,
    DEPLOY,
    DEPLOYED,
    INGEST,
    LANGUAGE,
    LINQ_EVENTS,
    LINQ_INTAKE,
    LINQ_WEBHOOK,
    PAUSE,
    RECOVER,
    RELEASE,
    REPORT,
    VARIABLES,
    BackfillSettings,
    ControlSettings,
    IngestSettings,
    LinqEventSettings,
    LinqIntakeSettings,
    Reader,
    RecoverSettings,
    ReleaseSettings,
    ReportSettings,
    Settings,
    is_product_variable,
    read_by,
)
from standins.signing_secrets import new_linq_secret, new_stripe_secret
from standins.stack import FUNCTIONS, LocalStack, base_env
from tests.test_deploy import dry_run, flag, pythons  # noqa: F401 (the fixture dry_run needs)
from tools.config_table import table
from tools.deploy_env import deployed, function_env, help_text, shell_names
from tools.go_live import GoLiveSettings
from tools.linq_webhook import LinqWebhookSettings

ROOT = Path(__file__).resolve().parent.parent
# A value each variable accepts, so that every settings object reads without an error.
VALID = {
    "STRIPE_API_KEY": "sk_test_abc123",
    "STRIPE_WEBHOOK_SECRET": new_stripe_secret(),
    "LINQ_WEBHOOK_SECRET": new_linq_secret(),
    "LINQ_API_KEY": "linq_token",
    "GOOGLE_CLOUD_PROJECT": "demo-proj",
    "BRAND_NAME": "Acme",
    "MESSAGE_TEMPLATE_ES": "{brand}: hola {first_name}. Responde STOP.",
    "ACTION_TEMPLATE_ES": "{brand}: confirma tu pago, {first_name}. Responde STOP.",
}
SETTINGS: dict[str, type[Settings]] = {
    INGEST: IngestSettings,
    RECOVER: RecoverSettings,
    BACKFILL: BackfillSettings,
    RELEASE: ReleaseSettings,
    REPORT: ReportSettings,
    PAUSE: ControlSettings,
    LINQ_INTAKE: LinqIntakeSettings,
    LINQ_EVENTS: LinqEventSettings,
    LINQ_WEBHOOK: LinqWebhookSettings,
}


class Recording(Reader):
    """A reader that notes every name asked for."""

    def __init__(self) -> None:
        super().__init__(VALID, SecretResolver())
        self.asked: set[str] = set()

    def value(self, name: str) -> str | None:
        self.asked.add(name)
        return super().value(name)

    def raw(self, name: str) -> str | None:
        self.asked.add(name)
        return super().raw(name)


# Local addresses the clients that reach Google's APIs read themselves, not a settings object.
READ_BY_CLIENTS = {"PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "SECRET_MANAGER_API_BASE"}


def names(variables: Any) -> set[str]:
    """The variables' names, a family's (MESSAGE_TEMPLATE_<LANG>) by the one of its names these
    tests set (MESSAGE_TEMPLATE_ES)."""
    return {variable.name.replace(LANGUAGE, "ES") for variable in variables}


@pytest.mark.parametrize(("reader", "settings"), SETTINGS.items())
def test_each_settings_object_reads_exactly_the_variables_declared_for_it(reader, settings):
    env = Recording()
    settings.read(env)
    declared = names(v for v in read_by(reader) if v.name not in READ_BY_CLIENTS)
    assert env.asked == declared


def test_every_reader_of_a_variable_is_a_settings_object_or_deploy_sh():
    readers = {reader for variable in VARIABLES for reader in variable.readers}
    assert readers == {*SETTINGS, DEPLOY}
    assert set(DEPLOYED) <= set(SETTINGS)


def test_the_readme_configuration_table_is_the_one_list():
    # Regenerate with: python -m tools.config_table
    assert table() in (ROOT / "docs" / "configuration.md").read_text()


def test_deploy_sh_help_lists_every_variable_it_checks_or_passes_as_declared():
    # Regenerate with: python -m tools.deploy_env --help-text (pasted into deploy.sh's usage)
    assert help_text() in (ROOT / "deploy.sh").read_text()
    for name in ("QUIET_HOURS", "HOLDOUT_PERCENT", "LEASE_SECONDS", "STRIPE_CONNECT_ACCOUNTS"):
        assert f"\n  {name} " in f"\n{help_text()}"


def test_the_variables_declared_for_deploy_sh_are_the_ones_it_and_its_tools_read():
    script = (ROOT / "deploy.sh").read_text()
    in_bash = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):[-+]", script))
    # The secret versions are read by name: secret_version NAME VARIABLE.
    in_bash |= set(re.findall(r"^\s*secret_version \"\$\w+\" ([A-Z][A-Z0-9_]*)$", script, re.M))
    env = Recording()
    shell_names(env, "us-central1")
    GoLiveSettings.read(env)
    # The Secret Manager stand-in's address is read by the client, which reaches Google's API.
    declared = names(v for v in read_by(DEPLOY) if not v.local)
    assert in_bash | env.asked == declared


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory):
    # Slack on and connected accounts served: every optional secret is deployed.
    return dry_run(tmp_path_factory.mktemp("deploy"), SLACK="1", STRIPE_CONNECT_ACCOUNTS="*")


def secrets_deployed(plan, function: str) -> set[str]:
    """The variables each deploy of `function` sets from secrets (the intakes are deployed
    twice: then the same ones both times)."""
    deploys = [argv for argv in plan.find("functions", "deploy") if argv[3] == function]
    found = [
        {pair.split("=", 1)[0] for pair in flag(deploy, "--set-secrets").split(",")}
        if any(arg.startswith("--set-secrets=") for arg in deploy)
        else set()
        for deploy in deploys
    ]
    [first, *others] = found
    assert all(each == first for each in others), found
    return first


@pytest.mark.integration
@pytest.mark.usefixtures("pythons")
@pytest.mark.parametrize(
    ("function", "reader"),
    [
        ("dunning-ingest", INGEST),
        ("dunning-recover", RECOVER),
        ("dunning-release", RELEASE),
        ("dunning-linq-intake", LINQ_INTAKE),
        ("dunning-linq-events", LINQ_EVENTS),
    ],
)
def test_deploy_sets_exactly_the_secrets_each_function_reads(plan, function, reader):
    assert secrets_deployed(plan, function) == names(v for v in read_by(reader) if v.secret)


@pytest.mark.parametrize("function", DEPLOYED)
def test_deploy_passes_each_function_every_plain_variable_it_reads_and_no_other(function):
    everything = {v.name: "1" for v in VARIABLES if not v.family}
    resources = {
        "PUBSUB_TOPIC": "failed",
        "LINQ_EVENTS_TOPIC": "linq",
        "FIRESTORE_DATABASE": "ledger",
    }
    languages = {"MESSAGE_TEMPLATE_ES": "STOP", "ACTION_TEMPLATE_ES": "STOP"}
    env = Reader({**everything, **resources, **languages}, SecretResolver())
    plain = names(v for v in read_by(function) if not v.secret and not v.local)
    assert set(function_env(env, function)) == plain


def test_deploy_checks_every_variable_but_the_secrets_and_the_local_ones():
    checked = names(filter(deployed, VARIABLES))
    assert checked == names(
        v
        for v in VARIABLES
        if not v.secret and not v.local and {DEPLOY, *DEPLOYED} & set(v.readers)
    )
    assert {"LEASE_SECONDS", "QUIET_HOURS", "HOLDOUT_PERCENT", "SLACK"} <= checked


def test_the_local_stack_inherits_no_product_variable(monkeypatch):
    for variable in VARIABLES:
        monkeypatch.setenv(variable.name.replace("<LANG>", "ES"), "from-the-shell")
    assert not [name for name in base_env() if is_product_variable(name)]
    # deploy.sh's own variables are not the product's: PYTHON stays the caller's.
    assert base_env()["PYTHON"] == "from-the-shell"


def test_the_local_stack_gives_each_function_only_what_it_reads(tmp_path):
    stack = LocalStack(standins=False, workdir=tmp_path)
    for function in FUNCTIONS:
        given = set(stack.function_env(function)) - set(base_env())
        assert given <= names(read_by(function)), function
        assert "GOOGLE_CLOUD_PROJECT" in given
    assert stack.function_env(INGEST)["PUBSUB_TOPIC"] == stack.topic == "stripe-payment-failed"
    assert stack.function_env(LINQ_INTAKE)["LINQ_EVENTS_TOPIC"] == "linq-events"


def test_the_live_sandbox_passes_through_everything_but_what_it_sets_itself():
    passed = names(LIVE_VARIABLES)
    functions = names(v for v in VARIABLES if {INGEST, RECOVER} & set(v.readers) and not v.local)
    assert functions - passed == {"GOOGLE_CLOUD_PROJECT", "PUBSUB_TOPIC"}
    assert {"STRIPE_API_BASE", "LINQ_API_BASE"} <= passed
