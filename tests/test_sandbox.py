"""`./dev sandbox`, as a new user runs it: the demo, and `--live` pointed at another Stripe and
Linq through STRIPE_API_BASE and LINQ_API_BASE."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from shared.workflow.settings import is_product_variable
from standins import LINQ_TOKEN, STRIPE_TEST_KEY, builders
from standins.processes import REPO, free_port
from standins.signing_secrets import new_stripe_secret
from standins.stack import signed_webhook
from tools.stripe_webhook import EVENTS

pytestmark = pytest.mark.integration

# What `stripe listen` would print for the live sandbox, made afresh for each run.
LIVE_SECRET = new_stripe_secret()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not is_product_variable(k)}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **extra)
    return env


def run(*argv: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """`python -m ARGV` in the checkout, to its end, its output kept."""
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_demo_shows_every_case_and_leaves_nothing_running(tmp_path):
    # A temporary directory of its own, to see that it leaves nothing there.
    temporary, kept = tmp_path / "tmp", tmp_path / "report"
    temporary.mkdir()
    done = run(
        "sandbox", "--report-dir", str(kept), env=clean_env(TMPDIR=str(temporary)), timeout=180
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "expected" not in done.stdout  # no case ended with another action than its own
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("  {")]
    assert {r["action"] for r in results} >= {
        "sent",
        "skipped:no_phone",
        "skipped:not_open",
        "skipped:processor_error",
        "deferred:quiet_hours",
    }
    assert "deferred:quiet_hours → sent" in done.stdout  # released by the sweep, then sent
    # 3-D Secure: asked to confirm, once for Stripe's two events of the attempt.
    [confirm] = [line for line in done.stdout.splitlines() if line.startswith("Katalin")]
    assert "sent → skipped:already_texted " in confirm
    assert 'text "Hi Katalin, your bank asks you to conf…" + link' in confirm
    # The processor's decline: skipped, its code said, nothing sent.
    [processor] = [r for r in results if r["action"] == "skipped:processor_error"]
    assert processor["reason"].startswith("decline code processing_error is not the customer's")
    [backus] = [line for line in done.stdout.splitlines() if line.startswith("John Backus")]
    # One masking rule for every country: the country code and the last four digits.
    [turing] = [line for line in done.stdout.splitlines() if line.startswith("Alan Turing")]
    assert " +44******3456: text " in turing
    [ada] = [line for line in done.stdout.splitlines() if line.startswith("Ada Lovelace")]
    assert " +1******0101: text " in ada
    assert backus.split()[-1] == "nothing"
    # Listening to Linq: deliveries, a reply for the team, a STOP and the next failure skipped.
    assert {r["action"] for r in results} >= {"delivered", "reply_received", "opt_out_recorded"}
    assert "  Slack: Reply from Ken (" in done.stdout
    assert ': "I\'ll pay on Friday"' in done.stdout
    assert 'opted out, no more texts to +1******0111: "Stop texting me"' in done.stdout
    assert "sent → skipped:opted_out" in done.stdout
    assert "  Linq requests for it: 0 " in done.stdout
    # The report over the sandbox's ledger, by the groups as assigned at the draw: nine
    # treated (two paid after a text; an unreachable one and Linq's refusal among the others),
    # one held out and paid, four that never reached the draw (the processor's decline one).
    assert "  Recovery report: projects/demo-proj/databases/dunning" in done.stdout
    assert "    treated                 2 of 9, 22.2 %: $50.00" in done.stdout
    assert "    holdout                 1 of 1, 100.0 %: $25.00" in done.stdout
    assert "    not_assigned            0 of 4, 0.0 %: -" in done.stdout
    assert "      skipped:processor_error 1" in done.stdout
    # By the decline code each run recorded: the processor's decline never reached the draw.
    assert "    processing_error        not_assigned 0 of 1, 0.0 %" in done.stdout
    assert "  Lift (treated - holdout)  not enough data: treated has 9 invoices" in done.stdout
    assert "  Per protocol (texted)     2 of 7, 28.6 % (7 of 9 treated invoices" in done.stdout
    assert "recovery.png" in done.stdout
    # The texted and the not texted make every entry; the deferred one is among the texted.
    assert "    Texted                  7 entries, 7 invoices" in done.stdout
    assert "    Not texted              8 entries" in done.stdout
    assert "  Deferred for quiet hours  1 of these 15 entries: 1 texted, 0 not" in done.stdout
    # The report survives the sandbox: printed again from its folder, without a ledger.
    shown = done.stdout.split("(here: the emulator's):\n", 1)[1].split("\n  Written: ", 1)[0]
    assert f"Kept in {kept}: ./dev report --from-sandbox prints it again." in done.stdout
    again = run("tools.report", "--from-sandbox", str(kept), env=clean_env(), timeout=60)
    assert (again.returncode, again.stderr) == (0, "")
    text = again.stdout.split("\n\nIn ", 1)[0]
    assert text.splitlines() == [line.removeprefix("  ") for line in shown.splitlines()]
    assert (kept / "recovery.png").exists()
    stopped = [line for line in done.stdout.splitlines() if line.startswith("Stopped")]
    [summary] = stopped
    counts = summary.split()[1], summary.split()[3]
    assert counts[0] == counts[1], summary
    assert list(temporary.iterdir()) == []


class Output:
    """A process's stdout, collected line by line in the background."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.lines if line.startswith("  {")]

    def wait_for(self, what: str, found: Callable[[dict], bool], timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            match = [entry for entry in self.entries() if found(entry)]
            if match:
                return match[0]
            assert time.monotonic() < deadline, f"no {what} in:\n" + "\n".join(self.lines[-30:])
            time.sleep(0.1)


@pytest.fixture
def live_sandbox(stripe_api, linq_api) -> Iterator[tuple[int, Output]]:
    port = free_port()
    env = clean_env(
        STRIPE_API_KEY=STRIPE_TEST_KEY,
        LINQ_API_KEY=LINQ_TOKEN,
        STRIPE_WEBHOOK_SECRET=LIVE_SECRET,
        STRIPE_API_BASE=stripe_api.url,
        LINQ_API_BASE=linq_api.url,
        QUIET_HOURS="off",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--live", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(process)
    try:
        deadline = time.monotonic() + 60
        while not any(line.startswith("Ingest listening") for line in output.lines):
            assert process.poll() is None, "\n".join(output.lines)
            assert time.monotonic() < deadline, "\n".join(output.lines)
            time.sleep(0.1)
        yield port, output
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def test_live_mode_uses_the_api_bases_given_and_shows_retries(live_sandbox, stripe_api, linq_api):
    port, output = live_sandbox
    # The hint subscribes `stripe listen` to every event the endpoint must send.
    hint = f"stripe listen --events {','.join(EVENTS)} --latest --forward-to "
    assert {"invoice.payment_failed", "invoice.paid", "invoice.payment_action_required"} <= set(
        EVENTS
    )
    deadline = time.monotonic() + 10
    while not any(line.strip().startswith(hint) for line in output.lines):
        assert time.monotonic() < deadline, "\n".join(output.lines)
        time.sleep(0.05)
    linq_api.load({"phone_numbers": [builders.linq_line("+12025550100")]})
    first, second = builders.customer(phone="+14155550150"), builders.customer(phone="+14155550151")
    invoices = [builders.invoice(first), builders.invoice(second)]
    stripe_api.load({"customers": [first, second], "invoices": invoices})
    # The second one's text meets a Linq outage once: its retry must show.
    linq_api.add_fault(r"^/v3/capability/", status=503)
    for invoice in invoices:
        body, headers = signed_webhook(builders.payment_failed_event(invoice), LIVE_SECRET)
        answer = requests.post(f"http://127.0.0.1:{port}/", data=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
    retry = output.wait_for("retry line", lambda e: e["message"].startswith("will retry"))
    assert (retry["severity"], retry["status"]) == ("ERROR", 503)
    for invoice in invoices:
        sent = output.wait_for(
            "result", lambda e, i=invoice: e.get("invoice_id") == i["id"] and "action" in e
        )
        assert sent["action"] == "sent"
    # The key checked first (one invoice listed), then each invoice read.
    assert {r["path"] for r in stripe_api.requests()} == {"/v1/invoices"} | {
        f"/v1/invoices/{i['id']}" for i in invoices
    }
    assert len(linq_api.messages()) == 4


def live_check(stripe_api, linq_api, **keys: str) -> subprocess.CompletedProcess[str]:
    """`./dev sandbox --live` against the stand-ins with `keys` over working ones, up to its key
    check."""
    env = clean_env(
        **{
            "STRIPE_API_KEY": STRIPE_TEST_KEY,
            "LINQ_API_KEY": LINQ_TOKEN,
            "STRIPE_WEBHOOK_SECRET": LIVE_SECRET,
            "STRIPE_API_BASE": stripe_api.url,
            "LINQ_API_BASE": linq_api.url,
            **keys,
        }
    )
    return run("sandbox", "--live", "--port", str(free_port()), env=env, timeout=60)


def test_live_mode_checks_the_stripe_key_before_it_starts_anything(stripe_api, linq_api):
    done = live_check(stripe_api, linq_api, STRIPE_API_KEY="sk_test_" + "x" * 24)
    assert done.returncode == 1
    [line] = done.stdout.splitlines()
    assert line.startswith("--live: STRIPE_API_KEY refused: Stripe rejected the API key: ")
    assert "x" * 24 not in line
    assert [r["path"] for r in stripe_api.requests()] == ["/v1/invoices"]
    assert linq_api.requests() == []


def test_live_mode_checks_the_linq_key_before_it_starts_anything(stripe_api, linq_api):
    done = live_check(stripe_api, linq_api, LINQ_API_KEY="bogus-token")
    assert done.returncode == 1
    assert done.stdout == (
        "--live: LINQ_API_KEY refused: Linq 401 (code 2004): Unauthorized: missing or invalid "
        "API token\n"
    )
    assert [r["path"] for r in linq_api.requests()] == ["/v3/phone_numbers"]


def test_live_mode_names_a_malformed_key_and_asks_nobody(stripe_api, linq_api):
    done = live_check(stripe_api, linq_api, STRIPE_API_KEY="bogus")
    assert done.returncode == 2
    [line] = done.stdout.splitlines()
    assert line.startswith("--live: STRIPE_API_KEY must be a secret or restricted key")
    assert stripe_api.requests() == linq_api.requests() == []
