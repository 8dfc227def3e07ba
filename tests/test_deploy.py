"""deploy.sh: the commands a dry run would run, what it stages, and that a re-run changes nothing.

No test here reaches Google Cloud: the dry runs see a `gcloud` that fails loudly if it is ever
called, and the idempotency test uses a small stateful fake.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tools import lock

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
BIND = "add-iam-policy-binding"

# A gcloud that must never run during a dry run: it leaves a mark and fails.
TRIPWIRE = """#!/bin/sh
echo "$@" >> "${0%/*}/called"
exit 99
"""

# A gcloud that remembers what was created and which deploy-hash each function carries.
STATEFUL = r"""#!/bin/bash
set -eu
state=${0%/*}/state
[[ -d $state ]] || mkdir "$state"
echo "$*" >> "$state/calls"
key() { local id=${3%%@*}; printf '%s' "$state/$1_$2_${id//\//_}"; }
case "$1 $2 $3 " in
  "functions deploy "*)
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
  "secrets describe "*) [[ $3 != slack-webhook-url && $3 != "${MISSING_SECRET:-}" ]] || exit 1 ;;
  "secrets versions list "*) echo "projects/123456789/secrets/$4/versions/3" ;;
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


def deploy(tmp: Path, *args: str, fake: str = TRIPWIRE, **env: str) -> Run:
    fakebin = tmp / "bin"
    fakebin.mkdir(exist_ok=True)
    gcloud = fakebin / "gcloud"
    gcloud.write_text(fake)
    gcloud.chmod(0o755)
    build = tmp / "build"
    environment = {
        "PATH": f"{fakebin}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp),
        "LC_ALL": "C.UTF-8",
        "PYTHON": sys.executable,
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


def dry_run(tmp: Path, **env: str) -> Run:
    return deploy(tmp, "--project", PROJECT, "--region", REGION, "--dry-run", **env)


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One dry run with the defaults, shared by the tests that only read it."""
    return dry_run(tmp_path_factory.mktemp("deploy"))


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
        "gcloud services enable cloudfunctions.googleapis.com run.googleapis.com "
        "eventarc.googleapis.com pubsub.googleapis.com secretmanager.googleapis.com "
        "cloudbuild.googleapis.com artifactregistry.googleapis.com firestore.googleapis.com "
        "iam.googleapis.com cloudscheduler.googleapis.com logging.googleapis.com "
        "monitoring.googleapis.com",
        "gcloud secrets describe stripe-webhook-secret",
        "gcloud secrets versions list stripe-webhook-secret",
        "gcloud secrets describe stripe-api-key",
        "gcloud secrets versions list stripe-api-key",
        "gcloud secrets describe linq-api-key",
        "gcloud secrets versions list linq-api-key",
        "gcloud secrets describe slack-webhook-url",
        "gcloud secrets describe linq-webhook-secret",
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
        "gcloud functions describe dunning-ingest",
        "gcloud functions describe dunning-linq-intake",
    ]
    printed = [" ".join(argv) for argv in plan.commands]
    assert len(printed) == len(expected), "\n".join(printed)
    for got, want in zip(printed, expected, strict=True):
        assert got == want or got.startswith(f"{want} "), (got, want)


def test_every_command_names_the_project(plan: Run) -> None:
    for argv in plan.commands:
        assert f"--project={PROJECT}" in argv or argv[1:4:2] == ["projects", PROJECT], argv


def test_ingest_deploys_as_a_public_http_function(plan: Run) -> None:
    argv = plan.one("functions", "deploy", "dunning-ingest")
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


def test_secrets_are_pinned_to_versions_never_latest(plan: Run) -> None:
    refs = {
        name: ref
        for argv in plan.find("functions", "deploy")
        if any(arg.startswith("--set-secrets=") for arg in argv)
        for pair in flag(argv, "--set-secrets").split(",")
        for name, ref in [pair.split("=", 1)]
    }
    assert refs == {
        "STRIPE_WEBHOOK_SECRET": "stripe-webhook-secret:<latest-enabled>",
        "STRIPE_API_KEY": "stripe-api-key:<latest-enabled>",
        "LINQ_API_KEY": "linq-api-key:<latest-enabled>",
        "LINQ_WEBHOOK_SECRET": "linq-webhook-secret:<latest-enabled>",
    }
    assert ":latest" not in plan.stdout


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
        argv = plan.one("functions", "deploy", function)
        assert flag(argv, "--build-service-account") == (
            f"projects/{PROJECT}/serviceAccounts/{BUILD_SA.removeprefix('serviceAccount:')}"
        )


def test_recover_takes_internal_traffic_only_and_ingest_stays_public(plan: Run) -> None:
    recover = plan.one("functions", "deploy", "dunning-recover")
    assert flag(recover, "--ingress-settings") == "internal-only"
    assert "--allow-unauthenticated" not in recover
    ingest = plan.one("functions", "deploy", "dunning-ingest")
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


def test_ledger_database_gets_a_ttl_policy_on_the_ledger_records(plan: Run) -> None:
    from shared.adapters import ledger

    create = plan.one("firestore", "databases", "create")
    assert flag(create, "--database") == "dunning"
    assert flag(create, "--location") == REGION
    assert flag(create, "--type") == "firestore-native"
    ttl = plan.one("firestore", "fields", "ttls", "update", "expire_at")
    assert flag(ttl, "--collection-group") == ledger.COLLECTION
    assert "--enable-ttl" in ttl
    assert "expire_at" in Path(ledger.__file__).read_text()


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


def test_ends_with_the_webhook_url_and_the_stripe_next_step(plan: Run) -> None:
    tail = plan.stdout.rsplit("\n+ ", 1)[1]
    assert "Webhook URL: <ingest-url>" in tail
    assert "invoice.payment_failed" in tail
    assert "api_version=2026-10-28.endive" in tail
    assert "gcloud secrets versions add stripe-webhook-secret" in tail
    assert "v1.invoice.payment_failed" in tail


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

    runtime = flag(plan.one("functions", "deploy", "dunning-ingest"), "--runtime")
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
    assert flag(tuned.one("functions", "deploy", "dunning-ingest"), "--region") == "europe-west1"
    assert "--project=env-proj" in tuned.one("services", "enable")


def test_help_exits_zero_with_usage(tmp_path: Path) -> None:
    run = deploy(tmp_path, "--help")
    assert run.returncode == 0
    assert "--project" in run.stdout
    assert "--dry-run" in run.stdout


def test_second_run_creates_and_deploys_nothing(tmp_path: Path) -> None:
    first = deploy(tmp_path, "--project", PROJECT, "--region", REGION, fake=STATEFUL)
    assert first.returncode == 0, first.stderr
    calls = (tmp_path / "bin" / "state" / "calls").read_text().splitlines()
    # 5 topics, the 2 dead-letter subscriptions, 7 service accounts, the ledger database, its 2
    # indexes, the source bucket, the image repository, the Scheduler job, 2 log-based metrics
    # and the dashboard.
    assert sum(" create " in call for call in calls) == 23
    # The bucket is named with the project's number, read before it is needed.
    assert "storage buckets create gs://gcf-v2-sources-123456789-us-central1 " in "\n".join(
        f"{call} " for call in calls
    )
    assert sum(call.startswith("functions deploy ") for call in calls) == 5
    assert "Webhook URL: https://dunning-ingest-abc.a.run.app" in first.stdout

    (tmp_path / "bin" / "state" / "calls").unlink()
    second = deploy(tmp_path, "--project", PROJECT, "--region", REGION, fake=STATEFUL)
    assert second.returncode == 0, second.stderr
    calls = (tmp_path / "bin" / "state" / "calls").read_text().splitlines()
    changes = (" create ", "functions deploy ", "ttls update ")
    assert [call for call in calls if any(change in call for change in changes)] == []
    assert "dunning-recover is up to date" in second.stderr


@pytest.mark.parametrize(
    ("secret", "advice"),
    [
        ("linq-api-key", []),
        # A placeholder that never verifies, and what happens to webhooks meanwhile.
        ("stripe-webhook-secret", ["placeholder not-set-yet", "answers every webhook 503"]),
        ("linq-webhook-secret", ["placeholder", "not-set-yet", "./dev linq-webhook URL"]),
    ],
)
def test_missing_secret_stops_with_how_to_create_it(
    tmp_path: Path, secret: str, advice: list[str]
) -> None:
    run = deploy(
        tmp_path, "--project", PROJECT, "--region", REGION, fake=STATEFUL, MISSING_SECRET=secret
    )
    assert run.returncode == 1
    assert f'printf %s "$VALUE" | gcloud secrets create {secret}' in run.stderr
    assert all(words in run.stderr for words in advice)
    assert "whsec_pending" not in run.stderr
    # Checked before anything is created.
    assert " create " not in (tmp_path / "bin" / "state" / "calls").read_text()


def test_deploy_sh_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck", path=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    assert shellcheck, "shellcheck not found: pip install -r requirements-dev.txt"
    done = subprocess.run(
        [shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_next_step_says_what_happens_to_webhooks_before_the_secret(plan: Run) -> None:
    tail = plan.stdout.rsplit("\n+ ", 1)[1]
    assert "answers every webhook 503" in tail
    assert "none is lost" in tail


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
    argv = plan.one("functions", "deploy", "dunning-linq-intake")
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


def test_ends_with_the_linq_intake_url_and_the_subscription_command(plan: Run) -> None:
    tail = plan.stdout.rsplit("\n+ ", 1)[1]
    assert "Linq webhook URL: <linq-intake-url>" in tail
    assert './dev linq-webhook "<linq-intake-url>"' in tail
    assert "linq-webhook-secret" in tail
    assert f"pull {LINQ_DLQ}-pull" in tail


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
    argv = run.one("functions", "deploy", "dunning-ingest")
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
    argv = plan.one("functions", "deploy", "dunning-ingest")
    assert "STRIPE_CONNECT_ACCOUNTS" not in function_env(argv)


@pytest.mark.parametrize(
    "accounts", ["acct_1A;touch x", "acct_1A,,acct_1B", "all", "acct_1A acct_1B"]
)
def test_a_malformed_connected_account_list_stops_the_deploy(tmp_path: Path, accounts: str) -> None:
    run = dry_run(tmp_path, STRIPE_CONNECT_ACCOUNTS=accounts)
    assert run.returncode == 2
    assert "STRIPE_CONNECT_ACCOUNTS must be * (every connected account) or Stripe" in run.stderr
    assert run.stdout == ""


def test_help_documents_the_intakes_settings(tmp_path: Path) -> None:
    run = deploy(tmp_path, "--help")
    assert "STRIPE_CONNECT_ACCOUNTS" in run.stdout
    assert "WEBHOOK_BODY_SECONDS" in run.stdout


def test_the_body_deadline_reaches_both_intakes(tmp_path: Path) -> None:
    run = dry_run(tmp_path, WEBHOOK_BODY_SECONDS="2.5")
    assert run.returncode == 0, run.stderr
    for function in ("dunning-ingest", "dunning-linq-intake"):
        argv = run.one("functions", "deploy", function)
        assert function_env(argv)["WEBHOOK_BODY_SECONDS"] == "2.5"


@pytest.mark.parametrize("seconds", ["0", "16", "ten", "1e3", "-2"])
def test_a_body_deadline_out_of_bounds_stops_the_deploy(tmp_path: Path, seconds: str) -> None:
    run = dry_run(tmp_path, WEBHOOK_BODY_SECONDS=seconds)
    assert run.returncode == 2
    assert "WEBHOOK_BODY_SECONDS must be a number of seconds above 0 and at most 15" in run.stderr
    assert run.stdout == ""
