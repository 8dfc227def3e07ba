"""deploy.sh: the commands a dry run would run, what it stages, going live in one command (the
Stripe endpoint and the Linq subscription made once, their secrets stored unseen), and that a
re-run changes nothing.

No test here reaches Google Cloud, Stripe or Linq: the dry runs see a `gcloud` that fails loudly
if it is ever called, and the runs that go live a small stateful fake whose `secrets` commands
reach the Secret Manager stand-in (tests/fake_gcloud_secrets.py), beside the Stripe and Linq
stand-ins. Every Python command deploy.sh or the fake runs is forked from a warm server
(tests/warm_python.py): the same code, without importing the same libraries fifty times a test.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from packaging.utils import canonicalize_name

from standins.linq_api import LinqStandin
from standins.secretmanager_api import SecretManagerStandin
from standins.stripe_api import StripeStandin
from tools import lock
from tools.go_live import Kind, Move, Pinned, by_kind, decide, form, masked, missed
from tools.secret_store import Refused
from tools.stripe_webhook import Endpoint, endpoint_params

# deploy.sh runs on warm Pythons (`pythons`); a module that runs it asks for them too.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("pythons")]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy.sh"
VENV_BIN = Path(sys.executable).parent
PROJECT, REGION = "demo", "us-central1"
TOPIC, DLQ = "stripe-payment-failed", "stripe-payment-failed-dead-letter"
SWEEP = "dunning-release-sweep"
LINQ_TOPIC = "linq-events"
LINQ_DLQ = "linq-events-dead-letter"
RELEASE_SA = f"serviceAccount:dunning-release@{PROJECT}.iam.gserviceaccount.com"
INGEST_SA = f"serviceAccount:dunning-ingest@{PROJECT}.iam.gserviceaccount.com"
RECOVER_SA = f"serviceAccount:dunning-recover@{PROJECT}.iam.gserviceaccount.com"
TRIGGER_SA = f"serviceAccount:dunning-trigger@{PROJECT}.iam.gserviceaccount.com"
BUILD_SA = f"serviceAccount:dunning-build@{PROJECT}.iam.gserviceaccount.com"
# Cloud Functions (2nd gen) keeps each function's source in this bucket and builds its image into
# this repository.
SOURCE_BUCKET = f"gs://gcf-v2-sources-<project-number>-{REGION}"
IMAGE_REPOSITORY = "gcf-artifacts"
PUBSUB_AGENT = "serviceAccount:service-<project-number>@gcp-sa-pubsub.iam.gserviceaccount.com"
SUBSCRIPTION = "<eventarc-subscription>"
STRIPE, LINQ = "https://api.stripe.com", "https://api.linqapp.com/api/partner"
BIND = "add-iam-policy-binding"

# A gcloud that must never run during a dry run: it leaves a mark and fails.
TRIPWIRE = """#!/bin/sh
echo "$@" >> "${0%/*}/called"
exit 99
"""

# A gcloud that remembers what was created and which deploy-hash each function carries; its
# secrets are the Secret Manager stand-in's. A deploy whose arguments contain FAIL_DEPLOY fails.
STATEFUL = r"""#!/bin/bash
set -eu
state=${0%/*}/state
[[ -d $state ]] || mkdir "$state"
echo "$*" >> "$state/calls"
key() { local id=${3%%@*}; printf '%s' "$state/$1_$2_${id//\//_}"; }
case "$1 $2 $3 " in
  "secrets "*) exec "${0%/*}/fake-python" "$FAKE_SECRETS" "$@" ;;
  "functions deploy "*)
    if [[ -n ${FAIL_DEPLOY:-} && "$*" == *"$FAIL_DEPLOY"* ]]; then
      echo "ERROR: (gcloud.functions.deploy) Build failed" >&2
      exit 1
    fi
    for arg in "$@"; do
      case $arg in --update-labels=deploy-hash=*) echo "${arg##*=}" > "$state/hash_$3" ;; esac
    done ;;
  "functions describe "*)
    case "$*" in
      *labels.deploy-hash*) cat "$state/hash_$3" 2>/dev/null || exit 1 ;;
      *eventTrigger*) echo "projects/demo/locations/us-central1/triggers/$3-123" ;;
      *serviceConfig.uri*) echo "https://$3-abc.a.run.app" ;;
    esac ;;
  "eventarc triggers describe "*) echo "projects/demo/subscriptions/eventarc-sub-456" ;;
  "projects describe "*) echo 123456789 ;;
  "firestore fields ttls ")
    case $4 in
      list) cat "$state/ttl" 2>/dev/null || true ;;
      update) echo "projects/demo/databases/dunning/collectionGroups/dunning_sends/fields/$5" \
        > "$state/ttl" ;;
    esac ;;
  "firestore indexes composite ")
    case $4 in
      list) cat "$state/indexes" 2>/dev/null || true ;;
      create)
        for arg in "$@"; do
          case $arg in
            --field-config=field-path=state,*) ;;
            --field-config=field-path=*)
              field=${arg#--field-config=field-path=}
              echo "state;${field%%,*};__name__" >> "$state/indexes" ;;
          esac
        done ;;
    esac ;;
  "monitoring dashboards list ") cat "$state/dashboard" 2>/dev/null || true ;;
  "monitoring dashboards create ") echo "projects/123456789/dashboards/abc" > "$state/dashboard" ;;
  "scheduler jobs describe ") [[ -e $state/job_$4 ]] || exit 1 ;;
  "scheduler jobs create ") touch "$state/job_$5" ;;
  *" create "*) touch "$(key "$1" "$2" "$4")" ;;
  *" describe "*) [[ -e $(key "$1" "$2" "$4") ]] || exit 1 ;;
esac
"""


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    build: Path
    gcloud_calls: list[str]

    @property
    def commands(self) -> list[list[str]]:
        """Each printed gcloud command as its argument list."""
        return [shlex.split(line[2:]) for line in self.stdout.splitlines() if line.startswith("+ ")]

    def find(self, *words: str) -> list[list[str]]:
        """The commands that start with `gcloud WORDS...`."""
        n = len(words) + 1
        return [argv for argv in self.commands if argv[:n] == ["gcloud", *words]]

    def one(self, *words: str) -> list[str]:
        found = self.find(*words)
        assert len(found) == 1, found
        return found[0]

    def deployed(self, function: str) -> list[str]:
        """The first deploy of `function` (a first run deploys the two intakes again, pinned to
        the signing secrets the vendors returned)."""
        return self.find("functions", "deploy", function)[0]


def flag(argv: list[str], name: str) -> str:
    values = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"{name}=")]
    assert len(values) == 1, (name, argv)
    return values[0]


def function_env(argv: list[str]) -> dict[str, str]:
    """The variables a deploy command sets: its --env-vars-file, as YAML reads it back (each value
    a double-quoted JSON string)."""
    text = Path(flag(argv, "--env-vars-file")).read_text()
    return {
        name: json.loads(value)
        for name, value in (line.split(": ", 1) for line in text.splitlines())
    }


# The tests' Python commands start warm (tests/warm_python.py): deploy.sh's from a server of
# its tools' libraries, the fake gcloud's from one of the standard library's (a small process
# forks faster). deploy.sh's tools.stage is the session's staging copied (what it stages does not
# change within a session), except in the plan's run, whose staging the tests of staging read.
WARM_CLIENT = ROOT / "tests" / "warm_client.py"
WARMED = {
    "python": ("tools.go_live", "tools.deploy_env", "tools.stage"),
    "fake-python": ("tests.fake_gcloud_secrets",),
}
PYTHON = """#!/bin/sh
echo "$*" >> "$0-argv"
if [ -n {staged} ] && [ "$1 $2" = "-m tools.stage" ]; then
  rm -rf "$3/ingest" "$3/recover" && mkdir -p "$3" &&
    exec cp -R {staged}/ingest {staged}/recover "$3"
fi
exec {python} -I -S {client} {socket} "$@"
"""
FAKE_PYTHON = """#!/bin/sh
exec {python} -I -S {client} {socket} "$@"
"""


@dataclass(frozen=True)
class Pythons:
    """The warm servers' sockets, by the name of the script that runs a command there, and the
    session's staging."""

    sockets: dict[str, Path]
    staged: Path

    def install(self, bin_dir: Path, *, stage: bool) -> None:
        """bin_dir/python, deploy.sh's Python, recording its arguments in python-argv; and
        bin_dir/fake-python, the fake gcloud's."""
        for name, template in (("python", PYTHON), ("fake-python", FAKE_PYTHON)):
            script = bin_dir / name
            script.write_text(
                template.format(
                    staged=shlex.quote("" if stage else str(self.staged)),
                    python=shlex.quote(sys.executable),
                    client=shlex.quote(str(WARM_CLIENT)),
                    socket=shlex.quote(str(self.sockets[name])),
                )
            )
            script.chmod(0o755)


_pythons: list[Pythons] = []


@pytest.fixture(scope="session")
def pythons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pythons]:
    from tools import stage

    home = tmp_path_factory.mktemp("python")
    stage.main(home / "build")
    sockets = {name: home / f"{name}.socket" for name in WARMED}
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.warm_python", str(sockets[name]), *modules],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, modules in WARMED.items()
    ]
    try:
        for server in servers:
            assert server.stdout is not None
            assert server.stdout.readline() == "ready\n"
        _pythons.append(Pythons(sockets, home / "build"))
        yield _pythons[0]
    finally:
        _pythons.clear()
        for server in servers:
            server.terminate()
            server.wait(timeout=10)


def deploy(tmp: Path, *args: str, fake: str = TRIPWIRE, stage: bool = False, **env: str) -> Run:
    fakebin = tmp / "bin"
    fakebin.mkdir(exist_ok=True)
    gcloud = fakebin / "gcloud"
    gcloud.write_text(fake)
    gcloud.chmod(0o755)
    if not _pythons:
        raise RuntimeError("deploy.sh runs on the warm Pythons: ask for the `pythons` fixture")
    _pythons[0].install(fakebin, stage=stage)
    build = tmp / "build"
    environment = {
        "PATH": f"{fakebin}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp),
        "LC_ALL": "C.UTF-8",
        "PYTHON": str(fakebin / "python"),
        "BUILD_DIR": str(build),
        **env,
    }
    done = subprocess.run(
        [str(SCRIPT), *args],
        cwd=tmp,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    marker = fakebin / "called"
    calls = marker.read_text().splitlines() if marker.exists() else []
    return Run(done.returncode, done.stdout, done.stderr, build, calls)


def dry_run(tmp: Path, *, stage: bool = False, **env: str) -> Run:
    return deploy(tmp, "--project", PROJECT, "--region", REGION, "--dry-run", stage=stage, **env)


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One dry run with the defaults, shared by the tests that only read it; it stages."""
    return dry_run(tmp_path_factory.mktemp("deploy"), stage=True)


TEMPLATE = 'Hi {first_name}, "{description}": didn\'t go through, #1 — reply STOP'


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One dry run configured only through the environment, every option set."""
    return deploy(
        tmp_path_factory.mktemp("deploy"),
        "--dry-run",
        GOOGLE_CLOUD_PROJECT="env-proj",
        REGION="europe-west1",
        STRIPE_API_KEY_VERSION="7",
        SLACK="1",
        MESSAGE_TEMPLATE=TEMPLATE,
        MESSAGE_TEMPLATE_ES="Hola {first_name}: responde STOP",
        ACTION_TEMPLATE="{first_name}, confirm {amount}: reply STOP to opt out",
        ACTION_TEMPLATE_ES="{first_name}, confirma {amount}: responde STOP",
        BRAND_NAME="Acme",
        TEXT_ON_ATTEMPTS="1,3",
        DRY_RUN="true",
        DEFAULT_PHONE_REGION="NO",
    )


def test_dry_run_succeeds_without_ever_calling_gcloud(plan: Run) -> None:
    assert plan.returncode == 0, plan.stderr
    assert plan.gcloud_calls == []


def test_dry_run_prints_the_full_ordered_plan(plan: Run) -> None:
    expected = [
        # The keys, checked before anything is created: from their secrets, assumed present.
        "gcloud secrets describe stripe-api-key",
        "gcloud secrets versions list stripe-api-key",
        "gcloud secrets describe linq-api-key",
        "gcloud secrets versions list linq-api-key",
        f"curl -G {STRIPE}/v1/webhook_endpoints -u sm://demo/stripe-api-key#<latest-enabled>: "
        "-d limit=1",
        f"curl -X POST {STRIPE}/v1/webhook_endpoints -u sm://demo/stripe-api-key#<latest-enabled>:",
        f"curl {LINQ}/v3/webhook-subscriptions -H Authorization: Bearer "
        "sm://demo/linq-api-key#<latest-enabled>",
        "gcloud services enable cloudfunctions.googleapis.com run.googleapis.com "
        "eventarc.googleapis.com pubsub.googleapis.com secretmanager.googleapis.com "
        "cloudbuild.googleapis.com artifactregistry.googleapis.com firestore.googleapis.com "
        "iam.googleapis.com cloudscheduler.googleapis.com logging.googleapis.com "
        "monitoring.googleapis.com",
        # The signing secrets, made holding the placeholder.
        "gcloud secrets describe stripe-webhook-secret",
        "gcloud secrets create stripe-webhook-secret --project=demo "
        "--replication-policy=automatic --data-file=-",
        "gcloud secrets describe linq-webhook-secret",
        "gcloud secrets create linq-webhook-secret --project=demo "
        "--replication-policy=automatic --data-file=-",
        "gcloud secrets versions list stripe-webhook-secret",
        # No connected account served: the Connect endpoint's secret only if one exists.
        "gcloud secrets describe stripe-connect-webhook-secret",
        "gcloud secrets describe slack-webhook-url",
        "gcloud secrets versions list linq-webhook-secret",
        f"gcloud pubsub topics describe {TOPIC}",
        f"gcloud pubsub topics create {TOPIC}",
        f"gcloud pubsub topics describe {DLQ}",
        f"gcloud pubsub topics create {DLQ}",
        f"gcloud pubsub topics describe {SWEEP}",
        f"gcloud pubsub topics create {SWEEP}",
        f"gcloud pubsub topics describe {LINQ_TOPIC}",
        f"gcloud pubsub topics create {LINQ_TOPIC}",
        f"gcloud pubsub topics describe {LINQ_DLQ}",
        f"gcloud pubsub topics create {LINQ_DLQ}",
        f"gcloud pubsub subscriptions describe {DLQ}-pull",
        f"gcloud pubsub subscriptions create {DLQ}-pull",
        f"gcloud pubsub subscriptions describe {LINQ_DLQ}-pull",
        f"gcloud pubsub subscriptions create {LINQ_DLQ}-pull",
        f"gcloud iam service-accounts describe dunning-ingest@{PROJECT}.iam.gserviceaccount.com",
        "gcloud iam service-accounts create dunning-ingest",
        f"gcloud iam service-accounts describe dunning-recover@{PROJECT}.iam.gserviceaccount.com",
        "gcloud iam service-accounts create dunning-recover",
        f"gcloud iam service-accounts describe dunning-release@{PROJECT}.iam.gserviceaccount.com",
        "gcloud iam service-accounts create dunning-release",
        "gcloud iam service-accounts describe "
        f"dunning-linq-intake@{PROJECT}.iam.gserviceaccount.com",
        "gcloud iam service-accounts create dunning-linq-intake",
        "gcloud iam service-accounts describe "
        f"dunning-linq-events@{PROJECT}.iam.gserviceaccount.com",
        "gcloud iam service-accounts create dunning-linq-events",
        f"gcloud iam service-accounts describe dunning-trigger@{PROJECT}.iam.gserviceaccount.com",
        "gcloud iam service-accounts create dunning-trigger",
        f"gcloud iam service-accounts describe dunning-build@{PROJECT}.iam.gserviceaccount.com",
        "gcloud iam service-accounts create dunning-build",
        "gcloud firestore databases describe --database=dunning",
        "gcloud firestore databases create --database=dunning",
        "gcloud firestore fields ttls list --collection-group=dunning_sends",
        "gcloud firestore fields ttls update expire_at --collection-group=dunning_sends",
        "gcloud firestore fields ttls list --collection-group=dunning_linq_events",
        "gcloud firestore fields ttls update expire_at --collection-group=dunning_linq_events",
        "gcloud firestore indexes composite list --database=dunning",
        "gcloud firestore indexes composite create --collection-group=dunning_sends",
        "gcloud firestore indexes composite create --collection-group=dunning_sends",
        f"gcloud pubsub topics add-iam-policy-binding {TOPIC}",
        "gcloud secrets add-iam-policy-binding stripe-webhook-secret",
        "gcloud secrets add-iam-policy-binding stripe-api-key",
        "gcloud secrets add-iam-policy-binding linq-api-key",
        f"gcloud projects add-iam-policy-binding {PROJECT}",
        f"gcloud projects add-iam-policy-binding {PROJECT}",
        f"gcloud pubsub topics add-iam-policy-binding {TOPIC}",
        f"gcloud pubsub topics add-iam-policy-binding {LINQ_TOPIC}",
        "gcloud secrets add-iam-policy-binding linq-webhook-secret",
        f"gcloud projects add-iam-policy-binding {PROJECT}",
        f"gcloud projects describe {PROJECT}",
        f"gcloud storage buckets describe {SOURCE_BUCKET}",
        f"gcloud storage buckets create {SOURCE_BUCKET}",
        f"gcloud artifacts repositories describe {IMAGE_REPOSITORY}",
        f"gcloud artifacts repositories create {IMAGE_REPOSITORY}",
        f"gcloud storage buckets add-iam-policy-binding {SOURCE_BUCKET}",
        f"gcloud artifacts repositories add-iam-policy-binding {IMAGE_REPOSITORY}",
        f"gcloud projects add-iam-policy-binding {PROJECT}",
        f"gcloud pubsub topics add-iam-policy-binding {DLQ}",
        f"gcloud pubsub topics add-iam-policy-binding {LINQ_DLQ}",
        "gcloud iam service-accounts add-iam-policy-binding "
        f"dunning-trigger@{PROJECT}.iam.gserviceaccount.com",
        "gcloud functions describe dunning-ingest",
        "gcloud functions deploy dunning-ingest",
        "gcloud functions describe dunning-recover",
        "gcloud functions deploy dunning-recover",
        "gcloud functions add-invoker-policy-binding dunning-recover",
        "gcloud functions describe dunning-release",
        "gcloud functions deploy dunning-release",
        "gcloud functions add-invoker-policy-binding dunning-release",
        f"gcloud scheduler jobs describe {SWEEP}",
        f"gcloud scheduler jobs create pubsub {SWEEP}",
        "gcloud functions describe dunning-linq-intake",
        "gcloud functions deploy dunning-linq-intake",
        "gcloud functions describe dunning-linq-events",
        "gcloud functions deploy dunning-linq-events",
        "gcloud functions add-invoker-policy-binding dunning-linq-events",
        "gcloud functions describe dunning-recover",
        "gcloud eventarc triggers describe <trigger>",
        f"gcloud pubsub subscriptions add-iam-policy-binding {SUBSCRIPTION}",
        f"gcloud pubsub subscriptions update {SUBSCRIPTION}",
        "gcloud functions describe dunning-linq-events",
        "gcloud eventarc triggers describe <trigger>",
        f"gcloud pubsub subscriptions add-iam-policy-binding {SUBSCRIPTION}",
        f"gcloud pubsub subscriptions update {SUBSCRIPTION}",
        "gcloud logging metrics describe dunning_recovered_amount",
        "gcloud logging metrics create dunning_recovered_amount",
        "gcloud logging metrics describe dunning_results",
        "gcloud logging metrics create dunning_results",
        "gcloud monitoring dashboards list",
        "gcloud monitoring dashboards create",
        # Live: the endpoint and the subscription made, their secrets stored, the intakes
        # deployed again pinned to them.
        "gcloud functions describe dunning-ingest",
        "gcloud functions describe dunning-linq-intake",
        f"curl -G {STRIPE}/v1/webhook_endpoints -u sm://demo/stripe-api-key#<latest-enabled>: "
        "-d limit=100",
        f"curl {STRIPE}/v1/webhook_endpoints -u sm://demo/stripe-api-key#<latest-enabled>: "
        "-d url=<ingest-url>",
        "gcloud secrets versions add stripe-webhook-secret --project=demo --data-file=-",
        f"curl {LINQ}/v3/webhook-subscriptions -H Authorization: Bearer "
        "sm://demo/linq-api-key#<latest-enabled>",
        f"curl {LINQ}/v3/webhook-subscriptions -H Authorization: Bearer "
        "sm://demo/linq-api-key#<latest-enabled> --json",
        "gcloud secrets versions add linq-webhook-secret --project=demo --data-file=-",
        "gcloud functions describe dunning-ingest",
        "gcloud functions deploy dunning-ingest",
        "gcloud functions describe dunning-linq-intake",
        "gcloud functions deploy dunning-linq-intake",
    ]
    printed = [" ".join(argv) for argv in plan.commands]
    assert len(printed) == len(expected), "\n".join(printed)
    for got, want in zip(printed, expected, strict=True):
        assert got == want or got.startswith(f"{want} "), (got, want)


def test_every_command_names_the_project(plan: Run) -> None:
    for argv in plan.find():
        assert f"--project={PROJECT}" in argv or argv[1:4:2] == ["projects", PROJECT], argv


def test_ingest_deploys_as_a_public_http_function(plan: Run) -> None:
    argv = plan.deployed("dunning-ingest")
    assert {"--gen2", "--trigger-http", "--allow-unauthenticated"} <= set(argv)
    assert flag(argv, "--runtime") == "python313"
    assert flag(argv, "--region") == REGION
    assert flag(argv, "--entry-point") == "stripe_webhook"
    assert flag(argv, "--source") == str(plan.build / "ingest")
    assert f"serviceAccount:{flag(argv, '--service-account')}" == INGEST_SA
    assert flag(argv, "--timeout") == "30s"
    assert function_env(argv) == {"GOOGLE_CLOUD_PROJECT": PROJECT, "PUBSUB_TOPIC": TOPIC}
    assert re.fullmatch(r"deploy-hash=[0-9a-f]{32}", flag(argv, "--update-labels"))


def test_recover_deploys_on_the_topic_with_retries(plan: Run) -> None:
    argv = plan.one("functions", "deploy", "dunning-recover")
    assert {"--gen2", "--retry"} <= set(argv)
    assert flag(argv, "--trigger-topic") == TOPIC
    assert flag(argv, "--runtime") == "python313"
    assert flag(argv, "--entry-point") == "recover_payment"
    assert flag(argv, "--source") == str(plan.build / "recover")
    assert f"serviceAccount:{flag(argv, '--service-account')}" == RECOVER_SA
    assert f"serviceAccount:{flag(argv, '--trigger-service-account')}" == TRIGGER_SA
    assert flag(argv, "--concurrency") == "1"
    # One Stripe request per run, each run at least ~0.5 s: far below 25 requests/s.
    assert 1 <= int(flag(argv, "--max-instances")) <= 12


def test_subscriber_timeouts_are_below_the_subscription_ack_deadline(plan: Run) -> None:
    for name in ("dunning-recover", "dunning-linq-events"):
        timeout = flag(plan.one("functions", "deploy", name), "--timeout")
        for update in plan.find("pubsub", "subscriptions", "update"):
            assert int(timeout.removesuffix("s")) < int(flag(update, "--ack-deadline"))


def secret_refs(argv: list[str]) -> dict[str, str]:
    """What a deploy's --set-secrets gives each variable: SECRET:VERSION."""
    if not any(arg.startswith("--set-secrets=") for arg in argv):
        return {}
    return dict(pair.split("=", 1) for pair in flag(argv, "--set-secrets").split(","))


def test_secrets_are_pinned_to_versions_never_latest(plan: Run) -> None:
    first = {}
    for argv in plan.find("functions", "deploy"):
        first = secret_refs(argv) | first
    assert first == {
        "STRIPE_WEBHOOK_SECRET": "stripe-webhook-secret:<latest-enabled>",
        "STRIPE_API_KEY": "stripe-api-key:<latest-enabled>",
        "LINQ_API_KEY": "linq-api-key:<latest-enabled>",
        "LINQ_WEBHOOK_SECRET": "linq-webhook-secret:<latest-enabled>",
    }
    assert ":latest" not in plan.stdout


def test_the_intakes_are_deployed_again_pinned_to_the_new_secrets_and_nothing_else(
    plan: Run,
) -> None:
    for function, variable in (
        ("dunning-ingest", "STRIPE_WEBHOOK_SECRET"),
        ("dunning-linq-intake", "LINQ_WEBHOOK_SECRET"),
    ):
        first, again = plan.find("functions", "deploy", function)
        secret = secret_refs(first)[variable].split(":")[0]
        assert secret_refs(again) == {variable: f"{secret}:<new-version>"}
        # Only the version (and so the deploy-hash) differs.
        differs = [(a, b) for a, b in zip(first, again, strict=True) if a != b]
        assert [a.split("=", 1)[0] for a, _ in differs] == ["--set-secrets", "--update-labels"]


def test_version_from_the_environment_is_pinned(tuned: Run) -> None:
    assert tuned.returncode == 0, tuned.stderr
    secrets = flag(tuned.one("functions", "deploy", "dunning-recover"), "--set-secrets")
    assert "STRIPE_API_KEY=stripe-api-key:7" in secrets.split(",")
    assert tuned.find("secrets", "versions", "describe", "7")
    assert not tuned.find("secrets", "versions", "list", "stripe-api-key")


def test_latest_is_refused_as_a_version(tmp_path: Path) -> None:
    run = dry_run(tmp_path, LINQ_API_KEY_VERSION="latest")
    assert run.returncode == 2
    assert "LINQ_API_KEY_VERSION" in run.stderr
    assert run.stdout == ""


def test_slack_secret_is_added_when_asked_for(tuned: Run) -> None:
    secrets = flag(tuned.one("functions", "deploy", "dunning-recover"), "--set-secrets")
    assert "SLACK_WEBHOOK_URL=slack-webhook-url:<latest-enabled>" in secrets.split(",")
    # The Linq events subscriber sends its notes to the same Slack.
    secrets = flag(tuned.one("functions", "deploy", "dunning-linq-events"), "--set-secrets")
    assert secrets == "SLACK_WEBHOOK_URL=slack-webhook-url:<latest-enabled>"
    grants = tuned.find("secrets", "add-iam-policy-binding", "slack-webhook-url")
    assert sorted(flag(grant, "--member") for grant in grants) == [
        "serviceAccount:dunning-linq-events@env-proj.iam.gserviceaccount.com",
        "serviceAccount:dunning-recover@env-proj.iam.gserviceaccount.com",
    ]


def test_each_function_account_gets_only_its_own_grants(plan: Run) -> None:
    # (service, resource, member, role) for every add-iam-policy-binding.
    grants = {
        (argv[1], argv[argv.index(BIND) + 1], flag(argv, "--member"), flag(argv, "--role"))
        for argv in plan.commands
        if BIND in argv
    }
    assert {g for g in grants if g[2] == INGEST_SA} == {
        ("pubsub", TOPIC, INGEST_SA, "roles/pubsub.publisher"),
        ("secrets", "stripe-webhook-secret", INGEST_SA, "roles/secretmanager.secretAccessor"),
    }
    assert {g for g in grants if g[2] == RECOVER_SA} == {
        ("secrets", "stripe-api-key", RECOVER_SA, "roles/secretmanager.secretAccessor"),
        ("secrets", "linq-api-key", RECOVER_SA, "roles/secretmanager.secretAccessor"),
        ("projects", PROJECT, RECOVER_SA, "roles/datastore.user"),
    }
    assert {g for g in grants if g[2] == BUILD_SA} == {
        ("storage", SOURCE_BUCKET, BUILD_SA, "roles/storage.objectViewer"),
        ("artifacts", IMAGE_REPOSITORY, BUILD_SA, "roles/artifactregistry.writer"),
        ("projects", PROJECT, BUILD_SA, "roles/logging.logWriter"),
    }


def test_the_build_account_reads_one_bucket_and_pushes_to_one_repository(plan: Run) -> None:
    """Reading every object of the project and pushing to every repository of it was more than a
    build needs: its source is in the function-source bucket of the region, its image goes to
    gcf-artifacts. Logs Writer is granted on a project at the narrowest."""
    project_wide = {
        flag(argv, "--role")
        for argv in plan.find("projects", "add-iam-policy-binding", PROJECT)
        if flag(argv, "--member") == BUILD_SA
    }
    assert project_wide == {"roles/logging.logWriter"}
    [bucket] = plan.find("storage", "buckets", "add-iam-policy-binding")
    assert bucket[4] == SOURCE_BUCKET
    assert (flag(bucket, "--member"), flag(bucket, "--role")) == (
        BUILD_SA,
        "roles/storage.objectViewer",
    )
    [repository] = plan.find("artifacts", "repositories", "add-iam-policy-binding")
    assert repository[4] == IMAGE_REPOSITORY
    assert flag(repository, "--location") == REGION
    assert (flag(repository, "--member"), flag(repository, "--role")) == (
        BUILD_SA,
        "roles/artifactregistry.writer",
    )
    # No account holds either role on the whole project.
    for argv in plan.find("projects", "add-iam-policy-binding"):
        assert flag(argv, "--role") not in {
            "roles/storage.objectViewer",
            "roles/artifactregistry.writer",
        }, argv


def test_the_bucket_and_the_repository_exist_before_they_are_granted(plan: Run) -> None:
    """On a new project Cloud Functions makes them on its first deploy, whose build already
    needs the grants: deploy.sh makes them first."""

    def first(*words: str) -> int:
        return next(i for i, argv in enumerate(plan.commands) if argv[: len(words)] == list(words))

    deployed = first("gcloud", "functions", "deploy")
    for kind, resource in (("buckets", SOURCE_BUCKET), ("repositories", IMAGE_REPOSITORY)):
        service = "storage" if kind == "buckets" else "artifacts"
        created = first("gcloud", service, kind, "create", resource)
        assert first("gcloud", service, kind, "describe", resource) < created
        assert created < first("gcloud", service, kind, BIND, resource) < deployed
    bucket = plan.one("storage", "buckets", "create")
    assert flag(bucket, "--location") == REGION
    assert {"--uniform-bucket-level-access", "--public-access-prevention"} <= set(bucket)
    repository = plan.one("artifacts", "repositories", "create")
    assert flag(repository, "--location") == REGION
    assert flag(repository, "--repository-format") == "docker"


def test_builds_run_as_the_build_account_not_the_default_compute_one(plan: Run) -> None:
    assert plan.one("iam", "service-accounts", "create", "dunning-build")
    for function in ("dunning-ingest", "dunning-recover"):
        argv = plan.deployed(function)
        assert flag(argv, "--build-service-account") == (
            f"projects/{PROJECT}/serviceAccounts/{BUILD_SA.removeprefix('serviceAccount:')}"
        )


def test_recover_takes_internal_traffic_only_and_ingest_stays_public(plan: Run) -> None:
    recover = plan.one("functions", "deploy", "dunning-recover")
    assert flag(recover, "--ingress-settings") == "internal-only"
    assert "--allow-unauthenticated" not in recover
    ingest = plan.deployed("dunning-ingest")
    assert not any(arg.startswith("--ingress-settings=") for arg in ingest)


def test_recover_may_use_only_the_ledger_database(plan: Run) -> None:
    [argv] = [
        argv
        for argv in plan.find("projects", "add-iam-policy-binding", PROJECT)
        if flag(argv, "--member") == RECOVER_SA
    ]
    condition = flag(argv, "--condition")
    assert condition.startswith(
        f'expression=resource.name=="projects/{PROJECT}/databases/dunning",title='
    )


def test_ledger_database_gets_a_ttl_policy_on_every_collection_that_expires(plan: Run) -> None:
    from shared.adapters import ledger

    create = plan.one("firestore", "databases", "create")
    assert flag(create, "--database") == "dunning"
    assert flag(create, "--location") == REGION
    assert flag(create, "--type") == "firestore-native"
    ttls = plan.find("firestore", "fields", "ttls", "update", "expire_at")
    # The entries and the Linq webhook ids acted on carry expire_at; nothing else does.
    groups = [flag(ttl, "--collection-group") for ttl in ttls]
    assert groups == [ledger.COLLECTION, ledger.LINQ_EVENTS]
    assert all("--enable-ttl" in ttl for ttl in ttls)
    source = Path(ledger.__file__).read_text()
    assert source.count('"expire_at": now + RETENTION') == 1  # the Linq event's claim
    assert "expire_at=now + RETENTION" in source  # an entry's, and the payment's record


def test_trigger_account_may_invoke_the_recover_function(plan: Run) -> None:
    argv = plan.one("functions", "add-invoker-policy-binding", "dunning-recover")
    assert flag(argv, "--member") == TRIGGER_SA


def test_dead_letter_topic_keeps_messages_in_a_pull_subscription(plan: Run) -> None:
    argv = plan.one("pubsub", "subscriptions", "create", f"{DLQ}-pull")
    assert flag(argv, "--topic") == DLQ
    assert flag(argv, "--message-retention-duration") == "7d"
    assert flag(argv, "--expiration-period") == "never"


def test_eventarc_subscriptions_get_dead_lettering_and_backoff(plan: Run) -> None:
    """Recover's subscription dead-letters to its topic's letters, linq events' to its own."""
    updates = plan.find("pubsub", "subscriptions", "update", SUBSCRIPTION)
    assert [flag(argv, "--dead-letter-topic") for argv in updates] == [DLQ, LINQ_DLQ]
    for argv in updates:
        assert flag(argv, "--max-delivery-attempts") == "10"
        assert flag(argv, "--min-retry-delay") == "10s"
        assert flag(argv, "--max-retry-delay") == "600s"


def test_pubsub_service_agent_can_dead_letter(plan: Run) -> None:
    publish = plan.one("pubsub", "topics", "add-iam-policy-binding", DLQ)
    assert (flag(publish, "--member"), flag(publish, "--role")) == (
        PUBSUB_AGENT,
        "roles/pubsub.publisher",
    )
    for subscribe in plan.find("pubsub", "subscriptions", "add-iam-policy-binding", SUBSCRIPTION):
        assert (flag(subscribe, "--member"), flag(subscribe, "--role")) == (
            PUBSUB_AGENT,
            "roles/pubsub.subscriber",
        )


def watch_command(stdout: str) -> list[str]:
    """The command the run ends with, to watch the result lines."""
    tail = stdout.rsplit("\nWatch the result lines (one per outcome):\n", 1)[1]
    [line] = tail.splitlines()
    return shlex.split(line)


def test_ends_with_what_is_live_and_the_command_to_watch_the_result_lines(plan: Run) -> None:
    tail = plan.stdout.rsplit("\n+ ", 1)[1]
    assert "Stripe endpoint <endpoint-id> -> <ingest-url>" in tail
    assert "signing secret: stripe-webhook-secret version <new-version>" in tail
    assert "Linq subscription <subscription-id> -> <linq-intake-url>" in tail
    assert f"gcloud pubsub subscriptions pull {DLQ}-pull --project={PROJECT}" in tail
    argv = watch_command(plan.stdout)
    assert argv[:3] == ["gcloud", "logging", "read"]
    assert f"--project={PROJECT}" in argv
    # The filter takes every result line of every function deployed, and nothing else.
    services = set(re.findall(r'"(dunning-[a-z-]+)"', argv[3]))
    assert services == {a[3] for a in plan.find("functions", "deploy")}
    used = set(re.findall(r"jsonPayload\.(\w+)", argv[3] + flag(argv, "--format")))
    assert "action" in used
    assert used <= result_line_fields()


def test_ingest_is_staged_with_only_what_it_imports(plan: Run) -> None:
    staged = plan.build / "ingest"
    files = {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()}
    assert {
        "main.py",
        "requirements.txt",
        "shared/__init__.py",
        "shared/adapters/publisher.py",
    } <= files
    assert {"shared/adapters/webhook.py", "shared/workflow/settings.py"} <= files
    assert not files & {
        "shared/adapters/linq.py",
        "shared/workflow/recovery.py",
        "shared/adapters/slack.py",
    }
    assert all(f.startswith("shared/") or f in {"main.py", "requirements.txt"} for f in files)
    assert (staged / "main.py").read_bytes() == (ROOT / "ingest_fn" / "main.py").read_bytes()


def test_recover_is_staged_with_only_what_it_imports(plan: Run) -> None:
    staged = plan.build / "recover"
    files = {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()}
    assert {
        "main.py",
        "requirements.txt",
        "shared/workflow/recovery.py",
        "shared/adapters/linq.py",
        # release_deferred shares the recover function's source and publishes the released.
        "shared/workflow/release.py",
        "shared/adapters/publisher.py",
    } <= files
    assert "shared/adapters/webhook.py" not in files
    assert all(f.startswith("shared/") or f in {"main.py", "requirements.txt"} for f in files)
    assert (staged / "main.py").read_bytes() == (ROOT / "recover_fn" / "main.py").read_bytes()


def requirements(path: Path) -> dict[str, str]:
    """name -> version of a staged requirements.txt."""
    return {name: pin.version for name, pin in lock.read(path).items()}


def test_staged_requirements_pin_every_package_as_ci_tested_it(plan: Run) -> None:
    pinned = {name: pin.version for name, pin in lock.read().items()}
    ingest = requirements(plan.build / "ingest" / "requirements.txt")
    recover = requirements(plan.build / "recover" / "requirements.txt")
    assert {"functions-framework", "google-cloud-pubsub", "stripe"} <= ingest.keys()
    assert {"functions-framework", "stripe", "requests", "phonenumbers", "regex"} <= recover.keys()
    assert "google-auth" in recover  # the send ledger imports it directly
    assert "tzdata" in recover  # zoneinfo's database, whatever the runtime image holds
    assert "tzdata" not in ingest
    # Every log line's masking finds numbers with libphonenumber's matcher, in ingest too.
    assert "phonenumbers" in ingest
    assert {"requests", "google-auth"} <= ingest.keys()  # the REST publisher imports both
    # What the direct dependencies bring along: nothing is left for Cloud Build to resolve.
    transitive = {"flask", "werkzeug", "gunicorn", "urllib3", "certifi", "protobuf", "grpcio"}
    assert transitive <= ingest.keys()
    assert transitive <= recover.keys()
    dev_only = {"pytest", "ruff", "hypothesis", "pip-audit", "import-linter", "publicsuffixlist"}
    for staged in (ingest, recover):
        assert not dev_only & staged.keys()
        assert all(pinned[name] == version for name, version in staged.items())


def test_every_staged_requirement_carries_the_lock_s_hashes(plan: Run) -> None:
    """A hash on every entry puts Cloud Build's pip in hash-checking mode: it installs only files
    whose hash is listed, refuses any package that is not, and takes wheels only. The hashes are
    the lock's, every file of the release: the runtime's wheels among them (./dev audit)."""
    pins = lock.read()
    for function in ("ingest", "recover"):
        text = (plan.build / function / "requirements.txt").read_text()
        entries = [
            " ".join(line.split())
            for line in text.replace("\\\n", " ").splitlines()
            if line.strip() and not line.startswith("#")
        ]
        assert entries[0] == "--only-binary=:all:"
        assert len(entries) > 40
        for entry in entries[1:]:
            pinned, *hashes = entry.split(" ")
            name, version = pinned.split("==")
            assert hashes, entry
            assert all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in hashes), entry
            pin = pins[canonicalize_name(name)]
            assert version == pin.version
            assert [h.removeprefix("--hash=") for h in hashes] == list(pin.hashes)


def test_staged_requirements_are_the_closure_of_the_installed_metadata(plan: Run) -> None:
    from tools import stage

    for function in ("ingest", "recover"):
        staged = requirements(plan.build / function / "requirements.txt")
        # Each package's own requirements (for python 3.13 on Linux) are staged too.
        for name in staged:
            for needed in lock.requires(name, frozenset(), stage.TARGET):
                assert canonicalize_name(needed.name) in staged, (function, name, needed)


def test_audit_audits_exactly_what_is_shipped(plan: Run) -> None:
    from tools import audit

    staged = {
        f"{name}=={version}"
        for function in ("ingest", "recover")
        for name, version in requirements(plan.build / function / "requirements.txt").items()
    }
    assert audit.shipped() == sorted(staged)


def test_staging_targets_the_deployed_runtime(plan: Run) -> None:
    from tools import stage

    runtime = flag(plan.deployed("dunning-ingest"), "--runtime")
    assert runtime == "python" + stage.TARGET_PYTHON.replace(".", "")


def test_recover_plain_settings_go_through_an_env_vars_file(tuned: Run) -> None:
    argv = tuned.one("functions", "deploy", "dunning-recover")
    # Beside the source, so it is not uploaded with it.
    assert Path(flag(argv, "--env-vars-file")).parent == tuned.build
    # Double-quoted JSON strings: YAML reads them back unchanged ("NO" stays a string).
    assert function_env(argv) == {
        "GOOGLE_CLOUD_PROJECT": "env-proj",
        "FIRESTORE_DATABASE": "dunning",
        "MESSAGE_TEMPLATE": TEMPLATE,
        "MESSAGE_TEMPLATE_ES": "Hola {first_name}: responde STOP",
        "ACTION_TEMPLATE": "{first_name}, confirm {amount}: reply STOP to opt out",
        "ACTION_TEMPLATE_ES": "{first_name}, confirma {amount}: responde STOP",
        "BRAND_NAME": "Acme",
        "TEXT_ON_ATTEMPTS": "1,3",
        "DRY_RUN": "true",
        "DEFAULT_PHONE_REGION": "NO",
    }


def test_recover_always_gets_the_project_and_the_ledger_database(plan: Run) -> None:
    env_file = Path(flag(plan.one("functions", "deploy", "dunning-recover"), "--env-vars-file"))
    assert (
        env_file.read_text()
        == f'GOOGLE_CLOUD_PROJECT: "{PROJECT}"\nFIRESTORE_DATABASE: "dunning"\n'
    )


def test_missing_project_and_region_is_a_usage_error(tmp_path: Path) -> None:
    run = deploy(tmp_path, "--dry-run")
    assert run.returncode == 2
    assert "--project" in run.stderr
    assert "--region" in run.stderr
    assert run.stdout == ""


def test_project_and_region_may_come_from_the_environment(tuned: Run) -> None:
    assert flag(tuned.deployed("dunning-ingest"), "--region") == "europe-west1"
    assert "--project=env-proj" in tuned.one("services", "enable")


def test_help_exits_zero_with_usage_and_documents_the_intakes_settings(tmp_path: Path) -> None:
    run = deploy(tmp_path, "--help")
    assert run.returncode == 0
    assert "--project" in run.stdout
    assert "--dry-run" in run.stdout
    assert "STRIPE_CONNECT_ACCOUNTS" in run.stdout
    assert "WEBHOOK_BODY_SECONDS" in run.stdout


# --- live in one command: the Stripe endpoint and the Linq subscription ------------------------

FAKE_SECRETS = ROOT / "tests" / "fake_gcloud_secrets.py"
INGEST_URL = "https://dunning-ingest-abc.a.run.app"
LINQ_TARGET = "https://dunning-linq-intake-abc.a.run.app?version=2026-02-03"
EVENTS = ["invoice.payment_failed", "invoice.paid", "invoice.payment_action_required"]
NO_WEBHOOKS_KEY, READ_WEBHOOKS_KEY = "rk_test_invoicesOnly", "rk_test_readsHooks"
# The gcloud commands that change a project (the dead-letter policy, re-applied on every run
# because a redeploy may reset it, changes nothing the second time).
CHANGES = (" create ", "functions deploy ", "ttls update ")


@dataclass
class World:
    """A project to deploy to: the stateful gcloud, whose secrets are the Secret Manager
    stand-in's, and the Stripe and Linq stand-ins, with keys made for this test."""

    tmp: Path
    stripe: StripeStandin
    linq: LinqStandin
    secrets: SecretManagerStandin
    keys: dict[str, str]

    def deploy(self, **env: str) -> Run:
        """deploy.sh --project demo --region us-central1, its Python recording its arguments."""
        return deploy(
            self.tmp,
            "--project",
            PROJECT,
            "--region",
            REGION,
            fake=STATEFUL,
            STRIPE_API_BASE=self.stripe.url,
            LINQ_API_BASE=self.linq.url,
            SECRET_MANAGER_API_BASE=self.secrets.url,
            FAKE_SECRETS=str(FAKE_SECRETS),
            **env,
        )

    def logged(self, name: str) -> list[str]:
        path = self.tmp / "bin" / name
        return path.read_text().splitlines() if path.exists() else []

    @property
    def calls(self) -> list[str]:
        """Every gcloud command, its arguments joined by spaces."""
        return self.logged("state/calls")

    def deploys(self, function: str) -> list[str]:
        """What each deploy of `function` set with --set-secrets, in order."""
        return [
            flag(call.split(" "), "--set-secrets")
            for call in self.calls
            if call.startswith(f"functions deploy {function} ")
        ]

    def stored(self, secret: str) -> list[str]:
        """Every version of `secret`, oldest first."""
        base = f"{self.secrets.url}/v1/projects/{PROJECT}/secrets/{secret}"
        listed = requests.get(f"{base}/versions", timeout=5).json().get("versions", [])
        values = []
        for version in reversed(listed):
            answer = requests.get(f"{self.secrets.url}/v1/{version['name']}:access", timeout=5)
            values.append(base64.b64decode(answer.json()["payload"]["data"]).decode())
        return values

    def endpoints(self) -> list[dict]:
        auth = {"Authorization": f"Bearer {self.keys['STRIPE_API_KEY']}"}
        listed = requests.get(f"{self.stripe.url}/v1/webhook_endpoints", headers=auth, timeout=5)
        return listed.json()["data"]

    def subscriptions(self) -> list[dict]:
        auth = {"Authorization": f"Bearer {self.keys['LINQ_API_KEY']}"}
        listed = requests.get(f"{self.linq.url}/v3/webhook-subscriptions", headers=auth, timeout=5)
        return listed.json()["subscriptions"]

    def answered(self, server: StripeStandin | LinqStandin, endpoint: str) -> list[dict]:
        """The journal of `endpoint`'s successful calls: requests and answers."""
        return [e for e in server.requests() if e["endpoint"] == endpoint and e["status"] < 300]

    def endpoint_secrets(self) -> list[str]:
        return [e["response"]["secret"] for e in self.answered(self.stripe, CREATE_ENDPOINT)]

    def subscription_secrets(self) -> list[str]:
        created = self.answered(self.linq, "POST /v3/webhook-subscriptions")
        return [entry["response"]["signing_secret"] for entry in created]

    def vendor_writes(self) -> list[str]:
        """Every call that changed the Stripe or the Linq account."""
        return [
            c for c in self.changes_since() if c.startswith(("POST /v1/w", "DELETE", "POST /v3"))
        ]

    def marks(self) -> tuple[int, ...]:
        servers = (self.stripe, self.linq, self.secrets)
        return (len(self.calls), *(len(server.requests()) for server in servers))

    def changes_since(self, marks: tuple[int, ...] = (0, 0, 0, 0)) -> list[str]:
        """What changed the project or a vendor's account since `marks` (by default, ever): the
        gcloud commands that change something, the vendors' writes that succeeded."""
        calls, *journals = marks
        changed = [call for call in self.calls[calls:] if any(c in f"{call} " for c in CHANGES)]
        for server, seen in zip((self.stripe, self.linq, self.secrets), journals, strict=True):
            changed += [
                entry["endpoint"]
                for entry in server.requests()[seen:]
                if entry["method"] != "GET" and (entry["status"] or 500) < 300
            ]
        return changed


CREATE_ENDPOINT = "POST /v1/webhook_endpoints"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    keys = {
        "STRIPE_API_KEY": f"sk_test_{secrets.token_hex(12)}",
        "LINQ_API_KEY": secrets.token_urlsafe(24),
    }
    restricted = {NO_WEBHOOKS_KEY: ["rak_invoice_read"], READ_WEBHOOKS_KEY: ["rak_webhook_read"]}
    with (
        StripeStandin(api_keys=[keys["STRIPE_API_KEY"]], restricted_keys=restricted) as stripe,
        LinqStandin(tokens=[keys["LINQ_API_KEY"]]) as linq,
        SecretManagerStandin() as secret_manager,
    ):
        yield World(tmp_path, stripe, linq, secret_manager, keys)


def placeholders(world: World, **versions: list[str]) -> None:
    """The project's secrets as an earlier deployment left them."""
    world.secrets.load(
        {
            "secrets": {
                f"projects/{PROJECT}/secrets/{name.replace('_', '-')}": dict(
                    enumerate(values, start=1)
                )
                for name, values in versions.items()
            }
        }
    )


def test_one_command_goes_live_and_a_second_run_changes_nothing(world: World) -> None:
    first = world.deploy(**world.keys)
    assert first.returncode == 0, first.stderr
    [endpoint] = world.endpoints()
    assert (endpoint["url"], endpoint["enabled_events"], endpoint["api_version"]) == (
        INGEST_URL,
        EVENTS,
        "2026-10-28.endive",
    )
    [created] = world.answered(world.stripe, CREATE_ENDPOINT)
    assert "connect" not in created["body"]
    assert created["body"]["metadata[connect]"] == ["false"]
    [subscription] = world.subscriptions()
    assert subscription["target_url"] == LINQ_TARGET
    # The keys stored from their values; each signing secret as the vendor gave it, once.
    assert world.stored("stripe-api-key") == [world.keys["STRIPE_API_KEY"]]
    assert world.stored("linq-api-key") == [world.keys["LINQ_API_KEY"]]
    assert world.stored("stripe-webhook-secret") == ["not-set-yet", *world.endpoint_secrets()]
    assert world.stored("linq-webhook-secret") == ["not-set-yet", *world.subscription_secrets()]
    # The intakes went up with the placeholder, then again pinned to the vendors' secrets.
    assert world.deploys("dunning-ingest") == [
        "STRIPE_WEBHOOK_SECRET=stripe-webhook-secret:1",
        "STRIPE_WEBHOOK_SECRET=stripe-webhook-secret:2",
    ]
    assert world.deploys("dunning-linq-intake") == [
        "LINQ_WEBHOOK_SECRET=linq-webhook-secret:1",
        "LINQ_WEBHOOK_SECRET=linq-webhook-secret:2",
    ]
    assert world.deploys("dunning-recover") == [
        "STRIPE_API_KEY=stripe-api-key:1,LINQ_API_KEY=linq-api-key:1"
    ]
    assert f"Stripe endpoint {endpoint['id']} -> {INGEST_URL}" in first.stdout
    assert f"events: {', '.join(EVENTS)}\n" in first.stdout
    assert "signing secret: stripe-webhook-secret version 2" in first.stdout
    assert f"Linq subscription {subscription['id']} -> " in first.stdout
    assert "Stripe in test mode" in first.stdout
    assert watch_command(first.stdout)[:3] == ["gcloud", "logging", "read"]

    # Again with the keys, then without them (read from their secrets): nothing changes.
    for keys in (world.keys, {}):
        marks = world.marks()
        again = world.deploy(**keys)
        assert again.returncode == 0, again.stderr
        assert world.changes_since(marks) == []
        assert world.endpoints() == [endpoint]
        assert world.subscriptions() == [subscription]
        assert "signing secret: stripe-webhook-secret version 2" in again.stdout
        assert "dunning-ingest is up to date" in again.stderr
        # A key given as its value while its secret exists is not stored again: said so.
        note = "secret stripe-api-key exists: the functions get its version 1, not the value of"
        assert (note in again.stderr) == bool(keys)
    assert world.stored("stripe-api-key") == [world.keys["STRIPE_API_KEY"]]


def test_no_key_or_signing_secret_reaches_a_command_line_the_output_or_a_file(
    world: World,
) -> None:
    run = world.deploy(**world.keys, STRIPE_CONNECT_ACCOUNTS="*")
    assert run.returncode == 0, run.stderr
    values = [
        *world.keys.values(),
        *world.endpoint_secrets(),
        *world.subscription_secrets(),
    ]
    assert len(values) == 5  # the keys, both endpoints' secrets, the subscription's
    # Every command deploy.sh ran through gcloud and Python (what ps shows), what it printed,
    # and every file it or the fake gcloud wrote (the staged functions, their env files).
    places = {
        "gcloud's arguments": "\n".join(world.calls),
        "python's arguments": "\n".join(world.logged("python-argv")),
        "stdout": run.stdout,
        "stderr": run.stderr,
    }
    for path in world.tmp.rglob("*"):
        if path.is_file():
            places[str(path)] = path.read_text(errors="replace")
    assert len(world.logged("python-argv")) >= 4  # deploy_env, stage, check, connect
    for value in values:
        for place, text in places.items():
            assert value not in text, place
    # They reached Secret Manager, and nothing else of theirs did.
    assert world.stored("stripe-api-key") == [world.keys["STRIPE_API_KEY"]]


@pytest.mark.parametrize(
    ("keys", "reason"),
    [
        (
            {"STRIPE_API_KEY": "sk_test_unknownKey1234"},
            "Invalid API Key provided: sk_test_****1234",
        ),
        ({"STRIPE_API_KEY": NO_WEBHOOKS_KEY}, "the 'rak_webhook_read' permission"),
        # May read endpoints but not make one: Stripe refuses an empty create with 403.
        ({"STRIPE_API_KEY": READ_WEBHOOKS_KEY}, "the 'rak_webhook_write' permission"),
        ({"LINQ_API_KEY": "not-a-linq-token"}, "LINQ_API_KEY: Linq 401"),
        # No key, and no secret to deploy one from.
        (
            {"LINQ_API_KEY": ""},
            "secret linq-api-key does not exist in project demo (or you cannot read it): set "
            "LINQ_API_KEY to the key",
        ),
        (
            {"STRIPE_API_KEY": "sm://demo/nowhere"},
            "secret nowhere, which STRIPE_API_KEY names, does not exist in project demo",
        ),
    ],
)
def test_a_key_that_cannot_serve_stops_the_run_before_anything_is_created(
    world: World, keys: dict[str, str], reason: str
) -> None:
    run = world.deploy(**{**world.keys, **keys})
    asked = bool(world.stripe.requests())
    assert run.returncode == 1
    assert reason in run.stderr
    # Said once Stripe and Linq were asked; a missing secret stops the run before that.
    assert ("nothing was created" in run.stderr) == asked
    # Lookups only: not an API enabled, not a secret made, nothing at Stripe or Linq.
    assert not [call for call in world.calls if not call.startswith("secrets describe ")]
    assert world.changes_since() == []
    assert (world.endpoints(), world.subscriptions()) == ([], [])
    for value in filter(None, {**world.keys, **keys}.values()):
        assert value not in run.stdout + run.stderr


ACCOUNT_SECRET_NAME, CONNECT_SECRET_NAME = "stripe-webhook-secret", "stripe-connect-webhook-secret"
DELETE_ENDPOINT = "DELETE /v1/webhook_endpoints/{id}"


def ingest_pinned(account: int, connect: int | None = None) -> str:
    """The ingest function's --set-secrets, pinned to these versions."""
    pinned = f"STRIPE_WEBHOOK_SECRET={ACCOUNT_SECRET_NAME}:{account}"
    if connect is not None:
        pinned += f",STRIPE_CONNECT_WEBHOOK_SECRET={CONNECT_SECRET_NAME}:{connect}"
    return pinned


@pytest.mark.parametrize(
    ("failing", "connect"),
    [
        ("storing its secret", False),
        ("Secret Manager dropping the connection", False),
        # The account endpoint's secret stored first: it is kept, the Connect endpoint deleted.
        ("storing the Connect endpoint's secret", True),
    ],
)
def test_an_endpoint_whose_secret_could_not_be_stored_is_deleted_and_the_next_run_is_clean(
    world: World, failing: str, connect: bool
) -> None:
    served = {"STRIPE_CONNECT_ACCOUNTS": "*"} if connect else {}
    secret = CONNECT_SECRET_NAME if connect else ACCOUNT_SECRET_NAME
    # Made by an earlier deployment: the only version added to it is the endpoint's secret.
    placeholders(world, **{secret.replace("-", "_"): ["not-set-yet"]})
    refusal = {"reset": True} if "dropping" in failing else {"status": 403}
    world.secrets.add_fault(rf"/{secret}:addVersion$", **refusal)
    run = world.deploy(**world.keys, **served)
    assert run.returncode == 1
    made = world.answered(world.stripe, CREATE_ENDPOINT)
    [deleted] = world.answered(world.stripe, DELETE_ENDPOINT)
    # Nothing can verify it: deleted, and what Stripe will not resend is said.
    assert deleted["path"].endswith(made[-1]["response"]["id"])
    assert [e["id"] for e in world.endpoints()] == [m["response"]["id"] for m in made[:-1]]
    if connect:
        assert (
            "Stripe sends a deleted Connect endpoint's events nowhere else: for each connected "
            "account served, ./dev backfill --account acct_... --since 1h"
        ) in run.stderr
        assert (
            f"made by this run, is kept: its signing secret is stored ({ACCOUNT_SECRET_NAME} "
            "version 2)"
        ) in run.stderr
    else:
        assert "./dev backfill --since 1h queues any payment that failed meanwhile" in run.stderr

    again = world.deploy(**world.keys, **served)
    assert again.returncode == 0, again.stderr
    # The endpoint kept is found; the deleted one made again, its secret stored this time.
    remade = world.answered(world.stripe, CREATE_ENDPOINT)[len(made) :]
    assert len(remade) == 1
    assert sorted(e["id"] for e in world.endpoints()) == sorted(
        [m["response"]["id"] for m in made[:-1]] + [remade[0]["response"]["id"]]
    )
    stored = world.stored(secret)
    assert stored[-1] == remade[0]["response"]["secret"]
    pinned = ingest_pinned(2, len(stored)) if connect else ingest_pinned(len(stored))
    assert world.deploys("dunning-ingest")[-1] == pinned
    assert len(world.subscriptions()) == 1


@pytest.mark.parametrize(
    "failing",
    [
        "the Linq subscription",
        "storing the Linq subscription's secret",
        "the ingest function's redeploy",
        "the Linq intake's redeploy",
    ],
)
def test_an_endpoint_whose_secret_is_stored_is_kept_whatever_fails_and_the_next_run_completes(
    world: World, failing: str
) -> None:
    """Once its secret is stored nothing is lost by keeping it: the ingest answers 503 until it
    is pinned to that secret, and Stripe retries for up to three days. A deleted endpoint's
    events go nowhere."""
    failure: dict[str, str] = {}
    if failing == "the Linq subscription":
        world.linq.add_fault(r"^/v3/webhook-subscriptions$", method="POST", status=500)
    elif failing.startswith("storing"):
        placeholders(world, linq_webhook_secret=["not-set-yet"])
        world.secrets.add_fault(r"/linq-webhook-secret:addVersion$", status=403)
    elif failing == "the ingest function's redeploy":
        failure = {"FAIL_DEPLOY": ingest_pinned(2, 2)}
    else:
        failure = {"FAIL_DEPLOY": "LINQ_WEBHOOK_SECRET=linq-webhook-secret:2"}
    served = {"STRIPE_CONNECT_ACCOUNTS": "*"}
    run = world.deploy(**world.keys, **served, **failure)
    assert run.returncode == 1
    made = world.answered(world.stripe, CREATE_ENDPOINT)
    assert len(made) == 2
    assert world.answered(world.stripe, DELETE_ENDPOINT) == []
    assert sorted(e["id"] for e in world.endpoints()) == sorted(m["response"]["id"] for m in made)
    stored = {name: world.stored(name) for name in (ACCOUNT_SECRET_NAME, CONNECT_SECRET_NAME)}
    assert stored == {
        ACCOUNT_SECRET_NAME: ["not-set-yet", made[0]["response"]["secret"]],
        CONNECT_SECRET_NAME: ["not-set-yet", made[1]["response"]["secret"]],
    }
    for endpoint, name in zip(made, stored, strict=True):
        assert (
            f"{endpoint['response']['id']}, made by this run, is kept: its signing secret is "
            f"stored ({name} version 2)"
        ) in run.stderr
    assert "Run deploy.sh again: it finds the endpoint by its URL" in run.stderr
    assert "backfill" not in run.stderr

    marks = world.marks()
    again = world.deploy(**world.keys, **served)
    assert again.returncode == 0, again.stderr
    # No new endpoint, no new secret version; the ingest pinned to the versions stored.
    assert world.answered(world.stripe, CREATE_ENDPOINT) == made
    assert {name: world.stored(name) for name in stored} == stored
    assert world.deploys("dunning-ingest")[-1] == ingest_pinned(2, 2)
    assert world.deploys("dunning-linq-intake")[-1] == "LINQ_WEBHOOK_SECRET=linq-webhook-secret:2"
    assert "signing secret: stripe-webhook-secret version 2" in again.stdout
    assert "signing secret: stripe-connect-webhook-secret version 2" in again.stdout
    assert [c for c in world.changes_since(marks) if "/webhook_endpoints" in c] == []


def connect_flags(world: World) -> dict[str, bool]:
    """Each endpoint Stripe created, by id: whether it was asked for with connect=true."""
    return {
        entry["response"]["id"]: entry["body"].get("connect") == ["true"]
        for entry in world.answered(world.stripe, CREATE_ENDPOINT)
    }


def test_served_connected_accounts_get_a_connect_endpoint_beside_the_platforms_own(
    world: World,
) -> None:
    run = world.deploy(**world.keys, STRIPE_CONNECT_ACCOUNTS="acct_1A2b3C")
    assert run.returncode == 0, run.stderr
    # Two endpoints for the one URL: Stripe sends a Connect endpoint the connected accounts'
    # events only, and an account endpoint the platform's own only.
    account, connect = world.answered(world.stripe, CREATE_ENDPOINT)
    assert "connect" not in account["body"]
    assert account["body"]["metadata[connect]"] == ["false"]
    assert (connect["body"]["connect"], connect["body"]["metadata[connect]"]) == (
        ["true"],
        ["true"],
    )
    assert {e["url"] for e in world.endpoints()} == {INGEST_URL}
    # Each secret where the ingest function reads that kind's: never the other way round.
    assert world.stored(ACCOUNT_SECRET_NAME) == ["not-set-yet", account["response"]["secret"]]
    assert world.stored(CONNECT_SECRET_NAME) == ["not-set-yet", connect["response"]["secret"]]
    assert world.deploys("dunning-ingest") == [ingest_pinned(1, 1), ingest_pinned(2, 2)]
    granted = [c for c in world.calls if c.startswith("secrets add-iam-policy-binding ")]
    assert {c.split(" ")[2] for c in granted if "dunning-ingest@" in c} == {
        ACCOUNT_SECRET_NAME,
        CONNECT_SECRET_NAME,
    }
    assert f"created Stripe Connect endpoint {connect['response']['id']}" in run.stderr
    assert "connected accounts' events only, not the platform's own" in run.stderr
    assert f"Stripe endpoint {account['response']['id']} -> {INGEST_URL}\n" in run.stdout
    assert (
        f"Stripe Connect endpoint {connect['response']['id']} -> {INGEST_URL} (connected "
        "accounts' events)\n"
    ) in run.stdout
    assert "signing secret: stripe-connect-webhook-secret version 2" in run.stdout

    # Found again by URL and kind: nothing changes.
    marks = world.marks()
    again = world.deploy(**world.keys, STRIPE_CONNECT_ACCOUNTS="acct_1A2b3C")
    assert again.returncode == 0, again.stderr
    assert world.changes_since(marks) == []
    assert len(world.endpoints()) == 2


def test_a_deployment_that_starts_serving_connected_accounts_gets_only_the_connect_endpoint(
    world: World,
) -> None:
    """The platform's endpoint and its secret stay as they are: its events keep arriving."""
    first = world.deploy(**world.keys)
    assert first.returncode == 0, first.stderr
    [account] = world.answered(world.stripe, CREATE_ENDPOINT)
    run = world.deploy(**world.keys, STRIPE_CONNECT_ACCOUNTS="acct_1A2b3C")
    assert run.returncode == 0, run.stderr
    [_, connect] = world.answered(world.stripe, CREATE_ENDPOINT)
    assert connect["body"]["connect"] == ["true"]
    assert world.answered(world.stripe, DELETE_ENDPOINT) == []
    assert f"Stripe endpoint {account['response']['id']} for {INGEST_URL} exists" in run.stderr
    assert world.stored(ACCOUNT_SECRET_NAME) == ["not-set-yet", account["response"]["secret"]]
    assert world.stored(CONNECT_SECRET_NAME) == ["not-set-yet", connect["response"]["secret"]]
    # Deployed with the Connect placeholder first (its kind answered 503 meanwhile), then pinned.
    assert world.deploys("dunning-ingest")[-2:] == [ingest_pinned(2, 1), ingest_pinned(2, 2)]


def test_a_run_that_stops_serving_connected_accounts_keeps_the_connect_endpoint_verified(
    world: World,
) -> None:
    """Its events are then verified and acknowledged as any account not enabled is
    (skipped:account_not_enabled), never refused: refused, Stripe would retry them for days and
    disable the endpoint. Deleting it is the operator's call; serving again finds it."""
    first = world.deploy(**world.keys, STRIPE_CONNECT_ACCOUNTS="*")
    assert first.returncode == 0, first.stderr
    connect = next(id for id, is_connect in connect_flags(world).items() if is_connect)
    marks = world.marks()
    stopped = world.deploy(**world.keys)
    assert stopped.returncode == 0, stopped.stderr
    assert (
        f"Stripe Connect endpoint {connect} for {INGEST_URL} is kept: no connected account is "
        "served now"
    ) in stopped.stderr
    # Nothing changes at Stripe or in Secret Manager; the ingest, redeployed without the
    # account list, keeps the Connect endpoint's secret.
    assert world.vendor_writes() == [CREATE_ENDPOINT] * 2 + ["POST /v3/webhook-subscriptions"]
    assert [c for c in world.changes_since(marks) if not c.startswith("functions deploy ")] == []
    assert world.deploys("dunning-ingest")[-1] == ingest_pinned(2, 2)
    ingest_env = (world.tmp / "build" / "ingest.env.yaml").read_text()
    assert "STRIPE_CONNECT_ACCOUNTS" not in ingest_env
    assert f"Stripe Connect endpoint {connect} -> {INGEST_URL}" in stopped.stdout

    # Serving again: the same endpoints, nothing made.
    again = world.deploy(**world.keys, STRIPE_CONNECT_ACCOUNTS="*")
    assert again.returncode == 0, again.stderr
    assert len(world.answered(world.stripe, CREATE_ENDPOINT)) == 2
    assert world.deploys("dunning-ingest")[-1] == ingest_pinned(2, 2)


@pytest.mark.parametrize(
    ("connect", "served", "remade"),
    [
        (False, False, True),
        (True, True, True),
        # A Connect endpoint no longer wanted is not made again.
        (True, False, False),
    ],
)
def test_an_endpoint_deploy_sh_made_whose_secret_was_never_stored_is_made_again(
    world: World, connect: bool, served: bool, remade: bool
) -> None:
    """A run stopped between creating an endpoint and storing its secret (killed, say) leaves
    the placeholder pinned: the secret Stripe returned is gone, and Stripe's API cannot roll
    one (an endpoint's update takes its URL, events, description, metadata and status; the
    Dashboard alone rolls secrets), so the endpoint is deleted and made again."""
    from standins import builders
    from tools.stripe_webhook import DESCRIPTION

    hour_ago = int(time.time()) - 3600 - 5
    made = builders.webhook_endpoint(
        INGEST_URL,
        EVENTS,
        api_version="2026-10-28.endive",
        description=DESCRIPTION,
        metadata={"connect": "true" if connect else "false"},
        created=hour_ago,
    )
    world.stripe.load({"webhook_endpoints": [made]})
    secret = CONNECT_SECRET_NAME if connect else ACCOUNT_SECRET_NAME
    placeholders(world, **{secret.replace("-", "_"): ["not-set-yet"]})
    run = world.deploy(**world.keys, **({"STRIPE_CONNECT_ACCOUNTS": "*"} if served else {}))
    assert run.returncode == 0, run.stderr
    [deleted] = world.answered(world.stripe, DELETE_ENDPOINT)
    assert deleted["path"].endswith(made["id"])
    assert "whose signing secret was never stored" in run.stderr
    # Covering the deleted endpoint's whole life: Stripe resends its events nowhere.
    if connect:
        assert "./dev backfill --account acct_... --since 2h" in run.stderr
    else:
        assert "./dev backfill --since 2h queues any payment that failed meanwhile" in run.stderr
    flags = connect_flags(world)
    assert list(flags.values()).count(connect) == (1 if remade else 0)
    assert made["id"] not in {e["id"] for e in world.endpoints()}
    if remade:
        [new] = [id for id, is_connect in flags.items() if is_connect == connect]
        assert world.stored(secret)[-1] == world.endpoint_secrets()[list(flags).index(new)]
    else:
        assert world.stored(secret) == ["not-set-yet"]


@pytest.mark.parametrize(
    ("events", "status", "version", "change"),
    [
        # Made by hand before 3-D Secure was handled, and disabled by Stripe after failures.
        (
            EVENTS[:2],
            "disabled",
            "2026-10-28.endive",
            {
                "enabled_events[0]": [EVENTS[0]],
                "enabled_events[2]": [EVENTS[2]],
                "disabled": ["false"],
            },
        ),
        # Every event, in the account's default API version: nothing to change, and a warning.
        (["*"], "enabled", None, None),
    ],
)
def test_an_endpoint_made_by_hand_is_kept_with_its_secret_and_given_what_it_lacks(
    world: World, events: list[str], status: str, version: str | None, change: dict | None
) -> None:
    from standins import builders
    from standins.signing_secrets import new_endpoint_secret

    made = builders.webhook_endpoint(INGEST_URL, events, api_version=version, status=status)
    world.stripe.load({"webhook_endpoints": [made]})
    secret = new_endpoint_secret()
    placeholders(world, stripe_webhook_secret=["not-set-yet", secret])
    run = world.deploy(**world.keys)
    assert run.returncode == 0, run.stderr
    assert world.answered(world.stripe, CREATE_ENDPOINT) == []
    updates = world.answered(world.stripe, "POST /v1/webhook_endpoints/{id}")
    assert [{k: v for k, v in u["body"].items() if k in (change or {})} for u in updates] == (
        [change] if change else []
    )
    [endpoint] = world.endpoints()
    assert (endpoint["id"], endpoint["status"]) == (made["id"], "enabled")
    assert endpoint["enabled_events"] == (EVENTS if change else ["*"])
    warning = "its events come in API version the account's default, not 2026-10-28.endive"
    assert (warning in run.stderr) == (version is None)
    assert world.stored("stripe-webhook-secret") == ["not-set-yet", secret]
    assert world.deploys("dunning-ingest") == ["STRIPE_WEBHOOK_SECRET=stripe-webhook-secret:2"]


@pytest.mark.parametrize(
    ("endpoints", "served", "reason"),
    [
        # Made by hand, its secret not stored: its owner may still add it (the Dashboard shows
        # it), so it is theirs to delete.
        (1, False, "stripe-webhook-secret version 1 is not its signing secret"),
        (2, False, "2 Stripe webhook endpoints send to https://dunning-ingest-abc.a.run.app"),
        # With connected accounts served, one of each kind: Stripe does not say which this is.
        (1, True, "was made elsewhere, and Stripe does not say whether it is a Connect endpoint"),
    ],
)
def test_an_endpoint_that_cannot_be_verified_stops_the_run_and_changes_nothing_at_stripe(
    world: World, endpoints: int, served: bool, reason: str
) -> None:
    from standins import builders

    world.stripe.load(
        {
            "webhook_endpoints": [
                builders.webhook_endpoint(INGEST_URL, EVENTS) for _ in range(endpoints)
            ]
        }
    )
    run = world.deploy(**world.keys, **({"STRIPE_CONNECT_ACCOUNTS": "*"} if served else {}))
    assert run.returncode == 1
    assert reason in run.stderr
    assert world.vendor_writes() == []
    assert len(world.endpoints()) == endpoints
    assert world.subscriptions() == []


@pytest.mark.parametrize(("reference", "version"), [("", "2"), ("#1", "1")])
def test_a_key_referenced_in_secret_manager_is_deployed_from_that_secret(
    world: World, reference: str, version: str
) -> None:
    # Version 1 holds a key Stripe no longer takes, version 2 the current one.
    placeholders(world, my_stripe_key=["sk_test_revokedKey0001", world.keys["STRIPE_API_KEY"]])
    placeholders(world, linq_api_key=[world.keys["LINQ_API_KEY"]])
    run = world.deploy(STRIPE_API_KEY=f"sm://{PROJECT}/my-stripe-key{reference}")
    # The key checked is the version the functions get.
    if version == "1":
        assert run.returncode == 1
        assert "Invalid API Key provided: sk_test_****0001" in run.stderr
        return
    assert run.returncode == 0, run.stderr
    assert not [
        call for call in world.calls if call.startswith("secrets create ") and "key" in call
    ]
    assert world.deploys("dunning-recover") == [
        "STRIPE_API_KEY=my-stripe-key:2,LINQ_API_KEY=linq-api-key:1"
    ]
    granted = [
        c for c in world.calls if c.startswith("secrets add-iam-policy-binding my-stripe-key ")
    ]
    [grant] = granted
    assert "dunning-recover@" in grant


def test_a_dry_run_prints_the_stripe_and_linq_calls_with_the_keys_masked_and_makes_none(
    world: World,
) -> None:
    run = deploy(
        world.tmp,
        "--project",
        PROJECT,
        "--region",
        REGION,
        "--dry-run",
        STRIPE_API_BASE=world.stripe.url,
        LINQ_API_BASE=world.linq.url,
        STRIPE_CONNECT_ACCOUNTS="*",
        **world.keys,
    )
    assert run.returncode == 0, run.stderr
    assert (run.gcloud_calls, world.stripe.requests(), world.linq.requests()) == ([], [], [])
    for value in world.keys.values():
        assert value not in run.stdout + run.stderr
    stripe_key = world.keys["STRIPE_API_KEY"]
    curls = [argv for argv in run.commands if argv[0] == "curl"]
    assert [argv[argv.index("-u") + 1] for argv in curls if "-u" in argv] == [
        f"sk_test_****{stripe_key[-4:]}:"
    ] * 5
    assert [argv[argv.index("-H") + 1] for argv in curls if "-H" in argv] == [
        "Authorization: Bearer ****"
    ] * 3
    # The platform's endpoint, then the Connect one, each followed by its secret's new version.
    account, connect = [argv for argv in curls if "url=<ingest-url>" in argv]
    for create, kind in ((account, "false"), (connect, "true")):
        data = [create[i + 1] for i, arg in enumerate(create) if arg == "-d"]
        assert [f"enabled_events[]={event}" for event in EVENTS] == [
            d for d in data if d.startswith("enabled_events")
        ]
        assert {"api_version=2026-10-28.endive", f"metadata[connect]={kind}"} <= set(data)
        assert ("connect=true" in data) == (kind == "true")
        assert create[1] == f"{world.stripe.url}/v1/webhook_endpoints"
    stored = [argv[4] for argv in run.find("secrets", "versions", "add")]
    assert stored == [
        "stripe-webhook-secret",
        "stripe-connect-webhook-secret",
        "linq-webhook-secret",
    ]
    # The keys' secrets are made from the values (on stdin), the signing secrets from the
    # placeholder.
    made = [argv[3] for argv in run.find("secrets", "create")]
    assert made == [
        "stripe-api-key",
        "linq-api-key",
        "stripe-webhook-secret",
        "linq-webhook-secret",
        "stripe-connect-webhook-secret",
    ]
    # The ingest function gets both, and is deployed again pinned to the new versions.
    assert [
        flag(argv, "--set-secrets") for argv in run.find("functions", "deploy", "dunning-ingest")
    ] == [
        "STRIPE_WEBHOOK_SECRET=stripe-webhook-secret:<latest-enabled>,"
        "STRIPE_CONNECT_WEBHOOK_SECRET=stripe-connect-webhook-secret:<latest-enabled>",
        "STRIPE_WEBHOOK_SECRET=stripe-webhook-secret:<new-version>,"
        "STRIPE_CONNECT_WEBHOOK_SECRET=stripe-connect-webhook-secret:<new-version>",
    ]
    assert "Stripe Connect endpoint <connect-endpoint-id> -> <ingest-url>" in run.stdout
    assert all(flag(argv, "--data-file") == "-" for argv in run.find("secrets", "create"))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"STRIPE_API_KEY": "sm://other-project/stripe-api-key"},
            "STRIPE_API_KEY must name a secret of project demo",
        ),
        (
            {"LINQ_API_KEY": "sm://demo/linq-api-key#3", "LINQ_API_KEY_VERSION": "4"},
            "LINQ_API_KEY names version 3 and LINQ_API_KEY_VERSION version 4",
        ),
        ({"STRIPE_API_KEY": "sm://demo/stripe-api-key#newest"}, "must name a version number"),
        ({"STRIPE_API_KEY": "sm://demo"}, "is not of the form sm://PROJECT/SECRET#VERSION"),
        ({"STRIPE_API_KEY": "pk_live_publishable"}, "publishable keys (pk_...) cannot read"),
    ],
)
def test_a_key_variable_that_cannot_be_deployed_stops_before_anything_runs(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    run = dry_run(tmp_path, **env)
    assert run.returncode == 2
    assert message in run.stderr
    assert run.stdout == ""


def test_a_reference_s_version_is_pinned(tmp_path: Path) -> None:
    run = dry_run(tmp_path, STRIPE_API_KEY="sm://demo/stripe-api-key#5")
    assert run.returncode == 0, run.stderr
    assert secret_refs(run.one("functions", "deploy", "dunning-recover"))["STRIPE_API_KEY"] == (
        "stripe-api-key:5"
    )
    assert run.find("secrets", "versions", "describe", "5")


def test_deploy_sh_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck", path=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    assert shellcheck, "shellcheck not found: pip install -r requirements-dev.txt"
    done = subprocess.run(
        [shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- the quiet-hours release ------------------------------------------------------------------


def test_release_deploys_from_the_recover_source_on_its_own_topic_and_account(plan: Run) -> None:
    argv = plan.one("functions", "deploy", "dunning-release")
    assert flag(argv, "--entry-point") == "release_deferred"
    assert flag(argv, "--source") == str(plan.build / "recover")
    assert flag(argv, "--trigger-topic") == SWEEP
    assert f"serviceAccount:{flag(argv, '--service-account')}" == RELEASE_SA
    assert flag(argv, "--ingress-settings") == "internal-only"
    assert function_env(argv) == {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "FIRESTORE_DATABASE": "dunning",
        "PUBSUB_TOPIC": TOPIC,
    }
    assert "--retry" not in argv  # the next tick comes in five minutes
    assert not any(arg.startswith("--set-secrets") for arg in argv)


def test_release_may_use_the_ledger_and_publish_failed_payments_only(plan: Run) -> None:
    granted = [argv for argv in plan.commands if BIND in argv and f"--member={RELEASE_SA}" in argv]
    assert sorted((argv[1:3], flag(argv, "--role")) for argv in granted) == [
        (["projects", "add-iam-policy-binding"], "roles/datastore.user"),
        (["pubsub", "topics"], "roles/pubsub.publisher"),
    ]
    [ledger] = [argv for argv in granted if argv[1] == "projects"]
    assert "databases/dunning" in flag(ledger, "--condition")
    [topic] = [argv for argv in granted if argv[1] == "pubsub"]
    assert topic[4] == TOPIC


def test_a_scheduler_job_ticks_the_sweep_every_five_minutes(plan: Run) -> None:
    argv = plan.one("scheduler", "jobs", "create")
    assert argv[4:6] == ["pubsub", SWEEP]
    assert flag(argv, "--schedule") == "*/5 * * * *"
    assert flag(argv, "--topic") == SWEEP


def test_the_sweeps_queries_get_their_composite_indexes(plan: Run) -> None:
    created = plan.find("firestore", "indexes", "composite", "create")
    fields = sorted(
        tuple(
            arg.split("=", 2)[2].split(",")[0] for arg in argv if arg.startswith("--field-config")
        )
        for argv in created
    )
    assert fields == [("state", "due_at"), ("state", "released_at")]


def test_a_lease_shorter_than_a_run_is_refused(tmp_path: Path) -> None:
    run = dry_run(tmp_path, LEASE_SECONDS="60")
    assert run.returncode == 2
    assert (
        "LEASE_SECONDS must be longer than the recover function's timeout (120 s), got '60'"
        in run.stderr
    )
    assert run.stdout == ""


# --- listening to Linq --------------------------------------------------------------------------

LINQ_INTAKE_SA = f"serviceAccount:dunning-linq-intake@{PROJECT}.iam.gserviceaccount.com"
LINQ_EVENTS_SA = f"serviceAccount:dunning-linq-events@{PROJECT}.iam.gserviceaccount.com"


def test_the_linq_intake_is_a_public_http_function_of_the_ingest_source(plan: Run) -> None:
    argv = plan.deployed("dunning-linq-intake")
    assert {"--gen2", "--trigger-http", "--allow-unauthenticated"} <= set(argv)
    assert flag(argv, "--entry-point") == "linq_webhook"
    assert flag(argv, "--source") == str(plan.build / "ingest")
    assert f"serviceAccount:{flag(argv, '--service-account')}" == LINQ_INTAKE_SA
    assert function_env(argv) == {"GOOGLE_CLOUD_PROJECT": PROJECT, "LINQ_EVENTS_TOPIC": LINQ_TOPIC}
    assert flag(argv, "--set-secrets") == "LINQ_WEBHOOK_SECRET=linq-webhook-secret:<latest-enabled>"


def test_linq_events_run_on_their_topic_internal_only_with_retries(plan: Run) -> None:
    argv = plan.one("functions", "deploy", "dunning-linq-events")
    assert {"--gen2", "--retry", "--ingress-settings=internal-only"} <= set(argv)
    assert flag(argv, "--entry-point") == "linq_event"
    assert flag(argv, "--trigger-topic") == LINQ_TOPIC
    assert flag(argv, "--source") == str(plan.build / "recover")
    assert f"serviceAccount:{flag(argv, '--service-account')}" == LINQ_EVENTS_SA
    assert f"serviceAccount:{flag(argv, '--trigger-service-account')}" == TRIGGER_SA
    # No Slack secret in the plain plan: none is deployed, none is granted.
    assert not any(arg.startswith("--set-secrets") for arg in argv)


def test_the_linq_accounts_get_only_their_own_grants(plan: Run) -> None:
    def granted(member: str) -> list[tuple[str, str, str]]:
        return sorted(
            (argv[1], argv[argv.index(BIND) + 1], flag(argv, "--role"))
            for argv in plan.commands
            if BIND in argv and flag(argv, "--member") == member
        )

    assert granted(LINQ_INTAKE_SA) == [
        ("pubsub", LINQ_TOPIC, "roles/pubsub.publisher"),
        ("secrets", "linq-webhook-secret", "roles/secretmanager.secretAccessor"),
    ]
    assert granted(LINQ_EVENTS_SA) == [("projects", PROJECT, "roles/datastore.user")]
    [ledger] = [
        argv for argv in plan.commands if BIND in argv and flag(argv, "--member") == LINQ_EVENTS_SA
    ]
    assert "databases/dunning" in flag(ledger, "--condition")


# --- monitoring: log-based metrics from the result lines, and the dashboard -----------------------

MONITORING = ROOT / "monitoring"
# The recovered line the product writes when an invoice is paid after a failure (issue 14): its
# keys, as the contract gives them.
RECOVERED_LINE_KEYS = {
    "severity",
    "message",
    "invoice_id",
    "customer_id",
    "attempt",
    "action",
    "amount",
    "currency",
    "minutes_after_text",
    "group",
    "reason",
    "event_id",
}
PROMQL_METRIC = re.compile(r"logging_googleapis_com:user_(\w+)\{([^}]*)\}")
PROMQL_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
PROMQL_BY = re.compile(r"\bby\s*\(([^)]*)\)")


def metric_definitions() -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in MONITORING.glob("metrics/*.json")}


