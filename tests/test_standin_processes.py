"""Each stand-in as its own process: `python -m standins NAME` serves, then stops cleanly."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from standins import LINQ_TOKEN
from standins.processes import Child, StackError, port_open

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


# A program that serves on the port it is given until it is stopped.
SERVE = (
    "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); "
    "time.sleep(60)"
)


def serving_on(port: int) -> list[str]:
    return [sys.executable, "-c", SERVE.format(port=port)]


def test_a_process_whose_port_was_taken_before_it_served_moves_to_another(tmp_path):
    with socket.socket() as other:
        # Bound, not listening: the port is taken, and nothing there answers.
        other.bind(("127.0.0.1", 0))
        taken = other.getsockname()[1]
        moved = Child("probe", serving_on, taken, tmp_path / "probe.log").start(10)
        try:
            assert moved.port != taken
            assert port_open(moved.port)
        finally:
            moved.stop()
        # A fixed command (a function restarted where its subscription points) keeps its port.
        with pytest.raises(StackError, match="fixed exited with status 1"):
            Child("fixed", serving_on(taken), taken, tmp_path / "fixed.log").start(10)
