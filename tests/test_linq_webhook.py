"""`./dev linq-webhook URL` against the Linq and Secret Manager stand-ins over HTTP."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager

from shared.core.errors import ConfigError
from standins.linq_api import LINQ_TOKEN, LinqStandin
from standins.secretmanager_api import SecretManagerStandin
from tools.linq_webhook import EVENTS, EXAMPLE_URL, main, target_url

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "acme"
SECRET = f"projects/{PROJECT}/secrets/linq-webhook-secret"
INTAKE = "https://us-central1-acme.cloudfunctions.net/dunning-linq-intake"
TARGET = f"{INTAKE}?version=2026-02-03"

Run = Callable[..., tuple[int, str]]


@pytest.fixture
def linq() -> Iterator[LinqStandin]:
    with LinqStandin() as server:
        yield server


@pytest.fixture
def secret_manager() -> Iterator[SecretManagerStandin]:
    with SecretManagerStandin() as server:
        yield server


@pytest.fixture
def run(linq, secret_manager, monkeypatch, capsys, caplog) -> Run:
    """The command with the stand-ins' addresses; returns its exit code and everything it wrote
    (stdout, stderr and log records)."""
    monkeypatch.setenv("LINQ_API_KEY", LINQ_TOKEN)
    monkeypatch.setenv("LINQ_API_BASE", linq.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.setenv("SECRET_MANAGER_API_BASE", secret_manager.url)

    def command(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        caplog.clear()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out + captured.err + caplog.text

    return command


def signing_secrets(linq: LinqStandin) -> list[str]:
    """The signing secrets Linq's stand-in gave out (its journal keeps its answers)."""
    return [
        entry["response"]["signing_secret"]
        for entry in linq.requests()
        if entry["endpoint"] == "POST /v3/webhook-subscriptions" and entry["status"] == 201
    ]


def stored(secret_manager: SecretManagerStandin) -> list[str]:
    """What the command wrote into Secret Manager, in order."""
    return [
        entry["body"]["payload"]["data"]
        for entry in secret_manager.requests()
        if entry["path"].endswith(":addVersion") and entry["status"] == 200
    ]


def subscriptions(linq: LinqStandin) -> list[dict]:
    answer = requests.get(
        f"{linq.url}/v3/webhook-subscriptions",
        headers={"Authorization": f"Bearer {LINQ_TOKEN}"},
        timeout=5,
    )
    return answer.json()["subscriptions"]


def read_secret(secret_manager: SecretManagerStandin) -> str:
    client = secretmanager.SecretManagerServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": secret_manager.url},
    )
    return client.access_secret_version(name=f"{SECRET}/versions/latest").payload.data.decode()


def test_creates_the_subscription_and_stores_its_secret_unseen(run, linq, secret_manager):
    code, output = run(INTAKE)
    [subscription] = subscriptions(linq)
    [secret] = signing_secrets(linq)
    assert code == 0
    assert (subscription["target_url"], subscription["subscribed_events"]) == (TARGET, list(EVENTS))
    assert f"created subscription {subscription['id']}" in output
    assert f"{SECRET}/versions/1" in output
    assert secret not in output
    assert read_secret(secret_manager) == secret


def test_a_second_run_reports_the_subscription_and_writes_nothing(run, linq, secret_manager):
    run(INTAKE)
    code, output = run(INTAKE)
    [subscription] = subscriptions(linq)
    assert code == 0
    assert f"subscription {subscription['id']} for {TARGET} already exists" in output
    assert ", ".join(EVENTS) in output
    assert len(stored(secret_manager)) == 1
    assert len(signing_secrets(linq)) == 1


def test_an_existing_secret_gets_a_new_version(run, secret_manager):
    secret_manager.load({"secrets": {SECRET: {"1": "not-set-yet"}}})
    code, output = run(INTAKE)
    assert code == 0
    assert f"{SECRET}/versions/2" in output


def test_linq_key_may_be_a_secret_manager_reference(run, secret_manager, monkeypatch):
    secret_manager.load({"secrets": {f"projects/{PROJECT}/secrets/linq-key": {"1": LINQ_TOKEN}}})
    monkeypatch.setenv("LINQ_API_KEY", f"sm://{PROJECT}/linq-key")
    assert run(INTAKE)[0] == 0


def test_a_rejected_linq_key_exits_1(run, linq, secret_manager, monkeypatch):
    monkeypatch.setenv("LINQ_API_KEY", "wrong-key")
    code, output = run(INTAKE)
    assert code == 1
    assert "Linq refused: Linq 401 (code 2004)" in output
    assert stored(secret_manager) == []


def test_secret_manager_refusing_the_secret_deletes_the_subscription(run, linq, secret_manager):
    secret_manager.add_fault(":addVersion", status=403)
    code, output = run(INTAKE)
    [secret] = signing_secrets(linq)
    assert code == 1
    assert "Secret Manager refused the signing secret" in output
    assert "the subscription was deleted" in output
    assert secret not in output
    assert subscriptions(linq) == []
    assert run(INTAKE)[0] == 0


def test_a_connection_secret_manager_drops_deletes_the_subscription_too(run, linq, secret_manager):
    secret_manager.add_fault(":addVersion", reset=True)
    code, output = run(INTAKE)
    assert code == 1
    assert "Secret Manager refused the signing secret" in output
    assert "the subscription was deleted" in output
    assert subscriptions(linq) == []


def test_secret_manager_refusing_the_secret_itself_creates_no_subscription(
    run, linq, secret_manager
):
    secret_manager.load({"denied": [SECRET]})
    code, output = run(INTAKE)
    assert code == 1
    assert "Secret Manager refused: 403" in output
    assert subscriptions(linq) == []


@pytest.mark.parametrize(
    "url", ["http://hooks.example.com/linq", "ftp://hooks.example.com/", "hooks.example.com"]
)
def test_a_url_that_is_not_https_exits_2(run, linq, url):
    code, output = run(url)
    assert code == 2
    assert "URL must" in output
    assert linq.requests() == []


def test_a_missing_variable_exits_2(run, linq, monkeypatch):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    code, output = run(INTAKE)
    assert (code, linq.requests()) == (2, [])
    assert "GOOGLE_CLOUD_PROJECT is required" in output


def test_no_url_exits_2():
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2


@pytest.mark.parametrize(
    ("url", "target"),
    [
        (INTAKE, TARGET),
        (f"{INTAKE}?team=a&x=%20", f"{INTAKE}?team=a&x=%20&version=2026-02-03"),
        (TARGET, TARGET),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/?version=2026-02-03"),
        ("http://localhost:8080/linq", "http://localhost:8080/linq?version=2026-02-03"),
    ],
)
def test_the_target_url_asks_for_the_2026_02_03_format(url, target):
    assert target_url(url) == target


@pytest.mark.parametrize("url", [f"{INTAKE}?version=2025-01-01", f"{INTAKE}#top"])
def test_a_url_asking_for_another_format_is_refused(url):
    with pytest.raises(ConfigError, match="2026-02-03"):
        target_url(url)


def test_the_example_url_names_the_intake_deploy_sh_creates():
    deploy = (ROOT / "deploy.sh").read_text()
    [intake] = re.findall(r"^LINQ_INTAKE_FN=(\S+)$", deploy, flags=re.MULTILINE)
    assert EXAMPLE_URL.endswith(f"/{intake}")
