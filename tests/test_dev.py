"""`./dev` helps itself: alone or asked for help it lists every command, one line each; an unknown
command says so; every command answers `--help` without running. Run in a checkout of its own
against a fake python3 (tests/fake_dev.py), which records whatever `./dev` would have run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_dev import ROOT, Dev, fake_checkout

# Every test here runs ./dev (a shell, and the fake python3 it calls).
pytestmark = pytest.mark.integration

# The commands a new user is told about; the list in `dev` may hold more.
KNOWN = {
    "sandbox",
    "test",
    "lint",
    "audit",
    "bench",
    "backfill",
    "report",
    "linq-webhook",
    "setup",
    "lock",
}


def declared() -> dict[str, str]:
    """Each command of `dev`'s list and the Python module it runs ("" for one `dev` runs itself),
    read from the list as `dev` reads it."""
    text = (ROOT / "dev").read_text()
    table = text.split('COMMANDS="\\\n', 1)[1].split('"\n', 1)[0]
    return {line.split("|")[0]: line.split("|")[1] for line in table.splitlines()}


COMMANDS = declared()
OWN = sorted(name for name, module in COMMANDS.items() if not module)
MODULES = {name: module for name, module in COMMANDS.items() if module}


def listed(text: str) -> dict[str, str]:
    """The commands of a command list and their one line each."""
    rows = [line.split(maxsplit=1) for line in text.splitlines() if line.startswith("  ")]
    return {row[0]: row[1] for row in rows}


@pytest.fixture
def dev(tmp_path: Path) -> Dev:
    return fake_checkout(tmp_path)


def test_the_list_in_dev_holds_every_command_a_user_is_told_about():
    assert set(COMMANDS) >= KNOWN
    assert set(OWN) == {"setup", "lint", "lock"}


@pytest.mark.parametrize("args", [(), ("help",), ("--help",), ("-h",)])
def test_dev_alone_or_asked_for_help_lists_every_command_and_installs_nothing(dev, args):
    done = dev.run(*args)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("usage: ./dev COMMAND [ARGS]")
    commands = listed(done.stdout)
    assert list(commands) == list(COMMANDS)
    assert all(commands.values())
    assert dev.calls() == []


def test_an_unknown_command_says_so_and_lists_the_commands_with_exit_2(dev):
    done = dev.run("tset")
    assert (done.returncode, done.stdout) == (2, "")
    first, rest = done.stderr.split("\n", 1)
    assert first == "dev: unknown command 'tset'"
    assert list(listed(rest)) == list(COMMANDS)
    assert dev.calls() == []


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", OWN)
def test_a_command_dev_runs_itself_prints_its_usage_and_runs_nothing(dev, command, flag):
    meaning = listed(dev.run("help").stdout)[command]
    done = dev.run(command, flag)
    assert (done.returncode, done.stderr) == (0, "")
    usage, blank, said = done.stdout.splitlines()
    assert usage.startswith(f"usage: ./dev {command}")
    assert (blank, said) == ("", meaning[0].upper() + meaning[1:] + ".")
    # Not even the environment was made.
    assert dev.calls() == []


def test_every_other_command_hands_help_to_its_module_and_nothing_else(dev):
    assert dev.run("setup").returncode == 0
    for command, module in MODULES.items():
        done = dev.run(command, "--help")
        assert done.returncode == 0, done.stderr
        assert dev.calls() == [f"python -m {module} --help"]


@pytest.mark.parametrize("command", sorted(MODULES))
def test_each_module_answers_help_with_its_usage_alone(command):
    """What the module prints for `./dev COMMAND --help`: argparse's usage, and it exits before
    running anything (pytest: its own help, no test collected)."""
    done = subprocess.run(
        [sys.executable, "-m", *MODULES[command].split(), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    prog = "python -m pytest" if command == "test" else f"./dev {command}"
    assert done.stdout.startswith(f"usage: {prog} ")
