"""The one list of variables (shared/workflow/settings.py) and everything derived from it: the
README's Configuration table, what deploy.sh deploys, the local stack and the live sandbox."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sandbox.__main__ import LIVE_VARIABLES
from shared.workflow.settings import (
    INGEST,
    RECOVER,
    TEMPLATE_VARIABLE,
    VARIABLES,
    is_language_template,
    is_product_variable,
    read_by,
)
from standins.stack import base_env
from tests.test_deploy import dry_run, flag
from tools.config_table import table
from tools.stage import RECOVER_ENV

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_SOURCES = [
    ROOT / "shared/workflow/settings.py",
    ROOT / "shared/workflow/recover_settings.py",
]


def test_the_readme_configuration_table_is_the_one_list():
    # Regenerate with: python -m tools.config_table
    assert table() in (ROOT / "README.md").read_text()


def test_every_variable_the_code_reads_is_in_the_list_and_every_listed_one_is_read():
    read = set()
    for source in SETTINGS_SOURCES:
        text = source.read_text()
        read |= set(
            re.findall(
                r"(?:env\.(?:value|raw|required|secret|optional_secret|flag|base_url)\("
                r'|_topic\(env, )"([A-Z_]+)"',
                text,
            )
        )
    # MESSAGE_TEMPLATE is read through its constant, TEMPLATE_VARIABLE.
    read.add(TEMPLATE_VARIABLE)
    listed = {v.name for v in VARIABLES if not v.local and not is_language_template(v.name)}
    assert read == listed


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory):
    return dry_run(tmp_path_factory.mktemp("deploy"), SLACK="1")


def secrets_deployed(plan, function: str) -> set[str]:
    [deploy] = [argv for argv in plan.find("functions", "deploy") if argv[3] == function]
    return {pair.split("=", 1)[0] for pair in flag(deploy, "--set-secrets").split(",")}


@pytest.mark.parametrize(
    ("function", "reader"), [("dunning-ingest", INGEST), ("dunning-recover", RECOVER)]
)
def test_deploy_sets_exactly_the_secrets_each_function_reads(plan, function, reader):
    assert secrets_deployed(plan, function) == {v.name for v in read_by(reader) if v.secret}


def test_deploy_passes_every_plain_variable_of_the_recover_function():
    plain = {
        v.name
        for v in read_by(RECOVER)
        if not v.secret and not v.local and not is_language_template(v.name)
    }
    assert set(RECOVER_ENV) == plain


def test_the_local_stack_inherits_no_product_variable(monkeypatch):
    for variable in VARIABLES:
        monkeypatch.setenv(variable.name.replace("<LANG>", "ES"), "from-the-shell")
    assert not [name for name in base_env() if is_product_variable(name)]


def test_the_live_sandbox_passes_through_everything_but_what_it_sets_itself():
    passed = {v.name for v in LIVE_VARIABLES}
    functions = {v.name for v in VARIABLES if {INGEST, RECOVER} & set(v.readers) and not v.local}
    assert functions - passed == {"GOOGLE_CLOUD_PROJECT", "PUBSUB_TOPIC"}
    assert {"STRIPE_API_BASE", "LINQ_API_BASE"} <= passed