def dashboard_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    return [
        data_set["timeSeriesQuery"]["prometheusQuery"]
        for tile in dashboard["mosaicLayout"]["tiles"]
        for data_set in tile["widget"]["xyChart"]["dataSets"]
    ]


def result_line_fields() -> set[str]:
    """The keys a result line can carry: one written by log_result with every field set, and
    the recovered line's."""
    from shared.core.decline import LatestPayment
    from shared.core.outcome import Action, Outcome, log_result

    stream = io.StringIO()
    outcome = Outcome(
        Action.SENT,
        reason="why",
        chat_id="chat_1",
        would_be=Action.SENT,
        text="the text",
        phone="+1******0100",
        due_at="2026-11-27T14:00:00Z",
    )
    log_result(
        outcome,
        invoice_id="in_1",
        customer_id="cus_1",
        event_id="evt_1",
        attempt=1,
        account="acct_1",
        group="treated",
        payment=LatestPayment("requires_payment_method", "insufficient_funds"),
        event_type="invoice.payment_failed",
        stream=stream,
    )
    return set(json.loads(stream.getvalue())) | RECOVERED_LINE_KEYS


def action_values() -> set[str]:
    from shared.core.outcome import Action

    return {action.value for action in Action} | {"recovered"}


def test_deploy_creates_each_metric_and_the_dashboard_from_the_repository(plan: Run) -> None:
    created = {
        argv[4]: flag(argv, "--config-from-file")
        for argv in plan.find("logging", "metrics", "create")
    }
    assert created == {
        name: str(MONITORING / "metrics" / f"{name}.json") for name in metric_definitions()
    }
    dashboard = plan.one("monitoring", "dashboards", "create")
    assert flag(dashboard, "--config-from-file") == str(MONITORING / "dashboard.json")
    # Found again by the display name the file gives it, so a second run creates none.
    listed = plan.one("monitoring", "dashboards", "list")
    name = json.loads((MONITORING / "dashboard.json").read_text())["displayName"]
    assert flag(listed, "--filter") == f'displayName="{name}"'


