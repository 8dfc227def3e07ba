"""The suite's own rules (tests/README.md): the quick loop starts no process, and a module that
runs a stack is handed to one worker whole."""

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import STACK_MODULES

ROOT = Path(__file__).resolve().parent.parent


def test_a_test_without_the_integration_marker_cannot_start_a_process():
    with pytest.raises(RuntimeError, match=r"starts a process .* not marked `integration`"):
        subprocess.run(["true"], check=False)


def test_every_module_that_runs_a_stack_is_handed_out_whole():
    running = {
        f"tests/{path.name}"
        for path in (ROOT / "tests").glob("test_*.py")
        # A stack runs once entered; a LocalStack only made (its environments read) starts nothing.
        if re.search(r"\brunning_stack\(|\bwith LocalStack\(", path.read_text(encoding="utf-8"))
    }
    assert running
    assert running <= set(STACK_MODULES)
