"""Each stand-in as its own process: `python -m standins NAME` serves, then stops cleanly."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from standins import LINQ_TOKEN

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent


def check_linq(url: str) -> None:
    answer = requests.get(
        f"{url}/v3/phone_numbers", headers={"Authorization": f"Bearer {LINQ_TOKEN}"}, timeout=5
    )
    assert answer.json() == {"phone_numbers": []}


def check_stripe(url: str) -> None:
    assert requests.get(f"{url}/v1/invoices", timeout=5).status_code == 401


def check_slack(url: str) -> None:
    answer = requests.post(f"{url}/services/T0/B0/X0", json={"text": "x"}, timeout=5)
    assert answer.text == "ok"


@pytest.mark.parametrize(
    ("name", "check", "stop"),
    [
        ("linq", check_linq, signal.SIGTERM),
        ("stripe", check_stripe, signal.SIGTERM),
        ("slack", check_slack, signal.SIGINT),
    ],
)
def test_process_mode_serves_and_exits_cleanly(tmp_path, name, check, stop):
    port_file = tmp_path / f"{name}.port"
    process = subprocess.Popen(
        [sys.executable, "-m", "standins", name, "--port", "0", "--port-file", str(port_file)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        check(f"http://127.0.0.1:{port_file.read_text().strip()}")
    finally:
        process.send_signal(stop)
    assert process.wait(timeout=10) == 0