def test_every_metric_the_dashboard_charts_is_one_deploy_creates(plan: Run) -> None:
    created = {argv[4] for argv in plan.find("logging", "metrics", "create")}
    definitions = metric_definitions()
    queries = dashboard_queries()
    assert len(queries) == 5
    for query in queries:
        found = PROMQL_METRIC.findall(query)
        assert found, query
        for name, matchers in found:
            # A distribution is charted through its _count and _sum series.
            base = re.sub(r"_(count|sum|bucket)$", "", name)
            metric = name if name in created else base
            assert metric in created, query
            if metric != name:
                assert definitions[metric]["metricDescriptor"]["valueType"] == "DISTRIBUTION"
            labels = set(definitions[metric]["labelExtractors"]) | {"monitored_resource"}
            assert {key for key, _, _ in PROMQL_MATCHER.findall(matchers)} <= labels, query
            for grouping in PROMQL_BY.findall(query):
                assert {label.strip() for label in grouping.split(",")} <= labels, query


def test_metric_filters_and_extractors_name_fields_the_result_lines_carry(plan: Run) -> None:
    fields = result_line_fields()
    deployed = {argv[3] for argv in plan.find("functions", "deploy")}
    for name, definition in metric_definitions().items():
        texts = [
            definition["filter"],
            *definition["labelExtractors"].values(),
            definition.get("valueExtractor", ""),
        ]
        used = {field for text in texts for field in re.findall(r"jsonPayload\.(\w+)", text)}
        assert used, name
        assert used <= fields, (name, used - fields)
        # Each label comes from the field of the same name.
        for label, extractor in definition["labelExtractors"].items():
            assert extractor == f"EXTRACT(jsonPayload.{label})", (name, label)
        services = set(re.findall(r'"(dunning-[a-z-]+)"', definition["filter"]))
        assert services == deployed, name
        assert 'resource.type="cloud_run_revision"' in definition["filter"]


def test_action_values_in_filters_and_charts_are_real_actions() -> None:
    actions = action_values()
    for definition in metric_definitions().values():
        for value in re.findall(r'jsonPayload\.action\s*=\s*"([^"]*)"', definition["filter"]):
            assert value in actions, value
    compared = 0
    for query in dashboard_queries():
        for _, matchers in PROMQL_METRIC.findall(query):
            for label, op, value in PROMQL_MATCHER.findall(matchers):
                if label != "action":
                    continue
                compared += 1
                if op == "=~":
                    assert any(re.fullmatch(value, action) for action in actions), value
                else:
                    assert value in actions, value
    assert compared == 3  # texts sent, skips by reason, outcomes past the holdout draw
    assert {"recovered", "sent", "skipped:holdout"} <= actions


def test_no_chart_stacks_amounts_of_different_currencies() -> None:
    """A stacked bar adds its series into one bar: series split by currency would add yen to
    cents (¥3,000 and $30.00 make a bar of 6,000 "minor units"). A chart of amounts by currency
    draws each currency apart."""
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    by_currency = 0
    for tile in dashboard["mosaicLayout"]["tiles"]:
        for data_set in tile["widget"]["xyChart"]["dataSets"]:
            query = data_set["timeSeriesQuery"]["prometheusQuery"]
            groupings = {
                label.strip() for by in PROMQL_BY.findall(query) for label in by.split(",")
            }
            if "currency" in groupings:
                by_currency += 1
                assert data_set["plotType"] not in ("STACKED_BAR", "STACKED_AREA"), query
    assert by_currency == 1


# --- the ingest's optional settings ---------------------------------------------------------------


@pytest.mark.parametrize("accounts", ["*", "acct_1A2b3C", "acct_1A2b3C, acct_4D5e6F,acct_7G"])
def test_the_connected_accounts_reach_the_ingest_function_whole(
    tmp_path: Path, accounts: str
) -> None:
    from shared.workflow.settings import IngestSettings

    run = dry_run(tmp_path, STRIPE_CONNECT_ACCOUNTS=accounts)
    assert run.returncode == 0, run.stderr
    argv = run.deployed("dunning-ingest")
    assert function_env(argv) == {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "PUBSUB_TOPIC": TOPIC,
        "STRIPE_CONNECT_ACCOUNTS": accounts,
    }
    # The same list as the function reads it.
    assert IngestSettings.from_env(
        {**function_env(argv), "STRIPE_WEBHOOK_SECRET": "not-set-yet"}
    ).accounts.serves("acct_1A2b3C")


def test_no_connected_account_list_leaves_the_ingest_with_the_platforms_own(plan: Run) -> None:
    argv = plan.deployed("dunning-ingest")
    assert "STRIPE_CONNECT_ACCOUNTS" not in function_env(argv)


@pytest.mark.parametrize(
    "accounts", ["acct_1A;touch x", "acct_1A,,acct_1B", "all", "acct_1A acct_1B"]
)
def test_a_malformed_connected_account_list_stops_the_deploy(tmp_path: Path, accounts: str) -> None:
    run = dry_run(tmp_path, STRIPE_CONNECT_ACCOUNTS=accounts)
    assert run.returncode == 2
    assert "STRIPE_CONNECT_ACCOUNTS must be * (every connected account) or Stripe" in run.stderr
    assert run.stdout == ""


def test_the_body_deadline_reaches_both_intakes(tmp_path: Path) -> None:
    run = dry_run(tmp_path, WEBHOOK_BODY_SECONDS="2.5")
    assert run.returncode == 0, run.stderr
    for function in ("dunning-ingest", "dunning-linq-intake"):
        argv = run.deployed(function)
        assert function_env(argv)["WEBHOOK_BODY_SECONDS"] == "2.5"


@pytest.mark.parametrize("seconds", ["0", "16", "ten", "1e3", "-2"])
def test_a_body_deadline_out_of_bounds_stops_the_deploy(tmp_path: Path, seconds: str) -> None:
    run = dry_run(tmp_path, WEBHOOK_BODY_SECONDS=seconds)
    assert run.returncode == 2
    assert "WEBHOOK_BODY_SECONDS must be a number of seconds above 0 and at most 15" in run.stderr
    assert run.stdout == ""


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("sk_live_51Habcdefghijkl1234", "sk_live_****1234"),
        ("rk_test_51Habcdefghijkl9876", "rk_test_****9876"),
        ("sk_test_short1", "****"),
        ("Zq3linqPartnerToken0000abcd", "****"),
        ("sm://demo/stripe-api-key#3", "sm://demo/stripe-api-key#3"),
    ],
)
def test_a_dry_run_masks_a_key_as_stripe_does_and_shows_a_reference(key: str, shown: str) -> None:
    assert masked(key) == shown


@pytest.mark.parametrize(
    ("age", "hours"),
    # Stripe keeps events 30 days, and the backfill reads no further back.
    [(0, 1), (3600, 1), (3601, 2), (86_400, 24), (30 * 86_400, 720), (90 * 86_400, 720)],
)
@pytest.mark.parametrize(
    ("connect", "command"),
    [(False, "./dev backfill --since"), (True, "./dev backfill --account acct_... --since")],
)
def test_the_backfill_after_a_deleted_endpoint_covers_its_whole_life(
    age: int, hours: int, connect: bool, command: str
) -> None:
    endpoint = Endpoint("we_1", INGEST_URL, tuple(EVENTS), None, True, connect, False, 1_000_000)
    said = missed(endpoint, now=1_000_000 + age)
    assert f"{command} {hours}h " in said
    assert ("for each connected account served" in said) == connect


def test_a_dry_run_encodes_the_endpoint_as_stripe_s_form() -> None:
    assert list(form(endpoint_params("https://x.example/h", connect=True))) == [
        "url=https://x.example/h",
        *(f"enabled_events[]={event}" for event in EVENTS),
        "api_version=2026-10-28.endive",
        "description=dunning by text: failed payments to the ingest function (deploy.sh)",
        "metadata[connect]=true",
        "connect=true",
    ]


# --- what a run does about each kind of endpoint, decided before anything changes at Stripe ------


def an_endpoint(connect: bool | None) -> Endpoint:
    """An endpoint for the ingest URL: made by deploy.sh (`connect` recorded) or elsewhere."""
    return Endpoint(
        f"we_{secrets.token_hex(4)}", INGEST_URL, tuple(EVENTS), None, True, connect, False, 0
    )


def kind(connect: bool, wanted: bool = True, secret: bool = True) -> Kind:
    name = CONNECT_SECRET_NAME if connect else ACCOUNT_SECRET_NAME
    return Kind(connect, Pinned(name, "2") if secret else None, wanted)


STORED = "whsec_" + secrets.token_hex(32)
TYPED = "whsec_" + "x" * 32


@pytest.mark.parametrize(
    ("of", "found", "held", "move"),
    [
        # None found: made when wanted.
        (kind(False), [], None, "make"),
        (kind(True), [], None, "make"),
        (kind(True, wanted=False), [], None, "nothing"),
        # Found, its secret stored: kept, made by deploy.sh or by hand, wanted or not.
        (kind(False), [an_endpoint(False)], STORED, "keep"),
        (kind(False), [an_endpoint(None)], STORED, "keep"),
        (kind(True), [an_endpoint(True)], STORED, "keep"),
        (kind(True, wanted=False), [an_endpoint(True)], STORED, "keep"),
        # Made by deploy.sh, its secret never stored: made again, or deleted if not wanted.
        (kind(False), [an_endpoint(False)], "not-set-yet", "remake"),
        (kind(True), [an_endpoint(True)], "not-set-yet", "remake"),
        (kind(True, wanted=False), [an_endpoint(True)], "not-set-yet", "drop"),
        (kind(True, wanted=False, secret=False), [an_endpoint(True)], None, "drop"),
        # What only its owner can settle: refused, nothing changed.
        (kind(False), [an_endpoint(None)], "not-set-yet", "stripe-webhook-secret version 2 is not"),
        (kind(False), [an_endpoint(False)], TYPED, "(it looks typed by hand, not generated"),
        (kind(False), [an_endpoint(False)] * 2, STORED, "2 Stripe webhook endpoints send to"),
        (kind(True), [an_endpoint(True)] * 2, STORED, "2 Stripe webhook Connect endpoints send"),
    ],
)
def test_each_kind_of_endpoint_is_kept_made_remade_dropped_or_refused(
    of: Kind, found: list[Endpoint], held: str | None, move: str
) -> None:
    if move in {m.value for m in Move}:
        assert decide(of, found, held) is Move(move)
    else:
        with pytest.raises(Refused) as refused:
            decide(of, found, held)
        assert move in str(refused.value)
        assert held not in str(refused.value)


@pytest.mark.parametrize("served", [False, True])
def test_an_endpoint_made_elsewhere_is_the_platforms_unless_connected_accounts_are_served(
    served: bool,
) -> None:
    account, connect, elsewhere = an_endpoint(False), an_endpoint(True), an_endpoint(None)
    if served:
        with pytest.raises(Refused, match=f"Stripe endpoint {elsewhere.id} .* was made elsewhere"):
            by_kind([account, connect, elsewhere], served)
    else:
        assert by_kind([account, connect, elsewhere], served) == {
            False: [account, elsewhere],
            True: [connect],
        }
    assert by_kind([account, connect], served) == {False: [account], True: [connect]}
